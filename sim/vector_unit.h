#pragma once
// Vector unit: requantise + activation (ACTIVATE) and max pooling (POOL), one instruction at a
// time, writing back to the unified buffer.
//
// Timing contract (sim/README.md, "Vector unit"), starting in cycle v (semaphores acquired,
// unit free):
// - ACTIVATE of M rows x N columns, c = ceil(N / vector.lanes): in cycle v it requests a UB
//   write burst of M rows no earlier than v + vector.activate_latency + M * (c - 1), granted
//   at w; completes at w + M.
// - POOL over H x W input rows, OH x OW outputs, k x k window, c = ceil(channels / lanes): in
//   cycle v a read burst of H * W rows no earlier than v, granted at r; as soon as that grant
//   is known (v + 1/2, so it joins the arbitration of cycle v + 1) a write burst of OH * OW
//   rows no earlier than r + max(H * W, OH * OW * k * k * c) + vector.pool_latency, granted
//   at w; completes at w + OH * OW.
// - The unit is free again at the completion; busy cycles = completion - v. Data moves at v
//   with exec_activate / exec_pool (none in timing-only runs).
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
  // Requests a burst and waits for its grant; returns the first access cycle.
  Cycle burst(bool write, std::uint64_t first_row, std::uint32_t count, Cycle earliest);

  const Config& config_;
  Sequencer& seq_;
  UnifiedBuffer& ub_;
  MachineState& state_;
  const bool functional_;
};

}  // namespace tpu
