// Cycle counts of small hand-written programs on an 8 x 8 core, each derived by hand from the
// timing contract (sim/README.md). SystemC elaborates once per process: one simulate() per test.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include <systemc>

#include "sim/isa/program.h"
#include "sim/tpu_core.h"
#include "tests/assembly_run.h"

namespace tpu {
namespace {

// 8 x 8 array (R = C = 8), ideal memory, 64 banks and two read ports so that the weight loader
// and the input stream never contend unless a test says so; 8 vector lanes.
Config core_config() {
  Config c = timing_core("test8x8");
  c.vector.activate_latency = 4;
  c.sequencer.issue_width = 1;
  c.sequencer.queue_depth = 16;
  return c;
}

RunResult run(const std::string& text, const Config& config = core_config()) {
  return run_assembly(text, config);
}

const UnitStats& unit(const RunResult& r, Unit u) { return r.units[std::size_t(u)]; }

// Issue (width 1): layer at 0, load.weights at 1, matmul at 2, halt at 3.
// load.weights K_t = N_t = 8: granted e = 1, the loader reads 1 .. 8 and completes when its
// reads end, e + K_t = 1 + 8 = 9; weight (j, n) reaches PE (j, n) in e + j + n, the tile's
// last one (7, 7) in 1 + 14 = 15, which only the tile's own MATMUL observes.
// matmul M = 16: ready 2 = e + 1 (its inputs trail the weights by one cycle), no stall, s = 2;
// L = s + M + N_t + R - 2 = 2 + 16 + 8 + 8 - 2 = 32, completes 33 = total.
TEST(CoreTiming, SingleTile) {
  const RunResult r = run(R"(
.layer 0 fc matmul 1024
layer id=0
load.weights ub=0 rows=8 cols=8
matmul ub=8 rows=16 acc=0
halt
)");
  EXPECT_EQ(r.total_cycles, 33u);
  EXPECT_EQ(at_pc(r, 1).start, 1u);
  EXPECT_EQ(at_pc(r, 1).done, 9u);
  EXPECT_EQ(at_pc(r, 2).issued, 2u);
  EXPECT_EQ(at_pc(r, 2).start, 2u);
  EXPECT_EQ(at_pc(r, 2).done, 33u);
  EXPECT_EQ(stall(unit(r, Unit::kMatmul), "weights"), 0u);
  EXPECT_EQ(unit(r, Unit::kMatmul).busy_cycles, 16u);
  EXPECT_EQ(unit(r, Unit::kWeightLoad).busy_cycles, 8u);
  ASSERT_EQ(r.layers.size(), 1u);
  const LayerStats& l = r.layers[0];
  EXPECT_EQ(l.first_cycle, 1u);
  EXPECT_EQ(l.last_cycle, 32u);
  EXPECT_EQ(l.compute_first, 1u);
  EXPECT_EQ(l.compute_last, 32u);
  EXPECT_EQ(l.weight_tiles, 1u);
  EXPECT_EQ(l.used_pes, 64u);
  EXPECT_EQ(l.ub_reads, 8u + 16u);
  EXPECT_DOUBLE_EQ(r.simulated_ns, 33 * core_config().period_ns());
}

// SingleTile with sequencer.op_start_cycles = S = 100 and a second, empty layer. Issue (width
// 1): layer 0 at 0 ends its cycle's issue, so load.weights issues at 0 + 1 + S = 101 and every
// cycle of SingleTile moves by S: load.weights 101 .. 109, matmul issued and started 102,
// done 33 + S = 133. layer 1 issues at 103, halt at 103 + 1 + S = 204: total = max(133,
// 204 + 1) = 205, and the sequencer stalled 2 S = 200 cycles for cause op_start.
TEST(CoreTiming, OpStartCyclesDelayEachLayersFirstIssue) {
  Config c = core_config();
  c.sequencer.op_start_cycles = 100;
  const RunResult r = run(R"(
.layer 0 fc matmul 1024
.layer 1 tail matmul 0
layer id=0
load.weights ub=0 rows=8 cols=8
matmul ub=8 rows=16 acc=0
layer id=1
halt
)",
                          c);
  EXPECT_EQ(at_pc(r, 1).issued, 101u);
  EXPECT_EQ(at_pc(r, 1).start, 101u);
  EXPECT_EQ(at_pc(r, 1).done, 109u);
  EXPECT_EQ(at_pc(r, 2).start, 102u);
  EXPECT_EQ(at_pc(r, 2).done, 133u);
  EXPECT_EQ(stall(unit(r, Unit::kSequencer), "op_start"), 200u);
  EXPECT_EQ(r.layers[0].first_cycle, 101u);
  EXPECT_EQ(r.layers[0].last_cycle, 132u);
  EXPECT_EQ(r.total_cycles, 205u);
}

// A transposed tile of K_t = 4, N_t = 8: the loader reads the N_t = 8 staged rows from e = 1,
// 1 .. 8; the tile's rows leave the transpose unit from w = e + N_t = 9 and the load completes
// at w + K_t = 13 (busy N_t + K_t = 12). The matmul (issued 2) may stream from w + 1 = 10:
// stall 8, cause weights; L = 10 + M + N_t + R - 2 = 10 + 16 + 8 + 8 - 2 = 40, completes 41.
TEST(CoreTiming, TransposedLoadReadsNtRowsThenFeedsKtRows) {
  const RunResult r = run(R"(
.layer 0 scores matmul 512
layer id=0
load.weights ub=0 rows=4 cols=8 transpose
matmul ub=8 rows=16 acc=0
halt
)");
  EXPECT_EQ(at_pc(r, 1).start, 1u);
  EXPECT_EQ(at_pc(r, 1).done, 13u);
  EXPECT_EQ(at_pc(r, 2).start, 10u);
  EXPECT_EQ(at_pc(r, 2).done, 41u);
  EXPECT_EQ(r.total_cycles, 41u);
  EXPECT_EQ(stall(unit(r, Unit::kMatmul), "weights"), 8u);
  EXPECT_EQ(unit(r, Unit::kWeightLoad).busy_cycles, 12u);
  EXPECT_EQ(r.layers[0].ub_reads, 8u + 16u);
}

// Through the weight FIFO: the fill of 8 rows of 4 (one row per cycle) runs 1 .. 8 and
// completes at 9; the transposed read starts then, e = 9, w = 17, completes w + K_t = 21; the
// matmul streams from w + 1 = 18, L = 18 + 16 + 8 + 8 - 2 = 48, total 49.
TEST(CoreTiming, TransposedLoadFromTheWeightFifo) {
  Config c = core_config();
  c.mxu.weight_fifo_tiles = 2;
  const RunResult r = run(R"(
.hbm 64
.layer 0 scores matmul 512
layer id=0
dma.load hbm=0 ub=0 elems=32 pack=4 weights
load.weights ub=0 rows=4 cols=8 fifo transpose
matmul ub=8 rows=16 acc=0
halt
)", c);
  EXPECT_EQ(at_pc(r, 1).done, 9u);
  EXPECT_EQ(at_pc(r, 2).start, 9u);
  EXPECT_EQ(at_pc(r, 2).done, 21u);
  EXPECT_EQ(at_pc(r, 3).start, 18u);
  EXPECT_EQ(r.total_cycles, 49u);
  EXPECT_EQ(r.layers[0].ub_reads, 16u);
}

// Two 8 x 8 tiles, M = 16 each: load.weights (issued 0), matmul (1), load.weights (2),
// matmul (3), halt (4).
const char* kTwoTiles = R"(
load.weights ub=0 rows=8 cols=8
matmul ub=16 rows=16 acc=0
load.weights ub=8 rows=8 cols=8
matmul ub=16 rows=16 acc=16
halt
)";

