// The full-size transformers of the model zoo (models/README.md): BERT-base, GPT-2 small
// (prefill and decode) and one GPT-3 175B decoder layer (prefill and decode). Their JSON is
// written by transformer_json() below and committed; the first test holds the files to it:
//   TPUSIM_UPDATE_GOLDEN=1 build/zoo_models_test
// rewrites them. Then their MACs by hand, the bound each regime hits on the default config,
// and a KV cache larger than HBM.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <utility>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/config/config.h"
#include "tools/compiler/frontend.h"
#include "tools/compiler/lowering.h"
#include "tools/run/child.h"
#include "tools/run/run.h"
#include "tools/run/zoo_table.h"
#include "tests/test_paths.h"

namespace tpu {
namespace {

using nlohmann::ordered_json;
const std::string kModels = tpu::test_paths::source_dir() + "/models/";

// A stack of transformer layers over 1 x S x D tokens, int8. Encoder: BERT's post-norm layer
// (attention, add & layer norm, GELU FFN, add & layer norm, epsilon 1e-12). Decoder: GPT's
// pre-norm layer (layer norm, causal attention, add, layer norm, GELU MLP, add) and, with
// several layers, the final layer norm. Decode (cache > 0): S = 1 and each layer's scores read
// a KV cache of `cache` tokens in HBM (graph inputs <layer>k_cache, <layer>v_cache); the new
// token's key and value are computed and written to HBM as graph outputs, the cache append.
// The layers are those of bert_tiny_encoder_layer.json and gpt_tiny_decoder_layer.json.
struct Transformer {
  std::string name, description;
  bool decoder = true;
  std::uint32_t layers = 1, d_model = 0, heads = 0, ffn = 0, tokens = 0, cache = 0;
};

ordered_json transformer_json(const Transformer& t) {
  const std::uint32_t D = t.d_model, H = t.heads, S = t.tokens;
  const std::uint32_t T = t.cache > 0 ? t.cache : S;  // keys each query attends to
  ordered_json inputs = ordered_json::array(), nodes = ordered_json::array(),
               outputs = ordered_json::array();
  inputs.push_back({{"name", "x"}, {"shape", {1, S, D}}});
  const auto node = [&](const std::string& name, const char* op,
                        const std::vector<std::string>& in) -> ordered_json& {
    nodes.push_back({{"name", name}, {"op", op}, {"inputs", in}});
    return nodes.back();
  };
  // Per-token dense layers are 1-wide conv1d (`dense` would flatten the tokens).
  const auto dense = [&](const std::string& name, const std::string& in, std::uint32_t units,
                         const char* activation = nullptr) {
    ordered_json& n = node(name, "conv1d", {in});
    n["out_channels"] = units;
    n["kernel"] = 1;
    if (activation != nullptr) n["activation"] = activation;
  };
  // Multi-head attention of `in`, ending in the output projection p + "attn_proj".
  const auto attention = [&](const std::string& p, const std::string& in) {
    dense(p + "attn_q", in, D);
    dense(p + "attn_k", in, D);
    dense(p + "attn_v", in, D);
    std::string k = p + "attn_k", v = p + "attn_v";
    if (t.cache > 0) {
      k = p + "k_cache";
      v = p + "v_cache";
      for (const std::string& c : {k, v}) inputs.push_back({{"name", c}, {"shape", {1, T, D}}});
      outputs.push_back(p + "attn_k");
      outputs.push_back(p + "attn_v");
    }
    ordered_json& s = node(p + "attn_scores", "matmul", {p + "attn_q", k});
    s["transpose_b"] = true;
    s["heads"] = H;
    s["scale"] = 1.0 / std::sqrt(double(D / H));
    // One head's row of T scores per pixel for the softmax, and back for the context. An
    // image row holds whole queries (q of them, H pixels each) and at most the 65535 pixels
    // an instruction addresses: GPT-3's 2048 x 96 rows become 4 image rows of 512 queries.
    std::uint32_t q = S;
    while (q % 2 == 0 && std::uint64_t(q) * H > 65535) q /= 2;
    node(p + "attn_scores_by_head", "reshape", {p + "attn_scores"})["shape"] = {S / q, q * H, T};
    ordered_json& softmax = node(p + "attn_probs", "softmax", {p + "attn_scores_by_head"});
    if (t.decoder && t.cache == 0) {
      softmax["causal"] = true;
      softmax["heads"] = H;
    }
    node(p + "attn_probs_by_token", "reshape", {p + "attn_probs"})["shape"] = {1, S, H * T};
    node(p + "attn_context", "matmul", {p + "attn_probs_by_token", v})["heads"] = H;
    dense(p + "attn_proj", p + "attn_context", D);
  };
  std::string x = "x";
  for (std::uint32_t l = 0; l < t.layers; ++l) {
    const std::string p = t.layers > 1 ? "l" + std::to_string(l) + "/" : "";
    if (t.decoder) {
      node(p + "ln1", "layernorm", {x});
      attention(p, p + "ln1");
      node(p + "attn_residual", "add", {p + "attn_proj", x});
      node(p + "ln2", "layernorm", {p + "attn_residual"});
      dense(p + "mlp_up", p + "ln2", t.ffn, "gelu");
      dense(p + "mlp_down", p + "mlp_up", D);
      node(p + "mlp_residual", "add", {p + "mlp_down", p + "attn_residual"});
      x = p + "mlp_residual";
    } else {
      attention(p, x);
      node(p + "attn_residual", "add", {p + "attn_proj", x});
      node(p + "attn_norm", "layernorm", {p + "attn_residual"})["epsilon"] = 1e-12;
      dense(p + "ffn_up", p + "attn_norm", t.ffn, "gelu");
      dense(p + "ffn_down", p + "ffn_up", D);
      node(p + "ffn_residual", "add", {p + "ffn_down", p + "attn_norm"});
      node(p + "ffn_norm", "layernorm", {p + "ffn_residual"})["epsilon"] = 1e-12;
      x = p + "ffn_norm";
    }
  }
  if (t.decoder && t.layers > 1) {
    node("ln_f", "layernorm", {x});
    x = "ln_f";
  }
  outputs.push_back(x);
  return {{"name", t.name},   {"description", t.description}, {"dtype", "int8"},
          {"inputs", inputs}, {"nodes", nodes},               {"outputs", outputs}};
}

// The committed models. Sizes: BERT-base from Devlin et al. 2019 (BERT_BASE: L = 12,
// H = 768, A = 12, intermediate 4H); GPT-2 small from Radford et al. 2019 and its released
// 124M config (n_layer 12, n_embd 768, n_head 12, n_ctx 1024, MLP 4 x n_embd); GPT-3 175B
// from Brown et al. 2020, Table 2.1 (n_layers 96, d_model 12288, n_heads 96, d_head 128,
// n_ctx 2048, FFN 4 x d_model).
std::vector<Transformer> zoo() {
  const std::string gpt2 =
      "GPT-2 small (Radford et al. 2019, the 124M config: 12 layers, d_model 768, 12 heads of "
      "64, MLP 3072), int8: 12 pre-norm decoder layers as in gpt_tiny_decoder_layer.json and "
      "the final layer norm; the embeddings and the LM head are left out. ";
  const std::string gpt3 =
      "One decoder layer of GPT-3 175B (Brown et al. 2020, Table 2.1: d_model 12288, 96 heads "
      "of 128, FFN 4 x d_model = 49152; the model has 96), int8, pre-norm with dense "
      "attention (GPT-3 alternates dense and locally banded sparse layers). ";
  const std::string cache =
      " The new token's key and value are computed and written to HBM as graph outputs (the "
      "cache append); the scores read the cache in place from HBM, so the step streams every "
      "weight and the whole cache once (memory-bound)";
  return {
      {"bert_base",
       "BERT-base encoder (Devlin et al. 2019, BERT_BASE: 12 layers, hidden 768, 12 heads of "
       "64, intermediate 3072) at sequence 128, int8: 12 post-norm layers as in "
       "bert_tiny_encoder_layer.json (attention, add & layer norm, GELU FFN, add & layer "
       "norm); the embeddings and the pooler are left out",
       false, 12, 768, 12, 3072, 128, 0},
      {"gpt2_small_prefill", gpt2 + "Prefill of 512 tokens with causal attention", true, 12,
       768, 12, 3072, 512, 0},
      {"gpt2_small_decode",
       gpt2 + "One decode step: one token against a KV cache of 512 tokens per layer (graph "
              "inputs l<i>/k_cache, l<i>/v_cache of 1 x 512 x 768)." + cache,
       true, 12, 768, 12, 3072, 1, 512},
      {"gpt3_layer_prefill", gpt3 + "Prefill of 2048 tokens (its context) with causal attention",
       true, 1, 12288, 96, 49152, 2048, 0},
      {"gpt3_layer_decode",
       gpt3 + "One decode step: one token against a KV cache of 2048 tokens (graph inputs "
              "k_cache, v_cache of 1 x 2048 x 12288)." + cache,
       true, 1, 12288, 96, 49152, 1, 2048},
  };
}

std::string file_text(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(TransformerZoo, CommittedModelsMatchTheirGenerator) {
  const char* update = std::getenv("TPUSIM_UPDATE_GOLDEN");
  for (const Transformer& t : zoo()) {
    const std::string path = kModels + t.name + ".json";
    const std::string text = transformer_json(t).dump(2) + "\n";
    if (update && std::string(update) == "1") {
      std::ofstream(path) << text;
      continue;
    }
    EXPECT_EQ(file_text(path), text)
        << path << " differs from its generator; rerun with TPUSIM_UPDATE_GOLDEN=1";
  }
}

std::uint64_t macs_of(const Graph& g) {
  std::uint64_t macs = 0;
  for (const Node& n : g.nodes) macs += n.macs();
  return macs;
}
std::uint64_t model_macs(const std::string& file) { return macs_of(load_model(kModels + file)); }

// Per layer of S tokens, d_model D, FFN F and T keys per query (T = S, or the cache):
// projections q, k, v, o 4 * S * D^2; scores and context 2 * S * T * (D / H) * H =
// 2 * S * T * D; FFN 2 * S * D * F. Layer norms, softmax, GELU and adds are no MACs.
std::uint64_t layer_macs(std::uint64_t S, std::uint64_t D, std::uint64_t F, std::uint64_t T) {
  return 4 * S * D * D + 2 * S * T * D + 2 * S * D * F;
}

TEST(TransformerZoo, MacsCountedByHand) {
  // BERT-base, S = 128: 12 x (301,989,888 + 25,165,824 + 603,979,776) = 11,173,625,856,
  // the 11.2 G (22.4 GFLOPs) usually quoted for BERT-base at sequence 128.
  EXPECT_EQ(model_macs("bert_base.json"), 12 * layer_macs(128, 768, 3072, 128));
  EXPECT_NEAR(double(model_macs("bert_base.json")), 11.2e9, 0.01 * 11.2e9);
  // GPT-2 small prefill, S = 512: 12 x 4,026,531,840 = 48,318,382,080, about 2 x 85 M
  // non-embedding parameters per token (85 M x 512 = 43.5 G) plus attention's 4.8 G.
  EXPECT_EQ(model_macs("gpt2_small_prefill.json"), 12 * layer_macs(512, 768, 3072, 512));
  EXPECT_EQ(model_macs("gpt2_small_prefill.json"), 48318382080u);
  // Decode, S = 1 against T = 512 (k and v of the new token included): 12 x 7,864,320.
  EXPECT_EQ(model_macs("gpt2_small_decode.json"), 12 * layer_macs(1, 768, 3072, 512));
  EXPECT_EQ(model_macs("gpt2_small_decode.json"), 94371840u);
  // GPT-3 layer prefill, S = 2048: 3.81 T MACs, of which 12 x d^2 = 1.81 G parameters per
  // token (1/96 of the 174.6 G non-embedding parameters) give 3.71 T.
  EXPECT_EQ(model_macs("gpt3_layer_prefill.json"), layer_macs(2048, 12288, 49152, 2048));
  EXPECT_EQ(model_macs("gpt3_layer_prefill.json"), 3813930958848u);
  // Decode against 2048 keys: 603,979,776 + 50,331,648 + 1,207,959,552.
  EXPECT_EQ(model_macs("gpt3_layer_decode.json"), layer_macs(1, 12288, 49152, 2048));
  EXPECT_EQ(model_macs("gpt3_layer_decode.json"), 1862270976u);
  // MLP0 of the TPU v1 paper: five 2000 x 2000 layers on a batch of 200.
  EXPECT_EQ(model_macs("tpu_v1_mlp0.json"), 5u * 200 * 2000 * 2000);
}

// The report's totals of a timing-only run on the default config (128 x 128 at 940 MHz, HBM2
// at 256 GB/s peak), in a child process (one simulation per process).
nlohmann::json totals_of(const Graph& model) {
  const ChildOutcome out = run_in_child([&] {
    RunOptions o;
    o.timing_only = true;
    return run_model(Config(), model, model.name, o).report_json()["total"].dump();
  });
  if (!out.ok) throw std::runtime_error(out.error);
  return nlohmann::json::parse(out.output);
}

Graph graph_of(const Transformer& t) {
  return parse_model_json(transformer_json(t).dump(), t.name + ".json");
}

// One GPT-2 small layer (D 768, 12 heads, F 3072). Prefill of 512 tokens: 4,026,531,840 MACs
// = 245,760 cycles of the full array, against 7.1 MB of weights, the 12 x 512 x 512 scores
// and probabilities (3.1 MB each) written and read back and q, k, v and the context (0.4 MB
// each) read from HBM, 24 MB that HBM moves in about 88k cycles (272 bytes per cycle):
// compute-bound; the MXU rarely waits for weights (its waits are for the vector unit to
// drain the accumulators). Decode of one token against a 512-token cache: 7,864,320 MACs = 480
// array cycles against the same 7.1 MB of weights plus 0.8 MB of cache, about 29k cycles of
// HBM at peak: memory-bound, every weight tile streams one row and the MXU waits on weights
// nearly all the time.
TEST(TransformerZoo, Gpt2LayerDecodeIsMemoryBoundAndPrefillComputeBound) {
  const Config c;
  const double pes = double(c.array.rows) * c.array.cols;
  const auto bounds = [&](const nlohmann::json& t) {
    return std::pair{std::ceil(t["macs"].get<double>() / pes),
                     (t["hbm_read_bytes"].get<double>() + t["hbm_write_bytes"].get<double>()) /
                         c.hbm_peak_bytes_per_cycle()};
  };
  const nlohmann::json prefill =
      totals_of(graph_of({"gpt2_layer_prefill", "", true, 1, 768, 12, 3072, 512, 0}));
  const auto [prefill_compute, prefill_memory] = bounds(prefill);
  EXPECT_EQ(prefill_compute, 245760);
  EXPECT_GT(prefill_compute, 2 * prefill_memory);
  EXPECT_GT(prefill["utilization"].get<double>(), 0.15);
  EXPECT_LT(prefill["stall_cycles"].value("weights", 0.0),
            0.2 * prefill["cycles"].get<double>());

  const nlohmann::json decode =
      totals_of(graph_of({"gpt2_layer_decode", "", true, 1, 768, 12, 3072, 1, 512}));
  const auto [decode_compute, decode_memory] = bounds(decode);
  EXPECT_EQ(decode_compute, 480);
  EXPECT_GT(decode_memory, 20 * decode_compute);
  EXPECT_LT(decode["utilization"].get<double>(), 0.01);
  EXPECT_GT(decode["waiting_share"].get<double>(), 0.8);
  EXPECT_GT(decode["stall_cycles"].value("weights", 0.0),
            0.8 * decode["cycles"].get<double>());
  EXPECT_LT(decode["matmul_share"].get<double>(), 0.02);
}

// A GPT-2 small layer decoding against a cache of a million tokens on the edge config:
// 2 x 1,000,000 x 768 int8 = 1.5 GB of cache in its 1 GiB of HBM. One line naming the cache
// and the node that reads it.
TEST(TransformerZoo, KvCacheLongerThanHbmHoldsIsOneLineNamingIt) {
  CompileOptions timing;
  timing.timing_only = true;
  try {
    compile(graph_of({"long_cache", "", true, 1, 768, 12, 3072, 1, 1000000}),
            load_config(tpu::test_paths::source_dir() + "/configs/edge_32x32.json"), timing);
    ADD_FAILURE() << "compiled";
  } catch (const CompileError& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    EXPECT_EQ(what.rfind("long_cache.json: model needs ", 0), 0u) << what;
    EXPECT_NE(what.find("but hbm.capacity_bytes = 1073741824"), std::string::npos) << what;
    EXPECT_NE(what.find("(largest tensor 'k_cache', 768000000 bytes, read by node 4 "
                        "'attn_scores')"),
              std::string::npos)
        << what;
  }
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// `tpusim table`: a row per model per config with the cycles the zoo golden file records for
// the pair; a pair above the bound limit is listed as skipped. conv.json: 28 x 28 x 128 outputs
// of 3 x 3 x 64 taps = 57.8 M MACs, 903 k cycles on 8 x 8 PEs; mlp.json: 16 x (784 x 256 +
// 256 x 128 + 128 x 10) = 3.76 M MACs.
TEST(ZooTable, OneRowPerModelAndConfigWithTheRunsCycles) {
  const std::string src = tpu::test_paths::source_dir();
  ZooTableOptions o;
  o.models = {src + "/models/mlp.json", src + "/models/conv.json"};
  o.configs = {src + "/configs/default.json", src + "/configs/teach_8x8.json"};
  o.max_bound_cycles = 1e5;
  const std::vector<std::string> lines = lines_of(zoo_table(o));
  ASSERT_EQ(lines.size(), 6u);
  EXPECT_EQ(lines[0].rfind("| model | config | MACs | cycles | latency | util % |", 0), 0u);
  std::ifstream in(src + "/tests/golden/zoo_cycles.json");
  const nlohmann::json golden = nlohmann::json::parse(in);
  const auto cycles = [&](const char* config, const char* model) {
    return std::to_string(golden["configs/" + std::string(config)]["models/" + std::string(model)]
                              .get<std::uint64_t>());
  };
  EXPECT_EQ(lines[2].rfind("| mlp | default | 3.76M | " + cycles("default.json", "mlp.json") +
                               " | ",
                           0),
            0u)
      << lines[2];
  EXPECT_EQ(lines[3].rfind("| mlp | teach_8x8 | 3.76M | " +
                               cycles("teach_8x8.json", "mlp.json") + " | ",
                           0),
            0u)
      << lines[3];
  EXPECT_EQ(lines[4].rfind("| conv | default | 57.8M | " + cycles("default.json", "conv.json") +
                               " | ",
                           0),
            0u)
      << lines[4];
  EXPECT_EQ(lines[5], "| conv | teach_8x8 | 57.8M | skipped: 903k array-bound cycles (limit "
                      "100k) |  |  |  |  |  |  |");
  for (const std::string& line : lines) {
    EXPECT_EQ(std::count(line.begin(), line.end(), '|'), 11) << line;
  }
}

}  // namespace
}  // namespace tpu
