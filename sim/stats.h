#pragma once
// Plain typed counters a simulation produces. Derived figures (utilisation, bandwidth, TOPS)
// are computed at report time from these and the config. SystemC-free.
#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "sim/cycles.h"
#include "sim/isa/isa.h"

namespace tpu {

// Why a unit could not start the instruction at the head of its queue. A stall interval is
// charged to the constraint that was satisfied last (the binding one).
//   "sem:<name>"    waiting on a semaphore (named in the program, else "s<N>")
//   "ub_port"       unified-buffer ports or banks taken by another unit
//   "weight_buffer" MXU weight registers still in use by an earlier tile
//   "hbm"           HBM channel back-pressure (queue full)
//   "queue"         the sequencer could not issue (another unit's queue full)
using StallMap = std::map<std::string, Cycle>;

struct UnitStats {
  Cycle busy_cycles = 0;
  StallMap stalls;
  std::uint64_t instructions = 0;
};

struct LayerStats {
  std::string name;
  std::string kind;
  std::uint64_t macs = 0;
  Cycle first_cycle = 0;     // first cycle any of the layer's instructions started
  Cycle last_cycle = 0;      // last cycle any of them was busy (inclusive)
  bool compute_seen = false;
  Cycle compute_first = 0;   // first MXU activity: a weight row shifted in or an input row
  Cycle compute_last = 0;    // last result of the layer entering the accumulators
  std::array<UnitStats, kNumUnits> units{};  // indexed by Unit
  std::uint64_t weight_tiles = 0;
  std::uint64_t used_pes = 0;        // sum over weight tiles of K_t * N_t
  std::uint64_t hbm_read_bytes = 0;
  std::uint64_t hbm_write_bytes = 0;
  std::uint64_t ub_reads = 0;        // row accesses
  std::uint64_t ub_writes = 0;
  Cycle cycles() const { return last_cycle >= first_cycle ? last_cycle - first_cycle + 1 : 0; }
  Cycle compute_cycles() const {
    return compute_seen ? compute_last - compute_first + 1 : 0;
  }
};

struct HbmStats {
  std::uint64_t read_bytes = 0;
  std::uint64_t write_bytes = 0;
  std::uint64_t requests = 0;
  double total_latency_ns = 0;   // summed request latency, for the average
  double max_latency_ns = 0;
};

// One instruction executed by a unit (SimOptions::trace): issued, started (first busy cycle,
// after any stall) and completed (first cycle after its last busy cycle).
struct InstructionTrace {
  std::size_t pc = 0;  // index into Program::instructions
  Unit unit = Unit::kSequencer;
  int layer = -1;      // -1 before the first LAYER
  Cycle issued = 0;
  Cycle start = 0;
  Cycle done = 0;
};

struct RunResult {
  Cycle total_cycles = 0;            // program start to HALT retiring
  double simulated_ns = 0;
  std::vector<LayerStats> layers;    // indexed like Program::layers
  std::array<UnitStats, kNumUnits> units{};
  HbmStats hbm;
  std::vector<std::uint8_t> hbm_final;  // final HBM contents (functional runs only)
  std::vector<InstructionTrace> trace;  // in completion order (SimOptions::trace only)
};

}  // namespace tpu