// Double-buffered: LW0 e = 0, loader free and LW0 complete at e + K_t = 0 + 8 = 8. MM0
// (issued 1) s0 = e + 1 = 1, no stall; stream 1 .. 16, free at 17; L0 = 1 + 16 + 8 + 8 - 2 =
// 31, completes 32. LW1 writes buffer 1, which no earlier MATMUL used, as soon as the loader
// is free: e = 8, completes 8 + 8 = 16. MM1 (issued 3) starts when the stream is free (its
// weights lead from 9): s1 = 17, L1 = 17 + 30 = 47, total 48.
TEST(CoreTiming, TwoTilesDoubleBuffered) {
  const RunResult r = run(kTwoTiles);
  EXPECT_EQ(at_pc(r, 1).start, 1u);
  EXPECT_EQ(at_pc(r, 2).start, 8u);
  EXPECT_EQ(at_pc(r, 2).done, 16u);
  EXPECT_EQ(at_pc(r, 3).start, 17u);
  EXPECT_EQ(at_pc(r, 3).done, 48u);
  EXPECT_EQ(r.total_cycles, 48u);
  EXPECT_EQ(stall(unit(r, Unit::kWeightLoad), "weight_buffer"), 0u);
  EXPECT_EQ(stall(unit(r, Unit::kMatmul), "weights"), 0u);
}

// Single buffer (row feed, the un-overlapped baseline): LW0 e = 0, completes 8; MM0 waits for
// it: s0 = 8 (stall 7, weights), L0 = 8 + 16 + 8 + 8 - 2 = 38, completes 39. LW1 must wait for
// MM0 to complete (39, cause weight_buffer: ready 8, stall 31), not just for the wavefront
// (s0 + M = 24): e = 39, completes 47. MM1 (ready 24) waits for it: s1 = 47 (stall 23),
// L1 = 47 + 30 = 77, total 78. Each tile costs K_t + M + N_t + R - 1 = 2R + C + M - 1 = 39
// cycles from its load: SCALE-Sim's un-overlapped 2R + C + M - 2 per fold, plus one for the
// completion convention. Saving of double buffering = 78 - 48 = 30 = (K_t - 1) +
// (K_t + N_t + R - 1): the first stream starts one cycle after its load instead of K_t, and
// the second tile's load and the first one's drain are no longer serialised with the streams.
TEST(CoreTiming, TwoTilesSingleBuffered) {
  Config c = core_config();
  c.mxu.double_buffer_weights = false;
  const RunResult r = run(kTwoTiles, c);
  EXPECT_EQ(at_pc(r, 2).start, 39u);
  EXPECT_EQ(at_pc(r, 2).done, 47u);
  EXPECT_EQ(at_pc(r, 3).start, 47u);
  EXPECT_EQ(r.total_cycles, 78u);
  EXPECT_EQ(stall(unit(r, Unit::kWeightLoad), "weight_buffer"), 31u);
  EXPECT_EQ(stall(unit(r, Unit::kMatmul), "weights"), 7u + 23u);
  const Cycle k = 8, n = 8, rows = 8, m = 16;
  EXPECT_EQ(r.total_cycles - 48u, (k - 1) + (k + n + rows - 1));
  EXPECT_EQ(r.total_cycles, 2 * (2 * rows + n + m - 1));
}

// `tiles` 8-row weight tiles N_t wide (ub rows 0, 8, ...), each multiplied by one MATMUL of M
// rows (inputs at ub 32, whose banks no weight row shares). Issue (width 1): LW_i at 2i,
// MM_i at 2i + 1.
std::string back_to_back(int tiles, int n_t, int m) {
  std::string text;
  for (int i = 0; i < tiles; ++i) {
    text += "load.weights ub=" + std::to_string(8 * i) + " rows=8 cols=" + std::to_string(n_t) +
            "\nmatmul ub=32 rows=" + std::to_string(m) + " acc=" + std::to_string(16 * i) + "\n";
  }
  return text + "halt\n";
}

// Double-buffered, K_t = N_t = 8, M = 15: tile i + 2 reuses the buffer of tile i, released at
// s_i + M (its last input passed PE (0, 0) in s_i + M - 1, and every PE (j, n) j + n cycles
// later, exactly when a load from s_i + M writes it, one cycle earlier); its stream starts
// one cycle after that load starts, and the stream of tile i + 1 keeps the array busy until
// s_i + 2M >= s_i + M + 1: one tile per max(M, K_t) = M cycles, no stream gaps.
// LW0 e0 = 0 (loader free 8); MM0 s0 = 1, released 16. LW1 e1 = 8 (free 16); MM1 (ready 16,
// weights from 9) s1 = 16, released 31. LW2 (ready 16, buffer 0 released 16) e2 = 16, no stall
// (free 24); MM2 (ready 31, weights from 17) s2 = 31, released 46. LW3 (ready 24) e3 = 31
// (stall 7, weight_buffer; free 39); MM3 (ready 46, weights from 32) s3 = 46.
// L3 = 46 + 15 + 8 + 8 - 2 = 75, total 76. (The old rule, rows written in e + j and released
// at s + M + N_t - 1 = s + 22, streamed at 8, 23, 38, 53: total 83.)
TEST(CoreTiming, BackToBackTilesStreamEveryMCycles) {
  const RunResult r = run(back_to_back(4, 8, 15));
  EXPECT_EQ(at_pc(r, 1).start, 1u);
  EXPECT_EQ(at_pc(r, 2).start, 8u);
  EXPECT_EQ(at_pc(r, 3).start, 16u);
  EXPECT_EQ(at_pc(r, 4).start, 16u);
  EXPECT_EQ(at_pc(r, 5).start, 31u);
  EXPECT_EQ(at_pc(r, 6).start, 31u);
  EXPECT_EQ(at_pc(r, 7).start, 46u);
  EXPECT_EQ(r.total_cycles, 76u);
  EXPECT_EQ(stall(unit(r, Unit::kWeightLoad), "weight_buffer"), 7u);
  EXPECT_EQ(stall(unit(r, Unit::kMatmul), "weights"), 0u);
}

// M = 14 < K_t + N_t - 1, which under the old rule (release at s + M + N_t - 1, rows written
// in e + j, stream after e + K_t) cost (M + N_t + K_t - 1) / 2 = 14.5 cycles per tile
// (streams at 8, 22, 37, 51: total 80). Now the release binds the loader, never the stream:
// MM0 s0 = 1, released 15; LW1 e1 = 8 (free 16), MM1 s1 = 15, released 29; LW2 (ready 16,
// buffer 0 free since 15) e2 = 16, MM2 (ready 29) s2 = 29, released 43; LW3 (ready 24) waits
// for buffer 1: e3 = 29 (stall 5, weight_buffer); MM3 (ready 43, weights from 30) s3 = 43.
// L3 = 43 + 14 + 8 + 8 - 2 = 71, total 72: one tile per M cycles.
TEST(CoreTiming, BackToBackTilesWhenTheReleaseBindsTheLoader) {
  const RunResult r = run(back_to_back(4, 8, 14));
  EXPECT_EQ(at_pc(r, 3).start, 15u);
  EXPECT_EQ(at_pc(r, 4).start, 16u);
  EXPECT_EQ(at_pc(r, 5).start, 29u);
  EXPECT_EQ(at_pc(r, 6).start, 29u);
  EXPECT_EQ(at_pc(r, 7).start, 43u);
  EXPECT_EQ(r.total_cycles, 72u);
  EXPECT_EQ(stall(unit(r, Unit::kWeightLoad), "weight_buffer"), 5u);
  EXPECT_EQ(stall(unit(r, Unit::kMatmul), "weights"), 0u);
}

