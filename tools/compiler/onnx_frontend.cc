#include "tools/compiler/onnx_frontend.h"

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "tools/compiler/frontend.h"
#include "tools/compiler/lstm.h"
#include "tools/compiler/onnx_quantized.h"
#include "tools/compiler/transpose.h"

namespace tpu {

namespace {

constexpr std::int64_t kMinOpset = 13;  // of the default domain (parse_onnx says why)

constexpr const char* kSupported =
    "Conv, Gemm, MatMul (constant second operand), Add, Mul, Relu, Clip (0..6 or 0..inf), "
    "Sigmoid, Tanh, Gelu (or its Erf form), Softmax, LayerNormalization (or its ReduceMean "
    "form), MaxPool, AveragePool, "
    "GlobalAveragePool, Flatten, Reshape (constant shape), Concat, BatchNormalization (after a "
    "Conv), LSTM (forward, batch 1), Transpose and Squeeze (views: size-1 axes; at batch 1 "
    "any Transpose of N x S x D into a MatMul or Softmax), Gather (one step of a sequence), "
    "Slice and Split (channels or width), MatMul of two tensors (H x M x K by H x K x N or a "
    "transposed H x N x K: H heads), Div and Mul by a scalar (into a MatMul of two tensors), "
    "Identity, Dropout (eval mode), Constant, Shape, Gather, Unsqueeze, Cast, Expand, and Add, "
    "Sub, Mul, Div of constants; int8-quantised graphs: QuantizeLinear/DequantizeLinear pairs "
    "and QLinearConv, QLinearMatMul (per-tensor scales)";

// A constant: an initializer, a Constant node or folded shape arithmetic. `values` is empty
// when the file gives only the shape (a structure-only export).
struct Const {
  std::vector<std::int64_t> dims;
  std::vector<double> values;
  bool integer = false;  // int32/int64 (shape arithmetic): Div truncates
  std::uint64_t count() const {
    std::uint64_t n = 1;
    for (std::int64_t d : dims) n *= std::uint64_t(d);
    return n;
  }
  bool given() const { return values.size() == count(); }
};

// An activation: a tensor of the Graph with its ONNX dims (N, C, H, W / N, F / N, S, D).
struct Act {
  TensorId id = 0;
  std::vector<std::int64_t> dims;
  // Set for an [N, F] tensor flattened from N x C x H x W with H * W > 1: our flatten keeps
  // NHWC order, ONNX's is CHW, so a following Gemm's weight rows are permuted.
  bool chw_flattened = false;
  Shape3 flat_from;
  // Batch 1 views of rank 2 or 3 ("Multi-head attention" below): `ours` is
  // our tensor's per-sample shape when it is not 1 x (d[0] * .. * d[r-2]) x d[r-1] of `dims`
  // (a Reshape or Transpose left it as its input's); a reader that needs that shape gets a
  // reshape view first (act_input). `order`: a Transpose that moved data, dims[i] being axis
  // order[i] of the row-major array `stored` of our elements; a MatMul or a Softmax reads it as
  // it is, any other reader after a `transpose` node (transpose_data). `scale`: a Div or Mul
  // by a scalar constant not yet applied, the reading MatMul's scale.
  std::optional<Shape3> ours;
  std::vector<std::int64_t> stored, order;
  double scale = 1;
};

// A batch-1 tensor of rank 2 or 3 as ours: 1 x (d[0] * .. * d[r-2]) x d[r-1].
Shape3 rows_of(const std::vector<std::int64_t>& d) {
  std::int64_t rows = 1;
  for (std::size_t i = 0; i + 1 < d.size(); ++i) rows *= d[i];
  return {1, std::uint32_t(rows), std::uint32_t(d.back())};
}

Shape3 nhwc_of(const std::vector<std::int64_t>& d) {
  if (d.size() == 4) return {std::uint32_t(d[2]), std::uint32_t(d[3]), std::uint32_t(d[1])};
  if (d.size() == 3) return {1, std::uint32_t(d[1]), std::uint32_t(d[2])};
  return {1, 1, std::uint32_t(d[1])};
}

class Importer {
 public:
  Importer(const std::string& source, Graph& g) : source_(source), g_(g) {}

  void run(const onnx::GraphProto& graph);

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw CompileError(source_ + ": " + what);
  }
  [[noreturn]] void fail(const onnx::NodeProto& n, const std::string& what) const {
    throw CompileError(source_ + ": node '" + label(n) + "' (" + n.op_type() + "): " + what);
  }
  static std::string label(const onnx::NodeProto& n) {
    return n.name().empty() ? (n.output_size() ? n.output(0) : std::string("?")) : n.name();
  }

  Const tensor_const(const onnx::TensorProto& t) const;
  const Const* find_const(const std::string& name) const;
  const Const& const_input(const onnx::NodeProto& n, int i);
  // `views`: the reader takes a permuted, reshaped or scaled view as it is (the attention
  // handlers); any other reader gets our tensor in the shape its dims say, or an error.
  const Act& act_input(const onnx::NodeProto& n, int i, bool views = false);
  std::vector<std::int64_t> ints(const onnx::NodeProto& n, const std::string& key,
                                 std::vector<std::int64_t> dflt) const;
  // Attribute `key` (or `dflt`): `count` sizes, each in [min, 2^24].
  std::vector<std::uint32_t> sizes(const onnx::NodeProto& n, const std::string& key,
                                   std::vector<std::int64_t> dflt, std::size_t count,
                                   std::int64_t min) const;
  const onnx::AttributeProto* attr(const onnx::NodeProto& n, const std::string& key) const;
  std::int64_t int_attr(const onnx::NodeProto& n, const std::string& key, std::int64_t d) const;
  float float_attr(const onnx::NodeProto& n, const std::string& key, float d) const;

  // Appends `node` reading `inputs`; its output, named after the ONNX node, is `dims`.
  void add(const onnx::NodeProto& n, Node node, std::vector<TensorId> inputs,
           std::vector<std::int64_t> dims);
  // Appends `node` named `name` (`op` for messages) reading `inputs`, and its tensor of that
  // name; registers no ONNX tensor.
  TensorId append(const std::string& name, const std::string& op, Node node,
                  std::vector<TensorId> inputs);
  void import_node(const onnx::NodeProto& n);
  void conv(const onnx::NodeProto& n);
  void pool(const onnx::NodeProto& n, OpKind kind);
  void gemm(const onnx::NodeProto& n, const Act& a, const Const& b, bool trans_b, float alpha);
  void activation(const onnx::NodeProto& n, Activation func);
  void batch_norm(const onnx::NodeProto& n);
  void lstm(const onnx::NodeProto& n);
  // Multi-head attention as PyTorch exports it (Reshape to heads, Transpose, Div by a
  // scalar, batched MatMul, Softmax): views, scales and per-head matmuls (batch 1).
  void tensor_matmul(const onnx::NodeProto& n);
  std::pair<TensorId, bool> matmul_operand(const onnx::NodeProto& n, const Act& a,
                                           const std::string& which);
  void permute(const onnx::NodeProto& n, Act a, const std::vector<std::int64_t>& perm);
  void reshape(const onnx::NodeProto& n, const Act& a, const Const& shape);
  void softmax_of_view(const onnx::NodeProto& n, const Act& x);
  bool scale_by_constant(const onnx::NodeProto& n);
  // A reshape view (no instructions) of tensor `id` as `shape`, named `name`.
  TensorId reshape_view(const std::string& name, TensorId id, Shape3 shape);
  // ONNX tensor `name`, whose Act is `a`, as the plain tensor its dims say (`a` updated).
  void materialise(const std::string& name, Act& a);
  // A Transpose that moved data (Act::order), read by an op other than a MatMul of two tensors or
  // a Softmax: a `transpose` node of the stored elements (expand_transposes lowers it); `a`, the
  // Act of ONNX tensor `name`, becomes its output.
  void transpose_data(const std::string& name, Act& a);
  // A `slice` of `a` along ONNX axis `axis` (channels or width), [begin, end), named `name`,
  // producing the ONNX tensor `out`.
  void slice(const onnx::NodeProto& n, const Act& a, std::int64_t axis, std::int64_t begin,
             std::int64_t end, const std::string& name, const std::string& out);
  // Transpose and Squeeze that only move or drop size-1 axes: the same tensor, new dims.
  void view(const onnx::NodeProto& n, const std::vector<std::int64_t>& dims);
  // Adds `scale` x the constant `b` (one value per output channel) to the GEMM's bias.
  void add_bias(const onnx::NodeProto& n, Node& gemm, const Const& b, double scale = 1);
  void flatten(const onnx::NodeProto& n, const Act& a);
  bool fold_constants(const onnx::NodeProto& n);
  bool fold_gelu(const onnx::NodeProto& div);
  bool fold_layer_norm(const onnx::NodeProto& mean);
  int sole_reader(const std::string& name, const std::string& op, int inputs) const;
  bool is_scalar(const std::string& name, double v) const;

