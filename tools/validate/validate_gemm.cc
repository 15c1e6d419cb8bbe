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
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <systemc>

#include "sim/config/config.h"
#include "sim/config/user_input.h"
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

// Reads the columns M, N, K and measured_us (any order, others ignored).
std::vector<Measurement> read_measurements(const std::string& path) {
  std::string why;
  const std::optional<std::string> text = tpu::read_file(path, tpu::kMaxTextInputBytes, &why);
  if (!text) throw std::runtime_error(path + ": cannot open (" + why + ")");
  const std::vector<tpu::CsvRecord> records = tpu::parse_csv(*text, path);
  if (records.empty()) throw std::runtime_error(path + ": empty file");
  const std::vector<std::string>& header = records[0].fields;
  auto column = [&](const std::string& name) {
    const auto it = std::find(header.begin(), header.end(), name);
    if (it == header.end()) {
      throw std::runtime_error(path + ":" + std::to_string(records[0].line) +
                               ": no column '" + name + "' (needs M, N, K and measured_us)");
    }
    return std::size_t(it - header.begin());
  };
  const std::size_t cm = column("M"), cn = column("N"), ck = column("K");
  const std::size_t ct = column("measured_us");
  std::vector<Measurement> rows;
  for (std::size_t i = 1; i < records.size(); ++i) {
    const std::vector<std::string>& f = records[i].fields;
    const std::string where = path + ":" + std::to_string(records[i].line) + ": ";
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
  tpu::RunOptions options;
  options.timing_only = true;
  const tpu::Run run = tpu::run_model(
      config, tpu::gemm_model("gemm", tpu::DataType::kBf16, {{g.m, g.k, g.n}}), "<gemm>", options);
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
