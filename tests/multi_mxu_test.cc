// Several matrix units per core (core.mxus): hand-derived cycles of MXUs sharing a layer, the
// UB read ports they contend for, the speed-up of a compiled GEMM, and the config's limits.
// SystemC elaborates once per process: one simulate() per test, or each in a child.
#include <gtest/gtest.h>

#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <systemc>

#include "sim/config/config.h"
#include "sim/isa/program.h"
#include "sim/tpu_core.h"
#include "tests/assembly_run.h"
#include "tools/compiler/frontend.h"
#include "tools/compiler/lowering.h"
#include "tools/run/child.h"

namespace tpu {
namespace {

// The 8 x 8 core of core_timing_test (ideal memory, 64 banks, issue width 1) with two MXUs,
// each with a weight FIFO of two tiles.
Config two_mxus(std::uint32_t read_ports) {
  Config c = timing_core("test8x8x2");
  c.core.mxus = 2;
  c.ub.read_ports = read_ports;
  c.mxu.weight_fifo_tiles = 2;
  return c;
}

RunResult run(const std::string& text, const Config& config) { return run_assembly(text, config); }

// Y = X W for X: 16 x 8, W: 8 x 16 split by N: MXU 0 computes columns 0..7 into accumulator
// rows 0..15, MXU 1 columns 8..15 into rows 16..31, both streaming the same 16 input rows.
const char* const kSplitN = R"(
.hbm 128
.layer 0 fc matmul 2048
layer id=0
dma.load hbm=0 ub=0 elems=64 pack=8 weights
dma.load hbm=64 ub=0 elems=64 pack=8 weights fifo=1
load.weights ub=0 rows=8 cols=8 fifo
load.weights ub=0 rows=8 cols=8 fifo unit=1
matmul ub=8 rows=16 acc=0
matmul ub=8 rows=16 acc=16 unit=1
halt
)";

// Issue one a cycle, pc = cycle: fill 0 (MXU 0) 1, fill 0 (MXU 1) 2, WL0 3, WL1 4, MM0 5,
// MM1 6, halt 7. One DMA transfer at a time; a fill of 8 rows writes its FIFO one row a cycle
// (ideal memory answers at once): fill 0 of MXU 0 1 .. 8, done 9; MXU 1's fill 9 .. 16, done 17.
// WL0 (ready 3) starts when its fill is done, e0 = 9 (stall 6, weights), done e0 + K_t = 17;
// WL1 (ready 4) e1 = 17 (stall 13, weights), done 25: each MXU waits only for its own FIFO.
// MM0 (ready 5) streams from e0 + 1 = 10 (stall 5, weights) on one read port, 10 .. 25:
// L0 = s + M + N_t + R - 2 = 10 + 16 + 8 + 8 - 2 = 40, done 41.
// MM1 (ready 6) from e1 + 1 = 18 (stall 12, weights) on the second read port, 18 .. 33 (rows
// c - 2 and c - 10 in cycle c: different banks): L1 = 18 + 30 = 48, done 49 = total.
// (One MXU would stream the second tile only after the first, from 26: done 26 + 31 = 57.)
TEST(MultiMxu, TwoMxusSplitTheColumnsOfOneLayer) {
  const RunResult r = run(kSplitN, two_mxus(2));
  EXPECT_EQ(at_pc(r, 3).start, 9u);
  EXPECT_EQ(at_pc(r, 3).done, 17u);
  EXPECT_EQ(at_pc(r, 4).start, 17u);
  EXPECT_EQ(at_pc(r, 4).done, 25u);
  EXPECT_EQ(at_pc(r, 4).instance, 1u);
  EXPECT_EQ(at_pc(r, 5).start, 10u);
  EXPECT_EQ(at_pc(r, 5).done, 41u);
  EXPECT_EQ(at_pc(r, 6).start, 18u);
  EXPECT_EQ(at_pc(r, 6).done, 49u);
  EXPECT_EQ(at_pc(r, 6).instance, 1u);
  EXPECT_EQ(r.total_cycles, 49u);
  ASSERT_EQ(r.mxus.size(), 2u);
  EXPECT_EQ(stall(r.mxus[0].weight_load, "weights"), 6u);
  EXPECT_EQ(stall(r.mxus[1].weight_load, "weights"), 13u);
  EXPECT_EQ(stall(r.mxus[0].matmul, "weights"), 5u);
  EXPECT_EQ(stall(r.mxus[1].matmul, "weights"), 12u);
  // Per MXU: M = 16 streaming cycles, K_t = 8 loading cycles, M x K_t x N_t = 1024 MACs; the
  // per-kind counters are their sums.
  for (const MxuStats& m : r.mxus) {
    EXPECT_EQ(m.matmul.busy_cycles, 16u);
    EXPECT_EQ(m.weight_load.busy_cycles, 8u);
    EXPECT_EQ(m.array_macs, 1024u);
  }
  EXPECT_EQ(r.units[std::size_t(Unit::kMatmul)].busy_cycles, 32u);
  EXPECT_EQ(stall(r.units[std::size_t(Unit::kMatmul)], "weights"), 17u);
  ASSERT_EQ(r.layers.size(), 1u);
  ASSERT_EQ(r.layers[0].mxus.size(), 2u);
  EXPECT_EQ(r.layers[0].mxus[1].array_macs, 1024u);
}

// The same program with one UB read port: MM0 holds it 10 .. 25, so MM1 (weights ready from
// 18) streams from 26: its stall of 26 - 6 = 20 is charged to ub_port, the constraint satisfied
// last. L1 = 26 + 30 = 56, done 57 = total, as with one MXU.
TEST(MultiMxu, MxusBeyondTheReadPortsWaitForThePort) {
  const RunResult r = run(kSplitN, two_mxus(1));
  EXPECT_EQ(at_pc(r, 5).start, 10u);
  EXPECT_EQ(at_pc(r, 6).start, 26u);
  EXPECT_EQ(at_pc(r, 6).done, 57u);
  EXPECT_EQ(r.total_cycles, 57u);
  EXPECT_EQ(stall(r.mxus[1].matmul, "ub_port"), 20u);
}

// Cycles of a compiled GEMM, timing only, in a child process.
Cycle gemm_cycles(std::uint32_t mxus) {
  Config c;
  c.core.mxus = mxus;
  c.hbm.preset = "ideal";
  c.ub.read_ports = 8;
  c.acc.capacity_bytes = 16 << 20;
  const Graph g = parse_model_json(
      R"({"name": "gemm", "layers": [{"name": "fc", "type": "matmul", "m": 8192, "k": 2048,
          "n": 2048}]})",
      "gemm");
  CompileOptions options;
  options.timing_only = true;
  const Program p = compile(g, c, options);
  const ChildOutcome out = run_in_child([&] {
    SimOptions sim;
    sim.timing_only = true;
    return std::to_string(simulate(c, p, sim).total_cycles);
  });
  if (!out.ok) throw std::runtime_error(out.error);
  return std::stoull(out.output);
}