  const std::string& source_;
  Graph& g_;
  std::map<std::string, Const> consts_;
  // Entries are replaced in place, never erased, so a reference to one stays valid.
  std::map<std::string, Act> acts_;
  std::map<std::string, std::vector<std::int64_t>> graph_inputs_;  // declared, not initializers
  std::map<std::string, int> uses_;  // node inputs and graph outputs reading each name
  std::set<std::string> outputs_;
  const onnx::GraphProto* graph_ = nullptr;
  std::map<std::string, std::vector<int>> readers_;  // node indices reading each name
  std::set<int> folded_;  // nodes already imported as part of a pattern
};

Const Importer::tensor_const(const onnx::TensorProto& t) const {
  Const c;
  for (std::int64_t d : t.dims()) {
    if (d < 0 || d > kMaxSize) {
      fail("initializer '" + t.name() + "': dimension " + std::to_string(d) +
           " is out of range (allowed 0.." + std::to_string(kMaxSize) + ")");
    }
    c.dims.push_back(d);
  }
  if (t.data_location() == onnx::TensorProto::EXTERNAL) {
    fail("initializer '" + t.name() + "': external data is not supported (save the model with "
         "its weights inside, or without them)");
  }
  const std::uint64_t n = c.count();
  const std::string& raw = t.raw_data();
  auto from_raw = [&](auto zero) {
    using T = decltype(zero);
    if (raw.size() != n * sizeof(T)) {
      fail("initializer '" + t.name() + "': raw_data holds " + std::to_string(raw.size()) +
           " bytes, expected " + std::to_string(n * sizeof(T)));
    }
    for (std::uint64_t i = 0; i < n; ++i) {
      T v;
      std::memcpy(&v, raw.data() + i * sizeof(T), sizeof(T));  // little-endian, as ONNX stores
      c.values.push_back(double(v));
    }
  };
  switch (t.data_type()) {
    case onnx::TensorProto::FLOAT:
      if (!raw.empty()) from_raw(float());
      for (float v : t.float_data()) c.values.push_back(v);
      break;
    case onnx::TensorProto::DOUBLE:
      if (!raw.empty()) from_raw(double());
      for (double v : t.double_data()) c.values.push_back(v);
      break;
    case onnx::TensorProto::INT64:
      c.integer = true;
      if (!raw.empty()) from_raw(std::int64_t());
      for (std::int64_t v : t.int64_data()) c.values.push_back(double(v));
      break;
    case onnx::TensorProto::INT32:
      c.integer = true;
      if (!raw.empty()) from_raw(std::int32_t());
      for (std::int32_t v : t.int32_data()) c.values.push_back(v);
      break;
    case onnx::TensorProto::BOOL:  // Dropout's training_mode
      c.integer = true;
      if (!raw.empty()) from_raw(std::uint8_t());
      for (std::int32_t v : t.int32_data()) c.values.push_back(v);
      break;
    default:
      fail("initializer '" + t.name() + "': data type " + std::to_string(t.data_type()) +
           " is not supported (allowed float, double, int32, int64, bool)");
  }
  if (!c.values.empty() && !c.given()) {
    fail("initializer '" + t.name() + "': holds " + std::to_string(c.values.size()) +
         " values, its dims need " + std::to_string(n));
  }
  return c;
}

const Const* Importer::find_const(const std::string& name) const {
  auto it = consts_.find(name);
  return it == consts_.end() ? nullptr : &it->second;
}

const Const& Importer::const_input(const onnx::NodeProto& n, int i) {
  if (i >= n.input_size() || n.input(i).empty()) {
    fail(n, "missing input " + std::to_string(i));
  }
  if (const Const* c = find_const(n.input(i))) return *c;
  // A declared graph input read as weights (an export_params=False export): shape only.
  auto gi = graph_inputs_.find(n.input(i));
  if (gi != graph_inputs_.end() && !acts_.count(n.input(i))) {
    Const& c = consts_[n.input(i)];
    c.dims = gi->second;
    return c;
  }
  fail(n, "input '" + n.input(i) + "' must be a constant (an initializer or folded shape "
          "arithmetic)");
}

const Act& Importer::act_input(const onnx::NodeProto& n, int i, bool views) {
  if (i >= n.input_size() || n.input(i).empty()) fail(n, "missing input " + std::to_string(i));
  const std::string& name = n.input(i);
  auto it = acts_.find(name);
  if (it != acts_.end() && !views) {
    Act& a = it->second;
    if (a.scale != 1) {
      fail(n, "input '" + name + "' is scaled by a constant (Div or Mul), supported only as an "
              "operand of a MatMul of two tensors (its scale)");
    }
    if (!a.order.empty()) transpose_data(name, a);
    if (a.ours) materialise(name, a);
  }
  if (it != acts_.end()) return it->second;
  auto gi = graph_inputs_.find(name);
  if (gi == graph_inputs_.end()) {
    fail(n, "input '" + name + "' is a constant or unknown, expected a tensor computed at run "
            "time");
  }
  // A graph input becomes one of ours the first time a node reads it as data.
  const std::vector<std::int64_t>& d = gi->second;
  if (d.size() < 2 || d.size() > 4) {
    fail("graph input '" + name + "': rank " + std::to_string(d.size()) +
         " is not supported (allowed N x C x H x W, N x S x D, N x F)");
  }
  Act a;
  a.dims = d;
  a.id = TensorId(g_.tensors.size());
  Tensor t;
  t.name = name;
  t.samples = std::uint32_t(d[0]);
  t.shape = nhwc_of(d);
  g_.tensors.push_back(t);
  g_.inputs.push_back(a.id);
  if (g_.inputs.size() == 1) g_.batch = t.samples;
  return acts_[name] = a;
}

const onnx::AttributeProto* Importer::attr(const onnx::NodeProto& n,
                                           const std::string& key) const {
  for (const auto& a : n.attribute()) {
    if (a.name() == key) return &a;
  }
  return nullptr;
}

std::vector<std::int64_t> Importer::ints(const onnx::NodeProto& n, const std::string& key,
                                         std::vector<std::int64_t> dflt) const {
  const onnx::AttributeProto* a = attr(n, key);
  return a ? std::vector<std::int64_t>(a->ints().begin(), a->ints().end()) : dflt;
}

std::vector<std::uint32_t> Importer::sizes(const onnx::NodeProto& n, const std::string& key,
                                           std::vector<std::int64_t> dflt, std::size_t count,
                                           std::int64_t min) const {
  const std::vector<std::int64_t> v = ints(n, key, std::move(dflt));
  if (v.size() != count) {
    fail(n, "attribute '" + key + "': expected " + std::to_string(count) + " values, got " +
            std::to_string(v.size()));
  }
  std::vector<std::uint32_t> out;
  for (std::int64_t x : v) {
    if (x < min || x > kMaxSize) {
      fail(n, "attribute '" + key + "': " + std::to_string(x) + " is out of range (allowed " +
              std::to_string(min) + ".." + std::to_string(kMaxSize) + ")");
    }
    out.push_back(std::uint32_t(x));
  }
  return out;
}

std::int64_t Importer::int_attr(const onnx::NodeProto& n, const std::string& key,
                                std::int64_t d) const {
  const onnx::AttributeProto* a = attr(n, key);
  return a ? a->i() : d;
}

float Importer::float_attr(const onnx::NodeProto& n, const std::string& key, float d) const {
  const onnx::AttributeProto* a = attr(n, key);
  return a ? a->f() : d;
}

void Importer::add(const onnx::NodeProto& n, Node node, std::vector<TensorId> inputs,
                   std::vector<std::int64_t> dims) {
  Act a;
  a.id = append(label(n), n.op_type(), std::move(node), std::move(inputs));
  a.dims = std::move(dims);
  acts_[n.output(0)] = a;
}

TensorId Importer::append(const std::string& name, const std::string& op, Node node,
                          std::vector<TensorId> inputs) {
  for (const Tensor& t : g_.tensors) {
    if (t.name == name) fail("node '" + name + "' (" + op + "): duplicate name '" + name + "'");
  }
  node.name = name;
  node.inputs = std::move(inputs);
  node.output = TensorId(g_.tensors.size());
  Tensor t;
  t.name = name;
  t.producer = std::int64_t(g_.nodes.size());
  g_.tensors.push_back(t);
  g_.nodes.push_back(std::move(node));
  return TensorId(g_.tensors.size() - 1);
}

void Importer::conv(const onnx::NodeProto& n) {
  const Act x = act_input(n, 0);
  const Const& w = const_input(n, 1);
  if (x.dims.size() != 4 || w.dims.size() != 4) {
    fail(n, "only 2-D convolutions (N x C x H x W input, 4-D weights) are supported");
  }
  const std::string pad_mode = attr(n, "auto_pad") ? attr(n, "auto_pad")->s() : "NOTSET";
  if (pad_mode != "NOTSET" && pad_mode != "VALID") {
    fail(n, "auto_pad '" + pad_mode + "' is not supported (allowed NOTSET with explicit pads, "
            "VALID)");
  }
  for (std::int64_t d : w.dims) {
    if (d < 1) fail(n, "the weights have an empty dimension");
  }
  const auto pads = sizes(n, "pads", {0, 0, 0, 0}, 4, 0);
  const auto strides = sizes(n, "strides", {1, 1}, 2, 1);
  const auto dil = sizes(n, "dilations", {1, 1}, 2, 1);
  if (pads[0] != pads[2] || pads[1] != pads[3] || pads[0] != pads[1]) {
    fail(n, "pads must be symmetric and equal on all sides (got [" + std::to_string(pads[0]) +
            ", " + std::to_string(pads[1]) + ", " + std::to_string(pads[2]) + ", " +
            std::to_string(pads[3]) + "])");
  }
  if (strides[0] != strides[1]) fail(n, "strides must be equal along H and W");
  Node node;
  node.kind = OpKind::kConv2d;
  node.out_channels = std::uint32_t(w.dims[0]);
  node.kernel_h = std::uint32_t(w.dims[2]);
  node.kernel_w = std::uint32_t(w.dims[3]);
  node.stride = strides[0];
  node.padding = node.padding_h = pads[0];
  node.dilation_h = dil[0];
  node.dilation_w = dil[1];
  node.groups = std::uint32_t(int_attr(n, "group", 1));
  const std::uint64_t cg = std::uint64_t(w.dims[1]);
  if (node.groups == 0 || cg * node.groups != std::uint64_t(x.dims[1])) {
    fail(n, "weights of " + std::to_string(cg) + " channels per group x " +
            std::to_string(node.groups) + " groups do not match the input's " +
            std::to_string(x.dims[1]) + " channels");
  }
  if (w.given()) {
    // ONNX W[m][c][ky][kx] -> our K x N with K in (ky, kx, c) order.
    const std::uint64_t m = node.out_channels, kh = node.kernel_h, kw = node.kernel_w;
    node.weights.resize(m * cg * kh * kw);
    for (std::uint64_t o = 0; o < m; ++o)
      for (std::uint64_t c = 0; c < cg; ++c)
        for (std::uint64_t ky = 0; ky < kh; ++ky)
          for (std::uint64_t kx = 0; kx < kw; ++kx)
            node.weights[((ky * kw + kx) * cg + c) * m + o] =
                float(w.values[((o * cg + c) * kh + ky) * kw + kx]);
  }
  if (n.input_size() > 2 && !n.input(2).empty()) add_bias(n, node, const_input(n, 2));
  auto out = [&](std::int64_t in, std::int64_t k, std::int64_t d) {
    return std::int64_t(window_outputs(std::uint64_t(in), std::uint64_t(k), node.stride,
                                       node.padding, std::uint64_t(d)));
  };
  add(n, std::move(node), {x.id},
      {x.dims[0], w.dims[0], out(x.dims[2], w.dims[2], dil[0]), out(x.dims[3], w.dims[3], dil[1])});
}

void Importer::add_bias(const onnx::NodeProto& n, Node& gemm, const Const& b, double scale) {
  const std::uint64_t channels = gemm.out_channels;
  if (b.count() != channels) {
    fail(n, "the bias must have one value per output channel (" + std::to_string(channels) +
            "), got " + std::to_string(b.count()));
  }
  // Values only while every part is given (a structure-only export's are generated).
  if (!b.given()) {
    gemm.bias_values.clear();
  } else if (!gemm.bias) {
    for (double v : b.values) gemm.bias_values.push_back(float(v * scale));
  } else if (!gemm.bias_values.empty()) {
    for (std::uint64_t o = 0; o < channels; ++o) {
      gemm.bias_values[o] = float(gemm.bias_values[o] + b.values[o] * scale);
    }
  }
  gemm.bias = true;
}

void Importer::view(const onnx::NodeProto& n, const std::vector<std::int64_t>& dims) {
  Act a = act_input(n, 0, true);
  // The element order is unchanged when the axes longer than 1 keep their order.
  std::vector<std::int64_t> from, to;
  for (std::int64_t d : a.dims) {
    if (d != 1) from.push_back(d);
  }
  for (std::int64_t d : dims) {
    if (d != 1) to.push_back(d);
  }
  std::vector<std::int64_t> perm = ints(n, "perm", {});
  if (perm.empty() && n.op_type() == "Transpose") {
    for (std::size_t i = a.dims.size(); i-- > 0;) perm.push_back(std::int64_t(i));
  }
  std::int64_t last = -1;
  bool ordered = true;
  for (std::int64_t p : perm) {
    if (a.dims[std::size_t(p)] == 1) continue;
    ordered = ordered && p > last;
    last = p;
  }
  if (a.dims.size() == 3 && dims.size() == 3 && !perm.empty() && !a.chw_flattened &&
      (!ordered || !a.order.empty())) {
    permute(n, a, perm);
    return;
  }
  if (from != to || !ordered || a.chw_flattened || !a.order.empty() || a.scale != 1) {
    fail(n, "only transposes and squeezes that move or drop axes of size 1 (views of the same "
            "elements) are supported, and transposes of N x S x D tensors read by a MatMul of "
            "two tensors or a Softmax");
  }
  a.dims = dims;
  acts_[n.output(0)] = a;
}

// --- Multi-head attention as PyTorch exports it ----------------------------------------------
// nn.MultiheadAttention (batch 1) splits q, k and v into heads with Reshape [S, 1, D] ->
// [S, H, D / H] and Transposes them to [H, S, D / H] (k to [H, D / H, S]), divides q by
// sqrt(D / H), multiplies per head (batched MatMul), softmaxes, multiplies by v and merges the
// heads back. None of it moves data here: a head split is our 1 x S x D tensor with head h in
// channel group h, which is what our `matmul` with `heads` reads; a Transpose is a permuted
// view; the Div is the matmul's scale. Only the softmax needs the scores as one head per row
// and the P V matmul them back as heads side by side: two reshape views (no instructions).

TensorId Importer::reshape_view(const std::string& name, TensorId id, Shape3 shape) {
  Node node;
  node.kind = OpKind::kReshape;
  node.target = shape;
  return append(name, "reshape view", std::move(node), {id});
}

// A plain view whose tensor has another shape than its dims say: a reshape view, named after
// the ONNX tensor, for readers that take the dims as they are.
void Importer::materialise(const std::string& name, Act& a) {
  const Shape3 want = rows_of(a.dims);
  if (*a.ours != want) a.id = reshape_view(name, a.id, want);
  a.ours.reset();
}

void Importer::transpose_data(const std::string& name, Act& a) {
  // The stored elements are a row-major d0 x d1 x d2 array: our H x W x C of one sample.
  const Shape3 stored{std::uint32_t(a.stored[0]), std::uint32_t(a.stored[1]),
                      std::uint32_t(a.stored[2])};
  const TensorId from =
      a.ours && *a.ours != stored ? reshape_view(name + "/stored", a.id, stored) : a.id;
  Node node;
  node.kind = OpKind::kTranspose;
  for (std::size_t i = 0; i < 3; ++i) node.perm[i] = std::uint32_t(a.order[i]);
  Act t;
  t.id = append(name + "/transpose", "transpose", std::move(node), {from});
  t.dims = a.dims;
  t.ours = Shape3{std::uint32_t(t.dims[0]), std::uint32_t(t.dims[1]), std::uint32_t(t.dims[2])};
  a = std::move(t);
}

void Importer::permute(const onnx::NodeProto& n, Act a, const std::vector<std::int64_t>& perm) {
  if (g_.batch != 1) {
    fail(n, "transposes that move data are supported for batch 1 (the graph's batch is " +
            std::to_string(g_.batch) + ")");
  }
  if (!a.ours) a.ours = rows_of(a.dims);
  if (a.order.empty()) {
    a.stored = a.dims;
    a.order = {0, 1, 2};
  }
  std::vector<std::int64_t> order, dims;
  for (std::int64_t p : perm) {
    order.push_back(a.order[std::size_t(p)]);
    dims.push_back(a.dims[std::size_t(p)]);
  }
  a.order = order;
  a.dims = dims;
  // Back in stored order (ignoring axes of size 1): a plain view again.
  std::int64_t last = -1;
  bool plain = true;
  for (std::size_t i = 0; i < 3; ++i) {
    if (a.dims[i] == 1) continue;
    plain = plain && a.order[i] > last;
    last = a.order[i];
  }
  if (plain) {
    a.order.clear();
    a.stored.clear();
  }
  acts_[n.output(0)] = a;
}

void Importer::reshape(const onnx::NodeProto& n, const Act& a, const Const& shape) {
  if (!a.order.empty() || a.scale != 1 || a.chw_flattened) {
    fail(n, "reshaping a tensor that a Div or Mul scaled, or a Flatten of "
            "N x C x H x W made is not supported");
  }
  std::int64_t elements = 1, known = 1;
  for (std::int64_t d : a.dims) elements *= d;
  std::vector<std::int64_t> dims;
  std::size_t infer = shape.values.size();
  for (std::size_t i = 0; i < shape.values.size(); ++i) {
    std::int64_t d = std::int64_t(shape.values[i]);
    if (d == 0 && int_attr(n, "allowzero", 0) == 0 && i < a.dims.size()) d = a.dims[i];
    if (d == -1 && infer == shape.values.size()) {
      infer = i;
    } else if (d < 1 || d > kMaxSize) {
      fail(n, "shape value " + std::to_string(d) + " is not supported (allowed 1.." +
              std::to_string(kMaxSize) + ", one -1, 0 to copy)");
    } else {
      known *= d;
    }
    dims.push_back(d);
  }
  if (infer < dims.size()) dims[infer] = elements / known;
  std::int64_t count = 1;
  for (std::int64_t d : dims) count *= d;
  if (count != elements || dims.size() < 2 || dims.size() > 3) {
    fail(n, "only reshapes of the same number of elements to 2 or 3 dimensions are supported "
            "(batch 1)");
  }
  Act out = a;
  out.dims = dims;
  out.ours = a.ours ? *a.ours : rows_of(a.dims);
  acts_[n.output(0)] = out;
}

// A MatMul operand of dims [H, R, C] (H heads of R x C) as ours: 1 x R x (H * C), each row
// holding the heads side by side, or transposed: 1 x C x (H * R) (transpose_b). A reshape
// view when our tensor has another shape of those elements; other layouts are an error.
std::pair<TensorId, bool> Importer::matmul_operand(const onnx::NodeProto& n, const Act& a,
                                                   const std::string& which) {
  const std::vector<std::int64_t> order =
      a.order.empty() ? std::vector<std::int64_t>{0, 1, 2} : a.order;
  // The ONNX axes longer than 1 (0 heads, 1 rows, 2 columns), outermost in memory first.
  std::vector<std::int64_t> in_memory;
  for (std::int64_t at = 0; at < 3; ++at) {
    for (std::size_t i = 0; i < 3; ++i) {
      if (order[i] == at && a.dims[i] > 1) in_memory.push_back(std::int64_t(i));
    }
  }
  const auto laid_out = [&](std::vector<std::int64_t> axes) {
    std::vector<std::int64_t> longer;
    for (std::int64_t i : axes) {
      if (a.dims[std::size_t(i)] > 1) longer.push_back(i);
    }
    return longer == in_memory;
  };
  bool transposed = false;
  if (!laid_out({1, 0, 2})) {
    transposed = laid_out({2, 0, 1});
    if (!transposed || which == "a") {
      fail(n, "operand '" + n.input(which == "a" ? 0 : 1) + "' is laid out in a way a MatMul "
              "of two tensors cannot read (supported: rows of heads side by side, as "
              "Reshape [S, H, D / H] then Transpose [H, S, D / H] gives, and for the second "
              "operand its transpose [H, D / H, S])");
    }
  }
  const std::uint32_t H = std::uint32_t(a.dims[0]), R = std::uint32_t(a.dims[1]),
                      C = std::uint32_t(a.dims[2]);
  const Shape3 want = transposed ? Shape3{1, C, H * R} : Shape3{1, R, H * C};
  if (!a.ours || *a.ours == want) return {a.id, transposed};
  return {reshape_view(label(n) + "/" + which, a.id, want), transposed};
}

void Importer::tensor_matmul(const onnx::NodeProto& n) {
  const Act a = act_input(n, 0, true);
  const Act b = act_input(n, 1, true);
  if (a.dims.size() != 3 || b.dims.size() != 3 || a.dims[0] != b.dims[0] ||
      a.dims[2] != b.dims[1]) {
    fail(n, "a MatMul of two computed tensors is supported for H x M x K by H x K x N (H "
            "heads of batch 1, or one matrix)");
  }
  const std::int64_t H = a.dims[0], M = a.dims[1], N = b.dims[2];
  if (H > 1 && g_.batch != 1) {
    fail(n, "a batched MatMul of two tensors is supported for batch 1 (its batch axis as "
            "attention heads; the graph's batch is " + std::to_string(g_.batch) + ")");
  }
  const auto [ia, ta] = matmul_operand(n, a, "a");
  const auto [ib, tb] = matmul_operand(n, b, "b");
  Node node;
  node.kind = OpKind::kTensorMatmul;
  node.heads = std::uint32_t(H);
  node.transpose_b = tb;
  node.scale = float(a.scale * b.scale);
  add(n, std::move(node), {ia, ib}, {H, M, N});
  if (H > 1) {  // ours: 1 x M x (H * N), head h in channel group h
    Act& out = acts_[n.output(0)];
    out.stored = {M, H, N};
    out.order = {1, 0, 2};
    out.ours = Shape3{1, std::uint32_t(M), std::uint32_t(H * N)};
  }
}

// Softmax along the last axis of a permuted view (the per-head scores): ours as one row per
// (query, head), the same order of elements.
void Importer::softmax_of_view(const onnx::NodeProto& n, const Act& x) {
  std::int64_t axis = int_attr(n, "axis", -1);
  if (axis < 0) axis += std::int64_t(x.dims.size());
  if (axis != std::int64_t(x.dims.size()) - 1 || x.order.back() != 2 || x.scale != 1) {
    fail(n, "softmax of a transposed tensor is supported along its last axis when that axis is "
            "also last in memory (attention's scores), unscaled");
  }
  const Shape3 rows = rows_of(x.stored);
  const TensorId id = *x.ours == rows ? x.id : reshape_view(label(n) + "/rows", x.id, rows);
  const std::vector<std::int64_t> stored = x.stored, order = x.order;
  Node node;
  node.kind = OpKind::kSoftmax;
  add(n, std::move(node), {id}, x.dims);
  Act& out = acts_[n.output(0)];
  out.stored = stored;
  out.order = order;
  out.ours = rows;
}

// Div or Mul of a computed tensor by a scalar constant (attention's 1 / sqrt(d)): folded into
// the MatMul of two tensors that produced it (when only this node reads it) or, pending, into
// the one that reads it; false for other operands.
bool Importer::scale_by_constant(const onnx::NodeProto& n) {
  if (n.input_size() != 2) return false;
  const bool div = n.op_type() == "Div";
  const int ci = !div && find_const(n.input(0)) ? 0 : 1;
  const Const* c = find_const(n.input(ci));
  const std::string& data = n.input(1 - ci);
  if (!c || !c->given() || c->count() != 1 || (!acts_.count(data) && !graph_inputs_.count(data))) {
    return false;
  }
  const double v = c->values[0];
  if (!(std::isfinite(v) && v > 0)) {
    fail(n, "scaling by " + std::to_string(v) + " is not supported (a positive finite constant "
            "becomes the scale of a MatMul of two tensors)");
  }
  Act a = act_input(n, 1 - ci, true);
  const double f = div ? 1 / v : v;
  const Tensor& t = g_.tensors[a.id];
  Node* p = t.producer >= 0 ? &g_.nodes[std::size_t(t.producer)] : nullptr;
  if (p && p->kind == OpKind::kTensorMatmul && p->activation == Activation::kNone &&
      uses_[data] == 1 && !outputs_.count(data) && a.scale == 1) {
    p->scale = float(p->scale * f);
  } else {
    a.scale *= f;
  }
  acts_[n.output(0)] = a;
  return true;
}
// --- end of multi-head attention -------------------------------------------------------------

void Importer::slice(const onnx::NodeProto& n, const Act& a, std::int64_t axis,
                     std::int64_t begin, std::int64_t end, const std::string& name,
                     const std::string& out) {
  const std::int64_t rank = std::int64_t(a.dims.size());
  if (axis < 0) axis += rank;
  // Our slice takes channels and columns: axis 1 (C) or 3 (W) of N x C x H x W, 1 (S) or 2
  // (D) of N x S x D, 1 (F) of N x F.
  const bool channels = rank == 2 ? axis == 1 : rank == 3 ? axis == 2 : axis == 1;
  const bool width = (rank == 3 && axis == 1) || (rank == 4 && axis == 3);
  if (a.chw_flattened || (!channels && !width) || (rank == 3 && width && a.dims[0] != 1)) {
    fail(n, "slicing is supported along channels or the width (axis 1 or 3 of N x C x H x W, "
            "1 or 2 of 1 x S x D, 1 of N x F)");
  }
  const std::int64_t size = a.dims[std::size_t(axis)];
  if (begin < 0) begin += size;
  if (end < 0) end += size;
  begin = std::clamp<std::int64_t>(begin, 0, size);
  end = std::clamp<std::int64_t>(end, 0, size);
  if (begin >= end) fail(n, "the slice [" + std::to_string(begin) + ", " + std::to_string(end) +
                            ") of axis " + std::to_string(axis) + " is empty");
  Node node;
  node.kind = OpKind::kSlice;
  if (channels) {
    node.c0 = std::uint32_t(begin);
    node.c1 = std::uint32_t(end);
  } else {
    node.x0 = std::uint32_t(begin);
    node.x1 = std::uint32_t(end);
  }
  std::vector<std::int64_t> dims = a.dims;
  dims[std::size_t(axis)] = end - begin;
  onnx::NodeProto named;
  named.set_name(name);
  named.add_output(out);
  add(named, std::move(node), {a.id}, dims);
}

void Importer::lstm(const onnx::NodeProto& n) {
  const Act x = act_input(n, 0);
  const std::int64_t H = int_attr(n, "hidden_size", 0);
  if (H < 1 || H > kMaxSize) fail(n, "hidden_size must be in 1.." + std::to_string(kMaxSize));
  const onnx::AttributeProto* dir = attr(n, "direction");
  if ((dir && dir->s() != "forward") || attr(n, "activations") || attr(n, "clip") ||
      int_attr(n, "input_forget", 0) != 0 || int_attr(n, "layout", 0) != 0) {
    fail(n, "only a forward LSTM with the default activations, no clip, input_forget 0 and "
            "layout 0 is supported");
  }
  const Tensor& xt = g_.tensors[x.id];
  if (x.dims.size() != 3 || x.dims[1] != 1 || xt.samples != 1 || xt.shape.h != 1) {
    fail(n, "X must be one sequence, T x 1 x F, stored as 1 x T x F (a batch-first model of "
            "batch 1, transposed by the exporter)");
  }
  const std::int64_t T = x.dims[0], F = x.dims[2];
  const Const& w = const_input(n, 1);
  const Const& r = const_input(n, 2);
  if (w.dims != std::vector<std::int64_t>{1, 4 * H, F} ||
      r.dims != std::vector<std::int64_t>{1, 4 * H, H}) {
    fail(n, "W must be 1 x 4H x F and R 1 x 4H x H");
  }
  auto given_input = [&](int i) { return n.input_size() > i && !n.input(i).empty(); };
  if (given_input(4)) fail(n, "sequence_lens is not supported (every sequence has T steps)");
  for (int i : {5, 6}) {
    if (!given_input(i)) continue;
    const Const& s0 = const_input(n, i);
    bool zero = s0.given();
    for (double v : s0.values) zero = zero && v == 0;
    if (!zero) fail(n, "the initial state must be zero");
  }
  Node node;
  node.kind = OpKind::kLstm;
  node.units = std::uint32_t(H);
  // ONNX's gates are i, o, f, c; ours i, f, g (= c), o: our gate k is ONNX's kFrom[k].
  static constexpr std::int64_t kFrom[4] = {0, 2, 3, 1};
  if (w.given() && r.given()) {
    node.weights.resize(std::size_t((F + H) * 4 * H));
    for (std::int64_t k = 0; k < 4; ++k) {
      for (std::int64_t u = 0; u < H; ++u) {
        const std::int64_t row = kFrom[k] * H + u, col = k * H + u;
        for (std::int64_t f = 0; f < F; ++f) {
          node.weights[std::size_t(f * 4 * H + col)] = float(w.values[std::size_t(row * F + f)]);
        }
        for (std::int64_t j = 0; j < H; ++j) {
          node.weights[std::size_t((F + j) * 4 * H + col)] =
              float(r.values[std::size_t(row * H + j)]);
        }
      }
    }
  }
  if (given_input(3)) {
    const Const& b = const_input(n, 3);
    if (b.count() != std::uint64_t(8 * H)) fail(n, "B must have 8H values");
    node.bias = true;
    for (std::int64_t k = 0; k < 4 && b.given(); ++k) {
      for (std::int64_t u = 0; u < H; ++u) {
        const std::size_t at = std::size_t(kFrom[k] * H + u);
        node.bias_values.push_back(float(b.values[at] + b.values[at + std::size_t(4 * H)]));
      }
    }
  }
  const auto read = [&](int i) {
    return n.output_size() > i && !n.output(i).empty() && uses_[n.output(i)] > 0;
  };
  if (read(2)) fail(n, "the cell state output Y_c is not supported");
  if (read(0) && read(1)) fail(n, "reading both Y and Y_h is not supported");
  node.return_sequences = read(0);
  if (!read(1)) {
    add(n, std::move(node), {x.id}, {T, 1, 1, H});
    return;
  }
  // Only the last step's h: Y_h (1 x 1 x H) is the node's tensor.
  Act a;
  a.id = append(label(n), n.op_type(), std::move(node), {x.id});
  a.dims = {1, 1, H};
  acts_[n.output(1)] = a;
}

void Importer::pool(const onnx::NodeProto& n, OpKind kind) {
  const Act x = act_input(n, 0);
  if (x.dims.size() != 4) fail(n, "expected an N x C x H x W input");
  Node node;
  node.kind = kind;
  if (kind == OpKind::kGlobalAvgPool2d) {
    add(n, std::move(node), {x.id}, {x.dims[0], x.dims[1], 1, 1});
    return;
  }
  const auto k = sizes(n, "kernel_shape", {}, 2, 1);
  const auto pads = sizes(n, "pads", {0, 0, 0, 0}, 4, 0);
  const auto strides = sizes(n, "strides", {1, 1}, 2, 1);
  if (pads[0] != pads[1] || pads[0] != pads[2] || pads[0] != pads[3]) {
    fail(n, "pads must be symmetric and equal on all sides");
  }
  if (strides[0] != strides[1]) fail(n, "strides must be equal along H and W");
  if (int_attr(n, "ceil_mode", 0) != 0) fail(n, "ceil_mode 1 is not supported");
  for (std::int64_t d : ints(n, "dilations", {1, 1})) {
    if (d != 1) fail(n, "dilated pooling is not supported");
  }
  if (kind == OpKind::kAvgPool2d && pads[0] > 0 && int_attr(n, "count_include_pad", 0) == 0) {
    fail(n, "padded average pooling must count the padding (count_include_pad 1)");
  }
  node.kernel_h = k[0];
  node.kernel_w = k[1];
  node.stride = strides[0];
  node.padding = pads[0];
  // A window larger than the padded input is infer_shapes' error; 0 here keeps the dims sane.
  auto out = [&](std::int64_t in, std::int64_t kk) {
    return std::int64_t(window_outputs(std::uint64_t(in), std::uint64_t(kk), strides[0], pads[0]));
  };
  add(n, std::move(node), {x.id}, {x.dims[0], x.dims[1], out(x.dims[2], k[0]), out(x.dims[3], k[1])});
}

void Importer::gemm(const onnx::NodeProto& n, const Act& a, const Const& b, bool trans_b,
                    float alpha) {
  if (b.dims.size() != 2) fail(n, "the constant operand must be 2-D");
  const std::uint64_t k = std::uint64_t(trans_b ? b.dims[1] : b.dims[0]);
  const std::uint64_t units = std::uint64_t(trans_b ? b.dims[0] : b.dims[1]);
  if (k != std::uint64_t(a.dims.back()) || (a.dims.size() != 2 && a.dims.size() != 3)) {
    fail(n, "the data operand's last dimension must equal the weights' K = " +
            std::to_string(k));
  }
  Node node;
  node.units = node.out_channels = std::uint32_t(units);
  if (a.dims.size() == 3 || (a.dims.size() == 2 && a.dims[0] > 1 && g_.batch == 1)) {
    // Per token: a 1x1 convolution over the 1 x S x D tensor (or its [S, D] view).
    node.kind = OpKind::kConv2d;
    node.kernel_h = node.kernel_w = 1;
  } else {
    node.kind = OpKind::kDense;
  }
  if (b.given()) {
    node.weights.resize(k * units);
    const Shape3 f = a.flat_from;
    for (std::uint64_t r = 0; r < k; ++r) {
      // Row r of our K (NHWC order) is row `src` of ONNX's (CHW order after a flatten).
      std::uint64_t src = r;
      if (a.chw_flattened) {
        const std::uint64_t c = r % f.c, pixel = r / f.c;
        src = c * f.h * f.w + pixel;
      }
      for (std::uint64_t u = 0; u < units; ++u) {
        node.weights[r * units + u] =
            alpha * float(trans_b ? b.values[u * k + src] : b.values[src * units + u]);
      }
    }
  }
  if (n.op_type() == "Gemm" && n.input_size() > 2 && !n.input(2).empty()) {
    add_bias(n, node, const_input(n, 2), float_attr(n, "beta", 1.0f));
  }
  std::vector<std::int64_t> dims = a.dims;
  dims.back() = std::int64_t(units);
  add(n, std::move(node), {a.id}, dims);
}

void Importer::activation(const onnx::NodeProto& n, Activation func) {
  const Act x = act_input(n, 0);
  const Tensor& t = g_.tensors[x.id];
  // Fuse into the producer when nothing else reads its output (as the model JSON's relu).
  if (t.producer >= 0 && uses_[n.input(0)] == 1 && !outputs_.count(n.input(0))) {
    Node& p = g_.nodes[std::size_t(t.producer)];
    // PyTorch exports relu6 as Relu then Clip(0, 6): together one relu6.
    const bool clamps_relu = func == Activation::kRelu6 && p.activation == Activation::kRelu;
    const bool fusable = (p.activation == Activation::kNone || clamps_relu) &&
                         (is_gemm(p.kind) || (p.kind == OpKind::kAdd &&
                                              func == Activation::kRelu));
    if (fusable) {
      p.activation = func;
      acts_[n.output(0)] = x;
      return;
    }
  }
  Node node;
  node.kind = OpKind::kActivation;
  node.activation = func;
  add(n, std::move(node), {x.id}, x.dims);
}

void Importer::batch_norm(const onnx::NodeProto& n) {
  const Act x = act_input(n, 0);
  const Tensor& t = g_.tensors[x.id];
  Node* conv = t.producer >= 0 ? &g_.nodes[std::size_t(t.producer)] : nullptr;
  if (!conv || conv->kind != OpKind::kConv2d || conv->activation != Activation::kNone ||
      uses_[n.input(0)] != 1) {
    fail(n, "BatchNormalization is supported only right after a Conv whose output nothing "
            "else reads (it folds into the Conv)");
  }
  const Const& scale = const_input(n, 1);
  const Const& shift = const_input(n, 2);
  const Const& mean = const_input(n, 3);
  const Const& var = const_input(n, 4);
  const std::size_t m = conv->out_channels;
  if (scale.count() != m || shift.count() != m || mean.count() != m || var.count() != m) {
    fail(n, "scale, B, mean and var must have one value per channel (" + std::to_string(m) + ")");
  }
  // Fold, with s = scale / sqrt(var + eps) per output channel: W' = W * s, and the bias
  // b' = (b - mean) * s + B (b: the Conv's own bias, or 0).
  Const folded;  // -mean * s + B
  folded.dims = {std::int64_t(m)};
  if (scale.given() && var.given() && shift.given() && mean.given()) {
    const double eps = float_attr(n, "epsilon", 1e-5f);
    std::vector<double> s(m);
    for (std::size_t o = 0; o < m; ++o) {
      s[o] = scale.values[o] / std::sqrt(var.values[o] + eps);
      folded.values.push_back(shift.values[o] - mean.values[o] * s[o]);
    }
    for (std::size_t i = 0; i < conv->weights.size(); ++i) {
      conv->weights[i] = float(conv->weights[i] * s[i % m]);
    }
    for (std::size_t o = 0; o < conv->bias_values.size(); ++o) {
      conv->bias_values[o] = float(conv->bias_values[o] * s[o]);
    }
  } else {
    conv->weights.clear();
  }
  add_bias(n, *conv, folded);
  acts_[n.output(0)] = x;
}

void Importer::flatten(const onnx::NodeProto& n, const Act& a) {
  std::int64_t feat = 1;
  for (std::size_t i = 1; i < a.dims.size(); ++i) feat *= a.dims[i];
  if (a.dims.size() == 2) {
    acts_[n.output(0)] = a;
    return;
  }
  // A view node (no instructions), as the model JSON's flatten. It keeps NHWC order; ONNX
  // flattens in CHW order, which differs when H * W > 1.
  Node node;
  node.kind = OpKind::kReshape;
  node.target = {1, 1, std::uint32_t(feat)};
  add(n, std::move(node), {a.id}, {a.dims[0], feat});
  if (a.dims.size() == 4 && a.dims[2] * a.dims[3] > 1) {
    Act& f = acts_[n.output(0)];
    f.chw_flattened = true;
    f.flat_from = nhwc_of(a.dims);
  }
}

// Shape arithmetic on constants (PyTorch's flatten and reshape exports).
bool Importer::fold_constants(const onnx::NodeProto& n) {
  const std::string& op = n.op_type();
  Const r;
  if (op == "Constant") {
    const onnx::AttributeProto* v = attr(n, "value");
    if (!v) fail(n, "only the 'value' form of Constant is supported");
    r = tensor_const(v->t());
  } else if (op == "Shape") {
    r.integer = true;
    auto it = acts_.find(n.input(0));
    if (it != acts_.end()) {
      r.dims = {std::int64_t(it->second.dims.size())};
      for (std::int64_t d : it->second.dims) r.values.push_back(double(d));
    } else {
      const Const& c = const_input(n, 0);
      r.dims = {std::int64_t(c.dims.size())};
      for (std::int64_t d : c.dims) r.values.push_back(double(d));
    }
  } else if (op == "Cast" || op == "Identity" || op == "Dropout") {
    const Const* c = find_const(n.input(0));
    auto gi = graph_inputs_.find(n.input(0));
    if (!c && gi != graph_inputs_.end() && !acts_.count(n.input(0))) {
      // A copy of a declared input (PyTorch shares weights this way): declared under both names.
      graph_inputs_[n.output(0)] = gi->second;
      return true;
    }
    if (!c) return false;
    r = *c;
  } else if (op == "Gather") {
    if (acts_.count(n.input(0))) return false;  // one step of a sequence (import_node)
    const Const& data = const_input(n, 0);
    const Const& idx = const_input(n, 1);
    if (data.dims.size() != 1 || int_attr(n, "axis", 0) != 0 || !data.given() || !idx.given()) {
      fail(n, "only gathering from a 1-D constant along axis 0 is supported");
    }
    r.dims = idx.dims;
    r.integer = data.integer;
    for (double i : idx.values) {
      std::int64_t k = std::int64_t(i);
      if (k < 0) k += data.dims[0];
      if (k < 0 || k >= data.dims[0]) fail(n, "index out of range");
      r.values.push_back(data.values[std::size_t(k)]);
    }
  } else if (op == "Expand") {
    // PyTorch's zero initial LSTM state: a constant broadcast to a constant shape, from a
    // scalar or to as many elements (a shape it already has).
    const Const& c = const_input(n, 0);
    const Const& shape = const_input(n, 1);
    if (!shape.given()) fail(n, "the shape must be a constant with values");
    for (double d : shape.values) r.dims.push_back(std::int64_t(d));
    r.integer = c.integer;
    if (c.count() != 1 && c.count() != r.count()) {
      fail(n, "only expanding a scalar, or a constant to a shape of as many elements, is "
              "supported");
    }
    if (c.given()) {
      r.values = c.count() == 1 ? std::vector<double>(r.count(), c.values[0]) : c.values;
    }
  } else if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div") {
    // nn.MultiheadAttention's chunk of q, k, v: (Shape[-1] + 2) / 3 x 1, 2, 3.
    const Const* a = find_const(n.input(0));
    const Const* b = n.input_size() == 2 ? find_const(n.input(1)) : nullptr;
    if (!a || !b) return false;
    if (!a->given() || !b->given() ||
        (a->count() != 1 && b->count() != 1 && a->dims != b->dims)) {
      fail(n, "arithmetic on constants is supported for given values of one shape, or with a "
              "scalar");
    }
    r.dims = a->count() == 1 && b->dims.size() > a->dims.size() ? b->dims : a->dims;
    r.integer = a->integer && b->integer;
    for (std::uint64_t i = 0; i < r.count(); ++i) {
      const double x = a->values[a->count() == 1 ? 0 : i], y = b->values[b->count() == 1 ? 0 : i];
      if (op == "Div" && y == 0) fail(n, "division by zero");
      const double v = op == "Add" ? x + y : op == "Sub" ? x - y : op == "Mul" ? x * y : x / y;
      r.values.push_back(r.integer ? std::trunc(v) : v);
    }
  } else if (op == "Unsqueeze") {
    const Const& c = const_input(n, 0);
    if (c.dims.size() > 1) fail(n, "only scalars and 1-D constants can be unsqueezed");
    r = c;
    r.dims = {std::int64_t(c.count())};
  } else if (op == "Concat") {
    for (int i = 0; i < n.input_size(); ++i) {
      if (!find_const(n.input(i))) return false;
    }
    r.dims = {0};
    r.integer = true;
    for (int i = 0; i < n.input_size(); ++i) {
      const Const& c = const_input(n, i);
      r.integer = r.integer && c.integer;
      if (c.dims.size() != 1 || !c.given()) fail(n, "only 1-D constants can be concatenated");
      r.values.insert(r.values.end(), c.values.begin(), c.values.end());
      r.dims[0] += c.dims[0];
    }
  } else {
    return false;
  }
  consts_[n.output(0)] = std::move(r);
  return true;
}

