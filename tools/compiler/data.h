#pragma once
// The data a functional compile runs on: every graph input and every GEMM or norm node's
// weights, generated deterministically from the model seed (the same on every platform), or
// the node's given weights (an imported model's) converted to the data type.
#include <cstdint>
#include <vector>

#include "tools/compiler/graph.h"

namespace tpu {

// Values of one tensor in logical NHWC order (no border): int8, or floats exact in bf16.
struct Values {
  std::vector<std::int8_t> i8;
  std::vector<float> f32;
};

struct GraphData {
  std::vector<Values> inputs;   // per tensor id; filled for graph inputs only
  std::vector<Values> weights;  // per node; GEMM nodes only: K x N row-major, K in (ky, kx, c)
  // Per node with a bias: its N real values, given or generated (multiples of 2^-6 in [-2, 2),
  // stream 2 * (nodes + i) + 1); the reference quantises them for int8 (reference_graph.h).
  std::vector<std::vector<float>> biases;
};

// int8 values in [-64, 63]; bf16 multiples of 2^-6 in [-2, 2) for inputs and of 2^-10 for
// weights. Given weights: bf16-rounded, or int8 with a symmetric per-tensor scale
// (max |w| -> 127; norms at the fixed 1/64). Graph input tensor t uses stream 2 * t (every
// input its own values), node i's weights stream 2 * i + 1.
GraphData generate_data(const Graph& graph, std::uint64_t seed);

}  // namespace tpu
