// `pe` (cycle-by-cycle systolic array) and `fast` (tile loop + computed timing) must agree on
// every cycle count and every output bit, over randomised program shapes and array sizes; both
// must also match the time-free interpreter's memory. SystemC elaborates once per process, so
// every simulation runs in a child process (tools/run/child.h).
#include <gtest/gtest.h>

#include <cstdio>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "sim/isa/semantics.h"
#include "sim/tpu_core.h"
#include "tools/compiler/lowering.h"
#include "tools/compiler/frontend.h"
#include "tools/compiler/gemm_tiling.h"
#include "tools/report/check.h"
#include "tools/run/child.h"

namespace tpu {
namespace {

std::uint64_t fnv1a(const std::vector<std::uint8_t>& bytes) {
  std::uint64_t h = 1469598103934665603ull;
  for (std::uint8_t b : bytes) h = (h ^ b) * 1099511628211ull;
  return h;
}

// The numbers a run is compared on, as one line of text ("error: ..." on failure).
std::string summarize(const RunResult& r) {
  std::ostringstream out;
  out << "total " << r.total_cycles << " hbm " << fnv1a(r.hbm_final);
  for (const LayerStats& l : r.layers) {
    out << " | " << l.first_cycle << ' ' << l.last_cycle << ' ' << l.compute_first << ' '
        << l.compute_last;
  }
  for (const UnitStats& u : r.units) {
    Cycle stalls = 0;
    for (const auto& [cause, cycles] : u.stalls) stalls += cycles;
    out << " | " << u.busy_cycles << ' ' << stalls << ' ' << u.instructions;
  }
  return out.str();
}

std::string simulate_in_child(const Config& config, const Program& program,
                              const SimOptions& options,
                              std::string (*describe)(const RunResult&, const Program&) = nullptr) {
  const ChildOutcome out = run_in_child([&] {
    RunResult r = simulate(config, program, options);
    if (options.timing_only) r.hbm_final.clear();
    return describe ? describe(r, program) : summarize(r);
  });
  return out.ok ? out.output : "error: " + out.error;
}

// Runs pe, fast and timing-only; checks they agree with each other and with interpret().
void check_agreement(const Config& config, const Program& program) {
  SimOptions fast, pe, timing;
  pe.fidelity = Fidelity::kPe;
  timing.timing_only = true;
  const std::string f = simulate_in_child(config, program, fast);
  const std::string p = simulate_in_child(config, program, pe);
  const std::string t = simulate_in_child(config, program, timing);
  ASSERT_EQ(f.rfind("error", 0), std::string::npos) << f;
  EXPECT_EQ(p, f);
  // Timing-only moves no data (its hash is of an empty memory) but must take the same cycles.
  EXPECT_EQ(t.substr(t.find(" | ")), f.substr(f.find(" | ")));
  EXPECT_EQ(t.substr(0, t.find(" hbm")), f.substr(0, f.find(" hbm")));
  const std::string expected_hbm = " hbm " + std::to_string(fnv1a(interpret(config, program).hbm));
  EXPECT_NE(f.find(expected_hbm), std::string::npos) << "fast differs from interpret()";
}

Instruction layer_instruction(std::uint16_t id) {
  Instruction i;
  i.op = Opcode::kLayer;
  i.layer = id;
  return i;
}

// A DMA of `rows` UB rows of `e` elements each between HBM address `hbm` and UB row `ub_row`.
Instruction dma_instruction(Opcode op, std::uint64_t hbm, std::uint32_t ub_row, std::uint32_t rows,
                            std::uint32_t e) {
  Instruction i;
  i.op = op;
  i.dma.hbm_addr = hbm;
  i.dma.ub_row = ub_row;
  i.dma.elems = std::uint16_t(rows * e);
  i.dma.pack = std::uint16_t(e);
  return i;
}

// Appends one random element (int8, or bf16 little-endian) to an HBM image, or zero padding.
void append_element(std::vector<std::uint8_t>& image, DataType dtype, bool valid,
                    std::mt19937& rng) {
  if (dtype == DataType::kInt8) {
    image.push_back(valid ? std::uint8_t(std::uniform_int_distribution<int>(-128, 127)(rng)) : 0);
  } else {
    const std::uint16_t b =
        valid ? fp32_to_bf16(std::uniform_real_distribution<float>(-2.0f, 2.0f)(rng)) : 0;
    image.push_back(std::uint8_t(b));
    image.push_back(std::uint8_t(b >> 8));
  }
}

// A hand-built K- and N-tiled matmul, Y = act(X W) for X: M x K, W: K x N on an R x C array:
// every weight tile is its own LOAD_WEIGHTS (K_t <= R, N_t <= C, partial edges), K tiles
// accumulate, each N tile is activated and the whole output stored. Machine parameters
// (ports, banks, queues, issue width, buffering, memory) are randomised too.
struct RandomCase {
  Config config;
  Program program;
};

RandomCase random_case(std::mt19937& rng) {
  const auto pick = [&rng](std::uint32_t lo, std::uint32_t hi) {
    return std::uniform_int_distribution<std::uint32_t>(lo, hi)(rng);
  };
  RandomCase rc;
  Config& c = rc.config;
  c.name = "random";
  c.array.rows = pick(4, 16);
  c.array.cols = pick(4, 16);
  c.mxu.double_buffer_weights = pick(0, 1) == 1;
  c.ub.capacity_bytes = 64 << 10;
  c.ub.banks = 1u << pick(0, 4);
  c.ub.read_ports = pick(1, 2);
  c.ub.write_ports = pick(1, 2);
  c.acc.capacity_bytes = 64 << 10;
  c.vector.lanes = 1u << pick(2, 4);
  c.hbm.preset = pick(0, 1) ? "ideal" : "simple";
  c.hbm.latency_ns = 20;
  c.hbm.burst_bytes = 32;
  c.hbm.max_outstanding = pick(1, 8);
  c.sequencer.issue_width = pick(1, 2);
  c.sequencer.queue_depth = pick(1, 6);
  // Weight tiles through the weight FIFO (2..4 entries) or staged in the UB.
  c.mxu.weight_fifo_tiles = pick(0, 1) ? pick(2, 4) : 0;
  const bool fifo = c.mxu.weight_fifo_tiles > 0;

  Program& p = rc.program;
  p.dtype = pick(0, 1) ? DataType::kInt8 : DataType::kBf16;
  p.array_rows = c.array.rows;
  p.array_cols = c.array.cols;
  const std::uint32_t r = c.array.rows, cols = c.array.cols, e = c.ub_row_elems();
  const std::uint32_t eb = element_bytes(p.dtype);
  const std::uint32_t m = pick(1, 40), k = pick(1, r * 5 / 2), n = pick(1, cols * 5 / 2);
  const std::uint32_t nk = std::uint32_t(ceil_div(k, r)), nn = std::uint32_t(ceil_div(n, cols));
  const auto k_t = [&](std::uint32_t kc) { return std::min(r, k - kc * r); };
  const auto n_t = [&](std::uint32_t nc) { return std::min(cols, n - nc * cols); };

  // HBM: X chunks (M rows of E elements), weight tiles (K_t rows of E), then the output.
  std::vector<std::uint8_t> image;
  const auto element = [&](bool valid) { append_element(image, p.dtype, valid, rng); };
  std::vector<std::uint64_t> x_addr, w_addr;
  for (std::uint32_t kc = 0; kc < nk; ++kc) {
    x_addr.push_back(image.size());
    for (std::uint32_t i = 0; i < m * e; ++i) element(i % e < k_t(kc));
  }
  for (std::uint32_t nc = 0; nc < nn; ++nc) {
    for (std::uint32_t kc = 0; kc < nk; ++kc) {
      w_addr.push_back(image.size());
      for (std::uint32_t i = 0; i < k_t(kc) * e; ++i) element(i % e < n_t(nc));
    }
  }
  const std::uint64_t out_addr = image.size();
  p.hbm_bytes = out_addr + std::uint64_t(nn) * m * e * eb;
  p.hbm_image.push_back(HbmSegment{"inputs", 0, image});
  p.layers = {LayerInfo{"load", "dma", 0, {}, {}, {}},
              LayerInfo{"compute", "matmul", std::uint64_t(m) * k * n, {}, {}, {}},
              LayerInfo{"store", "dma", 0, {}, {}, {}}};

  // UB: X chunks, weight tiles, output rows.
  const std::uint32_t w_base = nk * m, o_base = w_base + nk * nn * r;
  std::vector<Instruction> code;  // moved into p.instructions at the end
  const auto layer = [&code](std::uint16_t id) { code.push_back(layer_instruction(id)); };
  const auto dma = dma_instruction;
  layer(0);
  for (std::uint32_t kc = 0; kc < nk; ++kc) {
    code.push_back(dma(Opcode::kDmaLoad, x_addr[kc], kc * m, m, e));
  }
  // Weight FIFO fill t (waits for a free entry, i.e. read t - depth, which must come before it
  // in program order): the first `depth` before the loop, then fill t + depth - 1 before read t.
  const std::uint32_t depth = c.mxu.weight_fifo_tiles;
  const auto fill = [&](std::uint32_t t) {
    if (t >= nk * nn) return;
    code.push_back(dma(Opcode::kDmaLoad, w_addr[t], 0, k_t(t % nk), e));
    code.back().flags = kFlagWeights;
  };
  if (fifo) {
    // The FIFO orders every weight tile: a LOAD_WEIGHTS waits for its fill, so only the inputs
    // need a semaphore.
    code.back().signal = 0b10;  // s1: inputs staged
    for (std::uint32_t t = 0; t < depth; ++t) fill(t);
  } else {
    for (std::uint32_t t = 0; t < nk * nn; ++t) {
      code.push_back(dma(Opcode::kDmaLoad, w_addr[t], w_base + t * r, k_t(t % nk), e));
    }
    code.back().signal = 0b11;  // s0: weights staged, s1: inputs staged
  }
  layer(1);
  for (std::uint32_t nc = 0; nc < nn; ++nc) {
    for (std::uint32_t kc = 0; kc < nk; ++kc) {
      Instruction lw;
      lw.op = Opcode::kLoadWeights;
      lw.rows = k_t(kc);
      lw.cols = std::uint16_t(n_t(nc));
      if (fifo) {
        const std::uint32_t t = nc * nk + kc;
        if (t > 0) fill(t + depth - 1);
        lw.flags = kFlagFifo;
      } else {
        lw.ub_row = w_base + (nc * nk + kc) * r;
        if (nc == 0 && kc == 0) lw.wait = 0b01;
      }
      code.push_back(lw);
      Instruction mm;
      mm.op = Opcode::kMatmul;
      mm.ub_row = kc * m;
      mm.rows = m;
      mm.acc_row = nc * m;
      if (kc > 0) mm.flags = kFlagAccumulate;
      if (nc == 0 && kc == 0) mm.wait = 0b10;
      if (kc == nk - 1) mm.signal = 0b100;  // s2: an N tile's sums are complete
      code.push_back(mm);
    }
    Instruction act;
    act.op = Opcode::kActivate;
    act.acc_row = nc * m;
    act.rows = m;
    act.cols = std::uint16_t(n_t(nc));
    act.ub_row = o_base + nc * m;
    act.func = pick(0, 1) ? Activation::kRelu : Activation::kNone;
    act.shift = std::uint8_t(pick(0, 8));
    act.wait = 0b100;
    if (nc == nn - 1) act.signal = 0b1000;  // s3: output staged
    code.push_back(act);
  }
  layer(2);
  Instruction store = dma(Opcode::kDmaStore, out_addr, o_base, nn * m, e);
  store.wait = 0b1000;
  code.push_back(store);
  Instruction halt;
  halt.op = Opcode::kHalt;
  code.push_back(halt);
  for (const Instruction& i : code) p.instructions.push_back(i);
  return rc;
}

// Back-to-back weight tiles of random K_t <= R and N_t <= C, each multiplied by one or two
// MATMULs with M = 1, M < K_t, M >= K_t + N_t - 1 or 2R <= M <= 3R rows, so that the wavefront
// release, the loader and the input stream each bind somewhere. Every
// MATMUL has accumulators and a completion semaphore of its own (streams may finish out of
// order), is activated into its own UB rows, and all of them are stored at the end.
RandomCase back_to_back_case(std::mt19937& rng) {
  const auto pick = [&rng](std::uint32_t lo, std::uint32_t hi) {
    return std::uniform_int_distribution<std::uint32_t>(lo, hi)(rng);
  };
  RandomCase rc;
  Config& c = rc.config;
  c.name = "back_to_back";
  c.array.rows = pick(2, 12);
  c.array.cols = pick(2, 12);
  c.mxu.double_buffer_weights = pick(0, 3) != 0;
  c.ub.capacity_bytes = 64 << 10;
  c.ub.banks = 1u << pick(0, 4);
  c.ub.read_ports = pick(1, 2);
  c.acc.capacity_bytes = 64 << 10;
  c.hbm.preset = "ideal";
  c.sequencer.issue_width = 2;
  c.sequencer.queue_depth = 8;

  Program& p = rc.program;
  p.dtype = pick(0, 1) ? DataType::kInt8 : DataType::kBf16;
  p.array_rows = c.array.rows;
  p.array_cols = c.array.cols;
  const std::uint32_t r = c.array.rows, cols = c.array.cols, e = c.ub_row_elems();
  const std::uint32_t eb = element_bytes(p.dtype);

  // Semaphore 0: data staged; 1 .. 14: MATMUL i + 1 done; 15: outputs staged.
  constexpr std::uint32_t kMaxMatmuls = 14;
  struct Tile {
    std::uint32_t k, n;
    std::vector<std::uint32_t> m;  // rows of each MATMUL on the tile
  };
  std::vector<Tile> tiles(pick(3, 8));
  std::uint32_t matmuls = 0;
  for (Tile& t : tiles) {
    t.k = pick(1, r);
    t.n = pick(1, cols);
    for (std::uint32_t i = pick(1, 2); i > 0 && matmuls < kMaxMatmuls; --i, ++matmuls) {
      switch (pick(0, 3)) {
        case 0: t.m.push_back(1); break;
        case 1: t.m.push_back(pick(1, std::max(1u, t.k - 1))); break;
        case 2: t.m.push_back(pick(t.k + t.n - 1, t.k + t.n + 3)); break;
        // Long enough that the next tile has loaded long before: the reload after it waits
        // for its release.
        default: t.m.push_back(pick(2 * r, 3 * r)); break;
      }
    }
  }
  while (tiles.back().m.empty()) tiles.pop_back();

  // HBM: each MATMUL's X (M rows of E elements, K_t valid), each tile (K_t rows, N_t valid),
  // then the outputs. UB: the same order, then the output rows.
  std::vector<std::uint8_t> image;
  std::vector<Instruction> code;  // moved into p.instructions at the end
  code.push_back(layer_instruction(0));
  std::uint32_t ub_row = 0;
  std::vector<std::uint32_t> x_row, w_row;
  for (const Tile& t : tiles) {
    for (std::uint32_t m : t.m) {
      code.push_back(dma_instruction(Opcode::kDmaLoad, image.size(), ub_row, m, e));
      for (std::uint32_t i = 0; i < m * e; ++i) append_element(image, p.dtype, i % e < t.k, rng);
      x_row.push_back(ub_row);
      ub_row += m;
    }
  }
  for (const Tile& t : tiles) {
    code.push_back(dma_instruction(Opcode::kDmaLoad, image.size(), ub_row, t.k, e));
    for (std::uint32_t i = 0; i < t.k * e; ++i) append_element(image, p.dtype, i % e < t.n, rng);
    w_row.push_back(ub_row);
    ub_row += t.k;
  }
  code.back().signal = 1;
  const std::uint64_t out_addr = image.size();
  const std::uint32_t o_base = ub_row;
  p.hbm_image.push_back(HbmSegment{"inputs", 0, image});
  p.layers = {LayerInfo{"load", "dma", 0, {}, {}, {}},
              LayerInfo{"compute", "matmul", 0, {}, {}, {}},
              LayerInfo{"store", "dma", 0, {}, {}, {}}};

  code.push_back(layer_instruction(1));
  std::uint32_t mm = 0, acc_row = 0;
  std::vector<Instruction> activates;
  for (std::size_t ti = 0; ti < tiles.size(); ++ti) {
    const Tile& t = tiles[ti];
    Instruction lw;
    lw.op = Opcode::kLoadWeights;
    lw.ub_row = w_row[ti];
    lw.rows = t.k;
    lw.cols = std::uint16_t(t.n);
    if (ti == 0) lw.wait = 1;
    code.push_back(lw);
    for (std::uint32_t m : t.m) {
      const auto done = std::uint16_t(1u << (1 + mm));
      Instruction mmi;
      mmi.op = Opcode::kMatmul;
      mmi.ub_row = x_row[mm];
      mmi.rows = m;
      mmi.acc_row = acc_row;
      mmi.signal = done;
      code.push_back(mmi);
      Instruction act;
      act.op = Opcode::kActivate;
      act.acc_row = acc_row;
      act.rows = m;
      act.cols = std::uint16_t(t.n);
      act.ub_row = o_base + acc_row;
      act.shift = std::uint8_t(pick(0, 8));
      act.wait = done;
      activates.push_back(act);
      acc_row += m;
      ++mm;
    }
  }
  activates.back().signal = 1u << 15;
  code.insert(code.end(), activates.begin(), activates.end());
  code.push_back(layer_instruction(2));
  Instruction store = dma_instruction(Opcode::kDmaStore, out_addr, o_base, acc_row, e);
  store.wait = 1u << 15;
  code.push_back(store);
  Instruction halt;
  halt.op = Opcode::kHalt;
  code.push_back(halt);
  for (const Instruction& i : code) p.instructions.push_back(i);
  p.hbm_bytes = out_addr + std::uint64_t(acc_row) * e * eb;
  return rc;
}

// From a traced run of a double-buffered program: "a b", a = MATMULs whose stream started
// right behind their weights (s = e + 1, e the start of their tile's LOAD_WEIGHTS), b = loads
// that reused a buffer right at the release of the last earlier MATMUL on it (e = s + M).
std::string boundary_hits(const RunResult& r, const Program& p) {
  std::vector<Cycle> start(p.instructions.size(), 0);
  for (const InstructionTrace& t : r.trace) start[t.pc] = t.start;
  std::size_t behind_weights = 0, at_release = 0, loads = 0;
  Cycle tile_start = 0;
  std::optional<Instruction> last_mm[2];
  Cycle last_mm_start[2] = {0, 0};
  int buffer = 0;
  for (std::size_t pc = 0; pc < p.instructions.size(); ++pc) {
    const Instruction& i = p.instructions[pc];
    if (i.op == Opcode::kLoadWeights) {
      buffer = int(loads++ % 2);
      tile_start = start[pc];
      if (last_mm[buffer] && start[pc] == last_mm_start[buffer] + last_mm[buffer]->rows) {
        ++at_release;
      }
    } else if (i.op == Opcode::kMatmul) {
      if (start[pc] == tile_start + 1) ++behind_weights;
      last_mm[buffer] = i;
      last_mm_start[buffer] = start[pc];
    }
  }
  return std::to_string(behind_weights) + " " + std::to_string(at_release);
}

TEST(Fidelity, RandomTiledMatmuls) {
  std::mt19937 rng(2024);
  int fifo_cases = 0;
  for (int i = 0; i < 8; ++i) {
    const RandomCase rc = random_case(rng);
    fifo_cases += rc.config.mxu.weight_fifo_tiles > 0;
    SCOPED_TRACE(::testing::Message()
                 << "case " << i << ": " << rc.config.array.rows << "x" << rc.config.array.cols
                 << " " << to_string(rc.program.dtype) << " weight_fifo_tiles "
                 << rc.config.mxu.weight_fifo_tiles << "\n"
                 << to_assembly(rc.program));
    check_agreement(rc.config, rc.program);
  }
  EXPECT_GE(fifo_cases, 2);
  EXPECT_LE(fifo_cases, 6);
}

// Also counts, over the double-buffered cases, the MATMULs that start right behind their
// weights (e + 1) and the loads that reuse a buffer right at its release (s + M): both limits of
// the diagonal wave must be exercised, where pe would throw or compute wrong sums if its
// per-PE writes did not follow the wave.
TEST(Fidelity, RandomBackToBackTiles) {
  std::mt19937 rng(6);
  std::size_t behind_weights = 0, at_release = 0;
  for (int i = 0; i < 30; ++i) {
    const RandomCase rc = back_to_back_case(rng);
    SCOPED_TRACE(::testing::Message()
                 << "case " << i << ": " << rc.config.array.rows << "x" << rc.config.array.cols
                 << " " << to_string(rc.program.dtype) << " double buffered "
                 << rc.config.mxu.double_buffer_weights << "\n"
                 << to_assembly(rc.program));
    check_agreement(rc.config, rc.program);
    if (rc.config.mxu.double_buffer_weights) {
      SimOptions traced;
      traced.trace = true;
      std::istringstream hits(simulate_in_child(rc.config, rc.program, traced, boundary_hits));
      std::size_t a = 0, b = 0;
      ASSERT_TRUE(hits >> a >> b);
      behind_weights += a;
      at_release += b;
    }
  }
  EXPECT_GE(behind_weights, 10u);
  EXPECT_GE(at_release, 3u);
  std::printf("MATMULs at e + 1: %zu, loads at s + M: %zu\n", behind_weights, at_release);
}

// Compiled models (conv, pooling, dense) on random array shapes.
TEST(Fidelity, RandomCompiledModels) {
  std::mt19937 rng(99);
  const auto pick = [&rng](std::uint32_t lo, std::uint32_t hi) {
    return std::uniform_int_distribution<std::uint32_t>(lo, hi)(rng);
  };
  for (int i = 0; i < 5; ++i) {
    Config config;
    config.array.rows = pick(4, 16);
    config.array.cols = pick(4, 16);
    config.mxu.double_buffer_weights = pick(0, 1) == 1;
    config.mxu.weight_fifo_tiles = i % 2 ? 0 : 2 + i / 2;  // the FIFO (2, 3, 4 entries) or none
    config.ub.capacity_bytes = 256 << 10;
    config.acc.capacity_bytes = 64 << 10;
    config.hbm.preset = pick(0, 1) ? "ideal" : "simple";
    const std::uint32_t hw = pick(4, 9), ch = pick(1, 5);
    std::ostringstream json;
    json << R"({"name": "random", "dtype": ")" << (pick(0, 1) ? "int8" : "bf16")
         << R"(", "input": [)" << hw << ", " << hw << ", " << ch << R"(], "seed": )" << i
         << R"(, "layers": [)"
         << R"({"name": "conv", "type": "conv2d", "out_channels": )" << pick(1, 20)
         << R"(, "kernel": )" << pick(1, 3) << R"(, "stride": 1, "padding": 1},)"
         << R"({"type": "relu"},)"
         << R"({"name": "pool", "type": "maxpool2d", "kernel": 2},)"
         << R"({"name": "fc", "type": "dense", "units": )" << pick(1, 30) << "}]}";
    SCOPED_TRACE(::testing::Message() << config.array.rows << "x" << config.array.cols << " "
                                      << json.str());
    const Program program = compile(parse_model_json(json.str(), "random"), config);
    check_agreement(config, program);
  }
}

