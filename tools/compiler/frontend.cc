#include "tools/compiler/frontend.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <functional>
#include <tuple>
#include <limits>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "sim/config/user_input.h"
#include "tools/compiler/lstm.h"
#include "tools/compiler/onnx_frontend.h"
#include "tools/compiler/transpose.h"

namespace tpu {

namespace {

using nlohmann::json;

std::string json_type_name(const json& v) {
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer()) return "the integer " + v.dump();
  if (v.is_number()) return "the number " + v.dump();
  if (v.is_string()) return "the string " + excerpt(v.dump());
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  return "null";
}

// Error context: "file: layer 3 'conv1': key 'kernel': ...".
class Where {
 public:
  explicit Where(std::string source) : prefix_(std::move(source) + ": ") {}
  Where layer(std::size_t index, const std::string& name) const {
    return nested("layer " + std::to_string(index) + " '" + excerpt(name) + "'");
  }
  Where node(std::size_t index, const std::string& name) const {
    return nested("node " + std::to_string(index) + " '" + excerpt(name) + "'");
  }
  Where input(std::size_t index) const { return nested("input " + std::to_string(index)); }
  [[noreturn]] void fail(const std::string& what) const { throw CompileError(prefix_ + what); }
  [[noreturn]] void fail_key(const std::string& key, const std::string& what) const {
    fail("key '" + key + "': " + what);
  }

 private:
  Where nested(const std::string& what) const {
    Where w = *this;
    w.prefix_ += what + ": ";
    return w;
  }
  std::string prefix_;
};

// An integer, written as one or as an integral number (8.0, 1e3), in [min, max].
std::int64_t as_integer(const Where& where, const std::string& key, const json& v,
                        std::int64_t min, std::int64_t max) {
  double x = 0;
  if (v.is_number_unsigned()) {
    x = double(v.get<std::uint64_t>());
  } else if (v.is_number_integer()) {
    x = double(v.get<std::int64_t>());
  } else if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>()) {
    x = v.get<double>();
  } else {
    where.fail_key(key, "expected an integer, got " + json_type_name(v));
  }
  if (x < double(min) || x > double(max)) {
    where.fail_key(key, "expected an integer in [" + std::to_string(min) + ", " +
                            std::to_string(max) + "], got " + v.dump());
  }
  return std::int64_t(x);
}

std::uint32_t as_size(const Where& where, const std::string& key, const json& v,
                      std::int64_t min) {
  return std::uint32_t(as_integer(where, key, v, min, kMaxSize));
}

// An int (square) or a [h, w] pair.
std::pair<std::uint32_t, std::uint32_t> as_pair(const Where& where, const std::string& key,
                                                const json& v) {
  if (v.is_array()) {
    if (v.size() != 2) {
      where.fail_key(key, "expected an integer or [h, w], got " + excerpt(v.dump()));
    }
    return {as_size(where, key, v[0], 1), as_size(where, key, v[1], 1)};
  }
  std::uint32_t x = as_size(where, key, v, 1);
  return {x, x};
}

Shape3 as_shape(const Where& where, const std::string& key, const json& v) {
  if (!v.is_array() || v.size() != 3) {
    where.fail_key(key, "expected [height, width, channels], got " + excerpt(v.dump()));
  }
  return {as_size(where, key, v[0], 1), as_size(where, key, v[1], 1),
          as_size(where, key, v[2], 1)};
}

std::string as_string(const Where& where, const std::string& key, const json& v) {
  if (!v.is_string()) where.fail_key(key, "expected a string, got " + json_type_name(v));
  return v.get<std::string>();
}

bool as_bool(const Where& where, const std::string& key, const json& v) {
  if (!v.is_boolean()) where.fail_key(key, "expected true or false, got " + json_type_name(v));
  return v.get<bool>();
}

// A number in (0, max], as a float that must not underflow to 0.
float as_positive_float(const Where& where, const std::string& key, const json& v,
                        std::uint64_t max) {
  if (!v.is_number() || !(v.get<double>() > 0 && v.get<double>() <= double(max))) {
    where.fail_key(key, "expected a number in (0, " + std::to_string(max) + "], got " +
                            excerpt(v.dump()));
  }
  const float f = float(v.get<double>());
  if (!(f > 0)) where.fail_key(key, "underflows fp32: " + excerpt(v.dump()));
  return f;
}

void check_keys(const Where& where, const json& obj, const std::set<std::string>& allowed,
                const std::set<std::string>& required, const std::string& what) {
  for (const auto& [key, value] : obj.items()) {
    (void)value;
    if (!allowed.count(key)) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      where.fail("unknown key '" + excerpt(key) + "' in " + what + " (allowed: " + list + ")");
    }
  }
  for (const auto& key : required) {
    if (!obj.contains(key)) where.fail("missing required key '" + key + "' in " + what);
  }
}

