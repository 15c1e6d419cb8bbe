// Data becomes visible when it arrives (sim/README.md, "Conventions"), so a missing semaphore
// wait shows as a wrong result: a compiled program passes the output check in the SystemC
// model, and the same program with one producer -> consumer synchronisation removed fails it,
// while interpret() (program order, semaphores ignored) still passes it. One simulate() per
// test: SystemC elaborates once per process.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "sim/isa/semantics.h"
#include "sim/tpu_core.h"
#include "tools/compiler/lowering.h"
#include "tools/compiler/frontend.h"
#include "tools/report/check.h"

namespace tpu {
namespace {

// `simple` memory makes the DMA engine the bottleneck, `ideal` makes it run ahead.
Config race_config(const char* hbm_preset) {
  Config c;
  c.array.rows = 8;
  c.array.cols = 8;
  c.vector.lanes = 8;
  c.hbm.preset = hbm_preset;
  c.hbm.latency_ns = 40;
  // One DMA engine (the default has 2 + mxus): the stores wait on out_ready; the tests on a
  // second engine say so.
  c.core.dma_engines = 1;
  // Weights staged in the UB, behind w_ready / w_free (the weight FIFO needs no semaphores).
  c.mxu.weight_fifo_tiles = 0;
  return c;
}

// Y = X W for X 24 x 8 and W 8 x 8: three M tiles of 8 rows, each with its own input load,
// weight load, MATMUL, ACTIVATE and store, double-buffered.
Program race_program(const Config& config) {
  const Graph model = parse_model_json(
      R"({"seed": 5, "layers": [{"name": "g", "type": "matmul", "m": 24, "k": 8, "n": 8}]})",
      "race.json");
  CompileOptions options;
  options.max_m_tile = 8;
  return compile(model, config, options);
}

// Drops the nth (from 0) wait on `sem` and the nth signal of it. The compiler pairs them in
// order, so this removes one producer -> consumer synchronisation and leaves the others intact.
Program drop_sync(Program p, std::uint32_t sem, int nth) {
  const std::uint64_t bit = std::uint64_t(1) << sem;
  int waits = nth, signals = nth;
  for (std::size_t pc = 0; pc < p.instructions.size(); ++pc) {
    Instruction inst = p.instructions[pc];
    if ((inst.wait & bit) && waits-- == 0) inst.wait &= ~bit;
    if ((inst.signal & bit) && signals-- == 0) inst.signal &= ~bit;
    p.instructions.set(pc, inst);
  }
  EXPECT_LT(waits, 0) << "fewer than " << nth + 1 << " waits";
  EXPECT_LT(signals, 0) << "fewer than " << nth + 1 << " signals";
  return p;
}

CheckResult simulate_and_check(const Config& config, const Program& program, Fidelity fidelity) {
  SimOptions options;
  options.fidelity = fidelity;
  return check_outputs(program, simulate(config, program, options).hbm_final);
}

void expect_passes(const char* hbm_preset, Fidelity fidelity) {
  const Config config = race_config(hbm_preset);
  const CheckResult c = simulate_and_check(config, race_program(config), fidelity);
  EXPECT_TRUE(c.passed) << (c.first_mismatches.empty() ? "" : c.first_mismatches[0]);
  EXPECT_EQ(c.compared, 24u * 8u);
}

// The race bites in the core and only there.
void expect_race(const Config& config, std::uint32_t sem, int nth, Fidelity fidelity) {
  const Program racy = drop_sync(race_program(config), sem, nth);
  EXPECT_TRUE(check_outputs(racy, interpret(config, racy).hbm).passed);
  const CheckResult c = simulate_and_check(config, racy, fidelity);
  EXPECT_FALSE(c.passed);
  // One M tile of 8 x 8 outputs goes wrong (a few elements may match by chance).
  EXPECT_GE(c.mismatches, 48u);
  EXPECT_LE(c.mismatches, 64u);
}

void expect_race(const char* hbm_preset, std::uint32_t sem, int nth, Fidelity fidelity) {
  expect_race(race_config(hbm_preset), sem, nth, fidelity);
}

TEST(Race, SynchronisedProgramPassesSimpleMemory) { expect_passes("simple", Fidelity::kFast); }
TEST(Race, SynchronisedProgramPassesSimpleMemoryPe) { expect_passes("simple", Fidelity::kPe); }
TEST(Race, SynchronisedProgramPassesIdealMemory) { expect_passes("ideal", Fidelity::kFast); }
TEST(Race, SynchronisedProgramPassesIdealMemoryPe) { expect_passes("ideal", Fidelity::kPe); }

// The second M tile's MATMUL starts once its weights are in (their DMA precedes the input's)
// and streams its input slot before the DMA has filled it.
TEST(Race, MatmulWithoutInputWait) {
  expect_race("simple", kSemXReady, 1, Fidelity::kFast);
}
TEST(Race, MatmulWithoutInputWaitPe) { expect_race("simple", kSemXReady, 1, Fidelity::kPe); }

// The first ACTIVATE reads the accumulators before the MATMUL's results have landed.
TEST(Race, ActivateWithoutAccumulatorWait) {
  expect_race("simple", kSemAccReady, 0, Fidelity::kFast);
}
TEST(Race, ActivateWithoutAccumulatorWaitPe) {
  expect_race("simple", kSemAccReady, 0, Fidelity::kPe);
}

// With fast memory the first tile's store reads its UB rows before the ACTIVATE writes them.
// Weights through the 4-tile weight FIFO: staged weights put their DMAs (waiting for their
// slots) in the engine's queue ahead of the stores, which then start only after the vector
// unit, on its own UB write port, has long written their rows. Since this 24 x 8 x 8 program
// takes three accumulator slots (one K tile), only the first store races (measured: without
// the second or third wait, or with 2 FIFO tiles or staged weights, every store read its rows
// after the ACTIVATE wrote them).
TEST(Race, StoreWithoutOutputWait) {
  Config config = race_config("ideal");
  config.mxu.weight_fifo_tiles = 4;
  expect_race(config, kSemOutReady, 0, Fidelity::kFast);
}

// The first LOAD_WEIGHTS reads its staging rows before the weight DMA has filled them.
TEST(Race, LoadWeightsWithoutWeightWait) {
  expect_race("simple", kSemWReady, 0, Fidelity::kFast);
}

// Two DMA engines: the compiler's stores run on engine 1, ordered against the rest only by
// semaphores. The first tile's store, with nothing ahead of it on its engine, reads its UB
// rows before the ACTIVATE writes them (the later ones queue behind the stores that wait).
TEST(Race, StoreOnTheSecondEngineWithoutOutputWait) {
  Config config = race_config("ideal");
  config.core.dma_engines = 2;
  const Program racy = drop_sync(race_program(config), kSemStoreReady, 0);
  EXPECT_TRUE(check_outputs(racy, interpret(config, racy).hbm).passed);
  const CheckResult c = simulate_and_check(config, racy, Fidelity::kFast);
  EXPECT_FALSE(c.passed);
  EXPECT_GE(c.mismatches, 48u);
  EXPECT_LE(c.mismatches, 64u);
}

// Two layers through HBM on two engines: the pool's input load on engine 0 must wait for the
// conv's last store on engine 1 (stores_done). A 1x1 conv over 4 x 6 pixels in three M tiles of
// 8, then a 2x2 max pool that loads the whole 4 x 6 output in one band: synchronised, the
// program passes; without that wait engine 0, idle by then, loads the conv's output as soon as
// the load is issued, before the last M tile's store, and the pool reads stale HBM.
Program two_layer_program(const Config& config) {
  const Graph model = parse_model_json(
      R"({"seed": 3, "input": [4, 6, 8], "layers": [
          {"name": "a", "type": "conv2d", "out_channels": 8, "kernel": 1},
          {"name": "p", "type": "maxpool2d", "kernel": 2}]})",
      "two_layers.json");
  CompileOptions options;
  options.max_m_tile = 8;
  options.resident_activations = false;
  return compile(model, config, options);
}

