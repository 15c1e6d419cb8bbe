#pragma once
// The run report: per-layer and total figures derived from a run's counters and the config, as
// JSON, an aligned terminal table and CSV. Every figure is computed here, at report time:
//   layer cycles        LayerStats::cycles() (first instruction start to last busy cycle)
//   utilization         macs / (cycles * rows * cols)
//   mapping_efficiency  used_pes / (weight_tiles * rows * cols), 0 without weight tiles
//   latency_us          cycles / clock_mhz
//   stall_cycles        the MXU's stalls by cause (LayerStats::units[Unit::kMatmul].stalls)
//   total cycles        RunResult::total_cycles; total macs = sum of layer macs
//   tops                2 * macs / total latency in seconds / 1e12 (TOPS for int8, TFLOPS for bf16)
//   achieved_hbm_gbs    (HBM bytes read + written) / total latency in ns
//   roofline_cycles     max(ceil(macs / (rows * cols)), HBM bytes / peak bytes per cycle)
#include <nlohmann/json.hpp>
#include <string>

#include "sim/config/config.h"
#include "sim/isa/program.h"
#include "sim/stats.h"
#include "tools/report/check.h"

namespace tpu {

struct RunInfo {
  std::string model;              // model name
  std::string model_source;       // path of the model file, or "<embedded default>"
  std::string fidelity = "fast";  // "fast" or "pe"
  bool timing_only = false;
  double host_seconds = 0;  // wall time of the simulation itself
};

// Version of the report's JSON layout; bumped when a field changes meaning or disappears.
constexpr int kReportVersion = 1;

// `check` may be nullptr (timing-only runs, or not checked); the "check" object is then absent.
nlohmann::json report_json(const Config& config, const Program& program, const RunResult& run,
                           const CheckResult* check, const RunInfo& info);

// Aligned text: a header (config, array, clock, fidelity), one row per layer, a total row and
// a footer with throughput and the check result.
std::string report_table(const Config& config, const Program& program, const RunResult& run,
                         const CheckResult* check, const RunInfo& info);

// Header row, one row per layer and, with include_total, a last row named "total". Stall
// columns are stall_<cause> over the union of the layers' MXU stall causes.
std::string report_csv(const Config& config, const Program& program, const RunResult& run,
                       bool include_total = true);

// "1.50 MiB"-style binary units for byte counts.
std::string human_bytes(double bytes);

}  // namespace tpu