Activation parse_activation(const Where& where, const json& v) {
  const std::string s = as_string(where, "activation", v);
  std::string names;
  for (std::uint8_t a = 0; a < kNumActivations; ++a) {
    if (s == to_string(Activation(a))) return Activation(a);
    names += std::string(a == 0 ? "" : ", ") + "\"" + to_string(Activation(a)) + "\"";
  }
  where.fail_key("activation", "expected one of " + names + ", got \"" + excerpt(s) + "\"");
}

std::string trim(const std::string& s) {
  std::size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

// A record's fields less a single trailing empty one: SCALE-Sim ends rows with ','.
std::vector<std::string> scalesim_fields(std::vector<std::string> fields) {
  if (!fields.empty() && fields.back().empty()) fields.pop_back();
  return fields;
}

// The records of a SCALE-Sim CSV; its syntax errors are compile errors.
std::vector<CsvRecord> scalesim_records(const std::string& text, const std::string& source) {
  try {
    return parse_csv(text, source);
  } catch (const CsvSyntaxError& e) {
    throw CompileError(e.what());
  }
}

std::string normalize_header(const std::string& s) {
  std::string out;
  for (char ch : s) {
    if (std::isspace(static_cast<unsigned char>(ch))) {
      if (!out.empty() && out.back() != ' ') out += ' ';
    } else {
      out += char(std::tolower(static_cast<unsigned char>(ch)));
    }
  }
  return trim(out);
}

const std::vector<std::string> kConvHeader = {"layer name",    "ifmap height", "ifmap width",
                                              "filter height", "filter width", "channels",
                                              "num filter",    "strides"};
const std::vector<std::string> kConvColumns = {"Layer name",    "IFMAP Height", "IFMAP Width",
                                               "Filter Height", "Filter Width", "Channels",
                                               "Num Filter",    "Strides"};
const std::vector<std::string> kGemmHeader = {"layer", "m", "n", "k"};
const std::vector<std::string> kGemmColumns = {"Layer", "M", "N", "K"};

enum class CsvKind { kNone, kConv, kGemm };

CsvKind csv_kind_of_header(const std::vector<std::string>& fields) {
  std::vector<std::string> norm;
  for (const auto& f : fields) norm.push_back(normalize_header(f));
  if (norm == kGemmHeader) return CsvKind::kGemm;
  if (norm.size() == kConvHeader.size()) {
    std::vector<std::string> tail(norm.begin() + 1, norm.end());
    std::vector<std::string> want(kConvHeader.begin() + 1, kConvHeader.end());
    if ((norm[0] == "layer name" || norm[0] == "layer") && tail == want) return CsvKind::kConv;
  }
  return CsvKind::kNone;
}

}  // namespace

namespace {

// Builds a Graph while front ends read their input; tensor names are unique.
class Builder {
 public:
  explicit Builder(Graph& g) : g_(g) {}

  TensorId add_input(const Where& where, const std::string& name, std::uint32_t samples,
                     Shape3 shape) {
    const TensorId id = add_tensor(where, name, -1);
    g_.tensors[id].samples = samples;
    g_.tensors[id].shape = shape;
    g_.inputs.push_back(id);
    return id;
  }
  // Appends `node`, which produces the tensor named after it.
  Node& add_node(const Where& where, Node node) {
    node.output = add_tensor(where, node.name, std::int64_t(g_.nodes.size()));
    g_.nodes.push_back(std::move(node));
    return g_.nodes.back();
  }
  std::int64_t find(const std::string& name) const {
    auto it = ids_.find(name);
    return it == ids_.end() ? -1 : std::int64_t(it->second);
  }
  void alias(const std::string& name, TensorId id) { ids_[name] = id; }

 private:
  TensorId add_tensor(const Where& where, const std::string& name, std::int64_t producer) {
    if (ids_.count(name)) where.fail_key("name", "duplicate name '" + excerpt(name) + "'");
    Tensor t;
    t.name = name;
    t.producer = producer;
    g_.tensors.push_back(t);
    const TensorId id = TensorId(g_.tensors.size() - 1);
    ids_[name] = id;
    return id;
  }