// A conv on the rows path with one UB row per input vector (3x3 x 3 channels = 27 <= R = 32)
// and one N tile (32 outputs), small accumulators making 9 M tiles: after the first M tile
// each input transfer (an output row) signals x_ready, and the M tile's MATMUL is one per
// transfer, each waiting for it. With one DMA engine too (its transfers interleaved with the
// weight loads, one share per weight tile: here one). pe, fast and interpret() agree, outputs match the reference.
TEST(Fidelity, RowsPathMatmulsWaitForTheirOwnTransfers) {
  for (std::uint32_t engines : {3u, 1u}) {
    SCOPED_TRACE(::testing::Message() << engines << " DMA engines");
    Config config;
    config.array.rows = 32;
    config.array.cols = 32;
    config.vector.lanes = 32;
    config.acc.capacity_bytes = 16 << 10;
    config.hbm.preset = "ideal";
    config.core.dma_engines = engines;
    const Program program = compile(parse_model_json(R"({"name": "rows", "dtype": "int8",
        "input": [20, 20, 3], "seed": 3, "layers": [
        {"name": "conv", "type": "conv2d", "out_channels": 32, "kernel": 3}]})",
                                                     "rows"),
                                    config);
    // With three engines this gather-bound stem (3 kernel rows, one UB row a pixel) gathers
    // the odd output rows after M tile 0 on engine 2, which signals MXU 1's x_ready instead.
    const std::uint64_t sems = (std::uint64_t(1) << kSemXReady) |
                               (std::uint64_t(1) << (kSemFirstInput + 1 + kMxuXReady));
    std::size_t signalled = 0, waiting = 0, second = 0;
    for (const Instruction& i : program.instructions) {
      if (i.op == Opcode::kDmaLoad && (i.signal & sems)) ++signalled;
      if (i.op == Opcode::kMatmul && (i.wait & sems)) ++waiting;
      if (i.op == Opcode::kDmaLoad && !(i.flags & kFlagWeights) && i.instance == 2) {
        ++second;
        EXPECT_EQ(i.signal & sems, std::uint64_t(1) << (kSemFirstInput + 1 + kMxuXReady));
      }
    }
    // 18 x 18 outputs in M tiles of whole output rows within 128 accumulator rows / 3 slots:
    // 36 pixels, 9 tiles, each gathered by two transfers of an output row. The first tile's
    // last transfer signals its one MATMUL, each later transfer its own: 1 + 8 x 2 = 17
    // (waiting for whole M tiles: 9); the later tiles' odd rows on engine 2: 8.
    EXPECT_EQ(signalled, 17u);
    EXPECT_EQ(waiting, 17u);
    EXPECT_EQ(second, engines == 3 ? 8u : 0u);
    const CheckResult c = check_outputs(program, interpret(config, program).hbm);
    EXPECT_TRUE(c.passed) << (c.first_mismatches.empty() ? "" : c.first_mismatches[0]);
    check_agreement(config, program);
  }
}

