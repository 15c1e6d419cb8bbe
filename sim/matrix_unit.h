#pragma once
// Matrix unit: the weight loader and matmul front ends of one R x C weight-stationary MXU.
// A core has core.mxus of them; MXU i runs the `load.weights unit=i` and `matmul unit=i` of
// the program, with its own weight registers and weight FIFO; all of them write the one
// accumulator memory. The rules below are per MXU: "LOAD_WEIGHTS j" counts its own loads, "the
// previous MATMUL" is its own.
//
// Timing contract (sim/README.md, "Matrix unit"):
// - LOAD_WEIGHTS j writes buffer j % 2 (double_buffer_weights) or 0. It requests its UB read
//   burst of K_t rows once its semaphores are acquired and every earlier MATMUL that used the
//   buffer has released it (cause "weight_buffer"); the grant is its start e (cause "ub_port").
//   The loader reads e .. e + K_t - 1, is free again at e + K_t, and the load completes then
//   (both feeds): its data, the K_t UB rows, has been read. The weights it writes are seen only
//   by the MATMULs of its tile, which the weight-buffer rules below order; no other
//   instruction can observe them, so completion need not wait for them to reach their PEs.
// - Double buffering (diagonal feed): weight (j, n) reaches PE (j, n) in e + j + n (zero beyond
//   K_t x N_t), the tile's last one in e + K_t + N_t - 2 (after the load's completion if
//   N_t >= 2).
//   Release at s + M (PE (j, n) was last used in s + M - 1 + j + n and is written in
//   e + j + n, so e >= s + M for every PE). A MATMUL's stream may start from e + 1 (its first
//   input meets PE (k, n) in s' + k + n, after the weight written in e + k + n).
// - Single buffering (row feed, the un-overlapped baseline): PE row j written in e + j, a
//   MATMUL starts from e + K_t (the load's completion); release at the MATMUL's completion
//   L + 1 (2R + C + M - 1 cycles per full tile).
// - MATMUL requests its UB read burst of M rows (stride ub_stride) once its semaphores are
//   acquired, its weights lead (cause "weights") and the previous stream has left (the unit is
//   free); the grant is its stream start s. A stall that ends with a grant no later than e + K_t
//   after asking while its own tile's load still read the UB is charged to "weights". Last
//   result L = s + M + N_t + R - 2, completion L + 1; the unit is free again at s + M.
// - LOAD_WEIGHTS with the `fifo` flag (read number i, program order): instead of a UB burst it
//   waits until fill i of the weight FIFO (the i-th `dma.load weights`) has completed (cause
//   "weights") and starts then, at e; it reads one FIFO row per cycle, e .. e + K_t - 1, no UB
//   port, and everything else is as above (completion e + K_t, which frees the entry).
// - LOAD_WEIGHTS with the `transpose` flag reads the N_t staged rows (UB burst or FIFO entry)
//   from its start e, e .. e + N_t - 1; the tile then leaves the transpose unit from
//   w = e + N_t, and every rule above holds with w for e: MATMUL from w + 1 (w + K_t single-
//   buffered), completion (and a FIFO entry's release) at w + K_t = e + N_t + K_t.
// - Requests are made at whole-cycle instants with earliest = that cycle.
// - fast: release and completions scheduled at the cycles above. pe: every PE's shadow weight is
//   written in its own cycle; the release is the cycle after the stream's last input passed
//   PE (0, 0) (SystolicArray::released()).
// - Data (none in timing-only runs). LOAD_WEIGHTS reads its K_t UB rows at its read grant;
//   MATMUL reads its M input rows at its read grant (the arbitration instant of the cycle it
//   requests, before s). Results enter the accumulators when they leave the array:
//   pe: the stream is registered with the SystolicArray, stepped at c + 3/4 of every cycle
//   while it has work; each result Y[m][n] is written as it lands, at s + m + n + R + 3/4, and
//   L is the cycle the stream's last result lands.
//   fast: matmul_compute() at the read grant; the whole tile is written (matmul_commit) at
//   L + 3/4, when its last result lands, after every earlier MATMUL's tile (one that lands
//   later, a wide tile before a narrow one, is written early, with it). Completion at L + 1.
//   Both leave the same accumulators at every completion, so pe and fast agree on every
//   correctly synchronised program; a racing reader can see a pe tile half landed.
#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <unordered_map>
#include <vector>