// The index of the one node reading `name` (not a graph output), when it is an `op` with
// `inputs` inputs; else -1.
int Importer::sole_reader(const std::string& name, const std::string& op, int inputs) const {
  auto it = readers_.find(name);
  if (it == readers_.end() || it->second.size() != 1 || outputs_.count(name)) return -1;
  const onnx::NodeProto& r = graph_->node(it->second[0]);
  return r.op_type() == op && r.input_size() == inputs ? it->second[0] : -1;
}

bool Importer::is_scalar(const std::string& name, double v) const {
  const Const* c = find_const(name);
  return c && c->given() && c->count() == 1 && std::fabs(c->values[0] - v) < 1e-5;
}

// PyTorch's exact GELU before opset 20: x * 0.5 * (1 + erf(x / sqrt 2)), exported as
// Div(x, sqrt 2) -> Erf -> Add(1) -> Mul(x) -> Mul(0.5) (each read only by the next): one gelu.
bool Importer::fold_gelu(const onnx::NodeProto& div) {
  const std::string& x = div.input(0);
  if (div.input_size() != 2 || !acts_.count(x) || !is_scalar(div.input(1), std::sqrt(2.0))) {
    return false;
  }
  auto other = [](const onnx::NodeProto& n, const std::string& one) {
    return n.input(0) == one ? n.input(1) : n.input(0);
  };
  const int erf = sole_reader(div.output(0), "Erf", 1);
  if (erf < 0) return false;
  const std::string& erf_out = graph_->node(erf).output(0);
  const int add = sole_reader(erf_out, "Add", 2);
  if (add < 0 || !is_scalar(other(graph_->node(add), erf_out), 1.0)) return false;
  const std::string& add_out = graph_->node(add).output(0);
  const int mul = sole_reader(add_out, "Mul", 2);
  if (mul < 0 || other(graph_->node(mul), add_out) != x) return false;
  const std::string& mul_out = graph_->node(mul).output(0);
  const int half = sole_reader(mul_out, "Mul", 2);
  if (half < 0 || !is_scalar(other(graph_->node(half), mul_out), 0.5)) return false;
  folded_.insert({erf, add, mul, half});
  onnx::NodeProto gelu;
  gelu.set_name(label(graph_->node(half)));
  gelu.set_op_type("Gelu");
  gelu.add_input(x);
  gelu.add_output(graph_->node(half).output(0));
  --uses_[x];  // the Div and the Mul reading x become one gelu
  activation(gelu, Activation::kGelu);
  return true;
}

