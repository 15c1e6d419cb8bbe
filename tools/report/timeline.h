#pragma once
// Timeline of a run in the Chrome trace event format (open it in Perfetto or chrome://tracing):
//   - one track per unit, one slice per instruction from its start to its completion, named by
//     its mnemonic and carrying its layer, program counter, issue cycle and assembly text;
//   - beneath it, the unit's waits: one slice per stall interval, named by the cause it is
//     charged to (sim/stats.h), from the cycle the instruction was ready to the cycle it went;
//   - counter tracks ("ph":"C") per window of cycles: HBM read and write bandwidth in GB/s
//     (bytes counted in the cycle of their response) and UB rows read and written per cycle
//     (a burst's rows spread evenly over the cycles it accesses).
// Windows start at kFirstWindowCycles and double (neighbours merged) whenever the run outgrows
// kMaxWindows of them, so the memory a recording takes is bounded whatever the run's length.
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/config/config.h"
#include "sim/isa/program.h"
#include "sim/observer.h"
#include "sim/stats.h"

namespace tpu {

struct TimelineWindow {
  std::uint64_t hbm_read_bytes = 0;
  std::uint64_t hbm_write_bytes = 0;
  std::uint64_t ub_read_rows = 0;
  std::uint64_t ub_write_rows = 0;
};

struct TimelineWait {
  Unit unit = Unit::kSequencer;
  std::uint8_t instance = 0;  // which unit of its kind (an MXU's number)
  std::size_t pc = 0;
  Cycle from = 0, to = 0;  // stalled in cycles from .. to - 1
  std::string cause;
};

// What the --trace observer records besides the instruction trace (RunResult::trace).
struct TimelineCounters {
  Cycle window_cycles = 0;
  std::vector<TimelineWindow> windows;  // window i covers cycles [i, i + 1) * window_cycles
  std::vector<TimelineWait> waits;      // in the order they ended
};

class TimelineRecorder : public Observer {
 public:
  static constexpr Cycle kFirstWindowCycles = 16;
  static constexpr std::size_t kMaxWindows = 2048;

  TimelineRecorder() { counters_.window_cycles = kFirstWindowCycles; }
  void instruction(const InstructionEvent& e) override;
  void memory(const MemoryEvent& e) override;
  TimelineCounters take() { return std::move(counters_); }

 private:
  // Adds `count` to `field`, spread over cycles [start, end) in proportion to each window's
  // share of them (whole units; the shares sum to `count`).
  void add(std::uint64_t TimelineWindow::*field, Cycle start, Cycle end, std::uint64_t count);
  // Grows (and if need be coarsens) the windows until one covers `cycle`.
  void cover(Cycle cycle);

  TimelineCounters counters_;
};

// Needs a run made with SimOptions::trace; `counters` from a TimelineRecorder that watched it.
nlohmann::json timeline_json(const Config& config, const Program& program, const RunResult& run,
                             const TimelineCounters& counters);

}  // namespace tpu