// A random graph over one input: convolutions (some strided), residual adds of
// shape-preserving branches, channel concats, max and average pools (padded ones too), then a
// global average pool, flatten and dense head. Every tensor nobody reads is an output.
std::string random_graph_json(std::mt19937& rng, int seed, const char* dtype) {
  const auto pick = [&rng](std::uint32_t lo, std::uint32_t hi) {
    return std::uniform_int_distribution<std::uint32_t>(lo, hi)(rng);
  };
  struct T {
    std::string name;
    std::uint32_t h, w, c;
    bool read = false;
    bool non_negative = false;  // after a relu: a max pool may pad it
  };
  std::vector<T> ts = {{"x", pick(5, 9), pick(5, 9), pick(2, 9)}};
  std::ostringstream nodes;
  int id = 0;
  const auto node = [&](const std::string& body, T out) {
    nodes << (id > 0 ? ",\n" : "") << R"({"name": ")" << out.name << R"(", )" << body << "}";
    ts.push_back(out);
    ++id;
  };
  const auto name = [&] { return "n" + std::to_string(id); };
  for (int step = 0, steps = int(pick(3, 6)); step < steps; ++step) {
    const std::size_t from = pick(0, std::uint32_t(ts.size() - 1));
    const T in = ts[from];
    const int before = id;
    const std::string src = R"("inputs": [")" + in.name + R"("])";
    switch (pick(0, 4)) {
      case 0: {  // convolution, maybe strided
        std::uint32_t k = pick(1, 3);
        const std::uint32_t s = in.h > 4 && pick(0, 2) == 0 ? 2 : 1;
        const std::uint32_t pad = pick(0, k / 2), c = pick(1, 12);
        if (k > std::min(in.h, in.w) + 2 * pad) k = 1;
        const std::uint32_t oh = (in.h + 2 * pad - k) / s + 1, ow = (in.w + 2 * pad - k) / s + 1;
        node(R"("op": "conv2d", )" + src + R"(, "out_channels": )" + std::to_string(c) +
                 R"(, "kernel": )" + std::to_string(k) + R"(, "stride": )" + std::to_string(s) +
                 R"(, "padding": )" + std::to_string(pad) + R"(, "activation": "relu")",
             {name(), oh, ow, c, false, true});
        break;
      }
      case 1: {  // residual: conv 3x3 same shape, added to its input
        const std::string branch = name();
        node(R"("op": "conv2d", )" + src + R"(, "out_channels": )" + std::to_string(in.c) +
                 R"(, "kernel": 3, "padding": 1)",
             {branch, in.h, in.w, in.c, true});
        node(R"("op": "add", "inputs": [")" + branch + R"(", ")" + in.name +
                 R"("], "activation": "relu")",
             {name(), in.h, in.w, in.c, false, true});
        break;
      }
      case 2: {  // two-branch concat
        const std::string b1 = name();
        const std::uint32_t c1 = pick(1, 10);
        node(R"("op": "conv2d", )" + src + R"(, "out_channels": )" + std::to_string(c1) +
                 R"(, "kernel": 1)",
             {b1, in.h, in.w, c1, true});
        node(R"("op": "concat", "inputs": [")" + b1 + R"(", ")" + in.name + R"("])",
             {name(), in.h, in.w, c1 + in.c});
        break;
      }
      case 3:
        if (in.non_negative && pick(0, 1)) {  // ResNet's 3x3 / 2 pool with padding 1
          node(R"("op": "maxpool2d", )" + src + R"(, "kernel": 3, "stride": 2, "padding": 1)",
               {name(), (in.h - 1) / 2 + 1, (in.w - 1) / 2 + 1, in.c, false, true});
        } else if (in.h >= 2 && in.w >= 2) {
          node(R"("op": "maxpool2d", )" + src + R"(, "kernel": 2)",
               {name(), in.h / 2, in.w / 2, in.c, false, in.non_negative});
        }
        break;
      default: {
        const std::uint32_t pad = pick(0, 1);
        if (in.h + 2 * pad >= 3 && in.w + 2 * pad >= 3) {
          node(R"("op": "avgpool2d", )" + src + R"(, "kernel": 3, "stride": 1, "padding": )" +
                   std::to_string(pad),
               {name(), in.h + 2 * pad - 2, in.w + 2 * pad - 2, in.c, false, in.non_negative});
        }
        break;
      }
    }
    if (id != before) ts[from].read = true;
  }
  ts.back().read = true;
  const T last = ts.back();  // a copy: node() grows ts
  node(R"("op": "global_avgpool2d", "inputs": [")" + last.name + R"("])", {name(), 1, 1, last.c, true});
  node(R"("op": "flatten", "inputs": [")" + ts.back().name + R"("])", {name(), 1, 1, last.c, true});
  node(R"("op": "dense", "inputs": [")" + ts.back().name + R"("], "units": )" +
           std::to_string(pick(1, 12)),
       {name(), 1, 1, 1});
  std::string outputs;
  for (const T& t : ts) {
    if (!t.read && t.name != "x") outputs += std::string(outputs.empty() ? "" : ", ") + '"' + t.name + '"';
  }
  std::ostringstream json;
  json << R"({"dtype": ")" << dtype << R"(", "batch": )" << pick(1, 2) << R"(, "seed": )" << seed
       << R"(, "inputs": [{"name": "x", "shape": [)" << ts[0].h << ", " << ts[0].w << ", "
       << ts[0].c << "]}],\n\"nodes\": [" << nodes.str() << "],\n\"outputs\": [" << outputs << "]}";
  return json.str();
}

