// Graph front ends: our JSON and SCALE-Sim topology CSV, shape inference and every error.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/cli_helpers.h"
#include "tools/compiler/frontend.h"
#include "tools/compiler/lowering.h"
#include "tests/test_paths.h"

namespace tpu {
namespace {

using test_shell::temp_path;

const std::string kModels = tpu::test_paths::source_dir() + "/models/";

// Expects parse to throw CompileError whose message contains every fragment.
template <typename F>
void expect_error(F parse, const std::vector<std::string>& fragments) {
  try {
    parse();
    ADD_FAILURE() << "no CompileError";
  } catch (const CompileError& e) {
    std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    for (const auto& f : fragments) EXPECT_NE(msg.find(f), std::string::npos) << msg << " / " << f;
  }
}

bool reads_graph_input(const Graph& g, std::size_t node) {
  return g.tensors[g.nodes[node].inputs[0]].producer < 0;
}

void expect_json_error(const std::string& text, const std::vector<std::string>& fragments) {
  expect_error([&] { parse_model_json(text, "m.json"); }, fragments);
}

void expect_csv_error(const std::string& text, const std::vector<std::string>& fragments) {
  expect_error([&] { parse_scalesim_csv(text, "t.csv"); }, fragments);
}

TEST(FrontendTest, ConvNetShapesAreInferredLayerByLayer) {
  Graph m = load_model(kModels + "convnet.json");
  EXPECT_EQ(m.name, "convnet");
  EXPECT_EQ(m.dtype, DataType::kInt8);
  EXPECT_EQ(m.batch, 1u);
  ASSERT_EQ(m.nodes.size(), 6u);  // the two relu entries fuse into the convolutions
  const Node& c1 = m.nodes[0];
  EXPECT_EQ(c1.kind, OpKind::kConv2d);
  EXPECT_EQ(c1.activation, Activation::kRelu);
  EXPECT_EQ(c1.in, (Shape3{32, 32, 3}));
  EXPECT_EQ(c1.out, (Shape3{32, 32, 32}));  // (32 + 2*1 - 3) / 1 + 1 = 32
  EXPECT_EQ(c1.gemm_m(), 1024u);
  EXPECT_EQ(c1.gemm_k(), 27u);  // 3 * 3 * 3
  EXPECT_EQ(c1.macs(), 1024u * 27 * 32);
  EXPECT_EQ(m.nodes[1].kind, OpKind::kMaxPool2d);
  EXPECT_EQ(m.nodes[1].stride, 2u);  // defaults to the kernel
  EXPECT_EQ(m.nodes[1].out, (Shape3{16, 16, 32}));
  EXPECT_EQ(m.nodes[2].out, (Shape3{16, 16, 64}));
  EXPECT_EQ(m.nodes[2].activation, Activation::kRelu);
  EXPECT_EQ(m.nodes[3].out, (Shape3{8, 8, 64}));
  const Node& fc1 = m.nodes[4];
  EXPECT_EQ(fc1.kind, OpKind::kDense);
  EXPECT_EQ(fc1.gemm_k(), 64u * 8 * 8);  // NHWC flatten
  EXPECT_EQ(fc1.gemm_n(), 128u);
  EXPECT_EQ(fc1.activation, Activation::kRelu);
  EXPECT_EQ(m.nodes[5].gemm_k(), 128u);
  EXPECT_EQ(m.nodes[5].gemm_n(), 10u);
  EXPECT_EQ(m.nodes[5].activation, Activation::kNone);
  // A chain: one graph input read by the first layer, one output (the last layer's).
  ASSERT_EQ(m.inputs.size(), 1u);
  EXPECT_EQ(m.tensors[m.inputs[0]].consumers, std::vector<std::uint32_t>{0});
  EXPECT_EQ(m.outputs, std::vector<TensorId>{m.nodes.back().output});
  for (std::size_t i = 1; i < m.nodes.size(); ++i) {
    EXPECT_EQ(m.nodes[i].inputs, std::vector<TensorId>{m.nodes[i - 1].output});
  }
}

TEST(FrontendTest, EveryBundledModelLoads) {
  int models = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(kModels)) {
    const std::string ext = e.path().extension().string();
    if (ext != ".json" && ext != ".csv") continue;
    SCOPED_TRACE(e.path().string());
    Graph m = load_model(e.path().string());
    EXPECT_FALSE(m.nodes.empty());
    ++models;
  }
  EXPECT_GE(models, 16);
  Graph conv = load_model(kModels + "conv.json");
  EXPECT_EQ(conv.nodes[0].out, (Shape3{28, 28, 128}));  // (56 + 2 - 3) / 2 + 1 = 28
  EXPECT_EQ(load_model(kModels + "matmul_bf16.json").dtype, DataType::kBf16);
  Graph mlp = load_model(kModels + "mlp.json");
  EXPECT_EQ(mlp.nodes[0].gemm_m(), 16u);
  EXPECT_EQ(mlp.nodes[0].gemm_k(), 784u);
}

// ResNet-50 v1.5 counted by hand from its stage table: the 7x7 stem, then per stage
// (width w, blocks, stride) bottlenecks of 1x1 (C -> w), 3x3 (w -> w, the stride), 1x1
// (w -> 4w), the first block's 1x1 projection (C -> 4w, the stride), and the classifier.
TEST(FrontendTest, ResNet50HasItsPublishedShapeAndMacs) {
  const Graph g = load_model(kModels + "resnet50.json");
  std::uint64_t expected = 112ull * 112 * 7 * 7 * 3 * 64;
  std::uint64_t hw = 56, c = 64;
  const std::uint64_t stages[4][3] = {{64, 3, 1}, {128, 4, 2}, {256, 6, 2}, {512, 3, 2}};
  for (const auto& [w, blocks, stride] : stages) {
    for (std::uint64_t b = 0; b < blocks; ++b) {
      const std::uint64_t out = b == 0 ? hw / stride : hw;
      expected += hw * hw * c * w + out * out * 9 * w * w + out * out * w * 4 * w;
      if (b == 0) expected += out * out * c * 4 * w;
      c = 4 * w;
      hw = out;
    }
  }
  expected += 2048ull * 1000;
  std::uint64_t macs = 0, adds = 0;
  for (const Node& n : g.nodes) {
    macs += n.macs();
    adds += n.kind == OpKind::kAdd;
  }
  EXPECT_EQ(macs, expected);
  EXPECT_NEAR(double(macs), 4.09e9, 0.01 * 4.09e9);  // torchvision's published 4.09 GFLOPs
  EXPECT_EQ(adds, 16u);                               // one residual add per bottleneck
  EXPECT_EQ(g.nodes[1].out, (Shape3{56, 56, 64}));   // max pool 3x3 / 2, padding 1
  EXPECT_EQ(g.nodes[g.nodes.size() - 4].out, (Shape3{7, 7, 2048}));
}

// The GEMM lists of the benchmarks and the hardware validation: independent matmul layers.
TEST(FrontendTest, GemmModelIsIndependentMatmulLayers) {
  const Graph g = gemm_model("pair", DataType::kBf16, {{5, 7, 3}, {2, 4, 6}});
  EXPECT_EQ(g.name, "pair");
  EXPECT_EQ(g.dtype, DataType::kBf16);
  ASSERT_EQ(g.nodes.size(), 2u);
  EXPECT_EQ(g.nodes[1].name, "gemm1");
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(g.nodes[i].kind, OpKind::kMatmul);
    EXPECT_TRUE(reads_graph_input(g, i));
  }
  EXPECT_EQ(g.nodes[0].gemm_m(), 5u);
  EXPECT_EQ(g.nodes[0].gemm_k(), 7u);
  EXPECT_EQ(g.nodes[0].gemm_n(), 3u);
  EXPECT_EQ(g.nodes[1].gemm_m(), 2u);
  EXPECT_EQ(g.nodes[1].gemm_k(), 4u);
  EXPECT_EQ(g.nodes[1].gemm_n(), 6u);
  expect_error([] { gemm_model("big", DataType::kInt8, {{1, std::uint64_t(1) << 30, 1}}); },
               {"<big>", "layer 0 'gemm0'", "key 'k'"});
}

