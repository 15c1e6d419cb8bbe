#pragma once
// What the timing tests share: the 8 x 8 core they derive cycles for, run a program or
// hand-written assembly on it with the instruction trace on, read a traced instruction or a
// unit's stall by cause, and the one-line error of a config. SystemC elaborates once per
// process, so each test runs one simulation.
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "sim/config/config.h"
#include "sim/isa/program.h"
#include "sim/tpu_core.h"

namespace tpu {

// An 8 x 8 array, ideal memory, 64 banks and two read ports (so the weight loader and the input
// stream never contend unless a test says so), one write port, 8 vector lanes.
inline Config timing_core(const std::string& name) {
  Config c;
  c.name = name;
  c.array.rows = 8;
  c.array.cols = 8;
  c.hbm.preset = "ideal";
  c.ub.banks = 64;
  c.ub.read_ports = 2;
  c.ub.write_ports = 1;
  c.vector.lanes = 8;
  // The hand-derived timings follow one DMA engine (the default config has 2 + mxus).
  c.core.dma_engines = 1;
  return c;
}

// The one-line error of loading `doc` as configs/x.json, "" when it loads.
inline std::string config_error(const nlohmann::json& doc) {
  try {
    parse_config(doc, "configs/x.json");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

// `program` simulated on `config` with the instruction trace on (for at_pc).
inline RunResult run_traced(const Program& program, const Config& config) {
  SimOptions options;
  options.trace = true;
  return simulate(config, program, options);
}

// `text` follows an `.array 8 8` directive: the timing tests use 8x8 arrays.
inline RunResult run_assembly(const std::string& text, const Config& config) {
  return run_traced(parse_assembly(".array 8 8\n" + text), config);
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
