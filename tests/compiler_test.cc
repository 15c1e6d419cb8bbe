// Lowering: compile models, run the programs without timing and compare every layer's output in
// the final HBM with the compiler's plain reference (bit-exact for int8). A second executor runs
// the units in random interleavings with bounded queues, honouring only the semaphores and the
// MXU's own weight-buffer rules, to show the synchronisation is sufficient and deadlock-free.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <deque>
#include <random>
#include <set>
#include <string>

#include "sim/isa/semantics.h"
#include "tools/compiler/estimate.h"
#include "tools/compiler/gemm_tiling.h"
#include "tools/compiler/lowering.h"
#include "tools/compiler/frontend.h"
#include "tools/compiler/reference.h"
#include "tests/test_paths.h"

namespace tpu {
namespace {

const std::string kModels = tpu::test_paths::source_dir() + "/models/";

Config array_config(std::uint32_t rows, std::uint32_t cols) {
  Config c;
  c.array.rows = rows;
  c.array.cols = cols;
  c.vector.lanes = cols;
  return c;
}

Graph gemm_model(std::uint32_t m, std::uint32_t k, std::uint32_t n, const char* dtype = "int8") {
  return parse_model_json(std::string(R"({"dtype": ")") + dtype +
                              R"(", "layers": [{"name": "g", "type": "matmul", "m": )" +
                              std::to_string(m) + ", \"k\": " + std::to_string(k) +
                              ", \"n\": " + std::to_string(n) + "}]}",
                          "gemm.json");
}

float bf16_value(const std::uint8_t* p) {
  std::uint32_t bits = std::uint32_t(p[0] | (p[1] << 8)) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Compares each layer's output view in `hbm` with the expected values (layers whose output
// stayed in the unified buffer have none). The last layer always has them.
void expect_outputs_match(const Program& p, const std::vector<std::uint8_t>& hbm) {
  const std::uint32_t eb = element_bytes(p.dtype);
  ASSERT_FALSE(p.layers.empty());
  EXPECT_GT(p.layers.back().expected_int8.size() + p.layers.back().expected_fp32.size(), 0u);
  for (const LayerInfo& layer : p.layers) {
    SCOPED_TRACE(layer.name);
    const TensorView& v = layer.output;
    const std::size_t count = p.dtype == DataType::kInt8 ? layer.expected_int8.size()
                                                         : layer.expected_fp32.size();
    if (count == 0) continue;
    ASSERT_EQ(count, v.elements());
    float scale = 0;
    for (float e : layer.expected_fp32) scale = std::max(scale, std::fabs(e));
    std::size_t idx = 0, mismatches = 0;
    for (std::uint32_t i2 = 0; i2 < v.count2; ++i2) {
      for (std::uint32_t i1 = 0; i1 < v.count1; ++i1) {
        for (std::uint32_t i0 = 0; i0 < v.count0; ++i0, ++idx) {
          const std::uint8_t* at = hbm.data() + v.base + i2 * v.stride2 + i1 * v.stride1 + i0 * eb;
          if (p.dtype == DataType::kInt8) {
            if (std::int8_t(*at) != layer.expected_int8[idx] && mismatches++ < 5) {
              ADD_FAILURE() << "element " << idx << ": got " << int(std::int8_t(*at))
                            << ", expected " << int(layer.expected_int8[idx]);
            }
          } else {
            // bf16 output rounding (2^-9 relative) plus differently grouped fp32 sums and the
            // rounding of earlier layers' outputs.
            float got = bf16_value(at), want = layer.expected_fp32[idx];
            if (std::fabs(got - want) > 0.01f * std::fabs(want) + 0.01f * scale &&
                mismatches++ < 5) {
              ADD_FAILURE() << "element " << idx << ": got " << got << ", expected " << want;
            }
          }
        }
      }
    }
    EXPECT_EQ(mismatches, 0u);
  }
}

// Program order must be a valid sequential execution: every wait finds a non-zero count, each
// semaphore has one consumer unit, and every count returns to zero.
void expect_sequentially_valid(const Program& p) {
  int count[kNumSemaphores] = {};
  int consumer[kNumSemaphores];
  std::fill(consumer, consumer + kNumSemaphores, -1);
  for (std::size_t i = 0; i < p.instructions.size(); ++i) {
    const Instruction& inst = p.instructions[i];
    for (std::uint32_t s = 0; s < kNumSemaphores; ++s) {
      if (!(inst.wait >> s & 1)) continue;
      ASSERT_GT(count[s], 0) << "instruction " << i << " waits on empty semaphore " << s;
      --count[s];
      int unit = int(unit_of(inst.op));
      if (consumer[s] == -1) consumer[s] = unit;
      ASSERT_EQ(consumer[s], unit) << "semaphore " << s << " has two consumer units";
    }
    for (std::uint32_t s = 0; s < kNumSemaphores; ++s) count[s] += inst.signal >> s & 1;
  }
  for (std::uint32_t s = 0; s < kNumSemaphores; ++s) EXPECT_EQ(count[s], 0) << "semaphore " << s;
}

// Executes `p` with in-order issue into queues of `depth` entries and units that run their
// queue heads in a random order, each instruction atomically. Dependencies honoured: the
// semaphores, per-unit order (units run at random relative speeds), a MATMUL waits for its LOAD_WEIGHTS, and LOAD_WEIGHTS j (buffer
// j % 2) waits for every MATMUL of tile j - 2. Any missing semaphore shows up as wrong data in
// some interleaving; a stuck state is a deadlock.
std::vector<std::uint8_t> run_interleaved(const Config& config, const Program& p,
                                          std::size_t depth, std::uint32_t seed) {
  MachineState s(config, p);
  std::mt19937 rng(seed);
  std::deque<std::size_t> queue[kNumUnits];
  std::vector<long> tile_of(p.instructions.size(), -1);  // LW index of each LW / MATMUL
  long loads = 0;
  for (std::size_t i = 0; i < p.instructions.size(); ++i) {
    if (p.instructions[i].op == Opcode::kLoadWeights) tile_of[i] = loads++;
    if (p.instructions[i].op == Opcode::kMatmul) tile_of[i] = loads - 1;
  }
  std::vector<int> pending_mm(loads, 0);
  for (std::size_t i = 0; i < p.instructions.size(); ++i) {
    if (p.instructions[i].op == Opcode::kMatmul) ++pending_mm[tile_of[i]];
  }
  std::vector<bool> loaded(loads, false);
  WeightTile buffer[2];
  // The weight FIFO: `dma.load weights` fills run at most weight_fifo_tiles ahead of the
  // completed `load.weights fifo` reads, and a read needs its fill (both in program order).
  std::uint64_t fills = 0, reads = 0;
  const std::uint64_t fifo_depth = config.mxu.weight_fifo_tiles;
  int count[kNumSemaphores] = {};
  std::size_t next = 0;
  // Relative speeds of the sequencer and each unit: skewed so some units run far ahead.
  double speed[kNumUnits + 1];
  for (double& v : speed) v = std::pow(10.0, double(rng() % 3));
  for (;;) {
    std::vector<int> actions;  // -1 = issue, else a unit
    if (next < p.instructions.size()) {
      const Instruction& inst = p.instructions[next];
      Unit u = unit_of(inst.op);
      bool can = u == Unit::kSequencer ? true : queue[int(u)].size() < depth;
      if (inst.op == Opcode::kHalt) {
        can = true;
        for (const auto& q : queue) can = can && q.empty();
      }
      if (can) actions.push_back(-1);
    }
    for (std::size_t u = 0; u < kNumUnits; ++u) {
      if (queue[u].empty()) continue;
      std::size_t i = queue[u].front();
      const Instruction& inst = p.instructions[i];
      bool ready = true;
      for (std::uint32_t b = 0; b < kNumSemaphores; ++b) {
        if (inst.wait >> b & 1) ready = ready && count[b] > 0;
      }
      if (inst.op == Opcode::kMatmul) ready = ready && loaded[tile_of[i]];
      if (inst.op == Opcode::kDmaLoad && (inst.flags & kFlagWeights)) {
        ready = ready && fills < reads + fifo_depth;
      }
      if (inst.op == Opcode::kLoadWeights && (inst.flags & kFlagFifo)) {
        ready = ready && reads < fills;
      }
      if (inst.op == Opcode::kLoadWeights && tile_of[i] >= 2) {
        ready = ready && pending_mm[tile_of[i] - 2] == 0;
      }
      if (ready) actions.push_back(int(u));
    }
    if (actions.empty()) break;
    int a = actions[0];
    double total = 0;
    for (int x : actions) total += speed[x + 1];
    double pick = std::uniform_real_distribution<double>(0, total)(rng);
    for (int x : actions) {
      a = x;
      if ((pick -= speed[x + 1]) < 0) break;
    }
    if (a == -1) {
      const Instruction& inst = p.instructions[next];
      if (unit_of(inst.op) == Unit::kSequencer) {
        if (inst.op == Opcode::kHalt) return s.hbm;
      } else {
        queue[int(unit_of(inst.op))].push_back(next);
      }
      ++next;
      continue;
    }
    std::size_t i = queue[a].front();
    queue[a].pop_front();
    const Instruction& inst = p.instructions[i];
    for (std::uint32_t b = 0; b < kNumSemaphores; ++b) count[b] -= inst.wait >> b & 1;
    switch (inst.op) {
      case Opcode::kDmaLoad:
        if (inst.flags & kFlagWeights) {
          exec_dma_load_fifo(s, inst.dma);
          ++fills;
        } else {
          exec_dma_load(s, inst.dma);
        }
        break;
      case Opcode::kDmaStore: exec_dma_store(s, inst.dma); break;
      case Opcode::kLoadWeights:
        buffer[tile_of[i] % 2] = exec_load_weights(s, inst);
        loaded[tile_of[i]] = true;
        if (inst.flags & kFlagFifo) ++reads;
        break;
      case Opcode::kMatmul:
        matmul_tile(s, inst, buffer[tile_of[i] % 2]);
        --pending_mm[tile_of[i]];
        break;
      case Opcode::kActivate: exec_activate(s, inst); break;
      case Opcode::kPool: exec_pool(s, inst); break;
      case Opcode::kAdd: exec_add(s, inst); break;
      case Opcode::kVop: exec_vop(s, inst); break;
      default: break;
    }
    for (std::uint32_t b = 0; b < kNumSemaphores; ++b) count[b] += inst.signal >> b & 1;
  }
  ADD_FAILURE() << "deadlock: instruction " << next << " not issued";
  return {};
}

void expect_correct(const Graph& model, const Config& config, const CompileOptions& options = {},
                    int interleavings = 6) {
  Program p = compile(model, config, options);
  expect_sequentially_valid(p);
  expect_outputs_match(p, interpret(config, p).hbm);
  // Shallow queues exercise the issue order, deep ones let units run far apart.
  for (int seed = 0; seed < interleavings; ++seed) {
    const std::size_t depth = seed % 2 ? 2 : 1000;
    SCOPED_TRACE("interleaving " + std::to_string(seed) + ", queue depth " +
                 std::to_string(depth));
    expect_outputs_match(p, run_interleaved(config, p, depth, seed));
  }
}

TEST(CompilerTest, MatmulNotAMultipleOfTheArrayIsBitExact) {
  Config config = array_config(16, 16);
  Graph model = gemm_model(37, 300, 130);
  Program p = compile(model, config);
  // K tiles ceil(300/16) = 19, N tiles ceil(130/16) = 9, one M tile (37 rows fit):
  // LAYER + input DMA + 171 x (weight DMA + LOAD_WEIGHTS + MATMUL) + 9 x (ACTIVATE + store)
  // + HALT = 1 + 1 + 513 + 18 + 1 = 534.
  EXPECT_EQ(p.instructions.size(), 534u);
  EXPECT_EQ(p.layers[0].macs, 37u * 300 * 130);
  EXPECT_EQ(p.layers[0].kind, "matmul");
  EXPECT_EQ(p.semaphore_names[kSemXReady], "x_ready");
  expect_correct(model, config);
}

// Attention (the model of tests/attention_test.cc, small): q, v and k projections, scores
// q k^T per head reading k as transposed weight tiles right after k's node, a causal softmax
// over the interleaved heads, p v and an output projection; and a decode step against a KV
// cache. Bit exact under every interleaving, weights through the FIFO and through the UB.
TEST(CompilerTest, AttentionIsBitExactUnderEveryInterleaving) {
  const Graph prefill = parse_model_json(R"({"inputs": [{"name": "x", "shape": [1, 8, 16]}],
    "nodes": [
      {"name": "q", "op": "conv1d", "inputs": ["x"], "out_channels": 16, "kernel": 1},
      {"name": "v", "op": "conv1d", "inputs": ["x"], "out_channels": 16, "kernel": 1},
      {"name": "k", "op": "conv1d", "inputs": ["x"], "out_channels": 16, "kernel": 1},
      {"name": "s", "op": "matmul", "inputs": ["q", "k"], "transpose_b": true, "heads": 2,
       "scale": 0.35},
      {"name": "sr", "op": "reshape", "inputs": ["s"], "shape": [1, 16, 8]},
      {"name": "p", "op": "softmax", "inputs": ["sr"], "causal": true, "heads": 2},
      {"name": "pr", "op": "reshape", "inputs": ["p"], "shape": [1, 8, 16]},
      {"name": "c", "op": "matmul", "inputs": ["pr", "v"], "heads": 2},
      {"name": "o", "op": "conv1d", "inputs": ["c"], "out_channels": 16, "kernel": 1}],
    "outputs": ["o"]})",
                                         "prefill.json");
  const Graph decode = parse_model_json(R"({"inputs": [{"name": "x", "shape": [1, 1, 16]},
      {"name": "kc", "shape": [1, 8, 16]}, {"name": "vc", "shape": [1, 8, 16]}],
    "nodes": [
      {"name": "q", "op": "conv1d", "inputs": ["x"], "out_channels": 16, "kernel": 1},
      {"name": "s", "op": "matmul", "inputs": ["q", "kc"], "transpose_b": true, "heads": 2},
      {"name": "sr", "op": "reshape", "inputs": ["s"], "shape": [1, 2, 8]},
      {"name": "p", "op": "softmax", "inputs": ["sr"]},
      {"name": "pr", "op": "reshape", "inputs": ["p"], "shape": [1, 1, 16]},
      {"name": "c", "op": "matmul", "inputs": ["pr", "vc"], "heads": 2},
      {"name": "o", "op": "conv1d", "inputs": ["c"], "out_channels": 16, "kernel": 1}],
    "outputs": ["o"]})",
                                        "decode.json");
  for (std::uint32_t fifo : {4u, 0u}) {
    Config config = array_config(8, 8);
    config.mxu.weight_fifo_tiles = fifo;
    SCOPED_TRACE("weight_fifo_tiles " + std::to_string(fifo));
    expect_correct(prefill, config);
    expect_correct(decode, config);
  }
}

