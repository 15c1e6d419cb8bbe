// Matmuls of two computed tensors (graph.h, kTensorMatmul) and the multi-head attention built
// from them: shapes and errors, the plain reference, functional runs against the reference in
// both fidelities (prefill and decode, int8 and bf16), the weight stream's race with a b
// computed by the node before, and the bound each regime hits on the default config.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "tests/model_json.h"
#include "tools/compiler/frontend.h"
#include "tools/compiler/lowering.h"
#include "tools/compiler/memory_plan.h"
#include "tools/compiler/reference.h"
#include "tools/run/child.h"
#include "tools/run/run.h"
#include "tests/test_paths.h"

namespace tpu {
namespace {

// One attention layer in the model JSON's graph form: x is 1 x S x D (S tokens); q, k, v and
// the output projection are per-token dense layers (1-wide conv1d: `dense` would flatten the
// tokens); scores s = q k^T per head, scaled by 1 / sqrt(D / H), are 1 x S x (H * T); the
// reshape to 1 x (S * H) x T puts each head's row of T keys on a pixel of its own for the
// softmax, and back for p v. Decode (L > 0): one new token (S = 1) against a KV cache of L
// tokens read as it is from HBM (graph inputs k_cache and v_cache of 1 x L x D, generated).
// `kv_last` computes k right before the scores that read it (the weight stream's race).
std::string attention_json(std::uint32_t S, std::uint32_t D, std::uint32_t H, const char* dtype,
                           std::uint32_t L = 0, bool causal = false, bool kv_last = true) {
  const auto dense = [](const std::string& name, const std::string& in, std::uint32_t units) {
    return R"({"name": ")" + name + R"(", "op": "conv1d", "inputs": [")" + in +
           R"("], "out_channels": )" + std::to_string(units) + R"(, "kernel": 1})";
  };
  const std::uint32_t T = L > 0 ? L : S;
  std::string inputs = R"({"name": "x", "shape": [1, )" + std::to_string(S) + ", " +
                       std::to_string(D) + "]}";
  std::string nodes = dense("q", "x", D);
  std::string k = "k", v = "v";
  if (L > 0) {
    for (const char* c : {"k_cache", "v_cache"}) {
      inputs += R"(, {"name": ")" + std::string(c) + R"(", "shape": [1, )" + std::to_string(L) +
                ", " + std::to_string(D) + "]}";
    }
    k = "k_cache";
    v = "v_cache";
  } else if (kv_last) {
    nodes += ", " + dense("v", "x", D) + ", " + dense("k", "x", D);
  } else {
    nodes += ", " + dense("k", "x", D) + ", " + dense("v", "x", D);
  }
  char scale[32];
  std::snprintf(scale, sizeof scale, "%.9g", 1.0 / std::sqrt(double(D / H)));
  nodes += R"(, {"name": "s", "op": "matmul", "inputs": ["q", ")" + k +
           R"("], "transpose_b": true, "heads": )" + std::to_string(H) + R"(, "scale": )" + scale +
           "}";
  nodes += R"(, {"name": "sr", "op": "reshape", "inputs": ["s"], "shape": [1, )" +
           std::to_string(S * H) + ", " + std::to_string(T) + "]}";
  nodes += R"(, {"name": "p", "op": "softmax", "inputs": ["sr"])" +
           std::string(causal ? R"(, "causal": true, "heads": )" + std::to_string(H) : "") + "}";
  nodes += R"(, {"name": "pr", "op": "reshape", "inputs": ["p"], "shape": [1, )" +
           std::to_string(S) + ", " + std::to_string(H * T) + "]}";
  nodes += R"(, {"name": "c", "op": "matmul", "inputs": ["pr", ")" + v + R"("], "heads": )" +
           std::to_string(H) + "}";
  nodes += ", " + dense("o", "c", D);
  return std::string(R"({"name": "attention", "dtype": ")") + dtype + R"(", "inputs": [)" +
         inputs + R"(], "nodes": [)" + nodes + R"(], "outputs": ["o"]})";
}

Graph parse(const std::string& json) { return parse_model_json(json, "attention.json"); }

const Node& node(const Graph& g, const std::string& name) {
  for (const Node& n : g.nodes) {
    if (n.name == name) return n;
  }
  throw std::runtime_error("no node " + name);
}

Config array64() {
  Config c;
  c.array.rows = 64;
  c.array.cols = 64;
  return c;
}

TEST(TensorMatmul, ShapesAndMacsOfAttention) {
  // S = 8 tokens, D = 16, H = 2 heads of dk = 8.
  const Graph g = parse(attention_json(8, 16, 2, "int8"));
  const Node& s = node(g, "s");
  EXPECT_EQ(s.kind, OpKind::kTensorMatmul);
  EXPECT_TRUE(s.transpose_b);
  EXPECT_EQ(s.heads, 2u);
  EXPECT_FLOAT_EQ(s.scale, float(1 / std::sqrt(8.0)));
  EXPECT_EQ(s.out, (Shape3{1, 8, 16}));  // S pixels x (H * S) channels
  // Per head S x dk times dk x S: 2 * 8 * 8 * 8 = 1024 MACs; no generated weights.
  EXPECT_EQ(s.macs(), 1024u);
  EXPECT_EQ(s.weight_count(), 0u);
  const Node& c = node(g, "c");
  EXPECT_EQ(c.out, (Shape3{1, 8, 16}));  // per head S x S times S x dk, heads concatenated
  EXPECT_EQ(c.macs(), 2u * 8 * 8 * 8);
  // Decode against a cache of 32: per head 1 x 8 times 8 x 32, then 1 x 32 times 32 x 8.
  const Graph d = parse(attention_json(1, 16, 2, "int8", 32));
  EXPECT_EQ(node(d, "s").out, (Shape3{1, 1, 64}));
  EXPECT_EQ(node(d, "s").macs(), 2u * 8 * 32);
  EXPECT_EQ(node(d, "c").macs(), 2u * 32 * 8);
}

TEST(TensorMatmul, BadOperandsAreOneLineErrorsNamingTheNode) {
  const auto graph = [](const std::string& b_shape, const std::string& attrs) {
    return R"({"inputs": [{"name": "a", "shape": [1, 4, 8]}, {"name": "b", "shape": )" + b_shape +
           R"(}], "nodes": [{"name": "mm", "op": "matmul", "inputs": ["a", "b"])" + attrs +
           R"(}], "outputs": ["mm"]})";
  };
  EXPECT_EQ(compile_error(graph("[1, 8, 5]", ""), "attention.json"), "");  // K = 8 pixels of b
  EXPECT_EQ(compile_error(graph("[1, 6, 8]", R"(, "transpose_b": true)"), "attention.json"), "");
  EXPECT_EQ(compile_error(graph("[1, 7, 5]", ""), "attention.json"),
            "attention.json: node 0 'mm' (matmul): shape mismatch: 'a' (1x4x8, 1 head(s)) has "
            "K = 8 channels per head but 'b' (1x7x5) has 7 pixels (rows)");
  EXPECT_EQ(
      compile_error(graph("[1, 6, 4]", R"(, "transpose_b": true, "heads": 2)"), "attention.json"),
      "attention.json: node 0 'mm' (matmul): shape mismatch: 'a' (1x4x8, 2 head(s)) has "
      "K = 4 channels per head but 'b' (1x6x4, transposed) has 2 channels per head");
  EXPECT_EQ(compile_error(graph("[1, 8, 6]", R"(, "heads": 3)"), "attention.json"),
            "attention.json: node 0 'mm' (matmul): key 'heads': 3 does not divide the 8 "
            "channels of 'a' and the 6 channels of 'b'");
  EXPECT_NE(compile_error(graph("[1, 8, 5]", R"(, "transpose_b": 1)"), "attention.json")
                .find("key 'transpose_b'"),
            std::string::npos);
  EXPECT_NE(
      compile_error(graph("[1, 8, 5]", R"(, "scale": 0)"), "attention.json").find("key 'scale'"),
      std::string::npos);
  EXPECT_NE(compile_error(graph("[1, 8, 5]", R"(, "units": 3)"), "attention.json").find("units"),
            std::string::npos);
}

// y[s][m][h * n + j] = sum_i a[s][m][h * k + i] * B(i, j), by hand on 1 sample, m = 1, k = 2,
// n = 2, heads = 2: a = [1 2 | 3 4]. Plain b (2 x 4): rows [5 6 | 7 8], [9 10 | 11 12]:
// head 0: [1 2] x [[5 6] [9 10]] = [23 26]; head 1: [3 4] x [[7 8] [11 12]] = [65 72].
// Transposed b (2 x 4, pixels = n): rows [5 9 | 7 11], [6 10 | 8 12] hold the same B.
TEST(TensorMatmul, ReferenceIsThePerHeadProduct) {
  const std::vector<std::int8_t> a = {1, 2, 3, 4};
  const std::vector<std::int8_t> b = {5, 6, 7, 8, 9, 10, 11, 12};
  const std::vector<std::int8_t> bt = {5, 9, 7, 11, 6, 10, 8, 12};
  const std::vector<std::int32_t> want = {23, 26, 65, 72};
  EXPECT_EQ(reference_tensor_matmul(a, b, {1, 1, 2, 2, 2, false}), want);
  EXPECT_EQ(reference_tensor_matmul(a, bt, {1, 1, 2, 2, 2, true}), want);
}

TEST(Attention, PrefillInt8MatchesTheReference) {
  expect_functional(array64(), attention_json(64, 64, 4, "int8"), "attention.json");
}

TEST(Attention, PrefillBf16MatchesTheReference) {
  expect_functional(array64(), attention_json(64, 64, 4, "bf16"), "attention.json");
}

TEST(Attention, DecodeAgainstAKvCacheMatchesTheReference) {
  expect_functional(array64(), attention_json(1, 64, 4, "int8", 64), "attention.json");
  expect_functional(array64(), attention_json(1, 64, 2, "bf16", 48), "attention.json");
}

TEST(Attention, WeightsThroughTheUnifiedBufferMatchTheReference) {
  Config c = array64();
  c.mxu.weight_fifo_tiles = 0;  // two UB weight slots instead of the FIFO
  expect_functional(c, attention_json(32, 64, 2, "int8"), "attention.json");
}

TEST(Attention, CausalPrefillMasksEachHeadsFutureKeys) {
  expect_functional(array64(), attention_json(64, 64, 4, "int8", 0, true), "attention.json");
  expect_functional(array64(), attention_json(16, 32, 2, "bf16", 0, true), "attention.json");
}

// The causal mask over interleaved heads: pixel i of the reshaped scores is query i / H. The
// DMA gathers each head's pixels into consecutive UB rows, so one VOP per head masks from the
// band's first query: S = 4 tokens, H = 2 heads in one band of 8 pixels: two VOPs of 4 rows,
// both from query 0, the second 4 rows after the first.
TEST(Attention, CausalSoftmaxOverHeadsMasksByQuery) {
  const Program p = compile(parse(attention_json(4, 8, 2, "int8", 0, true)), array64());
  std::vector<Instruction> vops;
  for (const Instruction& i : p.instructions) {
    if (i.op == Opcode::kVop && (i.flags & kFlagCausal)) vops.push_back(i);
  }
  ASSERT_EQ(vops.size(), 2u);
  for (const Instruction& v : vops) {
    EXPECT_EQ(v.rows, 4u);
    EXPECT_EQ(v.mask_row, 0u);
  }
  EXPECT_EQ(vops[1].ub_row, vops[0].ub_row + 4);
}

// Scores laid out as S x H x T (one query per image row): a UB of 8 KiB holds bands of a few
// rows, so the per-head blocks and their masks start mid-sequence, over two samples.
TEST(Attention, CausalSoftmaxOverHeadsInBands) {
  for (const char* dtype : {"int8", "bf16"}) {
    Config c = array64();
    c.ub.capacity_bytes = 16 << 10;
    expect_functional(c, std::string(R"({"dtype": ")") + dtype + R"(", "batch": 2,
        "inputs": [{"name": "s", "shape": [24, 3, 24]}],
        "nodes": [{"name": "p", "op": "softmax", "inputs": ["s"], "causal": true, "heads": 3}],
        "outputs": ["p"]})", "attention.json");
  }
}

// A KV cache longer than HBM holds is a one-line error naming it and the node reading it:
// 1 x 4096 x 512 int8 is 2 MiB per cache, 4 MiB with both, in 1 MiB of HBM.
TEST(Attention, KvCacheLargerThanHbmIsNamed) {
  Config c;
  c.hbm.capacity_bytes = 1 << 20;
  CompileOptions timing;
  timing.timing_only = true;
  try {
    compile(parse(attention_json(1, 512, 4, "int8", 4096)), c, timing);
    ADD_FAILURE() << "compiled";
  } catch (const CompileError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("but hbm.capacity_bytes = 1048576"), std::string::npos) << what;
    EXPECT_NE(what.find("(largest tensor 'k_cache', 2097152 bytes, read by node 1 's')"),
              std::string::npos)
        << what;
  }
}