// M = 4 < K_t = 8, N_t = 4: the loader binds, one tile per K_t cycles. Releases come at
// s_i + M = s_i + 4, before the loader is free. LW0 0 (free and complete at 0 + 8 = 8);
// MM0 s0 = 1, released 5. LW1 e1 = 8 (free 16); MM1 (ready 5) waits for its weights:
// s1 = 9 (stall 4). LW2 (ready 16, buffer 0 released 5) e2 = 16; MM2 (ready 13) s2 = 17
// (stall 4). LW3 (ready 24, released 13) e3 = 24; MM3 (ready 21) s3 = 25 (stall 4).
// L3 = 25 + 4 + 4 + 8 - 2 = 39, total 40 (LW3 completes at 24 + 8 = 32, earlier).
// (When a double-buffered load completed at e + K_t + N_t - 1, LW0 completed at 11.)
TEST(CoreTiming, BackToBackTilesWithFewRowsAreLoadBound) {
  const RunResult r = run(back_to_back(4, 4, 4));
  EXPECT_EQ(at_pc(r, 0).done, 8u);
  EXPECT_EQ(at_pc(r, 3).start, 9u);
  EXPECT_EQ(at_pc(r, 4).start, 16u);
  EXPECT_EQ(at_pc(r, 5).start, 17u);
  EXPECT_EQ(at_pc(r, 6).start, 24u);
  EXPECT_EQ(at_pc(r, 7).start, 25u);
  EXPECT_EQ(r.total_cycles, 40u);
  EXPECT_EQ(stall(unit(r, Unit::kWeightLoad), "weight_buffer"), 0u);
  EXPECT_EQ(stall(unit(r, Unit::kMatmul), "weights"), 3 * 4u);
}

// Tile 0 (8 x 8, buffer 0) has two MATMULs; tile 1 (K_t = 2, N_t = 1, buffer 1) one; tile 2
// reloads buffer 0, so it waits for the later MATMUL of tile 0 (whatever either tile's width).
// Issue: LW0 0, MMa 1, MMb 2, LW1 3, MM1 4, LW2 5, MM2 6.
// LW0 0 (free 8). MMa (M = 4) s = 1, released 5. MMb (M = 10, ready 5) s = 5, released 15,
// L = 5 + 10 + 8 + 8 - 2 = 29, completes 30. LW1 e = 8 (free and complete at 8 + 2 = 10,
// as under the old e + K_t + N_t - 1 = 8 + 2 + 1 - 1 with N_t = 1); MM1 (M = 1, ready 15)
// s1 = 15, released 16. LW2 ready 10, buffer 0 free at 15 (MMa's release at 5 is not
// enough): e = 15 (stall 5, weight_buffer), while MM1 streams buffer 1.
// MM2 (ready 16, weights from 16) s2 = 16, L2 = 16 + 4 + 8 + 8 - 2 = 34, total 35.
TEST(CoreTiming, LastMatmulOfATileBindsTheReload) {
  const RunResult r = run(R"(
load.weights ub=0 rows=8 cols=8
matmul ub=32 rows=4 acc=0
matmul ub=32 rows=10 acc=8
load.weights ub=8 rows=2 cols=1
matmul ub=32 rows=1 acc=24
load.weights ub=16 rows=8 cols=8
matmul ub=32 rows=4 acc=32
halt
)");
  EXPECT_EQ(at_pc(r, 1).start, 1u);
  EXPECT_EQ(at_pc(r, 2).start, 5u);
  EXPECT_EQ(at_pc(r, 2).done, 30u);
  EXPECT_EQ(at_pc(r, 3).done, 10u);
  EXPECT_EQ(at_pc(r, 4).start, 15u);
  EXPECT_EQ(at_pc(r, 5).start, 15u);
  EXPECT_EQ(at_pc(r, 6).start, 16u);
  EXPECT_EQ(r.total_cycles, 35u);
  EXPECT_EQ(stall(unit(r, Unit::kWeightLoad), "weight_buffer"), 5u);
  EXPECT_EQ(stall(unit(r, Unit::kMatmul), "weights"), 0u);
}

// Weight FIFO (sim/README.md, "Weight FIFO", "LOAD_WEIGHTS fifo"), the default 4 entries.
// Issue (width 1): layer 0, dma.load weights 1, load.weights fifo 2, matmul 3, halt 4.
// The fill (8 x 8 int8 = 64 bytes, one request of the 256-byte burst) starts at 1; ideal
// memory answers in 1 and the response completes all 8 rows, written into the FIFO one per
// cycle on its own port, 1 .. 8: the fill completes at 9, with no UB write.
// The load (ready 2) waits for its fill: e = 9 (stall 7, weights), reads the FIFO 9 .. 16, no
// UB read, completes e + K_t = 17. The matmul (ready 3) streams from e + 1 = 10 (stall 7,
// weights): L = 10 + 16 + 8 + 8 - 2 = 40, total 41. The layer's UB traffic is the matmul's 16
// input rows and nothing else.
TEST(CoreTiming, WeightFifoLoadBypassesTheUnifiedBuffer) {
  const RunResult r = run(R"(
.hbm 64
.layer 0 fc matmul 1024
layer id=0
dma.load hbm=0 ub=0 elems=64 pack=8 weights
load.weights ub=0 rows=8 cols=8 fifo
matmul ub=8 rows=16 acc=0
halt
)");
  EXPECT_EQ(at_pc(r, 1).start, 1u);
  EXPECT_EQ(at_pc(r, 1).done, 9u);
  EXPECT_EQ(at_pc(r, 2).start, 9u);
  EXPECT_EQ(at_pc(r, 2).done, 17u);
  EXPECT_EQ(at_pc(r, 3).start, 10u);
  EXPECT_EQ(at_pc(r, 3).done, 41u);
  EXPECT_EQ(r.total_cycles, 41u);
  EXPECT_EQ(stall(unit(r, Unit::kWeightLoad), "weights"), 7u);
  EXPECT_EQ(stall(unit(r, Unit::kMatmul), "weights"), 7u);
  ASSERT_EQ(r.layers.size(), 1u);
  EXPECT_EQ(r.layers[0].ub_writes, 0u);
  EXPECT_EQ(r.layers[0].ub_reads, 16u);
  EXPECT_EQ(r.layers[0].hbm_read_bytes, 64u);
  EXPECT_EQ(r.layers[0].weight_tiles, 1u);
}

// A full FIFO (2 entries) stalls the DMA, cause weight_fifo. Fill f must follow read f - 2 in
// program order (ISA.md, "Ordering"). Issue (one a cycle, pc = cycle): f0 0, f1 1, r0 2, MM0 3,
// f2 4, r1 5, MM1 6, f3 7, r2 8, MM2 9, f4 10, r3 11, MM3 12, r4 13, MM4 14, halt 15. Every
// fill is 8 rows (8 cycles on the FIFO port, as above); MATMULs of M = 32.
// f0 0 .. 7, done 8. f1 (a free entry) 8, done 16.
// r0 (ready 2) e0 = 8 when f0 is done (stall 6, weights), done 16. MM0 s0 = 9, released
// s0 + M = 41, unit free 41.
// f2 needs r0 done (16) and the DMA (16): 16, done 24. r1 (loader free 16, f1 done 16) e1 = 16,
// done 24. f3 needs r1 done (24): 24, done 32.
// r2 (loader free 24, f2 done 24) waits for buffer 0, released by MM0 at 41: e2 = 41 (stall 17,
// weight_buffer), done 49. f4 (ready 32) needs r2 done: 49 (stall 17, weight_fifo), done 57.
// MM1 (weights from 17, unit free 41) s1 = 41, released 73. r3 (loader free 49, f3 done 32)
// waits for buffer 1: e3 = 73 (stall 24), done 81. MM2 (weights from 42) s2 = 73, released 105.
// r4 (loader free 81, f4 done 57) waits for buffer 0: e4 = 105 (stall 24). MM3 s3 = 105,
// released 137; MM4 (weights from 106) s4 = 137, L4 = 137 + 32 + 8 + 8 - 2 = 183, total 184.
TEST(CoreTiming, FullWeightFifoStallsTheDma) {
  Config c = core_config();
  c.mxu.weight_fifo_tiles = 2;
  const auto fill = [](int f) {
    return "dma.load hbm=" + std::to_string(64 * f) + " ub=0 elems=64 pack=8 weights\n";
  };
  const auto tile = [](int i) {
    return "load.weights ub=0 rows=8 cols=8 fifo\nmatmul ub=8 rows=32 acc=" +
           std::to_string(32 * i) + "\n";
  };
  const std::string text = ".hbm 320\n" + fill(0) + fill(1) + tile(0) + fill(2) + tile(1) +
                           fill(3) + tile(2) + fill(4) + tile(3) + tile(4) + "halt\n";
  const RunResult r = run(text, c);
  EXPECT_EQ(at_pc(r, 0).done, 8u);
  EXPECT_EQ(at_pc(r, 1).done, 16u);
  EXPECT_EQ(at_pc(r, 2).start, 8u);
  EXPECT_EQ(at_pc(r, 3).start, 9u);
  EXPECT_EQ(at_pc(r, 4).start, 16u);
  EXPECT_EQ(at_pc(r, 5).start, 16u);
  EXPECT_EQ(at_pc(r, 7).start, 24u);
  EXPECT_EQ(at_pc(r, 8).start, 41u);
  EXPECT_EQ(at_pc(r, 10).start, 49u);
  EXPECT_EQ(at_pc(r, 10).done, 57u);
  EXPECT_EQ(at_pc(r, 11).start, 73u);
  EXPECT_EQ(at_pc(r, 13).start, 105u);
  EXPECT_EQ(at_pc(r, 14).start, 137u);
  EXPECT_EQ(r.total_cycles, 184u);
  EXPECT_EQ(stall(unit(r, Unit::kDma), "weight_fifo"), 17u);
  EXPECT_EQ(stall(unit(r, Unit::kWeightLoad), "weights"), 6u);
  EXPECT_EQ(stall(unit(r, Unit::kWeightLoad), "weight_buffer"), 17u + 24u + 24u);
}

