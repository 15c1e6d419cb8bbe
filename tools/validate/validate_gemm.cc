// Validation against measured hardware: runs the GEMMs of a measurement file (by default the
// 24 TPU v4 GEMMs in tools/validate/tpu_v4_gemm.csv) on a config, timing-only, and prints
// predicted beside measured time per GEMM, the mean absolute percentage error and R^2.
//
//   tpusim_validate [--data FILE] [--config FILE] [--set key=value]... [--jobs N]
//
// Each GEMM runs in its own child process (SystemC elaborates once per process), N at a time.
// The measured op is C[M,N] = A[M,K] x B[K,N]; here it is a bf16 `matmul` layer with
// m = M, k = K, n = N (the measurement is f16, which the simulator does not model).
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <systemc>

#include "sim/config/config.h"
#include "tools/compiler/frontend.h"
#include "tools/run/child.h"
#include "tools/run/run.h"

namespace {

struct Measurement {
  std::uint64_t m = 0, n = 0, k = 0;
  double measured_us = 0;
  double predicted_us = 0;
  std::string error;  // the run's one-line error, when it failed
};

std::vector<std::string> split_csv(const std::string& line) {
  std::vector<std::string> fields;
  std::stringstream s(line);
  std::string f;
  while (std::getline(s, f, ',')) {
    f.erase(0, f.find_first_not_of(" \t\r"));
    f.erase(f.find_last_not_of(" \t\r") + 1);
    fields.push_back(f);
  }
  return fields;
}

// Reads the columns M, N, K and measured_us (any order, others ignored).
std::vector<Measurement> read_measurements(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open");
  std::string line;
  if (!std::getline(in, line)) throw std::runtime_error(path + ": empty file");
  const std::vector<std::string> header = split_csv(line);
  auto column = [&](const std::string& name) {
    const auto it = std::find(header.begin(), header.end(), name);
    if (it == header.end()) {
      throw std::runtime_error(path + ": line 1: no column '" + name +
                               "' (needs M, N, K and measured_us)");
    }
    return std::size_t(it - header.begin());
  };
  const std::size_t cm = column("M"), cn = column("N"), ck = column("K");
  const std::size_t ct = column("measured_us");
  std::vector<Measurement> rows;
  for (int number = 2; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::vector<std::string> f = split_csv(line);
    const std::string where = path + ": line " + std::to_string(number) + ": ";
    if (f.size() < header.size()) throw std::runtime_error(where + "too few fields");
    Measurement r;
    try {
      std::size_t used = 0;
      auto size = [&](std::size_t c) {
        const unsigned long long v = std::stoull(f[c], &used);
        if (used != f[c].size() || v == 0 || v > (1u << 24)) throw std::invalid_argument(f[c]);
        return std::uint64_t(v);
      };
      r.m = size(cm);
      r.n = size(cn);
      r.k = size(ck);
      r.measured_us = std::stod(f[ct], &used);
      if (used != f[ct].size() || !(r.measured_us > 0)) throw std::invalid_argument(f[ct]);
    } catch (const std::exception&) {
      throw std::runtime_error(where + "M, N, K must be integers in [1, 2^24] and measured_us "
                                       "a positive number");
    }
    rows.push_back(r);
  }
  if (rows.empty()) throw std::runtime_error(path + ": no measurements");
  return rows;
}

// One GEMM's simulated time in microseconds, in this process.
std::string simulate(const tpu::Config& config, const Measurement& g) {
  std::ostringstream model;
  model << R"({"name": "gemm", "dtype": "bf16", "layers": [{"name": "gemm", "type": "matmul", )"
        << "\"m\": " << g.m << ", \"k\": " << g.k << ", \"n\": " << g.n << "}]}";
  tpu::RunOptions options;
  options.timing_only = true;
  const tpu::Run run =
      tpu::run_model(config, tpu::parse_model_json(model.str(), "<gemm>"), "<gemm>", options);
  return std::to_string(double(run.result.total_cycles) * config.period_ns() / 1000.0);
}

// Runs every GEMM in a child process, `jobs` at a time.
void run_all(const tpu::Config& config, std::vector<Measurement>& rows, unsigned jobs) {
  std::size_t done = 0;
  const bool tty = isatty(STDERR_FILENO);
  tpu::run_in_children(
      rows.size(), jobs, [&](std::size_t i) { return simulate(config, rows[i]); },
      [&](std::size_t i, const tpu::ChildOutcome& out) {
        if (out.ok) {
          rows[i].predicted_us = std::stod(out.output);
        } else {
          rows[i].error = out.error;
        }
        if (tty) std::fprintf(stderr, "\r%zu of %zu GEMMs simulated", ++done, rows.size());
      });
  if (tty) std::fprintf(stderr, "\n");
}

}  // namespace

