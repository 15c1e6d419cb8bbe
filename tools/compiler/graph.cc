#include "tools/compiler/graph.h"

#include <algorithm>
#include <set>

#include "sim/config/user_input.h"

namespace tpu {

namespace {

// Elements of one tensor, all samples: 4 GiB of int8, beyond any real layer; with it no size
// computation overflows and timing-only programs stay small enough to hold.
constexpr double kMaxTensorElements = double(std::uint64_t(1) << 32);

// "" when `t` is within kMaxTensorElements, else why not.
std::string too_large(const Tensor& t) {
  const double elements = double(t.samples) * t.shape.h * t.shape.w * t.shape.c;
  if (elements <= kMaxTensorElements) return "";
  return "tensor '" + excerpt(t.name) + "' of " + std::to_string(t.samples) + " x " + to_string(t.shape) +
         " has more than " + std::to_string(std::uint64_t(kMaxTensorElements)) + " elements";
}

[[noreturn]] void fail(const Graph& g, const Node& n, std::size_t index, const std::string& what) {
  throw CompileError(g.source + ": node " + std::to_string(index) + " '" + n.name + "' (" +
                     to_string(n.kind) + "): " + what);
}

// Whether no element of tensor t can be negative: it comes out of a relu, relu6 or sigmoid
// activation or a softmax, or from pooling, concatenating or reshaping such tensors (generated
// inputs are signed).
bool non_negative(const Graph& g, TensorId t) {
  const Tensor& x = g.tensors[t];
  if (x.producer < 0) return false;
  const Node& p = g.nodes[std::size_t(x.producer)];
  if (p.activation == Activation::kRelu || p.activation == Activation::kRelu6 ||
      p.activation == Activation::kSigmoid) {
    return true;
  }
  switch (p.kind) {
    case OpKind::kSoftmax:
      return true;
    case OpKind::kMaxPool2d:
    case OpKind::kAvgPool2d:
    case OpKind::kGlobalAvgPool2d:
    case OpKind::kReshape:
    case OpKind::kConcat:
    case OpKind::kSlice:
    case OpKind::kTranspose:
      for (TensorId in : p.inputs) {
        if (!non_negative(g, in)) return false;
      }
      return true;
    default:
      return false;
  }
}
}  // namespace

std::size_t input_count(OpKind kind) {
  switch (kind) {
    case OpKind::kAdd: return 2;
    case OpKind::kMul: return 2;
    case OpKind::kTensorMatmul: return 2;
    case OpKind::kConcat: return 0;  // two or more
    default: return 1;
  }
}

std::string to_string(const Shape3& s) {
  return std::to_string(s.h) + "x" + std::to_string(s.w) + "x" + std::to_string(s.c);
}

const char* to_string(OpKind kind) {
  switch (kind) {
    case OpKind::kMatmul: return "matmul";
    case OpKind::kTensorMatmul: return "matmul";
    case OpKind::kDense: return "dense";
    case OpKind::kConv2d: return "conv2d";
    case OpKind::kMaxPool2d: return "maxpool2d";
    case OpKind::kAvgPool2d: return "avgpool2d";
    case OpKind::kGlobalAvgPool2d: return "global_avgpool2d";
    case OpKind::kAdd: return "add";
    case OpKind::kMul: return "mul";
    case OpKind::kActivation: return "activation";
    case OpKind::kSoftmax: return "softmax";
    case OpKind::kLayerNorm: return "layernorm";
    case OpKind::kRmsNorm: return "rmsnorm";
    case OpKind::kConcat: return "concat";
    case OpKind::kReshape: return "reshape";
    case OpKind::kSlice: return "slice";
    case OpKind::kTranspose: return "transpose";
    case OpKind::kLstm: return "lstm";
  }
  return "?";
}

bool is_gemm(OpKind kind) {
  return kind == OpKind::kMatmul || kind == OpKind::kTensorMatmul || kind == OpKind::kDense ||
         kind == OpKind::kConv2d;
}

bool is_view(OpKind kind) { return kind == OpKind::kConcat || kind == OpKind::kReshape; }

bool is_eltwise(OpKind kind) {
  return kind == OpKind::kAdd || kind == OpKind::kMul || kind == OpKind::kActivation ||
         kind == OpKind::kSoftmax || kind == OpKind::kLayerNorm || kind == OpKind::kRmsNorm;
}

std::uint64_t Node::weight_count() const {
  if (kind == OpKind::kTensorMatmul) return 0;  // b is a computed tensor
  if (is_gemm(kind)) return gemm_k() * gemm_n();
  if (kind == OpKind::kLayerNorm) return 2 * std::uint64_t(in.c);
  if (kind == OpKind::kRmsNorm) return in.c;
  return 0;
}

std::uint64_t Node::gemm_m() const {
  if (kind == OpKind::kConv2d || kind == OpKind::kTensorMatmul) {
    return std::uint64_t(samples) * out.h * out.w;
  }
  return samples;
}

std::uint64_t Node::gemm_k() const {
  if (kind == OpKind::kConv2d) return std::uint64_t(kernel_h) * kernel_w * (in.c / groups);
  if (kind == OpKind::kTensorMatmul) return in.c / heads;
  return in.elements();
}

std::uint64_t Node::gemm_n() const { return out.c; }

std::uint64_t Node::macs() const { return is_gemm(kind) ? gemm_m() * gemm_k() * gemm_n() : 0; }

std::int64_t Graph::find_tensor(const std::string& name) const {
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    if (tensors[i].name == name) return std::int64_t(i);
  }
  return -1;
}