// pe == fast == interpret() on random graphs (branches, residual adds, concats, pools), and
// the outputs match the reference interpreter.
TEST(Fidelity, RandomCompiledGraphs) {
  std::mt19937 rng(7);
  const auto pick = [&rng](std::uint32_t lo, std::uint32_t hi) {
    return std::uniform_int_distribution<std::uint32_t>(lo, hi)(rng);
  };
  for (int i = 0; i < 12; ++i) {
    Config config;
    config.array.rows = pick(4, 12);
    config.array.cols = pick(4, 12);
    config.vector.lanes = pick(2, 16);
    config.mxu.double_buffer_weights = pick(0, 3) != 0;
    config.ub.capacity_bytes = pick(0, 1) ? 256 << 10 : 24 << 10;
    config.acc.capacity_bytes = 64 << 10;
    config.hbm.preset = pick(0, 1) ? "ideal" : "simple";
    const std::string json = random_graph_json(rng, i, pick(0, 2) ? "int8" : "bf16");
    SCOPED_TRACE(::testing::Message() << config.array.rows << "x" << config.array.cols << " UB "
                                      << config.ub.capacity_bytes << "\n" << json);
    const Program program = compile(parse_model_json(json, "random_graph"), config);
    check_agreement(config, program);
    const CheckResult c = check_outputs(program, interpret(config, program).hbm);
    EXPECT_TRUE(c.passed) << (c.first_mismatches.empty() ? "" : c.first_mismatches[0]);
  }
}

// pe == fast == interpret() with 2..4 MXUs (core.mxus), each GEMM's N tiles spread over them:
// random graphs and wide conv + dense chains on small arrays (several N tiles per layer), int8
// and bf16, the outputs matching the reference (what --check compares).
TEST(Fidelity, RandomCompiledModelsOnSeveralMxus) {
  std::mt19937 rng(11);
  const auto pick = [&rng](std::uint32_t lo, std::uint32_t hi) {
    return std::uniform_int_distribution<std::uint32_t>(lo, hi)(rng);
  };
  int spread = 0;  // cases with a MATMUL on an MXU other than 0
  for (int i = 0; i < 8; ++i) {
    Config config;
    config.core.mxus = pick(2, 4);
    config.array.rows = pick(4, 8);
    config.array.cols = pick(4, 8);
    config.vector.lanes = pick(2, 8);
    config.mxu.double_buffer_weights = pick(0, 3) != 0;
    config.mxu.weight_fifo_tiles = pick(2, 4);
    config.ub.banks = 1u << pick(0, 4);
    config.ub.read_ports = pick(2, 4);  // the compiler spreads a GEMM over at most one per port
    config.ub.capacity_bytes = 256 << 10;
    config.acc.capacity_bytes = 64 << 10;
    config.hbm.preset = pick(0, 1) ? "ideal" : "simple";
    const char* dtype = pick(0, 2) ? "int8" : "bf16";
    std::string json;
    if (i % 2) {
      json = random_graph_json(rng, i, dtype);
    } else {
      const std::uint32_t hw = pick(4, 8);
      std::ostringstream chain;
      chain << R"({"name": "wide", "dtype": ")" << dtype << R"(", "input": [)" << hw << ", "
            << hw << ", " << pick(1, 12) << R"(], "seed": )" << i << R"(, "layers": [)"
            << R"({"name": "conv", "type": "conv2d", "out_channels": )" << pick(9, 40)
            << R"(, "kernel": )" << pick(1, 3) << R"(, "stride": 1, "padding": 1},)"
            << R"({"type": "relu"},)"
            << R"({"name": "fc", "type": "dense", "units": )" << pick(9, 40) << "}]}";
      json = chain.str();
    }
    SCOPED_TRACE(::testing::Message() << config.core.mxus << " MXUs " << config.array.rows << "x"
                                      << config.array.cols << "\n" << json);
    const Program program = compile(parse_model_json(json, "random"), config);
    for (const Instruction& inst : program.instructions) {
      if (inst.op == Opcode::kMatmul && inst.instance > 0) {
        ++spread;
        break;
      }
    }
    check_agreement(config, program);
    const CheckResult c = check_outputs(program, interpret(config, program).hbm);
    EXPECT_TRUE(c.passed) << (c.first_mismatches.empty() ? "" : c.first_mismatches[0]);
  }
  EXPECT_GE(spread, 6);
}

