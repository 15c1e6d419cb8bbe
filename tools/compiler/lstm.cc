#include "tools/compiler/lstm.h"

#include <string>
#include <utility>
#include <vector>

namespace tpu {

namespace {

Node node(std::string name, OpKind kind, std::vector<TensorId> inputs) {
  Node n;
  n.name = std::move(name);
  n.kind = kind;
  n.inputs = std::move(inputs);
  return n;
}

TensorId slice(GraphRewrite& rw, std::string name, TensorId in, std::uint32_t x,
               std::uint32_t c0, std::uint32_t c1) {
  Node n = node(std::move(name), OpKind::kSlice, {in});
  n.x0 = x;
  n.x1 = x + 1;
  n.c0 = c0;
  n.c1 = c1;
  return rw.add(std::move(n));
}

TensorId activation(GraphRewrite& rw, std::string name, Activation a, TensorId in) {
  Node n = node(std::move(name), OpKind::kActivation, {in});
  n.activation = a;
  return rw.add(std::move(n));
}

// The last node added (the last step's h, or the reshape of their concatenation) takes the
// lstm's name and tensor (rewrite_nodes).
void expand(const Node& l, const std::string& source, GraphRewrite& rw) {
  const std::string p = l.name + "/";
  const std::uint32_t T = l.in.w, U = l.units;
  const std::uint32_t F = l.in.c;
  Node xw = node(p + "xw", OpKind::kConv2d, {l.inputs[0]});
  xw.out_channels = 4 * U;
  xw.kernel_h = xw.kernel_w = 1;
  // Given weights: W (F x 4U) then U (U x 4U); the bias of every step's gates is xw's.
  const bool given = !l.weights.empty();
  if (given && l.weights.size() != std::uint64_t(F + U) * 4 * U) {
    throw CompileError(source + ": node '" + l.name + "': " + std::to_string(l.weights.size()) +
                       " given weights, expected (F + U) x 4U = " +
                       std::to_string(std::uint64_t(F + U) * 4 * U));
  }
  if (given) xw.weights.assign(l.weights.begin(), l.weights.begin() + std::uint64_t(F) * 4 * U);
  xw.bias = l.bias;
  xw.bias_values = l.bias_values;
  const TensorId xwt = rw.add(std::move(xw));
  TensorId h = 0, c = 0;
  std::int64_t recurrent = -1;  // step 1's dense, whose weights later steps share
  std::vector<TensorId> hs;
  for (std::uint32_t t = 0; t < T; ++t) {
    const std::string s = p + "t" + std::to_string(t) + "/";
    // Step 0 has no recurrent term: its gates come straight from column 0 of xw.
    TensorId z = xwt;
    std::uint32_t col = 0;
    if (t > 0) {
      const TensorId x = slice(rw, s + "x", xwt, t, 0, 4 * U);
      Node hw = node(s + "hw", OpKind::kDense, {h});
      hw.units = 4 * U;
      hw.shares_weights = recurrent;
      if (recurrent < 0) {
        recurrent = std::int64_t(rw.next_node());
        if (given) {
          hw.weights.assign(l.weights.begin() + std::uint64_t(F) * 4 * U, l.weights.end());
        }
      }
      z = rw.add(node(s + "z", OpKind::kAdd, {x, rw.add(std::move(hw))}));
    }
    const auto gate = [&](const char* name, std::uint32_t k, Activation a) {
      return activation(rw, s + name, a, slice(rw, s + "z" + name, z, col, k * U, (k + 1) * U));
    };
    const TensorId i = gate("i", 0, Activation::kSigmoid);
    const TensorId g = gate("g", 2, Activation::kTanh);
    const TensorId o = gate("o", 3, Activation::kSigmoid);
    const TensorId ig = rw.add(node(s + "ig", OpKind::kMul, {i, g}));
    if (t > 0) {
      const TensorId f = gate("f", 1, Activation::kSigmoid);
      const TensorId fc = rw.add(node(s + "fc", OpKind::kMul, {f, c}));
      c = rw.add(node(s + "c", OpKind::kAdd, {fc, ig}));
    } else {
      c = ig;
    }
    const TensorId tc = activation(rw, s + "tc", Activation::kTanh, c);
    h = rw.add(node(s + "h", OpKind::kMul, {o, tc}));
    hs.push_back(h);
  }
  if (!l.return_sequences || T == 1) return;
  Node r = node(l.name, OpKind::kReshape, {rw.add(node(p + "seq", OpKind::kConcat, hs))});
  r.target = {1, T, U};
  rw.add(std::move(r));
}

}  // namespace

void expand_lstms(Graph& graph) {
  rewrite_nodes(
      graph, [](const Node& n) { return n.kind == OpKind::kLstm; },
      [&graph](const Node& l, GraphRewrite& rw) { expand(l, graph.source, rw); });
}

}  // namespace tpu
