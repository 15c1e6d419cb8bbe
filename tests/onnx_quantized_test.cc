// Quantised ONNX graphs (QDQ and QOperator formats): the committed exports import as int8 GEMMs
// with the graph's own scales and pass --check bit-exact against an int8 evaluation of the ONNX
// graph written here apart from the compiler; malformed quantised graphs are one-line errors.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "tests/onnx_model.h"
#include "tools/compiler/data.h"
#include "tools/compiler/frontend.h"
#include "tools/compiler/onnx_frontend.h"
#include "tools/run/child.h"
#include "tools/run/run.h"
#include "tests/test_paths.h"

namespace tpu {
namespace {

const std::string kModels = tpu::test_paths::source_dir() + "/models/onnx/";

// ---- An int8 evaluation of a quantised ONNX graph, straight from its nodes (NCHW) ----

// A tensor: values in the int8 domain (a uint8 tensor's 128 lower, as its zero point), or
// int32 accumulators (`acc`, real = v * scale, zero 0, relu not yet applied).
struct QTensor {
  std::vector<std::int64_t> dims;
  std::vector<std::int64_t> v;
  double scale = 1;
  std::int64_t zero = 0;
  int type = onnx::TensorProto::INT8;
  bool acc = false;
};

QTensor read_tensor(const onnx::TensorProto& t) {
  QTensor q;
  q.type = t.data_type();
  std::size_t n = 1;
  for (auto d : t.dims()) {
    q.dims.push_back(d);
    n *= std::size_t(d);
  }
  const std::string& raw = t.raw_data();
  for (std::size_t i = 0; i < n; ++i) {
    switch (t.data_type()) {
      case onnx::TensorProto::INT8:
        q.v.push_back(raw.empty() ? t.int32_data(int(i)) : std::int8_t(raw[i]));
        break;
      case onnx::TensorProto::UINT8:
        q.v.push_back((raw.empty() ? t.int32_data(int(i)) : std::uint8_t(raw[i])) - 128);
        break;
      case onnx::TensorProto::INT32: {
        std::int32_t x = 0;
        if (raw.empty()) x = t.int32_data(int(i)); else std::memcpy(&x, raw.data() + 4 * i, 4);
        q.v.push_back(x);
        break;
      }
      case onnx::TensorProto::FLOAT: {
        float x = 0;
        if (raw.empty()) x = t.float_data(int(i)); else std::memcpy(&x, raw.data() + 4 * i, 4);
        q.scale = x;  // only scalar scales are read as floats
        break;
      }
      default:
        break;
    }
  }
  return q;
}

// Requantising an accumulator by `ratio` to the output zero point, two ways: our documented
// mapping (models/README.md "Quantised ONNX graphs": multiplier / 2^shift with the largest shift
// whose multiplier stays below 2^15, the shift rounding halves up) and ONNX Runtime's (the fp32
// product rounded to nearest even).
std::int64_t requant_ours(std::int64_t acc, double ratio, std::int64_t zero) {
  int shift = 31;
  while (std::llround(ratio * std::ldexp(1.0, shift)) > 32767) --shift;
  const std::int64_t m = std::max<std::int64_t>(std::llround(ratio * std::ldexp(1.0, shift)), 1);
  std::int64_t v = acc * m;
  if (shift > 0) v = (v + (std::int64_t(1) << (shift - 1))) >> shift;
  return std::clamp<std::int64_t>(v + zero, -128, 127);
}
std::int64_t requant_ort(std::int64_t acc, double ratio, std::int64_t zero) {
  const float y = std::nearbyint(float(acc) * float(ratio));
  return std::clamp<std::int64_t>(std::int64_t(y) + zero, -128, 127);
}

// The graph output's int8 values, and how ONNX Runtime's rounding compares at every
// requantisation (on the same accumulators): values compared, differing, largest difference.
struct Evaluated {
  std::vector<std::int64_t> out;
  std::int64_t steps = 0, differ = 0, worst = 0;
};

class Evaluator {
 public:
  // `input`: the graph input's int8 values (its QuantizeLinear's output), NCHW.
  Evaluated run(const onnx::ModelProto& m, const std::vector<std::int64_t>& input) {
    std::map<std::string, QTensor> t;
    for (const auto& i : m.graph().initializer()) t[i.name()] = read_tensor(i);
    for (const auto& n : m.graph().node()) eval(n, t, input);
    ev_.out = t[m.graph().output(0).name()].v;
    return ev_;
  }