  Graph& g_;
  std::map<std::string, TensorId> ids_;
};

struct OpSpec {
  const char* name;
  OpKind kind;
  std::set<std::string> keys;      // attribute keys beyond type/op, name and inputs
  std::set<std::string> required;
};

// Every op the model JSON knows, besides "relu" (which fuses into its producer) and "flatten"
// (a reshape to 1 x 1 x H*W*C).
const std::vector<OpSpec>& op_specs() {
  static const std::vector<OpSpec> specs = {
      {"matmul", OpKind::kMatmul, {"m", "k", "n", "activation", "bias"}, {"m", "k", "n"}},
      {"dense", OpKind::kDense, {"units", "activation", "bias"}, {"units"}},
      {"conv2d", OpKind::kConv2d,
       {"out_channels", "kernel", "stride", "padding", "dilation", "groups", "activation", "bias"},
       {"out_channels", "kernel"}},
      // A conv2d with a 1 x k kernel, padded along W only: a 1-D conv over 1 x L x C sequences.
      {"conv1d", OpKind::kConv2d,
       {"out_channels", "kernel", "stride", "padding", "dilation", "groups", "activation", "bias"},
       {"out_channels", "kernel"}},
      {"maxpool2d", OpKind::kMaxPool2d, {"kernel", "stride", "padding"}, {"kernel"}},
      {"avgpool2d", OpKind::kAvgPool2d, {"kernel", "stride", "padding"}, {"kernel"}},
      {"global_avgpool2d", OpKind::kGlobalAvgPool2d, {}, {}},
      {"add", OpKind::kAdd, {"activation"}, {}},
      {"mul", OpKind::kMul, {"activation"}, {}},
      {"relu6", OpKind::kActivation, {}, {}},
      {"sigmoid", OpKind::kActivation, {}, {}},
      {"tanh", OpKind::kActivation, {}, {}},
      {"gelu", OpKind::kActivation, {}, {}},
      {"silu", OpKind::kActivation, {}, {}},
      {"softmax", OpKind::kSoftmax, {"causal", "mask_offset", "heads"}, {}},
      {"layernorm", OpKind::kLayerNorm, {"epsilon"}, {}},
      {"rmsnorm", OpKind::kRmsNorm, {"epsilon"}, {}},
      {"concat", OpKind::kConcat, {}, {}},
      {"reshape", OpKind::kReshape, {"shape"}, {"shape"}},
      {"flatten", OpKind::kReshape, {}, {}},
      {"slice", OpKind::kSlice, {"width", "channels"}, {}},
      {"transpose", OpKind::kTranspose, {"perm"}, {"perm"}},
      {"lstm", OpKind::kLstm, {"units", "return_sequences", "bias"}, {"units"}},
  };
  return specs;
}

std::string op_list(bool graph_form) {
  std::string list;
  for (const OpSpec& s : op_specs()) {
    if (!graph_form && input_count(s.kind) != 1) continue;
    list += std::string(list.empty() ? "" : ", ") + s.name;
  }
  return list + (graph_form ? ", split" : "") + " or relu";
}

// The op's attributes from `j` (keys already checked).
Node parse_attributes(const Where& w, const json& j, const OpSpec& spec, std::string name) {
  Node n;
  n.name = std::move(name);
  n.kind = spec.kind;
  if (j.contains("activation")) n.activation = parse_activation(w, j["activation"]);
  if (j.contains("bias")) {
    if (!j["bias"].is_boolean()) {
      w.fail_key("bias", "expected true or false, got " + json_type_name(j["bias"]));
    }
    n.bias = j["bias"].get<bool>();
  }
  switch (spec.kind) {
    case OpKind::kMatmul:
      n.units = as_size(w, "n", j["n"], 1);
      break;
    case OpKind::kDense:
      n.units = as_size(w, "units", j["units"], 1);
      break;
    case OpKind::kConv2d: {
      const bool one_d = std::string(spec.name) == "conv1d";
      n.out_channels = as_size(w, "out_channels", j["out_channels"], 1);
      if (one_d) {
        n.kernel_h = 1;
        n.kernel_w = as_size(w, "kernel", j["kernel"], 1);
      } else {
        std::tie(n.kernel_h, n.kernel_w) = as_pair(w, "kernel", j["kernel"]);
      }
      if (j.contains("stride")) n.stride = as_size(w, "stride", j["stride"], 1);
      if (j.contains("padding")) n.padding = as_size(w, "padding", j["padding"], 0);
      n.padding_h = one_d ? 0 : n.padding;
      if (j.contains("dilation")) {
        if (one_d) {
          n.dilation_w = as_size(w, "dilation", j["dilation"], 1);
        } else {
          std::tie(n.dilation_h, n.dilation_w) = as_pair(w, "dilation", j["dilation"]);
        }
      }
      if (j.contains("groups")) n.groups = as_size(w, "groups", j["groups"], 1);
      break;
    }
    case OpKind::kMaxPool2d:
    case OpKind::kAvgPool2d:
      std::tie(n.kernel_h, n.kernel_w) = as_pair(w, "kernel", j["kernel"]);
      if (n.kernel_h != n.kernel_w) w.fail_key("kernel", "pooling windows must be square");
      n.stride = j.contains("stride") ? as_size(w, "stride", j["stride"], 1) : n.kernel_h;
      if (j.contains("padding")) n.padding = as_size(w, "padding", j["padding"], 0);
      break;
    case OpKind::kReshape:
      // flatten leaves the target 0 x 0 x 0: shape inference makes it 1 x 1 x H*W*C.
      n.target = j.contains("shape") ? as_shape(w, "shape", j["shape"]) : Shape3{0, 0, 0};
      break;
    case OpKind::kActivation:
      n.activation = parse_activation(w, json(spec.name));
      break;
    case OpKind::kSoftmax:
      if (j.contains("causal")) n.causal = as_bool(w, "causal", j["causal"]);
      if (j.contains("mask_offset")) {
        if (!n.causal) w.fail_key("mask_offset", "needs \"causal\": true");
        n.mask_offset = std::int32_t(
            as_integer(w, "mask_offset", j["mask_offset"], -std::int64_t(kMaxSize), kMaxSize));
      }
      if (j.contains("heads")) {
        if (!n.causal) w.fail_key("heads", "needs \"causal\": true");
        n.heads = as_size(w, "heads", j["heads"], 1);
      }
      break;
    case OpKind::kLayerNorm:
    case OpKind::kRmsNorm:
      if (j.contains("epsilon")) n.epsilon = as_positive_float(w, "epsilon", j["epsilon"], 1);
      break;
    case OpKind::kTensorMatmul:
      if (j.contains("heads")) n.heads = as_size(w, "heads", j["heads"], 1);
      if (j.contains("transpose_b")) n.transpose_b = as_bool(w, "transpose_b", j["transpose_b"]);
      if (j.contains("scale")) n.scale = as_positive_float(w, "scale", j["scale"], 1000000);
      break;
    case OpKind::kSlice: {
      // A half-open [begin, end) range; its end is checked against the input by infer_shapes.
      const auto range = [&](const char* key, std::uint32_t& begin, std::uint32_t& end) {
        if (!j.contains(key)) return;
        const json& v = j[key];
        if (!v.is_array() || v.size() != 2) {
          w.fail_key(key, "expected [begin, end], got " + excerpt(v.dump()));
        }
        begin = as_size(w, key, v[0], 0);
        end = as_size(w, key, v[1], 1);
        if (end <= begin) {
          w.fail_key(key, "[" + std::to_string(begin) + ", " + std::to_string(end) +
                              ") is empty (end must exceed begin)");
        }
      };
      range("width", n.x0, n.x1);
      range("channels", n.c0, n.c1);
      break;
    }
    case OpKind::kTranspose: {
      const json& v = j["perm"];
      const auto bad = [&] {
        w.fail_key("perm", "expected a permutation of [0, 1, 2] (the H, W, C axes, e.g. [0, 2, 1] "
                           "for 1 x S x D -> 1 x D x S), got " + excerpt(v.dump()));
      };
      if (!v.is_array() || v.size() != 3) bad();
      bool seen[3] = {false, false, false};
      for (std::size_t a = 0; a < 3; ++a) {
        if (!v[a].is_number_integer()) bad();
        const std::int64_t x = v[a].get<std::int64_t>();
        if (x < 0 || x > 2 || seen[x]) bad();
        seen[x] = true;
        n.perm[a] = std::uint32_t(x);
      }
      break;
    }
    case OpKind::kLstm:
      n.units = as_size(w, "units", j["units"], 1);
      if (j.contains("return_sequences")) {
        n.return_sequences = as_bool(w, "return_sequences", j["return_sequences"]);
      }
      break;
    case OpKind::kGlobalAvgPool2d:
    case OpKind::kAdd:
    case OpKind::kMul:
    case OpKind::kConcat:
      break;
  }
  return n;
}

// A matmul node with "inputs" multiplies two computed tensors (graph form only).
const OpSpec& tensor_matmul_spec() {
  static const OpSpec spec = {
      "matmul", OpKind::kTensorMatmul, {"transpose_b", "heads", "scale", "activation"}, {}};
  return spec;
}

const OpSpec* find_op(const std::string& op) {
  for (const OpSpec& s : op_specs()) {
    if (op == s.name) return &s;
  }
  return nullptr;
}

struct Header {
  std::string name;
  DataType dtype = DataType::kInt8;
  std::uint32_t batch = 1;
  std::uint64_t seed = 1;
};

Header parse_header(const Where& where, const json& doc, const std::string& source) {
  Header h;
  h.name = doc.contains("name") ? as_string(where, "name", doc["name"]) : stem_of(source);
  if (doc.contains("description")) as_string(where, "description", doc["description"]);
  if (doc.contains("dtype")) {
    const std::string t = as_string(where, "dtype", doc["dtype"]);
    const std::optional<DataType> dtype = parse_data_type(t);
    if (!dtype) {
      where.fail_key("dtype", "expected \"int8\" or \"bf16\", got \"" + excerpt(t) + "\"");
    }
    h.dtype = *dtype;
  }
  if (doc.contains("batch")) h.batch = as_size(where, "batch", doc["batch"], 1);
  if (doc.contains("seed")) {
    const json& s = doc["seed"];
    if (!s.is_number_integer() || (!s.is_number_unsigned() && s.get<std::int64_t>() < 0)) {
      where.fail_key("seed", "expected a non-negative integer, got " + json_type_name(s));
    }
    h.seed = s.get<std::uint64_t>();
  }
  return h;
}

// Chain form: "layers", each reading the previous layer's output unless it brings its own
// "input" (or is a matmul); every output nobody reads becomes a graph output.
void parse_chain(const Where& where, const json& doc, Graph& g) {
  Builder b(g);
  const json& layers = doc["layers"];
  if (!layers.is_array() || layers.empty()) {
    where.fail_key("layers", "expected a non-empty array of layer objects");
  }
  std::int64_t current = -1;  // tensor the next layer reads
  if (doc.contains("input")) {
    current = b.add_input(where, "input", g.batch, as_shape(where, "input", doc["input"]));
  }
  std::vector<std::size_t> layer_index;  // entry index of each node, for messages
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const json& lj = layers[i];
    Where lw = where.layer(i, "?");
    if (!lj.is_object()) lw.fail("expected a layer object, got " + json_type_name(lj));
    if (!lj.contains("type")) lw.fail("missing required key 'type'");
    const std::string type = as_string(lw, "type", lj["type"]);
    std::string name = type + "_" + std::to_string(i);
    if (lj.contains("name")) name = as_string(lw, "name", lj["name"]);
    lw = where.layer(i, name);
    if (name.empty()) lw.fail_key("name", "must not be empty");

    if (type == "relu") {
      check_keys(lw, lj, {"type", "name"}, {}, "a relu layer");
      if (g.nodes.empty()) lw.fail("relu has no previous layer to fuse into");
      Node& prev = g.nodes.back();
      if (!is_gemm(prev.kind)) {
        lw.fail(std::string("relu cannot be fused into ") + to_string(prev.kind) + " layer '" +
                prev.name + "' (only into conv2d, dense or matmul)");
      }
      if (prev.activation != Activation::kNone) {
        lw.fail("relu cannot be fused: layer '" + prev.name + "' already has an activation");
      }
      prev.activation = Activation::kRelu;
      continue;
    }
    const OpSpec* spec = find_op(type);
    if (!spec || input_count(spec->kind) != 1) {
      lw.fail_key("type", "unknown layer type \"" + excerpt(type) + "\" (expected " + op_list(false) +
                              "; add, mul, concat and split need the graph form)");
    }
    std::set<std::string> allowed = spec->keys;
    allowed.insert({"type", "name"});
    if (spec->kind != OpKind::kMatmul) allowed.insert("input");
    check_keys(lw, lj, allowed, spec->required, "a " + type + " layer");
    Node node = parse_attributes(lw, lj, *spec, name);
    if (spec->kind == OpKind::kMatmul) {
      current = b.add_input(lw, name + ".input", as_size(lw, "m", lj["m"], 1),
                            {1, 1, as_size(lw, "k", lj["k"], 1)});
    } else if (lj.contains("input")) {
      current = b.add_input(lw, name + ".input", g.batch, as_shape(lw, "input", lj["input"]));
    } else if (current < 0) {
      lw.fail("no input shape: give the model an 'input' key or this layer an 'input' key");
    }
    node.inputs = {TensorId(current)};
    current = b.add_node(lw, std::move(node)).output;
  }
  // Every output nobody reads is a result of the model.
  std::vector<bool> read(g.tensors.size(), false);
  for (const Node& n : g.nodes) {
    for (TensorId id : n.inputs) read[id] = true;
  }
  for (const Node& n : g.nodes) {
    if (!read[n.output]) g.outputs.push_back(n.output);
  }
}

