// End-to-end tests through the `tpusim` binary: bad inputs end in one clear line and a non-zero
// exit; good runs check out against the reference, agree across fidelities and never beat the
// roofline.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "sim/config/config.h"
#include "sim/config/user_input.h"
#include "sim/isa/program.h"
#include "tests/cli_helpers.h"
#include "tools/compiler/frontend.h"
#include "tools/compiler/lowering.h"
#include "tests/test_paths.h"

namespace {

using tpu::test_shell::fresh_dir;
using tpu::test_shell::Outcome;
using tpu::test_shell::slurp;
using tpu::test_shell::temp_path;
using tpu::test_shell::tpusim;

const std::string kSource = tpu::test_paths::source_dir();
const std::string kBinary = tpu::test_paths::binary();

std::string write_temp(const std::string& name, const std::string& text) {
  std::string path = temp_path(name);
  std::ofstream(path) << text;
  return path;
}

nlohmann::json run_json(const std::string& args) {
  std::string json = temp_path("report.json");
  Outcome o = tpusim("run --quiet --json " + json + " " + args);
  EXPECT_EQ(o.exit_code, 0) << o.err;
  return nlohmann::json::parse(slurp(json));
}

// A failing command prints exactly one line, mentioning every `needles`, and exits non-zero.
void expect_one_line_error(const Outcome& o, const std::vector<std::string>& needles) {
  EXPECT_NE(o.exit_code, 0);
  EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
  for (const std::string& n : needles) EXPECT_NE(o.err.find(n), std::string::npos) << o.err;
}

std::string model(const std::string& name) { return " --model " + kSource + "/models/" + name; }
std::string config(const std::string& name) { return " --config " + kSource + "/configs/" + name; }

TEST(CliErrors, MissingModelFile) {
  expect_one_line_error(tpusim("run --model /nonexistent/model.json"), {"/nonexistent/model.json"});
}

TEST(CliErrors, MissingConfigFile) {
  expect_one_line_error(tpusim("run --config /nonexistent/cfg.json"), {"/nonexistent/cfg.json"});
}

TEST(CliErrors, MalformedModelJson) {
  std::string path = write_temp("bad.json", "{\"layers\": [ {\"type\": \"matmul\", ");
  expect_one_line_error(tpusim("run --model " + path), {path});
}

TEST(CliErrors, MalformedConfigJson) {
  std::string path = write_temp("bad_config.json", "{\"array\": {\"rows\": 8,, }}");
  expect_one_line_error(tpusim("run --config " + path), {path});
}

TEST(CliErrors, MalformedScaleSimCsv) {
  std::string path = write_temp(
      "bad.csv",
      "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, "
      "Strides,\nconv1, 32, 32, 3, three, 3, 16, 1,\n");
  expect_one_line_error(tpusim("run --model " + path), {path, "2"});
}

TEST(CliErrors, UnknownConfigKeyNamesFileKeyAndNearestKey) {
  std::string path = write_temp("typo.json", "{\"array\": {\"rowz\": 8}}");
  expect_one_line_error(tpusim("run --config " + path), {path, "array.rowz", "array.rows"});
}

TEST(CliErrors, UnknownSetKeyNamesNearestKey) {
  expect_one_line_error(tpusim("run --set array.colz=8"), {"array.colz", "array.cols"});
}

TEST(CliErrors, ZeroArraySize) {
  expect_one_line_error(tpusim("run --set array.rows=0"), {"array.rows"});
}

TEST(CliErrors, NegativeLayerSize) {
  std::string path = write_temp(
      "neg.json", R"({"name": "neg", "layers": [{"type": "matmul", "m": 4, "k": -3, "n": 8}]})");
  expect_one_line_error(tpusim("run --model " + path), {path});
}

TEST(CliErrors, ZeroLayerSize) {
  std::string path = write_temp(
      "zero.json", R"({"name": "zero", "layers": [{"type": "matmul", "m": 0, "k": 3, "n": 8}]})");
  expect_one_line_error(tpusim("run --model " + path), {path});
}

TEST(CliErrors, LayerTooLargeForBuffersSaysWhatWouldFit) {
  // One im2col patch of this conv needs 3*3*1024 = 9216 elements = 72 UB rows of 128, double-
  // buffered (weights go through the weight FIFO); a 16 KiB unified buffer holds 128 rows, so no
  // tiling fits.
  std::string path = write_temp(
      "big.json", R"({"name": "big", "input": [8, 8, 1024],
                      "layers": [{"name": "wide", "type": "conv2d", "out_channels": 64,
                                  "kernel": 3, "padding": 1}]})");
  Outcome o = tpusim("run --model " + path + " --set ub.capacity_bytes=16384");
  expect_one_line_error(o, {"wide", "ub.capacity_bytes"});
}

TEST(CliErrors, MalformedAssemblyNamesLine) {
  std::string path = write_temp("bad.asm", ".dtype int8\n.array 8 8\nmatmull ub=0 rows=4 acc=0\n");
  expect_one_line_error(tpusim("asm " + path + " -o " + temp_path("out.bin")), {"line 3"});
}

TEST(CliErrors, CheckWithTimingOnlyIsRefused) {
  expect_one_line_error(tpusim("run --check --timing-only"), {"--timing-only"});
}

