// Change detector for timing: every bundled model on every bundled config, timing-only, must
// keep the cycle count recorded in tests/golden/zoo_cycles.json. Refactors (the multi-core
// machine, the speed work) promise not to move one simulated cycle; this test holds them to it.
// The counts themselves are justified by the hand-derived timing tests, not by this file.
//
// A deliberate timing change updates the file:
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

namespace tpu {
namespace {

namespace fs = std::filesystem;
const fs::path kSource = TPUSIM_SOURCE_DIR;
const fs::path kGolden = kSource / "tests/golden/zoo_cycles.json";

#if defined(__SANITIZE_ADDRESS__)
// Sanitized builds run ten times slower: only the pairs that finish in moments.
constexpr double kMostBoundCycles = 2e5;
#else
// Pairs whose array-bound cycles (MACs / PEs) exceed this are left out (minutes each, e.g.
// ResNet-50 on the 8 x 8 teaching array); the large models still run on the large arrays.
constexpr double kMostBoundCycles = 8e6;
#endif

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

std::vector<Pair> pairs() {
  std::vector<Pair> out;
  for (const std::string& c : files_under(kSource / "configs", false)) {
    const Config config = load_config((kSource / c).string());
    for (const std::string& m : files_under(kSource / "models", true)) {
      double macs = 0;
      for (const Node& n : load_model((kSource / m).string()).nodes) macs += double(n.macs());
      if (macs / (double(config.array.rows) * config.array.cols) <= kMostBoundCycles) {
        out.push_back({c, m});
      }
    }
  }
  return out;
}

TEST(ZooCycles, EveryBundledModelOnEveryConfigKeepsItsCycles) {
  const std::vector<Pair> all = pairs();
  ASSERT_GE(all.size(), 40u);
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
  const char* update = std::getenv("TPUSIM_UPDATE_GOLDEN");
  if (update && std::string(update) == "1") {
    std::ofstream(kGolden) << now.dump(2) << "\n";
    GTEST_SKIP() << "wrote " << kGolden << " (" << all.size() << " pairs)";
  }
  std::ifstream in(kGolden);
  ASSERT_TRUE(in) << "no " << kGolden << ": run with TPUSIM_UPDATE_GOLDEN=1 to record it";
  const nlohmann::json golden = nlohmann::json::parse(in);
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

}  // namespace
}  // namespace tpu