// A split node: one slice per name in "outputs", part k of the axis ("channels" or "width")
// in "sizes" or equal parts; infer_shapes sets each range (Node::split, split_ranges), so the
// ONNX importer's Split and this share one definition.
void add_split(Builder& b, const Where& w, const json& j, const std::string& name, TensorId in) {
  const std::string axis = as_string(w, "axis", j["axis"]);
  if (axis != "channels" && axis != "width") {
    w.fail_key("axis", "expected \"channels\" or \"width\", got \"" + excerpt(axis) + "\"");
  }
  const json& outs = j["outputs"];
  if (!outs.is_array() || outs.empty()) {
    w.fail_key("outputs", "expected a non-empty array of tensor names");
  }
  std::vector<std::uint64_t> sizes;
  if (j.contains("sizes")) {
    const json& v = j["sizes"];
    if (!v.is_array() || v.size() != outs.size()) {
      w.fail_key("sizes", "expected an array of " + std::to_string(outs.size()) +
                              " sizes (one per output), got " + excerpt(v.dump()));
    }
    for (const json& x : v) sizes.push_back(as_size(w, "sizes", x, 1));
  }
  for (std::size_t k = 0; k < outs.size(); ++k) {
    Node n;
    n.name = as_string(w, "outputs", outs[k]);
    if (n.name.empty()) w.fail_key("outputs", "names must not be empty");
    n.kind = OpKind::kSlice;
    n.inputs = {in};
    n.split = {name, std::uint32_t(k), std::uint32_t(outs.size()), axis == "width", sizes};
    b.add_node(w, std::move(n));
  }
}

