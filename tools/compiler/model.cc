#include "tools/compiler/model.h"

#include <algorithm>
#include <cctype>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "sim/config/user_input.h"

namespace tpu {

namespace {

using nlohmann::json;

// Sizes beyond this are certainly typos and would overflow address arithmetic.
constexpr std::int64_t kMaxSize = std::int64_t(1) << 24;

std::string stem_of(const std::string& path) {
  std::string base = path.substr(path.find_last_of('/') + 1);
  std::size_t dot = base.find_last_of('.');
  return dot == std::string::npos || dot == 0 ? base : base.substr(0, dot);
}

std::string json_type_name(const json& v) {
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer()) return "the integer " + v.dump();
  if (v.is_number()) return "the number " + v.dump();
  if (v.is_string()) return "the string " + v.dump();
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  return "null";
}

// Error context: "file: layer 3 'conv1': key 'kernel': ...".
class Where {
 public:
  explicit Where(std::string source) : prefix_(std::move(source) + ": ") {}
  Where layer(std::size_t index, const std::string& name) const {
    Where w = *this;
    w.prefix_ += "layer " + std::to_string(index) + " '" + name + "': ";
    return w;
  }
  [[noreturn]] void fail(const std::string& what) const { throw CompileError(prefix_ + what); }
  [[noreturn]] void fail_key(const std::string& key, const std::string& what) const {
    fail("key '" + key + "': " + what);
  }

 private:
  std::string prefix_;
};

std::uint32_t as_size(const Where& where, const std::string& key, const json& v,
                      std::int64_t min) {
  if (!v.is_number_integer()) {
    where.fail_key(key, "expected an integer, got " + json_type_name(v));
  }
  std::int64_t x = v.get<std::int64_t>();
  if (v.is_number_unsigned() && v.get<std::uint64_t>() > std::uint64_t(kMaxSize)) x = kMaxSize + 1;
  if (x < min || x > kMaxSize) {
    where.fail_key(key, "expected an integer in [" + std::to_string(min) + ", " +
                            std::to_string(kMaxSize) + "], got " + v.dump());
  }
  return std::uint32_t(x);
}

// An int (square) or a [h, w] pair.
std::pair<std::uint32_t, std::uint32_t> as_pair(const Where& where, const std::string& key,
                                                const json& v) {
  if (v.is_array()) {
    if (v.size() != 2) where.fail_key(key, "expected an integer or [h, w], got " + v.dump());
    return {as_size(where, key, v[0], 1), as_size(where, key, v[1], 1)};
  }
  std::uint32_t x = as_size(where, key, v, 1);
  return {x, x};
}

Shape3 as_shape(const Where& where, const std::string& key, const json& v) {
  if (!v.is_array() || v.size() != 3) {
    where.fail_key(key, "expected [height, width, channels], got " + v.dump());
  }
  return {as_size(where, key, v[0], 1), as_size(where, key, v[1], 1),
          as_size(where, key, v[2], 1)};
}

std::string as_string(const Where& where, const std::string& key, const json& v) {
  if (!v.is_string()) where.fail_key(key, "expected a string, got " + json_type_name(v));
  return v.get<std::string>();
}

void check_keys(const Where& where, const json& obj, const std::set<std::string>& allowed,
                const std::set<std::string>& required, const std::string& what) {
  for (const auto& [key, value] : obj.items()) {
    (void)value;
    if (!allowed.count(key)) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      where.fail("unknown key '" + key + "' in " + what + " (allowed: " + list + ")");
    }
  }
  for (const auto& key : required) {
    if (!obj.contains(key)) where.fail("missing required key '" + key + "' in " + what);
  }
}

