// ONNX front end: hand-built graphs (weight layouts, folding, fusion, shape arithmetic), its
// one-line errors, and torchvision's exports against our model JSON.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "sim/config/config.h"
#include "sim/isa/semantics.h"
#include "tests/cli_helpers.h"
#include "tests/onnx_model.h"
#include "tools/compiler/data.h"
#include "tools/compiler/frontend.h"
#include "tools/compiler/onnx_frontend.h"
#include "tools/run/child.h"
#include "tools/run/run.h"
#include "tests/test_paths.h"

namespace tpu {
namespace {

const std::string kModels = tpu::test_paths::source_dir() + "/models/";

using test_onnx::expect_error;
using test_onnx::Model;

TEST(OnnxFrontend, ConvWeightsBecomeKByNInTapChannelOrder) {
  Model md;
  md.input("x", {1, 2, 5, 5});
  // W[m][c][ky][kx] = 1000 m + 100 c + 10 ky + kx: 3 filters of 2 channels, 2 x 2 taps.
  std::vector<float> w;
  for (int m = 0; m < 3; ++m)
    for (int c = 0; c < 2; ++c)
      for (int ky = 0; ky < 2; ++ky)
        for (int kx = 0; kx < 2; ++kx) w.push_back(float(1000 * m + 100 * c + 10 * ky + kx));
  md.init("w", {3, 2, 2, 2}, w);
  auto& conv = md.node("Conv", {"x", "w"}, "conv");
  Model::ints(conv, "pads", {1, 1, 1, 1});
  Model::ints(conv, "strides", {2, 2});
  md.output("conv");
  const Graph g = md.parse();
  ASSERT_EQ(g.nodes.size(), 1u);
  const Node& n = g.nodes[0];
  EXPECT_EQ(n.kind, OpKind::kConv2d);
  EXPECT_EQ(n.padding, 1u);
  EXPECT_EQ(n.stride, 2u);
  EXPECT_EQ(g.tensors[n.inputs[0]].shape, (Shape3{5, 5, 2}));  // NCHW 1x2x5x5 -> HWC
  EXPECT_EQ(n.out, (Shape3{3, 3, 3}));                         // (5 + 2 - 2) / 2 + 1 = 3
  ASSERT_EQ(n.weights.size(), 24u);
  // Row (ky, kx, c), column m: row ((1 * 2 + 0) * 2 + 1) = 5 is ky 1, kx 0, c 1.
  EXPECT_EQ(n.weights[5 * 3 + 2], 2110.0f);
  EXPECT_EQ(n.weights[0 * 3 + 1], 1000.0f);
  EXPECT_EQ(n.weights[7 * 3 + 0], 111.0f);  // ky 1, kx 1, c 1
}

TEST(OnnxFrontend, BatchNormFoldsAndReluFusesIntoTheConv) {
  Model md;
  md.input("x", {1, 1, 4, 4});
  md.init("w", {2, 1, 1, 1}, {5, 7});
  md.init("s", {2}, {2, 3});
  md.init("b", {2}, {0.5, 0.5});
  md.init("mean", {2}, {0.1, 0.2});
  md.init("var", {2}, {0, 8});
  md.init("cb", {2}, {1, -1});
  md.node("Conv", {"x", "w", "cb"}, "conv");
  auto& bn = md.node("BatchNormalization", {"conv", "s", "b", "mean", "var"}, "bn");
  auto* eps = bn.add_attribute();
  eps->set_name("epsilon");
  eps->set_type(onnx::AttributeProto::FLOAT);
  eps->set_f(1.0f);
  md.node("Relu", {"bn"}, "relu");
  md.init("lo", {}, {0});
  md.init("hi", {}, {6});
  md.node("Clip", {"relu", "lo", "hi"}, "clip");  // PyTorch's relu6: Relu then Clip(0, 6)
  md.output("clip");
  const Graph g = md.parse();
  ASSERT_EQ(g.nodes.size(), 1u);
  EXPECT_EQ(g.nodes[0].activation, Activation::kRelu6);
  // w * s / sqrt(var + eps): 5 * 2 / sqrt(1) = 10, 7 * 3 / sqrt(9) = 7.
  EXPECT_EQ(g.nodes[0].weights, (std::vector<float>{10, 7}));
  // The bias (conv bias - mean) * s + B with s = 2, 1: (1 - 0.1) * 2 + 0.5 = 2.3,
  // (-1 - 0.2) * 1 + 0.5 = -0.7.
  ASSERT_TRUE(g.nodes[0].bias);
  ASSERT_EQ(g.nodes[0].bias_values.size(), 2u);
  EXPECT_FLOAT_EQ(g.nodes[0].bias_values[0], 2.3f);
  EXPECT_FLOAT_EQ(g.nodes[0].bias_values[1], -0.7f);
  EXPECT_EQ(g.outputs, std::vector<TensorId>{g.nodes[0].output});
}

TEST(OnnxFrontend, GemmAndMatmulAddBiasesBecomeTheGemmsBias) {
  Model md;
  md.input("x", {1, 3});
  md.init("w", {2, 3}, {1, 2, 3, 4, 5, 6});
  md.init("c", {2}, {0.5, -1});
  auto& gemm = md.node("Gemm", {"x", "w", "c"}, "gemm");
  Model::integer(gemm, "transB", 1);
  auto* beta = gemm.add_attribute();
  beta->set_name("beta");
  beta->set_type(onnx::AttributeProto::FLOAT);
  beta->set_f(2.0f);
  md.init("w2", {2, 4}, std::vector<float>(8, 1));
  md.node("MatMul", {"gemm", "w2"}, "mm");
  md.init("b2", {4}, {1, 2, 3, 4});
  md.node("Add", {"b2", "mm"}, "out");  // the constant first, as exporters may write it
  md.output("out");
  const Graph g = md.parse();
  ASSERT_EQ(g.nodes.size(), 2u);
  EXPECT_EQ(g.nodes[0].bias_values, (std::vector<float>{1, -2}));  // beta x C
  EXPECT_EQ(g.nodes[1].bias_values, (std::vector<float>{1, 2, 3, 4}));
  // A constant added to a GEMM output something else also reads is no bias.
  Model two = md;
  two.output("mm");
  expect_error(two, {"node 'out' (Add)", "whose output nothing else reads"});
  // A bias of the wrong length.
  Model bad;
  bad.input("x", {1, 3});
  bad.init("w", {3, 2}, {1, 2, 3, 4, 5, 6});
  bad.init("c", {3}, {1, 2, 3});
  bad.node("Gemm", {"x", "w", "c"}, "gemm");
  bad.output("gemm");
  expect_error(bad, {"node 'gemm' (Gemm)", "one value per output channel (2), got 3"});
}

// PyTorch 1.13's GELU: Div(x, sqrt 2) -> Erf -> Add(1) -> Mul(x) -> Mul(0.5), the constants
// as Constant nodes placed after the Div.
Model gelu_model(bool div_read_twice) {
  Model md;
  md.input("x", {1, 2});
  md.init("w", {2, 3}, {1, 2, 3, 4, 5, 6});
  md.node("MatMul", {"x", "w"}, "mm");
  md.init("sqrt2", {}, {1.41421353816986083984375f});
  md.node("Div", {"mm", "sqrt2"}, "div");
  auto constant = [&](const std::string& name, float v) {
    auto& c = md.node("Constant", {}, name);
    auto* a = c.add_attribute();
    a->set_name("value");
    a->set_type(onnx::AttributeProto::TENSOR);
    a->mutable_t()->set_data_type(onnx::TensorProto::FLOAT);
    a->mutable_t()->add_float_data(v);
  };
  md.node("Erf", {"div"}, "erf");
  constant("one", 1);
  md.node("Add", {"erf", "one"}, "add");
  md.node("Mul", {"mm", "add"}, "mul");
  constant("half", 0.5);
  md.node("Mul", {"mul", "half"}, "gelu");
  md.output("gelu");
  if (div_read_twice) md.output("div");
  return md;
}

TEST(OnnxFrontend, ErfGeluFusesIntoTheMatmul) {
  const Graph g = gelu_model(false).parse();
  ASSERT_EQ(g.nodes.size(), 1u);
  EXPECT_EQ(g.nodes[0].kind, OpKind::kDense);
  EXPECT_EQ(g.nodes[0].activation, Activation::kGelu);
  // Anything else reading a step of the pattern leaves it unfolded: the Div by a scalar waits
  // for a MatMul of two tensors to take it as its scale, and Erf alone is not supported.
  expect_error(gelu_model(true), {"node 'erf' (Erf)", "unsupported operator"});
}

TEST(OnnxFrontend, GemmAfterFlattenPermutesRowsFromChwToHwc) {
  Model md;
  md.input("x", {1, 2, 2, 2});
  md.node("Flatten", {"x"}, "flat");
  md.init("fc", {1, 8}, {0, 1, 2, 3, 4, 5, 6, 7});  // transB: B[n][k] = k
  auto& gemm = md.node("Gemm", {"flat", "fc"}, "gemm");
  Model::integer(gemm, "transB", 1);
  md.output("gemm");
  const Graph g = md.parse();
  ASSERT_EQ(g.nodes.size(), 2u);
  EXPECT_EQ(g.nodes[0].kind, OpKind::kReshape);
  EXPECT_EQ(g.nodes[1].kind, OpKind::kDense);
  // Our row r is pixel r / 2, channel r % 2; ONNX's is channel * 4 + pixel.
  EXPECT_EQ(g.nodes[1].weights, (std::vector<float>{0, 4, 1, 5, 2, 6, 3, 7}));
}

TEST(OnnxFrontend, ShapeArithmeticFoldsIntoAReshape) {
  Model md;
  md.input("x", {1, 4, 3, 3});
  md.node("Shape", {"x"}, "shape");
  md.init64("zero", {0});
  md.node("Gather", {"shape", "zero"}, "n");
  md.init64("axes", {0});
  md.node("Unsqueeze", {"n", "axes"}, "n1");
  md.init64("minus1", {-1});
  auto& cat = md.node("Concat", {"n1", "minus1"}, "target");
  Model::integer(cat, "axis", 0);
  md.node("Reshape", {"x", "target"}, "flat");
  md.init("fc", {36, 5}, std::vector<float>(180, 0.5f));
  md.node("MatMul", {"flat", "fc"}, "mm");
  md.output("mm");
  const Graph g = md.parse();
  ASSERT_EQ(g.nodes.size(), 2u);
  EXPECT_EQ(g.nodes[0].kind, OpKind::kReshape);
  EXPECT_EQ(g.nodes[0].out, (Shape3{1, 1, 36}));
  EXPECT_EQ(g.nodes[1].kind, OpKind::kDense);
  EXPECT_EQ(g.nodes[1].units, 5u);
}

TEST(OnnxFrontend, GivenWeightsQuantiseSymmetricallyPerTensor) {
  Model md;
  md.input("x", {1, 1, 2, 2});
  md.init("w", {3, 1, 1, 1}, {-0.5, 0.25, 1.0});
  md.node("Conv", {"x", "w"}, "conv");
  md.output("conv");
  Graph g = md.parse();
  EXPECT_EQ(g.dtype, DataType::kBf16);  // a float graph's default
  set_dtype(g, DataType::kInt8);        // the user's choice (--dtype int8)
  // Scale max |w| / 127 = 1 / 127: -0.5 -> -63.5 -> -64 (away from zero), 0.25 -> 31.75 -> 32.
  const GraphData d = generate_data(g, g.seed);
  EXPECT_EQ(d.weights[0].i8, (std::vector<std::int8_t>{-64, 32, 127}));
}

TEST(OnnxFrontend, ErrorsAreOneLine) {
  {
    Model md;
    md.input("x", {1, 1, 4, 4});
    md.node("Resize", {"x"}, "up");
    md.output("up");
    expect_error(md, {"t.onnx", "node 'up' (Resize)", "unsupported operator", "supported: Conv"});
  }
  {
    Model md;
    md.input("x", {1, 1, 4, 4});
    md.init("w", {1, 1, 3, 3}, std::vector<float>(9, 1));
    auto& conv = md.node("Conv", {"x", "w"}, "conv");
    Model::ints(conv, "pads", {0, 0, 1, 1});
    md.output("conv");
    expect_error(md, {"node 'conv' (Conv)", "pads must be symmetric", "[0, 0, 1, 1]"});
  }
  {
    Model md;  // the target shape computed at run time
    md.input("x", {1, 4, 1, 1});
    md.node("Relu", {"x"}, "r");
    md.node("Reshape", {"x", "r"}, "flat");
    md.output("flat");
    expect_error(md, {"node 'flat' (Reshape)", "must be a constant"});
  }
  {
    Model md;
    md.input("x", {1, 1, 4, 4});
    md.init("w", {1, 1, 3, 3}, std::vector<float>(9, 1));
    auto& conv = md.node("Conv", {"x", "w"}, "conv");
    Model::ints(conv, "strides", {0, 0});
    md.output("conv");
    expect_error(md, {"node 'conv' (Conv)", "attribute 'strides': 0 is out of range (allowed 1.."});
  }
  {
    Model md;  // axis 1 of N x C x H x W with H x W > 1: not our channel softmax
    md.input("x", {1, 3, 2, 2});
    auto& sm = md.node("Softmax", {"x"}, "sm");
    Model::integer(sm, "axis", 1);
    md.output("sm");
    expect_error(md, {"node 'sm' (Softmax)", "axis 1 of N x C x 1 x 1"});
  }
  {
    Model md;
    md.input("x", {1, 1, 4, 4});
    md.node("Relu", {"x"}, "r");
    md.node("Softplus", {"r"}, "s");
    md.output("s");
    expect_error(md, {"node 's' (Softplus)", "unsupported"});
  }
}

TEST(OnnxFrontend, TruncatedAndGarbageFilesAreOneLineErrors) {
  std::ifstream in(kModels + "onnx/tiny_cnn.onnx", std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(bytes.size(), 1000u);
  // A directory of this build tree's own, so checkouts testing at once never share the files.
  const std::filesystem::path dir = test_shell::fresh_dir("onnx");
  const std::string truncated = (dir / "tpusim_truncated.onnx").string();
  const std::string garbage = (dir / "tpusim_garbage.onnx").string();
  std::ofstream(truncated, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  std::ofstream(garbage, std::ios::binary) << std::string("\x08\xff\xff\xff\xff\xff\xff\x0f junk");
  for (const std::string& path : {truncated, garbage}) {
    try {
      load_model(path);
      ADD_FAILURE() << path << ": no CompileError";
    } catch (const CompileError& e) {
      const std::string msg = e.what();
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
      EXPECT_NE(msg.find(path + ": not a valid ONNX model"), std::string::npos) << msg;
    }
  }
  std::remove(truncated.c_str());
  std::remove(garbage.c_str());
}

TEST(OnnxFrontend, LoadModelDispatchesOnContent) {
  const std::filesystem::path dir = test_shell::fresh_dir("onnx");
  const std::string path = (dir / "tpusim_tiny_cnn.bin").string();
  std::filesystem::copy_file(kModels + "onnx/tiny_cnn.onnx", path,
                             std::filesystem::copy_options::overwrite_existing);
  const Graph g = load_model(path);
  std::remove(path.c_str());
  EXPECT_EQ(g.name, "tpusim_tiny_cnn");
  // conv1 (+bn, relu), pool, dw (+relu6), pw, add (+relu), maxpool, flatten, head.
  ASSERT_EQ(g.nodes.size(), 8u);
  EXPECT_EQ(g.nodes[0].activation, Activation::kRelu);
  EXPECT_EQ(g.nodes[2].groups, 8u);
  EXPECT_EQ(g.nodes[2].activation, Activation::kRelu6);
  EXPECT_EQ(g.nodes[4].kind, OpKind::kAdd);
  EXPECT_EQ(g.nodes[4].activation, Activation::kRelu);
  for (const Node& n : g.nodes) EXPECT_EQ(n.weights.size(), n.weight_count()) << n.name;
}

// In its default bf16 and in int8 (--dtype int8).
TEST(OnnxFrontend, TinyCnnWithItsWeightsPassesTheCheck) {
  for (DataType t : {DataType::kBf16, DataType::kInt8}) {
    const ChildOutcome out = run_in_child([&] {
      Graph g = load_model(kModels + "onnx/tiny_cnn.onnx");
      if (g.dtype != DataType::kBf16) return std::string("default dtype not bf16");
      set_dtype(g, t);
      RunOptions options;
      options.check = true;
      const tpu::Run run = run_model(default_config(), g, "tiny_cnn", options);
      return std::string(run.check && run.check->passed ? "pass" : "FAIL");
    });
    EXPECT_EQ(out.output, "pass") << to_string(t) << ": " << out.error;
  }
}

// PyTorch 1.13's nn.LayerNorm at its default opset 14: ReduceMean, Sub, Pow(2), ReduceMean,
// Add(eps), Sqrt, Div, Mul(gamma), Add(beta).
Model layer_norm_model(float exponent) {
  Model md;
  md.input("x", {1, 2, 3});
  auto mean = [&](const std::string& in, const std::string& out) {
    Model::ints(md.node("ReduceMean", {in}, out), "axes", {-1});
  };
  mean("x", "mean");
  md.node("Sub", {"x", "mean"}, "d");
  md.init("two", {}, {exponent});
  md.node("Pow", {"d", "two"}, "sq");
  mean("sq", "var");
  md.init("eps", {}, {1e-5f});
  md.node("Add", {"var", "eps"}, "ve");
  md.node("Sqrt", {"ve"}, "sd");
  md.node("Div", {"d", "sd"}, "n");
  md.init("gamma", {3}, {1, 2, 3});
  md.node("Mul", {"n", "gamma"}, "g");
  md.init("beta", {3}, {4, 5, 6});
  md.node("Add", {"g", "beta"}, "y");
  md.output("y");
  return md;
}

TEST(OnnxFrontend, DecomposedLayerNormFusesIntoOne) {
  const Graph g = layer_norm_model(2).parse();
  ASSERT_EQ(g.nodes.size(), 1u);
  EXPECT_EQ(g.nodes[0].kind, OpKind::kLayerNorm);
  EXPECT_EQ(g.nodes[0].name, "y");
  EXPECT_FLOAT_EQ(g.nodes[0].epsilon, 1e-5f);
  EXPECT_EQ(g.nodes[0].weights, (std::vector<float>{1, 2, 3, 4, 5, 6}));  // gamma, beta
  // Another exponent is no variance: the pattern stays unfolded and ReduceMean is unsupported.
  expect_error(layer_norm_model(3), {"node 'mean' (ReduceMean)", "unsupported operator"});
}

TEST(OnnxFrontend, OldOpsetsAndUnboundDimensionsAreOneLineErrors) {
  Model old;
  old.m.mutable_opset_import(0)->set_version(11);
  old.input("x", {1, 4});
  old.node("Relu", {"x"}, "r");
  old.output("r");
  expect_error(old, {"t.onnx", "opset 11 is too old", "opset_version >= 13"});
  Model dynamic;
  dynamic.input("x", {1, 4});
  auto* dim = dynamic.g().mutable_input(0)->mutable_type()->mutable_tensor_type()
                  ->mutable_shape()->mutable_dim(0);
  dim->set_dim_param("batch");  // export with dynamic_axes: a name, no size
  dynamic.node("Relu", {"x"}, "r");
  dynamic.output("r");
  expect_error(dynamic, {"graph input 'x'", "fixed size", "without dynamic_axes"});
}

// One attention head as PyTorch exports it: Split of q, k, v along channels, k transposed
// into the scores' MatMul (transpose_b), Softmax, MatMul by v, a Slice of channels.
TEST(OnnxFrontend, SplitSliceAndTwoTensorMatmulsMapOntoOurOps) {
  Model md;
  md.input("x", {1, 4, 6});
  md.init64("parts", {2, 2, 2});
  auto& split = md.node("Split", {"x", "parts"}, "q");
  split.add_output("k");
  split.add_output("v");
  Model::integer(split, "axis", -1);
  auto& tr = md.node("Transpose", {"k"}, "kt");
  Model::ints(tr, "perm", {0, 2, 1});
  md.node("MatMul", {"q", "kt"}, "s");
  md.node("Softmax", {"s"}, "p");
  md.node("MatMul", {"p", "v"}, "c");
  md.init64("start", {1});
  md.init64("end", {INT64_MAX});  // PyTorch's c[:, :, 1:]
  md.init64("axis", {2});
  md.node("Slice", {"c", "start", "end", "axis"}, "y");
  md.output("y");
  const Graph g = md.parse();
  ASSERT_EQ(g.nodes.size(), 7u);  // three slices, scores, softmax, context, slice
  EXPECT_EQ(g.nodes[1].name, "q/1");
  EXPECT_EQ(g.nodes[1].c0, 2u);
  EXPECT_EQ(g.nodes[1].c1, 4u);
  EXPECT_EQ(g.nodes[3].kind, OpKind::kTensorMatmul);
  EXPECT_TRUE(g.nodes[3].transpose_b);
  EXPECT_EQ(g.nodes[3].out, (Shape3{1, 4, 4}));  // 4 queries x 4 keys
  EXPECT_FALSE(g.nodes[5].transpose_b);
  EXPECT_EQ(g.nodes[5].out, (Shape3{1, 4, 2}));
  EXPECT_EQ(g.nodes[6].kind, OpKind::kSlice);
  EXPECT_EQ(g.nodes[6].out, (Shape3{1, 4, 1}));  // channels [1, 2)
  // The transposed k read by anything but a MatMul's second operand moves data: a `transpose`
  // node, which the MXU path (an identity matmul reading k transposed) carries out.
  Model other = md;
  other.node("Relu", {"kt"}, "r");
  other.output("r");
  const Graph t = other.parse();
  const std::int64_t moved = t.find_tensor("kt/transpose");
  ASSERT_GE(moved, 0);
  const Node& m = t.nodes[std::size_t(t.tensors[std::size_t(moved)].producer)];
  EXPECT_EQ(m.kind, OpKind::kTensorMatmul);
  EXPECT_TRUE(m.identity_a);
  EXPECT_EQ(m.out, (Shape3{1, 2, 4}));  // k (4 x 2) transposed
}

// A batch-first LSTM as PyTorch exports it: Transpose to T x 1 x F, LSTM with zero initial
// state from Expand, Squeeze, Transpose back, Gather of the last step, Gemm.
Model lstm_model(bool read_cell_state) {
  Model md;
  const int T = 3, F = 2, H = 2;
  md.input("x", {1, T, F});
  auto& tr = md.node("Transpose", {"x"}, "xt");
  Model::ints(tr, "perm", {1, 0, 2});
  // W[gate g of ONNX's i, o, f, c][u][f] = 100 g + 10 u + f; R likewise + 1000.
  std::vector<float> w, r, b;
  for (int g = 0; g < 4; ++g)
    for (int u = 0; u < H; ++u) {
      for (int f = 0; f < F; ++f) w.push_back(float(100 * g + 10 * u + f));
      for (int j = 0; j < H; ++j) r.push_back(float(1000 + 100 * g + 10 * u + j));
    }
  for (int k = 0; k < 8 * H; ++k) b.push_back(float(k));  // Wb then Rb
  md.init("w", {1, 4 * H, F}, w);
  md.init("r", {1, 4 * H, H}, r);
  md.init("b", {1, 8 * H}, b);
  md.init("zero", {}, {0});
  md.init64("state", {1, 1, H});
  md.node("Expand", {"zero", "state"}, "h0");
  auto& l = md.node("LSTM", {"xt", "w", "r", "b", "", "h0", "h0"}, "y");
  l.add_output("y_h");
  l.add_output("y_c");
  Model::integer(l, "hidden_size", H);
  md.init64("axis1", {1});
  md.node("Squeeze", {"y", "axis1"}, "ys");
  auto& back = md.node("Transpose", {"ys"}, "yt");
  Model::ints(back, "perm", {1, 0, 2});
  auto* last = md.g().add_initializer();  // a scalar: y[:, -1, :]
  last->set_name("last");
  last->set_data_type(onnx::TensorProto::INT64);
  last->add_int64_data(-1);
  auto& gather = md.node("Gather", {"yt", "last"}, "step");
  Model::integer(gather, "axis", 1);
  md.init("fc", {H, 3}, {1, 2, 3, 4, 5, 6});
  md.node("MatMul", {"step", "fc"}, "logits");
  md.output("logits");
  if (read_cell_state) md.output("y_c");
  return md;
}

TEST(OnnxFrontend, LstmBecomesOurLstmWithGatesReorderedAndBiasesSummed) {
  const Graph g = lstm_model(false).parse();
  // The expansion: L/xw holds W (F x 4U, our gates i, f, g, o), step 1's dense U, and the
  // last step's slice feeds the dense head.
  const Node* xw = nullptr;
  const Node* hw = nullptr;
  for (const Node& n : g.nodes) {
    if (n.name == "y/xw") xw = &n;
    if (n.name == "y/t1/hw") hw = &n;
  }
  ASSERT_TRUE(xw && hw);
  const int H = 2;
  // Our column k * H + u is ONNX gate {i, o, f, c}[{0, 2, 3, 1}[k]] unit u: row f of W is
  // 100 g + 10 u + f. Our f gate (k 1) is ONNX's gate 2: column 1 * 2 + 1 (u 1), row f 1:
  // 100 * 2 + 10 + 1 = 211; our o (k 3) is ONNX's 1: column 6 (u 0), f 0: 100.
  EXPECT_EQ(xw->weights.size(), std::size_t(2 * 4 * H));
  EXPECT_EQ(xw->weights[1 * 4 * H + 3], 211.0f);
  EXPECT_EQ(xw->weights[0 * 4 * H + 6], 100.0f);
  // U row j 1 of our g gate (k 2, ONNX's c, gate 3), u 0: 1000 + 300 + 0 + 1 = 1301.
  EXPECT_EQ(hw->weights[1 * 4 * H + 4], 1301.0f);
  // Bias: Wb + Rb of ONNX's index, b[k] = k: our g, u 1 is ONNX index 3 * 2 + 1 = 7: 7 + 15.
  ASSERT_TRUE(xw->bias);
  EXPECT_EQ(xw->bias_values[2 * H + 1], 22.0f);
  EXPECT_EQ(g.nodes.back().kind, OpKind::kDense);
  EXPECT_EQ(g.nodes.back().in, (Shape3{1, 1, H}));
  expect_error(lstm_model(true), {"node 'y' (LSTM)", "Y_c is not supported"});
}

TEST(OnnxFrontend, TransposeOfFourAxesThatMovesDataIsAnError) {
  Model md;
  md.input("x", {1, 2, 3, 4});
  auto& tr = md.node("Transpose", {"x"}, "t");
  Model::ints(tr, "perm", {0, 2, 3, 1});  // NCHW -> NHWC
  md.node("Relu", {"t"}, "r");
  md.output("r");
  expect_error(md, {"node 't' (Transpose)", "axes of size 1"});
  // A transpose of the last two axes as a graph output: a `transpose` node of 1 x 3 x 4.
  Model out;
  out.input("x", {1, 3, 4});
  Model::ints(out.node("Transpose", {"x"}, "t"), "perm", {0, 2, 1});
  out.node("Relu", {"x"}, "r");
  out.output("r");
  out.output("t");
  const Graph g = out.parse();
  const Tensor& t = g.tensors[g.outputs[1]];
  EXPECT_EQ(t.shape, (Shape3{1, 4, 3}));
  EXPECT_EQ(g.nodes[std::size_t(t.producer)].kind, OpKind::kTensorMatmul);
}

// A data-moving Transpose read by a Relu and a Reshape, and as a graph output: `transpose`
// nodes that pass --check in bf16 and int8.
TEST(OnnxFrontend, TransposeThatMovesDataPassesTheCheck) {
  Model md;
  md.input("x", {1, 5, 12});
  Model::ints(md.node("Transpose", {"x"}, "t"), "perm", {0, 2, 1});  // 1 x 12 x 5
  md.node("Relu", {"t"}, "r");
  md.init64("shape", {1, 60});
  md.node("Reshape", {"t", "shape"}, "f");
  md.output("r");
  md.output("f");
  md.output("t");
  for (DataType type : {DataType::kBf16, DataType::kInt8}) {
    const ChildOutcome out = run_in_child([&] {
      Graph g = md.parse();
      set_dtype(g, type);
      RunOptions options;
      options.check = true;
      const tpu::Run run = run_model(default_config(), g, "t.onnx", options);
      return std::string(run.check && run.check->passed ? "pass" : "FAIL");
    });
    EXPECT_EQ(out.output, "pass") << to_string(type) << ": " << out.error;
  }
}

// PyTorch's exports with their weights (tools/onnx/export_models.py), an nn.LSTM classifier,
// an attention head and a TransformerEncoder: bit exact in int8, within the bf16 tolerance in
// bf16.
TEST(OnnxFrontend, LstmAndAttentionExportsWithTheirWeightsPassTheCheck) {
  for (const char* model : {"lstm_classifier", "attention_head", "transformer_encoder"}) {
    for (DataType t : {DataType::kInt8, DataType::kBf16}) {
      const ChildOutcome out = run_in_child([&] {
        Graph g = load_model(kModels + "onnx/" + model + ".onnx");
        g.dtype = t;
        RunOptions options;
        options.check = true;
        const tpu::Run run = run_model(default_config(), g, model, options);
        return std::string(run.check && run.check->passed ? "pass " : "FAIL ") +
               std::to_string(run.check ? run.check->compared : 0);
      });
      // Every node's output that reaches HBM, the model's output among them.
      EXPECT_TRUE(out.ok && out.output.rfind("pass ", 0) == 0)
          << model << ", " << to_string(t) << ": " << out.output << out.error;
    }
  }
}

const Node& node_named(const Graph& g, const std::string& name) {
  for (const Node& n : g.nodes) {
    if (n.name == name) return n;
  }
  throw std::runtime_error("no node " + name);
}

// The last layer's bf16 output in the run's final HBM image, in the element order of its view.
std::vector<float> last_output_bf16(const tpu::Run& run) {
  const TensorView& v = run.program.layers.back().output;
  std::vector<float> out;
  for (std::uint32_t i2 = 0; i2 < v.count2; ++i2) {
    for (std::uint32_t i1 = 0; i1 < v.count1; ++i1) {
      for (std::uint32_t i0 = 0; i0 < v.count0; ++i0) {
        std::uint16_t bits;
        std::memcpy(&bits, run.result.hbm_final.data() + v.base + i2 * v.stride2 + i1 * v.stride1 +
                               2 * i0, 2);
        out.push_back(bf16_to_fp32(bits));
      }
    }
  }
  return out;
}

// "pass" or "FAIL" (the run's --check), the worst |got - want| over the largest |want|, and
// how many values were compared (the last layer's view, which must hold want.size()).
std::string check_and_fp32_error(const tpu::Run& run, const std::vector<float>& want) {
  const std::vector<float> got = last_output_bf16(run);
  float largest = 0, worst = 0;
  for (std::size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
    largest = std::max(largest, std::fabs(want[i]));
    worst = std::max(worst, std::fabs(got[i] - want[i]));
  }
  return std::string(run.check && run.check->passed ? "pass" : "FAIL") + " " +
         std::to_string(worst / largest) + " " + std::to_string(got.size());
}

// x W + b per row of x (K values each), W the import's K x N.
std::vector<std::vector<float>> linear_fp32(const std::vector<std::vector<float>>& x,
                                            const Node& n) {
  const std::size_t N = n.bias_values.size();
  std::vector<std::vector<float>> y(x.size(), n.bias_values);
  for (std::size_t r = 0; r < x.size(); ++r)
    for (std::size_t k = 0; k < x[r].size(); ++k)
      for (std::size_t j = 0; j < N; ++j) y[r][j] += x[r][k] * n.weights[k * N + j];
  return y;
}

// A child's check_and_fp32_error line ("pass <worst error / largest |output|> <values>"): the
// check passed, `values` outputs were compared, and the error is within the documented 2^-5.
void expect_within_fp32_tolerance(const ChildOutcome& out, const char* model, const char* what,
                                  std::size_t values) {
  ASSERT_TRUE(out.ok) << out.error;
  EXPECT_EQ(out.output.substr(0, 4), "pass") << out.output;
  EXPECT_EQ(out.output.substr(out.output.rfind(' ') + 1), std::to_string(values)) << out.output;
  EXPECT_LE(std::stod(out.output.substr(5)), 1.0 / 32) << out.output;
  std::printf("%s bf16 vs fp32 (worst error / largest |%s|, values): %s\n", model, what,
              out.output.c_str());
}

// The float graph's bf16 run against an fp32 evaluation of the graph: the LSTM classifier
// computed here in plain fp32 loops from the export's unrounded weights and biases, on the
// run's generated input (exact in bf16). The machine rounds weights and every tensor to bf16
// (2^-9 relative each); over 6 recurrent steps and the head the logits stay within the
// documented tolerance of 2^-5 of the largest |logit| (models/README.md, "ONNX").
TEST(OnnxFrontend, LstmClassifierInBf16MatchesAnFp32EvaluationWithinTolerance) {
  const ChildOutcome out = run_in_child([&] {
    Graph g = load_model(kModels + "onnx/lstm_classifier.onnx");
    g.dtype = DataType::kBf16;
    const Node& xw = node_named(g, "/lstm/LSTM/xw");
    const std::vector<float>& W = xw.weights;  // F x 4U
    const std::vector<float>& U = node_named(g, "/lstm/LSTM/t1/hw").weights;  // U x 4U
    const std::size_t T = 6, F = 8, H = 16;
    const std::vector<float> x = generate_data(g, g.seed).inputs[g.inputs[0]].f32;
    auto sigmoid = [](float v) { return 1 / (1 + std::exp(-v)); };
    std::vector<float> h(H, 0), c(H, 0);
    for (std::size_t t = 0; t < T; ++t) {
      std::vector<float> z(xw.bias_values);
      for (std::size_t j = 0; j < 4 * H; ++j) {
        for (std::size_t f = 0; f < F; ++f) z[j] += x[t * F + f] * W[f * 4 * H + j];
        for (std::size_t u = 0; u < H; ++u) z[j] += h[u] * U[u * 4 * H + j];
      }
      for (std::size_t u = 0; u < H; ++u) {  // gates i, f, g, o
        c[u] = sigmoid(z[H + u]) * c[u] + sigmoid(z[u]) * std::tanh(z[2 * H + u]);
        h[u] = sigmoid(z[3 * H + u]) * std::tanh(c[u]);
      }
    }
    RunOptions options;
    options.check = true;
    const std::vector<float> logits = linear_fp32({h}, g.nodes.back())[0];
    return check_and_fp32_error(run_model(default_config(), g, "lstm_classifier", options),
                                logits);
  });
  expect_within_fp32_tolerance(out, "lstm_classifier", "logit", 4);
}

// nn.TransformerEncoder (2 post-norm layers, d_model D = 32, H = 4 heads of d = 8, feed-forward
// F = 64, S = 16 tokens): each head split (Reshape, Transpose) is a view, the Div by sqrt(d)
// the scale of Q K^T, and the batched MatMuls our two-tensor matmul with `heads`; only the
// softmax reads the scores as one head per row (a reshape view on either side).
TEST(OnnxFrontend, TransformerEncoderHeadsBecomeOurMultiHeadMatmuls) {
  const Graph g = load_model(kModels + "onnx/transformer_encoder.onnx");
  std::map<std::string, int> kinds;
  std::uint64_t macs = 0;
  for (const Node& n : g.nodes) {
    ++kinds[to_string(n.kind)];
    macs += n.macs();
  }
  // Per layer: in-projection, out-projection and two FFN GEMMs (1x1 convs per token), the
  // q, k, v slices, two matmuls, softmax, two residual adds and two layer norms.
  EXPECT_EQ(kinds, (std::map<std::string, int>{{"conv2d", 8}, {"slice", 6}, {"matmul", 4},
                                               {"reshape", 4}, {"softmax", 2}, {"add", 4},
                                               {"layernorm", 4}}));
  for (const char* l : {"/layers.0", "/layers.1"}) {
    const Node& qk = node_named(g, std::string(l) + "/self_attn/MatMul_1");
    const Node& pv = node_named(g, std::string(l) + "/self_attn/MatMul_2");
    EXPECT_EQ(qk.kind, OpKind::kTensorMatmul);
    EXPECT_EQ(qk.heads, 4u);
    EXPECT_TRUE(qk.transpose_b);
    EXPECT_FLOAT_EQ(qk.scale, float(1 / std::sqrt(8.0)));
    EXPECT_EQ(qk.in, (Shape3{1, 16, 32}));  // q: the heads side by side in each token's row
    EXPECT_EQ(pv.heads, 4u);
    EXPECT_FALSE(pv.transpose_b);
    EXPECT_EQ(pv.scale, 1.0f);
    EXPECT_EQ(pv.out, (Shape3{1, 16, 32}));  // the context, read by the out-projection as is
    EXPECT_EQ(node_named(g, std::string(l) + "/self_attn/Softmax").in, (Shape3{1, 64, 16}));
    EXPECT_EQ(node_named(g, std::string(l) + "/linear1/MatMul").activation, Activation::kRelu);
  }
  // Per layer S * (D * 3D + H * S * d + H * S * d + D * D + 2 * D * F)
  //   = 16 * (3072 + 512 + 512 + 1024 + 4096) = 147,456; two layers 294,912.
  EXPECT_EQ(macs, 294912u);
  const ChildOutcome out = run_in_child([&] {
    RunOptions options;
    options.timing_only = true;
    return std::to_string(run_model(default_config(), g, "enc", options).result.total_cycles);
  });
  ASSERT_TRUE(out.ok) << out.error;
  EXPECT_GT(std::stoull(out.output), 294912u / (128 * 128));
}

// The bf16 run against an fp32 evaluation of the encoder in plain loops (x + attention, layer
// norm, x + FFN, layer norm, twice) from the export's unrounded weights, on the run's generated
// input: within the documented tolerance of 2^-5 of the largest |output|.
TEST(OnnxFrontend, TransformerEncoderInBf16MatchesAnFp32EvaluationWithinTolerance) {
  const ChildOutcome out = run_in_child([&] {
    Graph g = load_model(kModels + "onnx/transformer_encoder.onnx");
    g.dtype = DataType::kBf16;
    const std::size_t S = 16, D = 32, H = 4, d = D / H;
    using Rows = std::vector<std::vector<float>>;
    const auto add_norm = [&](const Rows& x, const Rows& y, const Node& ln) {
      Rows z(x.size());
      for (std::size_t s = 0; s < x.size(); ++s) {
        float mean = 0, var = 0;
        for (std::size_t c = 0; c < D; ++c) mean += (x[s][c] + y[s][c]) / D;
        for (std::size_t c = 0; c < D; ++c) {
          var += (x[s][c] + y[s][c] - mean) * (x[s][c] + y[s][c] - mean) / D;
        }
        for (std::size_t c = 0; c < D; ++c) {
          z[s].push_back((x[s][c] + y[s][c] - mean) / std::sqrt(var + ln.epsilon) *
                             ln.weights[c] + ln.weights[D + c]);
        }
      }
      return z;
    };
    const std::vector<float> in = generate_data(g, g.seed).inputs[g.inputs[0]].f32;
    Rows x(S);
    for (std::size_t s = 0; s < S; ++s) x[s].assign(in.begin() + s * D, in.begin() + (s + 1) * D);
    for (const std::string l : {"/layers.0", "/layers.1"}) {
      const Rows qkv = linear_fp32(x, node_named(g, l + "/self_attn/MatMul"));  // q | k | v
      Rows ctx(S, std::vector<float>(D, 0));
      for (std::size_t h = 0; h < H; ++h) {
        for (std::size_t i = 0; i < S; ++i) {
          std::vector<float> p(S);
          float top = -INFINITY, sum = 0;
          for (std::size_t j = 0; j < S; ++j) {
            p[j] = 0;
            for (std::size_t e = 0; e < d; ++e) p[j] += qkv[i][h * d + e] * qkv[j][D + h * d + e];
            p[j] /= std::sqrt(float(d));
            top = std::max(top, p[j]);
          }
          for (float& v : p) sum += (v = std::exp(v - top));
          for (std::size_t j = 0; j < S; ++j)
            for (std::size_t e = 0; e < d; ++e) ctx[i][h * d + e] += p[j] / sum * qkv[j][2 * D + h * d + e];
        }
      }
      x = add_norm(x, linear_fp32(ctx, node_named(g, l + "/self_attn/Gemm")),
                   node_named(g, l + "/norm1/Add_1"));
      Rows f = linear_fp32(x, node_named(g, l + "/linear1/MatMul"));
      for (auto& r : f)
        for (float& v : r) v = std::max(v, 0.0f);
      x = add_norm(x, linear_fp32(f, node_named(g, l + "/linear2/MatMul")),
                   node_named(g, l + "/norm2/Add_1"));
    }
    RunOptions options;
    options.check = true;
    std::vector<float> want;
    for (const auto& row : x) want.insert(want.end(), row.begin(), row.end());
    return check_and_fp32_error(run_model(default_config(), g, "transformer_encoder", options),
                                want);
  });
  expect_within_fp32_tolerance(out, "transformer_encoder", "output", 512);  // 16 x 32
}

// An H x W x C map, channels fastest (our activations' order; ONNX's NCHW transposed).
struct Hwc {
  std::uint32_t h, w, c;
  std::vector<float> v;
  float at(std::uint32_t y, std::uint32_t x, std::uint32_t ch) const {
    return v[(y * w + x) * c + ch];
  }
};

// ONNX Conv with zero padding, its weights in the import's K x N layout (row (ky, kx, c) with
// c the channel within the filter's group) and its bias; no activation.
Hwc conv_fp32(const Hwc& x, const Node& n) {
  const std::uint32_t N = std::uint32_t(n.bias_values.size()), kh = n.kernel_h, kw = n.kernel_w;
  const std::uint32_t cg = x.c / n.groups, per_group = N / n.groups, p = n.padding, s = n.stride;
  Hwc y{(x.h + 2 * p - kh) / s + 1, (x.w + 2 * p - kw) / s + 1, N, {}};
  for (std::uint32_t oy = 0; oy < y.h; ++oy) {
    for (std::uint32_t ox = 0; ox < y.w; ++ox) {
      for (std::uint32_t o = 0; o < N; ++o) {
        float acc = n.bias_values[o];
        for (std::uint32_t ky = 0; ky < kh; ++ky) {
          for (std::uint32_t kx = 0; kx < kw; ++kx) {
            const std::int64_t iy = std::int64_t(oy * s + ky) - p;
            const std::int64_t ix = std::int64_t(ox * s + kx) - p;
            if (iy < 0 || ix < 0 || iy >= x.h || ix >= x.w) continue;
            for (std::uint32_t c = 0; c < cg; ++c) {
              acc += x.at(std::uint32_t(iy), std::uint32_t(ix), o / per_group * cg + c) *
                     n.weights[((ky * kw + kx) * cg + c) * N + o];
            }
          }
        }
        y.v.push_back(acc);
      }
    }
  }
  return y;
}

// ONNX MaxPool, kernel 2, stride 2, no padding.
Hwc max_pool2_fp32(const Hwc& x) {
  Hwc y{x.h / 2, x.w / 2, x.c, {}};
  for (std::uint32_t oy = 0; oy < y.h; ++oy)
    for (std::uint32_t ox = 0; ox < y.w; ++ox)
      for (std::uint32_t c = 0; c < x.c; ++c)
        y.v.push_back(std::max({x.at(2 * oy, 2 * ox, c), x.at(2 * oy, 2 * ox + 1, c),
                                x.at(2 * oy + 1, 2 * ox, c), x.at(2 * oy + 1, 2 * ox + 1, c)}));
  return y;
}

// tiny_cnn.onnx in fp32, node by node as the export reads (the exporter folded the batch norm
// into conv1's weights and bias): Conv 3x3 + Relu, MaxPool 2, depthwise Conv 3x3 + Relu +
// Clip(0, 6), Conv 1x1, Add of the pool's output, Relu, MaxPool 2, Flatten, Gemm 10. Weights
// unrounded from the import; our maps are HWC, so the Flatten reads HWC and the Gemm's rows are
// the import's (permuted from ONNX's CHW: GemmAfterFlattenPermutesRowsFromChwToHwc). On this
// input the clip at 6 does not bind (without it the error is the same).
TEST(OnnxFrontend, TinyCnnInBf16MatchesAnFp32EvaluationWithinTolerance) {
  const ChildOutcome out = run_in_child([&] {
    Graph g = load_model(kModels + "onnx/tiny_cnn.onnx");
    g.dtype = DataType::kBf16;
    const auto relu = [](Hwc m, float top) {
      for (float& v : m.v) v = std::min(std::max(v, 0.0f), top);
      return m;
    };
    const Hwc image{16, 16, 3, generate_data(g, g.seed).inputs[g.inputs[0]].f32};
    const Hwc conv1 = relu(conv_fp32(image, node_named(g, "/conv1/Conv")), INFINITY);
    const Hwc pooled = max_pool2_fp32(conv1);
    const Hwc dw = relu(conv_fp32(pooled, node_named(g, "/dw/Conv")), 6);
    Hwc sum = conv_fp32(dw, node_named(g, "/pw/Conv"));
    for (std::size_t i = 0; i < sum.v.size(); ++i) sum.v[i] += pooled.v[i];
    const Hwc flat = max_pool2_fp32(relu(sum, INFINITY));  // 4 x 4 x 8
    const std::vector<float> logits = linear_fp32({flat.v}, node_named(g, "/head/Gemm"))[0];
    RunOptions options;
    options.check = true;
    return check_and_fp32_error(run_model(default_config(), g, "tiny_cnn", options), logits);
  });
  expect_within_fp32_tolerance(out, "tiny_cnn", "logit", 10);
}

// attention_head.onnx in fp32 as the export reads: MatMul + Add (qkv, 8 tokens x 48), Split
// into q, k, v of 16 channels, softmax(q k^T) over the keys (no 1/sqrt(d): the module has
// none), times v, MatMul + Add (out), Slice of channels [4, 12).
TEST(OnnxFrontend, AttentionHeadInBf16MatchesAnFp32EvaluationWithinTolerance) {
  const ChildOutcome out = run_in_child([&] {
    Graph g = load_model(kModels + "onnx/attention_head.onnx");
    g.dtype = DataType::kBf16;
    const std::size_t S = 8, D = 16;
    const std::vector<float> in = generate_data(g, g.seed).inputs[g.inputs[0]].f32;
    std::vector<std::vector<float>> x(S);
    for (std::size_t s = 0; s < S; ++s) x[s].assign(in.begin() + s * D, in.begin() + (s + 1) * D);
    const auto qkv = linear_fp32(x, node_named(g, "/qkv/MatMul"));  // q | k | v
    std::vector<std::vector<float>> ctx(S, std::vector<float>(D, 0));
    for (std::size_t i = 0; i < S; ++i) {
      std::vector<float> p(S, 0);
      float top = -INFINITY, sum = 0;
      for (std::size_t j = 0; j < S; ++j) {
        for (std::size_t e = 0; e < D; ++e) p[j] += qkv[i][e] * qkv[j][D + e];
        top = std::max(top, p[j]);
      }
      for (float& v : p) sum += (v = std::exp(v - top));
      for (std::size_t j = 0; j < S; ++j)
        for (std::size_t e = 0; e < D; ++e) ctx[i][e] += p[j] / sum * qkv[j][2 * D + e];
    }
    std::vector<float> want;
    for (const auto& row : linear_fp32(ctx, node_named(g, "/out/MatMul")))
      want.insert(want.end(), row.begin() + 4, row.begin() + 12);
    RunOptions options;
    options.check = true;
    return check_and_fp32_error(run_model(default_config(), g, "attention_head", options), want);
  });
  expect_within_fp32_tolerance(out, "attention_head", "output", 64);  // 8 tokens x 8
}

// What the importer does not map, each exported by PyTorch (tools/onnx/export_models.py): one
// line naming the node.
TEST(OnnxFrontend, UnsupportedEncoderVariantsAreOneLineErrorsNamingTheNode) {
  const std::pair<const char*, const char*> cases[] = {
      {"encoder_mask", "node '/layer/self_attn/Add_2' (Add): adding a constant to a MatMul of "
                       "two tensors (an attention mask) is not supported"},
      {"encoder_training", "node '/self_attn/Dropout' (Dropout): dropout in training mode is "
                           "not supported"},
      {"encoder_batch2", "node '/self_attn/Transpose' (Transpose): transposes that move data "
                         "are supported for batch 1 (the graph's batch is 2)"},
  };
  for (const auto& [model, want] : cases) {
    try {
      load_model(kModels + "onnx/unsupported/" + model + ".onnx");
      ADD_FAILURE() << model << ": no CompileError";
    } catch (const CompileError& e) {
      const std::string msg = e.what();
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
      EXPECT_NE(msg.find(want), std::string::npos) << msg;
    }
  }
}

// Hand-built views the attention handlers refuse: a transposed first operand, heads that
// disagree, a softmax across heads, and a scaled tensor read by anything but a MatMul.
TEST(OnnxFrontend, AttentionViewsOutsideThePatternAreOneLineErrors) {
  const auto model = [](std::vector<std::int64_t> perm_q, std::vector<std::int64_t> perm_k,
                        bool softmax_first_axis, bool relu_of_scaled) {
    Model md;
    md.input("x", {1, 8, 12});
    md.init64("heads", {8, 3, 4});
    md.node("Reshape", {"x", "heads"}, "r");               // [8, 3, 4]
    Model::ints(md.node("Transpose", {"r"}, "q"), "perm", perm_q);  // [3, 8, 4]
    Model::ints(md.node("Transpose", {"r"}, "k"), "perm", perm_k);  // [3, 4, 8]
    md.init("two", {}, {2.0f});
    md.node("Div", {"q", "two"}, "qs");
    if (relu_of_scaled) {
      md.node("Relu", {"qs"}, "bad");
      md.output("bad");
      return md;
    }
    md.node("MatMul", {"qs", "k"}, "s");
    auto& sm = md.node("Softmax", {"s"}, "p");
    if (softmax_first_axis) Model::integer(sm, "axis", 0);
    Model::ints(md.node("Transpose", {"p"}, "out"), "perm", {1, 0, 2});  // in order again
    md.output("out");
    return md;
  };
  // The pattern itself imports: [3, 8, 4] x [3, 4, 8] as 3 heads, scale 1/2.
  const Graph ok = model({1, 0, 2}, {1, 2, 0}, false, false).parse();
  EXPECT_EQ(ok.nodes[0].kind, OpKind::kTensorMatmul);
  EXPECT_EQ(ok.nodes[0].heads, 3u);
  EXPECT_EQ(ok.nodes[0].scale, 0.5f);
  expect_error(model({1, 2, 0}, {1, 0, 2}, false, false), {"node 's' (MatMul)", "operand 'qs'"});
  expect_error(model({1, 0, 2}, {1, 2, 0}, true, false), {"node 'p' (Softmax)", "last axis"});
  expect_error(model({0, 1, 2}, {1, 2, 0}, false, true),
               {"node 'bad' (Relu)", "scaled by a constant"});
}

// Total MACs and simulated cycles (timing only, default config) of `path`, in a child.
// `biased`: every GEMM of the model given a bias, as torchvision's exports have (each conv the
// shift of its folded batch norm, the classifier its own).
std::string macs_and_cycles(const std::string& path, DataType dtype, bool biased = false) {
  const ChildOutcome out = run_in_child([&] {
    Graph g = load_model(path);
    set_dtype(g, dtype);
    std::uint64_t macs = 0;
    for (Node& n : g.nodes) {
      macs += n.macs();
      if (biased && is_gemm(n.kind)) n.bias = true;
    }
    RunOptions options;
    options.timing_only = true;
    const Run run = run_model(default_config(), g, path, options);
    return std::to_string(g.nodes.size()) + " nodes, " + std::to_string(macs) + " MACs, " +
           std::to_string(run.result.total_cycles) + " cycles";
  });
  return out.ok ? out.output : "error: " + out.error;
}

// torchvision's exports match our hand-written JSON layer for layer, compared at one dtype
// (the import's default is bf16, the JSON's int8): the exporter folds batch norm into the convs
// as our JSON does, and Flatten becomes the JSON's flatten; the exports' biases cost their
// loads and ACTIVATE reads (ResNet-50 in int8: 677,051 cycles against the JSON's 672,034
// without biases). MobileNetV2 differs only in relu6 (torchvision) where the JSON has relu:
// same cycles.
TEST(OnnxFrontend, TorchvisionResNet50MatchesOurJson) {
  for (DataType t : {DataType::kInt8, DataType::kBf16}) {
    const std::string onnx = macs_and_cycles(kModels + "onnx/resnet50.onnx", t);
    EXPECT_EQ(onnx, macs_and_cycles(kModels + "resnet50.json", t, true)) << to_string(t);
    EXPECT_NE(onnx, macs_and_cycles(kModels + "resnet50.json", t));  // the biases are not free
    EXPECT_NE(onnx.find("4089184256 MACs"), std::string::npos) << onnx;  // the JSON's 4.09 G
    std::printf("resnet50 %s: %s\n", to_string(t), onnx.c_str());
  }
}

// BERT-base's encoder exported from nn.TransformerEncoder (structure only) has the MACs of
// models/bert_base.json; its cycles differ (the export projects q, k, v in one GEMM and slices
// them apart with three DMA copies per layer, and every GEMM has a bias): see models/README.md.
TEST(OnnxFrontend, BertBaseEncoderExportHasTheMacsOfOurJson) {
  std::uint64_t onnx = 0, json = 0;
  for (const Node& n : load_model(kModels + "onnx/bert_base_encoder.onnx").nodes) {
    onnx += n.macs();
  }
  for (const Node& n : load_model(kModels + "bert_base.json").nodes) json += n.macs();
  EXPECT_EQ(onnx, 11173625856u);
  EXPECT_EQ(onnx, json);
}

TEST(OnnxFrontend, TorchvisionMobileNetV2MatchesOurJson) {
  for (DataType t : {DataType::kInt8, DataType::kBf16}) {
    const std::string onnx = macs_and_cycles(kModels + "onnx/mobilenet_v2.onnx", t);
    EXPECT_EQ(onnx, macs_and_cycles(kModels + "mobilenet_v2.json", t, true)) << to_string(t);
    EXPECT_NE(onnx.find("300774272 MACs"), std::string::npos) << onnx;
    std::printf("mobilenet_v2 %s: %s\n", to_string(t), onnx.c_str());
  }
}

}  // namespace
}  // namespace tpu
