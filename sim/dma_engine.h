#pragma once
// DMA engine: strided copies between HBM (through a TLM-2.0 initiator socket) and the unified
// buffer, split into bursts. (TIMING CONTRACT: the implementation documents the exact rule
// here: burst splitting, one request per cycle, outstanding limit, UB write/read bursts.)
#include <cstdint>

#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>

#include "sim/clock.h"
#include "sim/config/config.h"
#include "sim/isa/isa.h"
#include "sim/isa/semantics.h"
#include "sim/unified_buffer.h"

namespace tpu {

class DmaEngine : public sc_core::sc_module {
 public:
  tlm_utils::simple_initiator_socket<DmaEngine> hbm_socket;

  // `state` holds the data (nullptr for timing-only runs).
  DmaEngine(sc_core::sc_module_name name, const Config& config, const Clock& clock,
            UnifiedBuffer& ub, MachineState* state);

  struct Result {
    Cycle done = 0;                   // completion cycle (first cycle after its last access)
    std::uint64_t hbm_read_bytes = 0;
    std::uint64_t hbm_write_bytes = 0;
    std::uint64_t ub_accesses = 0;
  };
  // Executes one kDmaLoad or kDmaStore whose first cycle is `start` (the current cycle).
  // Must be called from an SC_THREAD; returns at the completion cycle.
  Result transfer(const Instruction& inst, Cycle start);
};

}  // namespace tpu