TEST(Race, SecondEngineStoresHandOffToTheNextLayersLoads) {
  Config config = race_config("ideal");
  config.core.dma_engines = 2;
  const Program program = two_layer_program(config);
  EXPECT_TRUE(simulate_and_check(config, program, Fidelity::kFast).passed);
}

TEST(Race, NextLayerLoadWithoutStoresDone) {
  Config config = race_config("ideal");
  config.core.dma_engines = 2;
  const Program racy = drop_sync(two_layer_program(config), kSemStoresDone, 0);
  EXPECT_TRUE(check_outputs(racy, interpret(config, racy).hbm).passed);
  EXPECT_FALSE(simulate_and_check(config, racy, Fidelity::kFast).passed);
}

// A narrow N tile after a wide one completes first (ISA.md, "Ordering"): N = 9 on 8 columns is
// an 8-wide tile then a 1-wide one, 8 + 8 - 1 vs 1 + 1 - 1 cycles from stream start to last
// result. With one acc_ready for both, the first ACTIVATE ran on the second tile's completion
// and read the first tile half landed in pe.
TEST(Race, NarrowTileCompletingFirstDoesNotReleaseTheWideOnePe) {
  const Config config = race_config("ideal");
  const Graph model = parse_model_json(
      R"({"layers": [{"name": "d", "type": "matmul", "m": 1, "k": 4, "n": 9}]})", "narrow.json");
  const CheckResult c = simulate_and_check(config, compile(model, config), Fidelity::kPe);
  EXPECT_TRUE(c.passed);
  EXPECT_EQ(c.mismatches, 0u);
  EXPECT_EQ(c.compared, 9u);
}

}  // namespace
}  // namespace tpu