// Graph form: "inputs" [{"name", "shape"}], "nodes" in execution order, each naming its
// "inputs", and "outputs".
void parse_graph(const Where& where, const json& doc, Graph& g) {
  Builder b(g);
  const json& inputs = doc["inputs"];
  if (!inputs.is_array() || inputs.empty()) {
    where.fail_key("inputs", "expected a non-empty array of {\"name\", \"shape\"} objects");
  }
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const json& ij = inputs[i];
    Where iw = where.input(i);
    if (!ij.is_object()) iw.fail("expected an object, got " + json_type_name(ij));
    check_keys(iw, ij, {"name", "shape"}, {"name", "shape"}, "a graph input");
    const std::string name = as_string(iw, "name", ij["name"]);
    if (name.empty()) iw.fail_key("name", "must not be empty");
    b.add_input(iw, name, g.batch, as_shape(iw, "shape", ij["shape"]));
  }
  const json& nodes = doc["nodes"];
  if (!nodes.is_array() || nodes.empty()) {
    where.fail_key("nodes", "expected a non-empty array of node objects");
  }
  // Names first, so a reference to a later node can be told apart from an unknown name.
  std::vector<std::string> names(nodes.size());
  std::map<std::string, std::size_t> later;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const json& nj = nodes[i];
    Where nw = where.node(i, "?");
    if (!nj.is_object()) nw.fail("expected a node object, got " + json_type_name(nj));
    if (!nj.contains("op")) nw.fail("missing required key 'op'");
    const std::string op = as_string(nw, "op", nj["op"]);
    names[i] = nj.contains("name") ? as_string(nw, "name", nj["name"]) : op + "_" + std::to_string(i);
    if (names[i].empty()) nw.fail_key("name", "must not be empty");
    later.emplace(names[i], i);
    if (op == "split" && nj.contains("outputs") && nj["outputs"].is_array()) {
      for (const json& o : nj["outputs"]) {
        if (o.is_string()) later.emplace(o.get<std::string>(), i);
      }
    }
  }
  // Whether node `from` reads, directly or not, the output of node `target`.
  std::function<bool(std::size_t, std::size_t, std::set<std::size_t>&)> reaches =
      [&](std::size_t from, std::size_t target, std::set<std::size_t>& seen) {
        if (from == target) return true;
        if (!seen.insert(from).second || !nodes[from].contains("inputs")) return false;
        const json& in = nodes[from]["inputs"];
        if (!in.is_array()) return false;
        for (const json& x : in) {
          if (!x.is_string()) continue;
          auto it = later.find(x.get<std::string>());
          if (it != later.end() && reaches(it->second, target, seen)) return true;
        }
        return false;
      };
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const json& nj = nodes[i];
    Where nw = where.node(i, names[i]);
    const std::string op = as_string(nw, "op", nj["op"]);
    const bool relu = op == "relu", split = op == "split";
    // relu and split have no spec: relu takes only its input, split names its outputs.
    const OpSpec* spec = find_op(op);
    if (!spec && !relu && !split) {
      nw.fail_key("op", "unknown op \"" + excerpt(op) + "\" (expected " + op_list(true) + ")");
    }
    if (spec && spec->kind == OpKind::kMatmul && nj.contains("inputs")) {
      spec = &tensor_matmul_spec();
    }
    std::set<std::string> allowed, required;
    if (spec) {
      allowed = spec->keys;
      required = spec->required;
    }
    if (split) {
      allowed = {"outputs", "axis", "sizes"};
      required = {"outputs", "axis"};
    }
    allowed.insert({"op", "name"});
    if (!spec || spec->kind != OpKind::kMatmul) {
      allowed.insert("inputs");
      required.insert("inputs");
    }
    check_keys(nw, nj, allowed, required, "a " + op + " node");
    std::vector<TensorId> ins;
    if (nj.contains("inputs")) {
      const json& in = nj["inputs"];
      if (!in.is_array()) nw.fail_key("inputs", "expected an array of tensor names");
      for (const json& x : in) {
        const std::string tn = as_string(nw, "inputs", x);
        const std::int64_t id = b.find(tn);
        if (id >= 0) {
          ins.push_back(TensorId(id));
          continue;
        }
        auto it = later.find(tn);
        if (it == later.end()) {
          nw.fail_key("inputs", "missing input '" + excerpt(tn) +
                                    "': no graph input or node has that name");
        }
        std::set<std::size_t> seen;
        if (reaches(it->second, i, seen)) {
          nw.fail_key("inputs", "cycle: '" + tn + "' depends on this node's own output");
        }
        nw.fail_key("inputs", "tensor '" + tn + "' is used before it is produced (node " +
                                  std::to_string(it->second) +
                                  " comes later; list nodes in execution order)");
      }
    }
    if (relu) {
      // Fuses into its producer, whose output it then names.
      if (ins.size() != 1) nw.fail("takes 1 input, got " + std::to_string(ins.size()));
      const Tensor& t = g.tensors[ins[0]];
      Node* prev = t.producer >= 0 ? &g.nodes[std::size_t(t.producer)] : nullptr;
      if (!prev || !(is_gemm(prev->kind) || prev->kind == OpKind::kAdd)) {
        nw.fail("relu fuses into the conv2d, dense, matmul or add producing its input; '" +
                t.name + "' is not one");
      }
      if (prev->activation != Activation::kNone) {
        nw.fail("relu cannot be fused: node '" + prev->name + "' already has an activation");
      }
      for (std::size_t j = 0; j < nodes.size(); ++j) {
        if (j == i || !nodes[j].contains("inputs") || !nodes[j]["inputs"].is_array()) continue;
        for (const json& x : nodes[j]["inputs"]) {
          if (x == json(t.name)) {
            nw.fail("relu cannot be fused into '" + t.name + "', which node '" + names[j] +
                    "' also reads; give '" + t.name + "' \"activation\": \"relu\" instead");
          }
        }
      }
      prev->activation = Activation::kRelu;
      if (b.find(names[i]) >= 0) nw.fail_key("name", "duplicate name '" + names[i] + "'");
      b.alias(names[i], ins[0]);
      continue;
    }
    if (split) {
      if (ins.size() != 1) nw.fail("takes 1 input, got " + std::to_string(ins.size()));
      add_split(b, nw, nj, names[i], ins[0]);
      continue;
    }
    Node node = parse_attributes(nw, nj, *spec, names[i]);
    if (spec->kind == OpKind::kMatmul) {
      ins = {b.add_input(nw, names[i] + ".input", as_size(nw, "m", nj["m"], 1),
                         {1, 1, as_size(nw, "k", nj["k"], 1)})};
    }
    node.inputs = ins;
    b.add_node(nw, std::move(node));
  }
  const json& outputs = doc["outputs"];
  if (!outputs.is_array() || outputs.empty()) {
    where.fail_key("outputs", "expected a non-empty array of tensor names");
  }
  for (const json& o : outputs) {
    const std::string tn = as_string(where, "outputs", o);
    const std::int64_t id = b.find(tn);
    if (id < 0) where.fail_key("outputs", "no node or graph input is named '" + excerpt(tn) + "'");
    for (TensorId x : g.outputs) {
      if (x == TensorId(id)) where.fail_key("outputs", "'" + tn + "' is listed twice");
    }
    g.outputs.push_back(TensorId(id));
  }
}

}  // namespace

