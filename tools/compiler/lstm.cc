#include "tools/compiler/lstm.h"

#include <set>
#include <string>

namespace tpu {

namespace {

class Expander {
 public:
  explicit Expander(Graph& g) : g_(g) {
    for (const Tensor& t : g.tensors) names_.insert(t.name);
  }

  void run() {
    std::vector<Node> old = std::move(g_.nodes);
    g_.nodes.clear();
    bool any = false;
    for (std::size_t i = 0; i < old.size(); ++i) {
      if (old[i].kind == OpKind::kLstm) {
        expand(old[i], i);
        any = true;
      } else {
        const TensorId out = old[i].output;
        push(std::move(old[i]), out);
      }
    }
    if (any) infer_shapes(g_);
  }

 private:
  // Appends `n` producing tensor `out`.
  TensorId push(Node n, TensorId out) {
    n.output = out;
    g_.tensors[out].producer = std::int64_t(g_.nodes.size());
    g_.nodes.push_back(std::move(n));
    return out;
  }

  // Appends `n` producing a new tensor named after it.
  TensorId add(Node n) {
    if (!names_.insert(n.name).second) {
      throw CompileError(g_.source + ": node " + std::to_string(index_) + " '" + lstm_ +
                         "' (lstm): its step node '" + n.name + "' clashes with a tensor of that name");
    }
    Tensor t;
    t.name = n.name;
    g_.tensors.push_back(t);
    return push(std::move(n), TensorId(g_.tensors.size() - 1));
  }

  static Node node(std::string name, OpKind kind, std::vector<TensorId> inputs) {
    Node n;
    n.name = std::move(name);
    n.kind = kind;
    n.inputs = std::move(inputs);
    return n;
  }

  TensorId slice(std::string name, TensorId in, std::uint32_t x, std::uint32_t c0,
                 std::uint32_t c1) {
    Node n = node(std::move(name), OpKind::kSlice, {in});
    n.x0 = x;
    n.x1 = x + 1;
    n.c0 = c0;
    n.c1 = c1;
    return add(std::move(n));
  }

  TensorId activation(std::string name, Activation a, TensorId in) {
    Node n = node(std::move(name), OpKind::kActivation, {in});
    n.activation = a;
    return add(std::move(n));
  }

  // The last node of the expansion produces the lstm's own tensor and takes its name.
  TensorId finish(Node n, TensorId out, bool last) {
    if (!last) return add(std::move(n));
    n.name = lstm_;
    return push(std::move(n), out);
  }

  void expand(const Node& l, std::size_t index) {
    index_ = index;
    lstm_ = l.name;
    const std::string p = l.name + "/";
    const std::uint32_t T = l.in.w, U = l.units;
    const std::uint32_t F = l.in.c;
    Node xw = node(p + "xw", OpKind::kConv2d, {l.inputs[0]});
    xw.out_channels = 4 * U;
    xw.kernel_h = xw.kernel_w = 1;
    // Given weights: W (F x 4U) then U (U x 4U); the bias of every step's gates is xw's.
    const bool given = !l.weights.empty();
    if (given && l.weights.size() != std::uint64_t(F + U) * 4 * U) {
      throw CompileError(g_.source + ": node '" + l.name + "': " +
                         std::to_string(l.weights.size()) +
                         " given weights, expected (F + U) x 4U = " +
                         std::to_string(std::uint64_t(F + U) * 4 * U));
    }
    if (given) xw.weights.assign(l.weights.begin(), l.weights.begin() + std::uint64_t(F) * 4 * U);
    xw.bias = l.bias;
    xw.bias_values = l.bias_values;
    const TensorId xwt = add(std::move(xw));
    TensorId h = 0, c = 0;
    std::int64_t recurrent = -1;  // step 1's dense, whose weights later steps share
    std::vector<TensorId> hs;
    for (std::uint32_t t = 0; t < T; ++t) {
      const std::string s = p + "t" + std::to_string(t) + "/";
      // Step 0 has no recurrent term: its gates come straight from column 0 of xw.
      TensorId z = xwt;
      std::uint32_t col = 0;
      if (t > 0) {
        const TensorId x = slice(s + "x", xwt, t, 0, 4 * U);
        Node hw = node(s + "hw", OpKind::kDense, {h});
        hw.units = 4 * U;
        hw.shares_weights = recurrent;
        if (recurrent < 0) {
          recurrent = std::int64_t(g_.nodes.size());
          if (given) {
            hw.weights.assign(l.weights.begin() + std::uint64_t(F) * 4 * U, l.weights.end());
          }
        }
        z = add(node(s + "z", OpKind::kAdd, {x, add(std::move(hw))}));
      }
      const auto gate = [&](const char* name, std::uint32_t k, Activation a) {
        return activation(s + name, a, slice(s + "z" + name, z, col, k * U, (k + 1) * U));
      };
      const TensorId i = gate("i", 0, Activation::kSigmoid);
      const TensorId g = gate("g", 2, Activation::kTanh);
      const TensorId o = gate("o", 3, Activation::kSigmoid);
      const TensorId ig = add(node(s + "ig", OpKind::kMul, {i, g}));
      if (t > 0) {
        const TensorId f = gate("f", 1, Activation::kSigmoid);
        const TensorId fc = add(node(s + "fc", OpKind::kMul, {f, c}));
        c = add(node(s + "c", OpKind::kAdd, {fc, ig}));
      } else {
        c = ig;
      }
      const TensorId tc = activation(s + "tc", Activation::kTanh, c);
      const bool last = t + 1 == T && (!l.return_sequences || T == 1);
      h = finish(node(s + "h", OpKind::kMul, {o, tc}), l.output, last);
      hs.push_back(h);
    }
    if (!l.return_sequences || T == 1) return;
    Node seq = node(p + "seq", OpKind::kConcat, hs);
    Node r = node(l.name, OpKind::kReshape, {add(std::move(seq))});
    r.target = {1, T, U};
    push(std::move(r), l.output);
  }

  Graph& g_;
  std::set<std::string> names_;
  std::size_t index_ = 0;
  std::string lstm_;
};

}  // namespace

void expand_lstms(Graph& graph) { Expander(graph).run(); }

}  // namespace tpu
