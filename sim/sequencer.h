#pragma once
// Instruction sequencer and the machinery every in-order unit shares: per-unit instruction
// queues, counting semaphores, timed completions, stall accounting and per-layer statistics.
//
// Timing contract (sim/README.md, "Sequencer"):
// - From cycle 0 the sequencer issues up to sequencer.issue_width instructions per cycle in
//   program order into their unit's queue (sequencer.queue_depth entries), one queue per unit
//   instance (kind and Instruction::instance: each MXU's weight loader and matmul unit, each
//   DMA engine). An entry leaves the
//   queue when its unit takes it; issue sees the freed slot from the next cycle on, so the
//   outcome never depends on process order within a cycle. A full queue stalls issue (cause
//   "queue", charged to the sequencer).
// - LAYER and NOP take an issue slot. NOP waits for its semaphores (stalling issue, cause
//   "sem:<name>") and signals them in the same cycle. HALT waits for its semaphores, then for
//   every issued instruction to complete; total_cycles = max(last completion, HALT issue + 1).
// - A unit takes its queue head when it is free (ready = max(issue cycle, cycle it became
//   free)), waits until every semaphore in `wait` is non-zero, decrements them, and then waits
//   for its own constraints. Stall = start - ready, charged to the constraint satisfied last;
//   a start later than every recorded constraint is charged to "ub_port".
// - A completion at cycle b + 1 signals semaphores at the start of b + 1.
#include <array>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <string>
#include <vector>

#include <systemc>

#include "sim/clock.h"
#include "sim/config/config.h"
#include "sim/isa/program.h"
#include "sim/isa/semantics.h"
#include "sim/observer.h"
#include "sim/stats.h"

namespace tpu {

// One unit: its kind and which one of that kind (Instruction::instance). A bare Unit names
// instance 0, the only one of every kind but the MXU's and the DMA engine's.
struct UnitId {
  UnitId(Unit kind, std::uint8_t instance = 0) : kind(kind), instance(instance) {}  // NOLINT
  Unit kind;
  std::uint8_t instance;
};
// "matmul", or "matmul.1" for instance 1: the name in messages.
std::string to_string(UnitId unit);

// An instruction as issued, with the bookkeeping its unit needs.
struct Issued {
  Instruction inst;
  std::size_t pc = 0;
  int layer = -1;  // index into Program::layers; -1 before the first LAYER
  Cycle issued = 0;
  // LOAD_WEIGHTS: its number j in program order among its MXU's loads and the buffer it
  // writes, plus how many of that MXU's MATMULs earlier in program order used that buffer.
  // MATMUL: the tile (its MXU's LOAD_WEIGHTS number) it multiplies by and that tile's buffer.
  std::uint64_t tile = 0;
  int buffer = 0;
  std::uint64_t buffer_users = 0;
};

class Semaphores {
 public:
  explicit Semaphores(const Program& program);
  // All semaphores in `mask` non-zero: decrement each and return true; else change nothing.
  bool try_acquire(std::uint64_t mask);
  void signal(std::uint64_t mask);
  const sc_core::sc_event& changed() const { return changed_; }
  // "sem:<name>" of the first zero semaphore in `mask` (the cause of a wait).
  std::string cause(std::uint64_t mask) const;
  // Space-separated names of the zero semaphores in `mask`.
  std::string zero_names(std::uint64_t mask) const;

 private:
  std::string name(std::uint32_t i) const;
  std::array<std::uint64_t, kNumSemaphores> count_{};
  std::vector<std::string> names_;
  sc_core::sc_event changed_;
};

// Stall attribution for one instruction: constraints are recorded with the cycle they were
// satisfied; the latest binds (ties go to the one recorded later).
class StartTracker {
 public:
  explicit StartTracker(Cycle ready) : ready_(ready), latest_(ready) {}
  Cycle ready() const { return ready_; }
  void satisfied(const std::string& cause, Cycle at);
  // The cause a start at `start` is charged to ("" when there is no stall).
  std::string cause(Cycle start) const;