// PyTorch's layer norm before opset 17, along the last axis: ReduceMean(x) -> Sub(x, mean) ->
// Pow(d, 2) -> ReduceMean -> Add(eps) -> Sqrt -> Div(d, sqrt) -> Mul(gamma) -> Add(beta), each
// step read only by the next (d by the Pow and the Div): one LayerNormalization.
bool Importer::fold_layer_norm(const onnx::NodeProto& mean) {
  const std::string& x = mean.input(0);
  if (!acts_.count(x) && !graph_inputs_.count(x)) return false;
  const std::int64_t last = std::int64_t(act_input(mean, 0).dims.size()) - 1;
  const auto along_last = [&](const onnx::NodeProto& n) {
    const std::vector<std::int64_t> axes = ints(n, "axes", {});
    return axes.size() == 1 && (axes[0] == -1 || axes[0] == last) && int_attr(n, "keepdims", 1);
  };
  auto other = [](const onnx::NodeProto& n, const std::string& one) {
    return n.input(0) == one ? n.input(1) : n.input(0);
  };
  const auto scalar = [&](const std::string& name) {
    const Const* c = find_const(name);
    return c && c->given() && c->count() == 1 ? c->values[0] : std::nan("");
  };
  if (!along_last(mean)) return false;
  const int sub = sole_reader(mean.output(0), "Sub", 2);
  if (sub < 0 || graph_->node(sub).input(0) != x) return false;
  const std::string& d = graph_->node(sub).output(0);
  auto rd = readers_.find(d);
  if (rd == readers_.end() || rd->second.size() != 2 || outputs_.count(d)) return false;
  int pow = -1, div = -1;
  for (int r : rd->second) {
    const onnx::NodeProto& q = graph_->node(r);
    if (q.op_type() == "Pow" && q.input(0) == d && scalar(q.input(1)) == 2.0) pow = r;
    if (q.op_type() == "Div" && q.input(0) == d) div = r;
  }
  if (pow < 0 || div < 0) return false;
  const int var = sole_reader(graph_->node(pow).output(0), "ReduceMean", 1);
  if (var < 0 || !along_last(graph_->node(var))) return false;
  const std::string& v = graph_->node(var).output(0);
  const int add_eps = sole_reader(v, "Add", 2);
  if (add_eps < 0) return false;
  const double eps = scalar(other(graph_->node(add_eps), v));
  const int sqrt = sole_reader(graph_->node(add_eps).output(0), "Sqrt", 1);
  if (!(eps > 0) || sqrt < 0 || sole_reader(graph_->node(sqrt).output(0), "Div", 2) != div ||
      graph_->node(div).input(1) != graph_->node(sqrt).output(0)) {
    return false;
  }
  const std::string& normed = graph_->node(div).output(0);
  const int mul = sole_reader(normed, "Mul", 2);
  if (mul < 0 || !find_const(other(graph_->node(mul), normed))) return false;
  const std::string& scaled = graph_->node(mul).output(0);
  const int shift = sole_reader(scaled, "Add", 2);
  if (shift < 0 || !find_const(other(graph_->node(shift), scaled))) return false;
  folded_.insert({sub, pow, var, add_eps, sqrt, div, mul, shift});
  onnx::NodeProto ln;
  ln.set_name(label(graph_->node(shift)));
  ln.set_op_type("LayerNormalization");
  ln.add_input(x);
  ln.add_input(other(graph_->node(mul), normed));
  ln.add_input(other(graph_->node(shift), scaled));
  ln.add_output(graph_->node(shift).output(0));
  auto* e = ln.add_attribute();
  e->set_name("epsilon");
  e->set_type(onnx::AttributeProto::FLOAT);
  e->set_f(float(eps));
  --uses_[x];  // the two ReduceMean and Sub reads become one layer norm
  import_node(ln);
  return true;
}