 private:
  std::int64_t requant(std::int64_t acc, double ratio, std::int64_t zero) {
    const std::int64_t ours = requant_ours(acc, ratio, zero), ort = requant_ort(acc, ratio, zero);
    ++ev_.steps;
    ev_.differ += ours != ort;
    ev_.worst = std::max<std::int64_t>(ev_.worst, std::llabs(ours - ort));
    return ours;
  }
  // The int8 result of accumulators `a` at output scale s and zero point z (a relu before).
  QTensor quantise(const QTensor& a, double s, std::int64_t z, bool relu) {
    QTensor y = a;
    y.scale = s;
    y.zero = z;
    y.acc = false;
    for (auto& x : y.v) {
      const std::int64_t units = a.acc ? x : x - a.zero;
      x = requant(relu ? std::max<std::int64_t>(units, 0) : units, a.scale / s, z);
    }
    return y;
  }
  // Conv (NCHW, square kernel, one stride and pad) or 2-D matmul on int8 values minus zero
  // points, plus an int32 bias in accumulator units.
  static QTensor gemm(const QTensor& x, const QTensor& w, const QTensor* bias, bool conv,
                      bool trans_b, std::int64_t pad, std::int64_t group) {
    QTensor a;
    a.acc = true;
    a.scale = x.scale * w.scale;
    if (!conv) {
      const std::int64_t K = x.dims[1], N = trans_b ? w.dims[0] : w.dims[1];
      a.dims = {1, N};
      for (std::int64_t n = 0; n < N; ++n) {
        std::int64_t s = bias ? bias->v[std::size_t(n)] : 0;
        for (std::int64_t k = 0; k < K; ++k) {
          s += (x.v[std::size_t(k)] - x.zero) * w.v[std::size_t(trans_b ? n * K + k : k * N + n)];
        }
        a.v.push_back(s);
      }
      return a;
    }
    const std::int64_t H = x.dims[2], W = x.dims[3];
    const std::int64_t M = w.dims[0], cg = w.dims[1], kh = w.dims[2], kw = w.dims[3];
    const std::int64_t oh = H + 2 * pad - kh + 1, ow = W + 2 * pad - kw + 1;
    a.dims = {1, M, oh, ow};
    for (std::int64_t o = 0; o < M; ++o) {
      const std::int64_t c0 = o / (M / group) * cg;
      for (std::int64_t y = 0; y < oh; ++y) {
        for (std::int64_t xx = 0; xx < ow; ++xx) {
          std::int64_t s = bias ? bias->v[std::size_t(o)] : 0;
          for (std::int64_t c = 0; c < cg; ++c) {
            for (std::int64_t ky = 0; ky < kh; ++ky) {
              for (std::int64_t kx = 0; kx < kw; ++kx) {
                const std::int64_t iy = y + ky - pad, ix = xx + kx - pad;
                // ONNX pads with the real value 0: the zero point.
                const std::int64_t v = iy < 0 || ix < 0 || iy >= H || ix >= W
                                           ? x.zero
                                           : x.v[std::size_t(((c0 + c) * H + iy) * W + ix)];
                s += (v - x.zero) * w.v[std::size_t(((o * cg + c) * kh + ky) * kw + kx)];
              }
            }
          }
          a.v.push_back(s);
        }
      }
    }
    return a;
  }
  static std::int64_t int_attr(const onnx::NodeProto& n, const std::string& k, std::int64_t d) {
    for (const auto& a : n.attribute()) {
      if (a.name() == k) return a.type() == onnx::AttributeProto::INTS ? a.ints(0) : a.i();
    }
    return d;
  }

