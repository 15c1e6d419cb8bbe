// Benchmark: simulation speed and memory of one large int8 matmul in each simulator mode,
// beside a plain C++ int8 GEMM of the same size timed in the same run.
//
//   tpusim_bench [--size N] [--repeat R] [--config FILE] [--modes fast,pe,timing]
//
// SystemC elaborates once per process, so every simulation runs in a forked child; the parent
// collects the child's simulate() wall time through a pipe and its peak RSS from wait4().
// Figures are medians over R repetitions, measured in one run so ratios are comparable on a
// noisy shared machine.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <systemc>

#include "sim/config/config.h"
#include "sim/tpu_core.h"
#include "tools/compiler/lowering.h"
#include "tools/compiler/frontend.h"

namespace {

struct Sample {
  double seconds = 0;
  double peak_mib = 0;
  std::uint64_t cycles = 0;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// The plain loop the simulator's fast mode is measured against: i-k-j order, int32 sums.
double plain_gemm_seconds(int n) {
  std::mt19937 rng(1);
  std::uniform_int_distribution<int> dist(-64, 63);
  std::vector<std::int8_t> a(std::size_t(n) * n), b(std::size_t(n) * n);
  for (auto& x : a) x = std::int8_t(dist(rng));
  for (auto& x : b) x = std::int8_t(dist(rng));
  std::vector<std::int32_t> c(std::size_t(n) * n, 0);
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    std::int32_t* crow = &c[std::size_t(i) * n];
    for (int k = 0; k < n; ++k) {
      const std::int32_t aik = a[std::size_t(i) * n + k];
      const std::int8_t* brow = &b[std::size_t(k) * n];
      for (int j = 0; j < n; ++j) crow[j] += aik * brow[j];
    }
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  volatile std::int32_t sink = c[std::size_t(n / 2) * n + n / 3];
  (void)sink;
  return s;
}

// Runs one simulation in a child process; returns its simulate() time, cycles and peak RSS.
Sample simulate_in_child(const std::string& mode, int n, const std::string& config_path) {
  int fds[2];
  if (pipe(fds) != 0) { std::perror("pipe"); std::exit(1); }
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    tpu::Config config = config_path.empty() ? tpu::default_config() : tpu::load_config(config_path);
    std::ostringstream model;
    model << R"({"name": "bench", "dtype": "int8", "layers": [{"name": "gemm", "type": "matmul", )"
          << "\"m\": " << n << ", \"k\": " << n << ", \"n\": " << n << "}]}";
    tpu::CompileOptions copts;
    copts.timing_only = mode == "timing";
    tpu::Program program = tpu::compile(tpu::parse_model_json(model.str(), "<bench>"), config, copts);
    tpu::SimOptions sim;
    sim.timing_only = mode == "timing";
    sim.fidelity = mode == "pe" ? tpu::Fidelity::kPe : tpu::Fidelity::kFast;
    auto t0 = std::chrono::steady_clock::now();
    tpu::RunResult r = tpu::simulate(config, program, sim);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::uint64_t cycles = r.total_cycles;
    if (write(fds[1], &s, sizeof s) != sizeof s || write(fds[1], &cycles, sizeof cycles) != sizeof cycles)
      _exit(1);
    _exit(0);
  }
  close(fds[1]);
  Sample out;
  bool ok = read(fds[0], &out.seconds, sizeof out.seconds) == sizeof out.seconds &&
            read(fds[0], &out.cycles, sizeof out.cycles) == sizeof out.cycles;
  close(fds[0]);
  int status = 0;
  rusage usage{};
  wait4(pid, &status, 0, &usage);
  if (!ok || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "tpusim_bench: the %s simulation failed\n", mode.c_str());
    std::exit(1);
  }
  out.peak_mib = usage.ru_maxrss / 1024.0;  // ru_maxrss is in KiB on Linux
  return out;
}

}  // namespace

int sc_main(int argc, char* argv[]) {
  int n = 1024, repeat = 3;
  std::string config_path, modes = "fast,pe,timing";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) { std::fprintf(stderr, "tpusim_bench: %s needs a value\n", a.c_str()); std::exit(1); }
      return argv[++i];
    };
    if (a == "--size") n = std::atoi(value().c_str());
    else if (a == "--repeat") repeat = std::atoi(value().c_str());
    else if (a == "--config") config_path = value();
    else if (a == "--modes") modes = value();
    else {
      std::fprintf(stderr, "usage: tpusim_bench [--size N] [--repeat R] [--config FILE] "
                           "[--modes fast,pe,timing]\n");
      return a == "--help" ? 0 : 1;
    }
  }
  if (n <= 0 || repeat <= 0) { std::fprintf(stderr, "tpusim_bench: size and repeat must be > 0\n"); return 1; }

  std::vector<double> plain;
  for (int r = 0; r < repeat; ++r) plain.push_back(plain_gemm_seconds(n));
  double plain_s = median(plain);
  double macs = double(n) * n * n;
  std::printf("int8 matmul %d x %d x %d (%.3g MACs), medians of %d runs\n", n, n, n, macs, repeat);
  std::printf("%-12s %12s %12s %14s %12s %10s\n", "mode", "wall s", "vs plain", "sim cycles/s",
              "cycles", "peak MiB");
  std::printf("%-12s %12.4f %12s %14s %12s %10s\n", "plain loop", plain_s, "1.00x", "-", "-", "-");

  std::stringstream list(modes);
  std::string mode;
  while (std::getline(list, mode, ',')) {
    if (mode != "fast" && mode != "pe" && mode != "timing") {
      std::fprintf(stderr, "tpusim_bench: unknown mode '%s' (fast, pe, timing)\n", mode.c_str());
      return 1;
    }
    std::vector<double> secs, mib;
    std::uint64_t cycles = 0;
    for (int r = 0; r < repeat; ++r) {
      Sample s = simulate_in_child(mode, n, config_path);
      secs.push_back(s.seconds);
      mib.push_back(s.peak_mib);
      cycles = s.cycles;
    }
    double s = median(secs);
    std::printf("%-12s %12.4f %11.2fx %14.3g %12llu %10.1f\n", mode.c_str(), s, s / plain_s,
                cycles / s, static_cast<unsigned long long>(cycles), median(mib));
  }
  return 0;
}

int main(int argc, char* argv[]) { return tpu::run_sc_main(argc, argv); }