// Biases on every GEMM kind and path: a resident padded conv (taps), a conv from HBM whose
// 40 channels span several N tiles, a grouped conv, a dense and a standalone matmul. Bit exact
// (bf16: within tolerance) under every interleaving, with the weights through the FIFO on two
// MXUs and through the UB; and the biases change the outputs (the reference adds them).
TEST(CompilerTest, GemmBiasesAreBitExactUnderEveryInterleaving) {
  const std::string nodes = R"("inputs": [{"name": "x", "shape": [6, 6, 8]}],
    "nodes": [
      {"name": "c1", "op": "conv2d", "inputs": ["x"], "out_channels": 40, "kernel": 3,
       "padding": 1, "activation": "relu", "bias": true},
      {"name": "c2", "op": "conv2d", "inputs": ["c1"], "out_channels": 40, "kernel": 3,
       "groups": 4, "activation": "gelu", "bias": true},
      {"name": "fc", "op": "dense", "inputs": ["c2"], "units": 20, "bias": true}],
    "outputs": ["fc"]})";
  for (const char* dtype : {"int8", "bf16"}) {
    const Graph model = parse_model_json(
        std::string(R"({"dtype": ")") + dtype + R"(", "batch": 2, )" + nodes, "bias.json");
    Graph plain = model;
    for (Node& n : plain.nodes) n.bias = false;
    for (std::uint32_t fifo : {4u, 0u}) {
      Config config = array_config(8, 8);
      config.mxu.weight_fifo_tiles = fifo;
      SCOPED_TRACE(std::string(dtype) + ", weight_fifo_tiles " + std::to_string(fifo));
      expect_correct(model, config);
      const Program with = compile(model, config), without = compile(plain, config);
      const LayerInfo &a = with.layers.back(), &b = without.layers.back();
      EXPECT_TRUE(a.expected_int8 != b.expected_int8 || a.expected_fp32 != b.expected_fp32);
      EXPECT_GT(a.expected_int8.size() + a.expected_fp32.size(), 0u);
    }
    const Graph mm = parse_model_json(
        std::string(R"({"dtype": ")") + dtype +
            R"(", "layers": [{"type": "matmul", "m": 9, "k": 20, "n": 70, "bias": true}]})",
        "mm.json");
    expect_correct(mm, array_config(16, 16));
  }
}

TEST(CompilerTest, ManyMTilesRotateTheDoubleBuffers) {
  CompileOptions options;
  options.max_m_tile = 8;  // 37 rows -> 5 M tiles
  expect_correct(gemm_model(37, 40, 20), array_config(16, 8), options, 16);
}

// The default config has a weight FIFO: weight tiles go HBM -> FIFO -> MXU with no semaphores
// and no UB staging rows; with weight_fifo_tiles = 0 they are staged in two UB slots behind
// w_ready / w_free. Both are bit exact under every interleaving, the FIFO at its smallest depth.
TEST(CompilerTest, WeightTilesThroughTheFifoOrStagedInTheUb) {
  CompileOptions options;
  options.max_m_tile = 8;
  const Graph model = gemm_model(37, 40, 20);
  for (const std::uint32_t depth : {0u, 2u, 4u}) {
    SCOPED_TRACE("weight_fifo_tiles = " + std::to_string(depth));
    Config config = array_config(16, 8);
    config.mxu.weight_fifo_tiles = depth;
    const Program p = compile(model, config, options);
    const std::uint64_t w_ready = std::uint64_t(1) << kSemWReady;
    std::size_t fills = 0, fifo_reads = 0, loads = 0, staged = 0;
    for (const Instruction& inst : p.instructions) {
      if (inst.op == Opcode::kDmaLoad && (inst.flags & kFlagWeights)) {
        ++fills;
        EXPECT_EQ(inst.dma.ub_row, 0u);
        EXPECT_EQ(inst.wait | inst.signal, 0u);
      }
      if (inst.op == Opcode::kDmaLoad && (inst.signal & w_ready)) ++staged;
      if (inst.op == Opcode::kLoadWeights) {
        ++loads;
        if (inst.flags & kFlagFifo) {
          ++fifo_reads;
          EXPECT_EQ(inst.wait & w_ready, 0u);
        }
      }
    }
    // ceil(40 / 16) = 3 K tiles x ceil(20 / 8) = 3 N tiles x 5 M tiles = 45 weight tiles.
    EXPECT_EQ(loads, 45u);
    EXPECT_EQ(fills, depth ? 45u : 0u);
    EXPECT_EQ(fifo_reads, depth ? 45u : 0u);
    EXPECT_EQ(staged, depth ? 0u : 45u);
    expect_correct(model, config, options, 16);
  }
}

TEST(CompilerTest, StridedPaddedConvWithPartialRowTiles) {
  Graph model = parse_model_json(R"({"batch": 2, "input": [9, 11, 5], "seed": 7, "layers": [
      {"name": "c", "type": "conv2d", "out_channels": 12, "kernel": 3, "stride": 2,
       "padding": 1, "activation": "relu"}]})",
                                 "conv.json");
  EXPECT_EQ(model.nodes[0].out, (Shape3{5, 6, 12}));
  CompileOptions options;
  options.max_m_tile = 5;  // tiles cross output rows and images
  expect_correct(model, array_config(8, 8), options, 16);
}

// Number of layers whose output the program checks (not resident in the unified buffer).
std::size_t checked_layers(const Program& p) {
  std::size_t n = 0;
  for (const LayerInfo& l : p.layers) n += !l.expected_int8.empty() || !l.expected_fp32.empty();
  return n;
}

// Bytes all DMAs move between HBM and the unified buffer.
std::uint64_t hbm_bytes_moved(const Program& p) {
  std::uint64_t bytes = 0;
  for (const Instruction& inst : p.instructions) {
    if (inst.op != Opcode::kDmaLoad && inst.op != Opcode::kDmaStore) continue;
    bytes += std::uint64_t(inst.dma.elems) * inst.dma.segs * inst.dma.groups *
             element_bytes(p.dtype);
  }
  return bytes;
}

TEST(CompilerTest, TapConvFromHbmWithChannelChunks) {
  // C = 21 >= R / 2 = 4 on an 8x8 array: on-chip windows, K tiles of (ky, kx, chunk) with
  // chunks of 8, 8 and 5 channels (a remainder too wide to pack two taps: 20 channels would pack
  // their remainder of 4); tiles of 5 pixels cross output rows and images. With ideal memory
  // (on HBM2 the 2 x 2 residue images' transfers, 4 per chunk and image, each waiting for the
  // memory, make im2col's tiles cheaper than these 27).
  Graph model = parse_model_json(R"({"batch": 2, "input": [9, 11, 21], "seed": 3, "layers": [
      {"name": "c", "type": "conv2d", "out_channels": 12, "kernel": 3, "stride": 2,
       "padding": 1, "activation": "relu"}]})",
                                 "tapconv.json");
  Config config = array_config(8, 8);
  config.hbm.preset = "ideal";
  // With double-buffered weights im2col's fuller tiles (24) win: its M tiles keep its first
  // gather short (Lowerer::rows_m_cap). Without, each M tile pays its loads and the taps stay.
  config.mxu.double_buffer_weights = false;
  CompileOptions options;
  options.max_m_tile = 5;
  Program p = compile(model, config, options);
  // M = 2 x 5 x 6 = 60 -> 12 tiles, N tiles 2, K tiles 3 x 3 x 3 = 27: 648 weight tiles. Each
  // chunk's band loads as 2 x 2 compact residue images (tap (ky, kx) reads the pixels
  // (2 oy + ky, 2 ox + kx), of residue (ky mod 2, kx mod 2)), so every MATMUL streams
  // consecutive UB rows.
  std::size_t loads = 0, matmuls = 0;
  for (const Instruction& inst : p.instructions) {
    loads += inst.op == Opcode::kLoadWeights;
    if (inst.op != Opcode::kMatmul) continue;
    ++matmuls;
    EXPECT_EQ(inst.ub_stride, 1u);
    EXPECT_LE(inst.rows, 5u);
  }
  EXPECT_EQ(loads, 12u * 2 * 27);
  EXPECT_GT(matmuls, loads);  // tiles crossing an output row need two passes
  // Each input band is loaded once per tile, not kh * kw times per pixel as im2col would.
  EXPECT_LT(hbm_bytes_moved(p), 2u * 2 * 9 * 11 * 21 * 6 + 3 * 3 * 21 * 12 * 12 + 60 * 12);
  expect_correct(model, config, options, 8);
  options.max_m_tile = 0;  // whole images per tile
  expect_correct(model, config, options, 2);
  // im2col in M tiles of at most an eighth of M, but at least 2R = 16 pixels, rounded down to
  // whole output rows of 6 (5 tiles of 12), bit-exact too.
  config.mxu.double_buffer_weights = true;
  p = compile(model, config, options);
  std::size_t im2col_loads = 0;
  for (const Instruction& inst : p.instructions) im2col_loads += inst.op == Opcode::kLoadWeights;
  EXPECT_EQ(im2col_loads, 5u * 2 * 24);
  expect_correct(model, config, options, 2);
}

// A single convolution: `batch` images of h x w x c, kernel k, stride s, padding p, n filters.
Graph conv_model(std::uint32_t batch, std::uint32_t h, std::uint32_t w, std::uint32_t c,
                 std::uint32_t k, std::uint32_t s, std::uint32_t p, std::uint32_t n,
                 const char* dtype = "int8") {
  return parse_model_json(
      std::string(R"({"dtype": ")") + dtype + R"(", "batch": )" + std::to_string(batch) +
          R"(, "input": [)" + std::to_string(h) + ", " + std::to_string(w) + ", " +
          std::to_string(c) + R"(], "seed": 9, "layers": [{"name": "c", "type": "conv2d",
          "out_channels": )" + std::to_string(n) + R"(, "kernel": )" + std::to_string(k) +
          R"(, "stride": )" + std::to_string(s) + R"(, "padding": )" + std::to_string(p) +
          R"(, "activation": "relu"}]})",
      "conv.json");
}

// Taps geometry of a kh x kw conv, stride s, no padding, C channels, on a w-wide input.
Taps taps(std::uint64_t k, std::uint64_t s, std::uint64_t c, std::uint64_t w) {
  const std::uint64_t ow = (w - k) / s + 1;
  return Taps{k, k, s, 0, w, c, ow, ow, w};
}

