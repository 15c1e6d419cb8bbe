#pragma once
// Vector unit: requantise + activation (ACTIVATE), max or average pooling (POOL),
// element-wise add (ADD) and the fp32 map, multiply, softmax and norms (VOP), one instruction
// at a time, writing back to the unified buffer.
//
// Timing contract (sim/README.md, "Vector unit"), starting in cycle v (semaphores acquired,
// unit free). W and L are the lane cycles and latency of vector_work() (sim/isa/vector_cost.h):
// for M rows of N elements, c = ceil(N / vector.lanes),
// W = M * (c * (1 + per-group op cycles) + per-row op cycles) and L = vector.activate_latency +
// the latencies of every operation of one row; W = M * c and L = activate_latency for
// instructions without fp32 operations (activations none, relu, relu6).
// - ACTIVATE of M rows: in cycle v it requests M UB row writes (spread: each at the first free
//   port and bank) no earlier than v + L + W - M; completes the cycle after the last write
//   (w + M when nothing conflicts, w the first write).
// - POOL (max or average) over H x W input rows, OH x OW outputs, kh x kw window,
//   c = ceil(channels / lanes): in cycle v H * W spread row reads no earlier than v, the first
//   at r, the last ending at r_end; as soon as that grant is known (v + 1/2, so it joins the
//   arbitration of cycle v + 1) OH * OW spread row writes no earlier than
//   max(r_end, r + max(H * W, OH * OW * kh * kw * c)) + vector.pool_latency; completes the
//   cycle after the last write.
// - ADD of M rows x N columns, c = ceil(N / lanes): in cycle v M spread reads of the a rows no
//   earlier than v; as soon as they are granted (joining cycle v + 1) M spread reads of the b
//   rows no earlier than v; as soon as those are granted, M spread writes no earlier than
//   r_end + L + W - M, r_end one past the last read of either; completes the cycle after the
//   last write.
// - VOP of M rows, each over k = vop_chunks() UB rows (k = 1 unless chunk_cols is set): k
//   bursts of M spread reads of the a rows, one per chunk, each requested as soon as the one
//   before is granted, all no earlier than v (then, as for ADD's b, M of the b rows for mul,
//   2k parameter rows for layernorm, k for rmsnorm); as soon as the last are granted, k bursts
//   of M spread writes, one per chunk, each requested at the grant of the one before, all no
//   earlier than r_end + L + W - k * M; completes the cycle after the last write. W counts the
//   element groups of every chunk (vector_work), so on its own write port with no bank conflict
//   the last write ends at r_end + L + W.
// - The unit is free again at the completion; busy cycles = completion - v.
// - Data (none in timing-only runs): ACTIVATE reads its accumulator rows at v, POOL its UB
//   rows at the grant of its read burst, ADD both operands at the grant of its b reads, VOP
//   its operands at the grant of its last reads; each computes its output then (exec_*) and
//   holds it, and the UB rows change at the grant of the write burst that writes them
//   (elements [0, cols) of each destination row; a chunked VOP's last chunk: its elements).
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include <systemc>

#include "sim/isa/semantics.h"
#include "sim/sequencer.h"
#include "sim/unified_buffer.h"

namespace tpu {

class VectorUnit : public sc_core::sc_module {
 public:
  SC_HAS_PROCESS(VectorUnit);
  VectorUnit(sc_core::sc_module_name name, const Config& config, Sequencer& sequencer,
             UnifiedBuffer& ub, MachineState& state, bool functional);

 private:
  void run();  // SC_THREAD
  struct Span {
    Cycle start, end;  // first access, one past the last
  };
  // Requests a burst of spread accesses, moving its data in `on_grant`, and waits for its
  // grant.
  Span burst(bool write, std::uint64_t first_row, std::uint32_t count, Cycle earliest,
             std::function<void()> on_grant);
  // What one write burst of an instruction puts in the UB, computed ahead of its grant: the
  // first row_bytes of `rows` rows from first_row.
  struct Segment {
    std::uint64_t first_row = 0, rows = 0;
    std::size_t row_bytes = 0;
    std::vector<std::uint8_t> bytes;
  };
  // One segment per write burst (a chunked VOP has one per chunk).
  using Held = std::vector<Segment>;
  // Reads the instruction's inputs and computes its output now; the UB keeps its old rows.
  Held compute_held(const Instruction& inst);
  std::vector<std::uint8_t> read_rows(const Segment& rows) const;
  void write_rows(const Segment& rows, const std::vector<std::uint8_t>& bytes);

  const Config& config_;
  Sequencer& seq_;
  UnifiedBuffer& ub_;
  MachineState& state_;
  const bool functional_;
};

}  // namespace tpu
