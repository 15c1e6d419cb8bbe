#pragma once
// How a chip scales with its matrix units and cores: every model on one base config with
// core.mxus in {1, 2, 4, 8} and chip.cores in {1, 2}, once with the config's own memory and
// once with `hbm.preset = ideal`, timing-only, each point in its own process. One markdown row
// per point: cycles, speed-up against one core of one MXU on the same memory, MXU utilisation
// (useful MACs / (cycles x PEs of every MXU of every core)). README.md, "Scaling", shows it on
// ResNet-50 and GPT-2 small.
#include <cstdint>
#include <string>
#include <vector>

namespace tpu {

struct ScalingTableOptions {
  std::vector<std::string> models;  // model files, in this order
  std::string config;               // the base config; its other keys stay as they are
  std::vector<std::uint32_t> mxus = {1, 2, 4, 8};
  std::vector<std::uint32_t> cores = {1, 2};
  unsigned jobs = 2;  // simulations at once
};

// The markdown table; a point that cannot run shows its one-line error in place of figures.
// Throws a one-line error for a model or config file that does not load, or a point whose
// config is invalid (e.g. more MXUs than the base config's UB read ports can feed).
std::string scaling_table(const ScalingTableOptions& options);

}  // namespace tpu
