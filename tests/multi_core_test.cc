// Several cores per chip (chip.cores): hand-derived cycles of cores sharing the HBM through
// the interconnect and synchronising with signal.core, per-core statistics, and the limits.
// SystemC elaborates once per process: one simulate() per test.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include <systemc>

#include "sim/config/config.h"
#include "sim/isa/program.h"
#include "sim/isa/semantics.h"
#include "sim/tpu_core.h"
#include "tests/assembly_run.h"
#include "tools/report/check.h"
#include "tools/compiler/frontend.h"
#include "tools/compiler/graph.h"
#include "tools/compiler/lowering.h"

namespace tpu {
namespace {

// Two 8 x 8 cores (as in core_timing_test: 64 banks, two read ports, 8 lanes) at 1 GHz, so a
// cycle is 1 ns, with ideal memory behind an interconnect of L = 4 cycles each way and
// 8 GB/s = 8 bytes a cycle: a 64-byte request holds the shared port for 8 cycles.
Config two_cores() {
  Config c = timing_core("test8x8x2cores");
  c.clock_mhz = 1000;
  c.chip.cores = 2;
  c.chip.interconnect_gbs = 8;
  c.chip.interconnect_latency_cycles = 4;
  c.mxu.weight_fifo_tiles = 2;
  return c;
}

// two_cores() with the interconnect's bandwidth unlimited (a request's bytes cross in under a
// picosecond), compiling with compiler.parallelism = `parallelism`.
Config two_cores_compiling(const std::string& parallelism) {
  Config c = two_cores();
  c.chip.interconnect_gbs = 1e6;
  c.compiler.parallelism = parallelism;
  return c;
}

// `p` has one stream per core of `streams`, each with these opcodes in order.
void expect_streams(const Program& p, const std::vector<std::vector<Opcode>>& streams) {
  ASSERT_EQ(p.core_begin.size(), streams.size());
  std::size_t size = 0;
  for (const std::vector<Opcode>& stream : streams) size += stream.size();
  ASSERT_EQ(p.instructions.size(), size);
  std::size_t pc = 0;
  for (std::size_t core = 0; core < streams.size(); ++core) {
    ASSERT_EQ(p.core_begin[core], pc);
    for (Opcode op : streams[core]) {
      EXPECT_EQ(p.instructions[pc].op, op) << pc;
      ++pc;
    }
  }
}

// The run's outputs in HBM match the reference bit for bit, `compared` values in all.
void expect_outputs_exact(const Program& p, const RunResult& r, std::uint64_t compared) {
  const CheckResult check = check_outputs(p, r.hbm_final);
  EXPECT_TRUE(check.passed) << (check.first_mismatches.empty() ? "" : check.first_mismatches[0]);
  EXPECT_EQ(check.compared, compared);
}

// Y = X W with X: 16 x 8 split by rows (the batch) over two cores: core c multiplies its 8
// rows X_c (HBM 64 c) by the same W (HBM 128), each core reading W from the shared HBM.
const char* const kBatchSplit = R"(
.hbm 192
.sem 0 x
.layer 0 fc matmul 1024
.core 0
layer id=0
dma.load hbm=128 ub=0 elems=64 pack=8 weights
dma.load hbm=0 ub=0 elems=64 pack=8 signal=x
load.weights ub=0 rows=8 cols=8 fifo
matmul ub=0 rows=8 acc=0 wait=x
halt
.core 1
layer id=0
dma.load hbm=128 ub=0 elems=64 pack=8 weights
dma.load hbm=64 ub=0 elems=64 pack=8 signal=x
load.weights ub=0 rows=8 cols=8 fifo
matmul ub=0 rows=8 acc=0 wait=x
halt
)";

// Each core issues one a cycle from 0: layer 0, W fill 1, X load 2, load.weights 3, matmul 4,
// halt 5 (core 1's pcs are core 0's + 6). Every transfer is one 64-byte request.
// W fills: both cores send at cycle 1; same instant, so core 0 crosses first: s = 1 + L = 5,
// port busy to 5 + 64 / 8 = 13; core 1's s = 13, port to 21. Ideal memory answers at once,
// the response crosses back in L: core 0 at 9, core 1 at 17. A fill writes its FIFO a row a
// cycle from the response: core 0 rows 9..16, done 17; core 1 17..24, done 25.
// X loads start when the fills are done (one transfer at a time): core 0 sends at 17,
// s = max(17 + 4, 21) = 21, port to 29, response 25, UB rows 25..32, done 33; core 1 sends at
// 25, s = max(29, 29) = 29, response 33, rows 33..40, done 41.
// load.weights (ready 3) starts when its fill is done: e = 17 (core 0), 25 (core 1).
// matmul M = 8 waits for x (its X load's completion): s = 33 (core 0), 41 (core 1), and
// completes s + M + N_t + R - 1 = s + 23: 56 and 64 = total.
TEST(MultiCore, TwoCoresSplitTheBatchAndShareTheInterconnect) {
  const RunResult r = run_assembly(kBatchSplit, two_cores());
  EXPECT_EQ(at_pc(r, 1).done, 17u);
  EXPECT_EQ(at_pc(r, 7).done, 25u);
  EXPECT_EQ(at_pc(r, 2).start, 17u);
  EXPECT_EQ(at_pc(r, 2).done, 33u);
  EXPECT_EQ(at_pc(r, 8).done, 41u);
  EXPECT_EQ(at_pc(r, 3).start, 17u);
  EXPECT_EQ(at_pc(r, 9).start, 25u);
  EXPECT_EQ(at_pc(r, 4).start, 33u);
  EXPECT_EQ(at_pc(r, 4).done, 56u);
  EXPECT_EQ(at_pc(r, 10).start, 41u);
  EXPECT_EQ(at_pc(r, 10).done, 64u);
  EXPECT_EQ(r.total_cycles, 64u);
  ASSERT_EQ(r.cores.size(), 2u);
  EXPECT_EQ(r.cores[0].total_cycles, 56u);
  EXPECT_EQ(r.cores[1].total_cycles, 64u);
  for (const CoreStats& core : r.cores) {
    EXPECT_EQ(core.interconnect_read_bytes, 128u);  // W and its X
    EXPECT_EQ(core.interconnect_write_bytes, 0u);
    EXPECT_EQ(core.sync_wait_cycles, 0u);  // no semaphore another core signals
    EXPECT_EQ(core.array_macs(), 8u * 8 * 8);
  }
  // The layer's counters and span add over the cores: busy 8 stream cycles each.
  ASSERT_EQ(r.layers.size(), 1u);
  EXPECT_EQ(r.layers[0].array_macs, 1024u);
  EXPECT_EQ(r.layers[0].units[std::size_t(Unit::kMatmul)].busy_cycles, 16u);
  EXPECT_EQ(r.layers[0].last_cycle, 63u);
  EXPECT_EQ(r.hbm.read_bytes, 256u);
}

// signal.core reaches the other core L cycles after it issues: core 0 issues it at 0, so core
// 1's nop (issued at 0) waits until 0 + L = 4 (sync wait 4 cycles, charged to sem:ready), and
// core 1's halt issues at 5: total 6.
TEST(MultiCore, SignalCoreCostsTheInterconnectLatency) {
  const RunResult r = run_assembly(R"(
.sem 0 ready
.core 0
signal.core core=1 signal=ready
halt
.core 1
nop wait=ready
halt
)",
                                   two_cores());
  EXPECT_EQ(r.total_cycles, 6u);
  ASSERT_EQ(r.cores.size(), 2u);
  EXPECT_EQ(r.cores[0].total_cycles, 2u);
  EXPECT_EQ(r.cores[1].total_cycles, 6u);
  EXPECT_EQ(r.cores[0].sync_wait_cycles, 0u);
  EXPECT_EQ(r.cores[1].sync_wait_cycles, 4u);
  EXPECT_EQ(stall(r.units[std::size_t(Unit::kSequencer)], "sem:ready"), 4u);
}

