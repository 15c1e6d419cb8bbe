#include "tools/compiler/onnx_quantized.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

namespace tpu {

namespace {

constexpr const char* kSupported =
    "QuantizeLinear, DequantizeLinear, QLinearConv, QLinearMatMul, Conv, Gemm and MatMul "
    "(int8 inputs and weights), Relu after a Conv, Gemm or MatMul, MaxPool, Flatten, Reshape, "
    "Identity, Dropout, and shape arithmetic on constants (Constant, Shape, Gather, Unsqueeze, "
    "Cast, Concat)";

// Accumulator units a bias may take: floats hold them exactly below 2^24.
constexpr double kMaxBias = double(1 << 24);

// A constant (initializer or Constant node) with its element type.
struct Constant {
  std::vector<std::int64_t> dims;
  std::vector<double> values;
  int type = 0;  // onnx::TensorProto::DataType
};

// One tensor's int8 quantisation: real = (q - zero) * scale, zero in int8 terms (a uint8
// tensor's values and zero point are 128 lower, the same reals).
struct Params {
  float scale = 0;
  std::int32_t zero = 0;
  bool operator==(const Params& o) const { return scale == o.scale && zero == o.zero; }
};

// Int8 (or int32) constant values behind a DequantizeLinear.
struct Dequantised {
  const Constant* values = nullptr;
  Params params;
  bool uint8 = false;
};

class Dequantiser {
 public:
  Dequantiser(const onnx::GraphProto& graph, const std::string& source,
              std::map<std::string, Node::Quant>& quant)
      : graph_(graph), source_(source), quant_(quant) {}

  onnx::GraphProto run();

 private:
  [[noreturn]] void fail(const onnx::NodeProto& n, const std::string& what) const {
    throw CompileError(source_ + ": node '" + label(n) + "' (" + n.op_type() + "): " + what);
  }
  static std::string label(const onnx::NodeProto& n) {
    return n.name().empty() ? (n.output_size() ? n.output(0) : std::string("?")) : n.name();
  }
  static bool given(const onnx::NodeProto& n, int i) {
    return i >= 0 && n.input_size() > i && !n.input(i).empty();
  }
  Constant read(const onnx::TensorProto& t) const;
  // The scale (input `si`) and zero point (input `zi`, int8 or uint8; absent: uint8 0) of a
  // quantising node, `what` naming the tensor they belong to.
  Params params(const onnx::NodeProto& n, int si, int zi, const std::string& what,
                bool* uint8 = nullptr) const;
  // The name a tensor is known by in the output graph (QuantizeLinear and DequantizeLinear
  // outputs are views of their input).
  std::string resolve(const std::string& name) const {
    auto it = alias_.find(name);
    return it == alias_.end() ? name : it->second;
  }
  // The int8 tensor node input `i` reads, with its parameters.
  std::pair<std::string, Params> int8_input(const onnx::NodeProto& n, int i) const;
  void quantize(const onnx::NodeProto& n);
  void dequantize(const onnx::NodeProto& n);
  void qdq_gemm(const onnx::NodeProto& n);
  void qlinear(const onnx::NodeProto& n);
  // Emits `op` (Conv, Gemm or MatMul) named as `n`, reading `x` quantised by `in`, the int8
  // weights `w` (zero point 0) and the bias `bias` in real values (empty: none).
  void emit(const onnx::NodeProto& n, const std::string& op, const std::string& x,
            const Params& in, const Dequantised& w, std::vector<double> bias,
            const onnx::NodeProto& attrs);