// HBM bytes [first, last) a DMA touches.
std::pair<std::uint64_t, std::uint64_t> dma_range(const DmaFields& d, std::uint32_t eb) {
  return {d.hbm_addr, d.hbm_addr + std::uint64_t(d.groups - 1) * d.group_stride +
                          std::uint64_t(d.segs - 1) * d.seg_stride + std::uint64_t(d.elems) * eb};
}

// The weight stream prefetches the next GEMM node's first tiles while a node runs, but when the
// next node's b is this node's output (k computed right before the scores), those loads would
// read k before this node's stores wrote it: 21205 of 86016 values were wrong that way (64 x 64,
// prefetch forced). The DMA engine runs its queue in program order, so every load of k must
// come after the last store into it; and the run matches the reference either way weights go.
TEST(Attention, WeightLoadsOfAComputedOperandWaitForItsStores) {
  const std::string json = attention_json(64, 64, 4, "int8");
  for (std::uint32_t fifo : {4u, 0u}) {
    Config c = array64();
    c.mxu.weight_fifo_tiles = fifo;
    const Program p = compile(parse(json), c);
    const TensorView* k = nullptr;
    for (const LayerInfo& l : p.layers) {
      if (l.name == "k") k = &l.output;
    }
    ASSERT_NE(k, nullptr);
    const std::uint64_t lo = k->base, hi = k->base + k->count2 * k->stride2;
    std::size_t last_store = 0, first_load = p.instructions.size(), loads = 0;
    for (std::size_t i = 0; i < p.instructions.size(); ++i) {
      const Instruction& in = p.instructions[i];
      if (in.op != Opcode::kDmaLoad && in.op != Opcode::kDmaStore) continue;
      const auto [a, b] = dma_range(in.dma, 1);
      if (b <= lo || a >= hi) continue;
      if (in.op == Opcode::kDmaStore) {
        last_store = i;
      } else {
        first_load = std::min(first_load, i);
        ++loads;
      }
    }
    EXPECT_GT(last_store, 0u);
    // 64 keys x 16 channels per head as one transposed weight tile each: 4 loads.
    EXPECT_EQ(loads, 4u);
    EXPECT_GT(first_load, last_store) << "weight_fifo_tiles " << fifo;
    expect_functional(c, json, "attention.json");
  }
}

