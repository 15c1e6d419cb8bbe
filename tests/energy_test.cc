// The energy model: the units' event counters, the energy the report charges to them, and the
// energy keys' checks. Expected figures are recomputed here from the counters and the config,
// never through the report's own arithmetic.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/config/config.h"
#include "tools/compiler/frontend.h"
#include "tools/report/report.h"
#include "tools/run/run.h"
#include "tests/test_paths.h"

namespace tpu {
namespace {

using nlohmann::json;

// One dense layer, M = 16 rows by K = 784 into N = 256 with ReLU, then a 2x2 max pool
// (graph form, so the pool sees a 4 x 4 x 16 map): every counted unit has work.
const char* kModel = R"({
  "name": "energy_probe", "dtype": "int8", "batch": 1, "seed": 3,
  "inputs": [{"name": "x", "shape": [4, 4, 784]}],
  "nodes": [
    {"name": "fc", "op": "conv2d", "inputs": ["x"], "out_channels": 256, "kernel": 1,
     "activation": "relu"},
    {"name": "pool", "op": "maxpool2d", "inputs": ["fc"], "kernel": 2, "stride": 2}
  ],
  "outputs": ["pool"]
})";

// The default machine (128 x 128, HBM2) with every energy component switched on.
Config energy_config() {
  return default_config({"energy.static_w=2.5", "energy.dram_activate_pj=1500"});
}

tpu::Run run_probe(const Config& config) {
  RunOptions options;
  options.timing_only = true;  // the counters are the same with data
  return run_model(config, parse_model_json(kModel, "energy_probe"), "energy_probe", options);
}

// The six components in pJ, by hand from one layer's (or the total's) counters.
struct Expected {
  double mac, ub, acc, vector, hbm, static_;
  double total() const { return mac + ub + acc + vector + hbm + static_; }
};

Expected by_hand(const Config& c, std::uint64_t array_macs, std::uint64_t ub_rows,
                 std::uint64_t acc_bytes, std::uint64_t vector_elems, std::uint64_t hbm_bytes,
                 std::uint64_t activates, double latency_us) {
  const double row_bytes = 128;  // an int8 UB row: max(rows, cols) = 128 elements of 1 byte
  return {double(array_macs) * c.energy.mac_int8_pj,
          double(ub_rows) * row_bytes * c.energy.ub_pj_per_byte,
          double(acc_bytes) * c.energy.acc_pj_per_byte,
          double(vector_elems) * c.energy.vector_pj_per_elem,
          double(hbm_bytes) * c.energy.hbm_pj_per_byte +
              double(activates) * c.energy.dram_activate_pj,
          c.energy.static_w * latency_us * 1e6};  // W x us = uJ
}

void expect_energy(const json& energy, const Expected& e) {
  const double pj_per_uj = 1e6;
  EXPECT_NEAR(energy.at("mac_uj").get<double>() * pj_per_uj, e.mac, 1e-6 * e.mac);
  EXPECT_NEAR(energy.at("ub_uj").get<double>() * pj_per_uj, e.ub, 1e-6 * e.ub);
  EXPECT_NEAR(energy.at("acc_uj").get<double>() * pj_per_uj, e.acc, 1e-6 * e.acc);
  EXPECT_NEAR(energy.at("vector_uj").get<double>() * pj_per_uj, e.vector, 1e-6 * e.vector);
  EXPECT_NEAR(energy.at("hbm_uj").get<double>() * pj_per_uj, e.hbm, 1e-6 * e.hbm);
  EXPECT_NEAR(energy.at("static_uj").get<double>() * pj_per_uj, e.static_, 1e-6 * e.static_);
  EXPECT_NEAR(energy.at("total_uj").get<double>() * pj_per_uj, e.total(), 1e-6 * e.total());
}

// The matrix and vector units count what they did: every MATMUL streams its rows through all
// K_t x N_t PEs of its tile and lands N_t 32-bit sums a row; a K-split tile after the first
// also reads them back (accumulate); ACTIVATE reads each sum once and passes it through the
// vector unit; the pool passes every window element through its comparators.
TEST(Energy, UnitsCountTheirWork) {
  const Config config = energy_config();
  const tpu::Run run = run_probe(config);
  ASSERT_EQ(run.result.layers.size(), 2u);
  const LayerStats& fc = run.result.layers[0];
  const LayerStats& pool = run.result.layers[1];
  // M = 16, K = 784 = 6 x 128 + 16 (7 K tiles), N = 256 = 2 x 128.
  const std::uint64_t m = 16, k = 784, n = 256, k_tiles = 7, sum_bytes = m * n * 4;
  EXPECT_EQ(fc.array_macs, m * k * n);
  EXPECT_EQ(fc.array_macs, fc.macs);  // exact tiles: no PE works on padding
  EXPECT_EQ(fc.acc_write_bytes, k_tiles * sum_bytes);
  EXPECT_EQ(fc.acc_read_bytes, (k_tiles - 1) * sum_bytes + sum_bytes);  // accumulate + ACTIVATE
  EXPECT_EQ(fc.vector_elems, m * n);
  // 2 x 2 outputs of 256 channels, a 2 x 2 window each.
  EXPECT_EQ(pool.vector_elems, 2u * 2 * 4 * 256);
  EXPECT_EQ(pool.array_macs, 0u);
  EXPECT_EQ(pool.acc_read_bytes + pool.acc_write_bytes, 0u);
}