#include <systemc>

#include "sim/isa/semantics.h"
#include "sim/sequencer.h"
#include "sim/systolic_array.h"
#include "sim/tpu_core.h"
#include "sim/unified_buffer.h"
#include "sim/weight_fifo.h"

namespace tpu {

class MatrixUnit : public sc_core::sc_module {
 public:
  SC_HAS_PROCESS(MatrixUnit);
  // `functional` false: timing only, `state` holds sizes but no data (fidelity is then fast).
  MatrixUnit(sc_core::sc_module_name name, std::uint8_t instance, const Config& config,
             Sequencer& sequencer, UnifiedBuffer& ub, MachineState& state, WeightFifo& fifo,
             bool functional, Fidelity fidelity);

 private:
  struct Shape {
    std::uint32_t k = 0, n = 0;
  };

  void weight_loader();  // SC_THREAD
  void matmul();         // SC_THREAD
  void step_array();     // SC_METHOD (pe): one array cycle at c + 3/4
  void commit_sums();    // SC_METHOD (fast): landed tiles enter the accumulators at L + 3/4
  // Waits until every MATMUL before `is` (program order) that used its buffer has released
  // it; returns the cycle that happened.
  Cycle wait_buffer_free(const Issued& is);
  void release_buffer(int buffer, Cycle at);
  void arm_array();
  void matmul_finished(const Issued& is, Cycle start, Cycle last);

  const std::uint8_t instance_;
  const UnitId loader_, matmul_;
  const Config& config_;
  Sequencer& seq_;
  UnifiedBuffer& ub_;
  MachineState& state_;
  WeightFifo& fifo_;
  std::uint64_t fifo_reads_ = 0;  // `load.weights fifo` started so far
  const bool functional_;
  // Double buffering: a MATMUL releases its buffer on the wavefront rule; single: on completion.
  const bool wavefront_;

  std::array<WeightTile, 2> tiles_;  // fast: the data of each buffer
  std::array<Shape, 2> shapes_;
  // Cycles from which a MATMUL may stream on the granted weight loads load_ready_base_,
  // load_ready_base_ + 1, ...: e + 1 (diagonal feed) or e + K_t (single buffering).
  struct LoadReady {
    Cycle ready;     // a MATMUL on the tile may start its stream from here
    Cycle read_end;  // e + K_t, when its UB reads end (0 for a FIFO load: none)
  };
  std::deque<LoadReady> load_ready_;
  std::uint64_t load_ready_base_ = 0;
  sc_core::sc_event load_granted_;
  // MATMULs that released their buffer, per buffer, and the release cycles not yet consumed by
  // a load (released_at_[b][i] is release number released_base_[b] + i + 1).
  std::array<std::uint64_t, 2> buffer_released_{};
  std::array<std::deque<Cycle>, 2> released_at_;
  std::array<std::uint64_t, 2> released_base_{};
  sc_core::sc_event buffer_released_event_;

  // fast: sums computed at their input grant, in program order, until they land.
  struct PendingSums {
    Instruction inst;
    Cycle last;  // L
    TileSums sums;
  };
  std::deque<PendingSums> pending_;
  std::vector<TileSums> spare_sums_;  // committed sums' storage, reused by the next MATMULs
  sc_core::sc_event_queue commit_queue_;  // one notification per MATMUL, at its L + 3/4

  std::unique_ptr<SystolicArray> array_;
  sc_core::sc_event array_wake_;
  struct PeStream {
    Issued is;
    Cycle start;
  };
  std::unordered_map<std::uint64_t, PeStream> pe_streams_;
  std::vector<AccumulatorWrite> landed_;  // observed runs: the results of the current step
};

}  // namespace tpu