// Without a FIFO (weight_fifo_tiles = 0) a FIFO load is rejected before the run, in one line.
TEST(CoreTiming, WeightFifoLoadWithoutAFifoIsRejected) {
  Config c = core_config();
  c.mxu.weight_fifo_tiles = 0;
  try {
    run("load.weights ub=0 rows=8 cols=8 fifo\nhalt\n", c);
    FAIL() << "expected an error";
  } catch (const SimError& e) {
    EXPECT_EQ(std::string(e.what()),
              "instruction 0 'load.weights ub=0 rows=8 cols=8 fifo': the config 'test8x8' has "
              "no weight FIFO (mxu.weight_fifo_tiles = 0)");
  }
}

// Short streams through the FIFO: M = K_t = N_t = 8, four tiles, fills first. Issue: f0..f3 at
// 0..3, then r_i at 4 + 2i, MM_i at 5 + 2i. Fills complete at 8, 16, 24, 32 (8 rows each on
// the FIFO port). r0 e0 = 8 (done 16); MM0 s0 = 9, released and unit free at 17. r1 (loader
// free 16, f1 done 16) e1 = 16; MM1 (weights from 17) s1 = 17, released 25. r2 (f2 done 24,
// buffer 0 released 17) e2 = 24; MM2 s2 = 25. r3 e3 = 32; MM3 s3 = 33,
// L3 = 33 + 8 + 8 + 8 - 2 = 55, total 56: streams every 8 = max(M, K_t) cycles, with no UB
// write port in the weights' path.
TEST(CoreTiming, ShortStreamsThroughTheWeightFifoRunOneTilePerMaxMKt) {
  std::string text = ".hbm 256\n";
  for (int f = 0; f < 4; ++f) {
    text += "dma.load hbm=" + std::to_string(64 * f) + " ub=0 elems=64 pack=8 weights\n";
  }
  for (int i = 0; i < 4; ++i) {
    text += "load.weights ub=0 rows=8 cols=8 fifo\nmatmul ub=8 rows=8 acc=" +
            std::to_string(8 * i) + "\n";
  }
  const RunResult r = run(text + "halt\n");
  EXPECT_EQ(at_pc(r, 3).done, 32u);
  EXPECT_EQ(at_pc(r, 4).start, 8u);
  EXPECT_EQ(at_pc(r, 5).start, 9u);
  EXPECT_EQ(at_pc(r, 6).start, 16u);
  EXPECT_EQ(at_pc(r, 7).start, 17u);
  EXPECT_EQ(at_pc(r, 8).start, 24u);
  EXPECT_EQ(at_pc(r, 9).start, 25u);
  EXPECT_EQ(at_pc(r, 10).start, 32u);
  EXPECT_EQ(at_pc(r, 11).start, 33u);
  EXPECT_EQ(r.total_cycles, 56u);
  EXPECT_EQ(stall(unit(r, Unit::kDma), "weight_fifo"), 0u);
}

// K = 13 split into K_t = 8 and 5, N_t = 6, M = 4, second pass accumulating.
// LW0 e = 0, loader free and LW0 complete at 0 + 8 = 8 (its reads ended; the wave reaches
// PE (7, 5) in 0 + 7 + 5 = 12). MM0 s0 = 1, L0 = 1 + 4 + 6 + 8 - 2 = 17, completes 18, free
// at 5. LW1 (5 rows) e = 8, busy 8 .. 12, completes 8 + 5 = 13. MM1 ready 5, weights from 9 (stall 4, weights): s1 = 9, L1 = 9 + 4 + 6 + 8 - 2 = 25,
// completes 26 = total. N_t, not C, sets the drain; R, not K_t, sets the depth.
TEST(CoreTiming, KSplitAccumulate) {
  const RunResult r = run(R"(
load.weights ub=0 rows=8 cols=6
matmul ub=16 rows=4 acc=0
load.weights ub=8 rows=5 cols=6
matmul ub=20 rows=4 acc=0 accumulate
halt
)");
  EXPECT_EQ(at_pc(r, 0).done, 8u);
  EXPECT_EQ(at_pc(r, 1).done, 18u);
  EXPECT_EQ(at_pc(r, 2).start, 8u);
  EXPECT_EQ(at_pc(r, 2).done, 13u);
  EXPECT_EQ(at_pc(r, 3).start, 9u);
  EXPECT_EQ(r.total_cycles, 26u);
  EXPECT_EQ(stall(unit(r, Unit::kMatmul), "weights"), 4u);
}

// A 3x3 depthwise conv over 8 channels as the compiler maps it on 8 x 8 (one block of 8
// groups; compiler_test's DepthwiseOn8x8IsOneBlockDiagonalTilePerTap), here with the weights
// staged in two UB slots: per tap one block-diagonal weight tile (K_t = N_t = 8, blocks = 8,
// one weight per column) and one MATMUL of the output row's M = 8 pixels from a 3 x 10 input
// (UB rows 16 + 10 ky + kx onwards), accumulating over the taps. Issue: layer at pc and cycle
// 0, LW_i at 1 + 2i, MM_i at 2 + 2i, always before they can start. LW_i is granted when the
// loader frees, e_i = 1 + K_t i = 1 + 8i (its buffer's last MATMUL, MM_{i-2}, released at
// s + M = 8i - 5, earlier); MM_i starts when both its weights lead (e_i + 1) and the stream is
// free (s_{i-1} + M): s_i = 2 + 8i. The last, s_8 = 66, completes at
// s_8 + M + N_t + R - 2 + 1 = 66 + 8 + 8 + 8 - 2 + 1 = 89. Blocks change no timing, only the
// used PEs: 9 tiles x 8 x 8 / 8 = 72 of 9 x 64, a mapping efficiency of 1/8.
TEST(CoreTiming, DepthwiseTapsStreamOneTilePerKtCycles) {
  std::string text = ".layer 0 dw conv2d 576\nlayer id=0\n";
  for (int ky = 0, i = 0; ky < 3; ++ky) {
    for (int kx = 0; kx < 3; ++kx, ++i) {
      text += "load.weights ub=" + std::to_string(i % 2 ? 8 : 0) + " rows=8 cols=8 blocks=8\n";
      text += "matmul ub=" + std::to_string(16 + 10 * ky + kx) + " rows=8 acc=0" +
              (i > 0 ? " accumulate\n" : "\n");
    }
  }
  const RunResult r = run(text + "halt\n");
  for (std::size_t i = 0; i < 9; ++i) {
    EXPECT_EQ(at_pc(r, 1 + 2 * i).start, 1 + 8 * i);
    EXPECT_EQ(at_pc(r, 2 + 2 * i).start, 2 + 8 * i);
  }
  EXPECT_EQ(at_pc(r, 18).done, 89u);
  EXPECT_EQ(r.total_cycles, 89u);
  EXPECT_EQ(stall(unit(r, Unit::kWeightLoad), "weight_buffer"), 0u);
  ASSERT_EQ(r.layers.size(), 1u);
  EXPECT_EQ(r.layers[0].weight_tiles, 9u);
  EXPECT_EQ(r.layers[0].used_pes, 9u * 8 * 8 / 8);
}