// Fills samples/in/out of `layer` given the shape flowing in. Throws on impossible shapes.
void infer_shapes(const Where& where, Layer& layer, std::uint32_t samples, Shape3 in) {
  layer.samples = samples;
  layer.in = in;
  switch (layer.kind) {
    case LayerKind::kMatmul:
      layer.out = {1, 1, layer.n};
      break;
    case LayerKind::kDense:
      if (in.elements() > std::uint64_t(kMaxSize)) {
        where.fail("flattened input of " + std::to_string(in.elements()) +
                   " features exceeds the limit " + std::to_string(kMaxSize));
      }
      layer.out = {1, 1, layer.units};
      break;
    case LayerKind::kConv2d: {
      std::uint64_t ph = std::uint64_t(in.h) + 2 * layer.padding;
      std::uint64_t pw = std::uint64_t(in.w) + 2 * layer.padding;
      if (layer.kernel_h > ph || layer.kernel_w > pw) {
        where.fail_key("kernel", std::to_string(layer.kernel_h) + "x" +
                                     std::to_string(layer.kernel_w) +
                                     " is larger than the padded input " + std::to_string(ph) +
                                     "x" + std::to_string(pw));
      }
      layer.out = {std::uint32_t((ph - layer.kernel_h) / layer.stride + 1),
                   std::uint32_t((pw - layer.kernel_w) / layer.stride + 1), layer.out_channels};
      break;
    }
    case LayerKind::kMaxPool2d:
      if (layer.kernel_h > in.h || layer.kernel_w > in.w) {
        where.fail_key("kernel", std::to_string(layer.kernel_h) + "x" +
                                     std::to_string(layer.kernel_w) +
                                     " is larger than the input " + std::to_string(in.h) + "x" +
                                     std::to_string(in.w));
      }
      layer.out = {(in.h - layer.kernel_h) / layer.stride + 1,
                   (in.w - layer.kernel_w) / layer.stride + 1, in.c};
      break;
  }
}

Activation parse_activation(const Where& where, const json& v) {
  std::string s = as_string(where, "activation", v);
  if (s == "none") return Activation::kNone;
  if (s == "relu") return Activation::kRelu;
  where.fail_key("activation", "expected \"none\" or \"relu\", got \"" + s + "\"");
}