TEST(FrontendTest, DefaultsNamesAndIndependentInputs) {
  Graph m = parse_model_json(
      R"({"layers": [{"type": "matmul", "m": 5, "k": 7, "n": 3},
                     {"type": "dense", "units": 4},
                     {"type": "conv2d", "out_channels": 2, "kernel": [1, 2], "input": [3, 4, 5]}]})",
      "dir/tiny.json");
  EXPECT_EQ(m.name, "tiny");
  EXPECT_EQ(m.seed, 1u);
  ASSERT_EQ(m.nodes.size(), 3u);
  EXPECT_EQ(m.nodes[0].name, "matmul_0");
  EXPECT_TRUE(reads_graph_input(m, 0));
  EXPECT_EQ(m.nodes[0].gemm_m(), 5u);
  // A dense layer after a matmul sees its M rows as samples.
  EXPECT_EQ(m.nodes[1].gemm_m(), 5u);
  EXPECT_EQ(m.nodes[1].gemm_k(), 3u);
  EXPECT_FALSE(reads_graph_input(m, 1));
  EXPECT_TRUE(reads_graph_input(m, 2));
  // The dense layer's output is read by nobody: it is a graph output like the conv's.
  EXPECT_EQ(m.outputs, (std::vector<TensorId>{m.nodes[1].output, m.nodes[2].output}));
  EXPECT_EQ(m.nodes[2].out, (Shape3{3, 3, 2}));  // kernel 1x2 on 3x4
}

TEST(FrontendTest, ScaleSimConvRowsAreIndependentUnpaddedLayers) {
  Graph m = parse_scalesim_csv(
      "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, "
      "Strides,\r\nConv1, 34, 34, 3, 3, 3, 32, 1,\r\n\r\nConv2, 9, 9, 3, 3, 32, 16, 2\n",
      "models/net.csv");
  EXPECT_EQ(m.name, "net");
  ASSERT_EQ(m.nodes.size(), 2u);
  EXPECT_EQ(m.nodes[0].name, "Conv1");
  EXPECT_EQ(m.nodes[0].padding, 0u);
  EXPECT_EQ(m.nodes[0].in, (Shape3{34, 34, 3}));
  EXPECT_EQ(m.nodes[0].out, (Shape3{32, 32, 32}));
  EXPECT_EQ(m.nodes[1].in, (Shape3{9, 9, 32}));  // not chained to Conv1
  EXPECT_EQ(m.nodes[1].out, (Shape3{4, 4, 16}));  // (9 - 3) / 2 + 1
  EXPECT_TRUE(reads_graph_input(m, 1));
}

TEST(FrontendTest, ScaleSimGemmRowsAreMTimesKByKTimesN) {
  // SCALE-Sim maps "Layer, M, N, K" to an M x K ifmap and N filters of K: output M x N.
  Graph m = load_model(kModels + "scalesim_gemm.csv");
  ASSERT_EQ(m.nodes.size(), 4u);
  const Node& qk = m.nodes[0];
  EXPECT_EQ(qk.kind, OpKind::kMatmul);
  EXPECT_EQ(qk.gemm_m(), 128u);
  EXPECT_EQ(qk.gemm_n(), 128u);
  EXPECT_EQ(qk.gemm_k(), 64u);
  const Node& ff1 = m.nodes[2];
  EXPECT_EQ(ff1.gemm_m(), 128u);
  EXPECT_EQ(ff1.gemm_n(), 1024u);
  EXPECT_EQ(ff1.gemm_k(), 256u);
}