void Importer::import_node(const onnx::NodeProto& n) {
  const std::string& op = n.op_type();
  if (n.output_size() < 1) fail(n, "no output");
  if (!n.domain().empty() && n.domain() != "ai.onnx") {
    fail(n, "operator domain '" + n.domain() + "' is not supported (only the default domain)");
  }
  if (fold_constants(n)) return;
  if (op == "Div" && fold_gelu(n)) return;
  if (op == "ReduceMean" && fold_layer_norm(n)) return;
  if ((op == "Div" || op == "Mul") && scale_by_constant(n)) return;
  if (op == "Dropout" && n.input_size() > 2 && !n.input(2).empty()) {
    const Const& training = const_input(n, 2);
    if (!training.given() || training.count() != 1 || training.values[0] != 0) {
      fail(n, "dropout in training mode is not supported (export the model in eval mode)");
    }
  }
  if (op == "Conv") {
    conv(n);
  } else if (op == "MaxPool") {
    pool(n, OpKind::kMaxPool2d);
  } else if (op == "AveragePool") {
    pool(n, OpKind::kAvgPool2d);
  } else if (op == "GlobalAveragePool") {
    pool(n, OpKind::kGlobalAvgPool2d);
  } else if (op == "Gemm") {
    if (int_attr(n, "transA", 0) != 0) fail(n, "transA 1 is not supported");
    gemm(n, act_input(n, 0), const_input(n, 1), int_attr(n, "transB", 0) != 0,
         float_attr(n, "alpha", 1.0f));
  } else if (op == "MatMul" && n.input_size() == 2 && acts_.count(n.input(1))) {
    // Both computed (a declared graph input as the second operand is a structure-only
    // export's weights).
    tensor_matmul(n);
  } else if (op == "MatMul") {
    gemm(n, act_input(n, 0), const_input(n, 1), false, 1.0f);
  } else if (op == "Add" || op == "Mul") {
    const Const* c0 = find_const(n.input(0));
    const Const* c1 = n.input_size() > 1 ? find_const(n.input(1)) : nullptr;
    if (op == "Add" && (c0 || c1)) {
      // A bias after a GEMM (MatMul + Add exports of Linear) whose output only it reads.
      const int ci = c0 ? 0 : 1;
      const auto scores = acts_.find(n.input(1 - ci));
      if (scores != acts_.end() && g_.tensors[scores->second.id].producer >= 0 &&
          g_.nodes[std::size_t(g_.tensors[scores->second.id].producer)].kind ==
              OpKind::kTensorMatmul) {
        fail(n, "adding a constant to a MatMul of two tensors (an attention mask) is not "
                "supported");
      }
      const Act& a = act_input(n, 1 - ci);
      const Tensor& t = g_.tensors[a.id];
      Node* p = t.producer >= 0 ? &g_.nodes[std::size_t(t.producer)] : nullptr;
      if (!p || !is_gemm(p->kind) || p->kind == OpKind::kTensorMatmul ||
          p->activation != Activation::kNone || uses_[n.input(1 - ci)] != 1) {
        fail(n, "adding a constant is supported only as the bias of a Conv, Gemm or MatMul "
                "whose output nothing else reads");
      }
      add_bias(n, *p, const_input(n, ci));
      acts_[n.output(0)] = a;
      return;
    }
    if (c0 || c1) fail(n, "multiplying by a constant is not supported");
    const Act a = act_input(n, 0);
    const Act b = act_input(n, 1);
    if (a.dims != b.dims) fail(n, "broadcasting is not supported: the operands' shapes differ");
    Node node;
    node.kind = op == "Add" ? OpKind::kAdd : OpKind::kMul;
    add(n, std::move(node), {a.id, b.id}, a.dims);
  } else if (op == "Relu") {
    activation(n, Activation::kRelu);
  } else if (op == "Clip") {
    double lo = float_attr(n, "min", -INFINITY), hi = float_attr(n, "max", INFINITY);
    auto bound = [&](int i, double& v) {
      if (n.input_size() > i && !n.input(i).empty()) {
        const Const& c = const_input(n, i);
        if (!c.given() || c.count() != 1) fail(n, "min and max must be scalar constants");
        v = c.values[0];
      }
    };
    bound(1, lo);
    bound(2, hi);
    if (lo == 0 && hi == 6) {
      activation(n, Activation::kRelu6);
    } else if (lo == 0 && std::isinf(hi)) {
      activation(n, Activation::kRelu);
    } else {
      fail(n, "only Clip to [0, 6] (relu6) or [0, inf) (relu) is supported");
    }
  } else if (op == "Sigmoid") {
    activation(n, Activation::kSigmoid);
  } else if (op == "Tanh") {
    activation(n, Activation::kTanh);
  } else if (op == "Gelu") {
    activation(n, Activation::kGelu);
  } else if (op == "Softmax" && !act_input(n, 0, true).order.empty()) {
    softmax_of_view(n, act_input(n, 0, true));
  } else if (op == "Softmax") {
    const Act x = act_input(n, 0);
    // Ours is along channels: ONNX's last axis of N x F or N x S x D, axis 1 of N x C x 1 x 1.
    const std::int64_t rank = std::int64_t(x.dims.size());
    std::int64_t axis = int_attr(n, "axis", -1);
    if (axis < 0) axis += rank;
    const bool channels = rank == 4 ? axis == 1 && x.dims[2] * x.dims[3] == 1 : axis == rank - 1;
    if (!channels) {
      fail(n, "softmax is supported along the last axis of N x F or N x S x D, or axis 1 of "
              "N x C x 1 x 1");
    }
    Node node;
    node.kind = OpKind::kSoftmax;
    add(n, std::move(node), {x.id}, x.dims);
  } else if (op == "LayerNormalization") {
    const Act x = act_input(n, 0);
    const std::int64_t axis = int_attr(n, "axis", -1);
    if ((axis != -1 && axis != std::int64_t(x.dims.size()) - 1) || x.dims.size() == 4) {
      fail(n, "layer norm must be along the last axis of an N x F or N x S x D tensor");
    }
    Node node;
    node.kind = OpKind::kLayerNorm;
    node.epsilon = float_attr(n, "epsilon", 1e-5f);
    const Const& gamma = const_input(n, 1);
    const Const* beta = n.input_size() > 2 && !n.input(2).empty() ? &const_input(n, 2) : nullptr;
    const std::uint64_t c = std::uint64_t(x.dims.back());
    if (gamma.count() != c || (beta && beta->count() != c)) {
      fail(n, "scale and bias must have one value per channel (" + std::to_string(c) + ")");
    }
    if (gamma.given() && (!beta || beta->given())) {
      for (double v : gamma.values) node.weights.push_back(float(v));
      for (std::uint64_t i = 0; i < c; ++i) {
        node.weights.push_back(beta ? float(beta->values[i]) : 0.0f);
      }
    }
    add(n, std::move(node), {x.id}, x.dims);
  } else if (op == "BatchNormalization") {
    batch_norm(n);
  } else if (op == "Flatten") {
    const Act a = act_input(n, 0);
    if (int_attr(n, "axis", 1) != 1) fail(n, "only axis 1 is supported");
    flatten(n, a);
  } else if (op == "Reshape" && g_.batch == 1 && act_input(n, 0, true).dims.size() <= 3) {
    const Const& shape = const_input(n, 1);
    if (!shape.given()) fail(n, "the shape must be a constant with values");
    Act& x = acts_.at(n.input(0));  // act_input made it ours
    if (!x.order.empty()) transpose_data(n.input(0), x);
    reshape(n, x, shape);
  } else if (op == "Reshape") {
    const Act a = act_input(n, 0);
    const Const& shape = const_input(n, 1);
    if (!shape.given()) fail(n, "the shape must be a constant with values");
    // Only a flatten: [N, ...] -> [N, -1] or [N, C*H*W].
    std::int64_t feat = 1;
    for (std::size_t i = 1; i < a.dims.size(); ++i) feat *= a.dims[i];
    const auto& s = shape.values;
    const bool is_flatten = s.size() == 2 && (s[0] == double(a.dims[0]) || s[0] == 0) &&
                            (s[1] == -1 || s[1] == double(feat));
    if (!is_flatten) fail(n, "only reshaping to [N, -1] (a flatten) is supported");
    flatten(n, a);
  } else if (op == "Concat") {
    std::vector<TensorId> ins;
    std::vector<std::int64_t> dims;
    for (int i = 0; i < n.input_size(); ++i) {
      const Act a = act_input(n, i);
      if (i == 0) {
        dims = a.dims;
        dims[1] = 0;
      }
      if (a.dims.size() != 4) fail(n, "only N x C x H x W tensors can be concatenated");
      dims[1] += a.dims[1];
      ins.push_back(a.id);
    }
    const std::int64_t axis = int_attr(n, "axis", 1);
    if (axis != 1 && axis != -3) fail(n, "only concatenation along channels (axis 1) is supported");
    Node node;
    node.kind = OpKind::kConcat;
    add(n, std::move(node), ins, dims);
  } else if (op == "Identity" || op == "Dropout") {
    acts_[n.output(0)] = act_input(n, 0);
  } else if (op == "LSTM") {
    lstm(n);
  } else if (op == "Slice") {
    const Act a = act_input(n, 0);
    const auto values = [&](int i) {
      std::vector<std::int64_t> v;
      if (n.input_size() <= i || n.input(i).empty()) return v;
      const Const& c = const_input(n, i);
      if (!c.given()) fail(n, "starts, ends, axes and steps must be constants with values");
      for (double x : c.values) v.push_back(x >= 9.2e18 ? kMaxSize : std::int64_t(x));
      return v;
    };
    const std::vector<std::int64_t> starts = values(1), ends = values(2), steps = values(4);
    std::vector<std::int64_t> axes = values(3);
    if (axes.empty()) {
      for (std::size_t i = 0; i < starts.size(); ++i) axes.push_back(std::int64_t(i));
    }
    for (std::int64_t st : steps) {
      if (st != 1) fail(n, "only steps of 1 are supported");
    }
    if (starts.size() != 1 || ends.size() != 1 || axes.size() != 1) {
      fail(n, "only slicing along one axis is supported");
    }
    slice(n, a, axes[0], starts[0], ends[0], label(n), n.output(0));
  } else if (op == "Split") {
    const Act a = act_input(n, 0);
    const std::int64_t axis = int_attr(n, "axis", 0);
    const std::int64_t size = a.dims[std::size_t(axis < 0 ? axis + std::int64_t(a.dims.size())
                                                          : axis)];
    std::vector<std::int64_t> given = ints(n, "split", {});
    if (n.input_size() > 1 && !n.input(1).empty()) {
      const Const& c = const_input(n, 1);
      if (!c.given()) fail(n, "the split sizes must be a constant with values");
      for (double x : c.values) given.push_back(std::int64_t(x));
    }
    std::vector<std::uint64_t> sizes;
    for (std::int64_t x : given) {
      if (x < 0) fail(n, "split size " + std::to_string(x) + " is negative");
      sizes.push_back(std::uint64_t(x));
    }
    // The JSON `split` node's definition (graph.h, split_ranges).
    std::string error;
    const auto ranges =
        split_ranges(std::uint64_t(size), std::uint64_t(n.output_size()), sizes, error);
    if (ranges.empty()) fail(n, error);
    for (int i = 0; i < n.output_size(); ++i) {
      if (!n.output(i).empty() && uses_[n.output(i)] > 0) {
        const auto [begin, end] = ranges[std::size_t(i)];
        slice(n, a, axis, std::int64_t(begin), std::int64_t(end),
              label(n) + "/" + std::to_string(i), n.output(i));
      }
    }
  } else if (op == "Transpose") {
    const Act& a = act_input(n, 0, true);
    std::vector<std::int64_t> perm = ints(n, "perm", {});
    if (perm.empty()) {
      for (std::size_t i = a.dims.size(); i-- > 0;) perm.push_back(std::int64_t(i));
    }
    std::vector<std::int64_t> dims, sorted = perm;
    std::sort(sorted.begin(), sorted.end());
    for (std::size_t i = 0; i < sorted.size(); ++i) {
      if (sorted[i] != std::int64_t(i) || sorted.size() != a.dims.size()) {
        fail(n, "perm is not a permutation of the input's axes");
      }
    }
    for (std::int64_t p : perm) dims.push_back(a.dims[std::size_t(p)]);
    view(n, dims);
  } else if (op == "Squeeze") {
    const Act& a = act_input(n, 0, true);
    std::vector<std::int64_t> axes = ints(n, "axes", {});
    if (n.input_size() > 1 && !n.input(1).empty()) {
      const Const& c = const_input(n, 1);
      if (!c.given()) fail(n, "the axes must be a constant with values");
      for (double v : c.values) axes.push_back(std::int64_t(v));
    }
    std::vector<std::int64_t> dims;
    for (std::size_t i = 0; i < a.dims.size(); ++i) {
      const std::int64_t rank = std::int64_t(a.dims.size()), at = std::int64_t(i);
      bool drop = axes.empty() && a.dims[i] == 1;
      for (std::int64_t x : axes) drop |= x == at || x + rank == at;
      if (!drop) dims.push_back(a.dims[i]);
    }
    view(n, dims);
  } else if (op == "Gather") {
    // One step of a 1 x T x D sequence (PyTorch's y[:, t, :]): a slice of column t.
    const Act a = act_input(n, 0);
    const Const& idx = const_input(n, 1);
    std::int64_t axis = int_attr(n, "axis", 0);
    if (axis < 0) axis += std::int64_t(a.dims.size());
    if (a.dims.size() != 3 || a.dims[0] != 1 || axis != 1 || !idx.given() || idx.count() != 1 ||
        !idx.dims.empty()) {
      fail(n, "gathering from a tensor is supported only as one step t (a scalar constant) "
              "along axis 1 of a 1 x T x D sequence");
    }
    std::int64_t t = std::int64_t(idx.values[0]);
    if (t < 0) t += a.dims[1];
    if (t < 0 || t >= a.dims[1]) fail(n, "index out of range");
    Node node;
    node.kind = OpKind::kSlice;
    node.x0 = std::uint32_t(t);
    node.x1 = std::uint32_t(t + 1);
    add(n, std::move(node), {a.id}, {1, a.dims[2]});
  } else {
    fail(n, "unsupported operator; supported: " + std::string(kSupported));
  }
}