Program parse(const std::string& text) { return parse_assembly(".array 8 8\n" + text); }

// Y = X W with X: 8 x 16, W: 16 x 8 (bf16) split by K over two cores, the partial sums
// reduced through the HBM: core 1 multiplies X[:, 8:16] by W[8:16, :], stores its partial sum
// P1 and signals core 0, which multiplies X[:, 0:8] by W[0:8, :], loads P1 and adds.
const char* const kKSplit = R"(
.dtype bf16
.hbm 768
.sem 0 x
.sem 1 mm
.sem 2 act
.sem 3 st
.sem 4 p1
.sem 5 p
.sem 6 a
.layer 0 fc matmul 1024
.core 0
layer id=0
dma.load hbm=256 ub=0 elems=64 pack=8 weights
dma.load hbm=0 ub=0 elems=8 pack=8 groups=8 group_stride=32 signal=x
load.weights ub=0 rows=8 cols=8 fifo
matmul ub=0 rows=8 acc=0 wait=x signal=mm
activate acc=0 rows=8 cols=8 ub=8 wait=mm signal=act
dma.load hbm=512 ub=16 elems=64 pack=8 wait=p1 signal=p
add ub_a=8 ub_b=16 dst=24 rows=8 cols=8 wait=act,p signal=a
dma.store hbm=640 ub=24 elems=64 pack=8 wait=a
halt
.core 1
layer id=0
dma.load hbm=384 ub=0 elems=64 pack=8 weights
dma.load hbm=16 ub=0 elems=8 pack=8 groups=8 group_stride=32 signal=x
load.weights ub=0 rows=8 cols=8 fifo
matmul ub=0 rows=8 acc=0 wait=x signal=mm
activate acc=0 rows=8 cols=8 ub=8 wait=mm signal=act
dma.store hbm=512 ub=8 elems=64 pack=8 wait=act signal=st
signal.core core=0 wait=st signal=p1
halt
)";

// Issue one a cycle: core 0 pcs 0..9 (layer, W0 fill 1, X0 load 2, load.weights 3, matmul 4,
// activate 5, P1 load 6, add 7, store 8, halt 9), core 1 pcs 10..18 (the same to activate at
// 15, store 16, signal.core 17, halt 18). The interconnect is L = 4 cycles each way with
// unlimited bandwidth; every transfer is one request (X's 8 segments of 16 bytes share one
// 256-byte burst), answered at once by the ideal memory: response = send + 2L.
// Both cores alike up to the activate: fills sent at 1, response 9, FIFO rows 9..16, done 17;
// X loads sent at 17, response 25, UB rows 25..32, done 33; load.weights e = 17; matmul waits
// for x: s = 33, done s + M + N_t + R - 1 = 33 + 23 = 56; activate v = 56, M = 8 rows of
// c = 1 group, W = 8, latency 4: done v + 4 + 8 = 68.
// Core 1: its store (waits act) reads UB rows 8..15 in 68..75, sends its write at 76, response
// 84, done 85 = st; signal.core (issue waits for st) at 85 reaches core 0 at 85 + L = 89;
// halt issues at 86: core 1 takes 87 cycles.
// Core 0: the P1 load waits for p1: sent at 89, response 97, UB rows 16..23 in 97..104, done
// 105 = p. The add waits for act and p: v = 105, reads a (rows 8..15) 105..112 on one read
// port and b (rows 16..23) 106..113 on the other, r_end = 114; writes from r_end + 4 + 8 - 8 =
// 118, 118..125, done 126. The store of Y reads 126..133, sends at 134, response 142, done 143
// = total. (On one core the same K = 16 would be two K tiles into one accumulator, no store,
// load or add between them.)
TEST(MultiCore, KSplitReducedAcrossCoresThroughTheHbm) {
  Config c = two_cores();
  c.chip.interconnect_gbs = 1e6;  // a request's bytes cross in under a picosecond
  Program p = parse(kKSplit);
  // Small integers, exact in bf16 and in every partial sum: Y must be X W exactly.
  std::mt19937 rng(5);
  std::vector<float> x(8 * 16), w(16 * 8);
  for (float& v : x) v = float(int(rng() % 5) - 2);
  for (float& v : w) v = float(int(rng() % 5) - 2);
  HbmSegment xs{"x", 0, {}}, ws{"w", 256, {}};
  for (float v : x) {
    const std::uint16_t b = fp32_to_bf16(v);
    xs.bytes.push_back(std::uint8_t(b));
    xs.bytes.push_back(std::uint8_t(b >> 8));
  }
  for (float v : w) {
    const std::uint16_t b = fp32_to_bf16(v);
    ws.bytes.push_back(std::uint8_t(b));
    ws.bytes.push_back(std::uint8_t(b >> 8));
  }
  p.hbm_image = {xs, ws};
  const RunResult r = run_traced(p, c);
  EXPECT_EQ(at_pc(r, 4).start, 33u);
  EXPECT_EQ(at_pc(r, 4).done, 56u);
  EXPECT_EQ(at_pc(r, 5).done, 68u);
  EXPECT_EQ(at_pc(r, 16).start, 68u);
  EXPECT_EQ(at_pc(r, 16).done, 85u);
  EXPECT_EQ(at_pc(r, 6).start, 89u);
  EXPECT_EQ(at_pc(r, 6).done, 105u);
  EXPECT_EQ(at_pc(r, 7).start, 105u);
  EXPECT_EQ(at_pc(r, 7).done, 126u);
  EXPECT_EQ(at_pc(r, 8).start, 126u);
  EXPECT_EQ(at_pc(r, 8).done, 143u);
  EXPECT_EQ(r.total_cycles, 143u);
  ASSERT_EQ(r.cores.size(), 2u);
  EXPECT_EQ(r.cores[1].total_cycles, 87u);
  // Core 0's DMA waited for p1 from 33 (its X load done) to 89; core 1's issue for nothing
  // remote.
  EXPECT_EQ(r.cores[0].sync_wait_cycles, 89u - 33u);
  EXPECT_EQ(r.cores[1].sync_wait_cycles, 0u);
  EXPECT_EQ(r.cores[1].interconnect_write_bytes, 128u);
  EXPECT_EQ(r.cores[0].interconnect_read_bytes, 128u + 240u + 128u);  // W0, X0's hull, P1
  for (std::uint32_t m = 0; m < 8; ++m) {
    for (std::uint32_t n = 0; n < 8; ++n) {
      float y = 0;
      for (std::uint32_t k = 0; k < 16; ++k) y += x[m * 16 + k] * w[k * 8 + n];
      const std::size_t at = 640 + 2 * (m * 8 + n);
      const std::uint16_t got = std::uint16_t(r.hbm_final[at] | r.hbm_final[at + 1] << 8);
      EXPECT_EQ(bf16_to_fp32(got), y) << m << "," << n;
    }
  }
}