  const onnx::GraphProto& graph_;
  const std::string& source_;
  std::map<std::string, Node::Quant>& quant_;
  std::map<std::string, Constant> consts_;
  std::set<std::string> graph_inputs_;
  std::map<std::string, Params> int8_;         // int8 activations, by output-graph name
  std::map<std::string, std::string> alias_;   // Q/DQ outputs -> the tensor they view
  std::map<std::string, std::string> pending_; // a GEMM's float output (or its Relu's) -> GEMM
  std::map<std::string, Dequantised> dequantised_;  // DequantizeLinear outputs of constants
  onnx::GraphProto out_;
};

Constant Dequantiser::read(const onnx::TensorProto& t) const {
  Constant c;
  c.type = t.data_type();
  std::uint64_t n = 1;
  for (std::int64_t d : t.dims()) {
    c.dims.push_back(d);
    n *= std::uint64_t(std::max<std::int64_t>(d, 0));
  }
  const std::string& raw = t.raw_data();
  auto from_raw = [&](auto zero) {
    using T = decltype(zero);
    if (raw.size() != n * sizeof(T)) {
      throw CompileError(source_ + ": initializer '" + t.name() + "': raw_data holds " +
                         std::to_string(raw.size()) + " bytes, expected " +
                         std::to_string(n * sizeof(T)));
    }
    for (std::uint64_t i = 0; i < n; ++i) {
      T v;
      std::memcpy(&v, raw.data() + i * sizeof(T), sizeof(T));
      c.values.push_back(double(v));
    }
  };
  switch (t.data_type()) {
    case onnx::TensorProto::INT8:
      if (!raw.empty()) from_raw(std::int8_t());
      for (std::int32_t v : t.int32_data()) c.values.push_back(v);
      break;
    case onnx::TensorProto::UINT8:
      if (!raw.empty()) from_raw(std::uint8_t());
      for (std::int32_t v : t.int32_data()) c.values.push_back(v);
      break;
    case onnx::TensorProto::INT32:
      if (!raw.empty()) from_raw(std::int32_t());
      for (std::int32_t v : t.int32_data()) c.values.push_back(v);
      break;
    case onnx::TensorProto::FLOAT:
      if (!raw.empty()) from_raw(float());
      for (float v : t.float_data()) c.values.push_back(v);
      break;
    default:
      break;  // other types pass through to the importer, which judges them
  }
  return c;
}

Params Dequantiser::params(const onnx::NodeProto& n, int si, int zi, const std::string& what,
                           bool* uint8) const {
  if (!given(n, si)) fail(n, "missing the scale of " + what);
  auto s = consts_.find(n.input(si));
  if (s == consts_.end() || s->second.type != onnx::TensorProto::FLOAT) {
    fail(n, "the scale of " + what + " must be a float constant");
  }
  if (s->second.values.size() != 1) {
    fail(n, "the scale of " + what + " has " + std::to_string(s->second.values.size()) +
            " values: per-channel scales are not supported (quantise per tensor)");
  }
  Params p;
  p.scale = float(s->second.values[0]);
  if (!(p.scale > 0) || !std::isfinite(p.scale)) {
    fail(n, "the scale of " + what + " must be positive and finite");
  }
  bool is_uint8 = true;  // ONNX's default zero point is uint8 0
  if (given(n, zi)) {
    auto z = consts_.find(n.input(zi));
    if (z == consts_.end()) fail(n, "the zero point of " + what + " must be a constant");
    const Constant& c = z->second;
    if (c.values.size() != 1 || c.dims.size() > 1) {
      fail(n, "the zero point of " + what + " must be a scalar (per-tensor quantisation)");
    }
    if (c.type != onnx::TensorProto::INT8 && c.type != onnx::TensorProto::UINT8) {
      fail(n, "the zero point of " + what + " has data type " + std::to_string(c.type) +
              " (allowed int8, uint8)");
    }
    is_uint8 = c.type == onnx::TensorProto::UINT8;
    p.zero = std::int32_t(c.values[0]);
  }
  if (is_uint8) p.zero -= 128;
  if (uint8) *uint8 = is_uint8;
  return p;
}

std::pair<std::string, Params> Dequantiser::int8_input(const onnx::NodeProto& n, int i) const {
  if (!given(n, i)) fail(n, "missing input " + std::to_string(i));
  const std::string x = resolve(n.input(i));
  auto it = int8_.find(x);
  if (it == int8_.end()) {
    fail(n, "input '" + n.input(i) + "' must be int8 data (a QuantizeLinear's output, or its "
            "DequantizeLinear)");
  }
  return *it;
}

void Dequantiser::quantize(const onnx::NodeProto& n) {
  const Params p = params(n, 1, 2, "the output");
  if (!given(n, 0)) fail(n, "missing input 0");
  const std::string x = resolve(n.input(0));
  auto known = int8_.find(x);
  auto gemm = pending_.find(x);
  if (known != int8_.end()) {
    if (!(known->second == p)) {
      fail(n, "requantising int8 data to another scale or zero point is not supported");
    }
  } else if (gemm != pending_.end()) {
    Node::Quant& q = quant_[gemm->second];
    if (q.out_scale != 0) fail(n, "the output of '" + gemm->second + "' is quantised twice");
    q.out_scale = p.scale;
    q.out_zero = p.zero;
    int8_[x] = p;
  } else if (graph_inputs_.count(x)) {
    int8_[x] = p;  // the machine's int8 input (generated)
  } else {
    fail(n, "QuantizeLinear is supported on a graph input and on the output of a Conv, Gemm "
            "or MatMul (or its Relu)");
  }
  alias_[n.output(0)] = x;
}

void Dequantiser::dequantize(const onnx::NodeProto& n) {
  if (!given(n, 0)) fail(n, "missing input 0");
  auto c = consts_.find(n.input(0));
  if (c != consts_.end()) {
    Dequantised d;
    d.values = &c->second;
    if (c->second.type == onnx::TensorProto::INT32) {
      d.params = params(n, 1, -1, "the bias");
      d.params.zero = 0;  // int32 has no zero point beyond 0 (ONNX)
      if (given(n, 2)) {
        auto z = consts_.find(n.input(2));
        if (z == consts_.end() || z->second.values.size() != 1 || z->second.values[0] != 0) {
          fail(n, "an int32 bias must have zero point 0");
        }
      }
    } else if (c->second.type == onnx::TensorProto::INT8 ||
               c->second.type == onnx::TensorProto::UINT8) {
      d.params = params(n, 1, 2, "the weights", &d.uint8);
      if (d.uint8 != (c->second.type == onnx::TensorProto::UINT8)) {
        fail(n, "the zero point's data type differs from the weights'");
      }
    } else {
      fail(n, "constant '" + n.input(0) + "' has data type " + std::to_string(c->second.type) +
              " (allowed int8, uint8, int32 for a bias)");
    }
    dequantised_[n.output(0)] = d;
    return;
  }
  const auto [x, p] = int8_input(n, 0);
  if (!(params(n, 1, 2, "the input") == p)) {
    fail(n, "its scale or zero point differs from the QuantizeLinear's that made its input");
  }
  alias_[n.output(0)] = x;
}

void Dequantiser::qdq_gemm(const onnx::NodeProto& n) {
  const auto [x, in] = int8_input(n, 0);
  auto w = given(n, 1) ? dequantised_.find(n.input(1)) : dequantised_.end();
  if (w == dequantised_.end() || w->second.values->type == onnx::TensorProto::INT32) {
    fail(n, "the weights must be a DequantizeLinear of an int8 constant");
  }
  std::vector<double> bias;
  if (n.op_type() != "MatMul" && given(n, 2)) {
    auto b = dequantised_.find(n.input(2));
    auto c = consts_.find(n.input(2));
    if (b != dequantised_.end() && b->second.values->type == onnx::TensorProto::INT32) {
      for (double v : b->second.values->values) bias.push_back(v * b->second.params.scale);
    } else if (c != consts_.end() && c->second.type == onnx::TensorProto::FLOAT) {
      bias = c->second.values;
    } else {
      fail(n, "the bias must be a float constant or a DequantizeLinear of an int32 constant");
    }
  }
  emit(n, n.op_type(), x, in, w->second, std::move(bias), n);
}

void Dequantiser::qlinear(const onnx::NodeProto& n) {
  const bool conv = n.op_type() == "QLinearConv";
  const auto [x, in] = int8_input(n, 0);
  if (!(params(n, 1, 2, "the input") == in)) {
    fail(n, "the input's scale or zero point differs from the QuantizeLinear's that made it");
  }
  Dequantised w;
  auto c = given(n, 3) ? consts_.find(n.input(3)) : consts_.end();
  if (c == consts_.end() || (c->second.type != onnx::TensorProto::INT8 &&
                             c->second.type != onnx::TensorProto::UINT8)) {
    fail(n, "the weights must be an int8 constant");
  }
  w.values = &c->second;
  w.params = params(n, 4, 5, "the weights", &w.uint8);
  if (w.uint8 != (c->second.type == onnx::TensorProto::UINT8)) {
    fail(n, "the weights' zero point's data type differs from the weights'");
  }
  const Params out = params(n, 6, 7, "the output");
  std::vector<double> bias;
  if (conv && given(n, 8)) {
    auto b = consts_.find(n.input(8));
    if (b == consts_.end() || b->second.type != onnx::TensorProto::INT32) {
      fail(n, "the bias must be an int32 constant");
    }
    for (double v : b->second.values) bias.push_back(v * double(in.scale) * w.params.scale);
  }
  emit(n, conv ? "Conv" : "MatMul", x, in, w, std::move(bias), n);
  Node::Quant& q = quant_[label(n)];
  q.out_scale = out.scale;
  q.out_zero = out.zero;
  int8_[n.output(0)] = out;
}

void Dequantiser::emit(const onnx::NodeProto& n, const std::string& op, const std::string& x,
                       const Params& in, const Dequantised& w, std::vector<double> bias,
                       const onnx::NodeProto& attrs) {
  const Constant& wc = *w.values;
  if (w.params.zero != 0) {
    fail(n, "the weights' zero point is " + std::to_string(w.params.zero + (w.uint8 ? 128 : 0)) +
            (w.uint8 ? " (uint8)" : "") + ": only symmetric weights (int8 zero point 0) are "
            "supported");
  }
  if (op == "Gemm") {
    for (const auto& a : attrs.attribute()) {
      if ((a.name() == "alpha" || a.name() == "beta") && a.f() != 1.0f) {
        fail(n, "alpha and beta must be 1 in a quantised graph");
      }
    }
  }
  bool trans_b = false, padded = false;
  for (const auto& a : attrs.attribute()) {
    if (a.name() == "transB") trans_b = a.i() != 0;
    if (a.name() == "pads") {
      for (std::int64_t p : a.ints()) padded = padded || p != 0;
    }
    if (a.name() == "auto_pad") padded = padded || (a.s() != "NOTSET" && a.s() != "VALID");
  }
  // Output channel of every weight: Conv's W is M x C/g x kh x kw, Gemm's K x N (N x K with
  // transB), MatMul's K x N.
  const std::vector<std::int64_t>& d = wc.dims;
  if (d.size() < 2) fail(n, "the weights must have at least 2 dimensions");
  const std::uint64_t count = wc.values.size();
  const bool channel_first = op == "Conv" || trans_b;
  const std::uint64_t channels = std::uint64_t(channel_first ? d[0] : d.back());
  if (channels == 0) fail(n, "the weights are empty");
  if (!bias.empty() && bias.size() != channels) {
    fail(n, "the bias must have one value per output channel (" + std::to_string(channels) + ")");
  }
  // In accumulator units, with the input zero point folded in:
  // sum (x - z) w + b = sum x w + (b - z sum w).
  std::vector<double> acc(channels, 0.0);
  const double unit = double(in.scale) * w.params.scale;
  for (std::uint64_t o = 0; o < channels && !bias.empty(); ++o) acc[o] = std::round(bias[o] / unit);
  if (in.zero != 0) {
    if (padded) {
      fail(n, "a padded convolution needs input zero point 0 (the machine pads with int8 0), "
              "got " + std::to_string(in.zero));
    }
    for (std::uint64_t i = 0; i < count; ++i) {
      const double q = wc.values[i] - (w.uint8 ? 128 : 0);
      acc[channel_first ? i / (count / channels) : i % channels] -= in.zero * q;
    }
  }
  const bool biased = !bias.empty() || in.zero != 0;
  for (double b : acc) {
    if (std::fabs(b) >= kMaxBias) {
      fail(n, "a bias of " + std::to_string(std::int64_t(b)) + " accumulator units exceeds 2^24");
    }
  }

  const std::string name = label(n);
  auto* wt = out_.add_initializer();
  wt->set_name(name + "/int8_weights");
  wt->set_data_type(onnx::TensorProto::FLOAT);
  for (std::int64_t v : d) wt->add_dims(v);
  for (double v : wc.values) wt->add_float_data(float(v - (w.uint8 ? 128 : 0)));
  std::string bias_name;
  if (biased) {
    bias_name = name + "/int32_bias";
    auto* bt = out_.add_initializer();
    bt->set_name(bias_name);
    bt->set_data_type(onnx::TensorProto::FLOAT);
    bt->add_dims(std::int64_t(channels));
    for (double v : acc) bt->add_float_data(float(v));
  }

  onnx::NodeProto* g = out_.add_node();
  g->set_op_type(op);
  g->set_name(name);
  g->add_input(x);
  g->add_input(wt->name());
  if (biased && op != "MatMul") g->add_input(bias_name);
  for (const auto& a : attrs.attribute()) {
    if (a.name() != "alpha" && a.name() != "beta") *g->add_attribute() = a;
  }
  if (biased && op == "MatMul") {
    // MatMul takes no bias: the importer adds a constant Add after it to the GEMM's bias.
    g->add_output(name + "/no_bias");
    onnx::NodeProto* add = out_.add_node();
    add->set_op_type("Add");
    add->set_name(name + "/bias");
    add->add_input(g->output(0));
    add->add_input(bias_name);
    add->add_output(n.output(0));
  } else {
    g->add_output(n.output(0));
  }
  Node::Quant& q = quant_[name];
  q.in_scale = in.scale;
  q.weight_scale = w.params.scale;
  pending_[n.output(0)] = name;
}

onnx::GraphProto Dequantiser::run() {
  std::set<std::string> initializers;
  for (const auto& t : graph_.initializer()) {
    consts_[t.name()] = read(t);
    initializers.insert(t.name());
    const int type = t.data_type();
    if (type != onnx::TensorProto::INT8 && type != onnx::TensorProto::UINT8 &&
        type != onnx::TensorProto::INT32) {
      *out_.add_initializer() = t;
    }
  }
  for (const auto& vi : graph_.input()) {
    if (initializers.count(vi.name())) continue;
    graph_inputs_.insert(vi.name());
    *out_.add_input() = vi;
  }
  out_.set_name(graph_.name());
  for (const auto& n : graph_.node()) {
    const std::string& op = n.op_type();
    if (n.output_size() < 1) fail(n, "no output");
    if (!n.domain().empty() && n.domain() != "ai.onnx") {
      fail(n, "operator domain '" + n.domain() + "' is not supported (only the default domain)");
    }
    if (op == "Constant") {
      for (const auto& a : n.attribute()) {
        if (a.name() == "value") consts_[n.output(0)] = read(a.t());
      }
      auto c = consts_.find(n.output(0));
      if (c == consts_.end() || c->second.type == onnx::TensorProto::FLOAT ||
          c->second.type == onnx::TensorProto::INT64) {
        *out_.add_node() = n;  // the importer folds it (or says why not)
      }
    } else if (op == "QuantizeLinear") {
      quantize(n);
    } else if (op == "DequantizeLinear") {
      dequantize(n);
    } else if (op == "Conv" || op == "Gemm" || op == "MatMul") {
      qdq_gemm(n);
    } else if (op == "QLinearConv" || op == "QLinearMatMul") {
      qlinear(n);
    } else if (op == "Relu") {
      auto gemm = given(n, 0) ? pending_.find(n.input(0)) : pending_.end();
      if (gemm == pending_.end()) {
        fail(n, "a Relu in a quantised graph must follow a Conv, Gemm or MatMul (before its "
                "QuantizeLinear)");
      }
      pending_[n.output(0)] = gemm->second;
      *out_.add_node() = n;
    } else if (op == "MaxPool" || op == "Flatten" || op == "Reshape" || op == "Identity" ||
               op == "Dropout") {
      // Views and a max: int8 values keep their scale and zero point.
      const auto [x, p] = int8_input(n, 0);
      for (const auto& a : n.attribute()) {
        for (std::int64_t v : a.ints()) {
          if (a.name() == "pads" && v != 0) {
            fail(n, "padded max pooling is not supported in a quantised graph");
          }
        }
      }
      onnx::NodeProto& copy = *out_.add_node() = n;
      copy.set_input(0, x);
      int8_[n.output(0)] = p;
    } else if (op == "Shape" || op == "Gather" || op == "Unsqueeze" || op == "Cast" ||
               op == "Concat") {
      onnx::NodeProto& copy = *out_.add_node() = n;
      for (int i = 0; i < n.input_size(); ++i) {
        const std::string x = resolve(n.input(i));
        if (op != "Shape" && (int8_.count(x) || pending_.count(x))) {
          fail(n, "only shape arithmetic on constants is supported in a quantised graph");
        }
        copy.set_input(i, x);
      }
    } else {
      fail(n, "unsupported operator in a quantised graph; supported: " + std::string(kSupported));
    }
  }
  for (const auto& o : graph_.output()) {
    const std::string x = resolve(o.name());
    if (!int8_.count(x) || pending_.count(o.name())) {  // a GEMM's float output is not ours
      throw CompileError(source_ + ": graph output '" + o.name() + "' is not int8 data (end "
                         "the graph with QuantizeLinear, or QuantizeLinear and "
                         "DequantizeLinear)");
    }
    onnx::ValueInfoProto& vi = *out_.add_output() = o;
    vi.set_name(x);
  }
  for (const auto& [name, q] : quant_) {
    if (q.out_scale == 0) {
      throw CompileError(source_ + ": node '" + name + "': its output is never quantised (a "
                         "QuantizeLinear must follow it, or its Relu)");
    }
  }
  return out_;
}

}  // namespace

bool is_quantised_onnx(const onnx::GraphProto& graph) {
  for (const auto& n : graph.node()) {
    const std::string& op = n.op_type();
    if (op == "QuantizeLinear" || op == "DequantizeLinear" || op == "QLinearConv" ||
        op == "QLinearMatMul") {
      return true;
    }
  }
  return false;
}

onnx::GraphProto dequantise_onnx(const onnx::GraphProto& graph, const std::string& source,
                                 std::map<std::string, Node::Quant>& quant) {
  return Dequantiser(graph, source, quant).run();
}

}  // namespace tpu
