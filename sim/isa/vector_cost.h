#pragma once
// What a vector instruction asks of the vector unit's fp32 lanes, from the
// config: the one table of each activation's and VOP kind's operations (the
// counts of the fp32 operations its definition in semantics.cc performs), and
// the work and latency they add up to. The vector unit times ACTIVATE and VOP
// with it (sim/README.md, "Vector unit"); an energy model can count the same
// operations.
#include <array>
#include <cstdint>

#include "sim/config/config.h"
#include "sim/isa/isa.h"

namespace tpu {

// The operation classes, each with a latency and an issue cost per element
// group in the config (vector.<class>_latency, vector.<class>_cycles).
enum class VectorOp : std::uint8_t { kAlu, kExp, kReciprocal, kRsqrt, kReduceMax, kReduceSum };
constexpr std::size_t kNumVectorOps = 6;
const char* to_string(VectorOp op);

// Operations of one class per element group (`lanes` elements of a row) and
// once per row.
struct OpCounts {
  std::array<std::uint32_t, kNumVectorOps> per_group{}, per_row{};
};
// The fp32 operations of an activation (none, relu and relu6 have none: they
// are the clamp of the requantiser every vector instruction ends with).
OpCounts activation_ops(Activation func);
// A VOP's operations: its kind's (softmax: one more compare per group with the
// causal mask) plus its activation's.
OpCounts vop_ops(const Instruction& inst);

// The lanes' work on `rows` rows of `cols` elements, c element groups per row:
// cycles_per_row = c * (1 + sum of per_group counts x class cycles) + sum of
// per_row counts x class cycles (the 1 is the requantise pass every instruction
// makes), and latency = vector.activate_latency + sum over every counted
// operation (per group and per row, once each) of its class latency: the
// dependent chain one row's last element goes through. A row in one UB row has
// c = ceil(cols / lanes); one spread over UB rows of chunk_cols elements (a VOP
// row op, chunk_cols > 0) has the groups of each chunk, c = (chunks - 1) *
// ceil(chunk_cols / lanes) + ceil(last chunk's elements / lanes): the lanes
// never mix two UB rows in one group, and the per-group reductions (running max
// and sum) carry from chunk to chunk.
struct VectorWork {
  std::uint64_t rows = 0;
  std::uint64_t groups_per_row = 0, cycles_per_row = 0, latency = 0;
  std::uint64_t cycles() const { return rows * cycles_per_row; }
};
VectorWork vector_work(const OpCounts& ops, std::uint64_t rows, std::uint64_t cols,
                       const VectorConfig& config, std::uint64_t chunk_cols = 0);

}  // namespace tpu