// Report figures of a timing-only run on the default config (128 x 128, HBM2 at 256 GB/s).
struct Bound {
  double compute_cycles, memory_cycles, utilization, weight_stall_share;
};
Bound bound_of(const std::string& json) {
  const ChildOutcome out = run_in_child([&] {
    RunOptions o;
    o.timing_only = true;
    return run_model(Config(), parse(json), "attention.json", o).report_json().dump();
  });
  if (!out.ok) throw std::runtime_error(out.error);
  const nlohmann::json t = nlohmann::json::parse(out.output)["total"];
  const Config c;
  Bound b;
  b.compute_cycles = std::ceil(t["macs"].get<double>() / (double(c.array.rows) * c.array.cols));
  b.memory_cycles = (t["hbm_read_bytes"].get<double>() + t["hbm_write_bytes"].get<double>()) /
                    c.hbm_peak_bytes_per_cycle();
  b.utilization = t["utilization"].get<double>();
  b.weight_stall_share = t["stall_cycles"].value("weights", 0.0) / t["cycles"].get<double>();
  return b;
}

// d_model 512, 4 heads of 128, 128 tokens. Prefill: 4 projections of 128 x 512 x 512 (33.6 M
// MACs each) and two per-head products of 4 x 128 x 128 x 128 (8.4 M each): 151 M MACs,
// 9216 array cycles on 128 x 128, above the 1 MiB of weights and 1 MiB of activations HBM
// moves in about 7.7k cycles: compute-bound. Decode of one token against a 128-token cache:
// 655 k MACs (40 array cycles) against the same 1 MiB of weights plus 256 KiB of cache: every
// weight tile streams one row, so the MXU waits on weights nearly all the time.
TEST(Attention, PrefillIsComputeBoundAndDecodeMemoryBound) {
  const Bound prefill = bound_of(attention_json(128, 512, 4, "int8"));
  const Bound decode = bound_of(attention_json(1, 512, 4, "int8", 128));
  EXPECT_EQ(prefill.compute_cycles, 9216);
  EXPECT_GT(prefill.compute_cycles, prefill.memory_cycles);
  EXPECT_GT(prefill.utilization, 0.2);
  EXPECT_EQ(decode.compute_cycles, 40);
  EXPECT_GT(decode.memory_cycles, 50 * decode.compute_cycles);
  EXPECT_LT(decode.utilization, 0.01);
  EXPECT_GT(decode.weight_stall_share, 0.8);
}