TEST(MultiCore, ProgramsAndConfigsItCannotRun) {
  // More streams than cores.
  Config one = two_cores();
  one.chip.cores = 1;
  EXPECT_THROW(
      {
        try {
          simulate(one, parse(kBatchSplit), SimOptions{});
        } catch (const SimError& e) {
          EXPECT_STREQ(e.what(),
                       "program has 2 core streams, the config 'test8x8x2cores' has "
                       "chip.cores = 1");
          throw;
        }
      },
      SimError);
  // A signal to a core without a stream.
  try {
    simulate(two_cores(), parse("signal.core core=1 signal=s1\nhalt\n"), SimOptions{});
    ADD_FAILURE() << "no error";
  } catch (const SimError& e) {
    EXPECT_STREQ(e.what(),
                 "instruction 0 'signal.core core=1 signal=s1': core 1 has no instruction "
                 "stream (the program has 1)");
  }
  // A stream without HALT names its core.
  try {
    simulate(two_cores(), parse(".core 0\nhalt\n.core 1\nnop\n"), SimOptions{});
    ADD_FAILURE() << "no error";
  } catch (const SimError& e) {
    EXPECT_STREQ(e.what(), "program of core 1 has no HALT");
  }
  // Zero cores or an interconnect without bandwidth: one-line config errors.
  try {
    default_config({"chip.cores=0"});
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "--set: chip.cores = 0 is out of range (allowed 1..16)");
  }
  try {
    default_config({"chip.interconnect_gbs=0"});
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(),
                 "--set: chip.interconnect_gbs = 0 is out of range (allowed 0.001..1000000)");
  }
}

// Assembly: .core starts each core's stream, in order; the canonical text round-trips.
TEST(MultiCore, CoreStreamsInAssembly) {
  const Program p = parse(kBatchSplit);
  ASSERT_EQ(p.core_begin.size(), 2u);
  EXPECT_EQ(p.core_begin[1], 6u);
  EXPECT_EQ(core_stream(p, 1), std::make_pair(std::size_t(6), std::size_t(12)));
  const Program back = parse_assembly(to_assembly(p));
  EXPECT_EQ(back.core_begin, p.core_begin);
  EXPECT_EQ(to_assembly(back), to_assembly(p));
  EXPECT_EQ(deserialize(serialize(p)).core_begin, p.core_begin);
  try {
    parse(".core 1\nhalt\n");
    ADD_FAILURE() << "no error";
  } catch (const IsaError& e) {
    EXPECT_STREQ(e.what(),
                 "line 2: .core 1: expected core 0 (each core's stream follows the previous "
                 "core's)");
  }
  // interpret() runs the streams in turn: core 0 waits for core 1's signal, so core 1 runs
  // first; two cores waiting for each other are a deadlock.
  const Program sync = parse(R"(
.hbm 64
.sem 0 ready
.core 0
nop wait=ready
dma.store hbm=0 ub=0 elems=8 pack=8
halt
.core 1
signal.core core=0 signal=ready
halt
)");
  EXPECT_NO_THROW(interpret(two_cores(), sync));
  const Program deadlock = parse(R"(
.sem 0 a
.sem 1 b
.core 0
nop wait=a
signal.core core=1 signal=b
halt
.core 1
nop wait=b
signal.core core=0 signal=a
halt
)");
  EXPECT_THROW(interpret(two_cores(), deadlock), std::runtime_error);
}