// The report's energy per layer and in total is the config's per-event energy times the run's
// counters; power = energy / latency; TOPS/W = 2 x useful MACs / energy.
TEST(Energy, ReportChargesEveryCounterAtItsConfiguredEnergy) {
  const Config config = energy_config();
  const tpu::Run run = run_probe(config);
  const json report = run.report_json();
  const RunResult& r = run.result;

  std::uint64_t macs = 0, array_macs = 0, ub_rows = 0, acc_bytes = 0, vector_elems = 0;
  for (std::size_t i = 0; i < r.layers.size(); ++i) {
    const LayerStats& l = r.layers[i];
    SCOPED_TRACE(l.name);
    const double latency_us = double(l.cycles) / config.clock_mhz;
    expect_energy(report["layers"][i]["energy"],
                  by_hand(config, l.array_macs, l.ub_reads + l.ub_writes,
                          l.acc_read_bytes + l.acc_write_bytes, l.vector_elems,
                          l.hbm_read_bytes + l.hbm_write_bytes, 0, latency_us));
    macs += l.macs;
    array_macs += l.array_macs;
    ub_rows += l.ub_reads + l.ub_writes;
    acc_bytes += l.acc_read_bytes + l.acc_write_bytes;
    vector_elems += l.vector_elems;
  }
  std::uint64_t activates = 0;
  for (const HbmChannelStats& c : r.hbm.channels) activates += c.activates;
  ASSERT_GT(activates, 0u);
  const double latency_us = double(r.total_cycles) / config.clock_mhz;
  const Expected total =
      by_hand(config, array_macs, ub_rows, acc_bytes, vector_elems,
              r.hbm.read_bytes + r.hbm.write_bytes, activates, latency_us);
  for (double component : {total.mac, total.ub, total.acc, total.vector, total.hbm, total.static_})
    EXPECT_GT(component, 0);
  const json& energy = report["total"]["energy"];
  expect_energy(energy, total);
  const double watts = total.total() * 1e-12 / (latency_us * 1e-6);
  EXPECT_NEAR(energy["power_w"].get<double>(), watts, 1e-6 * watts);
  const double tops_per_w = 2.0 * double(macs) / 1e12 / (total.total() * 1e-12);
  EXPECT_NEAR(energy["tops_per_w"].get<double>(), tops_per_w, 1e-6 * tops_per_w);

  const double core_watts = (total.total() - total.hbm) * 1e-12 / (latency_us * 1e-6);
  EXPECT_NEAR(energy["core_power_w"].get<double>(), core_watts, 1e-6 * core_watts);

  // The CSV's total row carries the same total energy.
  std::istringstream csv(run.report_csv());
  std::vector<std::vector<std::string>> rows;
  for (std::string line; std::getline(csv, line);) {
    std::vector<std::string> fields;
    std::istringstream in(line);
    for (std::string field; std::getline(in, field, ',');) fields.push_back(field);
    rows.push_back(fields);
  }
  ASSERT_EQ(rows.back()[0], "total");
  const auto column = std::find(rows[0].begin(), rows[0].end(), "energy_uj");
  ASSERT_NE(column, rows[0].end());
  EXPECT_NEAR(std::stod(rows.back()[std::size_t(column - rows[0].begin())]),
              total.total() * 1e-6, 1e-6 * total.total() * 1e-6);
  EXPECT_NE(run.report_table().find(" TOPS/W"), std::string::npos);
}

// A bf16 program prices its MACs at mac_bf16_pj and its UB rows at 2 bytes an element.
TEST(Energy, Bf16RunsUseTheBf16MacAndTwoByteRows) {
  const Config config = energy_config();
  std::string model = kModel;
  model.replace(model.find("int8"), 4, "bf16");
  RunOptions options;
  options.timing_only = true;
  const tpu::Run run =
      run_model(config, parse_model_json(model, "energy_probe_bf16"), "bf16", options);
  const LayerStats& fc = run.result.layers[0];
  const json energy = run.report_json()["layers"][0]["energy"];
  const double mac_pj = double(fc.array_macs) * config.energy.mac_bf16_pj;
  EXPECT_NEAR(energy["mac_uj"].get<double>() * 1e6, mac_pj, 1e-6 * mac_pj);
  const double ub_pj = double(fc.ub_reads + fc.ub_writes) * 128 * 2 * config.energy.ub_pj_per_byte;
  EXPECT_NEAR(energy["ub_uj"].get<double>() * 1e6, ub_pj, 1e-6 * ub_pj);
}