TEST(CliRun, DefaultRunPrintsReport) {
  Outcome o = tpusim("run");
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_NE(o.out.find("conv1"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("total"), std::string::npos) << o.out;
}

TEST(CliRun, JsonHasRequiredFields) {
  nlohmann::json r = run_json("--check --set array.rows=16 --set array.cols=16");
  ASSERT_TRUE(r.contains("layers"));
  for (const auto& l : r["layers"])
    for (const char* key : {"name", "macs", "cycles", "compute_cycles", "stall_cycles",
                            "utilization", "mapping_efficiency", "hbm_read_bytes",
                            "hbm_write_bytes", "latency_us"})
      EXPECT_TRUE(l.contains(key)) << key;
  for (const char* key : {"cycles", "macs", "utilization", "latency_us", "tops", "hbm_read_bytes",
                          "hbm_write_bytes"})
    EXPECT_TRUE(r["total"].contains(key)) << key;
  EXPECT_TRUE(r["check"]["passed"].get<bool>());
  EXPECT_EQ(r["check"]["mismatches"].get<int>(), 0);
}

TEST(CliRun, CsvHasOneRowPerLayer) {
  std::string csv = temp_path("layers.csv"), json = temp_path("r.json");
  Outcome o = tpusim("run --quiet --csv " + csv + " --json " + json);
  ASSERT_EQ(o.exit_code, 0) << o.err;
  nlohmann::json r = nlohmann::json::parse(slurp(json));
  std::string text = slurp(csv);
  std::size_t lines = std::count(text.begin(), text.end(), '\n');
  // header + one row per layer (+ an optional total row)
  EXPECT_GE(lines, r["layers"].size() + 1);
  EXPECT_LE(lines, r["layers"].size() + 2);
  // Each layer's row carries what the JSON says of it, the time shares included.
  const std::vector<tpu::CsvRecord> records = tpu::parse_csv(text, csv);
  ASSERT_GE(records.size(), r["layers"].size() + 1);
  const std::vector<std::string>& header = records[0].fields;
  auto column = [&](const std::string& name) {
    const auto it = std::find(header.begin(), header.end(), name);
    if (it == header.end()) throw std::runtime_error("the CSV has no column " + name);
    return std::size_t(it - header.begin());
  };
  for (std::size_t i = 0; i < r["layers"].size(); ++i) {
    const nlohmann::json& layer = r["layers"][i];
    const std::vector<std::string>& row = records[i + 1].fields;
    EXPECT_EQ(row[column("name")], layer["name"].get<std::string>());
    for (const char* cycles : {"cycles", "overlap_cycles", "active_cycles"}) {
      EXPECT_EQ(std::stoull(row[column(cycles)]), layer[cycles].get<std::uint64_t>()) << cycles;
    }
    for (const char* share : {"matmul_share", "waiting_share", "vector_share"}) {
      EXPECT_NEAR(std::stod(row[column(share)]), layer[share].get<double>(), 1e-8) << share;
    }
  }
}

// The default config's 3 DMA engines fill a layer's weights while the layer before still runs,
// yet the layers' cycles partition the run: they sum to the total exactly, on a graph with
// branches and on SCALE-Sim's ResNet-50 (where the activity spans once summed to 814,548 of
// 638,600 cycles). Each layer's own activity is its share plus what ran ahead of it (more when
// a gap before it joins its share). On two cores each core's layers sum to its cycles.
TEST(CliRun, LayerCyclesPartitionTheRunOnSeveralDmaEngines) {
  const auto sum = [](const nlohmann::json& r, const std::string& suffix, const char* key) {
    std::uint64_t total = 0;
    for (const auto& l : r["layers"]) {
      const std::string name = l["name"];
      if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(),
                                                       suffix) == 0) {
        total += l[key].get<std::uint64_t>();
      }
    }
    return total;
  };
  for (const char* file : {"inception_block.json", "scalesim/scalesim_resnet50.csv"}) {
    SCOPED_TRACE(file);
    const nlohmann::json r = run_json("--timing-only" + model(file));
    EXPECT_EQ(r["config"]["core"]["dma_engines"], 3);
    EXPECT_EQ(sum(r, "", "cycles"), r["total"]["cycles"].get<std::uint64_t>());
    EXPECT_GT(sum(r, "", "overlap_cycles"), 0u);  // some layer did run ahead
    for (const auto& l : r["layers"]) {
      EXPECT_GE(l["cycles"].get<std::uint64_t>() + l["overlap_cycles"].get<std::uint64_t>(),
                l["active_cycles"].get<std::uint64_t>())
          << l["name"];
    }
  }
  const nlohmann::json r = run_json("--timing-only" + model("mlp.json") +
                                    " --set chip.cores=2 --set compiler.parallelism=data");
  ASSERT_EQ(r["cores"].size(), 2u);
  for (std::size_t c = 0; c < 2; ++c) {
    EXPECT_EQ(sum(r, "@c" + std::to_string(c), "cycles"), r["cores"][c]["cycles"]) << c;
  }
}

// Bit-exact int8 on shapes that are not multiples of the array.
TEST(CliCheck, OddMatmulOn16x16) {
  std::string path = write_temp(
      "odd.json",
      R"({"name": "odd", "layers": [{"name": "mm", "type": "matmul", "m": 37, "k": 300, "n": 130}]})");
  nlohmann::json r = run_json("--check --model " + path + config("teach_8x8.json") +
                              " --set array.rows=16 --set array.cols=16 --set vector.lanes=16"
                              " --set ub.capacity_bytes=262144");
  EXPECT_TRUE(r["check"]["passed"].get<bool>());
  EXPECT_EQ(r["layers"][0]["macs"].get<long>(), 37L * 300 * 130);
}

