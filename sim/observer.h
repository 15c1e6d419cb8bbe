#pragma once
// Observation hooks: what the units report as a simulation runs, to whoever watches it (the
// instruction trace behind --trace, `tpusim explain`, its VCD and HTML views). The core's own
// counters (stats.h) stay with the blocks that own them; observers see events, not counters.
//
// A run with no observer builds no events: every report site first asks Probe::on(), one
// predictable branch. Events are reported no later than the cycle they describe (a start is
// known at its UB grant, half a cycle early; a completion is reported in its own cycle), and
// every observer is called from the simulation thread, in simulated-time order of reporting.
// SystemC-free.
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "sim/cycles.h"
#include "sim/isa/isa.h"
#include "sim/systolic_array.h"

namespace tpu {

// An instruction's life on its unit (sim/README.md, "Sequencer"): issued into the unit's
// queue, taken by the unit (it may then wait), started (first busy cycle) and finished (its
// completion cycle, one past its last busy cycle). A wait is reported once, when it ends:
// `from` is the cycle it began (the ready cycle) and `cause` the constraint it is charged to,
// exactly as in the stall counters. The sequencer reports its own waits (a full queue, a NOP's
// semaphores) as waits of Unit::kSequencer on the instruction it could not issue.
struct InstructionEvent {
  enum class Kind { kIssued, kTaken, kWaited, kStarted, kFinished };
  Kind kind = Kind::kIssued;
  Unit unit = Unit::kSequencer;
  std::uint8_t instance = 0;  // which unit of its kind (Instruction::instance)
  std::size_t pc = 0;  // index into Program::instructions
  int layer = -1;      // -1 before the first LAYER
  Cycle cycle = 0;     // when it happens (kWaited: when the wait ended)
  Cycle from = 0;      // kWaited only
  std::string cause;   // kWaited only
};

// One memory access burst: UB row reads or writes by a unit (reported at their grant: `count`
// rows from row `address`, accessed in cycles start .. end - 1), or one HBM request of the DMA
// engine (reported at its response: `count` bytes at `address`, sent in cycle `start`,
// answered in cycle `end`).
struct MemoryEvent {
  enum class Kind { kUbRead, kUbWrite, kHbmRead, kHbmWrite };
  Kind kind = Kind::kUbRead;
  Unit unit = Unit::kDma;
  std::uint8_t instance = 0;  // which unit of its kind (an MXU's number)
  std::uint64_t address = 0;  // UB: first row; HBM: byte address
  std::uint64_t count = 0;    // UB: rows; HBM: bytes
  Cycle start = 0, end = 0;
};

// A result that left the bottom of the array in `pe` fidelity and entered the accumulators:
// the MATMUL it belongs to, the accumulator row it was written to, and the array's output.
struct AccumulatorWrite {
  std::size_t pc = 0;
  std::uint64_t acc_row = 0;
  bool accumulate = false;  // added to the row (split K) instead of overwriting it
  SystolicArray::Output out;
};

class Observer {
 public:
  virtual ~Observer() = default;
  virtual void instruction(const InstructionEvent&) {}
  virtual void memory(const MemoryEvent&) {}
  // `pe` fidelity, functional runs: the array right after its step of cycle t (at t + 3/4),
  // its registers readable through `array`, and the results that landed in cycle t.
  virtual void array_step(Cycle, const SystolicArray&, const std::vector<AccumulatorWrite>&) {}
};

// The observers of one run, as the units see them.
class Probe {
 public:
  explicit Probe(std::vector<Observer*> observers) : observers_(std::move(observers)) {}
  bool on() const { return !observers_.empty(); }
  void instruction(const InstructionEvent& e) const {
    for (Observer* o : observers_) o->instruction(e);
  }
  void memory(const MemoryEvent& e) const {
    for (Observer* o : observers_) o->memory(e);
  }
  void array_step(Cycle t, const SystolicArray& a, const std::vector<AccumulatorWrite>& w) const {
    for (Observer* o : observers_) o->array_step(t, a, w);
  }

 private:
  std::vector<Observer*> observers_;
};

}  // namespace tpu
