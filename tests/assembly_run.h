#pragma once
// What the timing tests share: run hand-written assembly on the SystemC core with the
// instruction trace on, and read a traced instruction or a unit's stall by cause. SystemC
// elaborates once per process, so each test calls run_assembly() at most once.
#include <stdexcept>
#include <string>

#include "sim/config/config.h"
#include "sim/isa/program.h"
#include "sim/tpu_core.h"

namespace tpu {

// `text` follows an `.array 8 8` directive: the timing tests use 8x8 arrays.
inline RunResult run_assembly(const std::string& text, const Config& config) {
  SimOptions options;
  options.trace = true;
  return simulate(config, parse_assembly(".array 8 8\n" + text), options);
}

inline const InstructionTrace& at_pc(const RunResult& r, std::size_t pc) {
  for (const InstructionTrace& t : r.trace) {
    if (t.pc == pc) return t;
  }
  throw std::runtime_error("pc " + std::to_string(pc) + " not traced");
}

inline Cycle stall(const UnitStats& u, const std::string& cause) {
  const auto it = u.stalls.find(cause);
  return it == u.stalls.end() ? 0 : it->second;
}

}  // namespace tpu