TEST(CliCheck, StridedPaddedConv) {
  std::string path = write_temp(
      "conv.json", R"({"name": "c", "input": [19, 17, 5],
                       "layers": [{"name": "c", "type": "conv2d", "out_channels": 21,
                                   "kernel": 3, "stride": 2, "padding": 1,
                                   "activation": "relu"}]})");
  nlohmann::json r = run_json("--check --model " + path +
                              " --set array.rows=16 --set array.cols=16 --set vector.lanes=16");
  EXPECT_TRUE(r["check"]["passed"].get<bool>());
  // Output 10 x 9 pixels, K = 3*3*5, N = 21.
  EXPECT_EQ(r["layers"][0]["macs"].get<long>(), 10L * 9 * 45 * 21);
}

// --dtype over the model's own choice: an ONNX float graph runs bf16 by default, int8 when
// chosen; a quantised graph runs int8 only.
TEST(CliCheck, DtypeChoosesTheDataType) {
  const std::string tiny = model("onnx/tiny_cnn.onnx");
  nlohmann::json r = run_json("--check" + tiny);
  EXPECT_EQ(r["model"]["dtype"], "bf16");
  EXPECT_TRUE(r["check"]["passed"].get<bool>());
  r = run_json("--check --dtype int8" + tiny);
  EXPECT_EQ(r["model"]["dtype"], "int8");
  EXPECT_TRUE(r["check"]["passed"].get<bool>());
  r = run_json("--check --dtype bf16" + model("convnet.json"));  // over the JSON's "dtype"
  EXPECT_EQ(r["model"]["dtype"], "bf16");
  r = run_json("--check" + model("onnx/qdq_cnn.onnx"));
  EXPECT_EQ(r["model"]["dtype"], "int8");
  EXPECT_TRUE(r["check"]["passed"].get<bool>());
  expect_one_line_error(tpusim("run --dtype bf16" + model("onnx/qdq_cnn.onnx")),
                        {"qdq_cnn.onnx", "a quantised ONNX graph runs int8 only"});
  expect_one_line_error(tpusim("run --dtype fp8" + tiny), {"--dtype", "fp8"});
}

TEST(CliCheck, ConvNetBundled) {
  nlohmann::json r = run_json("--check" + model("convnet.json"));
  EXPECT_TRUE(r["check"]["passed"].get<bool>());
}

// The bundled graphs (a residual block, an Inception-style concat) check out in both fidelities
// with identical cycles.
TEST(CliCheck, BundledGraphsInBothFidelities) {
  for (const char* m : {"residual_block.json", "inception_block.json"}) {
    const std::string args = model(m) + config("edge_32x32.json") + " --check";
    nlohmann::json fast = run_json(args);
    nlohmann::json pe = run_json(args + " --fidelity pe");
    EXPECT_TRUE(fast["check"]["passed"].get<bool>()) << m;
    EXPECT_TRUE(pe["check"]["passed"].get<bool>()) << m;
    EXPECT_EQ(fast["total"]["cycles"], pe["total"]["cycles"]) << m;
  }
}

// The Keras-style CNNs end in dense + softmax and check out in both fidelities, also on the
// 8 x 8 teaching array, where the softmax over 10 classes spans two UB rows. MACs by hand:
// MNIST conv1 26 * 26 * 9 * 32 = 194688, conv2 11 * 11 * 9 * 32 * 64 = 2230272, fc1 1600 * 64
// = 102400, fc2 64 * 10 = 640; CIFAR conv1 30 * 30 * 27 * 32 = 777600, fc 7200 * 10 = 72000.
TEST(CliCheck, KerasCnnsWithSoftmax) {
  const std::pair<const char*, std::uint64_t> models[] = {
      {"mnist_cnn.json", 194688u + 2230272 + 102400 + 640}, {"cifar_cnn.json", 777600u + 72000}};
  for (const char* c : {"edge_32x32.json", "teach_8x8.json"}) {
    for (const auto& [m, macs] : models) {
      SCOPED_TRACE(c);
      const std::string args = model(m) + config(c) + " --check";
      nlohmann::json fast = run_json(args);
      nlohmann::json pe = run_json(args + " --fidelity pe");
      EXPECT_TRUE(fast["check"]["passed"].get<bool>()) << m;
      EXPECT_TRUE(pe["check"]["passed"].get<bool>()) << m;
      EXPECT_EQ(fast["total"]["cycles"], pe["total"]["cycles"]) << m;
      EXPECT_EQ(fast["total"]["macs"].get<std::uint64_t>(), macs) << m;
      EXPECT_EQ(fast["layers"].back()["kind"], "softmax") << m;
    }
  }
}

TEST(CliCheck, Bf16WithinTolerance) {
  nlohmann::json r = run_json("--check" + model("matmul_bf16.json") +
                              " --set array.rows=32 --set array.cols=32");
  EXPECT_TRUE(r["check"]["passed"].get<bool>());
}

TEST(CliFidelity, PeAndFastAgreeOnConvNet) {
  const std::string args = model("convnet.json") + config("teach_8x8.json") + " --check";
  nlohmann::json fast = run_json(args + " --fidelity fast");
  nlohmann::json pe = run_json(args + " --fidelity pe");
  EXPECT_EQ(fast["total"]["cycles"], pe["total"]["cycles"]);
  ASSERT_EQ(fast["layers"].size(), pe["layers"].size());
  for (std::size_t i = 0; i < fast["layers"].size(); ++i) {
    EXPECT_EQ(fast["layers"][i]["cycles"], pe["layers"][i]["cycles"]) << i;
    EXPECT_EQ(fast["layers"][i]["compute_cycles"], pe["layers"][i]["compute_cycles"]) << i;
  }
  EXPECT_TRUE(pe["check"]["passed"].get<bool>());
}

