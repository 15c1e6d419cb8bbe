// The benchmark suite's plumbing (tools/bench/suite.h): case names, selection and one-line
// errors, and the compile time the run API reports. Nothing here is timed.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "sim/config/config.h"
#include "tools/bench/suite.h"
#include "tools/compiler/frontend.h"
#include "tools/compiler/lowering.h"
#include "tools/run/run.h"
#include "tests/test_paths.h"

namespace {

const std::vector<tpu::BenchCase> kCases = tpu::bench_cases(tpu::test_paths::source_dir());

std::vector<std::string> names(const std::vector<const tpu::BenchCase*>& cases) {
  std::vector<std::string> out;
  for (const tpu::BenchCase* c : cases) out.push_back(c->name);
  return out;
}

std::vector<std::string> selected(const std::vector<std::string>& args) {
  return names(tpu::select_cases(kCases, tpu::parse_bench_args(args)));
}

// The error a command line gets, or "" when it parses and selects.
std::string error_of(const std::vector<std::string>& args) {
  try {
    tpu::select_cases(kCases, tpu::parse_bench_args(args));
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST(BenchSuite, AllRunsEveryCaseTheIssueAsksForInSuiteOrder) {
  EXPECT_EQ(selected({"--all"}),
            (std::vector<std::string>{"resnet50-graph", "resnet50-csv", "resnet50-graph-ideal",
                                      "resnet50-csv-ideal", "gpt2", "gpt3-ffn-up", "gpt3-ffn",
                                      "gpt3-prefill", "gpt3-decode", "resnet50-check", "matmul1024-check", "matmul2048-check",
                                      "matmul128-pe", "matmul128-fast",
                                      "memtest-64mib", "sweep-100"}));
}

TEST(BenchSuite, DefaultIsTheQuickSubset) {
  std::vector<std::string> quick;
  for (const tpu::BenchCase& c : kCases)
    if (c.quick) quick.push_back(c.name);
  EXPECT_EQ(selected({}), quick);
  EXPECT_LT(quick.size(), kCases.size());
  for (const char* slow : {"gpt3-ffn-up", "gpt3-ffn", "gpt3-prefill", "gpt3-decode",
                           "resnet50-check", "matmul1024-check", "matmul2048-check", "sweep-100"})
    EXPECT_EQ(std::count(quick.begin(), quick.end(), slow), 0) << slow;
}

TEST(BenchSuite, NamedCasesRunInSuiteOrder) {
  EXPECT_EQ(selected({"--cases", "memtest-64mib,gpt2", "--repeat", "5"}),
            (std::vector<std::string>{"gpt2", "memtest-64mib"}));
  EXPECT_EQ(tpu::parse_bench_args({"--repeat", "5"}).repeat, 5);
}

TEST(BenchSuite, BadCommandLinesAreOneLineErrors) {
  const std::string unknown = error_of({"--cases", "gpt2,resnet"});
  EXPECT_NE(unknown.find("unknown case 'resnet' (allowed: resnet50-graph, "), std::string::npos)
      << unknown;
  EXPECT_NE(unknown.find("sweep-100)"), std::string::npos) << unknown;
  EXPECT_EQ(error_of({"--repeat", "0"}), "--repeat expects a whole number from 1 to 1000, not '0'");
  EXPECT_EQ(error_of({"--repeat", "3x"}), "--repeat expects a whole number from 1 to 1000, not '3x'");
  EXPECT_EQ(error_of({"--repeat"}), "--repeat needs a value");
  EXPECT_EQ(error_of({"--cases", ","}), "--cases needs at least one name");
  EXPECT_EQ(error_of({"--all", "--cases", "gpt2"}), "--all and --cases exclude each other");
  EXPECT_EQ(error_of({"--size", "1024"}),
            "unknown option '--size' (allowed: --cases A,B, --all, --list, --repeat R)");
  for (const std::string& e : {unknown, error_of({"--repeat", "0"})})
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
}

TEST(BenchSuite, EveryCaseIsDescribedAndRunnable) {
  for (const tpu::BenchCase& c : kCases) {
    EXPECT_FALSE(c.description.empty()) << c.name;
    EXPECT_TRUE(bool(c.run)) << c.name;
  }
}

const char* const kMatmul =
    R"({"name": "m", "dtype": "int8", "layers": [{"name": "g", "type": "matmul", "m": 8, "k": 8, "n": 8}]})";

TEST(RunInfo, CompileTimeIsSetWhenTheRunCompiles) {
  tpu::RunOptions options;
  options.timing_only = true;
  const tpu::Run run = tpu::run_model(tpu::default_config(), tpu::parse_model_json(kMatmul, "<m>"),
                                      "<m>", options);
  EXPECT_GT(run.info.compile_seconds, 0);
  EXPECT_GT(run.info.host_seconds, 0);
  // The process holds at least this test binary's code and the run's result.
  EXPECT_GT(run.info.host_peak_mib, 1.0);
}

TEST(RunInfo, CompileTimeIsZeroForAGivenProgram) {
  const tpu::Config config = tpu::default_config();
  tpu::CompileOptions copts;
  copts.timing_only = true;
  tpu::Program program = tpu::compile(tpu::parse_model_json(kMatmul, "<m>"), config, copts);
  tpu::RunOptions options;
  options.timing_only = true;
  const tpu::Run run = tpu::run_program(config, std::move(program), "<m>", options);
  EXPECT_EQ(run.info.compile_seconds, 0);
}

}  // namespace
