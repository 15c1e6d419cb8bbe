#include "tools/compiler/data.h"

#include <algorithm>
#include <cmath>

#include "sim/host_memory.h"
#include "tools/compiler/reference.h"

namespace tpu {

namespace {

// SplitMix64: deterministic across platforms, unlike the std distributions.
class Rng {
 public:
  Rng(std::uint64_t seed, std::uint64_t stream) : state_(seed * 0x9e3779b97f4a7c15ull + stream) {
    next();
  }
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }

 private:
  std::uint64_t state_;
};

Values random_values(DataType dtype, std::uint64_t count, std::uint64_t seed,
                     std::uint64_t stream, bool weights) {
  Rng rng(seed, stream);
  Values v;
  if (dtype == DataType::kInt8) {
    v.i8.resize(count);
    for (auto& x : v.i8) x = std::int8_t(int(rng.next() % 128) - 64);
  } else {
    const float scale = weights ? 1.0f / 1024 : 1.0f / 64;
    v.f32.resize(count);
    for (auto& x : v.f32) x = float(int(rng.next() % 256) - 128) * scale;
  }
  return v;
}

// The int8 scale of a node's given weights: max |w| / 127 for a GEMM, the fixed 1/64 for a
// norm's parameters.
float given_scale(const Node& n) {
  if (!is_gemm(n.kind)) return 1.0f / 64;
  float max_abs = 0;
  for (float w : n.weights) max_abs = std::max(max_abs, std::fabs(w));
  return max_abs > 0 ? max_abs / 127 : 1.0f;
}

// A node's given weights on the machine: bf16-rounded floats, or int8 with a symmetric
// per-tensor scale (max |w| -> 127) for a GEMM and at the generated scale 1/64 (clamped) for a
// norm's gamma and beta, which the vector unit reads at that fixed scale.
Values given_values(DataType dtype, const Node& n) {
  Values v;
  if (dtype != DataType::kInt8) {
    for (float w : n.weights) v.f32.push_back(reference_round_bf16(w));
    return v;
  }
  // A quantised graph's weights are int8 values already.
  const float scale = n.quant.given() ? 1.0f : given_scale(n);
  for (float w : n.weights) {
    v.i8.push_back(std::int8_t(std::clamp(std::lround(w / scale), -128l, 127l)));
  }
  return v;
}

// A graph input's given values, the same for every sample: bf16-rounded, or int8 at the
// generated inputs' scale 1/64 (clamped).
Values given_input(DataType dtype, const Tensor& t) {
  Values v;
  for (std::uint32_t b = 0; b < t.samples; ++b) {
    for (float x : t.values) {
      if (dtype == DataType::kInt8) {
        v.i8.push_back(std::int8_t(std::clamp(std::lround(x * 64), -128l, 127l)));
      } else {
        v.f32.push_back(reference_round_bf16(x));
      }
    }
  }
  return v;
}

}  // namespace

GraphData generate_data(const Graph& graph, std::uint64_t seed) {
  GraphData d;
  const double value_bytes = graph.dtype == DataType::kInt8 ? 1 : 4;  // int8 or fp32 values
  d.inputs.resize(graph.tensors.size());
  d.weights.resize(graph.nodes.size());
  d.biases.resize(graph.nodes.size());
  for (TensorId id : graph.inputs) {
    const Tensor& t = graph.tensors[id];
    d.inputs[id] = allocating("input '" + t.name + "'", double(t.elements()) * value_bytes, [&] {
      return t.values.empty() ? random_values(graph.dtype, t.elements(), seed, 2 * id, false)
                              : given_input(graph.dtype, t);
    });
  }
  for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& n = graph.nodes[i];
    if (n.bias && n.bias_values.empty()) {
      d.biases[i] =
          random_values(DataType::kBf16, n.out.c, seed, 2 * (graph.nodes.size() + i) + 1, false)
              .f32;
    } else if (n.bias) {
      // The int8 reference takes every GEMM's weights at the generated scale 1/64: a given
      // bias is rescaled to match weights held at given_scale (a quantised graph's is in
      // accumulator units already, reference_graph.h).
      const float to_generated = graph.dtype == DataType::kInt8 && !n.weights.empty() &&
                                         !n.quant.given()
                                     ? 1.0f / 64 / given_scale(n)
                                     : 1.0f;
      for (float b : n.bias_values) d.biases[i].push_back(b * to_generated);
    }
    const std::uint64_t count = n.weight_count();
    if (count == 0) continue;
    if (n.shares_weights >= 0) {
      d.weights[i] = d.weights[std::size_t(n.shares_weights)];
      continue;
    }
    if (!n.weights.empty() && n.weights.size() != count) {
      throw CompileError(graph.source + ": node '" + n.name + "': " +
                         std::to_string(n.weights.size()) + " given weights, expected " +
                         std::to_string(count));
    }
    d.weights[i] = allocating("the weights of node '" + n.name + "'", double(count) * value_bytes, [&] {
      return n.weights.empty() ? random_values(graph.dtype, count, seed, 2 * i + 1, true)
                               : given_values(graph.dtype, n);
    });
  }
  return d;
}

}  // namespace tpu