TEST(FrontendTest, JsonErrorsNameFileLayerAndKey) {
  const std::string conv = R"("type": "conv2d", "name": "c", "out_channels": 4, "kernel": 3)";
  expect_json_error("{\"layers\": [", {"m.json", "invalid JSON"});
  expect_json_error("[1]", {"m.json", "object"});
  // Found by fuzzing (tests/fuzz/regressions/model): escaped as an nlohmann exception.
  expect_json_error(R"({"seed": 1e999, "layers": []})",
                    {"m.json", "key 'seed'", "number 1e999 is out of range of a double"});
  expect_json_error(R"({"batch": 1, "batch": 2, "layers": [{"type": "matmul", "m": 1, "k": 1, "n": 1}]})",
                    {"m.json", "invalid JSON", "duplicate key 'batch'"});
  expect_json_error(R"({"layers": [{"type": "matmul", "m": 1, "m": 2, "k": 1, "n": 1}]})",
                    {"duplicate key 'layers.m'"});
  expect_json_error(R"({"input": [4,4,1]})", {"m.json", "missing required key 'layers'"});
  expect_json_error(R"({"layers": [], "input": [4,4,1]})", {"m.json", "'layers'"});
  expect_json_error(R"({"layerz": [], "layers": [{"type": "matmul", "m": 1, "k": 1, "n": 1}]})",
                    {"m.json", "unknown key 'layerz'"});
  expect_json_error(R"({"dtype": "fp8", "layers": [{"type": "matmul", "m": 1, "k": 1, "n": 1}]})",
                    {"'dtype'", "fp8"});
  expect_json_error(R"({"batch": 0, "layers": [{"type": "matmul", "m": 1, "k": 1, "n": 1}]})",
                    {"'batch'", "got 0"});
  expect_json_error(R"({"seed": -1, "layers": [{"type": "matmul", "m": 1, "k": 1, "n": 1}]})",
                    {"'seed'"});
  expect_json_error(R"({"input": [4, 4], "layers": [{)" + conv + "}]}", {"'input'"});
  // Layer-level errors carry the index and the name.
  expect_json_error(R"({"layers": [{"type": "matmul", "m": 1, "k": 1, "n": 1},
                                   {"type": "matmul", "name": "x", "m": 1, "k": 2}]})",
                    {"m.json", "layer 1 'x'", "missing required key 'n'"});
  expect_json_error(R"({"layers": [{"type": "matmul", "name": "x", "m": 1, "k": 1, "n": 1,
                                    "padding": 1}]})",
                    {"layer 0 'x'", "unknown key 'padding'"});
  expect_json_error(R"({"layers": [{"type": "matmul", "name": "x", "m": 1, "k": 1, "n": 1,
                                    "bias": 1}]})",
                    {"layer 0 'x'", "key 'bias'", "expected true or false"});
  expect_json_error(R"({"layers": [{"type": "maxpool2d", "name": "x", "kernel": 2,
                                    "bias": true}]})",
                    {"layer 0 'x'", "unknown key 'bias'"});
  expect_json_error(R"({"layers": [{"type": "matmul", "name": "x", "m": "8", "k": 1, "n": 1}]})",
                    {"layer 0 'x'", "key 'm'", "integer"});
  expect_json_error(R"({"layers": [{"type": "matmul", "name": "x", "m": 2.5, "k": 1, "n": 1}]})",
                    {"key 'm'", "2.5"});
  expect_json_error(R"({"layers": [{"type": "matmul", "name": "x", "m": 0, "k": 1, "n": 1}]})",
                    {"key 'm'", "got 0"});
  expect_json_error(R"({"layers": [{"type": "matmul", "name": "x", "m": -3, "k": 1, "n": 1}]})",
                    {"key 'm'", "got -3"});
  expect_json_error(R"({"layers": [{"type": "lstm"}]})", {"layer 0", "lstm"});
  expect_json_error(R"({"layers": [{"name": "a"}]})", {"layer 0", "'type'"});
  expect_json_error(R"({"input": [4,4,1], "layers": [{)" + conv + R"(, "activation": "swish"}]})",
                    {"layer 0 'c'", "'activation'", "swish"});
  expect_json_error(R"({"input": [4,4,1], "layers": [{)" + conv + R"(, "padding": -1}]})",
                    {"layer 0 'c'", "'padding'"});
  expect_json_error(R"({"input": [4,4,1], "layers": [{"type": "conv2d", "name": "c",
                                                      "out_channels": 4, "kernel": [3]}]})",
                    {"layer 0 'c'", "'kernel'"});
  expect_json_error(R"({"input": [4,4,1], "layers": [{)" + conv + "}, {" + conv + "}]}",
                    {"layer 1 'c'", "duplicate"});
  expect_json_error(R"({"input": [2,2,1], "layers": [{)" + conv + "}]}",
                    {"node 0 'c'", "'kernel'", "larger than the padded input 2x2"});
  expect_json_error(R"({"input": [4,4,1], "layers": [{"type": "maxpool2d", "name": "p",
                                                      "kernel": 5}]})",
                    {"node 0 'p'", "'kernel'", "larger than the input 4x4"});
  expect_json_error(R"({"input": [4,4,1], "layers": [{"type": "maxpool2d", "name": "p",
                                                      "kernel": [2, 3]}]})",
                    {"layer 0 'p'", "square"});
  expect_json_error(R"({"layers": [{)" + conv + "}]}", {"layer 0 'c'", "no input shape"});
  expect_json_error(R"({"input": [4,4,1], "layers": [{"type": "relu"}]})",
                    {"layer 0 'relu_0'", "no previous layer"});
  expect_json_error(R"({"input": [4,4,1], "layers": [{"type": "maxpool2d", "kernel": 2},
                                                     {"type": "relu", "name": "r"}]})",
                    {"layer 1 'r'", "maxpool2d"});
  expect_json_error(R"({"input": [4,4,1], "layers": [{)" + conv +
                        R"(, "activation": "relu"}, {"type": "relu"}]})",
                    {"layer 1", "already has an activation"});
  expect_json_error(R"({"input": [4,4,1], "layers": [{"type": "relu", "units": 3}]})",
                    {"layer 0", "unknown key 'units'"});
}