int sc_main(int argc, char* argv[]) {
  CLI::App app{"tpusim_validate: simulated against measured GEMM times (timing-only runs)"};
  std::string data = TPUSIM_VALIDATION_DATA;
  std::string config_path = std::string(TPUSIM_SOURCE_DIR) + "/configs/tpu_v4.json";
  std::vector<std::string> overrides;
  unsigned jobs = 2;
  app.add_option("--data", data, "measurements: CSV with columns M, N, K, measured_us")
      ->capture_default_str();
  app.add_option("--config", config_path, "architecture config")->capture_default_str();
  app.add_option("--set", overrides, "config override key=value (repeatable)");
  app.add_option("--jobs", jobs, "simulations at once")->check(CLI::Range(1u, 256u))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    const tpu::Config config = tpu::load_config(config_path, overrides);
    std::vector<Measurement> rows = read_measurements(data);
    run_all(config, rows, jobs);

    std::printf("%s on %s (%s)\n", data.c_str(), config.name.c_str(), config.source.c_str());
    std::printf("%6s %6s %6s %12s %12s %8s\n", "M", "N", "K", "measured us", "predicted us",
                "error %");
    // R^2 over the GEMMs that ran: their measured mean.
    double abs_pct = 0, mean = 0, ran = 0;
    std::vector<double> errors;
    for (const Measurement& r : rows) {
      if (r.error.empty()) {
        mean += r.measured_us;
        ++ran;
      }
    }
    mean /= std::max(ran, 1.0);
    double ss_res = 0, ss_tot = 0;
    int failed = 0;
    for (const Measurement& r : rows) {
      if (!r.error.empty()) {
        std::printf("%6llu %6llu %6llu %12.3f  failed: %s\n", (unsigned long long)r.m,
                    (unsigned long long)r.n, (unsigned long long)r.k, r.measured_us,
                    r.error.c_str());
        ++failed;
        continue;
      }
      const double e = (r.predicted_us - r.measured_us) / r.measured_us;
      errors.push_back(e);
      abs_pct += std::fabs(e);
      ss_res += (r.predicted_us - r.measured_us) * (r.predicted_us - r.measured_us);
      ss_tot += (r.measured_us - mean) * (r.measured_us - mean);
      std::printf("%6llu %6llu %6llu %12.3f %12.3f %+8.1f\n", (unsigned long long)r.m,
                  (unsigned long long)r.n, (unsigned long long)r.k, r.measured_us,
                  r.predicted_us, 100 * e);
    }
    if (errors.empty()) return 1;
    std::sort(errors.begin(), errors.end());
    std::printf("MAPE %.1f %%, median error %+.1f %%, R^2 %.3f over %zu GEMMs\n",
                100 * abs_pct / double(errors.size()), 100 * errors[errors.size() / 2],
                ss_tot > 0 ? 1 - ss_res / ss_tot : 0.0, errors.size());
    return failed ? 1 : 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tpusim_validate: error: %s\n", e.what());
    return 1;
  }
}

int main(int argc, char* argv[]) { return tpu::run_sc_main(argc, argv); }