TEST(CliTimingOnly, SameCyclesAsFunctional) {
  nlohmann::json functional = run_json(model("convnet.json"));
  nlohmann::json timing = run_json(model("convnet.json") + " --timing-only");
  EXPECT_EQ(functional["total"]["cycles"], timing["total"]["cycles"]);
}

// MobileNetV2 (models/mobilenet_v2.json) runs timing-only; its MACs, counted here from the
// paper's table, are the published 300.8 M. Per output pixel: the 3x3/2 stem 27 x 32; a block
// with input c_in, expansion t, output c and stride s: 1x1 expand c_in x t c_in (none when
// t = 1) at the input's size, 3x3 depthwise 9 x t c_in and 1x1 projection t c_in x c at the
// output's; the 1x1 head 320 x 1280 at 7 x 7; the classifier 1280 x 1000.
TEST(CliModels, MobileNetV2RunsTimingOnlyWithItsPublishedMacs) {
  struct Row {
    std::uint64_t t, c, n, s;
  };
  const Row table[] = {{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2},
                       {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
  std::uint64_t hw = 112, c_in = 32, macs = hw * hw * 27 * 32;
  for (const Row& r : table) {
    for (std::uint64_t i = 0; i < r.n; ++i) {
      const std::uint64_t hidden = r.t * c_in, out = i == 0 && r.s == 2 ? hw / 2 : hw;
      if (r.t != 1) macs += hw * hw * c_in * hidden;
      macs += out * out * (9 * hidden + hidden * r.c);
      hw = out;
      c_in = r.c;
    }
  }
  macs += 7 * 7 * 320 * 1280 + 1280 * 1000;
  EXPECT_EQ(macs, 300774272u);
  nlohmann::json r = run_json("--timing-only" + model("mobilenet_v2.json"));
  EXPECT_EQ(r["total"]["macs"].get<std::uint64_t>(), macs);
  // A depthwise weight tile feeds one column per weight row: at most R of R x C PEs work, so
  // the depthwise layers' mapping efficiency is at most 1 / C = 1 / 128 on the default array.
  int depthwise = 0;
  for (const auto& l : r["layers"]) {
    const std::string name = l["name"];
    if (name.size() < 3 || name.substr(name.size() - 3) != "_dw") continue;
    ++depthwise;
    EXPECT_LE(l["mapping_efficiency"].get<double>(), 1.0 / 128) << name;
    EXPECT_GT(l["mapping_efficiency"].get<double>(), 0.0) << name;
  }
  EXPECT_EQ(depthwise, 17);
}

// cycles >= max(MACs / (rows x cols), HBM bytes / peak bytes per cycle), per layer and in total.
// The peak is the preset's (total.hbm_peak_gbs, null when unlimited): a DRAM preset's device
// peak, not hbm.bandwidth_gbs, which only the simple model uses.
TEST(CliRoofline, NeverBelowTheRoofline) {
  for (const char* m : {"matmul.json", "conv.json", "mlp.json", "convnet.json",
                        "residual_block.json", "inception_block.json"}) {
    for (const char* c : {"default.json", "tpu_v1.json", "edge_32x32.json", "teach_8x8.json"}) {
      nlohmann::json r = run_json(std::string("--timing-only") + model(m) + config(c));
      const auto& cfg = r["config"];
      double pes = cfg["array"]["rows"].get<double>() * cfg["array"]["cols"].get<double>();
      const auto& peak_gbs = r["total"]["hbm_peak_gbs"];
      bool ideal = peak_gbs.is_null();
      EXPECT_EQ(ideal, cfg["hbm"]["preset"] == "ideal") << c;
      // GB/s = bytes per ns; a cycle lasts 1000 / clock_mhz ns.
      double peak_bytes_per_cycle =
          ideal ? 0.0 : peak_gbs.get<double>() * 1000.0 / cfg["clock_mhz"].get<double>();
      auto floor_cycles = [&](const nlohmann::json& x) {
        double compute = x["macs"].get<double>() / pes;
        double bytes = x["hbm_read_bytes"].get<double>() + x["hbm_write_bytes"].get<double>();
        return std::max(compute, ideal ? 0.0 : bytes / peak_bytes_per_cycle);
      };
      for (const auto& l : r["layers"]) {
        EXPECT_GE(l["cycles"].get<double>(), floor_cycles(l))
            << m << " on " << c << " " << l["name"];
      }
      EXPECT_GE(r["total"]["cycles"].get<double>(), floor_cycles(r["total"])) << m << " on " << c;
    }
  }
}

TEST(CliAssembly, CompileAsmDisasmRoundTrip) {
  std::string asm1 = temp_path("a.asm"), bin = temp_path("a.bin"), asm2 = temp_path("b.asm");
  ASSERT_EQ(tpusim("compile" + model("mlp.json") + " -o " + asm1).exit_code, 0);
  ASSERT_EQ(tpusim("asm " + asm1 + " -o " + bin).exit_code, 0);
  ASSERT_EQ(tpusim("disasm " + bin + " -o " + asm2).exit_code, 0);
  EXPECT_EQ(slurp(asm1), slurp(asm2));
}

}  // namespace

namespace {

TEST(CliMemtest, StreamPrintsAndWritesJson) {
  std::string json = temp_path("memtest.json");
  Outcome o = tpusim("memtest --bytes 1048576 --json " + json);
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_NE(o.out.find("row hits"), std::string::npos) << o.out;
  nlohmann::json r = nlohmann::json::parse(slurp(json));
  EXPECT_EQ(r["result"]["bytes"].get<long>(), 1048576L);
  EXPECT_EQ(r["result"]["preset"], "hbm2");
  EXPECT_GT(r["result"]["efficiency"].get<double>(), 0.5);
  EXPECT_LE(r["result"]["efficiency"].get<double>(), 1.0);
}

TEST(CliErrors, MemtestUnknownPattern) {
  Outcome o = tpusim("memtest --pattern zigzag");
  expect_one_line_error(o, {"tpusim: error:", "zigzag"});
  EXPECT_EQ(o.exit_code, 1);
}

// Command-line mistakes are one prefixed line and exit 1, like every other error.
TEST(CliErrors, CommandLineErrorsAreOnePrefixedLine) {
  for (const char* args : {"run --bogus", "memtest --bytes -1", "memtest --bytes 0", "frobnicate"}) {
    Outcome o = tpusim(args);
    expect_one_line_error(o, {"tpusim: error:"});
    EXPECT_EQ(o.exit_code, 1) << args;
  }
  EXPECT_EQ(tpusim("run --help").exit_code, 0);
}

// No output may overwrite an input of the same run; refused before any work, input untouched.
TEST(CliErrors, OutputOverAnInputIsRefused) {
  const std::string m = write_temp("m.json", R"({"layers": [{"type": "matmul", "m": 2, "k": 3, "n": 4}]})");
  const std::string before = slurp(m);
  expect_one_line_error(tpusim("run --model " + m + " --json " + m), {"--json", "is an input"});
  expect_one_line_error(tpusim("run --model " + m + " --csv " + m), {"--csv"});
  expect_one_line_error(tpusim("compile --model " + m + " -o " + m), {"--output"});
  expect_one_line_error(tpusim("asm " + m + " -o " + m), {"--output"});
  EXPECT_EQ(slurp(m), before);
}

// A failed check with -q still says so, in one line on stderr, and exits 2.
TEST(CliCheck, QuietFailedCheckPrintsOneLine) {
  tpu::Program p = tpu::compile(
      tpu::parse_model_json(
          R"({"layers": [{"name": "g", "type": "matmul", "m": 4, "k": 8, "n": 8}]})", "g.json"),
      tpu::default_config());
  p.layers.back().expected_int8[0] ^= 1;  // the reference now disagrees with the machine
  const std::string bin = temp_path("wrong.tpuprog");
  const std::vector<std::uint8_t> bytes = tpu::serialize(p);
  std::ofstream(bin, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                             std::streamsize(bytes.size()));
  Outcome o = tpusim("run -q --check --program " + bin);
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_TRUE(o.out.empty()) << o.out;
  EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
  EXPECT_NE(o.err.find("check failed: 1 of 32"), std::string::npos) << o.err;
}

// A report that cannot reach stdout (a full disk, a closed pipe) is an error, not exit 0.
TEST(CliErrors, StandardOutputThatCannotBeWrittenIsAnError) {
  for (const char* args : {"run", "isa"}) {
    const int status = std::system((kBinary + " " + args + " >/dev/full 2>/dev/null").c_str());
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 1) << args;
  }
}

TEST(CliErrors, AssemblyWithoutHaltIsRefused) {
  expect_one_line_error(tpusim("asm " + write_temp("empty.asm", "") + " -o " + temp_path("e.bin")),
                        {"empty.asm", "does not end with halt"});
  expect_one_line_error(
      tpusim("asm " + write_temp("nohalt.asm", "nop\n") + " -o " + temp_path("e.bin")),
      {"does not end with halt"});
}

// TPU v1's central result: a large dense layer at small batch starves on weight bandwidth.
// Batch 8 x 2048 x 2048 int8 on 256 x 256 at 700 MHz over 34 GB/s of DDR3: the 4 MiB of weights
// take at least 4 MiB / (34.13 GB/s / 0.7 GHz) = 86k cycles, the MACs 33.6M / 65536 = 512
// cycles, so the MXU spends nearly all of its time waiting for weight tiles.
TEST(CliTpuV1, SmallBatchDenseIsMemoryBoundOnWeights) {
  std::string path = write_temp(
      "dense.json", R"({"name": "dense_b8", "input": [1, 1, 2048], "batch": 8,
                        "layers": [{"name": "fc", "type": "dense", "units": 2048}]})");
  nlohmann::json r = run_json("--timing-only --model " + path + config("tpu_v1.json"));
  const auto& layer = r["layers"][0];
  EXPECT_LT(layer["utilization"].get<double>(), 0.02);
  double stalls = 0, weights = 0;
  for (const auto& [cause, n] : layer["stall_cycles"].items()) {
    stalls += n.get<double>();
    if (cause == "weights") weights = n.get<double>();
  }
  EXPECT_GT(weights, 0.5 * stalls) << layer["stall_cycles"];
  EXPECT_GT(weights, 0.5 * layer["cycles"].get<double>()) << layer["stall_cycles"];
}

}  // namespace