TEST(FrontendTest, CsvErrorsNameFileAndLine) {
  const std::string header =
      "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, "
      "Strides,\n";
  expect_csv_error(header + "C1, 8, 8, 3, 3, 1, 4,\n", {"t.csv:2", "expected 8 columns, got 7"});
  expect_csv_error(header + "C1, 8, 8, 3, 3, 1, 4, 1, 1,\n", {"t.csv:2", "got 9"});
  expect_csv_error(header + "\nC1, 8, 8, 3, x, 1, 4, 1,\n",
                   {"t.csv:3", "'Filter Width'", "'x'"});
  expect_csv_error(header + "C1, 8, 8, 3, 3, 1, 0, 1,\n", {"t.csv:2", "'Num Filter'", "'0'"});
  expect_csv_error(header + "C1, 8, 8, 3, 3, 1, -4, 1,\n", {"t.csv:2", "'Num Filter'"});
  expect_csv_error(header + "C1, 8, 2, 3, 3, 1, 4, 1,\n", {"t.csv:2", "C1", "larger"});
  expect_csv_error(header + "C1, 8, 8, 3, 3, 1, 4, 1,\nC1, 8, 8, 3, 3, 1, 4, 1,\n",
                   {"t.csv:3", "duplicate"});
  expect_csv_error(header, {"t.csv", "no layers"});
  expect_csv_error("", {"t.csv", "empty"});
  expect_csv_error("Layer, M, K, N,\nG, 1, 2, 3,\n", {"t.csv:1", "header"});
  expect_csv_error("Layer, M, N, K,\nG, 1, 2.5, 3,\n", {"t.csv:2", "'N'", "'2.5'"});
  expect_csv_error("Layer, M, N, K,\nG, 1, 2,\n", {"t.csv:2", "expected 4 columns"});
}

TEST(FrontendTest, LoadModelDispatchesOnContent) {
  const std::string dir = temp_path("files") + "/";  // this test's own directory
  std::filesystem::create_directories(dir);
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir + name) << text;
    return dir + name;
  };
  // The extension does not matter, the content does.
  Graph csv = load_model(write("gemm.json", "Layer, M, N, K,\nG, 4, 5, 6,\n"));
  EXPECT_EQ(csv.nodes[0].gemm_k(), 6u);
  Graph json =
      load_model(write("model.csv", "  {\"layers\": [{\"type\": \"matmul\", \"m\": 1, \"k\": 2, "
                                    "\"n\": 3}]}"));
  EXPECT_EQ(json.nodes[0].gemm_n(), 3u);
  expect_error([&] { load_model(write("junk.txt", "hello, world\n")); },
               {"junk.txt", "not a model"});
  expect_error([&] { load_model(dir + "does_not_exist.json"); },
               {"does_not_exist.json", "cannot open"});
  // Only regular files: a directory is not an empty model, a FIFO does not block.
  expect_error([&] { load_model(dir); }, {"cannot open model file", "not a regular file: a directory"});
  const std::string fifo = dir + "model.fifo";
  std::remove(fifo.c_str());
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  expect_error([&] { load_model(fifo); }, {"model.fifo", "not a regular file: a FIFO"});
}


// A graph with a residual add and a concat: named tensors, inputs by name, shapes inferred.
const char* kGraph = R"({"name": "g", "batch": 2,
  "inputs": [{"name": "x", "shape": [8, 8, 16]}],
  "nodes": [
    {"name": "c1", "op": "conv2d", "inputs": ["x"], "out_channels": 16, "kernel": 3, "padding": 1},
    {"name": "r1", "op": "relu", "inputs": ["c1"]},
    {"name": "c2", "op": "conv2d", "inputs": ["r1"], "out_channels": 16, "kernel": 3, "padding": 1},
    {"name": "sum", "op": "add", "inputs": ["c2", "x"], "activation": "relu"},
    {"name": "side", "op": "conv2d", "inputs": ["x"], "out_channels": 8, "kernel": 1},
    {"name": "cat", "op": "concat", "inputs": ["sum", "side"]},
    {"name": "gap", "op": "global_avgpool2d", "inputs": ["cat"]},
    {"name": "flat", "op": "flatten", "inputs": ["gap"]},
    {"name": "fc", "op": "dense", "inputs": ["flat"], "units": 10}
  ],
  "outputs": ["fc"]})";

TEST(FrontendTest, GraphFormNamesTensorsAndInfersShapes) {
  Graph g = parse_model_json(kGraph, "g.json");
  ASSERT_EQ(g.nodes.size(), 8u);  // r1 fuses into c1
  EXPECT_EQ(g.nodes[0].activation, Activation::kRelu);
  const Node& sum = g.nodes[2];
  EXPECT_EQ(sum.kind, OpKind::kAdd);
  EXPECT_EQ(g.tensors[sum.inputs[0]].name, "c2");
  EXPECT_EQ(g.tensors[sum.inputs[1]].name, "x");
  EXPECT_EQ(sum.out, (Shape3{8, 8, 16}));
  EXPECT_EQ(g.nodes[4].kind, OpKind::kConcat);
  EXPECT_EQ(g.nodes[4].out, (Shape3{8, 8, 24}));
  EXPECT_EQ(g.nodes[5].out, (Shape3{1, 1, 24}));
  EXPECT_EQ(g.nodes[5].kernel_h, 8u);
  EXPECT_EQ(g.nodes[6].kind, OpKind::kReshape);
  EXPECT_EQ(g.nodes[7].gemm_k(), 24u);
  EXPECT_EQ(g.nodes[7].gemm_m(), 2u);
  // x feeds c1, the add and the side branch.
  EXPECT_EQ(g.tensors[g.inputs[0]].consumers, (std::vector<std::uint32_t>{0, 2, 3}));
  EXPECT_EQ(g.outputs, std::vector<TensorId>{g.nodes[7].output});
  std::uint64_t macs = 0;
  for (const Node& n : g.nodes) macs += n.macs();
  EXPECT_EQ(macs, 2u * 64 * (144 * 16 * 2 + 16 * 8) + 2u * 24 * 10);
}

