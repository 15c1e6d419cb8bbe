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
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/cli_helpers.h"
#include "tools/sweep/slurm.h"
#include "tools/sweep/sweep.h"
#include "tests/test_paths.h"

namespace {

using tpu::test_shell::fresh_dir;
using tpu::test_shell::Outcome;
using tpu::test_shell::slurp;
using tpu::test_shell::temp_path;
using tpu::test_shell::tpusim;

const std::string kSource = tpu::test_paths::source_dir();

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
    tpu::test_shell::shell("(" + tpu::test_shell::kSanitizerEnv + tpu::test_paths::binary() + " sweep " +
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

// --slurm writes an array script and a merge script. Run by bash as Slurm would (task i with
// SLURM_ARRAY_TASK_ID=i, from another directory), they give the local run's results, through
// an output path with a space, a quote and a % given relative to the directory tpusim ran in.
TEST(SweepSlurm, ScriptsRunTheShardsAndMergeIntoTheLocalResult) {
  const std::string file = sweep_file(
      "sl.json", R"({"array.rows": [32, 64], "hbm.preset": ["ideal", "hbm2"]})", "product",
      R"(["MODELS/mlp.json"])");
  const std::string whole = fresh_dir("whole"), work = fresh_dir("work");
  ASSERT_EQ(tpusim("sweep " + file + " --out " + whole + " --jobs 2").exit_code, 0);
  const Outcome o = tpu::test_shell::shell(
      "cd '" + work + "' && " + tpu::test_shell::kSanitizerEnv + tpu::test_paths::binary() + " sweep " +
      file + " --out \"out 100% it's\" --slurm --shards 3 --jobs 2");
  ASSERT_EQ(o.exit_code, 0) << o.err;
  const std::string out = work + "/out 100% it's";
  const std::string array = out + "/sweep.sbatch", merge = out + "/merge.sbatch";
  EXPECT_NE(o.out.find("sbatch --parsable " + tpu::shell_quote(array)), std::string::npos)
      << o.out;
  EXPECT_NE(o.out.find("--dependency=afterok:${array%%;*} " + tpu::shell_quote(merge)),
            std::string::npos) << o.out;
  const std::string script = slurp(array);
  // Three tasks 0..2 of two CPUs each; Slurm reads %% in --output as a plain %.
  for (const std::string& line : std::vector<std::string>{
           "#SBATCH --array=0-2\n", "#SBATCH --cpus-per-task=2\n",
        "#SBATCH \"--output=" + work + "/out 100%% it's/logs/shard-%a.log\"\n",
           " --shard \"$SLURM_ARRAY_TASK_ID\"/3 --jobs 2 --resume\n"})
    EXPECT_NE(script.find(line), std::string::npos) << line << "\nin\n" << script;
  EXPECT_NE(slurp(merge).find("#SBATCH \"--output=" + work + "/out 100%% it's/logs/merge.log\"\n"),
            std::string::npos) << slurp(merge);
  EXPECT_TRUE(std::filesystem::is_directory(out + "/logs"));

  const std::string env = "cd / && " + tpu::test_shell::kSanitizerEnv;
  for (int task = 0; task < 3; ++task) {
    const Outcome t = tpu::test_shell::shell(env + "SLURM_ARRAY_TASK_ID=" + std::to_string(task) +
                                             " bash " + tpu::shell_quote(array));
    ASSERT_EQ(t.exit_code, 0) << t.err;
  }
  // Items 0..3 by index % 3: shard 0 has items 0 and 3, shards 1 and 2 one each.
  EXPECT_EQ(results(out + "/shard-0").size(), 2u);
  EXPECT_EQ(results(out + "/shard-1").size(), 1u);
  EXPECT_EQ(results(out + "/shard-2").size(), 1u);
  // A resubmitted task resumes: nothing is run or recorded twice.
  const std::string task0 = env + "SLURM_ARRAY_TASK_ID=0 bash " + tpu::shell_quote(array);
  ASSERT_EQ(tpu::test_shell::shell(task0).exit_code, 0);
  EXPECT_EQ(results(out + "/shard-0").size(), 2u);
  const Outcome m = tpu::test_shell::shell(env + "bash " + tpu::shell_quote(merge));
  ASSERT_EQ(m.exit_code, 0) << m.err;
  EXPECT_EQ(slurp(out + "/summary.csv"), slurp(whole + "/summary.csv"));
  EXPECT_EQ(results(out).size(), 4u);
}

// A stand-in sbatch on PATH: records each call's arguments (one a line, then "--") and prints
// a job id, 4242;cluster for the first call (the --parsable form with a cluster) and 4243 for
// the second; the call numbered FAIL_AT fails as sbatch does.
std::string fake_sbatch(const std::string& log, int fail_at = 0) {
  const std::string dir = fresh_dir("bin" + std::to_string(fail_at));
  std::ofstream(dir + "/sbatch")
      << "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done >> '" << log << "'\n"
      << "echo -- >> '" << log << "'\nn=$(grep -c '^--$' '" << log << "')\n"
      << "if [ \"$n\" -eq " << fail_at << " ]; then\n"
      << "  echo 'sbatch: error: Batch job submission failed: Invalid partition name "
         "specified' >&2\n"
      << "  exit 1\nfi\n"
      << "if [ \"$n\" -eq 1 ]; then echo '4242;cluster'; else echo 4243; fi\n";
  std::filesystem::permissions(dir + "/sbatch", std::filesystem::perms::owner_all);
  return "PATH='" + dir + "':\"$PATH\" ";
}

std::string slurm_sweep_file() {
  return sweep_file("sb.json", R"({"array.rows": [32, 64]})", "product",
                    R"(["MODELS/mlp.json"])");
}

// --submit: the array with --parsable, then the merge depending on the array's id (the cluster
// name cut off); both scripts carry the --sbatch-option values as single #SBATCH words.
TEST(SweepSlurm, SubmitWiresTheMergeAfterTheArray) {
  const std::string out = fresh_dir("out"), log = temp_path("sbatch.log");
  std::filesystem::remove(log);
  const Outcome o = tpusim("sweep " + slurm_sweep_file() + " --out " + out +
                               " --slurm --shards 2 --submit --sbatch-option=--partition=long "
                               "'--sbatch-option=--comment=a b'",
                           fake_sbatch(log));
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(slurp(log), "--parsable\n" + out + "/sweep.sbatch\n--\n--parsable\n"
                        "--dependency=afterok:4242\n" + out + "/merge.sbatch\n--\n");
  EXPECT_NE(o.out.find("array job 4242 (2 tasks) and merge job 4243"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("squeue -j 4242,4243"), std::string::npos) << o.out;
  for (const std::string& script : {out + "/sweep.sbatch", out + "/merge.sbatch"}) {
    const std::string text = slurp(script);
    EXPECT_NE(text.find("#SBATCH \"--partition=long\"\n#SBATCH \"--comment=a b\"\n"),
              std::string::npos) << text;
  }
  EXPECT_NE(slurp(out + "/merge.sbatch").find(" merge '" + out + "'/shard-{0..1} --out '" + out +
                                              "'\n"),
            std::string::npos);
}

// sbatch missing or failing, and bad --slurm arguments: one line, exit 1.
TEST(SweepSlurm, ErrorsAreOneLine) {
  const std::string out = fresh_dir("out"), log = temp_path("sbatch.log"),
                    empty = fresh_dir("empty");
  const std::string sweep = "sweep " + slurm_sweep_file() + " --out " + out + " ";
  for (const auto& [args, prefix, needles] :
       std::vector<std::tuple<std::string, std::string, std::vector<std::string>>>{
           {"--slurm --shards 2 --submit", "PATH='" + empty + "' ", {"sbatch", "not on PATH"}},
           {"--slurm --shards 2 --submit", fake_sbatch(log, 1),
            {"sweep.sbatch failed (exit status 1)", "Invalid partition name specified"}},
           {"--slurm --shards 2 --submit", fake_sbatch(log, 2),
            {"merge.sbatch failed", "array job 4242 was submitted", "scancel 4242"}},
           {"--slurm --shards 0", "", {"--shards expects N >= 1", "got 0"}},
           {"--slurm --shards -1", "", {"--shards expects N >= 1", "got -1"}},
           {"--slurm --shards 3", "", {"--shards 3 is more than the 2 items"}},
           {"--slurm", "", {"--shards"}},
           {"--shards 2", "", {"--slurm"}},
           {"--submit", "", {"--slurm"}},
           {"--slurm --shards 2 --shard 0/2", "", {"--shard"}},
           {"--slurm --shards 2 \"--sbatch-option=--comment=it's \\\"x\\\"\"", "",
            {"--sbatch-option", "both quote characters"}}}) {
    std::filesystem::remove(log);
    const Outcome o = tpusim(sweep + args, prefix);
    EXPECT_EQ(o.exit_code, 1) << args << "\n" << o.out;
    EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << args << "\n" << o.err;
    for (const std::string& n : needles) EXPECT_NE(o.err.find(n), std::string::npos) << o.err;
  }
}

}  // namespace