// M = 8192, K = 2048, N = 2048 on 128 x 128 arrays with ideal memory, 8 UB read ports (four
// streams, the stores' reads beside them) and 16 MiB of accumulators (two slots of 4096 rows per
// MXU): 16 K tiles x 16 N tiles of 8192 input rows, 2^21 stream cycles, compute bound: per
// stream of M_t rows the one DMA engine moves a 128-row weight tile per MXU, and per output
// tile its input share and its M_t-row store, well under the MXUs' 16 x M_t stream cycles.
// Four MXUs take four N tiles each. Not exactly 4x, because what does not split stays: every
// MXU waits for the first M tile's input (4096 x 16 UB rows through the one write port) before
// its first stream; each MXU's contiguous stream of M_t rows starts only where every cycle
// finds a free port and bank among the other MXUs' streams and the stores', ACTIVATEs' and
// input loads' accesses (ub_port); and the last tiles drain and are stored after the streams.
// One MXU reads its input slot K chunk by K chunk, one UB row a cycle, so its streams wait for
// none of those row-by-row accesses (2,237,293 -> 2,212,274 cycles); several MXUs keep the
// row-by-row slot (tile_gemm), 670,575 cycles: 3.30x.
TEST(MultiMxu, FourMxusOnAComputeBoundGemmRunNearlyFourTimesFaster) {
  const Cycle one = gemm_cycles(1), four = gemm_cycles(4);
  const double speedup = double(one) / double(four);
  EXPECT_GT(one, Cycle(1) << 21);
  EXPECT_GT(four, (Cycle(1) << 21) / 4);
  EXPECT_GT(speedup, 3.25) << one << " vs " << four;
  EXPECT_LT(speedup, 4.0) << one << " vs " << four;
}

// Y = X W for X: M x 8 and W: 8 x 32 (four N tiles of 8 columns), M = 1024, on the 8 x 8 core
// (ideal memory) with four read ports: the four tiles on one MXU, then one tile per MXU.
constexpr Cycle kM = 1024;
const char* const kOneMxu = R"(
.hbm 256
.layer 0 fc matmul 262144
layer id=0
dma.load hbm=0 ub=0 elems=64 pack=8 weights
dma.load hbm=64 ub=0 elems=64 pack=8 weights
dma.load hbm=128 ub=0 elems=64 pack=8 weights
load.weights ub=0 rows=8 cols=8 fifo
matmul ub=8 rows=1024 acc=0
dma.load hbm=192 ub=0 elems=64 pack=8 weights
load.weights ub=0 rows=8 cols=8 fifo
matmul ub=8 rows=1024 acc=1024
load.weights ub=0 rows=8 cols=8 fifo
matmul ub=8 rows=1024 acc=2048
load.weights ub=0 rows=8 cols=8 fifo
matmul ub=8 rows=1024 acc=3072
halt
)";
const char* const kFourMxus = R"(
.hbm 256
.layer 0 fc matmul 262144
layer id=0
dma.load hbm=0 ub=0 elems=64 pack=8 weights
dma.load hbm=64 ub=0 elems=64 pack=8 weights fifo=1
dma.load hbm=128 ub=0 elems=64 pack=8 weights fifo=2
dma.load hbm=192 ub=0 elems=64 pack=8 weights fifo=3
load.weights ub=0 rows=8 cols=8 fifo
load.weights ub=0 rows=8 cols=8 fifo unit=1
load.weights ub=0 rows=8 cols=8 fifo unit=2
load.weights ub=0 rows=8 cols=8 fifo unit=3
matmul ub=8 rows=1024 acc=0
matmul ub=8 rows=1024 acc=1024 unit=1
matmul ub=8 rows=1024 acc=2048 unit=2
matmul ub=8 rows=1024 acc=3072 unit=3
halt
)";