// Each key prices one component: raising it changes that component (and the total) and no
// other. The energy is a report-time figure, so one run serves every variant.
TEST(Energy, EachKeyChangesExactlyItsComponent) {
  const Config base = energy_config();
  const tpu::Run run = run_probe(base);
  const json before = run.report_json()["total"]["energy"];
  const struct {
    const char* key;
    double EnergyConfig::*field;
    const char* component;  // nullptr: nothing in an int8 run
  } cases[] = {{"mac_int8_pj", &EnergyConfig::mac_int8_pj, "mac_uj"},
               {"mac_bf16_pj", &EnergyConfig::mac_bf16_pj, nullptr},
               {"ub_pj_per_byte", &EnergyConfig::ub_pj_per_byte, "ub_uj"},
               {"acc_pj_per_byte", &EnergyConfig::acc_pj_per_byte, "acc_uj"},
               {"vector_pj_per_elem", &EnergyConfig::vector_pj_per_elem, "vector_uj"},
               {"hbm_pj_per_byte", &EnergyConfig::hbm_pj_per_byte, "hbm_uj"},
               {"dram_activate_pj", &EnergyConfig::dram_activate_pj, "hbm_uj"},
               {"static_w", &EnergyConfig::static_w, "static_uj"}};
  const std::vector<std::string> components = {"mac_uj",    "ub_uj",  "acc_uj",
                                               "vector_uj", "hbm_uj", "static_uj"};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.key);
    Config changed = base;
    changed.energy.*c.field = 2 * (base.energy.*c.field) + 1;
    const json after =
        report_json(changed, run.program, run.result, nullptr, run.info)["total"]["energy"];
    for (const std::string& component : components) {
      if (c.component && component == c.component) {
        EXPECT_GT(after[component].get<double>(), before[component].get<double>()) << component;
      } else {
        EXPECT_EQ(after[component], before[component]) << component;
      }
    }
    if (c.component) {
      EXPECT_GT(after["total_uj"].get<double>(), before["total_uj"].get<double>());
    } else {
      EXPECT_EQ(after["total_uj"], before["total_uj"]);
    }
  }
}

// configs/README.md, "Energy": tpu_v1 takes the 45 nm defaults scaled by 28 / 45, 1.95 nJ per
// 64-bit DDR3 access, and the paper's 28 W idle power as static power.
TEST(Energy, TpuV1FiguresAreTheDefaultsScaledTo28nm) {
  const EnergyConfig v1 =
      load_config(tpu::test_paths::source_dir() + "/configs/tpu_v1.json").energy;
  const EnergyConfig d;
  const double scale = 28.0 / 45.0;
  EXPECT_NEAR(v1.mac_int8_pj, d.mac_int8_pj * scale, 0.005 * v1.mac_int8_pj);
  EXPECT_NEAR(v1.mac_bf16_pj, d.mac_bf16_pj * scale, 0.005 * v1.mac_bf16_pj);
  EXPECT_NEAR(v1.ub_pj_per_byte, d.ub_pj_per_byte * scale, 0.005 * v1.ub_pj_per_byte);
  EXPECT_NEAR(v1.acc_pj_per_byte, d.acc_pj_per_byte * scale, 0.005 * v1.acc_pj_per_byte);
  EXPECT_NEAR(v1.vector_pj_per_elem, d.vector_pj_per_elem * scale, 0.005 * v1.vector_pj_per_elem);
  EXPECT_DOUBLE_EQ(v1.hbm_pj_per_byte, 1950.0 / 8);
  EXPECT_DOUBLE_EQ(v1.static_w, 28.0);
}

void expect_one_line_error(const std::vector<std::string>& overrides,
                           const std::vector<std::string>& says) {
  try {
    parse_config(json::object(), "x.json", overrides);
    ADD_FAILURE() << "no ConfigError for " << overrides[0];
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    for (const std::string& s : says) EXPECT_NE(msg.find(s), std::string::npos) << msg;
  }
}

TEST(Energy, BadValuesAreOneLineConfigErrors) {
  expect_one_line_error({"energy.ub_pj_per_byte=-1"},
                        {"energy.ub_pj_per_byte = -1 is out of range (allowed 0..1000000)"});
  expect_one_line_error({"energy.static_w=1e7"},
                        {"energy.static_w = 10000000", "out of range (allowed 0..1000000)"});
  // JSON has no NaN: the text is a string, which a number key refuses.
  expect_one_line_error({"energy.mac_int8_pj=nan"},
                        {"energy.mac_int8_pj", "expects a number", "string \"nan\""});
  // In a file, the error names the file.
  try {
    parse_config(json{{"energy", {{"hbm_pj_per_byte", -0.5}}}}, "configs/bad.json");
    ADD_FAILURE() << "no ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              "configs/bad.json: energy.hbm_pj_per_byte = -0.5 is out of range (allowed "
              "0..1000000)");
  }
  // 0 switches a component off.
  EXPECT_EQ(default_config({"energy.static_w=0"}).energy.static_w, 0);
}

}  // namespace
}  // namespace tpu
