// ONNX front end: hand-built graphs (weight layouts, folding, fusion, shape arithmetic), its
// one-line errors, and torchvision's exports against our model JSON.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "sim/config/config.h"
#include "tests/cli_helpers.h"
#include "tools/compiler/data.h"
#include "tools/compiler/frontend.h"
#include "tools/compiler/onnx_frontend.h"
#include "tools/run/child.h"
#include "tools/run/run.h"

namespace tpu {
namespace {

const std::string kModels = std::string(TPUSIM_SOURCE_DIR) + "/models/";

// A model under construction: float activations, opset 14 (PyTorch 1.13's default).
struct Model {
  onnx::ModelProto m;
  Model() {
    m.set_ir_version(7);
    m.add_opset_import()->set_version(14);
  }
  onnx::GraphProto& g() { return *m.mutable_graph(); }
  void input(const std::string& name, std::vector<std::int64_t> dims) {
    auto* vi = g().add_input();
    vi->set_name(name);
    auto* tt = vi->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(onnx::TensorProto::FLOAT);
    for (auto d : dims) tt->mutable_shape()->add_dim()->set_dim_value(d);
  }
  void output(const std::string& name) { g().add_output()->set_name(name); }
  void init(const std::string& name, std::vector<std::int64_t> dims, std::vector<float> v) {
    auto* t = g().add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (auto d : dims) t->add_dims(d);
    for (float x : v) t->add_float_data(x);
  }
  void init64(const std::string& name, std::vector<std::int64_t> v) {
    auto* t = g().add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    t->add_dims(std::int64_t(v.size()));
    for (auto x : v) t->add_int64_data(x);
  }
  onnx::NodeProto& node(const std::string& op, std::vector<std::string> in, const std::string& out) {
    auto* n = g().add_node();
    n->set_op_type(op);
    n->set_name(out);
    for (auto& i : in) n->add_input(i);
    n->add_output(out);
    return *n;
  }
  static void ints(onnx::NodeProto& n, const std::string& key, std::vector<std::int64_t> v) {
    auto* a = n.add_attribute();
    a->set_name(key);
    a->set_type(onnx::AttributeProto::INTS);
    for (auto x : v) a->add_ints(x);
  }
  static void integer(onnx::NodeProto& n, const std::string& key, std::int64_t v) {
    auto* a = n.add_attribute();
    a->set_name(key);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  Graph parse() const { return parse_onnx(m.SerializeAsString(), "t.onnx"); }
};

void expect_error(const Model& model, const std::vector<std::string>& fragments) {
  try {
    model.parse();
    ADD_FAILURE() << "no CompileError";
  } catch (const CompileError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    for (const auto& f : fragments) EXPECT_NE(msg.find(f), std::string::npos) << msg << " / " << f;
  }
}

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
  md.node("Conv", {"x", "w"}, "conv");
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
  EXPECT_EQ(g.outputs, std::vector<TensorId>{g.nodes[0].output});
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
  // Anything else reading a step of the pattern leaves it unfolded: Div is not supported.
  expect_error(gelu_model(true), {"node 'div' (Div)", "unsupported operator"});
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
  const Graph g = md.parse();
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

TEST(OnnxFrontend, TinyCnnWithItsWeightsPassesTheCheck) {
  RunOptions options;
  options.check = true;
  const tpu::Run run = run_model(default_config(), load_model(kModels + "onnx/tiny_cnn.onnx"),
                            "tiny_cnn", options);
  ASSERT_TRUE(run.check.has_value());
  EXPECT_TRUE(run.check->passed);
}

// Total MACs and simulated cycles (timing only, default config) of `path`, in a child.
std::string macs_and_cycles(const std::string& path) {
  const ChildOutcome out = run_in_child([&] {
    const Graph g = load_model(path);
    std::uint64_t macs = 0;
    for (const Node& n : g.nodes) macs += n.macs();
    RunOptions options;
    options.timing_only = true;
    const Run run = run_model(default_config(), g, path, options);
    return std::to_string(g.nodes.size()) + " nodes, " + std::to_string(macs) + " MACs, " +
           std::to_string(run.result.total_cycles) + " cycles";
  });
  return out.ok ? out.output : "error: " + out.error;
}

// torchvision's exports match our hand-written JSON layer for layer: the exporter folds batch
// norm into the convs as our JSON does, and Flatten becomes the JSON's flatten. MobileNetV2
// differs only in relu6 (torchvision) where the JSON has relu: same cycles.
TEST(OnnxFrontend, TorchvisionResNet50MatchesOurJson) {
  const std::string onnx = macs_and_cycles(kModels + "onnx/resnet50.onnx");
  EXPECT_EQ(onnx, macs_and_cycles(kModels + "resnet50.json"));
  EXPECT_NE(onnx.find("4089184256 MACs"), std::string::npos) << onnx;  // the JSON's 4.09 G
}

TEST(OnnxFrontend, TorchvisionMobileNetV2MatchesOurJson) {
  const std::string onnx = macs_and_cycles(kModels + "onnx/mobilenet_v2.onnx");
  EXPECT_EQ(onnx, macs_and_cycles(kModels + "mobilenet_v2.json"));
  EXPECT_NE(onnx.find("300774272 MACs"), std::string::npos) << onnx;
}

}  // namespace
}  // namespace tpu
