// The --trace timeline's counter and wait tracks (tools/report/timeline.h): bursts summed into
// windows by hand-checked arithmetic, windows that coarsen instead of growing without bound,
// and, for a real run, counters that integrate to the report's traffic and wait slices that add
// up to its stall counters.
#include "tools/report/timeline.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "tools/compiler/frontend.h"
#include "tools/run/run.h"
#include "tests/test_paths.h"

namespace tpu {
namespace {

using nlohmann::json;
constexpr Cycle kW = TimelineRecorder::kFirstWindowCycles;  // 16

MemoryEvent burst(MemoryEvent::Kind kind, std::uint64_t count, Cycle start, Cycle end) {
  MemoryEvent e;
  e.kind = kind;
  e.count = count;
  e.start = start;
  e.end = end;
  return e;
}

TEST(TimelineRecorder, HbmBytesCountInTheWindowOfTheirResponse) {
  TimelineRecorder r;
  // Sent in window 0, answered in cycle 17: window 1 (cycles 16..31).
  r.memory(burst(MemoryEvent::Kind::kHbmRead, 64, 3, 17));
  r.memory(burst(MemoryEvent::Kind::kHbmWrite, 32, 40, 47));  // window 2
  const TimelineCounters c = r.take();
  ASSERT_EQ(c.windows.size(), 3u);
  EXPECT_EQ(c.windows[0].hbm_read_bytes, 0u);
  EXPECT_EQ(c.windows[1].hbm_read_bytes, 64u);
  EXPECT_EQ(c.windows[2].hbm_write_bytes, 32u);
  EXPECT_EQ(c.windows[1].hbm_write_bytes, 0u);
}

TEST(TimelineRecorder, UbRowsSpreadOverTheCyclesTheyAccess) {
  TimelineRecorder r;
  // 10 rows over cycles 12..21 (10 cycles): 4 of them in window 0 (12..15), 6 in window 1.
  r.memory(burst(MemoryEvent::Kind::kUbRead, 10, 12, 22));
  // 3 rows over cycles 14..17: floor(3 * 2 / 4) = 1 by the end of window 0, the other 2 after.
  r.memory(burst(MemoryEvent::Kind::kUbWrite, 3, 14, 18));
  const TimelineCounters c = r.take();
  ASSERT_EQ(c.windows.size(), 2u);
  EXPECT_EQ(c.windows[0].ub_read_rows, 4u);
  EXPECT_EQ(c.windows[1].ub_read_rows, 6u);
  EXPECT_EQ(c.windows[0].ub_write_rows, 1u);
  EXPECT_EQ(c.windows[1].ub_write_rows, 2u);
}

TEST(TimelineRecorder, WindowsDoubleInsteadOfGrowingPastTheCap) {
  TimelineRecorder r;
  const std::size_t cap = TimelineRecorder::kMaxWindows;
  r.memory(burst(MemoryEvent::Kind::kHbmRead, 5, 0, 0));         // window 0
  r.memory(burst(MemoryEvent::Kind::kHbmRead, 7, 0, kW));        // window 1
  r.memory(burst(MemoryEvent::Kind::kHbmRead, 11, 0, kW * cap)); // one past the last window
  const TimelineCounters c = r.take();
  // 16-cycle windows cover cap * 16 cycles; cycle cap * 16 needs 32-cycle windows, where it is
  // window cap / 2 and the first two windows merge.
  EXPECT_EQ(c.window_cycles, 2 * kW);
  ASSERT_EQ(c.windows.size(), cap / 2 + 1);
  EXPECT_EQ(c.windows[0].hbm_read_bytes, 5u + 7u);
  EXPECT_EQ(c.windows[cap / 2].hbm_read_bytes, 11u);
}

TEST(TimelineRecorder, WaitsAreKeptWithTheirCause) {
  TimelineRecorder r;
  InstructionEvent e;
  e.kind = InstructionEvent::Kind::kWaited;
  e.unit = Unit::kMatmul;
  e.pc = 7;
  e.from = 10;
  e.cycle = 25;
  e.cause = "weights";
  r.instruction(e);
  e.kind = InstructionEvent::Kind::kStarted;  // not a wait: not kept
  r.instruction(e);
  const TimelineCounters c = r.take();
  ASSERT_EQ(c.waits.size(), 1u);
  EXPECT_EQ(c.waits[0].unit, Unit::kMatmul);
  EXPECT_EQ(c.waits[0].pc, 7u);
  EXPECT_EQ(c.waits[0].from, 10u);
  EXPECT_EQ(c.waits[0].to, 25u);
  EXPECT_EQ(c.waits[0].cause, "weights");
}

// The bundled ConvNet on the default config with `preset` memory, traced: what the timeline
// shows adds up to what the report counts.
Run traced(const std::string& preset) {
  RunOptions options;
  options.trace = true;
  options.timing_only = true;
  const Config config = load_config(tpu::test_paths::source_dir() + "/configs/default.json",
                                    {"hbm.preset=" + preset});
  const std::string model = tpu::test_paths::source_dir() + "/models/convnet.json";
  return run_model(config, load_model(model), model, options);
}

// Sum over counter samples of value * time until the next sample of `name`, per series.
std::map<std::string, double> integrals(const json& events, const std::string& name,
                                        double per_us) {
  std::map<std::string, double> sum;
  const json* previous = nullptr;
  for (const json& e : events) {
    if (e.value("ph", "") != "C" || e["name"] != name) continue;
    if (previous) {
      const double us = e["ts"].get<double>() - (*previous)["ts"].get<double>();
      for (const auto& [series, value] : (*previous)["args"].items())
        sum[series] += value.get<double>() * us * per_us;
    }
    previous = &e;
  }
  return sum;
}

TEST(TracedRun, CountersIntegrateToTheReportsTraffic) {
  const tpu::Run run = traced("hbm2");
  const json timeline = run.timeline_json();
  const json report = run.report_json();
  const json& events = timeline["traceEvents"];
  const double period_ns = run.config.period_ns();
  // GB/s is bytes per ns: bytes = GB/s * us * 1000. Rows per cycle: rows = rate * us * 1000 /
  // period_ns.
  const std::map<std::string, double> hbm = integrals(events, "HBM GB/s", 1000.0);
  const std::map<std::string, double> ub = integrals(events, "UB rows/cycle", 1000.0 / period_ns);
  const double read = report["total"]["hbm_read_bytes"].get<double>();
  const double write = report["total"]["hbm_write_bytes"].get<double>();
  ASSERT_GT(read, 0);
  ASSERT_GT(write, 0);
  EXPECT_NEAR(hbm.at("read"), read, 1e-6 * read);
  EXPECT_NEAR(hbm.at("write"), write, 1e-6 * write);
  const double ub_reads = report["total"]["ub_reads"].get<double>();
  const double ub_writes = report["total"]["ub_writes"].get<double>();
  ASSERT_GT(ub_reads, 0);
  EXPECT_NEAR(ub.at("read"), ub_reads, 1e-6 * ub_reads);
  EXPECT_NEAR(ub.at("write"), ub_writes, 1e-6 * ub_writes);
  // The last sample closes the tracks at the end of the run.
  double last_ts = 0;
  for (const json& e : events)
    if (e.value("ph", "") == "C") last_ts = std::max(last_ts, e["ts"].get<double>());
  EXPECT_NEAR(last_ts, double(run.result.total_cycles) * period_ns / 1000.0, 1e-9);
}

TEST(TracedRun, WaitSlicesAddUpToTheStallCountersPerUnitAndCause) {
  const tpu::Run run = traced("hbm2");
  const json timeline = run.timeline_json();
  std::map<std::pair<std::string, std::string>, double> sliced;  // (unit track, cause)
  std::map<std::size_t, std::string> track;                     // tid -> name
  for (const json& e : timeline["traceEvents"]) {
    if (e.value("ph", "") == "M" && e["name"] == "thread_name")
      track[e["tid"].get<std::size_t>()] = e["args"]["name"].get<std::string>();
  }
  const double us_per_cycle = run.config.period_ns() / 1000.0;
  for (const json& e : timeline["traceEvents"]) {
    if (e.value("cat", "") != "wait") continue;
    EXPECT_EQ(e["name"], e["args"]["cause"]);
    const double cycles = e["args"]["to_cycle"].get<double>() - e["args"]["from_cycle"].get<double>();
    EXPECT_NEAR(e["dur"].get<double>(), cycles * us_per_cycle, 1e-9);
    // The counters add up a unit kind's instances (dma.1 waits count as dma waits).
    std::string unit = track.at(e["tid"].get<std::size_t>());
    const std::size_t dot = unit.find('.');
    if (dot != std::string::npos) unit.erase(dot, unit.find(' ') - dot);
    sliced[{unit, e["name"].get<std::string>()}] += cycles;
  }
  std::map<std::pair<std::string, std::string>, double> counted;
  for (std::size_t u = 0; u < kNumUnits; ++u)
    for (const auto& [cause, cycles] : run.result.units[u].stalls)
      if (cycles > 0)
        counted[std::make_pair(std::string(to_string(Unit(u))) + " waits", cause)] +=
            double(cycles);
  ASSERT_FALSE(counted.empty());  // the ConvNet stalls on semaphores and weights
  EXPECT_EQ(sliced, counted);
}

TEST(TracedRun, IdealMemoryStillCountsItsTraffic) {
  const tpu::Run run = traced("ideal");
  const json events = run.timeline_json()["traceEvents"];
  const double read = double(run.result.hbm.read_bytes);
  ASSERT_GT(read, 0);
  EXPECT_NEAR(integrals(events, "HBM GB/s", 1000.0).at("read"), read, 1e-6 * read);
}

}  // namespace
}  // namespace tpu