// rewrite_nodes, the scaffold of the LSTM and transpose expansions: a replaced node's last new
// node takes its name and tensor, so readers and outputs need no rewiring; only the other new
// names may clash with a tensor.
TEST(GraphRewrite, LastNewNodeTakesTheReplacedNodesNameAndTensor) {
  const std::string text = R"({"inputs": [{"name": "x", "shape": [2, 4, 8]}], "nodes": [
      {"name": "a", "op": "sigmoid", "inputs": ["x"]},
      {"name": "b", "op": "tanh", "inputs": ["a"]}], "outputs": ["a", "b"]})";
  const auto act = [](const std::string& name, Activation f, TensorId in) {
    Node n;
    n.name = name;
    n.kind = OpKind::kActivation;
    n.activation = f;
    n.inputs = {in};
    return n;
  };
  // a = sigmoid(x) becomes a/one = relu6(x), then a = gelu(a/one) under the temporary name `b`.
  const auto rewrite = [&](Graph& g, const std::string& first) {
    rewrite_nodes(
        g, [](const Node& n) { return n.name == "a"; },
        [&](const Node& n, GraphRewrite& rw) {
          EXPECT_EQ(rw.next_node(), 0u);
          rw.add(act("b", Activation::kGelu, rw.add(act(first, Activation::kRelu6, n.inputs[0]))));
        });
  };
  Graph g = parse_model_json(text, "m.json");
  const TensorId a = g.nodes[0].output;
  rewrite(g, "a/one");
  ASSERT_EQ(g.nodes.size(), 3u);
  EXPECT_EQ(g.nodes[0].name, "a/one");
  EXPECT_EQ(g.nodes[1].name, "a");
  EXPECT_EQ(g.nodes[1].activation, Activation::kGelu);
  EXPECT_EQ(g.nodes[1].output, a);
  EXPECT_EQ(g.tensors[a].producer, 1);
  EXPECT_EQ(g.tensors[a].consumers, std::vector<std::uint32_t>{2});
  EXPECT_EQ(g.nodes[2].inputs, std::vector<TensorId>{a});
  EXPECT_EQ(g.tensors[g.nodes[2].output].producer, 2);
  EXPECT_EQ(g.tensors.size(), 4u);  // x, a, b and a/one
  EXPECT_EQ(g.tensors[g.nodes[0].output].name, "a/one");
  EXPECT_EQ(g.nodes[0].out, (Shape3{2, 4, 8}));  // inferred again
  EXPECT_EQ(g.outputs, (std::vector<TensorId>{a, g.nodes[2].output}));
  Graph clash = parse_model_json(text, "m.json");
  expect_error([&] { rewrite(clash, "x"); },
               {"m.json: node 0 'a' (activation): its step 'x' clashes with a tensor of that name"});
}

std::string graph_with(const std::string& nodes, const std::string& outputs = R"(["y"])") {
  return R"({"inputs": [{"name": "x", "shape": [4, 4, 8]}], "nodes": [)" + nodes +
         R"(], "outputs": )" + outputs + "}";
}

TEST(FrontendTest, BadGraphsNameTheNode) {
  const std::string conv = R"("op": "conv2d", "out_channels": 8, "kernel": 1)";
  expect_json_error(graph_with(R"({"name": "y", "op": "gru", "inputs": ["x"]})"),
                    {"m.json", "node 0 'y'", "unknown op", "gru", "concat", "softmax"});
  expect_json_error(graph_with(R"({"name": "y", )" + conv + R"(, "inputs": ["z"]},
                                  {"name": "z", )" + conv + R"(, "inputs": ["x"]})",
                               R"(["y"])"),
                    {"node 0 'y'", "'z' is used before it is produced"});
  expect_json_error(graph_with(R"({"name": "y", )" + conv + R"(, "inputs": ["z"]},
                                  {"name": "z", )" + conv + R"(, "inputs": ["y"]})"),
                    {"node 0 'y'", "cycle"});
  expect_json_error(graph_with(R"({"name": "y", )" + conv + R"(, "inputs": ["y"]})"),
                    {"node 0 'y'", "cycle"});
  expect_json_error(graph_with(R"({"name": "y", )" + conv + R"(, "inputs": ["q"]})"),
                    {"node 0 'y'", "missing input 'q'"});
  expect_json_error(graph_with(R"({"name": "a", "op": "maxpool2d", "kernel": 2, "inputs": ["x"]},
                                  {"name": "y", "op": "add", "inputs": ["a", "x"]})"),
                    {"node 1 'y' (add)", "shape mismatch", "2x2x8", "4x4x8"});
  expect_json_error(graph_with(R"({"name": "y", "op": "add", "inputs": ["x"]})"),
                    {"node 0 'y' (add)", "takes 2 inputs, got 1"});
  expect_json_error(graph_with(R"({"name": "y", "op": "concat", "inputs": ["x"]})"),
                    {"node 0 'y' (concat)", "two or more"});
  expect_json_error(graph_with(R"({"name": "a", )" + conv + R"(, "inputs": ["x"]},
                                  {"name": "y", )" + conv + R"(, "inputs": ["x"]})"),
                    {"node 0 'a'", "never used"});
  expect_json_error(graph_with(R"({"name": "y", )" + conv + R"(, "inputs": ["x"]})", R"(["q"])"),
                    {"'outputs'", "'q'"});
  expect_json_error(graph_with(R"({"name": "y", "op": "reshape", "shape": [3, 3, 3],
                                   "inputs": ["x"]})"),
                    {"node 0 'y' (reshape)", "shape mismatch", "4x4x8"});
  expect_json_error(graph_with(R"({"name": "y", )" + conv + R"(, "inputs": ["x"], "input": [1, 1, 1]})"),
                    {"node 0 'y'", "unknown key 'input'"});
  expect_json_error(graph_with(R"({"name": "y", )" + conv + R"(})"),
                    {"node 0 'y'", "missing required key 'inputs'"});
  expect_json_error(graph_with(R"({"name": "a", )" + conv + R"(, "inputs": ["x"]},
                                  {"name": "r", "op": "relu", "inputs": ["a"]},
                                  {"name": "y", "op": "add", "inputs": ["a", "r"]})"),
                    {"node 1 'r'", "also reads"});
  expect_json_error(R"({"inputs": [{"name": "x", "shape": [4, 4, 8]},
                                   {"name": "u", "shape": [4, 4, 8]}],
                        "nodes": [{"name": "y", "op": "conv2d", "out_channels": 8, "kernel": 1,
                                   "inputs": ["x"]}], "outputs": ["y"]})",
                    {"graph input 'u' is never used"});
  // add and concat need names to refer to, so the chain form does not take them.
  expect_json_error(R"({"input": [4, 4, 8], "layers": [{"type": "add"}]})",
                    {"layer 0", "graph form"});
}