std::vector<std::pair<std::uint64_t, std::uint64_t>> split_ranges(
    std::uint64_t size, std::uint64_t count, const std::vector<std::uint64_t>& sizes,
    std::string& error) {
  const auto list = [&] {
    std::string s;
    for (std::uint64_t x : sizes) s += (s.empty() ? "" : ", ") + std::to_string(x);
    return "[" + s + "]";
  };
  std::vector<std::uint64_t> parts = sizes;
  if (count == 0) {
    error = "no outputs";
    return {};
  }
  if (parts.empty()) {
    if (size % count != 0) {
      error = "the axis of " + std::to_string(size) + " does not split into " +
              std::to_string(count) + " equal parts (give \"sizes\")";
      return {};
    }
    parts.assign(count, size / count);
  }
  if (parts.size() != count) {
    error = "sizes " + list() + " name " + std::to_string(parts.size()) + " parts for " +
            std::to_string(count) + " outputs";
    return {};
  }
  std::uint64_t sum = 0;
  for (std::uint64_t x : parts) {
    if (x == 0) {
      error = "sizes " + list() + " has an empty part";
      return {};
    }
    sum += x;
  }
  if (sum != size) {
    error = "sizes " + list() + " sum to " + std::to_string(sum) + ", but the axis has " +
            std::to_string(size);
    return {};
  }
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
  std::uint64_t at = 0;
  for (std::uint64_t x : parts) {
    ranges.push_back({at, at + x});
    at += x;
  }
  return ranges;
}