namespace {

// Every instruction a unit executed appears once on its unit's track, inside the run.
TEST(CliRun, TimelineHasEveryInstruction) {
  std::string trace = temp_path("trace.json");
  nlohmann::json r = run_json("--trace " + trace + model("mlp.json"));
  nlohmann::json t = nlohmann::json::parse(slurp(trace));
  std::size_t slices = 0;
  double end_us = 0;
  for (const auto& e : t["traceEvents"]) {
    if (e["ph"] != "X") continue;
    EXPECT_GE(e["dur"].get<double>(), 0.0);
    end_us = std::max(end_us, e["ts"].get<double>() + e["dur"].get<double>());
    if (e["cat"] != "wait") ++slices;  // the rest are stall intervals
  }
  std::size_t instructions = 0;
  for (const auto& l : r["layers"])
    for (const char* unit : {"dma", "weight_load", "matmul", "vector"})
      instructions += l["units"][unit]["instructions"].get<std::size_t>();
  EXPECT_EQ(slices, instructions);
  EXPECT_LE(end_us, r["total"]["latency_us"].get<double>() + 1e-9);
}

}  // namespace

namespace {

// A compiled binary program runs on its own, checks out, and takes the cycles its model took.
TEST(CliProgram, CompiledBinaryRunsLikeItsModel) {
  std::string bin = temp_path("mlp.tpuprog");
  ASSERT_EQ(tpusim("compile" + model("mlp.json") + " -o " + temp_path("mlp.asm") + " -b " + bin)
                .exit_code,
            0);
  nlohmann::json from_model = run_json(model("mlp.json"));
  nlohmann::json from_program = run_json("--check --program " + bin);
  EXPECT_TRUE(from_program["check"]["passed"].get<bool>());
  EXPECT_EQ(from_program["total"]["cycles"], from_model["total"]["cycles"]);
}

TEST(CliErrors, ProgramWithoutExpectedOutputsCannotBeChecked) {
  std::string asm_path = temp_path("mlp.asm");
  ASSERT_EQ(tpusim("compile" + model("mlp.json") + " -o " + asm_path).exit_code, 0);
  expect_one_line_error(tpusim("run --check --program " + asm_path), {asm_path, "--check"});
}

// explain prints every PE: the bundled config's own 128 x 128 array is refused, not shrunk.
TEST(CliErrors, ExplainRefusesALargeArray) {
  expect_one_line_error(tpusim("explain" + config("default.json")), {"at most 64 x 64", "128"});
  EXPECT_EQ(tpusim("explain --summary" + config("default.json") + " --rows 8 --cols 8").exit_code,
            0);
}

TEST(CliErrors, ProgramAndModelTogetherAreRefused) {
  Outcome o = tpusim("run --program x.asm" + model("mlp.json"));
  EXPECT_NE(o.exit_code, 0);
  EXPECT_NE(o.err.find("--model"), std::string::npos) << o.err;
}

}  // namespace

