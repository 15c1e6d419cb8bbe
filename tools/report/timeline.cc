#include "tools/report/timeline.h"

#include <algorithm>
#include <string>
#include <vector>

namespace tpu {

void TimelineRecorder::instruction(const InstructionEvent& e) {
  if (e.kind == InstructionEvent::Kind::kWaited)
    counters_.waits.push_back(TimelineWait{e.unit, e.instance, e.pc, e.from, e.cycle, e.cause});
}

void TimelineRecorder::memory(const MemoryEvent& e) {
  switch (e.kind) {
    case MemoryEvent::Kind::kHbmRead:
      add(&TimelineWindow::hbm_read_bytes, e.end, e.end + 1, e.count);
      break;
    case MemoryEvent::Kind::kHbmWrite:
      add(&TimelineWindow::hbm_write_bytes, e.end, e.end + 1, e.count);
      break;
    case MemoryEvent::Kind::kUbRead:
      add(&TimelineWindow::ub_read_rows, e.start, e.end, e.count);
      break;
    case MemoryEvent::Kind::kUbWrite:
      add(&TimelineWindow::ub_write_rows, e.start, e.end, e.count);
      break;
  }
}

void TimelineRecorder::cover(Cycle cycle) {
  std::vector<TimelineWindow>& w = counters_.windows;
  while (cycle / counters_.window_cycles >= kMaxWindows) {
    for (std::size_t i = 0; i < w.size(); i += 2) {
      TimelineWindow merged = w[i];
      if (i + 1 < w.size()) {
        merged.hbm_read_bytes += w[i + 1].hbm_read_bytes;
        merged.hbm_write_bytes += w[i + 1].hbm_write_bytes;
        merged.ub_read_rows += w[i + 1].ub_read_rows;
        merged.ub_write_rows += w[i + 1].ub_write_rows;
      }
      w[i / 2] = merged;
    }
    w.resize((w.size() + 1) / 2);
    counters_.window_cycles *= 2;
  }
  const std::size_t index = std::size_t(cycle / counters_.window_cycles);
  if (w.size() <= index) w.resize(index + 1);
}

void TimelineRecorder::add(std::uint64_t TimelineWindow::*field, Cycle start, Cycle end,
                           std::uint64_t count) {
  if (count == 0) return;
  end = std::max(end, start + 1);
  cover(end - 1);
  const Cycle width = counters_.window_cycles;
  const Cycle length = end - start;
  std::uint64_t given = 0;
  for (Cycle first = start / width * width; first < end; first += width) {
    // Whole units up to this window's end, rounded down: the last window gets the rest.
    const Cycle upto = std::min(end, first + width);
    const auto due = std::uint64_t(static_cast<unsigned __int128>(count) * (upto - start) / length);
    counters_.windows[std::size_t(first / width)].*field += due - given;
    given = due;
  }
}

namespace {

// Track of a unit's instructions (its waits: the next one). Instance 0 of each kind keeps the
// tracks it had before units had instances; other instances (MXUs 1..) come after all kinds.
std::size_t track(Unit unit, std::uint8_t instance, bool waits) {
  const std::size_t u = std::size_t(unit);
  if (instance == 0) return waits ? kNumUnits + u : u;
  return 2 * kNumUnits + 2 * (u * kMaxUnitInstances + instance) + (waits ? 1 : 0);
}

}  // namespace

nlohmann::json timeline_json(const Config& config, const Program& program, const RunResult& run,
                             const TimelineCounters& counters) {
  nlohmann::json events = nlohmann::json::array();
  // Each unit's waits sit right beneath its instructions.
  std::vector<bool> used(2 * kNumUnits * (kMaxUnitInstances + 1), false);
  for (std::size_t u = 0; u < kNumUnits; ++u) used[track(Unit(u), 0, false)] = true;
  for (const InstructionTrace& t : run.trace) used[track(t.unit, t.instance, false)] = true;
  for (const TimelineWait& w : counters.waits) used[track(w.unit, w.instance, true)] = true;
  for (std::size_t u = 0; u < kNumUnits; ++u) {
    for (std::uint8_t i = 0; i < kMaxUnitInstances; ++i) {
      const std::string name =
          to_string(Unit(u)) + (i == 0 ? std::string() : "." + std::to_string(i));
      for (const bool waits : {false, true}) {
        const std::size_t tid = track(Unit(u), i, waits);
        if (!used[tid]) continue;
        events.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", 0}, {"tid", tid},
                          {"args", {{"name", waits ? name + " waits" : name}}}});
        const std::size_t sort = i == 0 ? 2 * u + (waits ? 1 : 0) : tid;
        events.push_back({{"name", "thread_sort_index"}, {"ph", "M"}, {"pid", 0}, {"tid", tid},
                          {"args", {{"sort_index", sort}}}});
      }
    }
  }
  // Trace timestamps are microseconds; a cycle is period_ns / 1000 of one.
  const double us_per_cycle = config.period_ns() / 1000.0;
  auto layer_name = [&](int layer) {
    return layer >= 0 && std::size_t(layer) < program.layers.size()
               ? program.layers[std::size_t(layer)].name
               : std::string();
  };
  for (const InstructionTrace& t : run.trace) {
    const Instruction& inst = program.instructions[t.pc];
    const std::string layer = layer_name(t.layer);
    events.push_back({{"name", mnemonic(inst.op)},
                      {"cat", layer},
                      {"ph", "X"},
                      {"pid", 0},
                      {"tid", track(t.unit, t.instance, false)},
                      {"ts", double(t.start) * us_per_cycle},
                      {"dur", double(t.done - t.start) * us_per_cycle},
                      {"args",
                       {{"pc", t.pc},
                        {"layer", layer},
                        {"issued_cycle", t.issued},
                        {"start_cycle", t.start},
                        {"done_cycle", t.done},
                        {"asm", to_assembly(inst, &program)}}}});
  }
  for (const TimelineWait& w : counters.waits) {
    events.push_back({{"name", w.cause},
                      {"cat", "wait"},
                      {"ph", "X"},
                      {"pid", 0},
                      {"tid", track(w.unit, w.instance, true)},
                      {"ts", double(w.from) * us_per_cycle},
                      {"dur", double(w.to - w.from) * us_per_cycle},
                      {"args",
                       {{"pc", w.pc},
                        {"cause", w.cause},
                        {"from_cycle", w.from},
                        {"to_cycle", w.to},
                        {"asm", to_assembly(program.instructions[w.pc], &program)}}}});
  }
  // One counter sample per window, at its start, as a rate over its cycles (the last window
  // ends with the run), then zeros from the end of the last window.
  const Cycle width = counters.window_cycles;
  Cycle end = 0;
  for (std::size_t i = 0; i < counters.windows.size(); ++i) {
    const Cycle first = Cycle(i) * width;
    const Cycle cycles =
        run.total_cycles > first ? std::min(width, run.total_cycles - first) : width;
    end = first + cycles;
    const TimelineWindow& w = counters.windows[i];
    const double ns = double(cycles) * config.period_ns();
    const double ts = double(first) * us_per_cycle;
    // GB/s is bytes per ns.
    events.push_back({{"name", "HBM GB/s"}, {"ph", "C"}, {"pid", 0}, {"ts", ts},
                      {"args", {{"read", double(w.hbm_read_bytes) / ns},
                                {"write", double(w.hbm_write_bytes) / ns}}}});
    events.push_back({{"name", "UB rows/cycle"}, {"ph", "C"}, {"pid", 0}, {"ts", ts},
                      {"args", {{"read", double(w.ub_read_rows) / double(cycles)},
                                {"write", double(w.ub_write_rows) / double(cycles)}}}});
  }
  if (!counters.windows.empty()) {
    const double ts = double(end) * us_per_cycle;
    for (const char* name : {"HBM GB/s", "UB rows/cycle"})
      events.push_back({{"name", name}, {"ph", "C"}, {"pid", 0}, {"ts", ts},
                        {"args", {{"read", 0.0}, {"write", 0.0}}}});
  }
  return {{"traceEvents", events}, {"displayTimeUnit", "ns"}};
}

}  // namespace tpu