// compiler.parallelism: data splits the samples of a batch-256 dense layer 128 + 128 over two
// cores, each in its own 4 KiB-aligned HBM region; auto takes it when the estimate says so
// (here the streaming halves, 16 x 16 tiles x 128 rows per core against 256 on one);
// single, or a batch smaller than the cores, keeps one stream.
TEST(MultiCore, CompilerSplitsTheBatchOverTheCores) {
  Config c;
  c.chip.cores = 2;
  const auto dense = [](std::uint32_t m) {
    return parse_model_json(R"({"name": "fc", "layers": [{"name": "fc", "type": "matmul", "m": )" +
                                std::to_string(m) + R"(, "k": 2048, "n": 2048}]})",
                            "fc");
  };
  CompileOptions timing;
  timing.timing_only = true;
  const Program one = compile_core(dense(128), c, timing);
  {
    c.compiler.parallelism = "data";
    const Program p = compile(dense(256), c, timing);
    ASSERT_EQ(p.core_begin.size(), 2u);
    // Each stream is the one-core program of 128 rows, the second one's HBM moved up.
    EXPECT_EQ(p.instructions.size(), 2 * one.instructions.size());
    EXPECT_EQ(p.core_begin[1], one.instructions.size());
    const std::uint64_t region = (one.hbm_bytes + 4095) / 4096 * 4096;
    EXPECT_EQ(p.hbm_bytes, 2 * region);
    for (std::size_t pc = 0; pc < one.instructions.size(); ++pc) {
      Instruction moved = one.instructions[pc];
      if (moved.op == Opcode::kDmaLoad || moved.op == Opcode::kDmaStore) {
        moved.dma.hbm_addr += region;
      }
      if (moved.op == Opcode::kLayer) moved.layer = std::uint16_t(moved.layer + 1);
      EXPECT_EQ(p.instructions[p.core_begin[1] + pc], moved) << pc;
    }
    ASSERT_EQ(p.layers.size(), 2u);
    EXPECT_EQ(p.layers[0].name, "fc@c0");
    EXPECT_EQ(p.layers[1].name, "fc@c1");
  }
  c.compiler.parallelism = "single";
  EXPECT_TRUE(compile(dense(256), c, timing).core_begin.empty());
  // auto takes model_n for 256 rows too: the one DMA engine per core fetches the 256 weight
  // tiles one transfer at a time, each paying the HBM latency (~113 + 128 cycles), which the
  // data split leaves whole on each core and model_n halves (simulated: single 76304, data
  // 75715, model_n 45520 cycles). The model_n program keeps the one-core memory plan.
  c.compiler.parallelism = "auto";
  const Program two_hundred = compile(dense(256), c, timing);
  ASSERT_EQ(two_hundred.core_begin.size(), 2u);
  EXPECT_EQ(two_hundred.hbm_bytes, compile_core(dense(256), c, timing).hbm_bytes);
  // One sample cannot split: auto takes model_n (each core reads half the weights of this
  // weight-bound layer, 2048 x 2048 bytes against 16 x 8 tiles of 128 rows each).
  c.compiler.parallelism = "auto";
  const Program one_sample = compile(dense(1), c, timing);
  ASSERT_EQ(one_sample.core_begin.size(), 2u);
  EXPECT_EQ(one_sample.hbm_bytes, compile_core(dense(1), c, timing).hbm_bytes);
  c.compiler.parallelism = "data";
  try {
    compile(dense(1), c, timing);
    ADD_FAILURE() << "no error";
  } catch (const CompileError& e) {
    EXPECT_STREQ(e.what(),
                 "fc: compiler.parallelism = data needs at least 2 samples in every graph input "
                 "(chip.cores), the fewest is 1");
  }
}

// auto and model_n: a dense layer of 2048 x 2048 weights then a softmax. At batch 1 the batch
// cannot split and model_n's estimate (each core half the N tiles, 16 x 8 x 128 cycles, against
// 16 x 16 x 128) wins: two streams, Y in HBM. At batch 2 data costs what single does (each core
// still streams 128 rows a tile, and reads every weight), and model_n is not considered: its
// estimate leaves out the softmax's activations in HBM, so one stream.
TEST(MultiCore, AutoTakesModelNOnlyWhereItsEstimateHolds) {
  Config c;
  c.chip.cores = 2;
  const auto model = [](std::uint32_t batch) {
    return parse_model_json(R"({"name": "sm", "batch": )" + std::to_string(batch) +
                                R"(, "input": [1, 1, 2048], "layers": [
        {"name": "fc", "type": "dense", "units": 2048}, {"name": "sm", "type": "softmax"}]})",
                            "sm");
  };
  CompileOptions timing;
  timing.timing_only = true;
  const Program split = compile(model(1), c, timing);
  ASSERT_EQ(split.core_begin.size(), 2u);
  ASSERT_EQ(split.layers.size(), 4u);
  EXPECT_EQ(split.layers[0].name, "fc@c0");
  EXPECT_EQ(split.layers[0].macs + split.layers[2].macs, 2048u * 2048);
  EXPECT_EQ(split.layers[3].macs, 0u);  // the softmax (split by pixels) has no MACs
  EXPECT_GT(split.layers[0].output.elements(), 0u);  // Y goes through HBM, checked on core 0
  EXPECT_TRUE(compile(model(2), c, timing).core_begin.empty());
  c.compiler.parallelism = "model_n";
  EXPECT_EQ(compile(model(2), c, timing).core_begin.size(), 2u);
}

// auto and model_k: a decode GEMV, 1 x 8192 x 128, on two 128 x 128 cores. Its one N tile
// cannot split by N (model_n leaves core 1 idle: estimate = single's) and one sample cannot
// split, but its 64 K tiles can: each core fetches and multiplies 32 of them (the weight fetches,
// one latency-bound transfer a tile, dominate), then one barrier and a reduction of one raw row
// per core. At 256 rows the batch splits instead (data: each core streams half the rows, no
// partials to move). Simulated (tpusim run, default config with chip.cores = 2, timing-only):
// batch 1 single 12860 cycles, model_k 7872; batch 256 single 34236, model_k 32907, data 24880.
TEST(MultiCore, AutoTakesModelKForALongKGemv) {
  Config c;
  c.chip.cores = 2;
  const auto model = [](std::uint32_t batch) {
    return parse_model_json(R"({"name": "gemv", "batch": )" + std::to_string(batch) +
                                R"(, "input": [1, 1, 8192], "layers": [
        {"name": "proj", "type": "dense", "units": 128}]})",
                            "gemv");
  };
  CompileOptions timing;
  timing.timing_only = true;
  const auto reductions = [](const Program& p) {
    std::size_t n = 0;
    for (const Instruction& inst : p.instructions) n += inst.op == Opcode::kAccLoad;
    return n;
  };
  const Program split = compile(model(1), c, timing);
  ASSERT_EQ(split.core_begin.size(), 2u);
  EXPECT_EQ(reductions(split), 2u);  // core 0 adds both cores' partials of the one N tile
  EXPECT_EQ(split.layers[0].macs + split.layers[1].macs, 8192u * 128);
  EXPECT_EQ(split.layers[0].macs, 4096u * 128);
  EXPECT_EQ(reductions(compile(model(256), c, timing)), 0u);
}