Graph parse_model_json(const std::string& text, const std::string& source) {
  Where where(source);
  json doc;
  try {
    doc = parse_json(text);
  } catch (const JsonSyntaxError& e) {
    where.fail("invalid JSON: " + std::string(e.what()));
  }
  if (!doc.is_object()) where.fail("expected a JSON object at the top level");
  const bool graph_form = doc.contains("nodes");
  if (graph_form) {
    check_keys(where, doc, {"name", "description", "dtype", "batch", "seed", "inputs", "nodes",
                            "outputs"},
               {"inputs", "nodes", "outputs"}, "a graph model");
  } else {
    check_keys(where, doc, {"name", "description", "dtype", "batch", "input", "seed", "layers"},
               {"layers"}, "the model");
  }
  const Header h = parse_header(where, doc, source);
  Graph g;
  g.source = source;
  g.name = h.name;
  g.dtype = h.dtype;
  g.batch = h.batch;
  g.seed = h.seed;
  if (graph_form) {
    parse_graph(where, doc, g);
  } else {
    parse_chain(where, doc, g);
  }
  infer_shapes(g);
  expand_lstms(g);
  expand_transposes(g);
  return g;
}

Graph gemm_model(const std::string& name, DataType dtype, const std::vector<GemmShape>& gemms) {
  json layers = json::array();
  for (std::size_t i = 0; i < gemms.size(); ++i) {
    layers.push_back({{"name", "gemm" + std::to_string(i)},
                      {"type", "matmul"},
                      {"m", gemms[i].m},
                      {"k", gemms[i].k},
                      {"n", gemms[i].n}});
  }
  const json doc = {{"name", name}, {"dtype", to_string(dtype)}, {"layers", layers}};
  return parse_model_json(doc.dump(), "<" + name + ">");
}