// pe == fast == interpret() with 2..4 DMA engines (core.dma_engines): the compiler runs each
// GEMM's output stores on engine 1 beside the loads on engine 0 and, from three engines, the
// weight FIFO fills on engines 2 and up, ordered only by semaphores, and since data moves as
// it arrives a missing one shows as a wrong result here. Random graphs
// and conv + pool + dense chains, one or two MXUs, with and without the weight FIFO, on ideal,
// simple and DRAM memory, int8 and bf16, the outputs matching the reference.
TEST(Fidelity, RandomCompiledModelsOnTwoDmaEngines) {
  std::mt19937 rng(23);
  const auto pick = [&rng](std::uint32_t lo, std::uint32_t hi) {
    return std::uniform_int_distribution<std::uint32_t>(lo, hi)(rng);
  };
  int split = 0;  // cases with a store on engine 1
  for (int i = 0; i < 10; ++i) {
    Config config;
    config.core.dma_engines = pick(2, 4);
    config.core.mxus = pick(1, 2);
    config.array.rows = pick(4, 12);
    config.array.cols = pick(4, 12);
    config.vector.lanes = pick(2, 16);
    config.mxu.double_buffer_weights = pick(0, 3) != 0;
    config.mxu.weight_fifo_tiles = pick(0, 1) ? 0 : pick(2, 4);
    config.ub.write_ports = pick(1, 2);
    config.ub.capacity_bytes = pick(0, 1) ? 256 << 10 : 24 << 10;
    config.acc.capacity_bytes = 64 << 10;
    static const char* const kMemories[] = {"ideal", "simple", "hbm2"};
    config.hbm.preset = kMemories[pick(0, 2)];
    const char* dtype = pick(0, 2) ? "int8" : "bf16";
    std::string json;
    if (i % 2) {
      json = random_graph_json(rng, i, dtype);
    } else {
      const std::uint32_t hw = pick(5, 12);
      std::ostringstream chain;
      chain << R"({"name": "chain", "dtype": ")" << dtype << R"(", "input": [)" << hw << ", "
            << hw << ", " << pick(1, 6) << R"(], "seed": )" << i << R"(, "layers": [)"
            << R"({"name": "conv", "type": "conv2d", "out_channels": )" << pick(3, 24)
            << R"(, "kernel": )" << pick(1, 5) << R"(, "stride": )" << pick(1, 2)
            << R"(, "padding": 1}, {"type": "relu"},)"
            << R"({"name": "pool", "type": "maxpool2d", "kernel": 2},)"
            << R"({"name": "fc", "type": "dense", "units": )" << pick(3, 30) << "}]}";
      json = chain.str();
    }
    SCOPED_TRACE(::testing::Message()
                 << config.core.dma_engines << " DMA engines, " << config.core.mxus << " MXUs "
                 << config.array.rows << "x" << config.array.cols << " " << config.hbm.preset
                 << " FIFO " << config.mxu.weight_fifo_tiles << "\n" << json);
    Program program;
    try {
      program = compile(parse_model_json(json, "random"), config);
    } catch (const CompileError&) {
      continue;  // a layer the small UB cannot hold
    }
    for (const Instruction& inst : program.instructions) {
      if (inst.op == Opcode::kDmaStore && inst.instance == 1) {
        ++split;
        break;
      }
    }
    check_agreement(config, program);
    const CheckResult c = check_outputs(program, interpret(config, program).hbm);
    EXPECT_TRUE(c.passed) << (c.first_mismatches.empty() ? "" : c.first_mismatches[0]);
  }
  EXPECT_GE(split, 7);
}

// A random chip of 2..4 small cores for the multi-core cases below, spreading graphs by
// `parallelism` (model_n and model_k also draw 1..2 DMA engines per core).
template <typename Pick>
Config random_chip(Pick& pick, const std::string& parallelism) {
  Config config;
  config.chip.cores = pick(2, 4);
  config.chip.interconnect_gbs = pick(0, 1) ? 1e6 : double(pick(4, 64));
  config.chip.interconnect_latency_cycles = pick(1, 30);
  config.core.mxus = pick(1, 2);
  if (parallelism == "model_n" || parallelism == "model_k") config.core.dma_engines = pick(1, 2);
  config.compiler.parallelism = parallelism;
  config.array.rows = pick(4, 8);
  config.array.cols = pick(4, 8);
  config.vector.lanes = pick(2, 8);
  config.mxu.weight_fifo_tiles = pick(2, 4);
  config.ub.banks = 1u << pick(0, 4);
  config.ub.read_ports = 2;
  config.ub.capacity_bytes = 256 << 10;
  config.acc.capacity_bytes = 64 << 10;
  config.hbm.preset = pick(0, 1) ? "ideal" : "simple";
  return config;
}

// One stream per core; pe == fast == interpret(), and every output matches its reference.
void check_on_cores(const Config& config, const Program& program) {
  EXPECT_EQ(program_cores(program), config.chip.cores);
  check_agreement(config, program);
  const CheckResult c = check_outputs(program, interpret(config, program).hbm);
  EXPECT_TRUE(c.passed) << (c.first_mismatches.empty() ? "" : c.first_mismatches[0]);
}

// pe == fast == interpret() on chips of 2..4 cores (chip.cores), the compiler splitting the
// batch over them (compiler.parallelism = data): conv + dense chains and dense-only chains of
// random batch, int8 and bf16, 1..2 MXUs per core, the outputs of every core matching its
// reference (what --check compares).
TEST(Fidelity, RandomCompiledModelsOnSeveralCores) {
  std::mt19937 rng(23);
  const auto pick = [&rng](std::uint32_t lo, std::uint32_t hi) {
    return std::uniform_int_distribution<std::uint32_t>(lo, hi)(rng);
  };
  for (int i = 0; i < 6; ++i) {
    const Config config = random_chip(pick, "data");
    const char* dtype = pick(0, 2) ? "int8" : "bf16";
    const std::uint32_t batch = config.chip.cores + pick(0, 3);
    std::ostringstream chain;
    chain << R"({"name": "chain", "dtype": ")" << dtype << R"(", "batch": )" << batch
          << R"(, "seed": )" << i << ", ";
    if (i % 2) {
      const std::uint32_t hw = pick(4, 6);
      chain << R"("input": [)" << hw << ", " << hw << ", " << pick(1, 8) << R"(], "layers": [)"
            << R"({"name": "conv", "type": "conv2d", "out_channels": )" << pick(3, 20)
            << R"(, "kernel": 3, "stride": 1, "padding": 1},)"
            << R"({"type": "relu"},)";
    } else {
      chain << R"("input": [1, 1, )" << pick(3, 30) << R"(], "layers": [)";
    }
    chain << R"({"name": "fc", "type": "dense", "units": )" << pick(3, 30) << "}]}";
    SCOPED_TRACE(::testing::Message() << config.chip.cores << " cores x " << config.core.mxus
                                      << " MXUs " << config.array.rows << "x"
                                      << config.array.cols << "\n" << chain.str());
    check_on_cores(config, compile(parse_model_json(chain.str(), "random"), config));
  }
}

// pe == fast == interpret() on chips of 2..4 cores with compiler.parallelism = model_n: every
// GEMM node's N tiles split over the cores, a maxpool (core 0 alone) between conv and dense
// in some, int8 and bf16, 1..2 MXUs and 1..2 DMA engines per core; every output, the
// intermediate ones (through HBM) included, matching the reference (bit-exact int8, bf16 within
// --check's tolerance).
TEST(Fidelity, RandomModelParallelModelsOnSeveralCores) {
  std::mt19937 rng(29);
  const auto pick = [&rng](std::uint32_t lo, std::uint32_t hi) {
    return std::uniform_int_distribution<std::uint32_t>(lo, hi)(rng);
  };
  for (int i = 0; i < 6; ++i) {
    const Config config = random_chip(pick, "model_n");
    const char* dtype = pick(0, 2) ? "int8" : "bf16";
    std::ostringstream chain;
    chain << R"({"name": "chain", "dtype": ")" << dtype << R"(", "batch": )" << pick(1, 3)
          << R"(, "seed": )" << i << ", ";
    if (i % 2) {
      const std::uint32_t hw = 2 * pick(2, 3);
      chain << R"("input": [)" << hw << ", " << hw << ", " << pick(1, 8) << R"(], "layers": [)"
            << R"({"name": "conv", "type": "conv2d", "out_channels": )" << pick(6, 24)
            << R"(, "kernel": 3, "stride": 1, "padding": 1},)"
            << R"({"type": "relu"},)" << R"({"name": "pool", "type": "maxpool2d", "kernel": 2},)";
    } else {
      chain << R"("input": [1, 1, )" << pick(3, 30) << R"(], "layers": [)"
            << R"({"name": "fc0", "type": "dense", "units": )" << pick(8, 40) << "},";
    }
    chain << R"({"name": "fc", "type": "dense", "units": )" << pick(9, 40) << "}]}";
    SCOPED_TRACE(::testing::Message() << config.chip.cores << " cores x " << config.core.mxus
                                      << " MXUs x " << config.core.dma_engines << " DMA "
                                      << config.array.rows << "x" << config.array.cols << "\n"
                                      << chain.str());
    const Program program = compile(parse_model_json(chain.str(), "random"), config);
    // The last dense layer has at least two N tiles: core 1 computes some of its columns.
    EXPECT_GT(program.layers[program.layers.size() / config.chip.cores * 2 - 1].macs, 0u);
    check_on_cores(config, program);
  }
}

