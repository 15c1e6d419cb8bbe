#include "sim/isa/vector_cost.h"

#include <algorithm>

#include "sim/cycles.h"

namespace tpu {
namespace {

constexpr std::size_t kAlu = std::size_t(VectorOp::kAlu);
constexpr std::size_t kExp = std::size_t(VectorOp::kExp);
constexpr std::size_t kReciprocal = std::size_t(VectorOp::kReciprocal);
constexpr std::size_t kRsqrt = std::size_t(VectorOp::kRsqrt);
constexpr std::size_t kReduceMax = std::size_t(VectorOp::kReduceMax);
constexpr std::size_t kReduceSum = std::size_t(VectorOp::kReduceSum);

struct ClassTiming {
  std::uint64_t latency, cycles;
};
ClassTiming timing(VectorOp op, const VectorConfig& c) {
  switch (op) {
    case VectorOp::kAlu:
      return {c.alu_latency, c.alu_cycles};
    case VectorOp::kExp:
      return {c.exp_latency, c.exp_cycles};
    case VectorOp::kReciprocal:
      return {c.reciprocal_latency, c.reciprocal_cycles};
    case VectorOp::kRsqrt:
      return {c.rsqrt_latency, c.rsqrt_cycles};
    case VectorOp::kReduceMax:
      return {c.reduce_max_latency, c.reduce_max_cycles};
    case VectorOp::kReduceSum:
      return {c.reduce_sum_latency, c.reduce_sum_cycles};
  }
  return {0, 0};
}

}  // namespace

const char* to_string(VectorOp op) {
  switch (op) {
    case VectorOp::kAlu:
      return "alu";
    case VectorOp::kExp:
      return "exp";
    case VectorOp::kReciprocal:
      return "reciprocal";
    case VectorOp::kRsqrt:
      return "rsqrt";
    case VectorOp::kReduceMax:
      return "reduce_max";
    case VectorOp::kReduceSum:
      return "reduce_sum";
  }
  return "?";
}

OpCounts activation_ops(Activation func) {
  OpCounts ops;
  auto& g = ops.per_group;
  switch (func) {
    case Activation::kNone:
    case Activation::kRelu:
    case Activation::kRelu6:
      break;
    case Activation::kSigmoid:  // 1 / (1 + e^-x)
    case Activation::kSilu:     // x / (1 + e^-x)
      g[kExp] = 1;
      g[kAlu] = 1;
      g[kReciprocal] = 1;
      break;
    case Activation::kTanh:  // 1 - 2 / (e^2x + 1)
      g[kExp] = 1;
      g[kAlu] = 3;
      g[kReciprocal] = 1;
      break;
    case Activation::kGelu:  // 0.5 x (1 + tanh(k (x + 0.044715 x^3))): 5 + tanh's
                             // 3 + 3
      g[kExp] = 1;
      g[kAlu] = 11;
      g[kReciprocal] = 1;
      break;
  }
  return ops;
}

OpCounts vop_ops(const Instruction& inst) {
  OpCounts ops = activation_ops(inst.func);
  auto& g = ops.per_group;
  switch (inst.kind) {
    case VopKind::kMap:
      break;
    case VopKind::kMul:
      g[kAlu] += 1;
      break;
    case VopKind::kSoftmax:
      // Running max; x - max and e^(x - max); running sum; one reciprocal per row; * (1 / sum).
      g[kReduceMax] += 1;
      g[kAlu] += (inst.flags & kFlagCausal) ? 3 : 2;  // the mask: one compare-and-select
      g[kExp] += 1;
      g[kReduceSum] += 1;
      ops.per_row[kReciprocal] += 1;
      break;
    case VopKind::kLayerNorm:
      // Sum for the mean; x - mean, its square and their sum; (x - mean) * r * gamma + beta.
      // Per row: mean and variance times 1 / n, + eps, one rsqrt.
      g[kReduceSum] += 2;
      g[kAlu] += 5;
      ops.per_row[kAlu] += 3;
      ops.per_row[kRsqrt] += 1;
      break;
    case VopKind::kRmsNorm:
      // x^2 and its sum; x * r * gamma. Per row: times 1 / n, + eps, one rsqrt.
      g[kReduceSum] += 1;
      g[kAlu] += 3;
      ops.per_row[kAlu] += 2;
      ops.per_row[kRsqrt] += 1;
      break;
  }
  return ops;
}

VectorWork vector_work(const OpCounts& ops, std::uint64_t rows, std::uint64_t cols,
                       const VectorConfig& config, std::uint64_t chunk_cols) {
  VectorWork w;
  w.rows = rows;
  std::uint64_t group = 1, row = 0;
  w.latency = config.activate_latency;
  for (std::size_t k = 0; k < kNumVectorOps; ++k) {
    const ClassTiming t = timing(VectorOp(k), config);
    group += ops.per_group[k] * t.cycles;
    row += ops.per_row[k] * t.cycles;
    w.latency += (ops.per_group[k] + ops.per_row[k]) * t.latency;
  }
  const std::uint64_t lanes = config.lanes;
  const std::uint64_t width = chunk_cols ? chunk_cols : std::max<std::uint64_t>(cols, 1);
  const std::uint64_t full = cols / width, rest = cols % width;
  w.groups_per_row = full * ceil_div(width, lanes) + ceil_div(rest, lanes);
  w.cycles_per_row = w.groups_per_row * group + row;
  return w;
}

}  // namespace tpu
