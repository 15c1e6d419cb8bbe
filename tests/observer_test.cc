// Observation hooks (sim/observer.h): an observer sees every instruction's life once and in
// order, waits that add up to the stall counters, memory traffic that adds up to the HBM
// counters, and in `pe` fidelity one array step per cycle with every result landing once.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "sim/config/config.h"
#include "sim/observer.h"
#include "sim/tpu_core.h"
#include "tools/compiler/frontend.h"
#include "tools/compiler/lowering.h"
#include "tests/test_paths.h"

namespace tpu {
namespace {

struct Counting : Observer {
  struct Life {
    int issued = 0, taken = 0, started = 0, finished = 0;
    Cycle issue = 0, take = 0, start = 0, finish = 0;
  };
  std::map<std::size_t, Life> lives;  // by pc
  std::map<std::pair<Unit, std::string>, Cycle> waited;
  std::uint64_t hbm_read = 0, hbm_write = 0, ub_rows = 0;
  std::vector<Cycle> steps;
  std::uint64_t landed = 0;

  void instruction(const InstructionEvent& e) override {
    Life& l = lives[e.pc];
    switch (e.kind) {
      case InstructionEvent::Kind::kIssued: ++l.issued, l.issue = e.cycle; break;
      case InstructionEvent::Kind::kTaken: ++l.taken, l.take = e.cycle; break;
      case InstructionEvent::Kind::kStarted: ++l.started, l.start = e.cycle; break;
      case InstructionEvent::Kind::kFinished: ++l.finished, l.finish = e.cycle; break;
      case InstructionEvent::Kind::kWaited:
        EXPECT_LT(e.from, e.cycle) << "pc " << e.pc;
        waited[{e.unit, e.cause}] += e.cycle - e.from;
        break;
    }
  }
  void memory(const MemoryEvent& e) override {
    EXPECT_LE(e.start, e.end);
    switch (e.kind) {
      case MemoryEvent::Kind::kHbmRead: hbm_read += e.count; break;
      case MemoryEvent::Kind::kHbmWrite: hbm_write += e.count; break;
      default: ub_rows += e.count;
    }
  }
  void array_step(Cycle t, const SystolicArray&, const std::vector<AccumulatorWrite>& w) override {
    steps.push_back(t);
    landed += w.size();
  }
};

Program compiled(const Config& config, const std::string& model) {
  return compile(load_model(tpu::test_paths::source_dir() + "/models/" + model), config,
                 CompileOptions{});
}

// The residual block uses every unit and waits on semaphores, ports and weights.
TEST(Observer, SeesEveryInstructionAndEveryStall) {
  const Config config = default_config({"array.rows=16", "array.cols=16"});
  const Program program = compiled(config, "residual_block.json");
  Counting seen;
  SimOptions options;
  options.observers = {&seen};
  const RunResult r = simulate(config, program, options);

  std::uint64_t unit_instructions = 0;
  for (std::size_t pc = 0; pc < program.instructions.size(); ++pc) {
    if (unit_of(program.instructions[pc].op) == Unit::kSequencer) continue;
    ++unit_instructions;
    const Counting::Life& l = seen.lives[pc];
    EXPECT_EQ(l.issued, 1) << pc;
    EXPECT_EQ(l.taken, 1) << pc;
    EXPECT_EQ(l.started, 1) << pc;
    EXPECT_EQ(l.finished, 1) << pc;
    EXPECT_LE(l.issue, l.take) << pc;
    EXPECT_LE(l.take, l.start) << pc;
    EXPECT_LT(l.start, l.finish) << pc;
  }
  std::uint64_t finished = 0, stalls = 0;
  for (std::size_t u = 0; u < kNumUnits; ++u) {
    if (Unit(u) != Unit::kSequencer) finished += r.units[u].instructions;
    for (const auto& [cause, cycles] : r.units[u].stalls) {
      EXPECT_EQ((seen.waited[{Unit(u), cause}]), cycles) << to_string(Unit(u)) << " " << cause;
      stalls += cycles;
    }
  }
  EXPECT_EQ(finished, unit_instructions);
  EXPECT_GT(stalls, 0u);  // the test would prove nothing on a run that never waits
  Cycle seen_stalls = 0;
  for (const auto& [key, cycles] : seen.waited) seen_stalls += cycles;
  EXPECT_EQ(seen_stalls, stalls);
  EXPECT_EQ(seen.hbm_read, r.hbm.read_bytes);
  EXPECT_EQ(seen.hbm_write, r.hbm.write_bytes);
  EXPECT_GT(seen.ub_rows, 0u);
  EXPECT_TRUE(seen.steps.empty());  // fast fidelity steps no array
}

// pe fidelity: the array is stepped in increasing cycles and every result lands exactly once:
// M x N_t per MATMUL, N_t from the LOAD_WEIGHTS before it.
TEST(Observer, PeStepsLandEveryResultOnce) {
  const Config config = default_config({"array.rows=8", "array.cols=8"});
  const Program program = compiled(config, "mlp.json");
  std::uint64_t results = 0, cols = 0;
  for (const Instruction& inst : program.instructions) {
    if (inst.op == Opcode::kLoadWeights) cols = inst.cols;
    if (inst.op == Opcode::kMatmul) results += std::uint64_t(inst.rows) * cols;
  }
  Counting seen;
  SimOptions options;
  options.fidelity = Fidelity::kPe;
  options.observers = {&seen};
  simulate(config, program, options);
  ASSERT_FALSE(seen.steps.empty());
  for (std::size_t i = 1; i < seen.steps.size(); ++i) EXPECT_LT(seen.steps[i - 1], seen.steps[i]);
  EXPECT_EQ(seen.landed, results);
}

}  // namespace
}  // namespace tpu