TEST(CompilerTest, TapPlansGroupTapsIntoFullTiles) {
  // C = 64 on 128 rows: pairs of taps, K = 576 in 5 tiles (as im2col); pairs along a kernel
  // row share one image, pairs crossing to the next row another, the last tap a plain band.
  TapPlan p = tap_plan(taps(3, 1, 64, 56), 128, 2, 128, true);
  ASSERT_EQ(p.ktiles.size(), 5u);
  EXPECT_EQ(p.images.size(), 3u);
  for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(p.ktiles[i].kts, 128u);
  EXPECT_EQ(p.ktiles[4].kts, 64u);
  EXPECT_EQ(p.ktiles[1].ky * 3 + p.ktiles[1].kx, 2u);  // taps (0, 2) and (1, 0)
  EXPECT_EQ(p.ktiles[0].img, p.ktiles[2].img);
  // Stride 2, C = 64 on 128 rows (ResNet's downsampling 3x3 convs, models/conv.json): pairs
  // along each kernel row and the third tap alone, 6 tiles (9 unpacked; im2col 5). Tile (ky, kx)
  // reads anchors (2 oy + ky, 2 ox + kx), so an image holds the taps of one residue
  // (ky mod 2, kx mod 2), every second row and column of the 57 x 57 input, densely: pairs and
  // single taps at ky = 0, 2 share two images of 29 x 28 anchors, those at ky = 1 two of
  // 28 x 28. 3192 UB rows in all, where one plain band (unpacked) writes 57 x 57 = 3249 for 9
  // passes over the 784 output pixels instead of 6.
  const Taps strided = taps(3, 2, 64, 57);
  p = tap_plan(strided, 128, 2, 128, true);
  ASSERT_EQ(p.ktiles.size(), 6u);
  ASSERT_EQ(p.images.size(), 4u);
  for (std::size_t i = 0; i < 6; ++i) EXPECT_EQ(p.ktiles[i].kts, i % 2 == 0 ? 128u : 64u);
  EXPECT_EQ(p.ktiles[0].img, p.ktiles[4].img);  // taps (0, 0)-(0, 1) and (2, 0)-(2, 1)
  EXPECT_EQ(p.ktiles[1].img, p.ktiles[5].img);  // taps (0, 2) and (2, 2)
  for (const BandImage& im : p.images) {
    EXPECT_TRUE(im.compact);
    EXPECT_EQ(im.ystep, 2u);
    EXPECT_EQ(im.xstep, 2u);
    EXPECT_TRUE(one_transfer(strided, im));
  }
  EXPECT_EQ(band_rows_written(strided, p, 0, 784), 2u * 29 * 28 + 2u * 28 * 28);
  EXPECT_EQ(band_rows_written(strided, tap_plan(strided, 128, 1, 128, true), 0, 784), 57u * 57);
  EXPECT_EQ(band_transfers(strided, p, 0, 784), 4u);
  // The 7x7 stride-2 RGB stem on 128 rows: im2col takes 2 tiles and the UB's write port takes
  // 2 gathered rows + 1 output row per output pixel (the DMA fetches the overlapping windows'
  // bursts once, so its 7 segments no longer count): max(2, 3) = 3; 4 kernel rows per tile
  // (ky0 = 0, 4, both even: one anchor per output pixel) take 2 tiles and 1 + 1 rows:
  // max(2, 2) = 2 (2 rows: 4 tiles; 6 rows: 2 tiles too, not strictly cheaper than 4).
  EXPECT_EQ(kernel_rows_per_tile(taps(7, 2, 3, 230), 128, 128), 4u);
  // The same stem reading a concat's channel slice: a kernel row is no run of elements, so
  // whole rows are never packed (tap_plan packs runs of taps, a segment per tap, instead).
  Taps slice = taps(7, 2, 3, 230);
  slice.contiguous = false;
  EXPECT_EQ(kernel_rows_per_tile(slice, 128, 128), 0u);
  for (const BandImage& im : tap_plan(slice, 128, 128 / 3, 128, true).images) {
    EXPECT_EQ(im.chans, slice.C);
  }
  // On 256 rows im2col is one tile (max(1, 2)) and so are 7 kernel rows: no gain. 11x11
  // stride-4 (AlexNet) on 128: im2col max(3, 4) = 4; 3 kernel rows per tile take 4 tiles and,
  // their first rows 0, 3, 6, 9 differing modulo 4, anchors every input row (4 per output
  // pixel): max(4, 5).
  EXPECT_EQ(kernel_rows_per_tile(taps(7, 2, 3, 230), 256, 256), 0u);
  EXPECT_EQ(kernel_rows_per_tile(taps(11, 4, 3, 227), 128, 128), 0u);
  // On 32 rows a kernel row of 21 elements leaves no room for a second one.
  EXPECT_EQ(kernel_rows_per_tile(taps(7, 2, 3, 230), 32, 32), 0u);
  // Unpacked: one tile per tap and channel chunk.
  EXPECT_EQ(tap_plan(taps(3, 1, 200, 10), 128, 1, 128, true).ktiles.size(), 9u * 2);
}

// Strides 2 to 4, kernels smaller and larger than the stride, channel remainders: each chunk's
// band loads as min(s, k) x min(s, k) compact residue images (tap_plan), and every MATMUL
// streams consecutive UB rows.
TEST(CompilerTest, StridedTapConvsReadResidueImagesAndAreBitExact) {
  struct Case {
    std::uint32_t c, k, s, p;
    const char* dtype;
  };
  const Case cases[] = {
      {24, 3, 3, 1, "int8"},  // 3 chunks, 3 x 3 residues of one tap each
      {8, 5, 4, 2, "int8"},   // 4 x 4 residues, taps 0 and 4 of a row sharing one
      {16, 2, 2, 0, "bf16"},  // one tap per residue
      {21, 3, 2, 1, "bf16"},  // chunks of 8, 8 and 5; 2 x 2 residues of 4, 2, 2 and 1 taps
  };
  for (const Case& c : cases) {
    SCOPED_TRACE("C = " + std::to_string(c.c) + ", " + std::to_string(c.k) + "x" +
                 std::to_string(c.k) + " stride " + std::to_string(c.s) + " pad " +
                 std::to_string(c.p) + " " + c.dtype);
    Graph model = conv_model(2, 13, 15, c.c, c.k, c.s, c.p, 12, c.dtype);
    Config config = array_config(8, 8);
    config.hbm.preset = "ideal";
    // A remainder chunk's taps take more tiles than im2col (21 channels: 27 against 24), which
    // wins with double-buffered weights (TapConvFromHbmWithChannelChunks).
    config.mxu.double_buffer_weights = c.c != 21;
    CompileOptions options;
    options.max_m_tile = 7;
    Program p = compile(model, config, options);
    const Taps g{c.k, c.k, c.s, c.p, 15, c.c, model.nodes[0].out.h, model.nodes[0].out.w,
                 15 + 2 * c.p};
    const TapPlan plan = tap_plan(g, 8, 1, 8, true);
    const std::uint64_t r = std::min(c.s, c.k), chunks = (c.c + 7) / 8;
    ASSERT_EQ(plan.images.size(), r * r * chunks);
    for (const KTile& t : plan.ktiles) {
      const BandImage& im = plan.images[t.img];
      EXPECT_TRUE(im.compact);
      EXPECT_EQ(im.ky_lo, t.ky % c.s);
      EXPECT_EQ(im.kx_lo, t.kx % c.s);
    }
    // M tiles keep whole output rows: 7 rounded down to a multiple of the output width.
    const std::uint64_t ow = model.nodes[0].out.w, mt = ow <= 7 ? 7 - 7 % ow : 7;
    const std::uint64_t M = model.nodes[0].gemm_m(), MT = (M + mt - 1) / mt;
    std::size_t loads = 0;
    for (const Instruction& inst : p.instructions) {
      loads += inst.op == Opcode::kLoadWeights;
      if (inst.op == Opcode::kMatmul) {
        EXPECT_EQ(inst.ub_stride, 1u);
      }
    }
    EXPECT_EQ(loads, MT * 2 * plan.ktiles.size());  // the taps path: 2 N tiles of 8 and 4
    expect_correct(model, config, options, 2);
  }
}

// Grouped convs of several blocks split each block's chunks into residue images alike
// (grouped_plan): a stride-2 depthwise conv over 20 channels on 8 x 8 (blocks of 8, 8 and 4
// groups, one chunk each) and 2 groups of 10 channels at stride 3 (chunks of 8 and 2 each).
TEST(CompilerTest, StridedGroupedConvsReadResidueImagesAndAreBitExact) {
  struct Case {
    std::uint32_t c, n, groups, k, s;
  };
  for (const Case& c : {Case{20, 20, 20, 3, 2}, Case{20, 18, 2, 3, 3}}) {
    SCOPED_TRACE(std::to_string(c.groups) + " groups, stride " + std::to_string(c.s));
    Graph model = parse_model_json(
        R"({"batch": 2, "input": [13, 15, )" + std::to_string(c.c) +
            R"(], "seed": 5, "layers": [{"name": "g", "type": "conv2d", "out_channels": )" +
            std::to_string(c.n) + R"(, "groups": )" + std::to_string(c.groups) +
            R"(, "kernel": )" + std::to_string(c.k) + R"(, "stride": )" + std::to_string(c.s) +
            R"(, "padding": 1, "activation": "relu"}]})",
        "grouped.json");
    Config config = array_config(8, 8);
    config.hbm.preset = "ideal";
    CompileOptions options;
    options.max_m_tile = 9;
    Program p = compile(model, config, options);
    const Node& node = model.nodes[0];
    const Taps g{c.k, c.k, c.s, 1, 15, c.c, node.out.h, node.out.w, 17};
    const GroupedPlan gp = grouped_plan(g, group_map(c.c, c.n, c.groups, 8), 8, 8, true);
    for (const BandImage& im : gp.plan.images) EXPECT_TRUE(im.compact);
    for (const KTile& t : gp.plan.ktiles) {
      EXPECT_EQ(gp.plan.images[t.img].ky_lo, t.ky % c.s);
      EXPECT_EQ(gp.plan.images[t.img].kx_lo, t.kx % c.s);
    }
    for (const Instruction& inst : p.instructions) {
      if (inst.op == Opcode::kMatmul) {
        EXPECT_EQ(inst.ub_stride, 1u);
      }
    }
    expect_correct(model, config, options, 2);
  }
}

TEST(CompilerTest, TapPlansPackTheTapsOfAChannelRemainder) {
  // 48 channels on 32 rows (Inception's 5x5 branch): unpacked, each of the 25 taps takes a tile
  // of 32 channels and one of 16, 50 tiles where im2col takes ceil(1200 / 32) = 38. Packing
  // the remainder two taps to a tile: 25 tiles of channels 0..31 over one plain band, then 13
  // of channels 32..47 (12 pairs and the last tap alone) over images like those of 16
  // channels: pairs along a kernel row, pairs crossing to the next one ((0, 4)-(1, 0)), and the
  // last tap's plain band of 16 channels: 25 + 13 = 38 tiles.
  const Taps g = taps(5, 1, 48, 39);
  EXPECT_EQ(last_chunk(48, 32), 16u);
  EXPECT_EQ(last_chunk(64, 32), 32u);
  EXPECT_EQ(tap_plan(g, 32, 1, 32, false).ktiles.size(), 50u);
  const TapPlan p = tap_plan(g, 32, 2, 32, false);
  ASSERT_EQ(p.ktiles.size(), 38u);
  ASSERT_EQ(p.images.size(), 4u);
  for (std::size_t i = 0; i < 25; ++i) {
    EXPECT_EQ(p.ktiles[i].k0, i * 48);
    EXPECT_EQ(p.ktiles[i].kts, 32u);
    EXPECT_EQ(p.ktiles[i].k_row(31, 48), i * 48 + 31);  // one tap's first 32 channels
  }
  for (std::size_t i = 25; i < 38; ++i) {
    const KTile& k = p.ktiles[i];
    const std::uint64_t tap = 2 * (i - 25);
    EXPECT_EQ(k.ky * 5 + k.kx, tap);
    EXPECT_EQ(k.kts, i < 37 ? 32u : 16u);
    // Row j is channel 32 + j % 16 of tap tap + j / 16.
    EXPECT_EQ(k.k_row(0, 48), tap * 48 + 32);
    EXPECT_EQ(k.k_row(15, 48), tap * 48 + 47);
    if (i < 37) {
      EXPECT_EQ(k.k_row(16, 48), (tap + 1) * 48 + 32);
    }
    EXPECT_EQ(p.images[k.img].c0, 32u);
    EXPECT_EQ(p.images[k.img].chans, 16u);
  }
  EXPECT_EQ(p.images[p.ktiles[27].img].dy, 1u);  // taps (0, 4) and (1, 0)
  EXPECT_EQ(p.ktiles[25].img, p.ktiles[26].img);
  // A pair's 2 x 16 channels are no run of a pixel's 48: one DMA per anchor row, a segment
  // per tap.
  EXPECT_FALSE(one_transfer(g, p.images[p.ktiles[25].img]));
  EXPECT_TRUE(one_transfer(g, p.images[p.ktiles[37].img]));  // the last tap's plain band
  // Stride 2: every tile reads compact images of its residue's anchors, a full chunk's one tap
  // each, so every tile streams consecutive UB rows. 5 x 5 taps: a full chunk's 25 tiles over 4
  // images (residues (ky mod 2, kx mod 2)); the remainder's kernel rows pack as (0, 1) (2, 3)
  // (4) each, 15 tiles over 4 images (pairs and single taps, at even and odd ky).
  const TapPlan q = tap_plan(taps(5, 2, 48, 39), 32, 2, 32, true);
  EXPECT_EQ(q.ktiles.size(), 25u + 15u);
  EXPECT_EQ(q.images.size(), 4u + 4u);
  for (const BandImage& im : q.images) EXPECT_TRUE(im.compact);
  // Channels a multiple of the rows leave no remainder: 9 taps x 2 chunks, unpacked.
  EXPECT_EQ(tap_plan(taps(3, 1, 64, 20), 32, 1, 32, false).ktiles.size(), 18u);
}