  void eval(const onnx::NodeProto& n, std::map<std::string, QTensor>& t,
            const std::vector<std::int64_t>& input) {
    const std::string& op = n.op_type();
    auto in = [&](int i) -> QTensor& { return t.at(n.input(i)); };
    auto zero = [&](int i) { return n.input_size() > i ? in(i).v[0] : -128; };  // uint8 0
    QTensor& y = t[n.output(0)];
    if (op == "QuantizeLinear") {
      if (n.input(0) == "image") {
        y.dims = {1, 3, 16, 16};
        y.v = input;
        y.scale = in(1).scale;
        y.zero = zero(2);
      } else {
        y = quantise(in(0), in(1).scale, zero(2), relu_.count(n.input(0)) > 0);
      }
    } else if (op == "DequantizeLinear") {
      y = in(0);  // int8 values stay; their scale comes with them
      y.scale = in(1).scale;
      if (in(0).type == onnx::TensorProto::INT32) {
        const double unit = in(1).scale;  // the bias: to accumulator units at use
        y.scale = unit;
      }
    } else if (op == "Relu") {
      y = in(0);
      relu_.insert(n.output(0));
    } else if (op == "Conv" || op == "Gemm") {
      const bool conv = op == "Conv";
      QTensor bias;
      if (n.input_size() > 2) {
        bias = in(2);
        for (auto& b : bias.v) {
          b = std::llround(double(b) * bias.scale / (in(0).scale * in(1).scale));
        }
      }
      y = gemm(in(0), in(1), n.input_size() > 2 ? &bias : nullptr, conv,
               int_attr(n, "transB", 0) != 0, int_attr(n, "pads", 0), int_attr(n, "group", 1));
    } else if (op == "QLinearConv" || op == "QLinearMatMul") {
      const bool conv = op == "QLinearConv";
      QTensor x = in(0), w = in(3);
      x.scale = in(1).scale;
      w.scale = in(4).scale;
      const QTensor* bias = conv && n.input_size() > 8 ? &in(8) : nullptr;
      y = quantise(gemm(x, w, bias, conv, false, int_attr(n, "pads", 0), int_attr(n, "group", 1)),
                   in(6).scale, zero(7), false);
    } else if (op == "MaxPool") {
      const QTensor& x = in(0);
      const std::int64_t k = int_attr(n, "kernel_shape", 2), C = x.dims[1];
      const std::int64_t oh = x.dims[2] / k, ow = x.dims[3] / k;
      y = x;
      y.dims = {1, C, oh, ow};
      y.v.clear();
      for (std::int64_t c = 0; c < C; ++c) {
        for (std::int64_t r = 0; r < oh; ++r) {
          for (std::int64_t s = 0; s < ow; ++s) {
            std::int64_t best = -128;
            for (std::int64_t i = 0; i < k * k; ++i) {
              best = std::max(best, x.v[std::size_t((c * x.dims[2] + r * k + i / k) * x.dims[3] +
                                                    s * k + i % k)]);
            }
            y.v.push_back(best);
          }
        }
      }
    } else if (op == "Flatten") {
      y = in(0);
      y.dims = {1, std::int64_t(y.v.size())};  // CHW order, as the values are held
    } else {
      FAIL() << "the evaluator has no " << op;
    }
  }