// Per-transfer waits on the rows path with K tiles > 1: M = 16 input vectors of K = 16
// elements, KR = 2 UB rows each (K tile k of vector m in UB row 2m + k), gathered by two
// transfers of 8 vectors (16 rows); K tile 0's MATMUL is one per transfer, each waiting for the
// transfer that wrote its rows (x_ready counts them), and K tile 1's follows in the stream.
// (lower_gemm emits this only at KR = 1: with 32 banks a stride-KR stream beside the DMA's
// row writes meets them in a bank, see `paced` there; here 64 banks keep them apart.)
// Both transfers lie in one 256-byte burst each way: one request, answered at once (ideal).
// Issue (width 1): DMA_A 0, DMA_B 1, LW0 2, MM_A 3, MM_B 4, LW1 5, MM1 6.
// DMA_A starts 0, writes rows 0 .. 15 at 0 .. 15, completes 16; DMA_B starts 16 (one transfer at
// a time), writes rows 16 .. 31 at 16 .. 31, completes 32. LW0 e = 2, reads rows 64 .. 71 (banks
// 0 .. 7, two behind the DMA's) 2 .. 9, completes 10. MM_A waits for x_ready (DMA_A, 16):
// s = 16, reads rows 0, 2, .., 14 at 16 .. 23 (bank 2i against the DMA's 16 + i: no conflict),
// L = s + M + N_t + R - 2 = 16 + 8 + 8 + 8 - 2 = 38, completes 39. MM_B waits for DMA_B:
// s = 32, L = 32 + 22 = 54, completes 55. LW1 (buffer 1) e = 10 when the loader frees,
// completes 18. MM1 (M = 16, K tile 1: rows 1, 3, .., 31) follows MM_B in the stream: s = 40,
// L = 40 + 16 + 8 + 8 - 2 = 70, completes 71 = total. So K tile 0 streams behind the first
// transfer: s = 16 = one transfer's 2 x 8 row writes, not the M tile's 32.
constexpr const char* kPacedRows = R"(
.hbm 256
.sem 0 x_ready
dma.load hbm=0 ub=0 elems=16 pack=8 groups=8 group_stride=16 ub_stride=2 signal=x_ready
dma.load hbm=128 ub=16 elems=16 pack=8 groups=8 group_stride=16 ub_stride=2 signal=x_ready
load.weights ub=64 rows=8 cols=8
matmul ub=0 stride=2 rows=8 acc=0 wait=x_ready
matmul ub=16 stride=2 rows=8 acc=8 wait=x_ready
load.weights ub=72 rows=8 cols=8
matmul ub=1 stride=2 rows=16 acc=0 accumulate
halt
)";

void expect_paced_rows(const RunResult& r) {
  EXPECT_EQ(at_pc(r, 0).done, 16u);
  EXPECT_EQ(at_pc(r, 1).start, 16u);
  EXPECT_EQ(at_pc(r, 1).done, 32u);
  EXPECT_EQ(at_pc(r, 2).done, 10u);
  EXPECT_EQ(at_pc(r, 3).start, 16u);
  EXPECT_EQ(at_pc(r, 3).done, 39u);
  EXPECT_EQ(at_pc(r, 4).start, 32u);
  EXPECT_EQ(at_pc(r, 4).done, 55u);
  EXPECT_EQ(at_pc(r, 5).start, 10u);
  EXPECT_EQ(at_pc(r, 6).start, 40u);
  EXPECT_EQ(r.total_cycles, 71u);
  EXPECT_EQ(stall(unit(r, Unit::kMatmul), "ub_port"), 0u);
}

TEST(CoreTiming, RowsPathStreamStartsBehindItsFirstGatherTransfer) {
  expect_paced_rows(run(kPacedRows));
}

TEST(CoreTiming, RowsPathStreamBehindItsFirstTransferPeAgrees) {
  SimOptions options;
  options.trace = true;
  options.fidelity = Fidelity::kPe;
  expect_paced_rows(simulate(core_config(), parse_assembly(std::string(".array 8 8\n") +
                                                           kPacedRows),
                             options));
}

// The same M tile with one MATMUL per K tile waiting for the whole gather (the schedule before
// per-transfer waits): MM0 (M = 16) s = 32, streams 32 .. 47; MM1 s = 48,
// L = 48 + 16 + 8 + 8 - 2 = 70, completes 79: 8 cycles (MM_A's stream, which ran beside DMA_B)
// later than above.
TEST(CoreTiming, RowsPathStreamWaitingForTheWholeGather) {
  const RunResult r = run(R"(
.hbm 256
.sem 0 x_ready
dma.load hbm=0 ub=0 elems=16 pack=8 groups=8 group_stride=16 ub_stride=2
dma.load hbm=128 ub=16 elems=16 pack=8 groups=8 group_stride=16 ub_stride=2 signal=x_ready
load.weights ub=64 rows=8 cols=8
matmul ub=0 stride=2 rows=16 acc=0 wait=x_ready
load.weights ub=72 rows=8 cols=8
matmul ub=1 stride=2 rows=16 acc=0 accumulate
halt
)");
  EXPECT_EQ(at_pc(r, 3).start, 32u);
  EXPECT_EQ(at_pc(r, 5).start, 48u);
  EXPECT_EQ(r.total_cycles, 79u);
}

// MM (M = 4): s = 1, L = 1 + 4 + 8 + 8 - 2 = 19, completes 20 and signals acc_ready.
// activate (issued 2) stalls 18 cycles on sem:acc_ready, v = 20; c = ceil(8 / 8) = 1, write
// burst no earlier than v + 4 + M * (c - 1) = 24, granted 24, completes 28 = total.
TEST(CoreTiming, SemaphoreWait) {
  const RunResult r = run(R"(
.sem 2 acc_ready
load.weights ub=0 rows=8 cols=8
matmul ub=8 rows=4 acc=0 signal=acc_ready
activate acc=0 rows=4 cols=8 ub=40 wait=acc_ready
halt
)");
  EXPECT_EQ(at_pc(r, 2).start, 20u);
  EXPECT_EQ(at_pc(r, 2).done, 28u);
  EXPECT_EQ(stall(unit(r, Unit::kVector), "sem:acc_ready"), 18u);
  EXPECT_EQ(unit(r, Unit::kVector).busy_cycles, 8u);
  EXPECT_EQ(r.total_cycles, 28u);
}

// queue_depth 2. LW issued 0 (e = 0); MM1 issued 1 and taken at once (its weights lead from
// e + 1 = 1); MM2, MM3 issued 2, 3 fill the queue; MM4 cannot issue at 4. MM1 streams
// 1 .. 10, the unit takes MM2 at 11, so the slot is free for issue at 12: queue stall
// 12 - 4 = 8. Streams at 1, 11, 21, 31 (M = 10 each); L4 = 31 + 10 + 8 + 8 - 2 = 55, total 56.
TEST(CoreTiming, QueueFullStallsIssue) {
  Config c = core_config();
  c.sequencer.queue_depth = 2;
  const RunResult r = run(R"(
load.weights ub=0 rows=8 cols=8
matmul ub=8 rows=10 acc=0
matmul ub=8 rows=10 acc=0
matmul ub=8 rows=10 acc=0
matmul ub=8 rows=10 acc=0
halt
)",
                          c);
  EXPECT_EQ(at_pc(r, 1).start, 1u);
  EXPECT_EQ(at_pc(r, 4).issued, 12u);
  EXPECT_EQ(stall(unit(r, Unit::kSequencer), "queue"), 8u);
  EXPECT_EQ(at_pc(r, 2).start, 11u);
  EXPECT_EQ(at_pc(r, 3).start, 21u);
  EXPECT_EQ(at_pc(r, 4).start, 31u);
  EXPECT_EQ(r.total_cycles, 56u);
}