void Importer::run(const onnx::GraphProto& graph) {
  std::set<std::string> initializers;
  for (const auto& t : graph.initializer()) {
    consts_[t.name()] = tensor_const(t);
    initializers.insert(t.name());
  }
  for (const auto& vi : graph.input()) {
    if (initializers.count(vi.name())) continue;
    std::vector<std::int64_t> dims;
    if (!vi.type().has_tensor_type()) fail("graph input '" + vi.name() + "': not a tensor");
    for (const auto& d : vi.type().tensor_type().shape().dim()) {
      if (!d.has_dim_value() || d.dim_value() < 1 || d.dim_value() > kMaxSize) {
        fail("graph input '" + vi.name() + "': every dimension must be a fixed size in 1.." +
             std::to_string(kMaxSize) + " (export with a fixed batch, without dynamic_axes)");
      }
      dims.push_back(d.dim_value());
    }
    if (dims.size() == 1) {
      // A structure-only export's bias or norm weights (data is never 1-D): shape only.
      consts_[vi.name()].dims = dims;
      continue;
    }
    graph_inputs_[vi.name()] = dims;
  }
  for (const auto& n : graph.node()) {
    for (const auto& i : n.input()) ++uses_[i];
  }
  for (const auto& o : graph.output()) {
    ++uses_[o.name()];
    outputs_.insert(o.name());
  }
  graph_ = &graph;
  for (int i = 0; i < graph.node_size(); ++i) {
    for (const auto& in : graph.node(i).input()) readers_[in].push_back(i);
  }
  // Constants first: a pattern (fold_gelu) may read one that PyTorch places after its start.
  for (int i = 0; i < graph.node_size(); ++i) {
    if (graph.node(i).op_type() == "Constant") {
      import_node(graph.node(i));
      folded_.insert(i);
    }
  }
  for (int i = 0; i < graph.node_size(); ++i) {
    if (!folded_.count(i)) import_node(graph.node(i));
  }
  for (const auto& o : graph.output()) {
    auto it = acts_.find(o.name());
    if (it == acts_.end()) fail("graph output '" + o.name() + "' is not computed by any node");
    if (it->second.scale != 1) {
      fail("graph output '" + o.name() + "' is a scaled view, supported only into a MatMul of "
           "two tensors");
    }
    Act& a = it->second;
    if (!a.order.empty()) transpose_data(o.name(), a);
    if (a.ours) materialise(o.name(), a);
    g_.outputs.push_back(a.id);
  }
  if (g_.nodes.empty()) fail("the graph has no operators to run");
}

}  // namespace