  std::set<std::string> relu_;  // float outputs of a Relu: the accumulators before it
  Evaluated ev_;
};

// A committed quantised export: --check passes (the compiler's reference), and the machine's
// output equals this file's int8 evaluation of the ONNX graph exactly; ONNX Runtime's rounding
// of the same accumulators differs by at most one LSB. Gives "pass <outputs> <largest
// |ours - ORT|> <requantised values differing> of <requantised values> <cycles> cycles".
std::string run_quantised(const std::string& model) {
  const ChildOutcome out = run_in_child([&] {
    Graph g = load_model(kModels + model + ".onnx");
    const std::vector<std::int8_t> nhwc = generate_data(g, g.seed).inputs[g.inputs[0]].i8;
    std::vector<std::int64_t> nchw(nhwc.size());
    for (std::size_t p = 0; p < 16 * 16; ++p) {
      for (std::size_t c = 0; c < 3; ++c) nchw[c * 256 + p] = nhwc[p * 3 + c];
    }
    onnx::ModelProto m;
    std::ifstream f(kModels + model + ".onnx", std::ios::binary);
    if (!m.ParseFromIstream(&f)) throw std::runtime_error("cannot parse " + model);
    const Evaluated want = Evaluator().run(m, nchw);
    RunOptions options;
    options.check = true;
    const Run run = run_model(default_config(), g, model, options);
    const TensorView& v = run.program.layers.back().output;
    std::string text = run.check && run.check->passed ? "pass" : "FAIL";
    std::set<std::int64_t> distinct;
    for (std::size_t k = 0; k < want.out.size(); ++k) {
      const std::int64_t got = std::int8_t(run.result.hbm_final[v.base + k]);
      if (got != want.out[k]) text = "MISMATCH at " + std::to_string(k);
      distinct.insert(got);
    }
    if (distinct.size() < want.out.size() / 2) text = "DEGENERATE";  // not all clamped alike
    return text + " " + std::to_string(want.out.size()) + " " + std::to_string(want.worst) +
           " " + std::to_string(want.differ) + " of " + std::to_string(want.steps) + " " +
           std::to_string(run.result.total_cycles);
  });
  if (!out.ok) return "error: " + out.error;
  // Timing only: the same cycles without data (the requantisers come from the scales alone).
  const ChildOutcome timing = run_in_child([&] {
    RunOptions t;
    t.timing_only = true;
    return std::to_string(
        run_model(default_config(), load_model(kModels + model + ".onnx"), model, t)
            .result.total_cycles);
  });
  const std::string cycles = out.output.substr(out.output.rfind(' ') + 1);
  if (!timing.ok || timing.output != cycles) {
    return "TIMING " + timing.output + timing.error + " vs " + out.output;
  }
  return out.output + " cycles";
}

TEST(OnnxQuantized, QdqExportPassesTheCheckBitExact) {
  const std::string r = run_quantised("qdq_cnn");
  std::printf("qdq_cnn: %s\n", r.c_str());
  EXPECT_EQ(r.substr(0, 8), "pass 10 ") << r;
  EXPECT_LE(std::stoi(r.substr(8)), 1) << r;
}

TEST(OnnxQuantized, QOperatorExportPassesTheCheckBitExact) {
  const std::string r = run_quantised("qop_cnn");
  std::printf("qop_cnn: %s\n", r.c_str());
  EXPECT_EQ(r.substr(0, 8), "pass 10 ") << r;
  EXPECT_LE(std::stoi(r.substr(8)), 1) << r;
}

TEST(OnnxQuantized, QdqExportImportsAsInt8GemmsWithItsScales) {
  const Graph g = load_model(kModels + "qdq_cnn.onnx");
  EXPECT_EQ(g.dtype, DataType::kInt8);
  // conv1 (+relu), max pool, conv2 (+relu), flatten, head.
  ASSERT_EQ(g.nodes.size(), 5u);
  const Node& conv1 = g.nodes[0];
  const Node& conv2 = g.nodes[2];
  const Node& head = g.nodes[4];
  EXPECT_EQ(conv1.activation, Activation::kRelu);
  EXPECT_EQ(g.nodes[1].kind, OpKind::kMaxPool2d);
  EXPECT_EQ(head.kind, OpKind::kDense);
  for (const Node* n : {&conv1, &conv2, &head}) {
    EXPECT_TRUE(n->quant.given()) << n->name;
    for (float w : n->weights) EXPECT_TRUE(w == std::round(w) && w >= -127 && w <= 127);
  }
  // A relu's uint8 output over [0, max]: zero point 0 as uint8, -128 as int8; the max pool
  // passes conv1's scale on to conv2.
  EXPECT_EQ(conv1.quant.out_zero, -128);
  EXPECT_EQ(conv2.quant.in_scale, conv1.quant.out_scale);
  EXPECT_EQ(head.quant.in_scale, conv2.quant.out_scale);
}

// x (1 x 1 x 4 x 4) -> QuantizeLinear -> DequantizeLinear -> Conv (weights: DequantizeLinear of
// 2 x 1 x 3 x 3 int8) -> QuantizeLinear -> DequantizeLinear -> y; every tensor int8.
struct Qdq : test_onnx::Model {
  using Model::init;
  using Model::node;
  Qdq() {
    source = "q.onnx";
    input("x", {1, 1, 4, 4});
    scale("xs", 0.5f);
    zero("xz", 0);
    scale("ws", 0.25f);
    zero("wz", 0);
    scale("ys", 2.0f);
    zero("yz", 5);
    auto* w = g().add_initializer();
    w->set_name("w");
    w->set_data_type(onnx::TensorProto::INT8);
    for (int d : {2, 1, 3, 3}) w->add_dims(d);
    for (int i = 0; i < 18; ++i) w->add_int32_data(i - 9);
    node("QuantizeLinear", {"x", "xs", "xz"}, "xq");
    node("DequantizeLinear", {"xq", "xs", "xz"}, "xd");
    node("DequantizeLinear", {"w", "ws", "wz"}, "wd");
    node("Conv", {"xd", "wd"}, "c");
    node("QuantizeLinear", {"c", "ys", "yz"}, "cq");
    node("DequantizeLinear", {"cq", "ys", "yz"}, "y");
    output("y");
  }
  void scale(const std::string& name, float v) {
    auto* t = g().add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    t->add_float_data(v);
  }
  void zero(const std::string& name, int v, int type = onnx::TensorProto::INT8) {
    auto* t = g().add_initializer();
    t->set_name(name);
    t->set_data_type(type);
    t->add_int32_data(v);
  }
  onnx::TensorProto& init(const std::string& name) {
    for (auto& t : *g().mutable_initializer()) {
      if (t.name() == name) return t;
    }
    throw std::runtime_error("no initializer " + name);
  }
  onnx::NodeProto& node(const std::string& name) {
    for (auto& n : *g().mutable_node()) {
      if (n.name() == name) return n;
    }
    throw std::runtime_error("no node " + name);
  }
};

using test_onnx::expect_error;

TEST(OnnxQuantized, InputZeroPointFoldsIntoTheBiasAndOutputsTakeTheirZeroPoint) {
  Qdq md;
  md.init("xz").set_int32_data(0, 3);
  const Graph g = md.parse();
  ASSERT_EQ(g.nodes.size(), 1u);
  const Node& n = g.nodes[0];
  EXPECT_FLOAT_EQ(n.quant.in_scale, 0.5f);
  EXPECT_FLOAT_EQ(n.quant.weight_scale, 0.25f);
  EXPECT_FLOAT_EQ(n.quant.out_scale, 2.0f);
  EXPECT_EQ(n.quant.out_zero, 5);
  // sum (x - 3) w = sum x w - 3 sum w: filter 0 holds -9..-1 (sum -45), filter 1 0..8 (36).
  EXPECT_EQ(n.bias_values, (std::vector<float>{135, -108}));
  // Weights K x N in (ky, kx, c) order: tap 0 of filter 0 is -9, of filter 1 0.
  EXPECT_EQ(n.weights[0], -9);
  EXPECT_EQ(n.weights[1], 0);
}

TEST(OnnxQuantized, MalformedQuantisedGraphsAreOneLineErrorsNamingTheNode) {
  {
    Qdq md;  // QuantizeLinear without its scale
    md.node("xq").mutable_input()->DeleteSubrange(1, 2);
    expect_error(md, {"q.onnx", "node 'xq' (QuantizeLinear)", "missing the scale"});
  }
  {
    Qdq md;  // a zero point of two values
    md.init("yz").add_int32_data(1);
    md.init("yz").add_dims(2);
    expect_error(md, {"node 'cq' (QuantizeLinear)", "zero point of the output must be a scalar"});
  }
  {
    Qdq md;  // per-channel weight scales
    md.init("ws").add_float_data(0.5f);
    md.init("ws").add_dims(2);
    expect_error(md, {"node 'wd' (DequantizeLinear)", "per-channel scales are not supported"});
  }
  {
    Qdq md;  // uint8 weights with zero point 0: not symmetric
    md.init("w").set_data_type(onnx::TensorProto::UINT8);
    md.init("wz").set_data_type(onnx::TensorProto::UINT8);
    expect_error(md, {"node 'c' (Conv)", "zero point is 0 (uint8)", "only symmetric weights"});
  }
  {
    Qdq md;  // an int32 zero point on an activation
    md.init("xz").set_data_type(onnx::TensorProto::INT32);
    expect_error(md, {"node 'xq' (QuantizeLinear)", "data type 6 (allowed int8, uint8)"});
  }
  {
    Qdq md;  // padding with a nonzero input zero point
    md.init("xz").set_int32_data(0, 3);
    auto* a = md.node("c").add_attribute();
    a->set_name("pads");
    a->set_type(onnx::AttributeProto::INTS);
    for (int i = 0; i < 4; ++i) a->add_ints(1);
    expect_error(md, {"node 'c' (Conv)", "padded convolution needs input zero point 0", "got 3"});
  }
  {
    Qdq md;  // an operator the int8 pipeline does not take
    md.node("c").set_op_type("ConvTranspose");
    expect_error(md, {"node 'c' (ConvTranspose)", "unsupported operator in a quantised graph",
                      "supported: QuantizeLinear"});
  }
  {
    Qdq md;  // float weights beside quantised data
    md.node("c").set_input(1, "ws");
    expect_error(md, {"node 'c' (Conv)", "DequantizeLinear of an int8 constant"});
  }
  {
    Qdq md;  // the Conv's float output leaves the graph
    md.g().mutable_output(0)->set_name("c");
    expect_error(md, {"graph output 'c' is not int8 data"});
  }
  {
    Graph g = Qdq().parse();  // --dtype bf16
    try {
      set_dtype(g, DataType::kBf16);
      ADD_FAILURE() << "no CompileError";
    } catch (const CompileError& e) {
      EXPECT_NE(std::string(e.what()).find("q.onnx: a quantised ONNX graph runs int8 only"),
                std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace tpu