namespace {

// ... while a large convolution, its activations kept in the 24 MiB unified buffer, is
// compute-bound: conv_b's 56*56 x 2304 x 256 = 1.85G MACs need 28.2k cycles on 65536 PEs,
// its 590 KB of weights 12.1k cycles at 34.13 GB/s / 700 MHz = 48.8 B per cycle. So the MXU
// should be busy most of the time and seldom wait for weights.
TEST(CliTpuV1, LargeConvolutionIsComputeBound) {
  std::string path = write_temp("cnn.json", R"({"name": "cnn", "input": [56, 56, 128], "layers": [
      {"name": "conv_a", "type": "conv2d", "out_channels": 256, "kernel": 3, "padding": 1,
       "activation": "relu"},
      {"name": "conv_b", "type": "conv2d", "out_channels": 256, "kernel": 3, "padding": 1,
       "activation": "relu"},
      {"name": "pool", "type": "maxpool2d", "kernel": 2, "stride": 2}]})");
  nlohmann::json r = run_json("--timing-only --model " + path + config("tpu_v1.json"));
  const auto& conv = r["layers"][1];
  ASSERT_EQ(conv["name"], "conv_b");
  EXPECT_GT(conv["utilization"].get<double>(), 0.6);
  double weights = conv["stall_cycles"].value("weights", 0.0);
  EXPECT_LT(weights, 0.1 * conv["cycles"].get<double>()) << conv["stall_cycles"];
}

// A functional run estimated far beyond the host's means is refused before any data exists,
// with the estimate and the way out; it used to compute silently for ten minutes.
TEST(CliLimits, FunctionalRunOverTheLimitIsRefusedAtOnce) {
  const std::string m = write_temp(
      "mm.json", R"({"name": "mm", "layers": [{"type": "matmul", "m": 8192, "k": 8192, "n": 8192}]})");
  for (const char* command : {"run -q --model ", "compile -o /dev/null --model "}) {
    const Outcome o = tpusim(command + m);
    EXPECT_EQ(o.exit_code, 1);
    expect_one_line_error(o, {"tpusim: error: " + m + ": a functional run would take about",
                              "--timing-only", "--force"});
  }
}

// A 21-byte program declaring 4 GiB of HBM took 4.2 GB of host memory.
TEST(CliLimits, ProgramDeclaringHugeHbmIsRefusedUnlessTimingOnly) {
  const std::string prog = write_temp("big.asm", ".hbm 4294967296\nhalt\n");
  const Outcome o = tpusim("run -q --program " + prog);
  EXPECT_EQ(o.exit_code, 1);
  expect_one_line_error(o, {prog + ": a functional run needs about 4.04 GiB of host memory"});
  EXPECT_EQ(tpusim("run -q --timing-only --program " + prog).exit_code, 0);
}