// compiler.parallelism = model_n on two 8 x 8 cores (two_cores_compiling(), the interconnect's
// bandwidth unlimited): Y1 = X W1 (8 x 8 x 16), Y2 = Y1 W2 (dense, 8 x 16 x 16), each node's two
// N tiles one per core, each core reading only its columns' weight tiles and the whole input.
TEST(MultiCore, ModelParallelSplitsNAndMeetsAtABarrier) {
  const Config c = two_cores_compiling("model_n");
  const Program p = compile(parse_model_json(R"({"name": "fc2", "layers": [
      {"name": "fc1", "type": "matmul", "m": 8, "k": 8, "n": 16},
      {"name": "fc2", "type": "dense", "units": 16}]})",
                                             "fc2"),
                            c);
  // Core 0's stream; core 1's is the same with its own tiles and output columns.
  const std::vector<Opcode> stream = {
      Opcode::kLayer,      Opcode::kDmaLoad,  Opcode::kDmaLoad,     Opcode::kDmaLoad,
      Opcode::kLoadWeights, Opcode::kMatmul,  Opcode::kActivate,    Opcode::kDmaStore,
      Opcode::kSignalCore, Opcode::kNop,      Opcode::kLayer,       Opcode::kDmaLoad,
      Opcode::kDmaLoad,    Opcode::kLoadWeights, Opcode::kMatmul,   Opcode::kLoadWeights,
      Opcode::kMatmul,     Opcode::kActivate, Opcode::kDmaStore,    Opcode::kHalt};
  ASSERT_NO_FATAL_FAILURE(expect_streams(p, {stream, stream}));
  // Weights are stored N tile by N tile, K tile by K tile (64 bytes each): W1 then W2, each
  // core filling its FIFO from its own tiles only (core 1 from one N tile further on).
  const std::size_t c1 = stream.size();
  const std::uint64_t w1 = p.instructions[1].dma.hbm_addr, w2 = p.instructions[2].dma.hbm_addr;
  EXPECT_EQ(p.instructions[c1 + 1].dma.hbm_addr, w1 + 64);
  EXPECT_EQ(p.instructions[c1 + 2].dma.hbm_addr, w2 + 128);
  EXPECT_EQ(p.instructions[11].dma.hbm_addr, w2 + 64);
  EXPECT_EQ(p.instructions[c1 + 11].dma.hbm_addr, w2 + 192);
  // Both read all of Y1 (8 rows of 16 bytes), written 8 columns each.
  EXPECT_EQ(p.instructions[12].dma.hbm_addr, p.instructions[c1 + 12].dma.hbm_addr);
  EXPECT_EQ(p.instructions[c1 + 7].dma.hbm_addr, p.instructions[7].dma.hbm_addr + 8);
  EXPECT_EQ(p.instructions[8].core, 1u);
  EXPECT_EQ(p.instructions[c1 + 8].core, 0u);

  const RunResult r = run_traced(p, c);
  // The cores run alike (same-instant requests cross in core order, in under a picosecond).
  // Issue one a cycle from 0; ideal memory behind L = 4 each way: response = send + 8.
  // Node fc1: W1 fill (pc 1) sent at 1, response 9, FIFO rows 9..16, done 17; the prefetched
  // W2 tile (pc 2) 17 -> 25, rows 25..32, done 33; X (64 bytes, pc 3) 33 -> 41, UB rows 41..48,
  // done 49 (x_ready, first_input). load.weights (pc 4) waits first_input: e = 49. matmul
  // (pc 5): s = max(x_ready 49, e + 1) = 50, done s + M + N_t + R - 1 = 50 + 23 = 73.
  // activate (pc 6): v = 73, + latency 4 + W = 8 rows x 1 group: 85. Store (pc 7, 8 rows of
  // 8 bytes 16 apart: 8 writes): UB reads 85..92, write i sent at 86 + i, last response 101,
  // done 102 = node_stored.
  EXPECT_EQ(at_pc(r, 3).done, 49u);
  EXPECT_EQ(at_pc(r, 5).start, 50u);
  EXPECT_EQ(at_pc(r, 5).done, 73u);
  EXPECT_EQ(at_pc(r, 7).done, 102u);
  // Barrier: signal.core (pc 8) issues at 102 and reaches the other core at 106; the nop
  // (pc 9, issued 103) waits for the other core's, 106: 3 cycles of sync wait per core.
  EXPECT_EQ(at_pc(r, 11).issued, 108u);
  EXPECT_EQ(at_pc(r, 11).start, 108u);
  // Node fc2 issues from 107 (layer), its second W2 tile (pc 11) at 108: sent 108 (its FIFO
  // entry, read by pc 4, long free), response 116, rows 116..123, done 124. Y1 (pc 12, 128
  // bytes: one request) 124 -> 132, 16 UB rows 132..147, done 148. load.weights (pc 13)
  // e = 148; matmul (pc 14) s = 149, stream 149..156, done 149 + 23 = 172; load.weights
  // (pc 15, the loader free at 148 + K_t = 156) e = 156; matmul (pc 16) s = max(e + 1, the
  // stream's end 157) = 157, done 180; activate 180 + 12 = 192; store reads 192..199, writes
  // 193..200, last response 208, done 209 = total.
  EXPECT_EQ(at_pc(r, 12).done, 148u);
  EXPECT_EQ(at_pc(r, 14).start, 149u);
  EXPECT_EQ(at_pc(r, 16).start, 157u);
  EXPECT_EQ(at_pc(r, 16).done, 180u);
  EXPECT_EQ(at_pc(r, 18).done, 209u);
  EXPECT_EQ(at_pc(r, c1 + 18).done, 209u);
  EXPECT_EQ(r.total_cycles, 209u);
  ASSERT_EQ(r.cores.size(), 2u);
  for (const CoreStats& core : r.cores) {
    EXPECT_EQ(core.sync_wait_cycles, 3u);
    // Its weight tiles (64 + 128 bytes), X (64) and all of Y1 (128); its 8 columns of Y1, Y2.
    EXPECT_EQ(core.interconnect_read_bytes, 384u);
    EXPECT_EQ(core.interconnect_write_bytes, 128u);
    EXPECT_EQ(core.array_macs(), 8u * 8 * 8 + 8u * 16 * 8);
  }
  // Bit-exact against the reference, both layers (Y1 too: it went through HBM).
  expect_outputs_exact(p, r, 8u * 16 * 2);
}

