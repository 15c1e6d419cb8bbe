#pragma once
// What a functional run (data generated, the reference computed, every value simulated) would
// cost the host, estimated from shapes alone, before any data exists, so a run far too big is
// refused at once instead of computing silently for minutes.
#include <cstdint>
#include <string>

#include "sim/config/config.h"
#include "sim/isa/program.h"
#include "tools/compiler/graph.h"

namespace tpu {

struct RunEstimate {
  double host_bytes = 0;  // peak host memory
  double seconds = 0;     // host time, on a machine like the one the rates were measured on
};

// Above either limit a functional run is refused unless the user insists: 4 GiB is a laptop's
// spare memory, and 5 minutes is far beyond what a run of interest to a user of the functional
// mode (checking outputs) needs.
constexpr double kMaxFunctionalRunBytes = double(std::uint64_t(4) << 30);
constexpr double kMaxFunctionalRunSeconds = 300;

// Compiling `graph` with data and simulating it (`pe`: the PE-by-PE fidelity).
RunEstimate estimate_functional_run(const Graph& graph, const Config& config, bool pe);
// Simulating a loaded program with data: its memory image, expected outputs and HBM footprint.
RunEstimate estimate_functional_run(const Program& program, const Config& config, bool pe);

// "" when `e` is within both limits, else what exceeds them, e.g. "needs about 6.20 GiB of host
// memory (limit 4.00 GiB) and would take about 12 min (limit 5 min)" (human_bytes, report.h).
std::string exceeds_functional_limits(const RunEstimate& e);

// Throws a one-line error naming `source` when `e` exceeds the limits, pointing to
// --timing-only and --force.
void refuse_oversized_functional_run(const RunEstimate& e, const std::string& source);

}  // namespace tpu
