// Benchmark: simulation speed and memory of one large int8 matmul in each simulator mode,
// beside a plain C++ int8 GEMM of the same size timed in the same run.
//
//   tpusim_bench [--size N] [--repeat R] [--config FILE] [--modes fast,pe,timing]
//
// SystemC elaborates once per process, so every simulation runs in a child process
// (tools/run/child.h), which reports its simulate() wall time and its peak RSS.
// Figures are medians over R repetitions, measured in one run so ratios are comparable on a
// noisy shared machine.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <systemc>

#include "sim/config/config.h"
#include "tools/compiler/frontend.h"
#include "tools/run/child.h"
#include "tools/run/run.h"

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
  const tpu::ChildOutcome out = tpu::run_in_child([&] {
    tpu::Config config = config_path.empty() ? tpu::default_config() : tpu::load_config(config_path);
    std::ostringstream model;
    model << R"({"name": "bench", "dtype": "int8", "layers": [{"name": "gemm", "type": "matmul", )"
          << "\"m\": " << n << ", \"k\": " << n << ", \"n\": " << n << "}]}";
    tpu::RunOptions options;
    options.timing_only = mode == "timing";
    options.fidelity = mode == "pe" ? tpu::Fidelity::kPe : tpu::Fidelity::kFast;
    const tpu::Run run =
        tpu::run_model(config, tpu::parse_model_json(model.str(), "<bench>"), "<bench>", options);
    return std::to_string(run.info.host_seconds) + " " + std::to_string(run.result.total_cycles);
  });
  if (!out.ok) {
    std::fprintf(stderr, "tpusim_bench: the %s simulation failed: %s\n", mode.c_str(),
                 out.error.c_str());
    std::exit(1);
  }
  Sample sample;
  std::istringstream(out.output) >> sample.seconds >> sample.cycles;
  sample.peak_mib = out.max_rss_mib;
  return sample;
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