 private:
  Cycle ready_, latest_;
  std::string cause_;
};

class Sequencer : public sc_core::sc_module {
 public:
  SC_HAS_PROCESS(Sequencer);
  // Runs core `core`'s instruction stream of `program` (core_stream()).
  Sequencer(sc_core::sc_module_name name, const Config& config, const Program& program,
            const Clock& clock, const Probe& probe, std::size_t core = 0);
  // Delivers a signal.core to another core: (target core, semaphore mask, arrival cycle).
  // The chip sets it; a signal.core to this core itself arrives through signal_at().
  using RemoteSignal = std::function<void(std::size_t, std::uint64_t, Cycle)>;
  void set_remote_signal(RemoteSignal remote) { remote_ = std::move(remote); }
  // Increments the semaphores in `mask` at the start of cycle `at` (a signal.core arriving).
  void signal_at(std::uint64_t mask, Cycle at);

  const Clock& clock() const { return clock_; }
  // The run's observers: the sequencer reports every instruction's events, the units their
  // memory accesses and array steps.
  const Probe& probe() const { return probe_; }

  // --- for the units' threads ---
  // The front of every unit's loop: blocks until `unit` has an instruction and takes it (its
  // tracker starts at the ready cycle, max(issue, now)), then blocks until the semaphores in
  // its wait mask are acquired, and checks its addresses against `state`.
  struct Dispatch {
    Issued is;
    StartTracker tracker;
  };
  Dispatch next(UnitId unit, const MachineState& state);
  // Describes what `unit` is blocked on, for deadlock reports ("" when it is running).
  void set_waiting(UnitId unit, std::string what);
  // Records the start of an instruction (stall charge) on `unit` (instance: the instruction's).
  void started(Unit unit, const Issued& is, const StartTracker& tracker, Cycle start);
  // Retires an instruction at cycle `done` (now or later): signals its semaphores, records
  // busy cycles and the layer's activity [start, done - 1].
  void complete(Unit unit, const Issued& is, Cycle start, Cycle done, Cycle busy);
  // Runs `action` at the start of cycle `at` (now if `at` has begun).
  void at(Cycle at, std::function<void()> action);
  // Waits in the calling thread until cycle c has begun.
  void wait_until(Cycle c);
  // Records an exception raised in a unit and stops the simulation.
  void fail(std::exception_ptr error);

  // --- statistics hooks ---
  LayerStats* layer(int index) { return index < 0 ? nullptr : &layers_[std::size_t(index)]; }
  void add_compute(int layer, Cycle first, Cycle last);
  void add_weight_tile(int layer, std::uint64_t pes);
  void add_traffic(int layer, std::uint64_t hbm_read, std::uint64_t hbm_write,
                   std::uint64_t ub_reads, std::uint64_t ub_writes);
  void add_array_work(int layer, std::uint32_t mxu, std::uint64_t macs,
                      std::uint64_t acc_read_bytes, std::uint64_t acc_write_bytes);
  void add_vector_work(int layer, std::uint64_t acc_read_bytes, std::uint64_t elems);

  // --- after sc_start returns ---
  bool halted() const { return halted_; }
  std::exception_ptr error() const { return error_; }
  // One line: every unit with work, its head instruction and what it waits on.
  std::string deadlock_report() const;
  Cycle total_cycles() const;
  const std::vector<LayerStats>& layers() const { return layers_; }
  const std::array<UnitStats, kNumUnits>& units() const { return units_; }
  const std::vector<MxuStats>& mxus() const { return mxus_; }
  // Cycles units and issue spent waiting on semaphores another core signals (cross-core
  // synchronisation), summed over the waits.
  Cycle sync_wait_cycles() const { return sync_wait_; }
  // Reports issue progress each hundredth of the program (see SimOptions::progress).
  void set_progress(std::function<void(std::size_t, std::size_t)> progress) {
    progress_ = std::move(progress);
  }

