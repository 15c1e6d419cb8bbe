#include "tools/run/run.h"

#include <sys/resource.h>
#include <chrono>
#include <stdexcept>
#include <utility>

#include "tools/compiler/estimate.h"
#include "tools/compiler/lowering.h"

namespace tpu {
namespace {

bool has_expected_outputs(const Program& program) {
  for (const LayerInfo& l : program.layers)
    if (!l.expected_int8.empty() || !l.expected_fp32.empty()) return true;
  return false;
}

const char* fidelity_name(Fidelity f) { return f == Fidelity::kPe ? "pe" : "fast"; }

// Checked before compiling, so a contradictory request costs nothing.
void check_options(const RunOptions& options) {
  if (options.check && options.timing_only)
    throw std::invalid_argument("--check compares data values, which --timing-only skips; drop one");
}

}  // namespace

nlohmann::json Run::report_json() const {
  return tpu::report_json(config, program, result, check ? &*check : nullptr, info);
}
std::string Run::report_table() const {
  return tpu::report_table(config, program, result, check ? &*check : nullptr, info);
}
std::string Run::report_csv() const { return tpu::report_csv(config, result); }
nlohmann::json Run::timeline_json() const {
  return tpu::timeline_json(config, program, result, timeline);
}

namespace {

// Simulates a program whose size has been checked.
Run simulate_run(const Config& config, Program program, const std::string& source,
                 const RunOptions& options) {
  if (options.check && !has_expected_outputs(program))
    throw std::invalid_argument(source + ": --check needs expected outputs, which only a compiled "
                                "binary program carries (tpusim compile --binary)");
  Run run;
  run.config = config;
  run.program = std::move(program);
  run.info.model = run.info.model_source = source;
  run.info.fidelity = fidelity_name(options.fidelity);
  run.info.timing_only = options.timing_only;

  SimOptions sim;
  sim.fidelity = options.fidelity;
  sim.timing_only = options.timing_only;
  sim.trace = options.trace;
  TimelineRecorder timeline;
  if (options.trace) sim.observers.push_back(&timeline);
  sim.progress = options.progress;
  const auto t0 = std::chrono::steady_clock::now();
  run.result = simulate(run.config, run.program, sim);
  run.info.host_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) == 0) run.info.host_peak_mib = usage.ru_maxrss / 1024.0;  // KiB
  run.timeline = timeline.take();
  if (options.check) run.check = check_outputs(run.program, run.result.hbm_final);
  return run;
}

}  // namespace

Run run_program(const Config& config, Program program, const std::string& source,
                const RunOptions& options) {
  check_options(options);
  if (!options.timing_only && !options.force)
    refuse_oversized_functional_run(
        estimate_functional_run(program, config, options.fidelity == Fidelity::kPe), source);
  return simulate_run(config, std::move(program), source, options);
}

Run run_model(const Config& config, const Graph& model, const std::string& source,
              const RunOptions& options) {
  check_options(options);
  if (!options.timing_only && !options.force)
    refuse_oversized_functional_run(
        estimate_functional_run(model, config, options.fidelity == Fidelity::kPe), source);
  CompileOptions copts;
  copts.timing_only = options.timing_only;
  copts.progress = options.compile_progress;
  const auto t0 = std::chrono::steady_clock::now();
  Program program = compile(model, config, copts);
  const double compile_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  Run run = simulate_run(config, std::move(program), source, options);
  run.info.model = model.name;
  run.info.compile_seconds = compile_seconds;
  return run;
}

}  // namespace tpu