// Assembly takes a UTF-8 byte order mark like configs and models do.
TEST(CliLimits, AssemblyWithByteOrderMarkRuns) {
  const std::string prog = write_temp("bom.asm", "\xEF\xBB\xBF.hbm 256\nhalt\n");
  const Outcome o = tpusim("run -q --program " + prog);
  EXPECT_EQ(o.exit_code, 0) << o.err;
}

// An allocation the host refuses is reported with the buffer and its size, not as a bare
// std::bad_alloc. (AddressSanitizer reserves terabytes of address space: no ulimit -v there.)
TEST(CliLimits, AllocationFailureNamesTheBufferAndSize) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "ulimit -v cannot coexist with AddressSanitizer's shadow memory";
#endif
  const std::string limit = "ulimit -v 1000000;";  // about 1 GB of address space
  const std::string prog = write_temp("h3.asm", ".hbm 3221225472\nhalt\n");
  Outcome o = tpusim("run -q --program " + prog, limit);
  EXPECT_EQ(o.exit_code, 1);
  expect_one_line_error(o, {"tpusim: error: cannot allocate 3.00 GiB of host memory for the "
                            "simulated HBM"});
  const std::string m = write_temp(
      "m.json", R"({"name": "m", "layers": [{"type": "matmul", "m": 32768, "k": 32768, "n": 1}]})");
  o = tpusim("run -q --model " + m, limit);
  EXPECT_EQ(o.exit_code, 1);
  expect_one_line_error(o, {"tpusim: error: cannot allocate 1.00 GiB of host memory for input "
                            "'matmul_0.input'"});
}

// An error raised inside the simulation (here the DMA unit's process, on an address past the
// program's HBM) is one line on stderr in every fidelity.
TEST(CliLimits, ErrorInsideTheSimulationIsOneLine) {
  const std::string prog = write_temp(
      "bad.asm", ".array 128 128\n.hbm 256\ndma.load hbm=0x10000 ub=0 elems=8 pack=8 groups=1\nhalt\n");
  for (const char* mode : {"--fidelity fast", "--fidelity pe", "--timing-only"}) {
    const Outcome o = tpusim(std::string("run -q ") + mode + " --program " + prog);
    EXPECT_EQ(o.exit_code, 1);
    expect_one_line_error(o, {"tpusim: error: instruction 0 'dma.load hbm=0x10000",
                              "outside HBM of 256 bytes"});
  }
}

// The `build/tpusim ...` commands of every README's sh blocks, in order (a command may use
// files an earlier one wrote); `a && b` gives both, trailing "# comments" are dropped.
std::vector<std::string> readme_commands() {
  namespace fs = std::filesystem;
  std::vector<fs::path> readmes;
  for (auto it = fs::recursive_directory_iterator(kSource); it != fs::recursive_directory_iterator();
       ++it) {
    const std::string name = it->path().filename().string();
    if (it->is_directory() && (name.rfind("build", 0) == 0 || name[0] == '.')) {
      it.disable_recursion_pending();  // build trees and hidden directories hold no docs
    } else if (name == "README.md") {
      readmes.push_back(it->path());
    }
  }
  std::sort(readmes.begin(), readmes.end());
  std::vector<std::string> commands;
  for (const fs::path& readme : readmes) {
    std::istringstream in(slurp(readme.string()));
    bool in_sh = false;
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("```", 0) == 0) {
        in_sh = !in_sh && line == "```sh";
        continue;
      }
      if (!in_sh) continue;
      const std::size_t comment = line.find(" #");
      if (comment != std::string::npos) line.erase(comment);
      for (std::size_t start = 0; start <= line.size();) {
        std::size_t end = line.find("&&", start);
        if (end == std::string::npos) end = line.size();
        std::string part = line.substr(start, end - start);
        part.erase(0, part.find_first_not_of(' '));
        part.erase(part.find_last_not_of(' ') + 1);
        if (part.rfind("build/tpusim ", 0) == 0) commands.push_back(part);
        start = end + 2;
      }
    }
  }
  return commands;
}

// Every example command in the READMEs runs as written, from a directory holding the repo's
// models and configs and build/tpusim.
TEST(CliDocs, EveryReadmeExampleRuns) {
  namespace fs = std::filesystem;
  const fs::path dir = fresh_dir("readme_examples");
  fs::create_directories(dir / "build");
  fs::create_directory_symlink(fs::path(kSource) / "models", dir / "models");
  fs::create_directory_symlink(fs::path(kSource) / "configs", dir / "configs");
  fs::create_symlink(kBinary, dir / "build" / "tpusim");
  const std::vector<std::string> commands = readme_commands();
  // 15 in README.md and 4 in configs/README.md today: the extraction must not silently shrink.
  EXPECT_GE(commands.size(), 19u);
  for (const std::string& command : commands) {
    const std::string err = (dir / "stderr").string();
    const int status = std::system(
        ("cd " + dir.string() + " && " + command + " >/dev/null 2>" + err).c_str());
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << command << "\n" << slurp(err);
  }
}

}  // namespace