bool looks_like_onnx(const std::string& bytes) { return !bytes.empty() && bytes[0] == 0x08; }

Graph parse_onnx(const std::string& bytes, const std::string& source) {
  onnx::ModelProto model;
  if (!model.ParseFromString(bytes) || !model.has_graph()) {
    throw CompileError(source + ": not a valid ONNX model (the protobuf does not parse: a "
                                "truncated or corrupt file?)");
  }
  // Opset 13 moved Squeeze's axes to an input and made Softmax act along one axis (before, it
  // flattened from `axis`, by default 1): older graphs would import with other meanings.
  std::int64_t opset = 0;
  for (const auto& o : model.opset_import()) {
    if (o.domain().empty() || o.domain() == "ai.onnx") opset = o.version();
  }
  if (opset < kMinOpset) {
    throw CompileError(source + ": opset " + std::to_string(opset) +
                       " is too old (the importer reads opset " + std::to_string(kMinOpset) +
                       " and later: export with opset_version >= " + std::to_string(kMinOpset) +
                       ", PyTorch 1.13's default is 14)");
  }
  Graph g;
  g.source = source;
  g.name = stem_of(source);
  // A quantised graph imports as its float graph of int8-valued GEMMs, then takes its scales;
  // it runs int8, a float graph bf16 unless the user chooses int8 (set_dtype).
  std::map<std::string, Node::Quant> quant;
  const bool quantised = is_quantised_onnx(model.graph());
  if (quantised) {
    const onnx::GraphProto float_graph = dequantise_onnx(model.graph(), source, quant);
    Importer(source, g).run(float_graph);
    for (Node& n : g.nodes) {
      auto it = quant.find(n.name);
      if (it != quant.end()) n.quant = it->second;
    }
  } else {
    Importer(source, g).run(model.graph());
  }
  g.dtype = quantised ? DataType::kInt8 : DataType::kBf16;
  infer_shapes(g);
  expand_lstms(g);
  expand_transposes(g);
  return g;
}

}  // namespace tpu
