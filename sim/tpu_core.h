#pragma once
// Entry point of the SystemC model: elaborates one TPU core for a config, runs a program to
// HALT and returns its counters. SystemC elaborates once per process, so call simulate() at
// most once per process.
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <string>
#include <vector>

#include "sim/config/config.h"
#include "sim/isa/program.h"
#include "sim/observer.h"
#include "sim/sim_error.h"
#include "sim/stats.h"

namespace tpu {

enum class Fidelity { kFast, kPe };

struct SimOptions {
  Fidelity fidelity = Fidelity::kFast;
  // Skip data values: no HBM/UB/accumulator storage, no arithmetic. Timing is unchanged.
  bool timing_only = false;
  // Record every unit instruction's issue, start and completion cycle in RunResult::trace.
  bool trace = false;
  // Told everything the units do (sim/observer.h); none by default, which costs nothing.
  std::vector<Observer*> observers;
  // Called as issue passes each hundredth of the program: (instructions issued, total).
  std::function<void(std::size_t, std::size_t)> progress;
  // Stop with a SimError when the program has not halted after this many cycles; 0 = no cap.
  std::uint64_t max_cycles = 0;
};

RunResult simulate(const Config& config, const Program& program, const SimOptions& options);

// Any exception escaping sc_start() or a SystemC process as a one-line SimError: SystemC's
// multi-line report for an uncaught exception (E549) becomes the original message.
SimError as_sim_error(std::exception_ptr error);

// What every executable's main() returns: switches off the banner libsystemc would print from
// sc_elab_and_sim() (its own main() cannot), then runs sc_main through it.
int run_sc_main(int argc, char* argv[]);

}  // namespace tpu