namespace no_lost_output {

// Files in `dir` (the temporary files of an interrupted or failed write must not remain).
std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// Every flag that writes a file, given /dev/full: one line, exit 1 (it used to exit 0).
TEST(CliOutput, EveryOutputFlagReportsAFullDisk) {
  const std::string prog = temp_path("p.tpuprog"), text = temp_path("p.asm");
  ASSERT_EQ(tpusim("compile --timing-only" + model("matmul.json") + " -o " + text + " -b " + prog)
                .exit_code, 0);
  for (const std::string& args : std::vector<std::string>{
           "run -q --timing-only --json /dev/full", "run -q --timing-only --csv /dev/full",
        "run -q --timing-only --trace /dev/full",
        "compile --timing-only" + model("matmul.json") + " -o /dev/full",
        "compile --timing-only" + model("matmul.json") + " -o " + temp_path("x.asm") +
            " -b /dev/full",
        "asm " + text + " -o /dev/full", "disasm " + prog + " -o /dev/full",
        "memtest --bytes 4096 --json /dev/full", "explain --summary --html /dev/full",
        "explain --summary --vcd /dev/full"}) {
    SCOPED_TRACE(args);
    expect_one_line_error(tpusim(args), {"/dev/full"});
  }
}

// An output that cannot be created is refused before the run, naming the flag.
TEST(CliOutput, UnwritableOutputPathIsRefusedBeforeTheRun) {
  const std::string dir = fresh_dir("out");
  for (const std::string flag : {"--json", "--csv", "--trace"}) {
    expect_one_line_error(tpusim("run -q " + flag + " " + dir + "/missing/r.out"),
                          {flag, "missing", "does not exist"});
    expect_one_line_error(tpusim("run -q " + flag + " " + dir), {flag, "is a directory"});
  }
  EXPECT_TRUE(files_in(dir).empty());
}

// A report replaces an existing file whole and leaves no temporary file behind.
TEST(CliOutput, ReportsReplaceFilesWhole) {
  const std::string dir = fresh_dir("out");
  std::ofstream(dir + "/r.json") << "old";
  ASSERT_EQ(tpusim("run -q --timing-only --json " + dir + "/r.json").exit_code, 0);
  EXPECT_EQ(files_in(dir), std::vector<std::string>{"r.json"});
  EXPECT_TRUE(nlohmann::json::accept(slurp(dir + "/r.json")));
}

// SIGINT and SIGTERM mid-run: a prompt stop, a message, 128 + signal, and no output file.
TEST(CliOutput, InterruptedRunStopsPromptlyAndLeavesNoFile) {
  // A GPT-3 FFN layer: tens of seconds of simulation, far longer than the wait below.
  const std::string big = write_temp(
      "big.json", R"({"name": "big", "layers": [{"name": "ffn", "type": "matmul", "m": 2048, )"
                  R"("k": 12288, "n": 49152}]})");
  for (const auto& [sig, code] : {std::pair{"INT", 130}, std::pair{"TERM", 143}}) {
    const std::string dir = fresh_dir(std::string("out") + sig);
    const auto t0 = std::chrono::steady_clock::now();
    const Outcome o = tpu::test_shell::shell(
        "(" + tpu::test_shell::kSanitizerEnv + kBinary + " run --timing-only --model " + big +
        " --json " + dir + "/r.json --csv " + dir + "/r.csv & pid=$!; sleep 1; kill -" + sig +
        " $pid; wait $pid)");
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(o.exit_code, code) << sig << ": " << o.err;
    EXPECT_NE(o.err.find(std::string("tpusim: ") + (code == 130 ? "interrupted" : "terminated")),
              std::string::npos) << o.err;
    EXPECT_LT(seconds, 10.0) << sig;
    EXPECT_TRUE(files_in(dir).empty()) << sig;
  }
}

}  // namespace no_lost_output

// compile --annotate: every instruction of the plain assembly, each with its comment.
TEST(CliTeaching, CompileAnnotateExplainsEveryInstruction) {
  const Outcome plain = tpusim("compile --timing-only" + model("conv.json"));
  const Outcome annotated = tpusim("compile --timing-only --annotate" + model("conv.json"));
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  ASSERT_EQ(annotated.exit_code, 0) << annotated.err;
  std::istringstream in(annotated.out);
  std::size_t instructions = 0, comments = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("pc ", 0) == 0) {
      ++instructions;
      // The instruction text is the plain assembly's, word for word.
      const std::string text = line.substr(line.find("  ") + 2);
      EXPECT_NE(plain.out.find(text), std::string::npos) << text;
    } else if (line.find("# ") != std::string::npos) {
      ++comments;
    }
  }
  tpu::CompileOptions timing_only;
  timing_only.timing_only = true;
  const tpu::Program program =
      tpu::compile(tpu::load_model(kSource + "/models/conv.json"), tpu::default_config(), timing_only);
  EXPECT_EQ(instructions, program.instructions.size());
  EXPECT_EQ(comments, instructions);
}

// Inputs must be regular files: a FIFO would block the read forever, a directory would read as
// empty. Both are one line at once, for every kind of input.
TEST(CliErrors, FifoAndDirectoryInputsAreRefusedAtOnce) {
  const std::string fifo = temp_path("input.fifo"), dir = temp_path("input.dir");
  std::filesystem::remove(fifo);
  std::filesystem::create_directories(dir);
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  for (const auto& [path, kind] : {std::pair{fifo, "a FIFO"}, std::pair{dir, "a directory"}}) {
    for (const std::string& args :
         {"run --config " + path, "run --model " + path, "run --program " + path,
          "asm " + path + " -o " + temp_path("x.bin"), "disasm " + path}) {
      SCOPED_TRACE(args);
      // `timeout` turns a blocked read into exit 124 instead of a hung test.
      const Outcome o = tpusim(args, "timeout 20 env ");
      expect_one_line_error(o, {path, std::string("not a regular file: ") + kind});
      EXPECT_NE(o.exit_code, 124);
    }
  }
}
