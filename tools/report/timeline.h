#pragma once
// Timeline of a run in the Chrome trace event format (open it in Perfetto or chrome://tracing):
// one track per unit, one slice per instruction from its start to its completion, named by its
// mnemonic and carrying its layer, program counter, issue cycle and assembly text.
#include <nlohmann/json.hpp>

#include "sim/config/config.h"
#include "sim/isa/program.h"
#include "sim/stats.h"

namespace tpu {

// Needs a run made with SimOptions::trace.
nlohmann::json timeline_json(const Config& config, const Program& program, const RunResult& run);

}  // namespace tpu