// A conv on a small array for the packed-taps tests: two images of (9 + k) x (11 + k) pixels,
// 12 filters, M tiles of 13 rows that cross output rows and images.
struct TapConvCase {
  std::uint32_t array, c, k, s, p, tiles;  // tiles: weight tiles per (M tile, N tile)
  const char* dtype;
  std::string describe() const {
    return "array " + std::to_string(array) + ", C = " + std::to_string(c) + ", " +
           std::to_string(k) + "x" + std::to_string(k) + " stride " + std::to_string(s) +
           " pad " + std::to_string(p) + " " + dtype;
  }
  Graph model() const { return conv_model(2, 9 + k, 11 + k, c, k, s, p, 12, dtype); }
  static CompileOptions options() {
    CompileOptions o;
    o.max_m_tile = 13;
    return o;
  }
};

TEST(CompilerTest, PackedTapsFillTheArrayRowsAndAreBitExact) {
  // Channels that leave half the array's rows idle per tap: the DMA packs several taps' channels
  // into one UB row (runs along a kernel row, pairs across kernel rows), one weight tile each.
  const TapConvCase cases[] = {
      {16, 5, 3, 1, 1, 3, "int8"},   // 3 runs of 3 taps (15 rows)
      {16, 5, 3, 2, 1, 3, "bf16"},   // strided
      {16, 3, 5, 2, 2, 5, "int8"},   // 5 runs of 5 taps (15 rows), like a small stem
      {16, 3, 5, 1, 0, 5, "bf16"},   // unpadded
      {16, 8, 3, 1, 1, 5, "int8"},   // pairs, two crossing kernel rows, and a single tap
      {128, 64, 3, 1, 1, 5, "int8"}, // ResNet-50's 3x3 convs with 64 channels
      // Strided pairs along each kernel row, the third tap alone: 6 tiles. Each image loads
      // only the anchors of its taps' residue (ky mod 2, kx mod 2), every second row and
      // column, stored densely (about one UB row per output pixel each, 4 images) where the
      // plain band of 9 unpacked tiles would hold every input pixel (about 4 per output pixel).
      {16, 8, 3, 2, 0, 6, "bf16"},
      {128, 64, 3, 2, 1, 6, "bf16"},
      {128, 48, 3, 1, 1, 5, "int8"}, // 2 taps x 48 rows: 5 > ceil(432 / 128) = 4, so im2col
      {128, 96, 3, 2, 1, 9, "int8"}, // one tap per tile (96 > 64)
      // A first layer's few channels: whole kernel rows per tile take as many tiles as im2col
      // (2 of K = 18 on 16 rows; 3 and 2 of the 7x7 stem's 147 on 64 and 128 rows) and fewer
      // UB rows per output pixel (one anchor, or s of them on 64 rows, whose 3-row tiles start
      // at rows 0, 3, 6 of differing parity), so they pack kernel rows (kernel_rows_per_tile).
      {16, 2, 3, 1, 1, 2, "int8"},
      {16, 2, 3, 1, 0, 2, "bf16"},
      {64, 3, 7, 2, 3, 3, "int8"},
      {128, 3, 7, 2, 3, 2, "int8"},
      {128, 3, 7, 2, 3, 2, "bf16"},
  };
  for (const TapConvCase& c : cases) {
    SCOPED_TRACE(c.describe());
    const Graph model = c.model();
    const Config config = array_config(c.array, c.array);
    const CompileOptions options = TapConvCase::options();
    Program p = compile(model, config, options);
    const std::uint64_t K = model.nodes[0].gemm_k();
    std::size_t loads = 0, packed = 0, tiles_mn = 0;  // one ACTIVATE per (M tile, N tile)
    for (const Instruction& inst : p.instructions) {
      tiles_mn += inst.op == Opcode::kActivate;
      if (inst.op != Opcode::kLoadWeights) continue;
      ++loads;
      packed += inst.rows > c.c && inst.rows % c.c == 0;
    }
    const std::uint64_t tiles = c.c == 48 ? (K + c.array - 1) / c.array : c.tiles;
    EXPECT_EQ(loads, tiles_mn * tiles);
    const bool im2col = c.c == 48;  // see the cases above
    if (2 * c.c <= c.array && !im2col) {
      if (c.tiles < c.k * c.k) {
        EXPECT_GT(packed, 0u);
      } else {
        EXPECT_EQ(packed, 0u);
      }
    }
    expect_correct(model, config, options, 4);
  }
}

TEST(CompilerTest, PackedChannelRemaindersAreBitExact) {
  // More channels than the array's rows, the last chunk few enough that its taps pack: full
  // chunks one tap per tile, the remainder's taps packed (tap_plan), K rows of a packed tile
  // spread over its taps (KTile::k_row), gathered one segment per tap from the pixel's slice.
  const TapConvCase cases[] = {
      // Remainder 8: pairs (one crossing kernel rows) and the last tap, ceil(216 / 16) as im2col.
      {16, 24, 3, 1, 1, 9 + 5, "int8"},
      {16, 20, 3, 1, 0, 9 + 3, "bf16"},  // remainder 4: runs of 3 taps along each kernel row
      // Strided, remainder 8: each kernel row's pair, ceil(96 / 16) as im2col; every tile reads
      // compact images of its residue's anchors.
      {16, 24, 2, 2, 0, 4 + 2, "int8"},
      {16, 40, 5, 1, 2, 50 + 13, "bf16"},  // two full chunks, remainder 8 (Inception's 5x5)
  };
  for (const TapConvCase& c : cases) {
    SCOPED_TRACE(c.describe());
    const Graph model = c.model();
    const Config config = array_config(c.array, c.array);
    const CompileOptions options = TapConvCase::options();
    Program p = compile(model, config, options);
    std::size_t loads = 0, tiles_mn = 0;  // one ACTIVATE per (M tile, N tile)
    for (const Instruction& inst : p.instructions) {
      tiles_mn += inst.op == Opcode::kActivate;
      loads += inst.op == Opcode::kLoadWeights;
    }
    // (Unpacked: k x k x ceil(C / array) tiles.)
    EXPECT_EQ(loads, tiles_mn * c.tiles);
    expect_correct(model, config, options, 4);
  }
}

TEST(CompilerTest, StridedPointwiseConvLoadsOnlyThePixelsItReads) {
  // A 1x1 stride-2 conv from HBM: the band holds every second pixel of every second row, so
  // each M tile streams consecutive UB rows in one MATMUL per weight tile.
  for (const char* dtype : {"int8", "bf16"}) {
    SCOPED_TRACE(dtype);
    for (std::uint32_t pad : {0u, 1u}) {
      Graph model = conv_model(2, 9, 11, 20, 1, 2, pad, 12, dtype);
      Config config = array_config(16, 16);
      CompileOptions options;
      options.max_m_tile = 13;
      Program p = compile(model, config, options);
      std::size_t loads = 0, matmuls = 0;
      for (const Instruction& inst : p.instructions) {
        loads += inst.op == Opcode::kLoadWeights;
        if (inst.op != Opcode::kMatmul) continue;
        ++matmuls;
        EXPECT_EQ(inst.ub_stride, 1u);
      }
      EXPECT_EQ(matmuls, loads);
      expect_correct(model, config, options, 4);
    }
  }
}

// A matmul's input with several K tiles (K = 40 or 48 on 16 rows: 3 chunks) from HBM sits K
// chunk by K chunk in its slot (models/README.md, "Matmul input layout"), its MATMULs reading
// consecutive UB rows, by one rule: with ideal memory each chunk is a transfer of its own
// (and with N = 20, two N tiles, a partial chunk too); with `simple` memory the whole chunks
// are one transfer, so only K = 48 (no partial chunk) takes the layout. Otherwise (simple
// K = 40, a DRAM preset) rows stay whole, 33 UB rows apart: the least stride of at least
// ceil(K / 16) = 3 that is 1 modulo the 32 UB banks (input_row_stride), so a stream's bank
// steps by one a cycle.
TEST(CompilerTest, MatmulInputsKChunkByKChunkByOneRule) {
  struct Case {
    const char* preset;
    std::uint32_t k;
    bool chunks;              // MATMULs read consecutive rows
    std::size_t input_loads;  // over the 3 M tiles
  };
  for (const Case& c : {Case{"ideal", 40, true, 9}, Case{"ideal", 48, true, 9},
                        Case{"simple", 48, true, 3}, Case{"simple", 40, false, 3},
                        Case{"hbm2", 48, false, 3}}) {
    for (const char* dtype : {"int8", "bf16"}) {
      SCOPED_TRACE(std::string(c.preset) + " K = " + std::to_string(c.k) + " " + dtype);
      Graph model = gemm_model(37, c.k, 20, dtype);
      Config config = array_config(16, 16);
      config.hbm.preset = c.preset;
      CompileOptions options;
      options.max_m_tile = 13;
      Program p = compile(model, config, options);
      std::size_t loads = 0;
      for (const Instruction& inst : p.instructions) {
        if (inst.op == Opcode::kDmaLoad && !(inst.flags & kFlagWeights)) ++loads;
        if (inst.op == Opcode::kMatmul) {
          EXPECT_EQ(inst.ub_stride, c.chunks ? 1u : 33u);
        }
      }
      EXPECT_EQ(loads, c.input_loads);
      expect_correct(model, config, options, 2);
    }
  }
}

Graph chain_model(const char* input) {
  return parse_model_json(std::string(R"({"batch": 2, "input": )") + input +
                              R"(, "seed": 5, "layers": [
      {"name": "a", "type": "conv2d", "out_channels": 20, "kernel": 3, "padding": 1,
       "activation": "relu"},
      {"name": "b", "type": "conv2d", "out_channels": 16, "kernel": 3, "stride": 1,
       "padding": 1, "activation": "relu"},
      {"name": "p", "type": "maxpool2d", "kernel": 2},
      {"name": "c", "type": "conv2d", "out_channels": 10, "kernel": 3, "padding": 1}]})",
                          "chain.json");
}

TEST(CompilerTest, ResidentConvPoolChainsAreBitExact) {
  for (std::uint32_t array : {16u, 8u}) {
    SCOPED_TRACE("array " + std::to_string(array));
    Config config = array_config(array, array);
    Graph model = chain_model("[10, 10, 12]");
    Program resident = compile(model, config);
    // a, b and p stay in the UB (p reuses the rows a had, so stale rows in
    // p's zero border would show); only c's output reaches HBM.
    EXPECT_EQ(checked_layers(resident), 1u);
    expect_correct(model, config, {}, 6);
    CompileOptions partial;
    partial.max_m_tile = 7;  // tiles cross output rows: per-row-segment MATMULs and ACTIVATEs
    expect_correct(model, config, partial, 4);
    CompileOptions round_trip;
    round_trip.resident_activations = false;
    Program hbm = compile(model, config, round_trip);
    EXPECT_EQ(checked_layers(hbm), 4u);
    expect_correct(model, config, round_trip, 2);
    // The final outputs agree bit for bit.
    EXPECT_EQ(resident.layers.back().expected_int8, hbm.layers.back().expected_int8);
    EXPECT_LT(hbm_bytes_moved(resident), hbm_bytes_moved(hbm));
  }
  // A pool reading its input from HBM writes its output row by row into the padded resident
  // layout of the next convolution.
  Graph pool_first = parse_model_json(R"({"batch": 2, "input": [9, 8, 20], "layers": [
      {"name": "p", "type": "maxpool2d", "kernel": 3, "stride": 2},
      {"name": "c", "type": "conv2d", "out_channels": 9, "kernel": 3, "padding": 1}]})",
                                      "pool_first.json");
  Config config = array_config(8, 8);
  EXPECT_EQ(checked_layers(compile(pool_first, config)), 1u);
  expect_correct(pool_first, config, {}, 6);
}