std::uint64_t model_macs(const std::string& file) {
  const Graph g = load_model(tpu::test_paths::source_dir() + "/models/" + file);
  std::uint64_t macs = 0;
  for (const Node& n : g.nodes) macs += n.macs();
  return macs;
}

// MACs of the attention models by hand. Per layer of S tokens, d_model D, H heads of D / H,
// a cache (or the tokens themselves) of T keys and an FFN of F: projections q, k, v, o
// 4 * S * D * D (decode against a cache: q and o only, 2 * D * D), scores and context
// 2 * S * T * (D / H) * H = 2 * S * T * D, FFN 2 * S * D * F.
TEST(AttentionModels, MacsCountedByHand) {
  // Classifier: S = T = 32, D = 64, no FFN, dense 64 -> 10: 524288 + 131072 + 640.
  EXPECT_EQ(model_macs("attention_classifier.json"),
            4u * 32 * 64 * 64 + 2u * 32 * 32 * 64 + 64u * 10);
  EXPECT_EQ(model_macs("attention_classifier.json"), 656000u);
  // BERT-Tiny layer and the GPT-style layer: S = T = 128, D = 128, F = 512:
  // 8388608 + 4194304 + 16777216 = 29360128.
  EXPECT_EQ(model_macs("bert_tiny_encoder_layer.json"), 29360128u);
  EXPECT_EQ(model_macs("gpt_tiny_decoder_layer.json"), 29360128u);
  // Decode: S = 1, T = 128: 2 * 128 * 128 + 2 * 128 * 128 + 2 * 128 * 512 = 196608.
  EXPECT_EQ(model_macs("gpt_tiny_decode_step.json"), 196608u);
}