// model_n splits element-wise nodes by pixels: S = A + B, then Y = S * B (vop mul), over 1 x 4
// pixels of 8 int8 channels on two_cores() (interconnect bandwidth unlimited): core c loads,
// computes and stores pixels [2c, 2c + 2) of each node (16 contiguous bytes of each tensor), and
// the cores meet at the barrier between the nodes.
TEST(MultiCore, ModelParallelSplitsElementWisePixels) {
  const Config c = two_cores_compiling("model_n");
  const Program p = compile(parse_model_json(R"({"name": "addmul",
      "inputs": [{"name": "a", "shape": [1, 4, 8]}, {"name": "b", "shape": [1, 4, 8]}],
      "nodes": [{"name": "s", "op": "add", "inputs": ["a", "b"]},
                {"name": "y", "op": "mul", "inputs": ["s", "b"]}],
      "outputs": ["y"]})",
                                             "addmul"),
                            c);
  const std::vector<Opcode> stream = {
      Opcode::kLayer,    Opcode::kDmaLoad, Opcode::kDmaLoad,    Opcode::kAdd, Opcode::kDmaStore,
      Opcode::kSignalCore, Opcode::kNop,   Opcode::kLayer,      Opcode::kDmaLoad,
      Opcode::kDmaLoad,  Opcode::kVop,     Opcode::kDmaStore,   Opcode::kHalt};
  ASSERT_NO_FATAL_FAILURE(expect_streams(p, {stream, stream}));
  // Core 1's transfers are core 0's 16 bytes (two pixels) further on, B's too.
  const std::size_t c1 = stream.size();
  for (std::size_t pc : {1, 2, 4, 8, 9, 11}) {
    EXPECT_EQ(p.instructions[c1 + pc].dma.hbm_addr, p.instructions[pc].dma.hbm_addr + 16) << pc;
    EXPECT_EQ(p.instructions[pc].dma.elems, 16u) << pc;
  }
  EXPECT_EQ(p.instructions[3].rows, 2u);
  EXPECT_EQ(p.instructions[10].rows, 2u);

  const RunResult r = run_traced(p, c);
  // The cores run alike. Issue one a cycle from 0; ideal memory behind L = 4 each way: a
  // request's response comes at send + 8. Node s: A's 16 bytes (pc 1) sent at 1, response 9,
  // UB rows 9..10, done 11; B's (pc 2) 11 -> 19, rows 19..20, done 21 (pool_ready). The add
  // (pc 3, M = 2 rows, c = 1 group, so W = 2, L = activate_latency 4): v = 21, reads a 21..22
  // and b 22..23, r_end = 24, writes from r_end + L + W - M = 28, 28..29, done 30. The store
  // (pc 4) reads rows 30..31, sends its write at 32, response 40, done 41 = node_stored.
  EXPECT_EQ(at_pc(r, 1).done, 11u);
  EXPECT_EQ(at_pc(r, 2).done, 21u);
  EXPECT_EQ(at_pc(r, 3).done, 30u);
  EXPECT_EQ(at_pc(r, 4).done, 41u);
  // Barrier: signal.core (pc 5) issues at 41 and reaches the other core at 45; the nop (pc 6,
  // issued 42) waits until 45: 3 cycles of sync wait per core. Node y: layer 46, S's share
  // (pc 8) sent at 47, done 57; B's (pc 9) 57 -> 67. vop mul (pc 10): W = M c (1 + alu 1) = 4,
  // L = 4 + alu_latency 2 = 6; v = 67, reads s 67..68 and b 68..69, r_end = 70, writes from
  // 70 + 6 + 4 - 2 = 78, 78..79, done 80. Store (pc 11): reads 80..81, sends at 82, response
  // 90, done 91 = total.
  EXPECT_EQ(at_pc(r, 8).issued, 47u);
  EXPECT_EQ(at_pc(r, 8).done, 57u);
  EXPECT_EQ(at_pc(r, 9).done, 67u);
  EXPECT_EQ(at_pc(r, 10).done, 80u);
  EXPECT_EQ(at_pc(r, 11).done, 91u);
  EXPECT_EQ(at_pc(r, c1 + 11).done, 91u);
  EXPECT_EQ(r.total_cycles, 91u);
  ASSERT_EQ(r.cores.size(), 2u);
  for (const CoreStats& core : r.cores) {
    EXPECT_EQ(core.sync_wait_cycles, 3u);
    EXPECT_EQ(core.interconnect_read_bytes, 4u * 16);  // its shares of A, B, S and B
    EXPECT_EQ(core.interconnect_write_bytes, 2u * 16);  // of S and Y
  }
  // Bit-exact against the reference, both nodes (S too: it went through HBM).
  expect_outputs_exact(p, r, 2u * 4 * 8);
}