void infer_shapes(Graph& g) {
  for (TensorId id : g.inputs) {
    if (const std::string why = too_large(g.tensors[id]); !why.empty()) {
      throw CompileError(g.source + ": graph input: " + why);
    }
  }
  for (Tensor& t : g.tensors) t.consumers.clear();
  for (std::size_t i = 0; i < g.nodes.size(); ++i) {
    Node& n = g.nodes[i];
    const std::size_t want = input_count(n.kind);
    if (want > 0 && n.inputs.size() != want) {
      fail(g, n, i, "takes " + std::to_string(want) + " input" + (want > 1 ? "s" : "") + ", got " +
                        std::to_string(n.inputs.size()));
    }
    if (n.kind == OpKind::kConcat && n.inputs.size() < 2) {
      fail(g, n, i, "takes two or more inputs, got " + std::to_string(n.inputs.size()));
    }
    for (TensorId id : n.inputs) {
      Tensor& t = g.tensors.at(id);
      if (t.producer >= std::int64_t(i)) {
        fail(g, n, i, "input '" + t.name + "' is used before it is produced");
      }
      t.consumers.push_back(std::uint32_t(i));
    }
    if (n.shares_weights >= 0) {
      const std::size_t from = std::size_t(n.shares_weights);
      if (from >= i || g.nodes[from].kind != n.kind || !is_gemm(n.kind) ||
          g.nodes[from].in != g.tensors[n.inputs.at(0)].shape || g.nodes[from].units != n.units) {
        fail(g, n, i, "shares the weights of node " + std::to_string(from) +
                          ", which is not an earlier GEMM of the same kind and shape");
      }
    }
    const Tensor& x = g.tensors[n.inputs.at(0)];
    n.samples = x.samples;
    n.in = x.shape;
    const Shape3 in = n.in;
    switch (n.kind) {
      case OpKind::kMatmul:
      case OpKind::kDense:
        if (in.elements() > kMaxSize) {
          fail(g, n, i, "flattened input of " + std::to_string(in.elements()) +
                            " features exceeds the limit " + std::to_string(kMaxSize));
        }
        n.out = {1, 1, n.units};
        break;
      case OpKind::kTensorMatmul: {
        const Tensor& y = g.tensors[n.inputs[1]];
        const Shape3 b = y.shape;
        const std::uint64_t pb = std::uint64_t(b.h) * b.w;
        if (n.heads == 0 || in.c % n.heads != 0 || b.c % n.heads != 0) {
          fail(g, n, i, "key 'heads': " + std::to_string(n.heads) + " does not divide the " +
                            std::to_string(in.c) + " channels of '" + x.name + "' and the " +
                            std::to_string(b.c) + " channels of '" + y.name + "'");
        }
        if (y.samples != x.samples) {
          fail(g, n, i, "shape mismatch: '" + x.name + "' has " + std::to_string(x.samples) +
                            " samples but '" + y.name + "' has " + std::to_string(y.samples));
        }
        const std::uint64_t k = in.c / n.heads;
        // b per head: K pixels x N channels, or transposed N pixels x K channels.
        const std::uint64_t bk = n.transpose_b ? b.c / n.heads : pb;
        if (bk != k) {
          fail(g, n, i, "shape mismatch: '" + x.name + "' (" + to_string(in) + ", " +
                            std::to_string(n.heads) + " head(s)) has K = " + std::to_string(k) +
                            " channels per head but '" + y.name + "' (" + to_string(b) +
                            (n.transpose_b ? ", transposed) has " : ") has ") +
                            std::to_string(bk) +
                            (n.transpose_b ? " channels per head" : " pixels (rows)"));
        }
        const std::uint64_t nb = n.transpose_b ? pb : b.c / n.heads;
        if (nb * n.heads > kMaxSize) {
          fail(g, n, i, "output channels exceed " + std::to_string(kMaxSize));
        }
        n.out = {in.h, in.w, std::uint32_t(nb * n.heads)};
        break;
      }
      case OpKind::kConv2d: {
        if (n.dilation_h == 0 || n.dilation_w == 0) {
          fail(g, n, i, "key 'dilation': " + std::to_string(n.dilation_h) + "x" +
                            std::to_string(n.dilation_w) + " is out of range (allowed >= 1)");
        }
        if (n.groups == 0 || in.c % n.groups != 0 || n.out_channels % n.groups != 0) {
          fail(g, n, i, "key 'groups': " + std::to_string(n.groups) + " does not divide the " +
                            std::to_string(in.c) + " input channels and the " +
                            std::to_string(n.out_channels) + " output channels");
        }
        // The kernel's extent with its dilation.
        const std::uint64_t kh = (std::uint64_t(n.kernel_h) - 1) * n.dilation_h + 1;
        const std::uint64_t kw = (std::uint64_t(n.kernel_w) - 1) * n.dilation_w + 1;
        // Padding wider than the kernel only adds outputs that see nothing but zeros (as wide
        // as a 1x1 kernel restores the size a pooling took, as in an inception block).
        if (std::max(n.padding, n.padding_h) > std::max(kh, kw)) {
          fail(g, n, i, "key 'padding': " + std::to_string(std::max(n.padding, n.padding_h)) +
                            " is out of range (allowed 0.." + std::to_string(std::max(kh, kw)) +
                            ", at most the dilated kernel size)");
        }
        const std::uint64_t ph = std::uint64_t(in.h) + 2 * n.padding_h;
        const std::uint64_t pw = std::uint64_t(in.w) + 2 * n.padding;
        if (kh > ph || kw > pw) {
          fail(g, n, i, "key 'kernel': " + std::to_string(n.kernel_h) + "x" +
                            std::to_string(n.kernel_w) +
                            (kh != n.kernel_h || kw != n.kernel_w
                                 ? " dilated to " + std::to_string(kh) + "x" + std::to_string(kw)
                                 : std::string()) +
                            " is larger than the padded input " + std::to_string(ph) + "x" +
                            std::to_string(pw));
        }
        n.out = {std::uint32_t(window_outputs(in.h, n.kernel_h, n.stride, n.padding_h,
                                              n.dilation_h)),
                 std::uint32_t(window_outputs(in.w, n.kernel_w, n.stride, n.padding,
                                              n.dilation_w)),
                 n.out_channels};
        break;
      }
      case OpKind::kGlobalAvgPool2d:
        n.kernel_h = in.h;
        n.kernel_w = in.w;
        n.stride = 1;
        [[fallthrough]];
      case OpKind::kMaxPool2d:
      case OpKind::kAvgPool2d: {
        // As in PyTorch: every window keeps at least one input element.
        if (n.padding > n.kernel_h / 2) {
          fail(g, n, i, "key 'padding': " + std::to_string(n.padding) +
                            " is out of range (allowed 0.." + std::to_string(n.kernel_h / 2) +
                            ", at most half the window)");
        }
        // Padding is a zero border in memory: exact for a maximum only when no input is
        // negative, and counted in the window of an average (count_include_pad).
        if (n.padding > 0 && n.kind == OpKind::kMaxPool2d && !non_negative(g, n.inputs[0])) {
          fail(g, n, i, "key 'padding': max pooling pads with zeros, so its input '" + x.name +
                            "' must be non-negative: the output of a relu or relu6 activation "
                            "(or of pooling, concat or reshape of such outputs)");
        }
        const std::uint64_t ph = std::uint64_t(in.h) + 2 * n.padding;
        const std::uint64_t pw = std::uint64_t(in.w) + 2 * n.padding;
        if (n.kernel_h > ph || n.kernel_w > pw) {
          fail(g, n, i, "key 'kernel': " + std::to_string(n.kernel_h) + "x" +
                            std::to_string(n.kernel_w) + " is larger than the input " +
                            std::to_string(ph) + "x" + std::to_string(pw));
        }
        n.out = {std::uint32_t(window_outputs(in.h, n.kernel_h, n.stride, n.padding)),
                 std::uint32_t(window_outputs(in.w, n.kernel_w, n.stride, n.padding)), in.c};
        break;
      }
      case OpKind::kActivation:
      case OpKind::kSoftmax:
      case OpKind::kLayerNorm:
      case OpKind::kRmsNorm:
        n.out = in;
        break;
      case OpKind::kAdd:
      case OpKind::kMul: {
        if (n.kind == OpKind::kAdd && g.dtype == DataType::kInt8 &&
            n.activation > Activation::kRelu) {
          fail(g, n, i, std::string("key 'activation': ") + to_string(n.activation) +
                            " on an int8 add is not supported (its integer requantiser has none; "
                            "add a separate " + to_string(n.activation) + " node)");
        }
        const Tensor& y = g.tensors[n.inputs[1]];
        if (y.samples != x.samples || y.shape != x.shape) {
          fail(g, n, i, "shape mismatch: '" + x.name + "' is " + std::to_string(x.samples) +
                            " x " + to_string(x.shape) + " but '" + y.name + "' is " +
                            std::to_string(y.samples) + " x " + to_string(y.shape));
        }
        n.out = in;
        break;
      }
      case OpKind::kConcat: {
        std::uint64_t c = 0;
        for (TensorId id : n.inputs) {
          const Tensor& y = g.tensors[id];
          if (y.samples != x.samples || y.shape.h != x.shape.h || y.shape.w != x.shape.w) {
            fail(g, n, i, "shape mismatch: concatenates channels of tensors of one height and "
                          "width, but '" + x.name + "' is " + std::to_string(x.samples) +
                              " x " + to_string(x.shape) + " and '" + y.name + "' is " +
                              std::to_string(y.samples) + " x " + to_string(y.shape));
          }
          c += y.shape.c;
        }
        if (c > kMaxSize) fail(g, n, i, "concatenated channels exceed " + std::to_string(kMaxSize));
        n.out = {in.h, in.w, std::uint32_t(c)};
        break;
      }
      case OpKind::kReshape:
        if (n.target.h == 0) {  // flatten
          if (in.elements() > kMaxSize) {
            fail(g, n, i, "flattened input of " + std::to_string(in.elements()) +
                              " features exceeds the limit " + std::to_string(kMaxSize));
          }
          n.target = {1, 1, std::uint32_t(in.elements())};
        }
        if (n.target.elements() != in.elements()) {
          fail(g, n, i, "shape mismatch: cannot reshape " + to_string(in) + " (" +
                            std::to_string(in.elements()) + " elements) to " +
                            to_string(n.target) + " (" + std::to_string(n.target.elements()) +
                            ")");
        }
        n.out = n.target;
        break;
      case OpKind::kSlice: {
        if (n.split.count > 0) {
          std::string error;
          const auto ranges =
              split_ranges(n.split.width ? in.w : in.c, n.split.count, n.split.sizes, error);
          if (ranges.empty()) {
            fail(g, n, i, "part of split '" + n.split.node + "' along " +
                              (n.split.width ? "width" : "channels") + ": " + error);
          }
          const auto [begin, end] = ranges[n.split.index];
          (n.split.width ? n.x0 : n.c0) = std::uint32_t(begin);
          (n.split.width ? n.x1 : n.c1) = std::uint32_t(end);
        }
        if (n.x1 == 0) n.x1 = in.w;
        if (n.c1 == 0) n.c1 = in.c;
        if (n.x0 >= n.x1 || n.x1 > in.w) {
          fail(g, n, i, "key 'width': [" + std::to_string(n.x0) + ", " + std::to_string(n.x1) +
                            ") is not a non-empty range of the input's " + std::to_string(in.w) +
                            " columns");
        }
        if (n.c0 >= n.c1 || n.c1 > in.c) {
          fail(g, n, i, "key 'channels': [" + std::to_string(n.c0) + ", " + std::to_string(n.c1) +
                            ") is not a non-empty range of the input's " + std::to_string(in.c) +
                            " channels");
        }
        n.out = {in.h, n.x1 - n.x0, n.c1 - n.c0};
        break;
      }
      case OpKind::kTranspose: {
        bool seen[3] = {false, false, false};
        for (std::uint32_t a : n.perm) {
          if (a > 2 || seen[a]) {
            fail(g, n, i, "key 'perm': [" + std::to_string(n.perm[0]) + ", " +
                              std::to_string(n.perm[1]) + ", " + std::to_string(n.perm[2]) +
                              "] is not a permutation of the axes [0, 1, 2] (H, W, C)");
          }
          seen[a] = true;
        }
        const std::uint32_t dims[3] = {in.h, in.w, in.c};
        n.out = {dims[n.perm[0]], dims[n.perm[1]], dims[n.perm[2]]};
        break;
      }
      case OpKind::kLstm:
        if (in.h != 1) {
          fail(g, n, i, "input '" + x.name + "' is " + to_string(in) +
                            "; an lstm reads a sequence of shape 1 x T x F (T steps of F features)");
        }
        n.out = {1, n.return_sequences ? in.w : 1, n.units};
        break;
    }
    if (n.bias && ((!is_gemm(n.kind) && n.kind != OpKind::kLstm) ||
                   n.kind == OpKind::kTensorMatmul)) {
      fail(g, n, i, "key 'bias': only conv2d, conv1d, dense, matmul (with weights) and lstm take "
                    "a bias");
    }
    // One per output channel; an lstm's per gate pre-activation (4 x units).
    const std::uint64_t biases = n.kind == OpKind::kLstm ? 4 * std::uint64_t(n.units) : n.out.c;
    if (!n.bias_values.empty() && (!n.bias || n.bias_values.size() != biases)) {
      fail(g, n, i, "key 'bias': " + std::to_string(n.bias_values.size()) +
                        " given values, expected " + std::to_string(biases));
    }
    Tensor& out = g.tensors.at(n.output);
    out.samples = n.samples;
    out.shape = n.out;
    if (const std::string why = too_large(out); !why.empty()) fail(g, n, i, why);
  }
  for (TensorId id : g.outputs) {
    if (g.tensors.at(id).producer < 0) {
      throw CompileError(g.source + ": output '" + g.tensors[id].name +
                         "' is a graph input, not computed by any node");
    }
  }
  for (std::size_t id = 0; id < g.tensors.size(); ++id) {
    const Tensor& t = g.tensors[id];
    bool is_output = false;
    for (TensorId o : g.outputs) is_output |= o == id;
    if (!t.consumers.empty() || is_output) continue;
    if (t.producer < 0) {
      throw CompileError(g.source + ": graph input '" + t.name + "' is never used");
    }
    const std::size_t p = std::size_t(t.producer);
    fail(g, g.nodes[p], p, "output is never used (no node reads it and it is not in 'outputs')");
  }
}