// The vector ops parse in both forms: standalone activations set the node's activation, every
// activation fuses into GEMMs, softmax takes its mask.
TEST(FrontendTest, VectorOps) {
  const Graph g = parse_model_json(
      graph_with(R"({"name": "c", "op": "conv2d", "out_channels": 8, "kernel": 1,
                     "inputs": ["x"], "activation": "gelu"},
                    {"name": "s", "op": "sigmoid", "inputs": ["c"]},
                    {"name": "m", "op": "mul", "inputs": ["s", "x"], "activation": "tanh"},
                    {"name": "y", "op": "softmax", "inputs": ["m"], "causal": true,
                     "mask_offset": -2})"),
      "m.json");
  ASSERT_EQ(g.nodes.size(), 4u);
  EXPECT_EQ(g.nodes[0].activation, Activation::kGelu);
  EXPECT_EQ(g.nodes[1].kind, OpKind::kActivation);
  EXPECT_EQ(g.nodes[1].activation, Activation::kSigmoid);
  EXPECT_EQ(g.nodes[2].kind, OpKind::kMul);
  EXPECT_EQ(g.nodes[2].activation, Activation::kTanh);
  EXPECT_EQ(g.nodes[3].kind, OpKind::kSoftmax);
  EXPECT_TRUE(g.nodes[3].causal);
  EXPECT_EQ(g.nodes[3].mask_offset, -2);
  EXPECT_EQ(g.nodes[3].out, (Shape3{4, 4, 8}));
  const Graph chain = parse_model_json(R"({"input": [1, 1, 16], "layers": [
      {"type": "dense", "units": 10, "activation": "silu"}, {"type": "relu6"},
      {"type": "softmax", "name": "p"}]})",
                                       "m.json");
  ASSERT_EQ(chain.nodes.size(), 3u);
  EXPECT_EQ(chain.nodes[0].activation, Activation::kSilu);
  EXPECT_EQ(chain.nodes[1].activation, Activation::kRelu6);
  EXPECT_EQ(chain.nodes[2].kind, OpKind::kSoftmax);
  EXPECT_FALSE(chain.nodes[2].causal);
}

TEST(FrontendTest, BadVectorOpAttributesNameTheNode) {
  expect_json_error(graph_with(R"({"name": "y", "op": "softmax", "inputs": ["x"], "causal": 1})"),
                    {"m.json", "node 0 'y'", "'causal'", "true or false"});
  expect_json_error(graph_with(R"({"name": "y", "op": "softmax", "inputs": ["x"],
                                   "mask_offset": 1})"),
                    {"node 0 'y'", "'mask_offset'", "needs \"causal\": true"});
  expect_json_error(graph_with(R"({"name": "y", "op": "softmax", "inputs": ["x"],
                                   "causal": true, "mask_offset": 0.5})"),
                    {"node 0 'y'", "'mask_offset'", "integer"});
  expect_json_error(graph_with(R"({"name": "y", "op": "softmax", "inputs": ["x"], "axis": 1})"),
                    {"node 0 'y'", "unknown key 'axis'", "causal, heads, inputs, mask_offset"});
  expect_json_error(graph_with(R"({"name": "y", "op": "gelu", "inputs": ["x"],
                                   "activation": "relu"})"),
                    {"node 0 'y'", "unknown key 'activation'"});
  expect_json_error(graph_with(R"({"name": "y", "op": "mul", "inputs": ["x"]})"),
                    {"node 0 'y' (mul)", "takes 2 inputs, got 1"});
  expect_json_error(graph_with(R"({"name": "a", "op": "maxpool2d", "kernel": 2, "inputs": ["x"]},
                                  {"name": "y", "op": "mul", "inputs": ["a", "x"]})"),
                    {"node 1 'y' (mul)", "shape mismatch"});
  expect_json_error(graph_with(R"({"name": "y", "op": "add", "inputs": ["x", "x"],
                                   "activation": "sigmoid"})"),
                    {"node 0 'y' (add)", "'activation'", "sigmoid on an int8 add"});
  // A softmax over 8 channels on a 4 x 4 array takes 2 UB rows per pixel: staging one pixel
  // takes 2 slots x 2 rows = 4 rows for the input and as many for the output, 8 > the 4 rows
  // of 4 int8 elements in 16 bytes.
  Config config;
  config.array.rows = config.array.cols = 4;
  config.ub.capacity_bytes = 16;
  expect_error([&] {
    compile(parse_model_json(graph_with(R"({"name": "y", "op": "softmax", "inputs": ["x"]})"),
                             "m.json"),
            config);
  },
               {"m.json: node 0 'y' (softmax)", "needs 8 unified-buffer rows to stage one pixel",
                "(2 rows of 4 channels)", "ub.capacity_bytes >= 32"});
  expect_json_error(R"({"input": [4, 4, 8], "layers": [{"type": "mul"}]})",
                    {"layer 0", "graph form"});
  for (const char* eps : {"0", "-1e-5", "2", "\"small\"", "1e-50"}) {
    expect_json_error(graph_with(std::string(R"({"name": "y", "op": "layernorm", "inputs": ["x"],
                                                 "epsilon": )") + eps + "}"),
                      {"node 0 'y'", "'epsilon'"});
  }
}