// compiler.parallelism = model_k on two 8 x 8 cores (two_cores_compiling(), the
// interconnect's bandwidth unlimited): Y = X W, 8 x 16 x 16, two K tiles and two N tiles. Core c computes K tile c of
// both N tiles, stores the raw int32 partials (activate raw: each accumulator row of 8 words
// takes 4 UB rows of 8 bytes), the cores meet, then core c adds both cores' partials of N
// tile c into its accumulators (acc.load), requantises them once and stores its 8 columns.
TEST(MultiCore, ModelParallelSplitsKAndReducesThePartialsAcrossTheCores) {
  const Config c = two_cores_compiling("model_k");
  const Program p = compile(parse_model_json(R"({"name": "fc", "layers": [
      {"name": "fc", "type": "matmul", "m": 8, "k": 16, "n": 16}]})",
                                             "fc"),
                            c);
  // Core 0's stream; core 1's is the same with its own K tile and N tile.
  const std::vector<Opcode> stream = {
      Opcode::kLayer,      Opcode::kDmaLoad,     Opcode::kDmaLoad,  Opcode::kDmaLoad,
      Opcode::kLoadWeights, Opcode::kMatmul,     Opcode::kActivate, Opcode::kLoadWeights,
      Opcode::kMatmul,     Opcode::kActivate,    Opcode::kDmaStore, Opcode::kDmaStore,
      Opcode::kSignalCore, Opcode::kNop,         Opcode::kDmaLoad,  Opcode::kAccLoad,
      Opcode::kDmaLoad,    Opcode::kAccLoad,     Opcode::kActivate, Opcode::kDmaStore,
      Opcode::kHalt};
  ASSERT_NO_FATAL_FAILURE(expect_streams(p, {stream, stream}));
  const std::size_t c1 = stream.size();
  // Weights are stored N tile by N tile, K tile by K tile (64 bytes each): core 0 fills tiles
  // (0, 0) and (1, 0), core 1 (0, 1) and (1, 1); each reads all of X but multiplies its K
  // half: with ideal memory X's slot holds it K chunk by K chunk, chunk k of the 8 samples in
  // UB rows x + 8 k .. x + 8 k + 7 (tools/compiler/README.md), so core 1 streams from x + 8.
  const std::uint64_t w = p.instructions[1].dma.hbm_addr;
  EXPECT_EQ(p.instructions[2].dma.hbm_addr, w + 128);
  EXPECT_EQ(p.instructions[c1 + 1].dma.hbm_addr, w + 64);
  EXPECT_EQ(p.instructions[c1 + 2].dma.hbm_addr, w + 192);
  EXPECT_EQ(p.instructions[5].ub_row + 8, p.instructions[c1 + 5].ub_row);
  EXPECT_EQ(p.instructions[c1 + 5].ub_stride, 1u);
  EXPECT_TRUE(p.instructions[6].flags & kFlagRaw);
  // The partials: core c's 8 x 16 words at P + 512 c; core 0 reduces columns 0..7 (its own,
  // then core 1's), core 1 columns 8..15 (32 bytes on), overwrite then accumulate.
  const std::uint64_t partials = p.instructions[10].dma.hbm_addr;
  EXPECT_EQ(p.instructions[c1 + 10].dma.hbm_addr, partials + 512);
  EXPECT_EQ(p.instructions[14].dma.hbm_addr, partials);
  EXPECT_EQ(p.instructions[16].dma.hbm_addr, partials + 512);
  EXPECT_EQ(p.instructions[c1 + 14].dma.hbm_addr, partials + 32);
  EXPECT_EQ(p.instructions[c1 + 16].dma.hbm_addr, partials + 512 + 32);
  EXPECT_FALSE(p.instructions[15].flags & kFlagAccumulate);
  EXPECT_TRUE(p.instructions[17].flags & kFlagAccumulate);
  EXPECT_EQ(p.instructions[c1 + 19].dma.hbm_addr, p.instructions[19].dma.hbm_addr + 8);

  const RunResult r = run_traced(p, c);
  // The cores run alike (same-instant requests cross in core order, in under a picosecond).
  // Issue one a cycle from 0; ideal memory behind L = 4 each way: response = send + 8.
  // Fills (pc 1, 2) 1 -> 9, FIFO rows 9..16, done 17; 17 -> 25, done 33. X (pc 3, 128 bytes,
  // 16 UB rows) 33 -> 41, rows 41..56, done 57. load.weights (pc 4) e = 57 (first_input),
  // done 65; matmul (pc 5) s = 58, done 58 + M + N_t + R - 1 = 81. activate raw (pc 6): v = 81,
  // latency 4 + 8 rows x 1 group, its 8 x 4 = 32 UB rows written 85..116, done 117.
  // load.weights (pc 7) e = 65; matmul (pc 8) s = 66 (the stream before ends at 65), done 89;
  // activate raw (pc 9): the vector unit free at 117, rows 121..152, done 153.
  // Stores (pc 10, 11): 8 groups of 4 UB rows (32 bytes) 64 bytes apart: UB reads 117..148,
  // group i's write sent once its 4th row is read (121 + 4i), the last at 149, response 157,
  // done 158; then 158..189, last write 190, response 198, done 199 = node_stored.
  EXPECT_EQ(at_pc(r, 3).done, 57u);
  EXPECT_EQ(at_pc(r, 5).start, 58u);
  EXPECT_EQ(at_pc(r, 5).done, 81u);
  EXPECT_EQ(at_pc(r, 6).done, 117u);
  EXPECT_EQ(at_pc(r, 8).done, 89u);
  EXPECT_EQ(at_pc(r, 9).done, 153u);
  EXPECT_EQ(at_pc(r, 10).done, 158u);
  EXPECT_EQ(at_pc(r, 11).done, 199u);
  // Barrier: signal.core (pc 12) at 199 reaches the other core at 203; the nop (pc 13, issued
  // 200) waits 3 cycles; the reduction issues from 204.
  // Partial loads (pc 14, 16): 8 segments of 32 bytes, two requests (one per 256-byte burst)
  // sent 204 and 205, responses 212 and 213, the 32 UB rows 212..243, done 244. acc.load (pc 15): reads the 32 rows 244..275, + latency 4:
  // 280. The peer's partial (pc 16, waits pool_free) 280 -> 320; acc.load accumulate (pc 17)
  // reads 320..351, + latency 4 + one ALU add's 2: 358. activate (pc 18): 358 + 4 + 8 rows:
  // UB rows 362..369, done 370. Store (pc 19, 8 rows of 8 bytes 16 apart): reads 370..377,
  // write i sent at 371 + i, the last response 386, done 387 = total.
  EXPECT_EQ(at_pc(r, 14).start, 204u);
  EXPECT_EQ(at_pc(r, 14).done, 244u);
  EXPECT_EQ(at_pc(r, 15).done, 280u);
  EXPECT_EQ(at_pc(r, 16).done, 320u);
  EXPECT_EQ(at_pc(r, 17).done, 358u);
  EXPECT_EQ(at_pc(r, 18).done, 370u);
  EXPECT_EQ(at_pc(r, 19).done, 387u);
  EXPECT_EQ(at_pc(r, c1 + 19).done, 387u);
  EXPECT_EQ(r.total_cycles, 387u);
  ASSERT_EQ(r.cores.size(), 2u);
  for (const CoreStats& core : r.cores) {
    EXPECT_EQ(core.sync_wait_cycles, 3u);
    // Its weight tiles (128 bytes), X (128), and two partials of 8 rows of 32 bytes 64 apart,
    // each a request per 256-byte burst reading its pieces' hull (4 rows: 3 x 64 + 32 = 224
    // bytes), 448 each; out: its partials (512) and its 8 output columns (64).
    EXPECT_EQ(core.interconnect_read_bytes, 128u + 128 + 2 * 448);
    EXPECT_EQ(core.interconnect_write_bytes, 576u);
    EXPECT_EQ(core.array_macs(), 2u * 8 * 8 * 8);
  }
  // Bit-exact against the reference: int32 partial sums add exactly.
  expect_outputs_exact(p, r, 8u * 16);
}