TensorId GraphRewrite::add(Node n) {
  Tensor t;
  t.name = n.name;
  t.producer = std::int64_t(graph_.nodes.size());
  graph_.tensors.push_back(std::move(t));
  n.output = TensorId(graph_.tensors.size() - 1);
  graph_.nodes.push_back(std::move(n));
  return graph_.nodes.back().output;
}

TensorId GraphRewrite::add_input(Tensor t) {
  t.producer = -1;
  graph_.tensors.push_back(std::move(t));
  const TensorId id = TensorId(graph_.tensors.size() - 1);
  graph_.inputs.push_back(id);
  return id;
}

void rewrite_nodes(Graph& g, const std::function<bool(const Node&)>& replace,
                   const std::function<void(const Node&, GraphRewrite&)>& expand) {
  std::set<std::string> names;
  for (const Tensor& t : g.tensors) names.insert(t.name);
  std::vector<Node> old = std::move(g.nodes);
  g.nodes.clear();
  GraphRewrite rewrite(g);
  bool any = false;
  for (std::size_t i = 0; i < old.size(); ++i) {
    const Node& n = old[i];
    if (!replace(n)) {
      g.tensors[n.output].producer = std::int64_t(g.nodes.size());
      g.nodes.push_back(std::move(old[i]));
      continue;
    }
    any = true;
    const std::size_t first_node = g.nodes.size(), first_tensor = g.tensors.size();
    expand(n, rewrite);
    if (g.nodes.size() == first_node || g.nodes.back().output + 1 != g.tensors.size()) {
      throw std::logic_error("rewrite_nodes: the expansion of '" + n.name +
                             "' does not end with a node it added");
    }
    // The last node becomes the replaced one; the tensor it was given goes unused, so its name
    // clashes with nothing.
    g.tensors.pop_back();
    Node& last = g.nodes.back();
    last.name = n.name;
    last.output = n.output;
    g.tensors[n.output].producer = std::int64_t(g.nodes.size() - 1);
    for (std::size_t id = first_tensor; id < g.tensors.size(); ++id) {
      if (!names.insert(g.tensors[id].name).second) {
        throw CompileError(g.source + ": node " + std::to_string(i) + " '" + n.name + "' (" +
                           to_string(n.kind) + "): its step '" + g.tensors[id].name +
                           "' clashes with a tensor of that name");
      }
    }
  }
  if (any) infer_shapes(g);
}

}  // namespace tpu