Graph parse_scalesim_csv(const std::string& text, const std::string& source) {
  Graph g;
  g.source = source;
  g.name = stem_of(source);
  Builder b(g);
  CsvKind kind = CsvKind::kNone;
  for (const CsvRecord& record : scalesim_records(text, source)) {
    Where where(source + ":" + std::to_string(record.line));
    const std::vector<std::string> fields = scalesim_fields(record.fields);
    if (kind == CsvKind::kNone) {
      kind = csv_kind_of_header(fields);
      if (kind == CsvKind::kNone) {
        where.fail("not a SCALE-Sim topology header (expected 'Layer name, IFMAP Height, "
                   "IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,' "
                   "or 'Layer, M, N, K,')");
      }
      continue;
    }
    const std::vector<std::string>& columns = kind == CsvKind::kConv ? kConvColumns : kGemmColumns;
    if (fields.size() != columns.size()) {
      where.fail("expected " + std::to_string(columns.size()) + " columns, got " +
                 std::to_string(fields.size()));
    }
    std::vector<std::uint32_t> v(fields.size(), 0);
    for (std::size_t c = 1; c < fields.size(); ++c) {
      const std::string& f = fields[c];
      bool digits = !f.empty() && std::all_of(f.begin(), f.end(), [](char ch) {
        return std::isdigit(static_cast<unsigned char>(ch));
      });
      if (!digits || f.size() > 9 || std::stoll(f) < 1 || std::stoll(f) > kMaxSize) {
        where.fail("column '" + columns[c] + "': expected a positive integer, got '" + excerpt(f) +
                   "'");
      }
      v[c] = std::uint32_t(std::stoll(f));
    }
    Node node;
    node.name = fields[0];
    if (node.name.empty()) where.fail("column '" + columns[0] + "': empty layer name");
    if (b.find(node.name) >= 0) {
      where.fail("column '" + columns[0] + "': duplicate layer name '" + excerpt(node.name) + "'");
    }
    Where lw = where.layer(g.nodes.size(), node.name);
    // Each row is an independent layer with its own generated input.
    if (kind == CsvKind::kConv) {
      node.kind = OpKind::kConv2d;
      node.kernel_h = v[3];
      node.kernel_w = v[4];
      node.out_channels = v[6];
      node.stride = v[7];
      if (node.kernel_h > v[1] || node.kernel_w > v[2]) {
        lw.fail("filter " + std::to_string(v[3]) + "x" + std::to_string(v[4]) +
                " is larger than the ifmap " + std::to_string(v[1]) + "x" + std::to_string(v[2]));
      }
      node.inputs = {b.add_input(lw, node.name + ".input", g.batch, {v[1], v[2], v[5]})};
    } else {
      node.kind = OpKind::kMatmul;
      node.units = v[2];
      node.inputs = {b.add_input(lw, node.name + ".input", v[1], {1, 1, v[3]})};
    }
    g.outputs.push_back(b.add_node(lw, std::move(node)).output);
  }
  if (kind == CsvKind::kNone) Where(source).fail("empty topology file");
  if (g.nodes.empty()) Where(source).fail("topology file has a header but no layers");
  infer_shapes(g);
  return g;
}

