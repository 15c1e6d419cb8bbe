// The run report's derived figures, its JSON/CSV/table shapes, and the output check.
#include "tools/report/report.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/config/config.h"
#include "sim/isa/program.h"
#include "sim/stats.h"
#include "tools/report/check.h"

namespace tpu {
namespace {

using nlohmann::json;

// A 4x4 array at 100 MHz (10 ns per cycle) with 10 GB/s memory (100 bytes per cycle).
Config small_config() {
  return parse_config({{"name", "small"},
                       {"clock_mhz", 100},
                       {"array", {{"rows", 4}, {"cols", 4}}},
                       {"hbm", {{"preset", "simple"}, {"bandwidth_gbs", 10}}}},
                      "small.json");
}

// Two layers: "conv1" (two weight tiles, MXU stalls) and "pool1" (no tiles).
struct Fixture {
  Config config = small_config();
  Program program;
  RunResult run;

  Fixture() {
    program.layers.resize(2);
    program.layers[0].name = "conv1";
    program.layers[0].kind = "conv2d";
    program.layers[1].name = "pool1";
    program.layers[1].kind = "maxpool2d";

    run.total_cycles = 50;
    run.simulated_ns = 500;
    run.layers.resize(2);
    LayerStats& conv = run.layers[0];
    conv.name = "conv1";
    conv.kind = "conv2d";
    conv.macs = 96;
    conv.started = true;
    conv.first_cycle = 10;
    conv.last_cycle = 29;  // 20 cycles
    conv.compute_seen = true;
    conv.compute_first = 12;
    conv.compute_last = 25;
    conv.weight_tiles = 2;
    conv.used_pes = 4 * 4 + 4 * 2;  // a full 4x4 tile and a 4x2 tile
    conv.hbm_read_bytes = 800;
    conv.hbm_write_bytes = 200;
    conv.units[std::size_t(Unit::kMatmul)].stalls = {{"weights", 3}, {"sem:conv1_in", 5}};
    conv.units[std::size_t(Unit::kMatmul)].busy_cycles = 14;
    conv.units[std::size_t(Unit::kDma)].busy_cycles = 9;

    LayerStats& pool = run.layers[1];
    pool.name = "pool1";
    pool.kind = "maxpool2d";
    pool.macs = 64;
    pool.started = true;
    pool.first_cycle = 30;
    pool.last_cycle = 49;  // 20 cycles
    pool.hbm_read_bytes = 200;
    pool.hbm_write_bytes = 300;
    pool.units[std::size_t(Unit::kMatmul)].stalls = {{"ub_port", 2}};
    // conv1 owns cycles 0 .. 29 (from the run's start), pool1 30 .. 49.
    partition_layer_cycles(run.layers, {0, 1}, run.total_cycles);

    run.hbm.read_bytes = 1000;
    run.hbm.write_bytes = 500;
    run.hbm.requests = 10;
    run.hbm.total_latency_ns = 1200;
    run.units[std::size_t(Unit::kMatmul)].stalls = {
        {"weights", 3}, {"sem:conv1_in", 5}, {"ub_port", 2}};
  }
};

// The fixture's run on two channels of hbm2, with DRAM counters and a latency histogram.
// Peak: 2 channels x 2 pseudo-channels x 8-byte bus x 2 beats per 1 ns tCK = 64 GB/s.
struct DramFixture : Fixture {
  DramFixture() {
    config = parse_config({{"name", "small_hbm2"},
                           {"clock_mhz", 100},
                           {"array", {{"rows", 4}, {"cols", 4}}},
                           {"hbm", {{"preset", "hbm2"}, {"channels", 2}}}},
                          "small_hbm2.json");
    HbmStats& hbm = run.hbm;
    // 100 requests: 98 at 20.5 ns, one at 50.2 ns, one at 300.7 ns.
    hbm.requests = 100;
    for (int i = 0; i < 98; ++i) hbm.record_latency(20.5);
    hbm.record_latency(50.2);
    hbm.record_latency(300.7);
    hbm.total_latency_ns = 98 * 20.5 + 50.2 + 300.7;  // 2359.9
    hbm.max_latency_ns = 300.7;
    hbm.pseudo_channels = 4;
    hbm.channels.resize(2);
    HbmChannelStats& a = hbm.channels[0];
    a.read_bytes = 640;
    a.write_bytes = 128;
    a.accesses = 24;
    a.row_hits = 18;
    a.row_misses = 4;
    a.row_conflicts = 2;
    a.activates = 6;
    a.refreshes = 1;
    a.refresh_ns = 260;
    a.access_latency_ns = 24 * 30.0;
    HbmChannelStats& b = hbm.channels[1];
    b.read_bytes = 360;
    b.write_bytes = 372;
    b.accesses = 16;
    b.row_hits = 2;
    b.row_misses = 4;
    b.row_conflicts = 10;
    b.activates = 14;
    b.refreshes = 2;
    b.refresh_ns = 520;
    b.access_latency_ns = 1100;
  }
};

RunInfo info() {
  RunInfo i;
  i.model = "tiny";
  i.model_source = "models/tiny.json";
  i.fidelity = "pe";
  i.host_seconds = 0.5;
  return i;
}

TEST(Report, LayerFiguresFromHandArithmetic) {
  Fixture f;
  const json r = report_json(f.config, f.program, f.run, nullptr, info());
  const json& conv = r["layers"][0];
  EXPECT_EQ(conv["name"], "conv1");
  EXPECT_EQ(conv["cycles"], 30);          // 0 .. 29: the first layer owns the run's start
  EXPECT_EQ(conv["active_cycles"], 20);   // 29 - 10 + 1
  EXPECT_EQ(conv["overlap_cycles"], 0);
  EXPECT_EQ(conv["compute_cycles"], 14);  // 25 - 12 + 1
  // 96 MACs / (30 cycles * 16 PEs) = 0.2
  EXPECT_DOUBLE_EQ(conv["utilization"].get<double>(), 0.2);
  // 24 used PEs / (2 tiles * 16 PEs) = 0.75
  EXPECT_DOUBLE_EQ(conv["mapping_efficiency"].get<double>(), 0.75);
  // 30 cycles / 100 MHz = 0.3 us
  EXPECT_DOUBLE_EQ(conv["latency_us"].get<double>(), 0.3);
  // 1000 bytes / (30 cycles * 10 ns) = 10/3 GB/s
  EXPECT_DOUBLE_EQ(conv["achieved_hbm_gbs"].get<double>(), 1000.0 / 300);
  EXPECT_EQ(conv["stall_cycles"], json({{"weights", 3}, {"sem:conv1_in", 5}}));
  EXPECT_EQ(conv["units"]["matmul"]["busy_cycles"], 14);
  EXPECT_EQ(conv["units"]["dma"]["busy_cycles"], 9);

  const json& pool = r["layers"][1];
  EXPECT_EQ(pool["cycles"], 20);  // 30 .. 49
  EXPECT_DOUBLE_EQ(pool["utilization"].get<double>(), 0.2);         // 64 / (20 * 16)
  EXPECT_DOUBLE_EQ(pool["mapping_efficiency"].get<double>(), 0.0);  // no weight tiles
}

// Six layers in program order: A 2 .. 9; B 4 .. 15, its first transfers under A; C 6 .. 12, a
// branch that ends before B; D a view (no instruction); E 20 .. 24 after a gap; F a view; the
// run ends at 30. A owns 0 .. 9 (from the start: 10), B 10 .. 15 (6, overlap 10 - 4 = 6), C
// none (overlap: all of its 7), D none, E 16 .. 24 (the gap before it and itself: 9), F, the
// last, 25 .. 29 (5): 10 + 6 + 9 + 5 = 30.
TEST(Report, LayerCyclesPartitionTheRun) {
  std::vector<LayerStats> layers(6);
  const auto active = [&](std::size_t i, Cycle first, Cycle last) {
    layers[i].started = true;
    layers[i].first_cycle = first;
    layers[i].last_cycle = last;
  };
  active(0, 2, 9);
  active(1, 4, 15);
  active(2, 6, 12);
  active(4, 20, 24);
  partition_layer_cycles(layers, {0, 1, 2, 3, 4, 5}, 30);
  const std::vector<Cycle> cycles = {10, 6, 0, 0, 9, 5}, overlap = {0, 6, 7, 0, 0, 0};
  for (std::size_t i = 0; i < layers.size(); ++i) {
    EXPECT_EQ(layers[i].cycles, cycles[i]) << i;
    EXPECT_EQ(layers[i].overlap_cycles, overlap[i]) << i;
  }

  // Program order, not the layers' indices: Y (index 1, 0 .. 4) before X (index 0, 5 .. 9).
  std::vector<LayerStats> two(2);
  two[0].started = two[1].started = true;
  two[0].first_cycle = 5;
  two[0].last_cycle = 9;
  two[1].last_cycle = 4;
  partition_layer_cycles(two, {1, 0}, 10);
  EXPECT_EQ(two[1].cycles, 5u);
  EXPECT_EQ(two[0].cycles, 5u);
  partition_layer_cycles(two, {0, 1}, 10);  // X first: it owns 0 .. 9, Y ran under it
  EXPECT_EQ(two[0].cycles, 10u);
  EXPECT_EQ(two[1].cycles, 0u);
  EXPECT_EQ(two[1].overlap_cycles, 5u);
}

TEST(Report, TotalFiguresFromHandArithmetic) {
  Fixture f;
  const json r = report_json(f.config, f.program, f.run, nullptr, info());
  const json& t = r["total"];
  EXPECT_EQ(t["cycles"], 50);
  EXPECT_EQ(t["macs"], 160);
  // 160 MACs / (50 cycles * 16 PEs) = 0.2
  EXPECT_DOUBLE_EQ(t["utilization"].get<double>(), 0.2);
  EXPECT_DOUBLE_EQ(t["latency_us"].get<double>(), 0.5);  // 50 cycles at 100 MHz
  // 2 * 160 ops / 500 ns = 6.4e8 ops/s = 6.4e-4 TOPS
  EXPECT_NEAR(t["tops"].get<double>(), 6.4e-4, 1e-15);
  // 1500 bytes / 500 ns = 3 GB/s
  EXPECT_DOUBLE_EQ(t["achieved_hbm_gbs"].get<double>(), 3.0);
  // max(ceil(160 / 16) = 10 compute, 1500 bytes / 100 bytes per cycle = 15 memory)
  EXPECT_DOUBLE_EQ(t["roofline_cycles"].get<double>(), 15.0);
  EXPECT_DOUBLE_EQ(t["avg_hbm_latency_ns"].get<double>(), 120.0);
  EXPECT_EQ(t["stall_cycles"]["ub_port"], 2);
  EXPECT_EQ(t["hbm_read_bytes"], 1000);
  EXPECT_EQ(t["hbm_write_bytes"], 500);
  EXPECT_EQ(t["compute_cycles"], 14);  // only conv1 computed
  // 50 simulated cycles in 0.5 host seconds.
  EXPECT_DOUBLE_EQ(r["run"]["simulated_cycles_per_second"].get<double>(), 100.0);
}

TEST(Report, ShareOfTimeFromHandArithmetic) {
  Fixture f;
  f.run.layers[0].units[std::size_t(Unit::kVector)].busy_cycles = 6;
  f.run.units[std::size_t(Unit::kMatmul)].busy_cycles = 14;
  f.run.units[std::size_t(Unit::kVector)].busy_cycles = 16;
  json r = report_json(f.config, f.program, f.run, nullptr, info());
  const json& conv = r["layers"][0];
  // A layer's shares are of its active cycles, 20.
  EXPECT_DOUBLE_EQ(conv["matmul_share"].get<double>(), 0.7);   // 14 busy / 20 cycles
  EXPECT_DOUBLE_EQ(conv["waiting_share"].get<double>(), 0.4);  // (3 + 5) stalled / 20
  EXPECT_DOUBLE_EQ(conv["vector_share"].get<double>(), 0.3);   // 6 / 20
  const json& t = r["total"];
  EXPECT_DOUBLE_EQ(t["matmul_share"].get<double>(), 0.28);  // 14 / 50
  EXPECT_DOUBLE_EQ(t["waiting_share"].get<double>(), 0.2);  // (3 + 5 + 2) / 50
  EXPECT_DOUBLE_EQ(t["vector_share"].get<double>(), 0.32);  // 16 / 50
  EXPECT_NE(report_table(f.config, f.program, f.run, nullptr, info())
                .find("time: MXU multiplying 28.0 %, MXU waiting 20.0 %, vector unit busy 32.0 %"),
            std::string::npos);
  // Two MXUs: the matmul unit's busy and stall cycles are sums over both, per MXU-cycle.
  f.config.core.mxus = 2;
  r = report_json(f.config, f.program, f.run, nullptr, info());
  EXPECT_DOUBLE_EQ(r["total"]["matmul_share"].get<double>(), 0.14);  // 14 / (50 * 2)
  EXPECT_DOUBLE_EQ(r["total"]["waiting_share"].get<double>(), 0.1);
  EXPECT_DOUBLE_EQ(r["total"]["vector_share"].get<double>(), 0.32);
}

TEST(Report, JsonHasTheDocumentedKeys) {
  Fixture f;
  CheckResult check;
  check.compared = 7;
  const json r = report_json(f.config, f.program, f.run, &check, info());
  EXPECT_EQ(r["tpusim_version"], 1);
  EXPECT_EQ(r["model"]["name"], "tiny");
  EXPECT_EQ(r["model"]["source"], "models/tiny.json");
  EXPECT_EQ(r["config"], to_json(f.config));
  for (const char* key :
       {"fidelity", "timing_only", "host_seconds", "host_peak_mib", "simulated_cycles_per_second"}) {
    EXPECT_TRUE(r["run"].contains(key)) << key;
  }
  EXPECT_EQ(r["run"]["fidelity"], "pe");
  ASSERT_EQ(r["layers"].size(), 2u);
  for (const char* key : {"name", "kind", "macs", "cycles", "compute_cycles", "overlap_cycles",
                          "active_cycles", "stall_cycles",
                          "utilization", "mapping_efficiency", "hbm_read_bytes", "hbm_write_bytes",
                          "ub_reads", "ub_writes", "latency_us", "units"}) {
    EXPECT_TRUE(r["layers"][0].contains(key)) << key;
  }
  for (const char* unit : {"dma", "weight_load", "matmul", "vector"}) {
    EXPECT_TRUE(r["layers"][0]["units"][unit].contains("busy_cycles")) << unit;
    EXPECT_TRUE(r["layers"][0]["units"][unit].contains("stalls")) << unit;
  }
  for (const char* key : {"cycles", "macs", "utilization", "latency_us", "tops", "hbm_read_bytes",
                          "hbm_write_bytes", "achieved_hbm_gbs"}) {
    EXPECT_TRUE(r["total"].contains(key)) << key;
  }
  EXPECT_EQ(r["check"]["passed"], true);
  EXPECT_EQ(r["check"]["compared"], 7);
  EXPECT_FALSE(report_json(f.config, f.program, f.run, nullptr, info()).contains("check"));
}

TEST(Report, HbmFiguresOfADramPresetFromHandArithmetic) {
  DramFixture f;
  const json r = report_json(f.config, f.program, f.run, nullptr, info());
  const json& h = r["hbm"];
  EXPECT_EQ(h["preset"], "hbm2");
  EXPECT_DOUBLE_EQ(h["peak_gbs"].get<double>(), 64.0);
  EXPECT_DOUBLE_EQ(r["total"]["hbm_peak_gbs"].get<double>(), 64.0);
  // 64 GB/s at 100 MHz = 640 bytes per cycle: max(ceil(160 / 16) = 10, 1500 / 640) = 10.
  EXPECT_DOUBLE_EQ(r["total"]["roofline_cycles"].get<double>(), 10.0);
  EXPECT_EQ(h["requests"], 100);
  EXPECT_EQ(h["read_bytes"], 1000);
  EXPECT_EQ(h["write_bytes"], 500);
  // (1000 + 500) bytes / 500 ns = 3 GB/s
  EXPECT_DOUBLE_EQ(h["achieved_gbs"].get<double>(), 3.0);
  // 2359.9 ns / 100 requests
  EXPECT_DOUBLE_EQ(h["avg_latency_ns"].get<double>(), 23.599);
  // 99 of 100 requests: 98 in bucket [20, 21), the 99th in [50, 51) -> its upper edge 51.
  EXPECT_DOUBLE_EQ(h["p99_latency_ns"].get<double>(), 51.0);
  EXPECT_DOUBLE_EQ(h["max_latency_ns"].get<double>(), 300.7);
  EXPECT_EQ(h["pseudo_channels"], 4);
  EXPECT_EQ(h["accesses"], 40);  // 24 + 16
  EXPECT_EQ(h["row_hits"], 20);  // 18 + 2
  EXPECT_EQ(h["row_misses"], 8);
  EXPECT_EQ(h["row_conflicts"], 12);
  EXPECT_EQ(h["activates"], 20);
  EXPECT_EQ(h["refreshes"], 3);
  EXPECT_DOUBLE_EQ(h["row_hit_rate"].get<double>(), 0.5);  // 20 / 40
  EXPECT_DOUBLE_EQ(h["refresh_ns"].get<double>(), 780.0);  // 260 + 520
  // 780 ns / (4 pseudo-channels * 500 ns)
  EXPECT_DOUBLE_EQ(h["refresh_fraction"].get<double>(), 0.39);

  ASSERT_EQ(h["channels"].size(), 2u);
  const json& a = h["channels"][0];
  EXPECT_EQ(a["channel"], 0);
  EXPECT_EQ(a["read_bytes"], 640);
  EXPECT_EQ(a["write_bytes"], 128);
  EXPECT_DOUBLE_EQ(a["achieved_gbs"].get<double>(), 1.536);    // 768 bytes / 500 ns
  EXPECT_DOUBLE_EQ(a["row_hit_rate"].get<double>(), 0.75);     // 18 / 24
  EXPECT_DOUBLE_EQ(a["refresh_fraction"].get<double>(), 0.26);  // 260 / (2 PCs * 500 ns)
  EXPECT_DOUBLE_EQ(a["avg_latency_ns"].get<double>(), 30.0);    // 720 / 24
  EXPECT_EQ(a["row_misses"], 4);
  EXPECT_EQ(a["row_conflicts"], 2);
  EXPECT_EQ(a["activates"], 6);
  EXPECT_EQ(a["refreshes"], 1);
  const json& b = h["channels"][1];
  EXPECT_EQ(b["channel"], 1);
  EXPECT_DOUBLE_EQ(b["achieved_gbs"].get<double>(), 1.464);    // 732 bytes / 500 ns
  EXPECT_DOUBLE_EQ(b["row_hit_rate"].get<double>(), 0.125);    // 2 / 16
  EXPECT_DOUBLE_EQ(b["refresh_fraction"].get<double>(), 0.52);  // 520 / (2 PCs * 500 ns)
  EXPECT_DOUBLE_EQ(b["avg_latency_ns"].get<double>(), 68.75);   // 1100 / 16
}

TEST(Report, HbmWithoutDramCountersLeavesTheDramFieldsOut) {
  Fixture f;  // simple, 10 GB/s
  json h = report_json(f.config, f.program, f.run, nullptr, info())["hbm"];
  EXPECT_EQ(h["preset"], "simple");
  EXPECT_DOUBLE_EQ(h["peak_gbs"].get<double>(), 10.0);
  EXPECT_DOUBLE_EQ(h["achieved_gbs"].get<double>(), 3.0);    // 1500 bytes / 500 ns
  EXPECT_DOUBLE_EQ(h["avg_latency_ns"].get<double>(), 120.0);  // 1200 ns / 10 requests
  EXPECT_DOUBLE_EQ(h["p99_latency_ns"].get<double>(), 0.0);    // no histogram filled
  for (const char* key : {"row_hit_rate", "refresh_ns", "refresh_fraction", "channels"}) {
    EXPECT_FALSE(h.contains(key)) << key;
  }

  f.config = parse_config({{"hbm", {{"preset", "ideal"}}}}, "ideal.json");
  const json r = report_json(f.config, f.program, f.run, nullptr, info());
  EXPECT_TRUE(r["hbm"]["peak_gbs"].is_null());
  EXPECT_TRUE(r["total"]["hbm_peak_gbs"].is_null());
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST(Report, CsvHasOneRowPerLayerAndEveryStallColumn) {
  Fixture f;
  const auto with_total = lines_of(report_csv(f.config, f.run));
  ASSERT_EQ(with_total.size(), 4u);  // header + 2 layers + total
  EXPECT_EQ(lines_of(report_csv(f.config, f.run, false)).size(), 3u);
  EXPECT_EQ(with_total[0].rfind("name,kind,macs,cycles,", 0), 0u);
  const std::string tail =
      ",stall_sem,stall_ub_port,stall_weight_buffer,stall_weights,stall_weight_fifo,stall_queue,"
      "stall_op_start";
  EXPECT_EQ(with_total[0].substr(with_total[0].size() - tail.size()), tail);
  EXPECT_EQ(with_total[1].rfind("conv1,conv2d,96,30,14,0,20,0.2,0.75,", 0), 0u) << with_total[1];
  EXPECT_EQ(with_total[1].substr(with_total[1].size() - 14), ",5,0,0,3,0,0,0");
  EXPECT_EQ(with_total[2].substr(with_total[2].size() - 14), ",0,2,0,0,0,0,0");
  EXPECT_EQ(with_total[3].rfind("total,,160,50,14,0,50,", 0), 0u) << with_total[3];
  // Every row has as many fields as the header.
  auto fields = [](const std::string& line) { return std::count(line.begin(), line.end(), ','); };
  for (const std::string& line : with_total) EXPECT_EQ(fields(line), fields(with_total[0]));
}

// Two runs' CSVs line up whatever stalled: the columns once were the causes that happened.
TEST(Report, CsvColumnsDoNotDependOnTheStallsThatHappened) {
  Fixture f;
  RunResult calm = f.run;
  for (LayerStats& layer : calm.layers) {
    for (UnitStats& unit : layer.units) unit.stalls.clear();
  }
  for (UnitStats& unit : calm.units) unit.stalls.clear();
  RunResult other = f.run;
  other.layers[0].units[std::size_t(Unit::kMatmul)].stalls = {{"sem:another_name", 7},
                                                              {"weight_buffer", 1}};
  const std::string header = lines_of(report_csv(f.config, f.run))[0];
  EXPECT_EQ(lines_of(report_csv(f.config, calm))[0], header);
  const auto other_lines = lines_of(report_csv(f.config, other));
  EXPECT_EQ(other_lines[0], header);
  EXPECT_EQ(other_lines[1].substr(other_lines[1].size() - 14), ",7,0,1,0,0,0,0");
}

TEST(Report, TableShowsLayersTotalAndCheck) {
  Fixture f;
  CheckResult check;
  check.passed = false;
  check.compared = 10;
  check.mismatches = 1;
  check.first_mismatches = {"conv1[0,1]: got 3 expected 4"};
  const std::string table = report_table(f.config, f.program, f.run, &check, info());
  for (const char* part : {"config small", "4x4", "100 MHz", "fidelity pe", "conv1", "pool1",
                           "total", "sem:conv1_in 5", "20.0", "75.0", "800 B", "FAIL (1 of 10",
                           "conv1[0,1]: got 3 expected 4"}) {
    EXPECT_NE(table.find(part), std::string::npos) << part << "\n" << table;
  }
  // Columns are aligned: the layer rows and the total row have the same width up to HBM wr.
  const auto lines = lines_of(table);
  std::vector<std::size_t> widths;
  for (const std::string& line : lines) {
    if (line.rfind("conv1 ", 0) == 0 || line.rfind("pool1 ", 0) == 0 ||
        line.rfind("total ", 0) == 0) {
      widths.push_back(line.size());
    }
  }
  ASSERT_EQ(widths.size(), 3u);
  EXPECT_EQ(widths[0], widths[1]);
  EXPECT_EQ(widths[1], widths[2]);

  RunInfo timing = info();
  timing.timing_only = true;
  EXPECT_NE(report_table(f.config, f.program, f.run, nullptr, timing).find("skipped"),
            std::string::npos);
}

TEST(Report, TableDescribesTheMemory) {
  DramFixture dram;
  const std::string table = report_table(dram.config, dram.program, dram.run, nullptr, info());
  // 3 GB/s of 64 GB/s = 4.7 %; row hits 20 / 40; refresh 0.39 of bank time.
  for (const char* part : {"memory hbm2 (2 channels x 2 pseudo-channels, 64 GB/s peak)",
                           "3.0 GB/s achieved (4.7 % of 64 GB/s peak)", "latency avg 23.6 ns",
                           "p99 51 ns", "row hits 50.0 % (8 misses, 12 conflicts)",
                           "refresh 39.0 %"}) {
    EXPECT_NE(table.find(part), std::string::npos) << part << "\n" << table;
  }
  EXPECT_EQ(table.find("bandwidth"), std::string::npos) << table;

  Fixture simple;
  const std::string simple_table =
      report_table(simple.config, simple.program, simple.run, nullptr, info());
  for (const char* part : {"memory simple (10 GB/s peak, 120 ns latency)",
                           "3.0 GB/s achieved (30.0 % of 10 GB/s peak)"}) {
    EXPECT_NE(simple_table.find(part), std::string::npos) << part << "\n" << simple_table;
  }
  EXPECT_EQ(simple_table.find("row hits"), std::string::npos) << simple_table;
}

TEST(Report, HumanBytes) {
  EXPECT_EQ(human_bytes(0), "0 B");
  EXPECT_EQ(human_bytes(1023), "1023 B");
  EXPECT_EQ(human_bytes(1536), "1.50 KiB");
  EXPECT_EQ(human_bytes(16 << 20), "16.0 MiB");
  EXPECT_EQ(human_bytes(300.0 * (1 << 30)), "300 GiB");
}

// An int8 layer whose 2 x 3 output rows sit 5 bytes apart from HBM byte 8.
Program int8_program() {
  Program p;
  p.dtype = DataType::kInt8;
  LayerInfo layer;
  layer.name = "fc";
  layer.output.base = 8;
  layer.output.count0 = 3;
  layer.output.count1 = 2;
  layer.output.stride1 = 5;
  layer.expected_int8 = {1, -2, 3, -4, 5, 127};
  p.layers.push_back(layer);
  LayerInfo unchecked;  // no expected data: skipped
  unchecked.name = "timing_only_layer";
  unchecked.output.count0 = 100;
  p.layers.push_back(unchecked);
  return p;
}

std::vector<std::uint8_t> int8_hbm() {
  std::vector<std::uint8_t> hbm(16, 0xEE);
  const std::int8_t values[6] = {1, -2, 3, -4, 5, 127};
  for (int i = 0; i < 3; ++i) hbm[8 + i] = std::uint8_t(values[i]);
  for (int i = 0; i < 3; ++i) hbm[13 + i] = std::uint8_t(values[3 + i]);
  return hbm;
}

TEST(Check, Int8IdenticalOutputsPass) {
  const CheckResult r = check_outputs(int8_program(), int8_hbm());
  EXPECT_TRUE(r.passed);
  EXPECT_EQ(r.compared, 6u);
  EXPECT_EQ(r.mismatches, 0u);
  EXPECT_TRUE(r.first_mismatches.empty());
}

TEST(Check, Int8InjectedMismatchIsFoundAndNamed) {
  auto hbm = int8_hbm();
  hbm[13 + 2] = 126;  // element [1,2] should be 127
  const CheckResult r = check_outputs(int8_program(), hbm);
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(r.compared, 6u);
  EXPECT_EQ(r.mismatches, 1u);
  ASSERT_EQ(r.first_mismatches.size(), 1u);
  EXPECT_EQ(r.first_mismatches[0], "fc[1,2]: got 126 expected 127");
}

TEST(Check, ReportsAtMostTenMismatches) {
  Program p;
  LayerInfo layer;
  layer.name = "big";
  layer.output.count0 = 30;
  layer.expected_int8.assign(30, 1);
  p.layers.push_back(layer);
  const CheckResult r = check_outputs(p, std::vector<std::uint8_t>(30, 0));
  EXPECT_EQ(r.mismatches, 30u);
  EXPECT_EQ(r.first_mismatches.size(), kMaxReportedMismatches);
  EXPECT_EQ(r.first_mismatches[0], "big[0]: got 0 expected 1");
}

TEST(Check, UnreadableOutputsFailWithAMessage) {
  Program p = int8_program();
  auto short_hbm = int8_hbm();
  short_hbm.resize(15);  // the view ends at byte 13 + 3 = 16
  CheckResult r = check_outputs(p, short_hbm);
  EXPECT_FALSE(r.passed);
  ASSERT_EQ(r.first_mismatches.size(), 1u);
  EXPECT_NE(r.first_mismatches[0].find("past the 15 bytes"), std::string::npos);

  p.layers[0].expected_int8.pop_back();
  r = check_outputs(p, int8_hbm());
  EXPECT_FALSE(r.passed);
  EXPECT_NE(r.first_mismatches[0].find("5 expected values"), std::string::npos);
}

TEST(Check, Bf16ToleranceEdges) {
  // ref 1, layer max 1: tolerance = 2^-7 * 1 + 2^-7 * 1 / 16 = 2^-7 + 2^-11.
  EXPECT_TRUE(bf16_within_tolerance(1.0f + 0x1p-7f, 1.0f, 1.0f));
  EXPECT_TRUE(bf16_within_tolerance(1.0f + 0x1p-7f + 0x1p-11f, 1.0f, 1.0f));
  EXPECT_FALSE(bf16_within_tolerance(1.0f + 0x1p-7f + 0x1p-10f, 1.0f, 1.0f));
  EXPECT_FALSE(bf16_within_tolerance(1.0f + 0x1p-6f, 1.0f, 1.0f));
  EXPECT_TRUE(bf16_within_tolerance(1.0f - 0x1p-7f, 1.0f, 1.0f));
  // ref 0 in a layer whose largest |ref| is 16: only the absolute term, 2^-7 * 16 / 16 = 2^-7.
  EXPECT_TRUE(bf16_within_tolerance(0x1p-7f, 0.0f, 16.0f));
  EXPECT_TRUE(bf16_within_tolerance(-0x1p-7f, 0.0f, 16.0f));
  EXPECT_FALSE(bf16_within_tolerance(0x1p-6f, 0.0f, 16.0f));
  EXPECT_FALSE(bf16_within_tolerance(std::nanf(""), 0.0f, 16.0f));
  EXPECT_FALSE(bf16_within_tolerance(INFINITY, 1e30f, 1e30f));
}

TEST(Check, Bf16OutputsReadFromHbm) {
  Program p;
  p.dtype = DataType::kBf16;
  LayerInfo layer;
  layer.name = "attn";
  layer.output.count0 = 2;
  layer.expected_fp32 = {1.0f, 0.5f};
  p.layers.push_back(layer);
  // Little-endian bf16: 0x3F81 = 1 + 2^-7, 0x3F00 = 0.5.
  std::vector<std::uint8_t> hbm = {0x81, 0x3F, 0x00, 0x3F};
  CheckResult r = check_outputs(p, hbm);
  EXPECT_TRUE(r.passed);
  EXPECT_EQ(r.compared, 2u);
  // 0x3F82 = 1 + 2^-6: off by 2^-6 > 2^-7 + 2^-11.
  hbm[0] = 0x82;
  r = check_outputs(p, hbm);
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(r.mismatches, 1u);
  EXPECT_EQ(r.first_mismatches[0], "attn[0]: got 1.01562 expected 1");
}

}  // namespace
}  // namespace tpu
