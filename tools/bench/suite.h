#pragma once
// The benchmark suite: named cases, each timed as the median of several runs and compared with
// the figures issue 13 quotes (SCALE-Sim v2's times and memory, and tpusim's own when the issue
// was filed) and with its targets. Run on demand (README.md, "Benchmark"), never as a test.
//
// SystemC elaborates once per process, so every repetition of a case runs in a child process
// (tools/run/child.h): its wall time is taken in this process around the child (fork, config,
// compile, simulate, exit), its peak RSS comes from the kernel, its compile and simulate times
// from the run API's RunInfo.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace tpu {

// One repetition of a case. A figure a case does not have is negative.
struct BenchSample {
  double wall_seconds = 0;
  double compile_seconds = -1;
  double simulate_seconds = -1;
  std::uint64_t cycles = 0;      // simulated core cycles (summed over a sweep's items)
  double peak_mib = 0;           // the child's peak resident memory
  double plain_seconds = -1;     // a plain int8 GEMM loop of the same MACs, timed in the same run
};

// A figure quoted by the issue for the same work: time and (when given) peak memory.
struct BenchReference {
  std::string what;  // e.g. "SCALE-Sim v2: 137 s, 8.8 GB"
  double seconds = 0;
  double mib = 0;    // 0 when the issue gives no memory figure
};

// The target for a case; 0 = none for that figure.
struct BenchTarget {
  double seconds = 0;      // median wall time at most
  double mib = 0;          // median peak RSS at most
  double plain_ratio = 0;  // median wall / median plain loop at most
};

struct BenchCase {
  std::string name;
  std::string description;
  bool quick = false;  // in the default subset (a few seconds per repetition at most)
  std::optional<BenchReference> reference;
  BenchTarget target;
  std::function<BenchSample()> run;  // one repetition
};

// Every case, in the order they print. Models are read from source_dir (the repository).
std::vector<BenchCase> bench_cases(const std::string& source_dir);

struct BenchArgs {
  std::vector<std::string> cases;  // names; empty = the default subset (or every case with all)
  bool all = false;
  bool list = false;
  int repeat = 3;
};

// Parses the command line (without argv[0]); throws std::invalid_argument with a one-line
// message for an unknown option, a missing or bad value, or --all beside --cases.
BenchArgs parse_bench_args(const std::vector<std::string>& args);

// The cases to run, in suite order; throws std::invalid_argument naming an unknown case and
// the allowed names.
std::vector<const BenchCase*> select_cases(const std::vector<BenchCase>& cases,
                                           const BenchArgs& args);

// Runs `args.repeat` repetitions of each case and prints its medians as they finish, then the
// references and targets. Returns false when a run failed (its one-line error is printed).
bool run_bench(const std::vector<const BenchCase*>& cases, int repeat);

}  // namespace tpu
