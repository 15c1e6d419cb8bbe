#pragma once
// `tpusim explain`: one small run in `pe` fidelity, watched cycle by cycle through the
// observation hooks (sim/observer.h), for teaching. What it shows is what was simulated: the
// PE registers after each array step, the results as they enter the accumulators, and every
// instruction's issue, waits, start and completion. The text view, the summary and the JSON
// and the HTML page (tools/teach/html.h) read the same recording; the VCD (tools/teach/vcd.h)
// views the run through the same PeViewer.
#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/config/config.h"
#include "sim/isa/program.h"
#include "sim/observer.h"
#include "sim/stats.h"

namespace tpu {

// One PE in one cycle, after that cycle's step.
struct PeView {
  std::uint64_t stream = 0;  // the stream whose data passes (1 = the first MATMUL), 0 = none
  double weight = 0;       // the weight it multiplies by: the buffer its input meets, or when
                           // no input passes, the buffer loaded last
  bool has_input = false;  // an element X[m][k] of a stream passes (not a bubble; rows >= K_t
                           // carry zeros and count as no input)
  double input = 0;
  std::uint32_t m = 0;     // the input's row of X
  bool has_psum = false;   // the psum of a result column (n < N_t) passes down
  double psum = 0;
};

struct ArrayCycle {
  Cycle cycle = 0;
  std::vector<PeView> pes;                // R x C, row-major
  std::vector<AccumulatorWrite> landed;  // results that entered the accumulators this cycle
};

// One MATMUL's stream through the array, as its tile shapes it and as it was seen.
struct StreamView {
  std::size_t pc = 0;
  Cycle start = 0;  // s: its row 0 enters the left edge
  std::uint32_t m_rows = 0, k_rows = 0, n_cols = 0;  // M, K_t, N_t
  Cycle first_landed = 0, last_landed = 0;           // seen: first and last result landing
  std::uint64_t results = 0;                         // seen: results landed
  Cycle peak_cycles = 0;  // seen: cycles in which min(M, N_t) results landed
};

// Reads the array's raw registers as the views show them: which stream (MATMUL) an input
// belongs to, its row m, which weight buffer a PE is seen to hold. Fed every instruction event
// of the run (it follows weight loads and MATMUL starts) before each step it views.
class PeViewer {
 public:
  PeViewer(const Config& config, const Program& program);
  void instruction(const InstructionEvent& e);
  ArrayCycle view(Cycle t, const SystolicArray& array,
                  const std::vector<AccumulatorWrite>& landed) const;
  // The streams started so far, shapes only (nothing seen yet).
  const std::vector<StreamView>& streams() const { return streams_; }

 private:
  const Program& program_;
  const bool double_buffer_;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> tile_of_;  // (K_t, N_t) per MATMUL
  std::vector<Cycle> load_starts_;  // LOAD_WEIGHTS feed starts e (transposed: e + N_t)
  std::vector<StreamView> streams_;  // stream id i + 1 is streams_[i]
};

struct Explained {
  Config config;
  Program program;
  RunResult result;
  std::vector<InstructionEvent> events;  // in reporting order
  std::vector<ArrayCycle> steps;         // every cycle the array was stepped, in order
  std::vector<StreamView> streams;       // in stream order (= MATMUL program order)
};

// Runs `program` once in `pe` fidelity (the process's one simulation), recording it; `also`
// observe the same run.
Explained explain(const Config& config, const Program& program,
                  const std::vector<Observer*>& also = {});

// Cycle by cycle: events, left-edge entries, every PE's registers, results leaving the bottom.
// changes_only: just the cycles in which an event happened or a register changed.
std::string explain_text(const Explained& run, bool changes_only);
// Fill, full rate and drain of every stream, the contract's formulas beside what was seen, and
// the utilisation.
std::string explain_summary(const Explained& run);
// The recording as JSON (the HTML page's data).
nlohmann::json explain_json(const Explained& run);

// The model explain runs when given no --model: one int8 M x K by K x N matmul.
std::string matmul_model_json(std::uint32_t m, std::uint32_t k, std::uint32_t n,
                              std::uint64_t seed);

struct ExplainOptions {
  std::string model_path;  // empty: matmul_model_json(m, k, n, seed)
  std::string config_path;  // empty: the bundled default config
  std::vector<std::string> overrides;
  // The array, applied over the config; 0: the config's, or 4 without --config.
  std::uint32_t rows = 0, cols = 0;
  std::uint32_t m = 6, k = 4, n = 4;
  std::uint64_t seed = 1;
  bool changes_only = false;
  bool summary_only = false;  // no cycle-by-cycle trace
  std::string vcd_path;   // non-empty: also write waveforms (tools/teach/vcd.h)
  std::string html_path;  // non-empty: also write the animated page (tools/teach/html.h)
};

// The `tpusim explain` command: prints the trace and summary to `out` and writes the files
// asked for. Throws on bad input.
void explain_command(const ExplainOptions& options, std::ostream& out);

}  // namespace tpu
