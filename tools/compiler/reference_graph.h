#pragma once
// The reference interpreter: runs a Graph on its generated data with the plain kernels of
// reference.h, node by node, and so defines every output the machine must produce. It shares no
// code with lowering; the compiler takes from it only the int8 requantisers it calibrates and
// the expected outputs.
//
// int8 arithmetic. Every int8 tensor carries a real-valued scale (value = q * scale): generated
// inputs and weights 1/64. A GEMM's accumulator has scale s_x * s_w; its requantiser
// (multiplier, shift) maps the largest |accumulator| to about 100, so the output scale is
// s_x * s_w * 2^shift / multiplier. A quantised ONNX graph's GEMM (Node::quant) instead takes
// the graph's scales: multiplier / 2^shift ~= s_x * s_w / s_y (the largest shift whose
// multiplier stays below 2^15), plus its output zero point. A transpose's identity matmul
// (Node::identity_a) requantises by exactly 1 / 64, so it keeps b's values. An average pool
// requantises its int32 window sum by about 1 / (kernel_h * kernel_w). An add brings both
// inputs to one output scale, chosen so the largest |a * s_a + b * s_b| maps to about 100:
// q = (a * m_a + b * m_b) >> shift, rounded. Max pooling, concat, reshape, slice and transpose
// keep values (and scales) as they are. The fp32 path
// (activations beyond relu, mul, softmax) dequantises with the inputs' scales (as floats),
// computes in fp32 and requantises with 1 / output scale, the output scale chosen so the
// largest |y| maps to about 100.
// bf16: GEMMs accumulate in fp32 and round outputs to bf16; pooling and add work in fp32 and
// round the result to bf16.
#include <cstdint>
#include <vector>

#include "tools/compiler/data.h"
#include "tools/compiler/graph.h"

namespace tpu {

// The int8 requantiser of one node: GEMM (multiplier, shift), average pool (multiplier, shift),
// add (multiplier, multiplier_b, shift). Unused for bf16.
struct Requant {
  std::int32_t multiplier = 1;
  std::int32_t multiplier_b = 0;
  std::uint8_t shift = 0;
  std::int8_t zero_point = 0;  // int8 output zero point (a quantised graph's GEMMs)
  // The fp32 path (a GEMM with an activation beyond relu, mul, standalone activations,
  // softmax): input scales and 1 / output scale.
  float scale_a = 1.0f, scale_b = 1.0f, scale_out = 1.0f;
};

struct Evaluation {
  std::vector<Values> tensors;   // every tensor as the machine holds it (bf16-rounded)
  std::vector<Values> expected;  // per node: its output as checked (fp32 before the rounding)
  std::vector<Requant> requant;  // per node
  // Per node with a bias: the words ACTIVATE adds to the accumulators. int8: the bias in
  // accumulator units, round(b / (s_x * s_w)) clamped to int32 (the int32 sum wraps); bf16:
  // its fp32 bits.
  std::vector<std::vector<std::uint32_t>> bias_words;
};

Evaluation evaluate(const Graph& graph, const GraphData& data);

// The requantisers of a timing-only compile (no data): from the shapes alone, so timing-only
// and functional programs differ only in these fields.
std::vector<Requant> requant_from_shapes(const Graph& graph);

}  // namespace tpu