TEST(CompilerTest, ResidentDenseChainAndBf16) {
  Graph mlp = parse_model_json(R"({"batch": 5, "input": [1, 1, 40], "layers": [
      {"name": "f1", "type": "dense", "units": 30, "activation": "relu"},
      {"name": "f2", "type": "dense", "units": 20, "activation": "relu"},
      {"name": "f3", "type": "dense", "units": 9}]})",
                               "mlp.json");
  Config config = array_config(8, 8);
  Program p = compile(mlp, config);
  EXPECT_EQ(checked_layers(p), 1u);
  // A dense layer on resident 1 x 1 inputs reads all samples of a chunk in one MATMUL:
  // f2 and f3 have 4 and 3 input chunks x 4 and 3 N tiles of 8 columns.
  std::size_t matmuls = 0;
  for (const Instruction& inst : p.instructions) matmuls += inst.op == Opcode::kMatmul;
  EXPECT_EQ(matmuls, 5u * 4 + 4u * 3 + 3u * 2);  // f1: 5 K x 4 N tiles (rows path)
  expect_correct(mlp, config, {}, 6);
  Graph bf16 = chain_model("[6, 6, 12]");
  bf16.dtype = DataType::kBf16;
  expect_correct(bf16, config, {}, 2);
}

// Two branches concatenated along channels: each producer writes its channel slice of the
// concat's storage directly (in HBM at a pixel stride, or as whole chunks of the resident
// layout), so the concat itself costs no instruction.
Graph two_branch(const char* dtype, std::uint32_t ca, std::uint32_t cb) {
  return parse_model_json(std::string(R"({"dtype": ")") + dtype + R"(", "batch": 2, "seed": 5,
    "inputs": [{"name": "x", "shape": [7, 6, 10]}, {"name": "e", "shape": [7, 6, 3]}],
    "nodes": [
      {"name": "a", "op": "conv2d", "inputs": ["x"], "out_channels": )" + std::to_string(ca) +
                              R"(, "kernel": 1, "activation": "relu"},
      {"name": "b", "op": "conv2d", "inputs": ["x"], "out_channels": )" + std::to_string(cb) +
                              R"(, "kernel": 3, "padding": 1},
      {"name": "cat", "op": "concat", "inputs": ["a", "b", "e"]},
      {"name": "c", "op": "conv2d", "inputs": ["cat"], "out_channels": 9, "kernel": 3,
       "padding": 1, "activation": "relu"},
      {"name": "p", "op": "maxpool2d", "inputs": ["c"], "kernel": 2},
      {"name": "f", "op": "flatten", "inputs": ["p"]},
      {"name": "fc", "op": "dense", "inputs": ["f"], "units": 7}],
    "outputs": ["fc", "b"]})",
                          "two_branch.json");
}

TEST(CompilerTest, ConcatBranchesWriteTheirSlicesInPlace) {
  for (std::uint32_t array : {8u, 16u}) {
    SCOPED_TRACE("array " + std::to_string(array));
    Config config = array_config(array, array);
    // Slices of whole chunks (8 + 8 + 3 on an 8-wide array) can stay on chip; a graph input
    // (e) in a concat always goes through HBM, so the concat's storage is in HBM here.
    expect_correct(two_branch("int8", 8, 8), config, {}, 4);
    expect_correct(two_branch("int8", 5, 12), config, {}, 4);
    expect_correct(two_branch("bf16", 5, 12), config, {}, 1);
    CompileOptions round_trip;
    round_trip.resident_activations = false;
    expect_correct(two_branch("int8", 8, 8), config, round_trip, 2);
  }
  // No instruction belongs to the views.
  Program p = compile(two_branch("int8", 8, 8), array_config(8, 8));
  std::vector<int> per_layer(p.layers.size(), 0);
  int layer = -1;
  for (const Instruction& inst : p.instructions) {
    if (inst.op == Opcode::kLayer) {
      layer = inst.layer;
    } else if (layer >= 0) {
      ++per_layer[std::size_t(layer)];
    }
  }
  EXPECT_EQ(p.layers[2].kind, "concat");
  EXPECT_EQ(per_layer[2], 0);
  EXPECT_EQ(p.layers[5].kind, "reshape");
  EXPECT_EQ(per_layer[5], 0);
}

// Without the graph input in the concat, aligned slices stay in the UB: only the outputs reach
// HBM.
// A conv whose input is a channel slice of a concat may pack taps, but the taps of one kernel
// row are no longer one contiguous run: each is its own segment (found by a random graph).
TEST(CompilerTest, PackedTapsOfAConcatSliceAreSeparateSegments) {
  Graph g = parse_model_json(R"({"batch": 2, "seed": 7, "inputs": [{"name": "x", "shape": [6, 5, 4]}],
    "nodes": [
      {"name": "a", "op": "conv2d", "inputs": ["x"], "out_channels": 2, "kernel": 1},
      {"name": "cat", "op": "concat", "inputs": ["a", "x"]},
      {"name": "b", "op": "conv2d", "inputs": ["a"], "out_channels": 2, "kernel": 3, "padding": 1}],
    "outputs": ["cat", "b"]})",
                             "slice.json");
  expect_correct(g, Config{}, {}, 2);
  expect_correct(g, array_config(8, 8), {}, 2);
}

// Residue images of a concat's channel slice (its pixels 28 elements apart, so one transfer per
// anchor row, each anchor a segment of the chunk's channels): a 20-channel slice at stride 2,
// chunks of 8, 8 and 4 on 8 rows (a slice takes the taps path whatever the tiles).
TEST(CompilerTest, ResidueImagesOfAConcatSliceAreBitExact) {
  Graph g = parse_model_json(R"({"batch": 2, "seed": 4,
    "inputs": [{"name": "x", "shape": [17, 19, 16]}], "nodes": [
      {"name": "a", "op": "conv2d", "inputs": ["x"], "out_channels": 20, "kernel": 3, "padding": 1},
      {"name": "b", "op": "conv2d", "inputs": ["x"], "out_channels": 8, "kernel": 1},
      {"name": "cat", "op": "concat", "inputs": ["a", "b"]},
      {"name": "d", "op": "conv2d", "inputs": ["a"], "out_channels": 12, "kernel": 3, "stride": 2,
       "padding": 1}],
    "outputs": ["cat", "d"]})",
                             "slice_residues.json");
  Config config = array_config(8, 8);
  config.hbm.preset = "ideal";
  const Program p = compile(g, config);
  std::size_t strided = 0;  // d's MATMULs
  std::string layer;
  for (const Instruction& inst : p.instructions) {
    if (inst.op == Opcode::kLayer) layer = p.layers[inst.layer].name;
    if (inst.op != Opcode::kMatmul) continue;
    if (layer == "d") {
      ++strided;
      EXPECT_EQ(inst.ub_stride, 1u) << layer;
    }
  }
  EXPECT_GT(strided, 0u);
  expect_correct(g, config, {}, 2);
}

// Whole kernel rows packed into one tile read kw x C contiguous elements per anchor: a
// 1-channel input that is also a slice of a concat (its pixels 2 elements apart) must not take
// that path. On 6..8 rows the 3x3 conv packed its kernel rows and read the concat's other
// channel (16 of 32 outputs wrong; found by a random model-parallel graph).
TEST(CompilerTest, KernelRowsOfAConcatSliceAreNotPackedWhole) {
  const Graph g = parse_model_json(R"({"dtype": "int8", "seed": 2,
    "inputs": [{"name": "x", "shape": [4, 4, 1]}], "nodes": [
      {"name": "conv", "op": "conv2d", "inputs": ["x"], "out_channels": 1, "kernel": 3, "padding": 1},
      {"name": "cat", "op": "concat", "inputs": ["conv", "x"]}], "outputs": ["cat"]})",
                                   "rows.json");
  for (std::uint32_t rows : {6u, 8u}) expect_correct(g, array_config(rows, 8), {}, 2);
}

TEST(CompilerTest, AlignedConcatStaysOnChip) {
  Graph g = parse_model_json(R"({"batch": 1, "inputs": [{"name": "x", "shape": [6, 6, 8]}],
    "nodes": [
      {"name": "a", "op": "conv2d", "inputs": ["x"], "out_channels": 8, "kernel": 1},
      {"name": "b", "op": "conv2d", "inputs": ["x"], "out_channels": 5, "kernel": 3, "padding": 1},
      {"name": "cat", "op": "concat", "inputs": ["a", "b"]},
      {"name": "c", "op": "conv2d", "inputs": ["cat"], "out_channels": 6, "kernel": 3,
       "padding": 1}],
    "outputs": ["c"]})",
                             "aligned.json");
  Config config = array_config(8, 8);
  Program p = compile(g, config);
  EXPECT_EQ(checked_layers(p), 1u);  // c
  expect_correct(g, config, {}, 6);
  // On a 16-wide array a's 8 channels end mid-chunk: the concat goes through HBM.
  Program wide = compile(g, array_config(16, 16));
  EXPECT_EQ(checked_layers(wide), 2u);  // cat, c
  expect_correct(g, array_config(16, 16), {}, 4);
}

// conv -> ReLU -> conv, added to the block's input, ReLU: the skip tensor (stem's output)
// lives until the add, two nodes later.
Graph residual_block(const char* dtype, std::uint32_t hw, std::uint32_t c) {
  const std::string C = std::to_string(c);
  return parse_model_json(std::string(R"({"dtype": ")") + dtype + R"(", "batch": 2, "seed": 11,
    "inputs": [{"name": "image", "shape": [)" + std::to_string(hw) + ", " +
                              std::to_string(hw) + R"(, 5]}],
    "nodes": [
      {"name": "stem", "op": "conv2d", "inputs": ["image"], "out_channels": )" + C +
                              R"(, "kernel": 3, "padding": 1, "activation": "relu"},
      {"name": "c1", "op": "conv2d", "inputs": ["stem"], "out_channels": )" + C +
                              R"(, "kernel": 3, "padding": 1, "activation": "relu"},
      {"name": "c2", "op": "conv2d", "inputs": ["c1"], "out_channels": )" + C +
                              R"(, "kernel": 3, "padding": 1},
      {"name": "sum", "op": "add", "inputs": ["c2", "stem"]},
      {"name": "out", "op": "relu", "inputs": ["sum"]}],
    "outputs": ["out"]})",
                          "residual.json");
}

// HBM bytes the add moves (its DMA loads and stores).
std::uint64_t add_hbm_bytes(const Program& p) {
  std::uint64_t bytes = 0;
  int layer = -1;
  for (const Instruction& inst : p.instructions) {
    if (inst.op == Opcode::kLayer) layer = inst.layer;
    if (layer == 3 && (inst.op == Opcode::kDmaLoad || inst.op == Opcode::kDmaStore)) {
      bytes += std::uint64_t(inst.dma.elems) * inst.dma.segs * inst.dma.groups;
    }
  }
  return bytes;
}

TEST(CompilerTest, ResidualBlockKeepsItsSkipTensorOnChipWhenItFits) {
  Config config = array_config(8, 8);
  config.ub.capacity_bytes = 64 << 10;  // 8192 rows of 8 bytes
  Graph block = residual_block("int8", 9, 12);
  // stem's 2 x 11 x 11 x 2 chunks = 484 rows (border 1 for c1) stays in the UB through c1 and
  // c2: the add reads both inputs on chip and only stores its output (2 x 9 x 9 x 12 bytes).
  Program roomy = compile(block, config);
  EXPECT_EQ(add_hbm_bytes(roomy), 2u * 9 * 9 * 12);
  expect_correct(block, config, {}, 6);
  // With a UB too small for residency the skip tensor and c2's output come back from HBM.
  config.ub.capacity_bytes = 3 << 10;
  Program tight = compile(block, config);
  EXPECT_EQ(add_hbm_bytes(tight), 3u * 2 * 9 * 9 * 12);
  expect_correct(block, config, {}, 4);
  expect_correct(residual_block("bf16", 9, 12), array_config(8, 8), {}, 2);
  expect_correct(residual_block("int8", 6, 20), array_config(16, 16), {}, 2);
}

TEST(CompilerTest, AveragePoolingAndGlobalAveragePooling) {
  for (const char* dtype : {"int8", "bf16"}) {
    SCOPED_TRACE(dtype);
    Graph g = parse_model_json(std::string(R"({"dtype": ")") + dtype + R"(", "batch": 2,
      "inputs": [{"name": "x", "shape": [9, 7, 11]}],
      "nodes": [
        {"name": "c", "op": "conv2d", "inputs": ["x"], "out_channels": 10, "kernel": 1},
        {"name": "avg", "op": "avgpool2d", "inputs": ["c"], "kernel": 3, "stride": 2},
        {"name": "gap", "op": "global_avgpool2d", "inputs": ["c"]},
        {"name": "f", "op": "flatten", "inputs": ["gap"]},
        {"name": "fc", "op": "dense", "inputs": ["f"], "units": 6}],
      "outputs": ["avg", "fc"]})",
                               "pooling.json");
    expect_correct(g, array_config(8, 8), {}, 3);
    expect_correct(g, array_config(4, 4), {}, 1);
  }
}

