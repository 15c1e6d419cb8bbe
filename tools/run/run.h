#pragma once
// The one way to run a simulation: compile a model (or take a program) for a config, simulate
// it, optionally check its outputs, and hand back everything the reports are made from. The
// CLI, the sweep runner, the benchmark and the tests all call this. SystemC elaborates once
// per process, so a process runs at most one simulation; run_in_child (child.h) gives each
// further run its own process.
#include <cstddef>
#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "sim/config/config.h"
#include "sim/isa/program.h"
#include "sim/stats.h"
#include "sim/tpu_core.h"
#include "tools/compiler/graph.h"
#include "tools/report/check.h"
#include "tools/report/report.h"
#include "tools/report/timeline.h"

namespace tpu {

struct RunOptions {
  Fidelity fidelity = Fidelity::kFast;
  bool timing_only = false;  // no data values; cycles unchanged
  bool check = false;        // compare outputs with the reference (needs data values)
  // Record every instruction, wait and memory burst for the timeline (tools/report/timeline.h).
  bool trace = false;
  // A functional run estimated beyond the host's limits (tools/compiler/estimate.h) is
  // refused before any data exists, unless forced.
  bool force = false;
  // Called as issue passes each hundredth of the program: (instructions issued, total).
  std::function<void(std::size_t, std::size_t)> progress;
  // Called as compiling moves on (CompileOptions::progress).
  std::function<void(const std::string&)> compile_progress;
};

struct Run {
  Config config;
  Program program;
  RunResult result;
  std::optional<CheckResult> check;  // set when RunOptions::check
  TimelineCounters timeline;         // filled when RunOptions::trace
  RunInfo info;

  bool check_failed() const { return check && !check->passed; }
  nlohmann::json report_json() const;
  std::string report_table() const;
  std::string report_csv() const;
  nlohmann::json timeline_json() const;
};

// `source` names the model or program in reports (a path, or "<embedded default model>").
// Errors (compile, simulation, --check without expected outputs) are thrown as exceptions
// whose what() is one line.
Run run_model(const Config& config, const Graph& model, const std::string& source,
              const RunOptions& options);
Run run_program(const Config& config, Program program, const std::string& source,
                const RunOptions& options);

}  // namespace tpu