std::string trim(const std::string& s) {
  std::size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

// Splits a CSV line; a single trailing empty field (SCALE-Sim ends rows with ',') is dropped.
std::vector<std::string> split_csv(const std::string& line) {
  std::vector<std::string> fields;
  std::stringstream ss(line);
  std::string f;
  while (std::getline(ss, f, ',')) fields.push_back(trim(f));
  if (!line.empty() && line.back() == ',') fields.push_back("");
  if (!fields.empty() && fields.back().empty()) fields.pop_back();
  return fields;
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

CsvKind csv_kind_of_header(const std::string& line) {
  std::vector<std::string> fields = split_csv(line);
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

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream ss(text);
  std::string line;
  while (std::getline(ss, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
  }
  return lines;
}

}  // namespace

const char* to_string(LayerKind kind) {
  switch (kind) {
    case LayerKind::kMatmul: return "matmul";
    case LayerKind::kDense: return "dense";
    case LayerKind::kConv2d: return "conv2d";
    case LayerKind::kMaxPool2d: return "maxpool2d";
  }
  return "?";
}

std::uint64_t Layer::gemm_m() const {
  if (kind == LayerKind::kConv2d) return std::uint64_t(samples) * out.h * out.w;
  return samples;
}

std::uint64_t Layer::gemm_k() const {
  if (kind == LayerKind::kConv2d) return std::uint64_t(kernel_h) * kernel_w * in.c;
  return in.elements();
}

std::uint64_t Layer::gemm_n() const { return out.c; }

std::uint64_t Layer::macs() const {
  if (kind == LayerKind::kMaxPool2d) return 0;
  return gemm_m() * gemm_k() * gemm_n();
}

Model parse_model_json(const std::string& text, const std::string& source) {
  Where where(source);
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::parse_error& e) {
    where.fail("invalid JSON: " + json_error_text(e.what()));
  }
  if (!doc.is_object()) where.fail("expected a JSON object at the top level");
  check_keys(where, doc, {"name", "description", "dtype", "batch", "input", "seed", "layers"},
             {"layers"}, "the model");

  Model model;
  model.source = source;
  model.name = doc.contains("name") ? as_string(where, "name", doc["name"]) : stem_of(source);
  if (doc.contains("description")) as_string(where, "description", doc["description"]);
  if (doc.contains("dtype")) {
    const std::string t = as_string(where, "dtype", doc["dtype"]);
    const std::optional<DataType> dtype = parse_data_type(t);
    if (!dtype) where.fail_key("dtype", "expected \"int8\" or \"bf16\", got \"" + t + "\"");
    model.dtype = *dtype;
  }
  if (doc.contains("batch")) model.batch = as_size(where, "batch", doc["batch"], 1);
  if (doc.contains("input")) {
    model.input = as_shape(where, "input", doc["input"]);
    model.has_input = true;
  }
  if (doc.contains("seed")) {
    const json& s = doc["seed"];
    if (!s.is_number_integer() || (s.is_number_integer() && !s.is_number_unsigned() &&
                                   s.get<std::int64_t>() < 0)) {
      where.fail_key("seed", "expected a non-negative integer, got " + json_type_name(s));
    }
    model.seed = s.get<std::uint64_t>();
  }
  const json& layers = doc["layers"];
  if (!layers.is_array() || layers.empty()) {
    where.fail_key("layers", "expected a non-empty array of layer objects");
  }

  std::set<std::string> names;
  bool have_shape = model.has_input;
  std::uint32_t samples = model.batch;
  Shape3 shape = model.input;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const json& lj = layers[i];
    Where lw = where.layer(i, "?");
    if (!lj.is_object()) lw.fail("expected a layer object, got " + json_type_name(lj));
    if (!lj.contains("type")) lw.fail("missing required key 'type'");
    std::string type = as_string(lw, "type", lj["type"]);
    std::string name = type + "_" + std::to_string(i);
    if (lj.contains("name")) name = as_string(lw, "name", lj["name"]);
    lw = where.layer(i, name);
    if (name.empty()) lw.fail_key("name", "must not be empty");

    if (type == "relu") {
      check_keys(lw, lj, {"type", "name"}, {}, "a relu layer");
      if (model.layers.empty()) lw.fail("relu has no previous layer to fuse into");
      Layer& prev = model.layers.back();
      if (prev.kind == LayerKind::kMaxPool2d) {
        lw.fail("relu cannot be fused into maxpool2d layer '" + prev.name +
                "' (only into conv2d, dense or matmul)");
      }
      if (prev.activation != Activation::kNone) {
        lw.fail("relu cannot be fused: layer '" + prev.name + "' already has an activation");
      }
      prev.activation = Activation::kRelu;
      continue;
    }

    Layer layer;
    layer.name = name;
    if (!names.insert(name).second) lw.fail_key("name", "duplicate layer name");
    std::set<std::string> allowed = {"type", "name", "activation"};
    std::set<std::string> required;
    if (type == "matmul") {
      layer.kind = LayerKind::kMatmul;
      allowed.insert({"m", "k", "n"});
      required = {"m", "k", "n"};
    } else if (type == "dense") {
      layer.kind = LayerKind::kDense;
      allowed.insert({"units", "input"});
      required = {"units"};
    } else if (type == "conv2d") {
      layer.kind = LayerKind::kConv2d;
      allowed.insert({"out_channels", "kernel", "stride", "padding", "input"});
      required = {"out_channels", "kernel"};
    } else if (type == "maxpool2d") {
      layer.kind = LayerKind::kMaxPool2d;
      allowed.insert({"kernel", "stride", "input"});
      required = {"kernel"};
    } else {
      lw.fail_key("type", "unknown layer type \"" + type +
                              "\" (expected matmul, dense, conv2d, maxpool2d or relu)");
    }
    check_keys(lw, lj, allowed, required, "a " + type + " layer");

    if (lj.contains("activation")) {
      if (layer.kind == LayerKind::kMaxPool2d) {
        lw.fail_key("activation", "maxpool2d takes no activation");
      }
      layer.activation = parse_activation(lw, lj["activation"]);
    }
    switch (layer.kind) {
      case LayerKind::kMatmul:
        layer.m = as_size(lw, "m", lj["m"], 1);
        layer.k = as_size(lw, "k", lj["k"], 1);
        layer.n = as_size(lw, "n", lj["n"], 1);
        break;
      case LayerKind::kDense:
        layer.units = as_size(lw, "units", lj["units"], 1);
        break;
      case LayerKind::kConv2d: {
        layer.out_channels = as_size(lw, "out_channels", lj["out_channels"], 1);
        auto [kh, kw] = as_pair(lw, "kernel", lj["kernel"]);
        layer.kernel_h = kh;
        layer.kernel_w = kw;
        if (lj.contains("stride")) layer.stride = as_size(lw, "stride", lj["stride"], 1);
        if (lj.contains("padding")) layer.padding = as_size(lw, "padding", lj["padding"], 0);
        break;
      }
      case LayerKind::kMaxPool2d: {
        auto [kh, kw] = as_pair(lw, "kernel", lj["kernel"]);
        if (kh != kw) lw.fail_key("kernel", "pooling windows must be square");
        if (kh > 255) lw.fail_key("kernel", "must be at most 255");
        layer.kernel_h = kh;
        layer.kernel_w = kw;
        layer.stride = lj.contains("stride") ? as_size(lw, "stride", lj["stride"], 1) : kh;
        if (layer.stride > 255) lw.fail_key("stride", "must be at most 255");
        break;
      }
    }

    if (layer.kind == LayerKind::kMatmul) {
      layer.independent_input = true;
      infer_shapes(lw, layer, layer.m, {1, 1, layer.k});
    } else if (lj.contains("input")) {
      layer.independent_input = true;
      infer_shapes(lw, layer, model.batch, as_shape(lw, "input", lj["input"]));
    } else {
      if (!have_shape) {
        lw.fail("no input shape: give the model an 'input' key or this layer an 'input' key");
      }
      infer_shapes(lw, layer, samples, shape);
    }
    have_shape = true;
    samples = layer.samples;
    shape = layer.out;
    model.layers.push_back(layer);
  }
  return model;
}