// Padded pooling (ResNet's 3x3 stride-2 max pool with padding 1) reads its input's zero border:
// resident when the border is the pool's own, from HBM when a reader needs a wider one.
TEST(CompilerTest, PaddedPoolingResidentAndFromHbm) {
  for (const char* dtype : {"int8", "bf16"}) {
    SCOPED_TRACE(dtype);
    Graph stem = parse_model_json(std::string(R"({"dtype": ")") + dtype + R"(", "batch": 2,
      "inputs": [{"name": "x", "shape": [23, 21, 3]}],
      "nodes": [
        {"name": "c1", "op": "conv2d", "inputs": ["x"], "out_channels": 20, "kernel": 3,
         "stride": 2, "padding": 1, "activation": "relu"},
        {"name": "mp", "op": "maxpool2d", "inputs": ["c1"], "kernel": 3, "stride": 2,
         "padding": 1},
        {"name": "ap", "op": "avgpool2d", "inputs": ["mp"], "kernel": 3, "stride": 1,
         "padding": 1},
        {"name": "c2", "op": "conv2d", "inputs": ["ap"], "out_channels": 8, "kernel": 1}],
      "outputs": ["c2"]})",
                                  "stem.json");
    // 23x21 -> conv s2 p1 -> 12x11 -> pool 3 s2 p1 -> 6x6 -> pool 3 s1 p1 -> 6x6.
    EXPECT_EQ(stem.nodes[1].out, (Shape3{6, 6, 20}));
    EXPECT_EQ(stem.nodes[2].out, (Shape3{6, 6, 20}));
    const Config config = array_config(8, 8);
    EXPECT_EQ(checked_layers(compile(stem, config)), 1u);  // c1, mp and ap stay on chip
    expect_correct(stem, config, {}, 3);
    CompileOptions round_trip;
    round_trip.resident_activations = false;
    expect_correct(stem, config, round_trip, 2);

    // c1 carries the border of the 5x5 conv (2), wider than the pool's (1): the pool loads its
    // grid from HBM at (-1, -1).
    Graph mixed = parse_model_json(std::string(R"({"dtype": ")") + dtype + R"(", "batch": 1,
      "inputs": [{"name": "x", "shape": [17, 19, 12]}],
      "nodes": [
        {"name": "c1", "op": "conv2d", "inputs": ["x"], "out_channels": 24, "kernel": 3,
         "padding": 1, "activation": "relu"},
        {"name": "mp", "op": "maxpool2d", "inputs": ["c1"], "kernel": 3, "stride": 2,
         "padding": 1},
        {"name": "c2", "op": "conv2d", "inputs": ["c1"], "out_channels": 24, "kernel": 5,
         "stride": 2, "padding": 2},
        {"name": "s", "op": "add", "inputs": ["mp", "c2"]}],
      "outputs": ["s"]})",
                                   "mixed.json");
    expect_correct(mixed, array_config(8, 8), {}, 2);
    expect_correct(mixed, array_config(16, 16), {}, 2);
  }
}

// Every vector op as an output (through HBM) and as a resident input of the next, int8 and
// bf16: bit-exact against the reference in int8 (the reference repeats the fp32 definitions),
// within the bf16 tolerance. Each output must also vary (a stuck or zero output fails).
TEST(CompilerTest, VectorOpsMatchTheReference) {
  for (const char* dtype : {"int8", "bf16"}) {
    SCOPED_TRACE(dtype);
    Graph g = parse_model_json(std::string(R"({"dtype": ")") + dtype + R"(", "batch": 2,
      "inputs": [{"name": "x", "shape": [5, 6, 7]}, {"name": "s", "shape": [1, 6, 8]}],
      "nodes": [
        {"name": "c", "op": "conv2d", "inputs": ["x"], "out_channels": 7, "kernel": 3,
         "padding": 1, "activation": "gelu"},
        {"name": "d", "op": "conv2d", "inputs": ["x"], "out_channels": 7, "kernel": 1,
         "activation": "silu"},
        {"name": "r6", "op": "relu6", "inputs": ["x"]},
        {"name": "sg", "op": "sigmoid", "inputs": ["c"]},
        {"name": "th", "op": "tanh", "inputs": ["d"]},
        {"name": "ge", "op": "gelu", "inputs": ["x"]},
        {"name": "si", "op": "silu", "inputs": ["x"]},
        {"name": "m", "op": "mul", "inputs": ["sg", "th"]},
        {"name": "ma", "op": "mul", "inputs": ["r6", "x"], "activation": "tanh"},
        {"name": "sm", "op": "softmax", "inputs": ["m"]},
        {"name": "att", "op": "softmax", "inputs": ["s"], "causal": true},
        {"name": "att1", "op": "softmax", "inputs": ["s"], "causal": true, "mask_offset": -3},
        {"name": "cg", "op": "conv2d", "inputs": ["ge"], "out_channels": 5, "kernel": 1,
         "activation": "sigmoid"},
        {"name": "ln", "op": "layernorm", "inputs": ["c"]},
        {"name": "rms", "op": "rmsnorm", "inputs": ["ln"], "epsilon": 0.01}],
      "outputs": ["r6", "si", "ma", "sm", "att", "att1", "cg", "rms"]})",
                               "vector_ops.json");
    for (const Config& config : {array_config(8, 8), array_config(8, 16)}) {
      const Program p = compile(g, config);
      for (const LayerInfo& l : p.layers) {
        std::set<float> values(l.expected_fp32.begin(), l.expected_fp32.end());
        for (std::int8_t v : l.expected_int8) values.insert(v);
        if (!l.expected_int8.empty() || !l.expected_fp32.empty()) {
          EXPECT_GT(values.size(), 8u) << l.name;
        }
      }
      expect_correct(g, config, {}, 2);
      CompileOptions hbm_only;
      hbm_only.resident_activations = false;
      expect_correct(g, config, hbm_only, 1);
    }
  }
}

// Softmax and the norms over more channels than a UB row of a resident or staged tensor holds
// (min(R, C)): C = 20 on 8 x 8 (chunks 8, 8, 4) and C = 300 on 128 x 128 (128, 128, 44), int8
// bit-exact and bf16 within tolerance, from HBM and resident (the layer norm's output feeds a
// padded conv, so its resident rows break at the border and each VOP covers one image row),
// causal with the mask crossing chunk boundaries (row i keeps j <= i + C / 2).
TEST(CompilerTest, RowOpsOverSeveralChunksMatchTheReference) {
  for (const auto& [rows, C] : {std::pair<std::uint32_t, std::uint32_t>{8, 20}, {128, 300}}) {
    for (const char* dtype : {"int8", "bf16"}) {
      SCOPED_TRACE(std::string(dtype) + ", C = " + std::to_string(C));
      const std::string c = std::to_string(C);
      Graph g = parse_model_json(std::string(R"({"dtype": ")") + dtype + R"(", "batch": 2,
        "inputs": [{"name": "x", "shape": [3, 4, 6]}, {"name": "s", "shape": [1, 5, )" + c +
                                     R"(]}],
        "nodes": [
          {"name": "c", "op": "conv2d", "inputs": ["x"], "out_channels": )" + c +
                                     R"(, "kernel": 1, "activation": "gelu"},
          {"name": "sm", "op": "softmax", "inputs": ["c"]},
          {"name": "ln", "op": "layernorm", "inputs": ["c"]},
          {"name": "k", "op": "conv2d", "inputs": ["ln"], "out_channels": 5, "kernel": 3,
           "padding": 1},
          {"name": "rms", "op": "rmsnorm", "inputs": ["sm"], "epsilon": 0.01},
          {"name": "att", "op": "softmax", "inputs": ["s"], "causal": true,
           "mask_offset": )" + std::to_string(C / 2) + R"(},
          {"name": "full", "op": "softmax", "inputs": ["s"]}],
        "outputs": ["k", "rms", "att", "full"]})",
                                 "wide_rows.json");
      const Config config = array_config(rows, rows);
      const Program p = compile(g, config);
      std::uint64_t chunked = 0;
      for (const Instruction& inst : p.instructions) {
        if (inst.op == Opcode::kVop && inst.chunk_cols > 0) {
          EXPECT_EQ(inst.chunk_cols, rows);
          EXPECT_EQ(vop_chunks(inst), 3u);
          ++chunked;
        }
      }
      EXPECT_GE(chunked, 5u);  // every row op, at least one VOP each
      for (const LayerInfo& l : p.layers) {
        std::set<float> values(l.expected_fp32.begin(), l.expected_fp32.end());
        for (std::int8_t v : l.expected_int8) values.insert(v);
        if (!l.expected_int8.empty() || !l.expected_fp32.empty()) {
          EXPECT_GT(values.size(), 8u) << l.name;  // a stuck or zero output fails
        }
      }
      expect_correct(g, config, {}, 2);
      CompileOptions hbm_only;
      hbm_only.resident_activations = false;
      expect_correct(g, config, hbm_only, 1);
    }
  }
}

// When one image row's chunks do not fit the staging rows, bands hold a few pixels of one
// image row: a 1 x 7 x 20 causal softmax then layer norm on 8 x 8 with 40 UB rows. Per pixel
// 3 chunks x 2 slots x 2 operands = 12 rows (+ 6 parameter rows for the norm), so 7 pixels
// (84 rows) do not fit and the bands take 3 pixels (softmax: 36 rows) and 2 (norm: 30 rows); the
// mask row of a band starts at its first pixel.
TEST(CompilerTest, RowOpsInPixelBandsWhenAnImageRowDoesNotFit) {
  for (const char* dtype : {"int8", "bf16"}) {
    SCOPED_TRACE(dtype);
    Graph g = parse_model_json(std::string(R"({"dtype": ")") + dtype + R"(", "batch": 2,
      "inputs": [{"name": "s", "shape": [1, 7, 20]}],
      "nodes": [{"name": "att", "op": "softmax", "inputs": ["s"], "causal": true,
                 "mask_offset": 9},
                {"name": "ln", "op": "layernorm", "inputs": ["att"]}],
      "outputs": ["att", "ln"]})",
                               "pixel_bands.json");
    Config config = array_config(8, 8);
    config.ub.capacity_bytes = 40 * 8 * (std::string(dtype) == "int8" ? 1 : 2);
    const Program p = compile(g, config);
    std::vector<std::uint32_t> softmax_rows, norm_rows;
    for (const Instruction& inst : p.instructions) {
      if (inst.op != Opcode::kVop) continue;
      (inst.kind == VopKind::kSoftmax ? softmax_rows : norm_rows).push_back(inst.rows);
    }
    EXPECT_EQ(softmax_rows, (std::vector<std::uint32_t>{3, 3, 1, 3, 3, 1}));
    EXPECT_EQ(norm_rows, (std::vector<std::uint32_t>{2, 2, 2, 1, 2, 2, 2, 1}));
    expect_correct(g, config, {}, 2);
  }
}

// The causal mask by hand: softmax of a 1 x 4 x 4 tensor of equal values keeps columns
// j <= i + offset of row i, each kept column 1 / (kept count); int8 output scale maps the
// largest (1.0) to 100, so rows hold 100, 50 50, 33 33 33, 25 25 25 25 with offset 0.
TEST(CompilerTest, CausalSoftmaxOfEqualValuesByHand) {
  // The kernel by hand, then the machine against it on generated data.
  const std::vector<float> y = reference_softmax(std::vector<float>(16, 0.5f), 4, true, 0, 4);
  const std::vector<float> want = {1,        0,        0,        0,    0.5f, 0.5f, 0,    0,
                                   1 / 3.0f, 1 / 3.0f, 1 / 3.0f, 0,    0.25f, 0.25f, 0.25f, 0.25f};
  for (std::size_t i = 0; i < 16; ++i) EXPECT_FLOAT_EQ(y[i], want[i]) << i;
  const std::vector<float> shifted = reference_softmax(std::vector<float>(16, 0.5f), 4, true, -1, 4);
  for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(shifted[i], 0.0f);  // row 0 keeps nothing
  EXPECT_EQ(shifted[4], 1.0f);
  expect_correct(parse_model_json(R"({"inputs": [{"name": "s", "shape": [1, 4, 4]}],
      "nodes": [{"name": "sm", "op": "softmax", "inputs": ["s"], "causal": true}],
      "outputs": ["sm"]})",
                                  "causal.json"),
                 array_config(8, 8), {}, 1);
}