// protobuf's own limit on one message.
constexpr std::uint64_t kMaxOnnxBytes = 2ull << 30;

Graph load_model(const std::string& path) {
  std::string why;
  const std::optional<std::string> file = read_file(path, kMaxOnnxBytes, &why);
  if (!file) throw CompileError(path + ": cannot open model file (" + why + ")");
  const std::string& text = *file;
  // ONNX is a protobuf: dispatch on its first byte, or on the extension for a corrupt one.
  const bool onnx_name = path.size() > 5 && path.compare(path.size() - 5, 5, ".onnx") == 0;
  if (looks_like_onnx(text) || onnx_name) return parse_onnx(text, path);
  if (text.size() > kMaxTextInputBytes) {
    throw CompileError(path + ": cannot open model file (too large: " +
                       std::to_string(text.size()) + " bytes, at most " +
                       std::to_string(kMaxTextInputBytes) + " allowed)");
  }
  std::string head = trim(text);
  if (!head.empty() && head[0] == '{') return parse_model_json(text, path);
  // The first line alone: a quote it leaves open makes it no SCALE-Sim header.
  std::vector<CsvRecord> first;
  try {
    first = parse_csv(head.substr(0, head.find('\n')), path);
  } catch (const CsvSyntaxError&) {
  }
  if (!first.empty() && csv_kind_of_header(scalesim_fields(first[0].fields)) != CsvKind::kNone) {
    return parse_scalesim_csv(text, path);
  }
  throw CompileError(path +
                     ": not a model: expected model JSON (starting with '{'), a SCALE-Sim "
                     "topology CSV (header 'Layer name, IFMAP Height, ...' or 'Layer, M, N, K') "
                     "or an ONNX model (.onnx)");
}

std::string stem_of(const std::string& path) {
  std::string base = path.substr(path.find_last_of('/') + 1);
  std::size_t dot = base.find_last_of('.');
  return dot == std::string::npos || dot == 0 ? base : base.substr(0, dot);
}

void set_dtype(Graph& graph, DataType dtype) {
  for (const Node& n : graph.nodes) {
    if (n.quant.given() && dtype != DataType::kInt8) {
      throw CompileError(graph.source + ": a quantised ONNX graph runs int8 only (its own scales "
                         "and zero points), not " + to_string(dtype));
    }
  }
  graph.dtype = dtype;
}

}  // namespace tpu