// The same with graphs of vector work between the GEMMs (model_n splits an element-wise node's
// pixels, a pooling node's output rows and a copy's rows over the cores): conv, a residual add,
// a concat of the sum with itself (the second slice a copy), average pooling, softmax (some
// causal, some over two interleaved heads, split in whole queries) or a norm, a column
// slice, a sigmoid gate (mul), over 1..3 samples; pe == fast == interpret(), every output
// (the intermediate ones through HBM) matching the reference.
TEST(Fidelity, RandomModelParallelVectorGraphsOnSeveralCores) {
  std::mt19937 rng(31);
  const auto pick = [&rng](std::uint32_t lo, std::uint32_t hi) {
    return std::uniform_int_distribution<std::uint32_t>(lo, hi)(rng);
  };
  std::uint64_t split_vector_work = 0, heads = 0;
  for (int i = 0; i < 8; ++i) {
    const Config config = random_chip(pick, "model_n");
    const std::uint32_t h = 2 * pick(1, 3), w = 2 * pick(1, 3), c = pick(1, 12);
    const std::uint32_t k = pick(0, 1) ? 3 : 1;
    const char* norms[] = {R"("op": "softmax")", R"("op": "softmax", "causal": true)",
                           R"("op": "softmax", "causal": true, "heads": 2)",
                           R"("op": "layernorm")", R"("op": "rmsnorm")"};
    const std::uint32_t norm = pick(0, 4);
    heads += norm == 2;
    std::ostringstream json;
    json << R"({"dtype": ")" << (pick(0, 2) ? "int8" : "bf16") << R"(", "batch": )"
         << pick(1, 3) << R"(, "seed": )" << i << R"(, "inputs": [{"name": "x", "shape": [)"
         << h << ", " << 2 * w << ", " << c << R"(]}], "nodes": [
      {"name": "conv", "op": "conv2d", "inputs": ["x"], "out_channels": )" << c
         << R"(, "kernel": )" << k << R"(, "padding": )" << k / 2 << R"(},
      {"name": "sum", "op": "add", "inputs": ["conv", "x"]},
      {"name": "cat", "op": "concat", "inputs": ["sum", "sum"]},
      {"name": "pool", "op": "avgpool2d", "inputs": ["cat"], "kernel": 2},
      {"name": "norm", )" << norms[norm] << R"(, "inputs": ["pool"]},
      {"name": "part", "op": "slice", "inputs": ["norm"], "width": [0, )" << pick(1, w / 2)
         << R"(]},
      {"name": "gate", "op": "sigmoid", "inputs": ["part"]},
      {"name": "y", "op": "mul", "inputs": ["part", "gate"]}],
      "outputs": ["y"]})";
    SCOPED_TRACE(::testing::Message() << config.chip.cores << " cores x " << config.core.mxus
                                      << " MXUs x " << config.core.dma_engines << " DMA "
                                      << config.array.rows << "x" << config.array.cols << " "
                                      << config.hbm.preset << "\n" << json.str());
    const Program program = compile(parse_model_json(json.str(), "random"), config);
    for (std::size_t pc = program.core_begin[1]; pc < program.instructions.size(); ++pc) {
      const Opcode op = program.instructions[pc].op;
      split_vector_work += op == Opcode::kAdd || op == Opcode::kVop || op == Opcode::kPool;
    }
    check_on_cores(config, program);
  }
  EXPECT_GT(split_vector_work, 0u);  // cores other than 0 ran element-wise and pooling work
  EXPECT_GT(heads, 0u);
}

// pe == fast == interpret() on chips of 2..4 cores with compiler.parallelism = model_k: every
// dense layer's K tiles split over the cores, its raw partial sums (activate raw) reduced by
// the core owning each N tile (acc.load, then one requantisation with the bias); a conv (core
// 0 alone) and a maxpool (its rows split) before the dense layers in some; K of 3..90
// elements, so some cores have no K tile on small K; int8 and bf16, biases and activations. Every output matches the
// reference (bit-exact int8: int32 partials add exactly; bf16 within --check's tolerance).
TEST(Fidelity, RandomKSplitModelsOnSeveralCores) {
  std::mt19937 rng(31);
  const auto pick = [&rng](std::uint32_t lo, std::uint32_t hi) {
    return std::uniform_int_distribution<std::uint32_t>(lo, hi)(rng);
  };
  for (int i = 0; i < 6; ++i) {
    Config config = random_chip(pick, "model_k");
    // Biases need UB rows of whole 32-bit words.
    config.array.rows = 4 * pick(1, 2);
    config.array.cols = 4 * pick(1, 2);
    const char* dtype = pick(0, 2) ? "int8" : "bf16";
    std::ostringstream chain;
    chain << R"({"name": "chain", "dtype": ")" << dtype << R"(", "batch": )" << pick(1, 3)
          << R"(, "seed": )" << i << ", ";
    if (i % 3 == 2) {
      const std::uint32_t hw = 2 * pick(2, 3);
      chain << R"("input": [)" << hw << ", " << hw << ", " << pick(1, 8) << R"(], "layers": [)"
            << R"({"name": "conv", "type": "conv2d", "out_channels": )" << pick(6, 24)
            << R"(, "kernel": 3, "stride": 1, "padding": 1},)"
            << R"({"name": "pool", "type": "maxpool2d", "kernel": 2},)";
    } else {
      chain << R"("input": [1, 1, )" << pick(3, 90) << R"(], "layers": [)";
    }
    chain << R"({"name": "fc0", "type": "dense", "units": )" << pick(8, 40)
          << R"(, "bias": true, "activation": "relu"},)"
          << R"({"name": "fc", "type": "dense", "units": )" << pick(3, 40)
          << (pick(0, 1) ? R"(, "bias": true)" : "") << "}]}";
    SCOPED_TRACE(::testing::Message() << config.chip.cores << " cores x " << config.core.mxus
                                      << " MXUs x " << config.core.dma_engines << " DMA "
                                      << config.array.rows << "x" << config.array.cols << "\n"
                                      << chain.str());
    const Program program = compile(parse_model_json(chain.str(), "random"), config);
    std::size_t accumulated = 0;
    for (const Instruction& inst : program.instructions) {
      accumulated += inst.op == Opcode::kAccLoad && (inst.flags & kFlagAccumulate);
    }
    EXPECT_GT(accumulated, 0u);  // some partials were reduced across cores
    check_on_cores(config, program);
  }
}

// pe == fast == interpret() on chips of 2..4 cores with compiler.parallelism = pipeline: the
// nodes cut into one stage per core, 1..batch micro-batches (compiler.micro_batches) streaming
// through them, int8 and bf16, 1..2 MXUs and 1..3 DMA engines per core; a residual block whose
// skip tensor crosses stages, or a chain of dense layers; every output, the intermediate ones
// (through HBM) included, matching its micro-batch's reference.
TEST(Fidelity, RandomPipelinedModelsOnSeveralCores) {
  std::mt19937 rng(31);
  const auto pick = [&rng](std::uint32_t lo, std::uint32_t hi) {
    return std::uniform_int_distribution<std::uint32_t>(lo, hi)(rng);
  };
  for (int i = 0; i < 6; ++i) {
    Config config = random_chip(pick, "pipeline");
    config.core.dma_engines = pick(1, 3);
    const std::uint32_t batch = pick(1, 4);
    config.compiler.micro_batches = pick(1, batch);
    const char* dtype = pick(0, 2) ? "int8" : "bf16";
    std::ostringstream graph;
    graph << R"({"name": "g", "dtype": ")" << dtype << R"(", "batch": )" << batch
          << R"(, "seed": )" << i << ", ";
    if (i % 2) {
      const std::uint32_t hw = pick(3, 5), c = pick(2, 12);
      graph << R"("inputs": [{"name": "x", "shape": [)" << hw << ", " << hw << ", " << pick(1, 8)
            << R"(]}], "nodes": [)"
            << R"({"name": "stem", "op": "conv2d", "inputs": ["x"], "out_channels": )" << c
            << R"(, "kernel": 3, "padding": 1, "activation": "relu"},)"
            << R"({"name": "a", "op": "conv2d", "inputs": ["stem"], "out_channels": )" << c
            << R"(, "kernel": 3, "padding": 1, "activation": "relu"},)"
            << R"({"name": "b", "op": "conv2d", "inputs": ["a"], "out_channels": )" << c
            << R"(, "kernel": 3, "padding": 1},)"
            << R"({"name": "sum", "op": "add", "inputs": ["b", "stem"]},)"
            << R"({"name": "out", "op": "relu", "inputs": ["sum"]}], "outputs": ["out"]})";
    } else {
      graph << R"("input": [1, 1, )" << pick(3, 30) << R"(], "layers": [)";
      for (int l = 0; l < 4; ++l) {
        graph << (l ? "," : "") << R"({"name": "fc)" << l << R"(", "type": "dense", "units": )"
              << pick(3, 30) << "}";
      }
      graph << "]}";
    }
    SCOPED_TRACE(::testing::Message() << config.chip.cores << " cores x " << config.core.mxus
                                      << " MXUs x " << config.core.dma_engines << " DMA "
                                      << config.array.rows << "x" << config.array.cols << ", "
                                      << config.compiler.micro_batches << " micro-batches\n"
                                      << graph.str());
    const Graph g = parse_model_json(graph.str(), "random");
    const Program program = compile(g, config);
    // Every micro-batch's every node runs once, on one core.
    EXPECT_EQ(program.layers.size(), config.compiler.micro_batches * g.nodes.size());
    check_on_cores(config, program);
  }
}

