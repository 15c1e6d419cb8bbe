// Change detector for timing: every bundled model on every bundled config, timing-only, must
// keep the cycle count recorded in tests/golden/zoo_cycles.json. Refactors (the multi-core
// machine, the speed work) promise not to move one simulated cycle; this test holds them to it.
// The counts themselves are justified by the hand-derived timing tests, not by this file.
//
// A deliberate timing change updates the file (each test its own pairs):
//   TPUSIM_UPDATE_GOLDEN=1 build/zoo_cycles_test
// and the commit says why the cycles moved.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/config/config.h"
#include "tools/compiler/frontend.h"
#include "tools/run/child.h"
#include "tools/run/run.h"
#include "tests/test_paths.h"

namespace tpu {
namespace {

namespace fs = std::filesystem;
const fs::path kSource = tpu::test_paths::source_dir();
const fs::path kGolden = kSource / "tests/golden/zoo_cycles.json";

#if defined(__SANITIZE_ADDRESS__)
// Sanitized builds run ten times slower: only the pairs that finish in moments.
constexpr double kMostBoundCycles = 2e5;
#else
// Pairs whose array-bound cycles (MACs / PEs) exceed this are left out (minutes each, e.g.
// ResNet-50 on the 8 x 8 teaching array); the large models still run on the large arrays.
constexpr double kMostBoundCycles = 8e6;
#endif
// Models with more weights than this are left out too: a timing-only run's host time grows
// with the bytes it streams, and GPT-3's 1.8 GB decoder layer takes minutes per config.
constexpr double kMostWeightBytes = double(1 << 30);
// Models with more weights than this (BERT-base and GPT-2 small, 85 MB) take tens of seconds
// per config: they are a test of their own, so each test stays within ctest's timeout.
constexpr double kFullSizeWeightBytes = double(64 << 20);

struct Pair {
  std::string config, model;  // paths relative to the source tree
};

// Error messages name files by absolute path; the golden file must not depend on the checkout.
std::string without_source_dir(std::string text) {
  const std::string prefix = kSource.string() + "/";
  for (std::size_t at; (at = text.find(prefix)) != std::string::npos;) text.erase(at, prefix.size());
  return text;
}

std::vector<std::string> files_under(const fs::path& dir, bool recursive) {
  std::vector<std::string> out;
  auto add = [&](const fs::directory_entry& e) {
    const std::string ext = e.path().extension().string();
    if (e.is_regular_file() && (ext == ".json" || ext == ".csv")) {
      out.push_back(fs::relative(e.path(), kSource).string());
    }
  };
  if (recursive) {
    for (const auto& e : fs::recursive_directory_iterator(dir)) add(e);
  } else {
    for (const auto& e : fs::directory_iterator(dir)) add(e);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// A model's MACs and weight bytes.
std::pair<double, double> size_of(const Graph& model) {
  double macs = 0, weight_bytes = 0;
  for (const Node& n : model.nodes) {
    macs += double(n.macs());
    weight_bytes += double(n.weight_count()) * element_bytes(model.dtype);
  }
  return {macs, weight_bytes};
}

// The pairs within the limits above; full_size: only those of models above
// kFullSizeWeightBytes, else only the others.
std::vector<Pair> pairs(bool full_size) {
  std::vector<Pair> out;
  for (const std::string& c : files_under(kSource / "configs", false)) {
    const Config config = load_config((kSource / c).string());
    for (const std::string& m : files_under(kSource / "models", true)) {
      const Graph model = load_model((kSource / m).string());
      const auto [macs, weight_bytes] = size_of(model);
      if (macs / (double(config.array.rows) * config.array.cols) <= kMostBoundCycles &&
          weight_bytes <= kMostWeightBytes && (weight_bytes > kFullSizeWeightBytes) == full_size) {
        out.push_back({c, m});
      }
    }
  }
  return out;
}

void expect_golden_cycles(const std::vector<Pair>& all) {
  // "cycles" or "error: <message>" per pair, simulated in parallel children.
  std::vector<std::string> got(all.size());
  run_in_children(
      all.size(), 2,
      [&](std::size_t i) {
        RunOptions options;
        options.timing_only = true;
        const tpu::Run run = run_model(load_config((kSource / all[i].config).string()),
                                  load_model((kSource / all[i].model).string()), all[i].model,
                                  options);
        return std::to_string(run.result.total_cycles);
      },
      [&](std::size_t i, const ChildOutcome& out) {
        got[i] = out.ok ? out.output : "error: " + without_source_dir(out.error);
      });

  nlohmann::json now;
  for (std::size_t i = 0; i < all.size(); ++i) {
    now[all[i].config][all[i].model] =
        got[i].rfind("error", 0) == 0 ? nlohmann::json(got[i]) : nlohmann::json(std::stoull(got[i]));
  }
  std::ifstream in(kGolden);
  const bool found = bool(in);
  nlohmann::json golden = found ? nlohmann::json::parse(in) : nlohmann::json::object();
  const char* update = std::getenv("TPUSIM_UPDATE_GOLDEN");
  if (update && std::string(update) == "1") {
    golden.merge_patch(now);  // this test's pairs; the other test's stay
    std::ofstream(kGolden) << golden.dump(2) << "\n";
    GTEST_SKIP() << "wrote " << kGolden << " (" << all.size() << " pairs)";
  }
  ASSERT_TRUE(found) << "no " << kGolden << ": run with TPUSIM_UPDATE_GOLDEN=1 to record it";
  for (std::size_t i = 0; i < all.size(); ++i) {
    const std::string what = all[i].model + " on " + all[i].config;
    const auto c = golden.find(all[i].config);
    if (c == golden.end() || !c->contains(all[i].model)) {
      ADD_FAILURE() << what << ": not in " << kGolden << " (now " << got[i]
                    << "); record it with TPUSIM_UPDATE_GOLDEN=1";
      continue;
    }
    EXPECT_EQ(now[all[i].config][all[i].model], c->at(all[i].model))
        << what << " changed its cycles; if that is intended, rerun with "
        << "TPUSIM_UPDATE_GOLDEN=1 and say why in the commit";
  }
}

TEST(ZooCycles, EveryBundledModelOnEveryConfigKeepsItsCycles) {
  const std::vector<Pair> all = pairs(false);
  ASSERT_GE(all.size(), 40u);
  expect_golden_cycles(all);
}

TEST(ZooCycles, FullSizeTransformersKeepTheirCycles) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "every full-size pair is above the sanitized build's kMostBoundCycles";
#endif
  const std::vector<Pair> all = pairs(true);
  ASSERT_GE(all.size(), 9u);  // BERT-base, GPT-2 prefill and decode on the large arrays
  expect_golden_cycles(all);
}

// Every bundled model small enough for a functional run in moments (at most kMostCheckMacs
// MACs, the full-size transformers excluded) passes --check on the default config: its
// simulated outputs equal the reference interpreter's (int8 bit-exact, bf16 within tolerance).
// Pairs the golden file records as errors (a model the config cannot hold) are left out.
TEST(ZooCheck, EverySmallBundledModelPassesCheckOnTheDefaultConfig) {
#if defined(__SANITIZE_ADDRESS__)
  constexpr double kMostCheckMacs = 5e7;
  constexpr std::size_t kLeastModels = 10;
#else
  constexpr std::size_t kLeastModels = 20;
  constexpr double kMostCheckMacs = 5e9;  // ResNet-50 (4.09 G) and the TPU v1 workloads
#endif
  const std::string config = "configs/default.json";
  std::ifstream in(kGolden);
  ASSERT_TRUE(in) << kGolden;
  const nlohmann::json golden = nlohmann::json::parse(in).at(config);
  std::vector<std::string> models;
  for (const std::string& m : files_under(kSource / "models", true)) {
    const Graph model = load_model((kSource / m).string());
    const auto [macs, weight_bytes] = size_of(model);
    const bool runs = golden.contains(m) && golden.at(m).is_number();
    if (runs && macs <= kMostCheckMacs && weight_bytes <= kFullSizeWeightBytes) models.push_back(m);
  }
  ASSERT_GE(models.size(), kLeastModels);
  std::vector<std::string> got(models.size());
  run_in_children(
      models.size(), 2,
      [&](std::size_t i) {
        RunOptions options;
        options.check = true;
        const tpu::Run run = run_model(load_config((kSource / config).string()),
                                       load_model((kSource / models[i]).string()), models[i],
                                       options);
        const CheckResult& c = *run.check;
        return c.passed ? std::string("passed")
                        : c.first_mismatches.empty() ? "failed" : c.first_mismatches[0];
      },
      [&](std::size_t i, const ChildOutcome& out) {
        got[i] = out.ok ? out.output : "error: " + without_source_dir(out.error);
      });
  for (std::size_t i = 0; i < models.size(); ++i) EXPECT_EQ(got[i], "passed") << models[i];
}

}  // namespace
}  // namespace tpu
