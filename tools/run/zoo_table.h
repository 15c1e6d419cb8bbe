#pragma once
// The model zoo's summary (models/README.md, "The zoo on the bundled configs"): every model on
// every config, timing-only, each pair in its own process, as one markdown table row per pair
// of the report's totals (tools/report/report.h): MACs, cycles, latency, utilisation and the
// shares of time the MXU spent multiplying and waiting and the vector unit was busy.
#include <string>
#include <vector>

namespace tpu {

struct ZooTableOptions {
  std::vector<std::string> models;   // model files, rows in this order
  std::vector<std::string> configs;  // config files, one row per model per config
  unsigned jobs = 2;                 // simulations at once
  // Pairs whose array-bound cycles (MACs / PEs of every MXU) exceed this are listed as
  // skipped instead of simulated (GPT-3's layer on the 8 x 8 teaching array: 6e10 cycles).
  double max_bound_cycles = 1e8;
};

// The markdown table; a pair that cannot run shows its one-line error in place of figures.
// Throws a one-line error for a model or config file that does not load.
std::string zoo_table(const ZooTableOptions& options);

}  // namespace tpu