TEST(CompilerTest, ResidentProgramsMoveFewerHbmBytes) {
  Graph model = load_model(kModels + "convnet.json");
  Config config = array_config(16, 16);
  CompileOptions round_trip;
  round_trip.resident_activations = false;
  Program resident = compile(model, config), hbm = compile(model, config, round_trip);
  // The resident tensors are written and read back in the round trip: conv1 32x32x32,
  // pool1 16x16x32, conv2 16x16x64, fc1 128 (pool2 feeds a dense layer that flattens it, so
  // it goes through HBM either way).
  EXPECT_GE(hbm_bytes_moved(hbm) - hbm_bytes_moved(resident),
            2u * (32 * 32 * 32 + 16 * 16 * 32 + 16 * 16 * 64 + 128));
  EXPECT_EQ(checked_layers(resident), 2u);  // pool2, fc2
  expect_correct(model, config, {}, 2);
}

TEST(CompilerTest, ConvNetOn16x16And8x8) {
  Graph model = load_model(kModels + "convnet.json");
  expect_correct(model, array_config(16, 16), {}, 1);
  expect_correct(model, array_config(8, 8), {}, 1);
}

TEST(CompilerTest, PoolChannelChunksBandsAndPaddedConsumer) {
  // 20 channels on an 8-element UB row: chunks of 8, 8, 4. A 100-row UB forces one output row
  // per band: 2 x (3 x 9) + 2 x 4 = 62 rows fit, two rows need 2 x (5 x 9) + 2 x 8 = 106.
  Graph model = parse_model_json(R"({"input": [7, 9, 20], "layers": [
      {"name": "p", "type": "maxpool2d", "kernel": 3, "stride": 2},
      {"name": "c", "type": "conv2d", "out_channels": 3, "kernel": 3, "padding": 1}]})",
                                 "pool.json");
  Config config = array_config(8, 8);
  config.ub.capacity_bytes = 100 * 8;
  Program p = compile(model, config);
  int pools = 0;
  for (const Instruction& inst : p.instructions) pools += inst.op == Opcode::kPool;
  EXPECT_EQ(pools, 3 * 3);  // 3 channel chunks x 3 output rows
  expect_correct(model, config, {}, 8);
}

TEST(CompilerTest, Bf16WithinTolerance) {
  Config config = array_config(8, 8);
  expect_correct(gemm_model(19, 40, 21, "bf16"), config);
  Graph net = parse_model_json(R"({"dtype": "bf16", "batch": 2, "input": [6, 6, 3], "layers": [
      {"name": "c", "type": "conv2d", "out_channels": 10, "kernel": 3, "padding": 1},
      {"type": "relu"},
      {"name": "p", "type": "maxpool2d", "kernel": 2},
      {"name": "d", "type": "dense", "units": 9}]})",
                               "net.json");
  expect_correct(net, config);
}

TEST(CompilerTest, BundledScaleSimTopologiesRun) {
  expect_correct(load_model(kModels + "scalesim_convnet.csv"), array_config(16, 16), {}, 0);
  expect_correct(load_model(kModels + "mlp.json"), array_config(16, 16), {}, 0);
}

TEST(CompilerTest, TimingOnlyHasTheSameInstructionsAndNoData) {
  Graph model = load_model(kModels + "convnet.json");
  Config config = array_config(16, 16);
  Program full = compile(model, config);
  CompileOptions options;
  options.timing_only = true;
  Program timing = compile(model, config, options);
  EXPECT_TRUE(timing.hbm_image.empty());
  EXPECT_FALSE(full.hbm_image.empty());
  EXPECT_EQ(timing.hbm_bytes, full.hbm_bytes);
  ASSERT_EQ(timing.instructions.size(), full.instructions.size());
  for (std::size_t i = 0; i < full.instructions.size(); ++i) {
    Instruction a = full.instructions[i], b = timing.instructions[i];
    // Only the calibrated requantiser differs.
    a.multiplier = b.multiplier;
    a.shift = b.shift;
    EXPECT_TRUE(a == b) << "instruction " << i;
  }
  for (const LayerInfo& l : timing.layers) {
    EXPECT_TRUE(l.expected_int8.empty());
    EXPECT_TRUE(l.expected_fp32.empty());
  }
}

TEST(CompilerTest, SeedMakesTheDataDeterministic) {
  Graph model = gemm_model(5, 6, 7);
  Config config = array_config(8, 8);
  Program a = compile(model, config), b = compile(model, config);
  CompileOptions options;
  options.seed = 99;
  Program c = compile(model, config, options);
  ASSERT_EQ(a.hbm_image.size(), 2u);  // input, weights
  EXPECT_EQ(a.hbm_image[0].bytes, b.hbm_image[0].bytes);
  EXPECT_NE(a.hbm_image[0].bytes, c.hbm_image[0].bytes);
}

TEST(CompilerTest, TinyUnifiedBufferSaysWhatWouldFit) {
  Graph model = load_model(kModels + "convnet.json");
  Config config = array_config(16, 16);
  config.mxu.weight_fifo_tiles = 0;  // weights staged in the UB
  // conv1: K = 3 * 3 * 3 = 27 -> 2 UB rows per patch. Smallest tile: 2 x 2 (patches)
  // + 2 x 16 (weight staging) + 8 (bank spacing) + 2 x 1 (output staging) = 46 rows of 16
  // bytes = 736 bytes.
  config.ub.capacity_bytes = 45 * 16;
  try {
    compile(model, config);
    ADD_FAILURE() << "no CompileError";
  } catch (const CompileError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("node 0 'conv1'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("46 unified-buffer rows"), std::string::npos) << msg;
    EXPECT_NE(msg.find("holds 45 rows"), std::string::npos) << msg;
    EXPECT_NE(msg.find("ub.capacity_bytes >= 736"), std::string::npos) << msg;
  }
  Graph conv1 = parse_model_json(R"({"input": [6, 6, 3], "layers": [
      {"name": "conv1", "type": "conv2d", "out_channels": 16, "kernel": 3, "padding": 1}]})",
                                 "c.json");
  config.ub.capacity_bytes = 736;
  expect_correct(conv1, config, {}, 1);
}

// A dilated depthwise conv takes the taps path whatever the UB: its smallest tile needs the
// band of one output row of pixels. 3x3 with dilation 2 spans 5 input rows of 40 + 2 x 2
// padded pixels, in 2 images (blocks of 8 of the 16 channels on 8 x 8): 5 x 44 x 2 = 440 rows,
// double-buffered, + 2 x 8 + 4 (weight staging and bank spacing) + 2 x 1 (output staging) =
// 902 rows of 8 bytes.
TEST(CompilerTest, TapByTapConvInATinyUnifiedBufferSaysWhatWouldFit) {
  const Graph model = parse_model_json(R"({"input": [10, 40, 16], "layers": [
      {"name": "dw", "type": "conv2d", "out_channels": 16, "kernel": 3, "dilation": 2,
       "padding": 2, "groups": 16}]})",
                                       "dw.json");
  Config config = array_config(8, 8);
  config.mxu.weight_fifo_tiles = 0;
  config.ub.capacity_bytes = 901 * 8;
  try {
    compile(model, config);
    ADD_FAILURE() << "no CompileError";
  } catch (const CompileError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("node 0 'dw'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("needs 2 x 440 rows (the input band of one output pixel"),
              std::string::npos)
        << msg;
    EXPECT_NE(msg.find("= 902 unified-buffer rows"), std::string::npos) << msg;
    EXPECT_NE(msg.find("ub.capacity_bytes >= 7216"), std::string::npos) << msg;
  }
  config.ub.capacity_bytes = 902 * 8;
  expect_correct(model, config, {}, 1);
}

TEST(CompilerTest, TooLittleHbmOrAccumulatorIsAnError) {
  Config config = array_config(8, 8);
  config.hbm.capacity_bytes = 1000;
  EXPECT_THROW(compile(gemm_model(64, 64, 64), config), CompileError);
  config = array_config(8, 8);
  config.acc.capacity_bytes = 2 * 8 * 4;  // two accumulator rows
  try {
    // One K tile per output tile: three accumulator slots of at least one row.
    compile(gemm_model(4, 4, 4), config);
    ADD_FAILURE() << "no CompileError";
  } catch (const CompileError& e) {
    EXPECT_NE(std::string(e.what()).find("acc.capacity_bytes >= 96"), std::string::npos)
        << e.what();
  }
}

// The functional-run estimate refuses, from shapes alone, what would run for many minutes or
// exhaust the host; measured runs stay below it (tools/compiler/estimate.cc).
TEST(RunEstimate, HugeMatmulExceedsTheTimeLimitSmallOnesDoNot) {
  const Config config;
  // 8192^3: 2^39 MACs / 1e9 per second (reference) + / 4e9 (fast MXU) = 687 s, 11 min. (4096^3
  // int8 once compiled for ten minutes; now it compiles in about 12 s and is allowed.)
  const RunEstimate huge = estimate_functional_run(gemm_model(8192, 8192, 8192), config, false);
  EXPECT_GT(huge.seconds, kMaxFunctionalRunSeconds);
  EXPECT_EQ(exceeds_functional_limits(huge), "would take about 11 min (limit 5 min)");
  // 1024^3 runs in about 0.7 s using 38 MB (tpusim_bench matmul1024-check on a busy machine);
  // the estimate errs above both.
  const RunEstimate small = estimate_functional_run(gemm_model(1024, 1024, 1024), config, false);
  EXPECT_GT(small.seconds, 0.7);
  EXPECT_LT(small.seconds, 30);
  EXPECT_GT(small.host_bytes, 38e6);
  EXPECT_LT(small.host_bytes, 100e6);
  EXPECT_EQ(exceeds_functional_limits(small), "");
  // The PE model is slower than the fast one.
  EXPECT_GT(estimate_functional_run(gemm_model(1024, 1024, 1024), config, true).seconds,
            small.seconds);
}

TEST(RunEstimate, ProgramsCountTheirDeclaredHbm) {
  Program p;
  p.hbm_bytes = std::uint64_t(4) << 30;  // a 21-byte assembly file can declare this
  const std::string why = exceeds_functional_limits(estimate_functional_run(p, Config{}, false));
  EXPECT_EQ(why, "needs about 4.04 GiB of host memory (limit 4.00 GiB)");
  p.hbm_bytes = std::uint64_t(1) << 30;
  EXPECT_EQ(exceeds_functional_limits(estimate_functional_run(p, Config{}, false)), "");
}

// A grouped conv's mapping: groups per weight tile are min(cw / cg, cw / ng) whole groups.
TEST(CompilerTest, GroupMapPacksWholeGroupsIntoATile) {
  // 3x3 depthwise on 128 x 128: all 128 groups in one block, the dense paths with zeros (9
  // tiles of 128 x 128, one tap each), stored with their zeros: 9 x 128 x 128 elements.
  GroupMap dw = group_map(128, 128, 128, 128);
  EXPECT_EQ(dw.per_block, 128u);
  EXPECT_EQ(dw.blocks, 1u);
  EXPECT_EQ(stored_weights(dw, 9), 9u * 128 * 128);
  // 20 channels on 8 x 8: blocks of 8, 8 and 4 groups.
  GroupMap small = group_map(20, 20, 20, 8);
  EXPECT_EQ(small.per_block, 8u);
  EXPECT_EQ(small.blocks, 3u);
  EXPECT_EQ(small.block_in(2), 4u);
  EXPECT_EQ(stored_weights(small, 9), 9u * (64 + 64 + 16));
  // Multiplier 2 (12 -> 24): the columns bind, 4 groups (4 rows, 8 columns) per tile.
  EXPECT_EQ(group_map(12, 24, 12, 8).per_block, 4u);
  // Groups wider than the array: one group per block, split into dense tiles. cg = 10 on 8
  // rows: chunks of 8 and 2; ng = 9 on 8 columns: N tiles of 8 and 1; 9 taps x 2 chunks each.
  GroupMap wide = group_map(20, 18, 2, 8);
  EXPECT_EQ(wide.per_block, 1u);
  EXPECT_EQ(wide.blocks, 2u);
  const Taps g{3, 3, 1, 1, 5, 20, 5, 5, 7};
  const GroupedPlan gp = grouped_plan(g, wide, 8, 8, false);
  ASSERT_EQ(gp.ntiles.size(), 4u);
  EXPECT_EQ(gp.KT, 18u);
  ASSERT_EQ(gp.plan.ktiles.size(), 4u * 18);
  EXPECT_EQ(gp.plan.images.size(), 4u);  // channels 0-7, 8-9, 10-17, 18-19
  EXPECT_EQ(gp.plan.images[3].c0, 18u);
  EXPECT_EQ(gp.ntiles[3].n0, 9u + 8);
  EXPECT_EQ(gp.ntiles[3].nts, 1u);
  // N tile 2 (group 1) starts with tap (0, 0) of channels 10-17: dense K row 10.
  EXPECT_EQ(gp.plan.ktiles[2 * 18].k0, 10u);
  EXPECT_EQ(gp.plan.ktiles[2 * 18 + 1].kts, 2u);
}