// Random tensor matmuls on small arrays, so K, N and M span several tiles and several M tiles
// per part: a and b computed from generated inputs by 1-wide conv1d layers (b right before the
// matmul, the race above), either orientation, 1 to 3 heads, int8 and bf16, a scaled product
// and an activation sometimes, several samples; pe agrees with fast and the check passes.
TEST(TensorMatmul, RandomShapesMatchTheReferenceInBothFidelities) {
  std::mt19937 rng(7);
  const auto pick = [&rng](std::uint32_t lo, std::uint32_t hi) {
    return std::uniform_int_distribution<std::uint32_t>(lo, hi)(rng);
  };
  for (int i = 0; i < 10; ++i) {
    Config c;
    c.array.rows = pick(4, 8);
    c.array.cols = pick(4, 8);
    c.vector.lanes = pick(1, 8);
    c.ub.capacity_bytes = pick(0, 1) ? 256 << 10 : 16 << 10;
    c.acc.capacity_bytes = pick(0, 1) ? 64 << 10 : 1 << 10;
    c.hbm.preset = pick(0, 1) ? "ideal" : "simple";
    c.mxu.weight_fifo_tiles = pick(0, 1) ? 4 : 0;
    const std::uint32_t heads = pick(1, 3), k = pick(1, 12), n = pick(1, 12), m = pick(1, 20);
    const bool transpose = pick(0, 1);
    const std::string dtype = pick(0, 1) ? "int8" : "bf16";
    const std::string act = pick(0, 2) == 0 ? R"(, "activation": "relu")" : "";
    // a: m pixels x heads * k; b: k x heads * n, or transposed n x heads * k.
    const std::uint32_t bp = transpose ? n : k, bc = heads * (transpose ? k : n);
    const std::string json =
        R"({"dtype": ")" + dtype + R"(", "batch": )" + std::to_string(pick(1, 2)) +
        R"(, "inputs": [{"name": "x", "shape": [1, )" + std::to_string(m) +
        R"(, 3]}, {"name": "y", "shape": [1, )" + std::to_string(bp) +
        R"(, 2]}], "nodes": [{"name": "a", "op": "conv1d", "inputs": ["x"], "kernel": 1, )" +
        R"("out_channels": )" + std::to_string(heads * k) +
        R"(}, {"name": "b", "op": "conv1d", "inputs": ["y"], "kernel": 1, "out_channels": )" +
        std::to_string(bc) + R"(}, {"name": "mm", "op": "matmul", "inputs": ["a", "b"], )" +
        R"("transpose_b": )" + (transpose ? "true" : "false") + R"(, "heads": )" +
        std::to_string(heads) + R"(, "scale": 0.375)" + act + R"(}], "outputs": ["mm"]})";
    SCOPED_TRACE(::testing::Message() << c.array.rows << "x" << c.array.cols << " fifo "
                                      << c.mxu.weight_fifo_tiles);
    expect_functional(c, json, "attention.json");
  }
}

// The attention models pass --check on the default config (128 x 128).
TEST(AttentionModels, PassTheirCheckOnTheDefaultConfig) {
  for (const char* file : {"attention_classifier.json", "bert_tiny_encoder_layer.json",
                           "gpt_tiny_decoder_layer.json", "gpt_tiny_decode_step.json"}) {
    const ChildOutcome out = run_in_child([&] {
      RunOptions o;
      o.check = true;
      const std::string path = tpu::test_paths::source_dir() + "/models/" + file;
      const tpu::Run r = run_model(Config(), load_model(path), path, o);
      return std::string(r.check->passed ? "PASS" : "FAIL");
    });
    EXPECT_EQ(out.ok ? out.output : out.error, "PASS") << file;
  }
}

}  // namespace
}  // namespace tpu