// One read port: the input stream and the weight loader contend. LW0 reads 0 .. 7; MM0 (its
// weights lead from 1) asks for the port at 1 and gets it at 8 (stall 7, charged to weights:
// it waited for its own tile's UB read), holding it 8 .. 23; LW1 (ready 8) is granted after
// it, e = 24 (stall 16, ub_port), reads 24 .. 31; MM1 (ready 24, weights from 25) asks at 25,
// gets the port at 32 (stall 8, weights again): s1 = 32, L1 = 32 + 16 + 8 + 8 - 2 = 62,
// total 63, as when the stream waited for the load to complete.
TEST(CoreTiming, UbPortContention) {
  Config c = core_config();
  c.ub.read_ports = 1;
  const RunResult r = run(kTwoTiles, c);
  EXPECT_EQ(at_pc(r, 1).start, 8u);
  EXPECT_EQ(at_pc(r, 2).start, 24u);
  EXPECT_EQ(stall(unit(r, Unit::kWeightLoad), "ub_port"), 16u);
  EXPECT_EQ(at_pc(r, 3).start, 32u);
  EXPECT_EQ(stall(unit(r, Unit::kMatmul), "weights"), 7u + 8u);
  EXPECT_EQ(stall(unit(r, Unit::kMatmul), "ub_port"), 0u);
  EXPECT_EQ(r.total_cycles, 63u);
}

// The vector unit writes the UB through its own port, so an ACTIVATE's output rows and a DMA
// load's rows land in the same cycles with one DMA write port (banks apart: UB rows 100..107
// in banks 36..43, rows 0..7 in banks 0..7). ACTIVATE 8 x 8 (issued 0, 8 lanes, c = 1): v = 0,
// writes no earlier than v + L + W - M = 0 + 4 + 8 - 8 = 4, at 4..11, completes 12. dma.load of
// 8 rows of 8 bytes (issued 1): one 64-byte request at 1, answered at 1 (ideal), its 8 rows
// written at 1..8, completes 9. Were the port shared, the ACTIVATE's burst (arbitrated first,
// at 1/2) would hold it 4..11 and the load's rows would go 1, 2, 3, 12..16: completion 17.
// halt (issued 2) retires at the last completion: total 12.
TEST(CoreTiming, VectorWritesDoNotWaitForDmaWrites) {
  const RunResult r = run(R"(
.hbm 64
activate acc=0 rows=8 cols=8 ub=100
dma.load hbm=0 ub=0 elems=64 pack=8
halt
)");
  EXPECT_EQ(at_pc(r, 0).start, 0u);
  EXPECT_EQ(at_pc(r, 0).done, 12u);
  EXPECT_EQ(at_pc(r, 1).start, 1u);
  EXPECT_EQ(at_pc(r, 1).done, 9u);
  EXPECT_EQ(r.total_cycles, 12u);
}

// 4 lanes. ACTIVATE 4 x 8 (issued 0): c = ceil(8 / 4) = 2, v = 0, write burst no earlier than
// 0 + 4 + 4 * (2 - 1) = 8, completes 8 + 4 = 12. POOL 4 x 4, 2 x 2 window, stride 2, 8
// channels (issued 1) starts when the unit is free: v = 12, read burst r = 12; OH = OW = 2,
// c = 2, write no earlier than 12 + max(16, 4 * 2 * 2 * 2) + 2 = 46, completes 46 + 4 = 50.
TEST(CoreTiming, VectorActivateThenPool) {
  Config c = core_config();
  c.vector.lanes = 4;
  c.vector.pool_latency = 2;
  const RunResult r = run(R"(
activate acc=0 rows=4 cols=8 ub=40
pool ub=0 dst=100 in_h=4 in_w=4 kernel_h=2 kernel_w=2 stride=2 cols=8
halt
)",
                          c);
  EXPECT_EQ(at_pc(r, 0).done, 12u);
  EXPECT_EQ(at_pc(r, 1).start, 12u);
  EXPECT_EQ(at_pc(r, 1).done, 50u);
  EXPECT_EQ(unit(r, Unit::kVector).busy_cycles, 50u);
  EXPECT_EQ(r.total_cycles, 50u);
}

// 4 lanes, 2 read ports. ADD 4 rows x 8 columns (issued 0), c = ceil(8 / 4) = 2, v = 0: a
// reads at 0..3 (end 4); b reads requested at 0 + 1/2 join cycle 1: 1..4 (end 5, the second
// read port); writes no earlier than 5 + 4 + 4 * (2 - 1) = 13, at 13..16, completes 17.
// POOL average, 2 x 4 window over a 2 x 4 grid, 8 channels (issued 1), v = 17: reads
// r = 17 .. 24 (end 25); OH = OW = 1, c = 2: writes no earlier than
// max(25, 17 + max(8, 1 * 2 * 4 * 2)) + 2 = 35, completes 36.
TEST(CoreTiming, VectorAddThenAveragePool) {
  Config c = core_config();
  c.vector.lanes = 4;
  c.vector.pool_latency = 2;
  const RunResult r = run(R"(
add ub_a=0 ub_b=8 dst=40 rows=4 cols=8
pool ub=0 dst=100 in_h=2 in_w=4 kernel_h=2 kernel_w=4 stride=1 cols=8 average
halt
)",
                          c);
  EXPECT_EQ(at_pc(r, 0).done, 17u);
  EXPECT_EQ(at_pc(r, 1).start, 17u);
  EXPECT_EQ(at_pc(r, 1).done, 36u);
  EXPECT_EQ(unit(r, Unit::kVector).busy_cycles, 36u);
  EXPECT_EQ(r.total_cycles, 36u);
}

// The fp32 operation classes of the vector tests below (latency / cycles per group): alu 2 / 1,
// exp 8 / 2, reciprocal and rsqrt 6 / 2, reduce_max and reduce_sum 3 / 1; 4 lanes,
// activate_latency 4.
Config fp32_config() {
  Config c = core_config();
  c.vector.lanes = 4;
  c.vector.alu_latency = 2;
  c.vector.alu_cycles = 1;
  c.vector.exp_latency = 8;
  c.vector.exp_cycles = 2;
  c.vector.reciprocal_latency = 6;
  c.vector.reciprocal_cycles = 2;
  c.vector.reduce_max_latency = 3;
  c.vector.reduce_max_cycles = 1;
  c.vector.reduce_sum_latency = 3;
  c.vector.reduce_sum_cycles = 1;
  c.vector.rsqrt_latency = 6;
  c.vector.rsqrt_cycles = 2;
  return c;
}

// ACTIVATE gelu, 4 rows x 8 columns (issued 0, v = 0), c = 2: per group 1 + 11 alu + exp 2 +
// reciprocal 2 = 16 cycles, W = 4 * 2 * 16 = 128; L = 4 + 11 * 2 + 8 + 6 = 40; writes no
// earlier than 0 + 40 + 128 - 4 = 164, at 164..167, completes 168.
// VOP map sigmoid, 4 x 8 (issued 1), v = 168: reads 168..171 (end 172); per group 1 + 1 alu +
// exp 2 + reciprocal 2 = 6, W = 4 * 2 * 6 = 48; L = 4 + 2 + 8 + 6 = 20; writes no earlier than
// 172 + 20 + 48 - 4 = 236, at 236..239, completes 240.
TEST(CoreTiming, VectorGeluThenSigmoid) {
  const RunResult r = run(R"(
activate acc=0 rows=4 cols=8 ub=40 func=gelu
vop kind=map ub_a=40 dst=50 rows=4 cols=8 func=sigmoid
halt
)",
                          fp32_config());
  EXPECT_EQ(at_pc(r, 0).done, 168u);
  EXPECT_EQ(at_pc(r, 1).start, 168u);
  EXPECT_EQ(at_pc(r, 1).done, 240u);
  EXPECT_EQ(unit(r, Unit::kVector).busy_cycles, 240u);
  EXPECT_EQ(r.total_cycles, 240u);
}