// pe == fast == interpret() on random chains of grouped, depthwise and dilated convs (strided,
// padded) on arrays of any shape, matching the reference.
TEST(Fidelity, RandomGroupedAndDilatedConvs) {
  std::mt19937 rng(21);
  const auto pick = [&rng](std::uint32_t lo, std::uint32_t hi) {
    return std::uniform_int_distribution<std::uint32_t>(lo, hi)(rng);
  };
  std::uint64_t block_diagonal = 0;  // weight tiles of several groups, over all programs
  for (int i = 0; i < 6; ++i) {
    Config config;
    config.array.rows = pick(4, 12);
    config.array.cols = pick(4, 12);
    config.mxu.double_buffer_weights = pick(0, 3) != 0;
    config.mxu.weight_fifo_tiles = i % 2 ? 0 : 2 + i / 2;
    config.ub.capacity_bytes = 256 << 10;
    config.acc.capacity_bytes = 64 << 10;
    config.hbm.preset = pick(0, 1) ? "ideal" : "simple";
    const std::uint32_t h0 = pick(6, 10), w0 = pick(6, 10), c0 = 2 * pick(1, 6);
    std::uint32_t h = h0, w = w0, c = c0;
    std::ostringstream layers;
    for (int l = 0; l < 3; ++l) {
      // Groups: all channels (depthwise), a divisor, or none; the output a multiple of them.
      const std::uint32_t groups = l == 1 ? c : (c % 2 == 0 && pick(0, 1) ? 2 : 1);
      const std::uint32_t n = groups * pick(1, 3);
      const std::uint32_t s = pick(1, 2);
      std::uint32_t k = pick(1, 3), d = pick(1, 3), pad = pick(0, 2);
      // Shrink the dilation, then the kernel, until the window fits the padded input; padding
      // at most the window.
      while (d > 1 && (k - 1) * d + 1 > std::min(h, w) + 2 * pad) --d;
      while (k > std::min(h, w) + 2 * pad) --k;
      const std::uint32_t e = (k - 1) * d + 1;
      pad = std::min(pad, e);
      layers << (l ? "," : "") << R"({"name": "c)" << l
             << R"(", "type": "conv2d", "out_channels": )" << n << R"(, "kernel": )" << k
             << R"(, "stride": )" << s << R"(, "padding": )" << pad
             << R"(, "dilation": )" << d << R"(, "groups": )" << groups
             << R"(, "activation": "relu"})";
      h = (h + 2 * pad - e) / s + 1;
      w = (w + 2 * pad - e) / s + 1;
      c = n;
    }
    std::ostringstream json;
    json << R"({"name": "grouped", "dtype": ")" << (pick(0, 1) ? "int8" : "bf16")
         << R"(", "batch": )" << pick(1, 2) << R"(, "input": [)" << h0 << ", " << w0 << ", "
         << c0 << R"(], "seed": )" << i << R"(, "layers": [)" << layers.str() << "]}";
    SCOPED_TRACE(::testing::Message() << config.array.rows << "x" << config.array.cols << " "
                                      << json.str());
    const Program program = compile(parse_model_json(json.str(), "grouped"), config);
    for (const Instruction& inst : program.instructions) {
      block_diagonal += inst.op == Opcode::kLoadWeights && inst.ub_stride > 1;
    }
    check_agreement(config, program);
    const CheckResult r = check_outputs(program, interpret(config, program).hbm);
    EXPECT_TRUE(r.passed) << (r.first_mismatches.empty() ? "" : r.first_mismatches[0]);
  }
  EXPECT_GT(block_diagonal, 0u);
}

// Small-channel strided convolutions (stems): whole kernel rows packed per weight tile,
// their anchors stored densely (space-to-depth) and, over several M tiles, one input slot per
// M tile. pe == fast and the outputs match the reference.
TEST(Fidelity, RandomSmallChannelStridedConvs) {
  std::mt19937 rng(31);
  const auto pick = [&rng](std::uint32_t lo, std::uint32_t hi) {
    return std::uniform_int_distribution<std::uint32_t>(lo, hi)(rng);
  };
  std::uint64_t packed = 0;  // programs with kernel rows packed per tile
  for (int i = 0; i < 8; ++i) {
    Config config;
    config.array.rows = pick(16, 32);
    config.array.cols = pick(8, 16);
    config.mxu.double_buffer_weights = pick(0, 3) != 0;
    config.mxu.weight_fifo_tiles = i % 2 ? 0 : 4;
    config.ub.capacity_bytes = 512 << 10;
    config.acc.capacity_bytes = 64 << 10;
    config.hbm.preset = pick(0, 1) ? "ideal" : "simple";
    const std::uint32_t c = pick(1, 3), k = pick(3, 7), s = pick(2, 3), pad = pick(0, k / 2);
    const std::uint32_t h = pick(k + 4, 20), w = pick(k + 4, 20);
    std::ostringstream json;
    json << R"({"name": "stem", "dtype": ")" << (pick(0, 1) ? "int8" : "bf16")
         << R"(", "batch": )" << pick(1, 2) << R"(, "input": [)" << h << ", " << w << ", " << c
         << R"(], "seed": )" << i << R"(, "layers": [{"name": "stem", "type": "conv2d", )"
         << R"("out_channels": )" << pick(4, 20) << R"(, "kernel": )" << k << R"(, "stride": )"
         << s << R"(, "padding": )" << pad << R"(, "activation": "relu"}]})";
    CompileOptions options;
    options.max_m_tile = pick(5, 30);
    SCOPED_TRACE(::testing::Message() << config.array.rows << "x" << config.array.cols
                                      << " m_tile " << options.max_m_tile << " " << json.str());
    const Program program = compile(parse_model_json(json.str(), "stem"), config, options);
    bool rows_packed = false;
    for (const Instruction& inst : program.instructions) {
      rows_packed = rows_packed || (inst.op == Opcode::kLoadWeights && inst.rows > k * c &&
                                    inst.rows % (k * c) == 0);
    }
    packed += rows_packed;
    check_agreement(config, program);
    const CheckResult r = check_outputs(program, interpret(config, program).hbm);
    EXPECT_TRUE(r.passed) << (r.first_mismatches.empty() ? "" : r.first_mismatches[0]);
  }
  EXPECT_GE(packed, 3u);  // 4 of the 8 with this seed
}