// Limits on model values and input: one-line errors, no crash, no huge echo.
TEST(FrontendLimits, DeepNestingIsOneLineError) {
  expect_json_error("{\"layers\": " + std::string(100000, '[') + std::string(100000, ']') + "}",
                    {"m.json", "nesting deeper than 64 levels under key 'layers'"});
}

TEST(FrontendLimits, NumberOverflowNamesLineAndKey) {
  expect_json_error("{\"layers\": [\n{\"type\": \"matmul\", \"m\": 1e999, \"k\": 1, \"n\": 1}]}",
                    {"m.json", "line 2, key 'layers.m': number 1e999 is out of range"});
}

// The docs reject fractional numbers for integers, not integral ones written with a point.
TEST(FrontendLimits, IntegralNumbersAreIntegers) {
  const Graph g = parse_model_json(
      R"({"batch": 2.0, "layers": [{"type": "matmul", "m": 8.0, "k": 1e2, "n": 16}]})", "m.json");
  EXPECT_EQ(g.batch, 2u);
  EXPECT_EQ(g.nodes[0].gemm_k(), 100u);
  EXPECT_EQ(g.nodes[0].gemm_m(), 8u);
  expect_json_error(R"({"layers": [{"type": "matmul", "m": 1e300, "k": 1, "n": 1}]})",
                    {"key 'm'", "[1, 16777216]"});
}

TEST(FrontendLimits, PaddingAtMostTheKernel) {
  const std::string conv = R"({"input": [8, 8, 8], "layers": [{"type": "conv2d", "name": "c",
                               "out_channels": 8, "kernel": 3, "padding": )";
  EXPECT_EQ(parse_model_json(conv + "3}]}", "m.json").nodes[0].out, (Shape3{12, 12, 8}));
  // A huge padding once ran timing-only compiles into bad_alloc after a minute and a half.
  expect_json_error(conv + "16000000}]}",
                    {"node 0 'c'", "key 'padding': 16000000 is out of range (allowed 0..3"});
}

TEST(FrontendLimits, PoolPaddingAtMostHalfTheWindowAndMaxOverNonNegativeInputs) {
  const std::string pool = R"({"input": [8, 8, 4], "layers": [
      {"type": "conv2d", "name": "c", "out_channels": 4, "kernel": 1, "activation": "relu"},
      {"type": "maxpool2d", "name": "p", "kernel": 3, "stride": 2, "padding": )";
  EXPECT_EQ(parse_model_json(pool + "1}]}", "m.json").nodes[1].out, (Shape3{4, 4, 4}));
  expect_json_error(pool + "2}]}",
                    {"node 1 'p'", "key 'padding': 2 is out of range (allowed 0..1"});
  // Zeros stand in for -inf only when nothing is negative: not after a plain conv.
  const std::string signed_pool = R"({"input": [8, 8, 4], "layers": [
      {"type": "conv2d", "name": "c", "out_channels": 4, "kernel": 1},
      {"type": "maxpool2d", "name": "p", "kernel": 3, "stride": 2, "padding": 1}]})";
  expect_json_error(signed_pool, {"node 1 'p'", "must be non-negative", "'c'"});
  // Average pooling counts the zeros (count_include_pad), whatever the input's sign.
  const std::string avg = R"({"input": [8, 8, 4], "layers": [
      {"type": "avgpool2d", "name": "p", "kernel": 3, "stride": 1, "padding": 1}]})";
  EXPECT_EQ(parse_model_json(avg, "m.json").nodes[0].out, (Shape3{8, 8, 4}));
}

TEST(FrontendLimits, TensorsHaveAtMost4GElements) {
  expect_json_error(R"({"input": [65536, 65536, 2], "layers": [{"type": "flatten"}]})",
                    {"m.json: graph input: tensor 'input' of 1 x 65536x65536x2 has more than "
                     "4294967296 elements"});
  expect_json_error(R"({"input": [16384, 16384, 1], "layers": [{"type": "conv2d", "name": "c",
                        "out_channels": 32, "kernel": 1}]})",
                    {"node 0 'c'", "tensor 'c' of 1 x 16384x16384x32 has more than"});
}

TEST(FrontendLimits, LongNamesAreNotEchoedWhole) {
  const std::string name(100000, 'n');
  try {
    parse_model_json(R"({"layers": [{"type": "matmul", "name": ")" + name + R"(", "m": 0, "k": 1, "n": 1}]})",
                     "m.json");
    ADD_FAILURE() << "no CompileError";
  } catch (const CompileError& e) {
    EXPECT_LT(std::string(e.what()).size(), 200u);
  }
}

TEST(FrontendLimits, ByteOrderMarkIsAcceptedInJsonAndCsv) {
  const std::string dir = temp_path("files") + "/";  // this test's own directory
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "bom.json") << "\xEF\xBB\xBF{\"layers\": [{\"type\": \"matmul\", \"m\": 1, "
                                     "\"k\": 2, \"n\": 3}]}";
  EXPECT_EQ(load_model(dir + "bom.json").nodes[0].gemm_n(), 3u);
  std::ofstream(dir + "bom.csv") << "\xEF\xBB\xBFLayer, M, N, K,\nG, 4, 5, 6,\n";
  EXPECT_EQ(load_model(dir + "bom.csv").nodes[0].gemm_k(), 6u);
}