// compiler.parallelism = pipeline on two 8 x 8 cores (two_cores_compiling(), the interconnect's
// bandwidth unlimited): Y1 = X W1 (16 x 8 x 8), Y2 = Y1 W2 (dense, 16 x 8 x 8), the 16 rows in
// two micro-batches of 8; stage 0 (fc1) on core 0, stage 1 (fc2) on core 1, Y1 through HBM.
TEST(MultiCore, PipelineStreamsMicroBatchesThroughTwoStages) {
  Config c = two_cores_compiling("pipeline");
  c.compiler.micro_batches = 2;
  const Program p = compile(parse_model_json(R"({"name": "fc2", "layers": [
      {"name": "fc1", "type": "matmul", "m": 16, "k": 8, "n": 8},
      {"name": "fc2", "type": "dense", "units": 8}]})",
                                             "fc2"),
                            c);
  // Core 0 runs fc1 for micro-batch 0 then 1, handing each over with a signal.core once its
  // store is done; core 1 runs fc2, its weight fills ahead of the wait for that signal. Both
  // micro-batches' GEMMs use the one copy of their weights (the second fill is micro-batch 1's
  // tile, prefetched while micro-batch 0's runs).
  ASSERT_NO_FATAL_FAILURE(expect_streams(
      p, {{Opcode::kLayer, Opcode::kDmaLoad, Opcode::kDmaLoad, Opcode::kDmaLoad,
           Opcode::kLoadWeights, Opcode::kMatmul, Opcode::kActivate, Opcode::kDmaStore,
           Opcode::kSignalCore, Opcode::kLayer, Opcode::kDmaLoad, Opcode::kLoadWeights,
           Opcode::kMatmul, Opcode::kActivate, Opcode::kDmaStore, Opcode::kSignalCore,
           Opcode::kHalt},
          {Opcode::kLayer, Opcode::kDmaLoad, Opcode::kDmaLoad, Opcode::kNop, Opcode::kDmaLoad,
           Opcode::kLoadWeights, Opcode::kMatmul, Opcode::kActivate, Opcode::kDmaStore,
           Opcode::kLayer, Opcode::kNop, Opcode::kDmaLoad, Opcode::kLoadWeights, Opcode::kMatmul,
           Opcode::kActivate, Opcode::kDmaStore, Opcode::kHalt}}));
  ASSERT_EQ(p.core_begin[1], 17u);
  EXPECT_EQ(p.instructions[1].dma.hbm_addr, p.instructions[2].dma.hbm_addr);
  EXPECT_EQ(p.instructions[18].dma.hbm_addr, p.instructions[19].dma.hbm_addr);
  // Core 1 reads each micro-batch's Y1 where core 0 stored it.
  EXPECT_EQ(p.instructions[21].dma.hbm_addr, p.instructions[7].dma.hbm_addr);
  EXPECT_EQ(p.instructions[28].dma.hbm_addr, p.instructions[14].dma.hbm_addr);
  EXPECT_EQ(p.instructions[8].core, 1u);
  EXPECT_EQ(p.instructions[15].core, 1u);

  const RunResult r = run_traced(p, c);
  // Issue one a cycle per core from 0; ideal memory behind L = 4 each way: response = send + 8.
  // Core 0, micro-batch 0 (as in ModelParallelSplitsNAndMeetsAtABarrier): W1 fill (pc 1) 1 ->
  // 9, FIFO rows 9..16, done 17; micro-batch 1's W1 fill (pc 2) done 33; X0 (pc 3) 33 -> 41,
  // rows 41..48, done 49; load.weights e = 49; matmul (pc 5) 50, done 50 + 23 = 73; activate
  // 73 + 4 + 8 = 85; store (pc 7, 8 writes sent 86..93) done 102. signal.core (pc 8) issues at
  // 102 and reaches core 1 at 106.
  EXPECT_EQ(at_pc(r, 3).done, 49u);
  EXPECT_EQ(at_pc(r, 5).done, 73u);
  EXPECT_EQ(at_pc(r, 7).done, 102u);
  // Core 0, micro-batch 1: X1 (pc 10) issued 104 (after pc 8 at 102 and the layer at 103),
  // response 112, rows 112..119, done 120; load.weights e = 120; matmul 121 -> 144; activate
  // 156; store done 173; signal.core (pc 15) at 173, at core 1 at 177.
  EXPECT_EQ(at_pc(r, 10).issued, 104u);
  EXPECT_EQ(at_pc(r, 10).done, 120u);
  EXPECT_EQ(at_pc(r, 12).start, 121u);
  EXPECT_EQ(at_pc(r, 14).done, 173u);
  // Core 1, micro-batch 0: W2 fills (pcs 18, 19) done 17 and 33 while the nop (pc 20, issued
  // at 3) waits for core 0's signal, 106; Y1 of micro-batch 0 (pc 21) issued 107, response
  // 115, rows 115..122, done 123; load.weights e = 123; matmul 124 -> 147; activate 159; store
  // done 176. It overlaps core 0's micro-batch 1 (104..173): the pipeline's steady state.
  EXPECT_EQ(at_pc(r, 18).done, 17u);
  EXPECT_EQ(at_pc(r, 19).done, 33u);
  EXPECT_EQ(at_pc(r, 21).issued, 107u);
  EXPECT_EQ(at_pc(r, 21).done, 123u);
  EXPECT_EQ(at_pc(r, 23).start, 124u);
  EXPECT_EQ(at_pc(r, 25).done, 176u);
  // Core 1, micro-batch 1 (the drain): the nop (pc 27, issued 113) waits for 177; Y1 (pc 28)
  // issued 178, done 194; matmul 195 -> 218; activate 230; store done 247 = total.
  EXPECT_EQ(at_pc(r, 28).issued, 178u);
  EXPECT_EQ(at_pc(r, 28).done, 194u);
  EXPECT_EQ(at_pc(r, 30).start, 195u);
  EXPECT_EQ(at_pc(r, 32).done, 247u);
  EXPECT_EQ(r.total_cycles, 247u);
  ASSERT_EQ(r.cores.size(), 2u);
  // Core 0 never waits; core 1 waits (fill) 106 - 3 = 103 cycles for micro-batch 0 and
  // 177 - 113 = 64 for micro-batch 1.
  EXPECT_EQ(r.cores[0].sync_wait_cycles, 0u);
  EXPECT_EQ(r.cores[1].sync_wait_cycles, 103u + 64u);
  for (const CoreStats& core : r.cores) EXPECT_EQ(core.array_macs(), 16u * 8 * 8);
  // Bit-exact against the reference: both micro-batches' Y1 (through HBM) and Y2.
  expect_outputs_exact(p, r, 16u * 8 * 2);
}

}  // namespace
}  // namespace tpu