// VOP mul 4 x 8 (issued 0, v = 0): a reads 0..3 (end 4), b reads 1..4 (end 5, as ADD's);
// per group 1 + 1 alu = 2, W = 4 * 2 * 2 = 16; L = 4 + 2 = 6; writes no earlier than
// 5 + 6 + 16 - 4 = 23, at 23..26, completes 27.
// VOP softmax 4 x 8 (issued 1), v = 27: reads 27..30 (end 31); per group 1 + max 1 + alu 2 +
// exp 2 + sum 1 = 7, per row 2 * 7 + reciprocal 2 = 16, W = 64; L = 4 + 3 + 2 * 2 + 8 + 3 + 6
// = 28; writes no earlier than 31 + 28 + 64 - 4 = 119, at 119..122, completes 123.
TEST(CoreTiming, VectorMulThenSoftmax) {
  const RunResult r = run(R"(
vop kind=mul ub_a=0 ub_b=8 dst=40 rows=4 cols=8
vop kind=softmax ub_a=40 dst=50 rows=4 cols=8
halt
)",
                          fp32_config());
  EXPECT_EQ(at_pc(r, 0).done, 27u);
  EXPECT_EQ(at_pc(r, 1).start, 27u);
  EXPECT_EQ(at_pc(r, 1).done, 123u);
  EXPECT_EQ(r.total_cycles, 123u);
}

// Causal softmax 4 x 8: one compare-and-select more per group: 8, per row 2 * 8 + 2 = 18,
// W = 72; L = 28 + 2 = 30. Reads 0..3 (end 4); writes no earlier than 4 + 30 + 72 - 4 = 102,
// at 102..105, completes 106.
TEST(CoreTiming, VectorCausalSoftmax) {
  const RunResult r = run(R"(
vop kind=softmax ub_a=0 dst=50 rows=4 cols=8 causal
halt
)",
                          fp32_config());
  EXPECT_EQ(at_pc(r, 0).done, 106u);
  EXPECT_EQ(r.total_cycles, 106u);
}

// Layer norm 4 x 8 (v = 0): a reads 0..3 (end 4); gamma and beta, requested once those are
// granted, on the second port at 1..2 (end 3); r_end = 4. Per group 1 + sum 2 + alu 5 = 8, per
// row 2 * 8 + alu 3 + rsqrt 2 = 21, W = 84; L = 4 + 2 * 3 + 5 * 2 + 3 * 2 + 6 = 32; writes no
// earlier than 4 + 32 + 84 - 4 = 116, at 116..119, completes 120.
TEST(CoreTiming, VectorLayerNorm) {
  const RunResult r = run(R"(
vop kind=layernorm ub_a=0 ub_b=8 dst=50 rows=4 cols=8
halt
)",
                          fp32_config());
  EXPECT_EQ(at_pc(r, 0).done, 120u);
  EXPECT_EQ(r.total_cycles, 120u);
}

// Row ops over rows longer than a UB row (E = 8 here): one burst of reads per chunk, each
// requested at the grant of the one before (2 read ports, so a chunk's reads overlap the
// previous chunk's), the element groups of every chunk, and one write burst per chunk on the
// single write port, all no earlier than r_end + L + W - chunks * M.

// Softmax, 4 rows of 12 in chunks of 8 and 4 (a rows 0..3 and 4..7, dst 50..53 and 54..57):
// reads 0..3 (port A), then 1..4 (port B): r_end = 5. Groups per row 2 + 1 = 3, per group 7
// (as above), per row reciprocal 2: 3 * 7 + 2 = 23, W = 92; L = 28. Writes no earlier than
// 5 + 28 + 92 - 8 = 117: 117..120, then 121..124; completes 125 (= r_end + L + W).
TEST(CoreTiming, VectorSoftmaxOverTwoChunks) {
  const RunResult r = run(R"(
vop kind=softmax ub_a=0 dst=50 rows=4 cols=12 chunk_cols=8 chunk_stride_a=4 chunk_stride_dst=4
halt
)",
                          fp32_config());
  EXPECT_EQ(at_pc(r, 0).done, 125u);
  EXPECT_EQ(r.total_cycles, 125u);
}

// Softmax, 4 rows of 20 in chunks of 8, 8, 4 (a rows 0..11): reads 0..3 (A), 1..4 (B), then
// the third chunk, arbitrated in cycle 2, finds both ports busy in 2..4 but port A free at 4:
// 4..7, r_end = 8. Groups 2 + 2 + 1 = 5: 5 * 7 + 2 = 37 per row, W = 148; L = 28. Writes no
// earlier than 8 + 28 + 148 - 12 = 172: 172..175, 176..179, 180..183; completes 184.
TEST(CoreTiming, VectorSoftmaxOverThreeChunks) {
  const RunResult r = run(R"(
vop kind=softmax ub_a=0 dst=50 rows=4 cols=20 chunk_cols=8 chunk_stride_a=4 chunk_stride_dst=4
halt
)",
                          fp32_config());
  EXPECT_EQ(at_pc(r, 0).done, 184u);
  EXPECT_EQ(r.total_cycles, 184u);
}

// Layer norm, 4 rows of 12 in chunks of 8 and 4: a reads 0..3 and 1..4; the 4 parameter rows
// (gamma 40, 41, beta 42, 43), arbitrated in cycle 2, wait for a free port until 4: 4..7,
// r_end = 8. Groups 3: per group 8, per row alu 3 + rsqrt 2: 3 * 8 + 5 = 29, W = 116; L = 32.
// Writes no earlier than 8 + 32 + 116 - 8 = 148: 148..151, 152..155; completes 156.
TEST(CoreTiming, VectorLayerNormOverTwoChunks) {
  const RunResult r = run(R"(
vop kind=layernorm ub_a=0 ub_b=40 dst=50 rows=4 cols=12 chunk_cols=8 chunk_stride_a=4 chunk_stride_dst=4
halt
)",
                          fp32_config());
  EXPECT_EQ(at_pc(r, 0).done, 156u);
  EXPECT_EQ(r.total_cycles, 156u);
}

// Layer norm, 4 rows of 20 in chunks of 8, 8, 4: a reads 0..3, 1..4, 4..7; the 6 parameter
// rows (40..45), arbitrated in cycle 3, find both ports busy in 3 and 4, one free in 5..7 and
// both from 8: 5..10, r_end = 11. Groups 5: 5 * 8 + 5 = 45 per row, W = 180; L = 32. Writes no
// earlier than 11 + 32 + 180 - 12 = 211: 211..214, 215..218, 219..222; completes 223.
TEST(CoreTiming, VectorLayerNormOverThreeChunks) {
  const RunResult r = run(R"(
vop kind=layernorm ub_a=0 ub_b=40 dst=50 rows=4 cols=20 chunk_cols=8 chunk_stride_a=4 chunk_stride_dst=4
halt
)",
                          fp32_config());
  EXPECT_EQ(at_pc(r, 0).done, 223u);
  EXPECT_EQ(r.total_cycles, 223u);
}

