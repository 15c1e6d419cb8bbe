#pragma once
// What the tests of graph ops written as model JSON share: the one-line error of reading it, and
// a run with data in a child process (SystemC elaborates once per process) checked against the
// plain reference, in both fidelities. `source` is the file name the JSON is read as.
#include <string>

#include <gtest/gtest.h>

#include "sim/config/config.h"
#include "tools/compiler/frontend.h"
#include "tools/compiler/graph.h"
#include "tools/run/child.h"
#include "tools/run/run.h"

namespace tpu {

// The one-line error of reading `json`, "" when it reads.
inline std::string compile_error(const std::string& json, const std::string& source) {
  try {
    parse_model_json(json, source);
  } catch (const CompileError& e) {
    return e.what();
  }
  return "";
}

// A functional run of `json` in a child process: its cycles, the check's verdict and values
// compared.
inline std::string functional_run(const Config& config, const std::string& json,
                                  const std::string& source, Fidelity fidelity) {
  const ChildOutcome out = run_in_child([&] {
    RunOptions o;
    o.fidelity = fidelity;
    o.check = true;
    const Run r = run_model(config, parse_model_json(json, source), source, o);
    return std::to_string(r.result.total_cycles) + " cycles, check " +
           (r.check->passed ? "PASS " : "FAIL ") + std::to_string(r.check->compared) + " " +
           (r.check->first_mismatches.empty() ? "" : r.check->first_mismatches[0]);
  });
  return out.ok ? out.output : "error: " + out.error;
}

// Every output that reaches HBM matches the reference (int8 bit-exact, bf16 within tolerance),
// and pe agrees with fast cycle for cycle.
inline void expect_functional(const Config& config, const std::string& json,
                              const std::string& source) {
  SCOPED_TRACE(json);
  const std::string fast = functional_run(config, json, source, Fidelity::kFast);
  EXPECT_NE(fast.find("check PASS"), std::string::npos) << fast;
  EXPECT_EQ(functional_run(config, json, source, Fidelity::kPe), fast);
}

}  // namespace tpu