// Total cycles and the MATMULs' stream starts of `text` with `mxus` MXUs, in a child process.
std::vector<Cycle> run_in_child_with(const char* text, std::uint32_t mxus) {
  const ChildOutcome out = run_in_child([&] {
    Config c = timing_core("test8x8x" + std::to_string(mxus));
    c.core.mxus = mxus;
    c.ub.read_ports = 4;
    const RunResult r = run(text, c);
    std::map<std::size_t, Cycle> starts;  // by pc
    for (const InstructionTrace& t : r.trace) {
      if (t.unit == Unit::kMatmul) starts[t.pc] = t.start;
    }
    std::string figures = std::to_string(r.total_cycles);
    for (const auto& [pc, start] : starts) figures += " " + std::to_string(start);
    return figures;
  });
  if (!out.ok) throw std::runtime_error(out.error);
  std::vector<Cycle> figures;
  std::istringstream in(out.output);
  for (Cycle v; in >> v;) figures.push_back(v);
  return figures;
}

// Issue one a cycle (pc = cycle). The one DMA engine runs one fill at a time and a fill of 8
// rows writes its FIFO one row a cycle (ideal memory answers at once): fills done at 9, 17, 25,
// 33. A stream ends L = s + M + N_t + R - 2 = s + M + 14, done L + 1 = s + M + 15.
// Four MXUs: LOAD_WEIGHTS u starts when its MXU's fill is done, e_u = 9, 17, 25, 33, and its
// MATMUL streams from e_u + 1 = 10, 18, 26, 34 on its own read port (streams 8 cycles apart
// read rows 8, 16 or 24 apart: different banks of 64). Total = 34 + M + 15 = M + 49 = 1073.
// One MXU: WL0 e = 9, MM0 s0 = 10; WL1 e = 17, but MM1 streams only once MM0 has left the
// array, s1 = s0 + M; WL2 rewrites weight buffer 0, released by MM0 at s0 + M, so MM2 streams
// from max(s0 + M + 1, s1 + M) = s0 + 2M, and MM3 from s0 + 3M = 3082: total = 10 + 4M + 15 =
// 4M + 25 = 4121. Speed-up (4M + 25) / (M + 49) = 3.84, not 4: the one DMA engine fills the
// four FIFOs one after another, so MXU u starts 8u cycles after MXU 0, and every MXU drains its
// own pipeline (15 cycles) after its stream, where one MXU hides each drain under its next
// stream and pays only the last. The ratio tends to 4 as M grows.
TEST(MultiMxu, FourMxusOnAComputeBoundGemmWithIdealMemoryAreNearlyFourTimesOne) {
  const std::vector<Cycle> one = run_in_child_with(kOneMxu, 1);
  const std::vector<Cycle> four = run_in_child_with(kFourMxus, 4);
  EXPECT_EQ(one, (std::vector<Cycle>{4 * kM + 25, 10, 10 + kM, 10 + 2 * kM, 10 + 3 * kM}));
  EXPECT_EQ(four, (std::vector<Cycle>{kM + 49, 10, 18, 26, 34}));
  const double speedup = double(one[0]) / double(four[0]);
  EXPECT_NEAR(speedup, 3.84, 0.005);
}

TEST(MultiMxuConfig, MxuCountOutsideItsRangeOrBeyondTheUbPortsIsOneLine) {
  EXPECT_EQ(config_error({{"core", {{"mxus", 0}}}}),
            "configs/x.json: core.mxus = 0 is out of range (allowed 1..16)");
  // Four MXUs per read port: the default two ports feed eight, not nine.
  EXPECT_EQ(config_error({{"core", {{"mxus", 8}}}}), "");
  EXPECT_EQ(config_error({{"core", {{"mxus", 9}}}}),
            "configs/x.json: core.mxus = 9 is more than the unified buffer can feed (allowed <= "
            "4 x ub.read_ports = 8)");
  EXPECT_EQ(config_error({{"core", {{"mxus", 9}}}, {"ub", {{"read_ports", 3}}}}), "");
  EXPECT_EQ(parse_config(nlohmann::json::object(), "x").core.mxus, 1u);
}

}  // namespace
}  // namespace tpu