// Concat slices feeding small-channel convs: x (1..2 channels) and a 1x1 conv of it (1..2
// channels) are the two slices of a concat (a graph output, so in HBM), and each is also read
// by a k x k conv. A slice's pixels lie ctot elements apart, so the convs must not pack whole
// kernel rows (read as kw x C contiguous elements per anchor), which most of them would on
// these arrays were their inputs contiguous (KernelRowsOfAConcatSliceAreNotPackedWhole is one
// such graph).
TEST(Fidelity, RandomConcatSlicesFeedingSmallChannelConvs) {
  std::mt19937 rng(37);
  const auto pick = [&rng](std::uint32_t lo, std::uint32_t hi) {
    return std::uniform_int_distribution<std::uint32_t>(lo, hi)(rng);
  };
  std::uint64_t would_pack = 0;  // convs whose input, were it contiguous, packs kernel rows
  for (int i = 0; i < 10; ++i) {
    Config config;
    config.array.rows = pick(6, 16);
    config.array.cols = pick(6, 16);
    config.mxu.double_buffer_weights = pick(0, 3) != 0;
    config.ub.capacity_bytes = 256 << 10;
    config.acc.capacity_bytes = 64 << 10;
    config.hbm.preset = pick(0, 1) ? "ideal" : "simple";
    const std::uint32_t cx = pick(1, 2), cp = pick(1, 2);
    const std::uint32_t k = pick(3, 5), s = pick(1, 2), pad = pick(0, k / 2);
    const std::uint32_t h = pick(std::max(k, 3u), 9), w = pick(std::max(k, 3u), 9);
    const auto conv = [&](const std::string& name, const std::string& in) {
      return R"({"name": ")" + name + R"(", "op": "conv2d", "inputs": [")" + in +
             R"("], "out_channels": )" + std::to_string(pick(1, 8)) + R"(, "kernel": )" +
             std::to_string(k) + R"(, "stride": )" + std::to_string(s) + R"(, "padding": )" +
             std::to_string(pad) + "}";
    };
    const bool p_first = pick(0, 1);
    std::ostringstream json;
    json << R"({"dtype": ")" << (pick(0, 2) ? "int8" : "bf16") << R"(", "batch": )" << pick(1, 2)
         << R"(, "seed": )" << i << R"(, "inputs": [{"name": "x", "shape": [)" << h << ", " << w
         << ", " << cx << R"(]}], "nodes": [
      {"name": "p", "op": "conv2d", "inputs": ["x"], "out_channels": )" << cp
         << R"(, "kernel": 1},
      {"name": "cat", "op": "concat", "inputs": [)" << (p_first ? R"("p", "x")" : R"("x", "p")")
         << "]},\n" << conv("cx", "x") << ",\n" << conv("cp", "p")
         << R"(], "outputs": ["cat", "cx", "cp"]})";
    const std::uint64_t cw = std::min(config.array.rows, config.array.cols);
    const std::uint64_t ow = (w + 2 * pad - k) / s + 1, oh = (h + 2 * pad - k) / s + 1;
    for (std::uint64_t c : {cx, cp}) {
      would_pack += kernel_rows_per_tile(Taps{k, k, s, pad, w, c, oh, ow, w + 2 * pad}, cw,
                                         config.array.rows) > 0;
    }
    SCOPED_TRACE(::testing::Message() << config.array.rows << "x" << config.array.cols << "\n"
                                      << json.str());
    const Program program = compile(parse_model_json(json.str(), "slices"), config);
    check_agreement(config, program);
    const CheckResult r = check_outputs(program, interpret(config, program).hbm);
    EXPECT_TRUE(r.passed) << (r.first_mismatches.empty() ? "" : r.first_mismatches[0]);
  }
  EXPECT_GE(would_pack, 3u);  // 4 of the 20 convs with this seed
}

// A random chain over the vector ops: convolutions with any fused activation, standalone
// activations, a gated product (x * sigmoid(x)), layer and RMS norms, and softmax along
// channels, causal or not, with at most max_c channels (more than min(R, C) spreads a softmax
// or norm row over several UB rows). Every unread tensor is an output.
std::string random_vector_graph_json(std::mt19937& rng, int seed, const char* dtype,
                                     std::uint32_t max_c) {
  const auto pick = [&rng](std::uint32_t lo, std::uint32_t hi) {
    return std::uniform_int_distribution<std::uint32_t>(lo, hi)(rng);
  };
  const char* activations[] = {"none", "relu", "relu6", "sigmoid", "tanh", "gelu", "silu"};
  const std::uint32_t h = pick(2, 6), w = pick(2, 6);
  std::string last = "x", outputs, nodes;
  int id = 0;
  const auto node = [&](const std::string& body) {
    const std::string name = "n" + std::to_string(id++);
    nodes += std::string(nodes.empty() ? "" : ",\n") + R"({"name": ")" + name + R"(", )" + body +
             "}";
    return name;
  };
  for (int step = 0, steps = int(pick(3, 6)); step < steps; ++step) {
    const std::string src = R"("inputs": [")" + last + R"("])";
    switch (pick(0, 4)) {
      case 0: {
        const std::uint32_t k = pick(0, 1) ? 3 : 1;
        last = node(R"("op": "conv2d", )" + src + R"(, "out_channels": )" +
                    std::to_string(pick(1, max_c)) + R"(, "kernel": )" + std::to_string(k) +
                    R"(, "padding": )" + std::to_string(k / 2) + R"(, "activation": ")" +
                    activations[pick(0, 6)] + '"');
        break;
      }
      case 1:
        last = node(R"("op": ")" + std::string(activations[pick(2, 6)]) + R"(", )" + src);
        break;
      case 2: {
        const std::string gate = node(R"("op": "sigmoid", )" + src);
        last = node(R"("op": "mul", "inputs": [")" + last + R"(", ")" + gate + R"("])");
        break;
      }
      case 3:
        last = node(R"("op": ")" + std::string(pick(0, 1) ? "layernorm" : "rmsnorm") + R"(", )" +
                    src);
        break;
      default: {
        std::string mask;
        if (pick(0, 1)) {
          mask = R"(, "causal": true, "mask_offset": )" + std::to_string(int(pick(0, max_c)) - 2);
        }
        if (last != "x") outputs += std::string(outputs.empty() ? "" : ", ") + '"' + last + '"';
        last = node(R"("op": "softmax", )" + src + mask);
        break;
      }
    }
  }
  outputs += std::string(outputs.empty() ? "" : ", ") + '"' + last + '"';
  std::ostringstream json;
  json << R"({"dtype": ")" << dtype << R"(", "batch": )" << pick(1, 2) << R"(, "seed": )" << seed
       << R"(, "inputs": [{"name": "x", "shape": [)" << h << ", " << w << ", " << pick(1, max_c)
       << "]}],\n\"nodes\": [" << nodes << "],\n\"outputs\": [" << outputs << "]}";
  return json.str();
}

// pe == fast == timing-only == interpret() on random graphs of vector ops, and the outputs
// match the reference (int8 bit-exact, bf16 within tolerance).
TEST(Fidelity, RandomCompiledVectorGraphs) {
  std::mt19937 rng(11);
  const auto pick = [&rng](std::uint32_t lo, std::uint32_t hi) {
    return std::uniform_int_distribution<std::uint32_t>(lo, hi)(rng);
  };
  for (int i = 0; i < 8; ++i) {
    Config config;
    config.array.rows = pick(4, 8);
    config.array.cols = pick(4, 8);
    config.vector.lanes = pick(1, 8);
    config.vector.exp_cycles = pick(1, 4);
    config.vector.reduce_sum_latency = pick(0, 9);
    config.ub.capacity_bytes = pick(0, 1) ? 256 << 10 : 24 << 10;
    config.acc.capacity_bytes = 64 << 10;
    config.hbm.preset = pick(0, 1) ? "ideal" : "simple";
    const std::string json = random_vector_graph_json(rng, i, pick(0, 1) ? "int8" : "bf16", 4);
    SCOPED_TRACE(::testing::Message() << config.array.rows << "x" << config.array.cols << "\n"
                                      << json);
    const Program program = compile(parse_model_json(json, "random_vector_graph"), config);
    check_agreement(config, program);
    const CheckResult c = check_outputs(program, interpret(config, program).hbm);
    EXPECT_TRUE(c.passed) << (c.first_mismatches.empty() ? "" : c.first_mismatches[0]);
    EXPECT_GT(c.compared, 0u);
  }
}

// The same with up to 20 channels on 4..8-wide arrays: softmax and norm rows over two to five
// UB rows (chunk_cols), resident and staged, causal masks crossing chunks.
TEST(Fidelity, RandomCompiledWideRowGraphs) {
  std::mt19937 rng(23);
  const auto pick = [&rng](std::uint32_t lo, std::uint32_t hi) {
    return std::uniform_int_distribution<std::uint32_t>(lo, hi)(rng);
  };
  std::uint64_t chunked = 0;
  for (int i = 0; i < 8; ++i) {
    Config config;
    config.array.rows = pick(4, 8);
    config.array.cols = pick(4, 8);
    config.vector.lanes = pick(1, 8);
    config.vector.reduce_max_cycles = pick(1, 3);
    config.ub.capacity_bytes = pick(0, 1) ? 256 << 10 : 24 << 10;
    config.acc.capacity_bytes = 64 << 10;
    config.hbm.preset = pick(0, 1) ? "ideal" : "simple";
    const std::string json = random_vector_graph_json(rng, i, pick(0, 1) ? "int8" : "bf16", 20);
    SCOPED_TRACE(::testing::Message() << config.array.rows << "x" << config.array.cols << "\n"
                                      << json);
    const Program program = compile(parse_model_json(json, "random_wide_graph"), config);
    for (const Instruction& inst : program.instructions) {
      chunked += inst.op == Opcode::kVop && vop_chunks(inst) > 1;
    }
    check_agreement(config, program);
    const CheckResult c = check_outputs(program, interpret(config, program).hbm);
    EXPECT_TRUE(c.passed) << (c.first_mismatches.empty() ? "" : c.first_mismatches[0]);
    EXPECT_GT(c.compared, 0u);
  }
  EXPECT_GT(chunked, 0u);
}

}  // namespace
}  // namespace tpu
