// Validation against measured hardware: runs the GEMMs of a measurement file (by default the
// 24 TPU v4 GEMMs in tools/validate/tpu_v4_gemm.csv) on a config, timing-only, and prints
// predicted beside measured time per GEMM, the mean absolute percentage error and R^2.
//
//   tpusim_validate [--data FILE] [--config FILE] [--set key=value]... [--jobs N] [--fit-op-start]
//
// Every run carries sequencer.op_start_cycles = kFittedOpStartCycles (the one fitted value; a
// --set after it wins). --fit-op-start runs with the key at 0, fits it and prints the fit and
// its leave-one-out errors.
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

// Fitted by --fit-op-start on tools/validate/tpu_v4_gemm.csv (2026-12-01): 29.74 us at 1050 MHz.
constexpr unsigned kFittedOpStartCycles = 31229;

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

struct Summary {
  double mape = 0, median = 0, r2 = 0;  // fractions
};

// MAPE, median signed error and R^2 (1 - residual / total sum of squares) of `predicted`.
Summary summarize(const std::vector<double>& predicted, const std::vector<double>& measured) {
  Summary s;
  double mean = 0;
  for (double t : measured) mean += t;
  mean /= double(measured.size());
  std::vector<double> errors;
  double ss_res = 0, ss_tot = 0;
  for (std::size_t i = 0; i < measured.size(); ++i) {
    const double e = (predicted[i] - measured[i]) / measured[i];
    errors.push_back(e);
    s.mape += std::fabs(e);
    ss_res += (predicted[i] - measured[i]) * (predicted[i] - measured[i]);
    ss_tot += (measured[i] - mean) * (measured[i] - mean);
  }
  s.mape /= double(errors.size());
  std::sort(errors.begin(), errors.end());
  s.median = errors[errors.size() / 2];
  s.r2 = ss_tot > 0 ? 1 - ss_res / ss_tot : 0.0;
  return s;
}

void print_summary(const char* label, const Summary& s, std::size_t n) {
  std::printf("%sMAPE %.1f %%, median error %+.1f %%, R^2 %.3f over %zu GEMMs\n", label,
              100 * s.mape, 100 * s.median, s.r2, n);
}

// The per-op time c (us) added to every prediction that minimises the sum of squared relative
// errors sum(((p_i + c - t_i) / t_i)^2), skipping GEMM `skip`: c = sum((t_i - p_i) / t_i^2) /
// sum(1 / t_i^2).
double fit_offset(const std::vector<double>& predicted, const std::vector<double>& measured,
                  std::size_t skip) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < measured.size(); ++i) {
    if (i == skip) continue;
    num += (measured[i] - predicted[i]) / (measured[i] * measured[i]);
    den += 1 / (measured[i] * measured[i]);
  }
  return num / den;
}

// Fits sequencer.op_start_cycles on predictions made with it at 0, and checks the fit by
// leave-one-out: each GEMM predicted with the offset fitted on the other ones.
void fit_op_start(const tpu::Config& config, const std::vector<double>& predicted,
                  const std::vector<double>& measured) {
  const std::size_t n = measured.size();
  const double c_us = fit_offset(predicted, measured, n);
  const double cycles = std::round(c_us * 1000.0 / config.period_ns());
  std::vector<double> fitted, loo;
  double lo = c_us, hi = c_us;
  for (std::size_t i = 0; i < n; ++i) {
    fitted.push_back(predicted[i] + cycles * config.period_ns() / 1000.0);
    const double ci = fit_offset(predicted, measured, i);
    lo = std::min(lo, ci);
    hi = std::max(hi, ci);
    loo.push_back(predicted[i] + ci);
  }
  std::printf("fitted sequencer.op_start_cycles = %.0f (%.2f us at %.0f MHz; least squares on "
              "relative errors)\n", cycles, c_us, config.clock_mhz);
  print_summary("with it:       ", summarize(fitted, measured), n);
  std::printf("leave-one-out: offsets %.2f .. %.2f us\n", lo, hi);
  print_summary("leave-one-out: ", summarize(loo, measured), n);
}

}  // namespace

int sc_main(int argc, char* argv[]) {
  CLI::App app{"tpusim_validate: simulated against measured GEMM times (timing-only runs)"};
  std::string data = TPUSIM_VALIDATION_DATA;
  std::string config_path = std::string(TPUSIM_SOURCE_DIR) + "/configs/tpu_v4.json";
  std::vector<std::string> overrides;
  unsigned jobs = 2;
  bool fit = false;
  app.add_option("--data", data, "measurements: CSV with columns M, N, K, measured_us")
      ->capture_default_str();
  app.add_option("--config", config_path, "architecture config")->capture_default_str();
  app.add_option("--set", overrides,
                 "config override key=value (repeatable; after the fitted op start cost, so "
                 "--set sequencer.op_start_cycles=0 removes it)");
  app.add_option("--jobs", jobs, "simulations at once")->check(CLI::Range(1u, 256u))
      ->capture_default_str();
  app.add_flag("--fit-op-start", fit,
               "run with sequencer.op_start_cycles = 0, then fit it and print its leave-one-out "
               "errors");
  CLI11_PARSE(app, argc, argv);
  try {
    // The one fitted value: a device op's fixed start cost, fitted on these measurements with
    // --fit-op-start (README.md, "Validation against a real TPU v4"). It is applied here, not
    // in configs/tpu_v4.json, because it describes a single XLA op as the profiler times it;
    // charged to every layer of a network it would have no published basis.
    std::vector<std::string> settings = {"sequencer.op_start_cycles=" +
                                         std::to_string(kFittedOpStartCycles)};
    settings.insert(settings.end(), overrides.begin(), overrides.end());
    if (fit) settings.push_back("sequencer.op_start_cycles=0");
    const tpu::Config config = tpu::load_config(config_path, settings);
    std::vector<Measurement> rows = read_measurements(data);
    run_all(config, rows, jobs);

    std::printf("%s on %s (%s)\n", data.c_str(), config.name.c_str(), config.source.c_str());
    std::printf("%6s %6s %6s %12s %12s %8s\n", "M", "N", "K", "measured us", "predicted us",
                "error %");
    std::vector<double> predicted, measured;
    int failed = 0;
    for (const Measurement& r : rows) {
      if (!r.error.empty()) {
        std::printf("%6llu %6llu %6llu %12.3f  failed: %s\n", (unsigned long long)r.m,
                    (unsigned long long)r.n, (unsigned long long)r.k, r.measured_us,
                    r.error.c_str());
        ++failed;
        continue;
      }
      predicted.push_back(r.predicted_us);
      measured.push_back(r.measured_us);
      std::printf("%6llu %6llu %6llu %12.3f %12.3f %+8.1f\n", (unsigned long long)r.m,
                  (unsigned long long)r.n, (unsigned long long)r.k, r.measured_us,
                  r.predicted_us, 100 * (r.predicted_us - r.measured_us) / r.measured_us);
    }
    if (measured.empty()) return 1;
    print_summary("", summarize(predicted, measured), measured.size());
    if (fit && measured.size() > 1) fit_op_start(config, predicted, measured);
    return failed ? 1 : 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tpusim_validate: error: %s\n", e.what());
    return 1;
  }
}

int main(int argc, char* argv[]) { return tpu::run_sc_main(argc, argv); }
