// Sweeps through the `tpusim` binary: expansion and validation, failed points, kill and resume,
// shards and merge.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/cli_helpers.h"
#include "tools/sweep/sweep.h"

namespace {

using tpu::test_shell::fresh_dir;
using tpu::test_shell::Outcome;
using tpu::test_shell::slurp;
using tpu::test_shell::temp_path;
using tpu::test_shell::tpusim;

const std::string kSource = TPUSIM_SOURCE_DIR;

// A sweep file in the test's temporary directory, models and base from the repo.
std::string sweep_file(const std::string& name, const std::string& axes,
                       const std::string& combine = "product",
                       const std::string& models = R"(["MODELS/convnet.json", "MODELS/mlp.json"])") {
  std::string m = models;
  for (std::size_t at; (at = m.find("MODELS")) != std::string::npos;)
    m.replace(at, 6, kSource + "/models");
  const std::string path = temp_path(name);
  std::ofstream(path) << R"({"base": ")" << kSource << R"(/configs/default.json", "models": )" << m
                      << R"(, "axes": )" << axes << R"(, "combine": ")" << combine << R"("})";
  return path;
}

std::vector<nlohmann::json> results(const std::string& dir) {
  std::vector<nlohmann::json> lines;
  std::istringstream in(slurp(dir + "/results.jsonl"));
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

TEST(SweepFile, ProductAndZipExpandInKeyOrder) {
  const tpu::Sweep product =
      tpu::load_sweep(sweep_file("p.json", R"({"array.rows": [32, 64], "hbm.preset": ["ideal", "hbm2", "hbm3"]})"));
  ASSERT_EQ(product.items.size(), 2u * 3u * 2u);
  EXPECT_EQ(product.items[2].config.hbm.preset, "hbm2");  // point 1: rows 32, hbm2; model 0
  EXPECT_EQ(product.items[2].config.array.rows, 32u);
  EXPECT_EQ(product.items[6].config.array.rows, 64u);
  const tpu::Sweep zip = tpu::load_sweep(
      sweep_file("z.json", R"({"array.rows": [32, 64], "array.cols": [16, 8]})", "zip"));
  ASSERT_EQ(zip.items.size(), 2u * 2u);
  EXPECT_EQ(zip.items[3].config.array.rows, 64u);
  EXPECT_EQ(zip.items[3].config.array.cols, 8u);
  std::set<std::string> keys;
  for (const tpu::SweepItem& i : product.items) keys.insert(i.key);
  EXPECT_EQ(keys.size(), product.items.size());
}

// Bad sweeps fail before anything runs, in one line naming the file and the point.
TEST(SweepFile, InvalidSweepsAreRefusedBeforeRunning) {
  const std::string out = fresh_dir("out");
  for (const auto& [file, needles] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {sweep_file("a.json", R"({"array.rowz": [32]})"), {"array.rowz", "array.rows"}},
           {sweep_file("b.json", R"({"array.rows": [32, 0]})"), {"point 1", "array.rows = 0"}},
           {sweep_file("c.json", R"({"array.rows": [32, 64], "array.cols": [8]})", "zip"),
            {"zip", "equal length"}},
           {sweep_file("d.json", R"({"array.rows": [32]})", "cross"), {"combine"}},
           {sweep_file("e.json", R"({"array.rows": [32]})", "product", R"(["nothere.json"])"),
            {"nothere.json"}}}) {
    const Outcome o = tpusim("sweep " + file + " --out " + out);
    EXPECT_EQ(o.exit_code, 1) << file;
    EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
    for (const std::string& n : needles) EXPECT_NE(o.err.find(n), std::string::npos) << o.err;
    EXPECT_FALSE(std::filesystem::exists(out + "/results.jsonl"));
  }
}

// A point the compiler cannot map (a 512-byte UB holds no tile) is recorded as failed with its
// message; every other item completes; the exit status says some failed.
TEST(SweepRun, ImpossiblePointIsRecordedAsFailed) {
  const std::string out = fresh_dir("out");
  const Outcome o = tpusim("sweep " +
                           sweep_file("f.json", R"({"ub.capacity_bytes": [512, 16777216]})") +
                           " --out " + out + " --jobs 2");
  EXPECT_EQ(o.exit_code, 3) << o.err;
  const std::vector<nlohmann::json> lines = results(out);
  ASSERT_EQ(lines.size(), 4u);
  for (const nlohmann::json& r : lines) {
    const bool tiny = r["axes"][0][1] == 512;
    EXPECT_EQ(r["status"], tiny ? "failed" : "ok") << r.dump();
    if (tiny) {
      EXPECT_FALSE(r["error"].get<std::string>().empty());
    } else {
      EXPECT_GT(r["totals"]["cycles"].get<double>(), 0);
    }
  }
  const std::string csv = slurp(out + "/summary.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 5);
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "item,point,ub.capacity_bytes,model,status,error,cycles,latency_us,tops,utilization,"
            "hbm_bytes,energy_uj,power_w");
}

// An energy key is an axis like any other: the points' cycles agree, and their energies differ
// by exactly the HBM bytes times the difference in pJ per byte.
TEST(SweepRun, EnergyKeysAreAxes) {
  const std::string file = sweep_file("e.json", R"({"energy.hbm_pj_per_byte": [10, 40]})",
                                      "product", R"(["MODELS/mlp.json"])");
  const std::string out = fresh_dir("energy");
  ASSERT_EQ(tpusim("sweep " + file + " --out " + out).exit_code, 0);
  std::vector<nlohmann::json> lines = results(out);
  ASSERT_EQ(lines.size(), 2u);
  std::sort(lines.begin(), lines.end(),
            [](const nlohmann::json& a, const nlohmann::json& b) { return a["item"] < b["item"]; });
  const nlohmann::json& low = lines[0]["totals"];
  const nlohmann::json& high = lines[1]["totals"];
  EXPECT_EQ(low["cycles"], high["cycles"]);
  const double hbm_bytes = low["hbm_bytes"].get<double>();
  ASSERT_GT(hbm_bytes, 0);
  const double delta_uj = hbm_bytes * (40 - 10) * 1e-6;
  EXPECT_NEAR(high["energy_uj"].get<double>() - low["energy_uj"].get<double>(), delta_uj,
              1e-9 * delta_uj);
}

// SIGKILL at random moments, several times, then --resume: every item exactly once, no torn
// line, and the same summary as an uninterrupted run.
TEST(SweepRun, KilledAndResumedEndsWithEveryItemOnce) {
  const std::string file =
      sweep_file("k.json", R"({"array.rows": [16, 32, 48, 64, 96, 128], "array.cols": [32, 128]})");
  const std::string whole = fresh_dir("whole");
  ASSERT_EQ(tpusim("sweep " + file + " --out " + whole + " --jobs 2").exit_code, 0);
  const std::string out = fresh_dir("out");
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> ms(5, 120);
  for (int kill = 0; kill < 5; ++kill) {
    if (kill == 1) {  // the first kill came before the end: this test does interrupt
      const std::string text = slurp(out + "/results.jsonl");
      EXPECT_LT(std::count(text.begin(), text.end(), '\n'), 24);
    }
    tpu::test_shell::shell("(" + tpu::test_shell::kSanitizerEnv + TPUSIM_BINARY + " sweep " +
                           file + " --out " + out + " --jobs 2 --resume & pid=$!; sleep " +
                           std::to_string((kill == 0 ? 20 : ms(rng)) / 1000.0) + "; kill -KILL $pid; wait $pid)");
  }
  ASSERT_EQ(tpusim("sweep " + file + " --out " + out + " --jobs 2 --resume").exit_code, 0);
  const std::string text = slurp(out + "/results.jsonl");
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  std::multiset<std::size_t> items;
  for (const nlohmann::json& r : results(out)) items.insert(r["item"].get<std::size_t>());
  EXPECT_EQ(items.size(), 24u);
  EXPECT_EQ(std::set<std::size_t>(items.begin(), items.end()).size(), 24u);
  EXPECT_EQ(slurp(out + "/summary.csv"), slurp(whole + "/summary.csv"));
}

// A torn last line (a kill inside a write) is cut off by --resume and its item redone.
TEST(SweepRun, ResumeCutsATornLastLine) {
  const std::string file = sweep_file("t.json", R"({"array.rows": [32, 64]})");
  const std::string out = fresh_dir("out");
  ASSERT_EQ(tpusim("sweep " + file + " --out " + out).exit_code, 0);
  const std::string text = slurp(out + "/results.jsonl");
  const std::size_t last = text.rfind('\n', text.size() - 2);
  std::ofstream(out + "/results.jsonl", std::ios::trunc) << text.substr(0, last + 20);
  EXPECT_EQ(tpusim("sweep " + file + " --out " + out).exit_code, 1);  // no --resume: refused
  ASSERT_EQ(tpusim("sweep " + file + " --out " + out + " --resume").exit_code, 0);
  EXPECT_EQ(results(out).size(), 4u);
}

// Shards 0/2 and 1/2 merged equal the unsharded run.
TEST(SweepRun, MergedShardsEqualTheUnshardedRun) {
  const std::string file =
      sweep_file("s.json", R"({"array.rows": [32, 64, 128], "hbm.preset": ["ideal", "hbm2"]})");
  const std::string whole = fresh_dir("whole"), s0 = fresh_dir("s0"), s1 = fresh_dir("s1"),
                    merged = fresh_dir("merged");
  ASSERT_EQ(tpusim("sweep " + file + " --out " + whole + " --jobs 2").exit_code, 0);
  ASSERT_EQ(tpusim("sweep " + file + " --out " + s0 + " --shard 0/2").exit_code, 0);
  ASSERT_EQ(tpusim("sweep " + file + " --out " + s1 + " --shard 1/2").exit_code, 0);
  EXPECT_EQ(results(s0).size() + results(s1).size(), 12u);
  ASSERT_EQ(tpusim("merge " + s0 + " " + s1 + " --out " + merged).exit_code, 0);
  EXPECT_EQ(slurp(merged + "/summary.csv"), slurp(whole + "/summary.csv"));
  EXPECT_EQ(results(merged).size(), 12u);
}

}  // namespace