// Dilated, grouped and depthwise convs, strided and padded, and conv1d, on arrays they do not
// divide: bit-exact in int8, within tolerance in bf16; the weight tiles per M tile are counted
// by hand and their used PEs (rows x cols / blocks) are exactly K x N per M tile, the
// non-zero weights, however the tiles pack the groups.
TEST(CompilerTest, GroupedAndDilatedConvsAreBitExact) {
  struct Case {
    std::uint32_t array, batch, h, w, c, n, k, s, p, d, groups, tiles;
    const char* dtype;
    bool one_d;
  };
  const Case cases[] = {
      // Depthwise, 20 channels on 8: blocks of 8, 8 and 4 groups x 9 taps.
      {8, 2, 7, 9, 20, 20, 3, 1, 1, 1, 20, 27, "int8", false},
      {8, 1, 7, 9, 20, 20, 3, 1, 1, 1, 20, 27, "bf16", false},
      // Multiplier 2, strided: 3 blocks of 4 groups x 9 taps.
      {8, 1, 8, 8, 12, 24, 3, 2, 1, 1, 12, 27, "bf16", false},
      {8, 1, 8, 8, 12, 24, 3, 2, 1, 1, 12, 27, "int8", false},
      // Groups of 6 in, 4 out: one group per tile (6 rows, 4 cols), 4 blocks x 9 taps.
      {8, 1, 6, 7, 24, 16, 3, 1, 1, 1, 4, 36, "int8", false},
      // Groups wider than the array (10 in, 9 out): 2 blocks x 2 N tiles x 9 taps x 2 chunks.
      {8, 1, 5, 5, 20, 18, 3, 1, 1, 1, 2, 72, "int8", false},
      // Dilated dense conv, strided and padded: 9 taps of one chunk x N tiles of 8 and 2.
      {8, 2, 11, 12, 6, 10, 3, 2, 2, 2, 1, 18, "int8", false},
      {8, 1, 11, 12, 6, 10, 3, 2, 2, 2, 1, 18, "bf16", false},
      // Dilated depthwise on 32: blocks of 32 and 8 groups x 9 taps.
      {32, 1, 12, 12, 40, 40, 3, 1, 2, 2, 40, 18, "int8", false},
      // Depthwise of exactly 32 on 32: one block, the dense taps path (9 tiles).
      {32, 1, 9, 9, 32, 32, 3, 1, 1, 1, 32, 9, "bf16", false},
      // 128 on 128: one block, 9 tiles of 128 x 128 with 128 used PEs each.
      {128, 1, 10, 10, 128, 128, 3, 2, 1, 1, 128, 9, "int8", false},
      // 24 on 128: one block; im2col's 2 tiles of K = 216 beat 3 packed kernel-row tiles.
      {128, 1, 9, 9, 24, 24, 3, 1, 1, 1, 24, 2, "bf16", false},
      // 256 on 128: blocks of 128 x 9 taps.
      {128, 1, 6, 6, 256, 256, 3, 1, 1, 1, 256, 18, "int8", false},
      // conv1d, kernel 5, dilation 2, groups of 4 in and out: 2 blocks (2 and 1 groups) x 5.
      {8, 2, 1, 30, 12, 12, 5, 1, 2, 2, 3, 10, "int8", true},
      {8, 1, 1, 30, 12, 12, 5, 2, 2, 2, 3, 10, "bf16", true},
  };
  for (const Case& c : cases) {
    const std::string json =
        std::string(R"({"dtype": ")") + c.dtype + R"(", "batch": )" + std::to_string(c.batch) +
        R"(, "input": [)" + std::to_string(c.h) + ", " + std::to_string(c.w) + ", " +
        std::to_string(c.c) + R"(], "seed": 3, "layers": [{"name": "c", "type": ")" +
        (c.one_d ? "conv1d" : "conv2d") + R"(", "out_channels": )" + std::to_string(c.n) +
        R"(, "kernel": )" + std::to_string(c.k) + R"(, "stride": )" + std::to_string(c.s) +
        R"(, "padding": )" + std::to_string(c.p) + R"(, "dilation": )" + std::to_string(c.d) +
        R"(, "groups": )" + std::to_string(c.groups) + R"(, "activation": "relu"}]})";
    SCOPED_TRACE(std::to_string(c.array) + "x" + std::to_string(c.array) + ": " + json);
    const Graph model = parse_model_json(json, "grouped.json");
    const Config config = array_config(c.array, c.array);
    Program p = compile(model, config);
    std::uint64_t loads = 0, used = 0;
    for (const Instruction& inst : p.instructions) {
      if (inst.op != Opcode::kLoadWeights) continue;
      ++loads;
      used += std::uint64_t(inst.rows) * inst.cols / inst.ub_stride;
    }
    ASSERT_EQ(loads % c.tiles, 0u);
    const std::uint64_t m_tiles = loads / c.tiles;
    EXPECT_EQ(used, m_tiles * model.nodes[0].gemm_k() * c.n);
    expect_correct(model, config, {}, 2);
    CompileOptions options;
    options.max_m_tile = 13;  // tiles cross output rows and images
    expect_correct(model, config, options, 2);
  }
}

// A MobileNet-like chain: the depthwise layers read and write the resident layout when their
// blocks are whole chunks of min(R, C) channels (multiplier 1) and go through HBM otherwise.
TEST(CompilerTest, ResidentDepthwiseChainsAreBitExact) {
  for (const char* dtype : {"int8", "bf16"}) {
    const Graph model = parse_model_json(std::string(R"({"dtype": ")") + dtype +
                                             R"(", "batch": 2, "input": [9, 9, 3], "seed": 4,
        "layers": [
      {"name": "stem", "type": "conv2d", "out_channels": 16, "kernel": 3, "padding": 1,
       "activation": "relu"},
      {"name": "dw1", "type": "conv2d", "out_channels": 16, "kernel": 3, "padding": 1,
       "groups": 16, "activation": "relu"},
      {"name": "pw1", "type": "conv2d", "out_channels": 24, "kernel": 1},
      {"name": "dw2", "type": "conv2d", "out_channels": 48, "kernel": 3, "stride": 2,
       "padding": 1, "groups": 24, "activation": "relu"},
      {"name": "dil", "type": "conv2d", "out_channels": 8, "kernel": 3, "dilation": 2,
       "padding": 2}]})",
                                         "mobile.json");
    for (std::uint32_t array : {8u, 16u}) {
      SCOPED_TRACE(std::string(dtype) + " on " + std::to_string(array));
      const Config config = array_config(array, array);
      const Program resident = compile(model, config);
      CompileOptions round_trip;
      round_trip.resident_activations = false;
      const Program hbm = compile(model, config, round_trip);
      EXPECT_EQ(checked_layers(hbm), 5u);
      EXPECT_LT(checked_layers(resident), 5u);
      EXPECT_LT(hbm_bytes_moved(resident), hbm_bytes_moved(hbm));
      expect_correct(model, config, {}, 4);
      expect_correct(model, config, round_trip, 2);
    }
  }
}

// A depthwise conv over few channels reads its input from HBM, where its taps pack into full
// tiles, rather than resident, one tap per tile: 8 channels on 32 rows take runs of 3 taps
// (24 rows) per tile, 3 tiles per M tile instead of 9.
TEST(CompilerTest, FewChannelDepthwiseReadsItsInputPackedFromHbm) {
  for (const char* dtype : {"int8", "bf16"}) {
    SCOPED_TRACE(dtype);
    const Graph model = parse_model_json(std::string(R"({"dtype": ")") + dtype +
                                             R"(", "input": [12, 12, 3], "layers": [
      {"name": "stem", "type": "conv2d", "out_channels": 8, "kernel": 3, "padding": 1},
      {"name": "dw", "type": "conv2d", "out_channels": 8, "kernel": 3, "padding": 1,
       "groups": 8, "activation": "relu"},
      {"name": "pw", "type": "conv2d", "out_channels": 16, "kernel": 1}]})",
                                         "dw.json");
    const Config config = array_config(32, 32);
    const Program p = compile(model, config);
    ASSERT_EQ(p.layers.size(), 3u);
    EXPECT_GT(p.layers[0].expected_int8.size() + p.layers[0].expected_fp32.size(), 0u);
    std::uint64_t layer = 0, dw_loads = 0, activates = 0;
    for (const Instruction& inst : p.instructions) {
      if (inst.op == Opcode::kLayer) layer = inst.layer;
      if (layer != 1) continue;
      if (inst.op == Opcode::kLoadWeights) {
        ++dw_loads;
        EXPECT_EQ(inst.rows, 24u);
        EXPECT_EQ(inst.ub_stride, 8u);
      }
      activates += inst.op == Opcode::kActivate;
    }
    ASSERT_GT(activates, 0u);
    EXPECT_EQ(dw_loads, 3 * activates);  // one ACTIVATE per M tile: pw reads no border
    expect_correct(model, config, {}, 4);
  }
}

// The program core_timing_test's DepthwiseTapsStreamOneTilePerKtCycles times by hand: a 3x3
// depthwise conv over 8 channels of a 3 x 10 image on 8 x 8 is, per tap (ky, kx), one 8 x 8
// weight tile of 8 blocks and one MATMUL of the 8 output pixels from band row 10 ky + kx.
TEST(CompilerTest, DepthwiseOn8x8IsOneBlockDiagonalTilePerTap) {
  const Graph model = parse_model_json(R"({"input": [3, 10, 8], "layers": [
      {"name": "dw", "type": "conv2d", "out_channels": 8, "kernel": 3, "groups": 8}]})",
                                       "dw.json");
  const Program p = compile(model, array_config(8, 8));
  std::vector<std::uint32_t> rows, matmul_rows;
  for (const Instruction& inst : p.instructions) {
    if (inst.op == Opcode::kLoadWeights) {
      EXPECT_EQ(inst.rows, 8u);
      EXPECT_EQ(inst.cols, 8u);
      EXPECT_EQ(inst.ub_stride, 8u);  // blocks
      rows.push_back(inst.rows);
    }
    if (inst.op == Opcode::kMatmul) {
      EXPECT_EQ(inst.rows, 8u);
      EXPECT_EQ(inst.ub_stride, 1u);
      EXPECT_EQ(inst.flags & kFlagAccumulate, matmul_rows.empty() ? 0 : kFlagAccumulate);
      matmul_rows.push_back(inst.ub_row);
    }
  }
  EXPECT_EQ(rows.size(), 9u);
  EXPECT_EQ(matmul_rows, (std::vector<std::uint32_t>{0, 1, 2, 10, 11, 12, 20, 21, 22}));
  expect_correct(model, array_config(8, 8), {}, 2);
}

// LSTM steps (slices, recurrent denses, gate vector ops, the sequence's concat copies) in
// program order and in random interleavings: the semaphores order every step's hand-offs.
TEST(CompilerTest, LstmStepsAreBitExactInAnyInterleaving) {
  for (const char* dtype : {"int8", "bf16"}) {
    SCOPED_TRACE(dtype);
    const Graph g = parse_model_json(std::string(R"({"dtype": ")") + dtype + R"(", "batch": 3,
      "inputs": [{"name": "seq", "shape": [1, 4, 7]}],
      "nodes": [
        {"name": "l1", "op": "lstm", "inputs": ["seq"], "units": 6, "return_sequences": true},
        {"name": "l2", "op": "lstm", "inputs": ["l1"], "units": 9}],
      "outputs": ["l2"]})",
                                     "lstm.json");
    for (const Config& config : {array_config(8, 8), array_config(4, 4)}) {
      expect_correct(g, config, {}, 4);
      CompileOptions hbm_only;
      hbm_only.resident_activations = false;
      expect_correct(g, config, hbm_only, 1);
    }
  }
}

}  // namespace
}  // namespace tpu