 private:
  struct UnitQueue {
    std::deque<Issued> entries;
    bool has_current = false;
    Issued current;
    std::string waiting;
    Cycle taken_cycle = 0;
    std::uint32_t taken_in_cycle = 0;  // takes during taken_cycle (their slots free next cycle)
    sc_core::sc_event pushed;
  };
  struct Timed {
    Cycle at;
    std::uint64_t seq;
    std::function<void()> action;
    bool operator>(const Timed& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };

  static std::size_t index(UnitId unit) {
    return std::size_t(unit.kind) * kMaxUnitInstances + unit.instance;
  }
  UnitQueue& queue(UnitId unit) { return queues_[index(unit)]; }
  // The per-kind counters of `unit` and, for an MXU's units, its instance's in `mxus`.
  template <typename F>
  void count(std::array<UnitStats, kNumUnits>& units, std::vector<MxuStats>& mxus, Unit unit,
             const Issued& is, F&& f);
  Issued take(UnitId unit, Cycle& ready);
  void acquire(UnitId unit, const Issued& is, StartTracker& tracker);
  // check_bounds(), raising SimError that names the instruction.
  void check(const MachineState& state, const Issued& is) const;
  void issue();        // SC_THREAD
  void fire_timed();   // SC_METHOD on timed_event_
  bool queue_full(UnitId unit, Cycle now) const;
  // Blocks the sequencer until the semaphores of `inst` are acquired; returns the cycle.
  Cycle acquire_in_sequencer(const Issued& is, Cycle now);
  // Blocks until every semaphore in `mask` is acquired, describing the wait in `waiting`
  // meanwhile; returns the cause of the wait, or "" when there was none.
  std::string wait_semaphores(std::uint64_t mask, std::string& waiting);
  // Charges the sequencer's own wait on instruction `pc`, which ended now.
  void charge_stall(std::size_t pc, int layer, const std::string& cause, Cycle cycles);
  void report(InstructionEvent::Kind kind, Unit unit, const Issued& is, Cycle cycle) const;
  Issued tag(const Instruction& inst, std::size_t pc, Cycle now);

  const Config& config_;
  const Program& program_;
  const Clock& clock_;
  const Probe& probe_;
  const std::size_t core_;
  const std::size_t begin_, end_;  // this core's stream [begin_, end_) of the program
  const std::uint64_t remote_sems_;  // semaphores a signal.core signals here
  RemoteSignal remote_;
  Cycle sync_wait_ = 0;
  Semaphores sems_;
  std::array<UnitQueue, kNumUnits * kMaxUnitInstances> queues_;
  sc_core::sc_event taken_;
  sc_core::sc_event all_done_;
  std::uint64_t outstanding_ = 0;
  // A min-heap on (at, seq) kept with std::push_heap/pop_heap, so fired actions move out.
  std::vector<Timed> timed_;
  std::uint64_t timed_seq_ = 0;
  sc_core::sc_event timed_event_;
  // Issue-time bookkeeping of weight tiles, per MXU.
  int layer_ = -1;
  std::array<std::uint64_t, kMaxUnitInstances> loads_issued_{};
  std::array<std::array<std::uint64_t, 2>, kMaxUnitInstances> matmuls_on_buffer_{};
  // Results.
  std::vector<LayerStats> layers_;
  std::vector<bool> entered_;             // per layer: a LAYER marker of it has issued
  std::vector<std::size_t> layer_order_;  // this stream's layers, in order of first marker
  std::array<UnitStats, kNumUnits> units_{};
  std::vector<MxuStats> mxus_;
  Cycle last_completion_ = 0;
  Cycle halt_cycle_ = 0;
  bool halted_ = false;
  std::size_t pc_ = 0;
  std::string sequencer_waiting_;
  std::exception_ptr error_;
  std::function<void(std::size_t, std::size_t)> progress_;
};

}  // namespace tpu