Model parse_scalesim_csv(const std::string& text, const std::string& source) {
  Model model;
  model.source = source;
  model.name = stem_of(source);
  std::vector<std::string> lines = split_lines(text);
  CsvKind kind = CsvKind::kNone;
  std::set<std::string> names;
  for (std::size_t li = 0; li < lines.size(); ++li) {
    std::string line = trim(lines[li]);
    if (line.empty()) continue;
    Where where(source + ":" + std::to_string(li + 1));
    if (kind == CsvKind::kNone) {
      kind = csv_kind_of_header(line);
      if (kind == CsvKind::kNone) {
        where.fail("not a SCALE-Sim topology header (expected 'Layer name, IFMAP Height, "
                   "IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,' "
                   "or 'Layer, M, N, K,')");
      }
      continue;
    }
    const std::vector<std::string>& columns = kind == CsvKind::kConv ? kConvColumns : kGemmColumns;
    std::vector<std::string> fields = split_csv(line);
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
        where.fail("column '" + columns[c] + "': expected a positive integer, got '" + f + "'");
      }
      v[c] = std::uint32_t(std::stoll(f));
    }
    Layer layer;
    layer.name = fields[0];
    if (layer.name.empty()) where.fail("column '" + columns[0] + "': empty layer name");
    if (!names.insert(layer.name).second) {
      where.fail("column '" + columns[0] + "': duplicate layer name '" + layer.name + "'");
    }
    layer.independent_input = true;
    Where lw = where.layer(model.layers.size(), layer.name);
    if (kind == CsvKind::kConv) {
      layer.kind = LayerKind::kConv2d;
      layer.kernel_h = v[3];
      layer.kernel_w = v[4];
      layer.out_channels = v[6];
      layer.stride = v[7];
      infer_shapes(lw, layer, model.batch, {v[1], v[2], v[5]});
    } else {
      layer.kind = LayerKind::kMatmul;
      layer.m = v[1];
      layer.n = v[2];
      layer.k = v[3];
      infer_shapes(lw, layer, layer.m, {1, 1, layer.k});
    }
    model.layers.push_back(layer);
  }
  if (kind == CsvKind::kNone) Where(source).fail("empty topology file");
  if (model.layers.empty()) Where(source).fail("topology file has a header but no layers");
  return model;
}

Model load_model(const std::string& path) {
  const std::optional<std::string> file = read_file(path);
  if (!file) throw CompileError(path + ": cannot open model file");
  const std::string& text = *file;
  std::string head = trim(text);
  if (!head.empty() && head[0] == '{') return parse_model_json(text, path);
  std::string first_line = head.substr(0, head.find('\n'));
  if (csv_kind_of_header(trim(first_line)) != CsvKind::kNone) return parse_scalesim_csv(text, path);
  throw CompileError(path +
                     ": not a model: expected model JSON (starting with '{') or a SCALE-Sim "
                     "topology CSV (header 'Layer name, IFMAP Height, ...' or 'Layer, M, N, K')");
}

}  // namespace tpu