TEST(FrontendLimits, FilesLargerThan16MiBAreRefused) {
  const std::string path = temp_path("big.json");
  std::ofstream(path) << std::string((16 << 20) + 1, ' ');
  expect_error([&] { load_model(path); }, {"big.json", "too large: 16777217 bytes"});
}

}  // namespace
// Dilation spreads the taps: extent (k - 1) * d + 1. Groups split the channels: K per output
// is kh * kw * C / groups, so MACs count only the block-diagonal weights.
TEST(FrontendTest, DilationGroupsAndConv1dShapes) {
  const Graph g = parse_model_json(R"({"batch": 2, "input": [16, 15, 12], "layers": [
      {"name": "dil", "type": "conv2d", "out_channels": 12, "kernel": 3, "dilation": [2, 3],
       "padding": 1},
      {"name": "dw", "type": "conv2d", "out_channels": 24, "kernel": 3, "stride": 2,
       "groups": 12},
      {"name": "grp", "type": "conv2d", "out_channels": 8, "kernel": 1, "groups": 4}]})",
                                   "m.json");
  // dil: extent 5 x 7; OH = (16 + 2 - 5) / 1 + 1 = 14, OW = (15 + 2 - 7) / 1 + 1 = 11.
  EXPECT_EQ(g.nodes[0].out, (Shape3{14, 11, 12}));
  EXPECT_EQ(g.nodes[0].gemm_k(), 3u * 3 * 12);
  // dw: depthwise with multiplier 2: OH = (14 - 3) / 2 + 1 = 6, OW = (11 - 3) / 2 + 1 = 5.
  EXPECT_EQ(g.nodes[1].out, (Shape3{6, 5, 24}));
  EXPECT_EQ(g.nodes[1].gemm_k(), 9u);
  EXPECT_EQ(g.nodes[1].macs(), 2u * 6 * 5 * 9 * 24);
  EXPECT_EQ(g.nodes[2].gemm_k(), 24u / 4);
  // conv1d: a 1 x k kernel over 1 x L x C, padded along L only: L_out = (50 + 2 * 2 - 9) / 1 + 1
  // = 46 with dilation 2 (extent 9).
  const Graph s = parse_model_json(R"({"input": [1, 50, 8], "layers": [
      {"name": "c1", "type": "conv1d", "out_channels": 16, "kernel": 5, "dilation": 2,
       "padding": 2, "groups": 2}]})",
                                   "s.json");
  EXPECT_EQ(s.nodes[0].kind, OpKind::kConv2d);
  EXPECT_EQ(s.nodes[0].kernel_h, 1u);
  EXPECT_EQ(s.nodes[0].kernel_w, 5u);
  EXPECT_EQ(s.nodes[0].padding_h, 0u);
  EXPECT_EQ(s.nodes[0].out, (Shape3{1, 46, 16}));
  EXPECT_EQ(s.nodes[0].gemm_k(), 5u * 4);
}

TEST(FrontendTest, BadConvAttributesNameTheNode) {
  const std::string conv = R"({"input": [6, 6, 12], "layers": [{"type": "conv2d", "name": "c",
                               "out_channels": 8, "kernel": 3, )";
  expect_json_error(conv + R"("dilation": 0}]})", {"m.json", "'c'", "key 'dilation'", "got 0"});
  expect_json_error(conv + R"("dilation": [1, 2, 3]}]})", {"'c'", "key 'dilation'", "[h, w]"});
  expect_json_error(conv + R"("groups": 0}]})", {"'c'", "key 'groups'", "got 0"});
  expect_json_error(conv + R"("groups": 5}]})",
                    {"node 0 'c' (conv2d)", "key 'groups': 5 does not divide the 12 input "
                     "channels and the 8 output channels"});
  expect_json_error(conv + R"("groups": 3}]})", {"node 0 'c'", "key 'groups': 3 does not divide"});
  // Extent (3 - 1) * 3 + 1 = 7 > 6 + 2 * 0.
  expect_json_error(conv + R"("dilation": 3}]})",
                    {"node 0 'c'", "key 'kernel': 3x3 dilated to 7x7 is larger than the padded "
                     "input 6x6"});
  expect_json_error(R"({"input": [1, 6, 4], "layers": [{"type": "conv1d", "name": "s",
                        "out_channels": 4, "kernel": [1, 3]}]})",
                    {"'s'", "key 'kernel'", "expected an integer"});
  // Graph form: the same checks in shape inference.
  expect_json_error(graph_with(R"({"name": "y", "op": "conv2d", "out_channels": 6, "kernel": 3,
                                   "groups": 4, "inputs": ["x"]})"),
                    {"node 0 'y' (conv2d)", "key 'groups': 4 does not divide"});
}

// Every boolean and positive-number attribute is read alike: the range in the message, and a
// value fp32 rounds to 0 refused.
TEST(FrontendTest, BooleanAndPositiveNumberAttributesShareTheirChecks) {
  const std::string matmul = R"({"name": "y", "op": "matmul", "inputs": ["x", "x"], )";
  expect_json_error(graph_with(matmul + R"("transpose_b": "yes"})"),
                    {"node 0 'y'", "key 'transpose_b': expected true or false, got the string"});
  expect_json_error(graph_with(matmul + R"("scale": 2e6})"),
                    {"node 0 'y'", "key 'scale': expected a number in (0, 1000000], got"});
  expect_json_error(graph_with(matmul + R"("scale": 1e-50})"),
                    {"node 0 'y'", "key 'scale': underflows fp32: 1e-50"});
  expect_json_error(
      graph_with(R"({"name": "y", "op": "rmsnorm", "inputs": ["x"], "epsilon": 1.5})"),
      {"node 0 'y'", "key 'epsilon': expected a number in (0, 1], got 1.5"});
}

}  // namespace tpu