// NOP stalls issue until its semaphore: LW0 (issued 0, e = 0) completes when its UB reads
// end, at e + K_t = 0 + 8 = 8, and signals; the NOP (reached at 1) waits 8 - 1 = 7 cycles
// (sem:done) and takes the issue slot of cycle 8; LW1 issues at 9, e = 9 (the loader is free
// since 8), completes 9 + 8 = 17; HALT issues at 10; total max(17, 10 + 1) = 17. (With
// completion at e + K_t + N_t - 1 = 15: stall 14, LW1 issued 16, done 31, total 31.)
TEST(CoreTiming, NopStallsIssue) {
  const RunResult r = run(R"(
.sem 1 done
load.weights ub=0 rows=8 cols=8 signal=done
nop wait=done
load.weights ub=8 rows=8 cols=8
halt
)");
  EXPECT_EQ(stall(unit(r, Unit::kSequencer), "sem:done"), 7u);
  EXPECT_EQ(at_pc(r, 0).done, 8u);
  EXPECT_EQ(at_pc(r, 2).issued, 9u);
  EXPECT_EQ(at_pc(r, 2).start, 9u);
  EXPECT_EQ(at_pc(r, 2).done, 17u);
  EXPECT_EQ(r.total_cycles, 17u);
}

// Issue width 2: cycle 0 issues both loads (the loader takes the first), cycle 1 the matmul and
// HALT. LW0 e = 0, loader free at 8; LW1 e = 8, completes 8 + 8 = 16; MM (tile 1,
// M = 4, ready 1) s = 9 (one cycle behind its weights), L = 9 + 4 + 8 + 8 - 2 = 27, total 28.
TEST(CoreTiming, IssueWidthTwo) {
  Config c = core_config();
  c.sequencer.issue_width = 2;
  const RunResult r = run(R"(
load.weights ub=0 rows=8 cols=8
load.weights ub=8 rows=8 cols=8
matmul ub=16 rows=4 acc=0
halt
)",
                          c);
  EXPECT_EQ(at_pc(r, 1).issued, 0u);
  EXPECT_EQ(at_pc(r, 2).issued, 1u);
  EXPECT_EQ(at_pc(r, 1).start, 8u);
  EXPECT_EQ(at_pc(r, 1).done, 16u);
  EXPECT_EQ(at_pc(r, 2).start, 9u);
  EXPECT_EQ(r.total_cycles, 28u);
}

// HALT alone: issued at 0, nothing else runs: total = 0 + 1.
TEST(CoreTiming, HaltOnly) { EXPECT_EQ(run("halt\n").total_cycles, 1u); }

TEST(CoreTiming, DeadlockNamesBlockedUnits) {
  try {
    run(R"(
.sem 3 never
load.weights ub=0 rows=8 cols=8
matmul ub=8 rows=4 acc=0 wait=never
halt
)");
    FAIL() << "expected a deadlock";
  } catch (const SimError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("deadlock"), std::string::npos) << what;
    EXPECT_NE(what.find("matmul"), std::string::npos) << what;
    EXPECT_NE(what.find("sem:never"), std::string::npos) << what;
    EXPECT_NE(what.find("rows=4"), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos);
  }
}

// The NOP program of NopStallsIssue takes 17 cycles: a cap of 17 lets it finish, 16 stops it.
RunResult run_capped(std::uint64_t max_cycles) {
  SimOptions options;
  options.max_cycles = max_cycles;
  return simulate(core_config(),
                  parse_assembly(".array 8 8\n.sem 1 done\n"
                                 "load.weights ub=0 rows=8 cols=8 signal=done\nnop wait=done\n"
                                 "load.weights ub=8 rows=8 cols=8\nhalt\n"),
                  options);
}

TEST(CoreTiming, CycleCapStopsARunThatHasNotHalted) {
  try {
    run_capped(16);
    FAIL() << "expected the cycle cap";
  } catch (const SimError& e) {
    EXPECT_EQ(std::string(e.what()), "no HALT within the cap of 16 cycles");
  }
}

TEST(CoreTiming, CycleCapOfTheRunsLengthLetsItFinish) {
  EXPECT_EQ(run_capped(17).total_cycles, 17u);
}

// The default 4 MiB of accumulators hold 4 MiB / (8 columns * 4 bytes) = 131072 rows.
TEST(CoreTiming, OutOfRangeAddressNamesInstruction) {
  try {
    run("load.weights ub=0 rows=8 cols=8\nmatmul ub=8 rows=4 acc=131070\nhalt\n");
    FAIL() << "expected an address error";
  } catch (const SimError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("instruction 1 'matmul"), std::string::npos) << what;
    EXPECT_NE(what.find("131072"), std::string::npos) << what;
  }
}

// A one-MXU core has one unit of each kind: naming another instance is an error before the
// run.
TEST(CoreTiming, UnitInstanceBeyondTheCoreIsRejected) {
  try {
    run("load.weights ub=0 rows=8 cols=8 unit=1\nhalt\n");
    FAIL() << "expected a unit instance error";
  } catch (const SimError& e) {
    EXPECT_EQ(std::string(e.what()),
              "instruction 0 'load.weights ub=0 rows=8 cols=8 unit=1': unit instance 1, but the "
              "core has one weight_load unit (instance 0, core.mxus = 1)");
  }
}

// Two MXUs have two weight-load and matmul units, but still one DMA engine; a weight FIFO fill
// names an MXU the core has.
TEST(CoreTiming, UnitInstanceOfAnMxuTheCoreLacksIsRejected) {
  Config c = core_config();
  c.core.mxus = 2;
  const auto error = [&](const std::string& text) {
    try {
      run(text, c);
    } catch (const SimError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(error("matmul ub=0 rows=1 acc=0 unit=2\nhalt\n"),
            "instruction 0 'matmul ub=0 stride=1 rows=1 acc=0 unit=2': unit instance 2, but the "
            "core has 2 matmul units (instances 0..1, core.mxus = 2)");
  EXPECT_EQ(error("dma.load hbm=0 ub=0 elems=8 pack=8 unit=1\nhalt\n"),
            "instruction 0 'dma.load hbm=0x0 ub=0 elems=8 pack=8 segs=1 seg_stride=0 groups=1 "
            "group_stride=0 ub_stride=1 unit=1': unit instance 1, but the core has one dma unit "
            "(instance 0, core.dma_engines = 1)");
  EXPECT_EQ(error(".hbm 64\ndma.load hbm=0 ub=0 elems=64 pack=8 weights fifo=2\nhalt\n"),
            "instruction 0 'dma.load hbm=0x0 ub=0 elems=64 pack=8 segs=1 seg_stride=0 groups=1 "
            "group_stride=0 ub_stride=1 fifo=2 weights': weight FIFO 2, but the core has 2 (one "
            "per MXU, core.mxus)");
}

TEST(CoreTiming, ArrayShapeMismatch) {
  try {
    simulate(core_config(), parse_assembly(".array 16 16\nhalt\n"), SimOptions{});
    FAIL() << "expected a shape error";
  } catch (const SimError& e) {
    EXPECT_NE(std::string(e.what()).find("16x16"), std::string::npos) << std::string(e.what());
    EXPECT_NE(std::string(e.what()).find("8x8"), std::string::npos) << std::string(e.what());
  }
}

// A module whose method throws as soon as the simulation starts, as a unit would on a bad
// address.
class Thrower : public sc_core::sc_module {
 public:
  SC_HAS_PROCESS(Thrower);
  explicit Thrower(sc_core::sc_module_name name) : sc_module(name) { SC_METHOD(fire); }
  void fire() { throw std::out_of_range("hbm range [0x10, 0x20) outside HBM of 16 bytes"); }
};

// SystemC reports an exception escaping a process as E549 over several lines; the user sees
// the original one-line message.
TEST(CoreErrors, ExceptionFromAProcessKeepsItsOneLineMessage) {
  Thrower thrower("thrower");
  try {
    sc_core::sc_start();
    ADD_FAILURE() << "no exception";
  } catch (...) {
    try {
      throw;
    } catch (const sc_core::sc_report& raw) {  // what the user saw before
      EXPECT_NE(std::string(raw.what()).find("(E549) uncaught exception"), std::string::npos);
      EXPECT_NE(std::string(raw.what()).find('\n'), std::string::npos);
    }
    const SimError e = as_sim_error(std::current_exception());
    EXPECT_STREQ(e.what(), "hbm range [0x10, 0x20) outside HBM of 16 bytes");
  }
}

}  // namespace
}  // namespace tpu
