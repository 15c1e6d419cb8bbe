#include "tools/bench/suite.h"

#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <utility>

#include <nlohmann/json.hpp>

#include "sim/config/config.h"
#include "sim/memtest.h"
#include "tools/compiler/frontend.h"
#include "tools/report/report.h"
#include "tools/run/child.h"
#include "tools/run/output_file.h"
#include "tools/run/run.h"
#include "tools/sweep/sweep.h"

namespace tpu {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// The issue quotes decimal gigabytes; the suite prints MiB.
constexpr double mib_of_gb(double gb) { return gb * 1e9 / (1024.0 * 1024.0); }

const BenchReference kScaleSimResnet50{"SCALE-Sim v2: 137 s, 8.8 GB", 137, mib_of_gb(8.8)};
const BenchReference kScaleSimGpt2{"SCALE-Sim v2: 716 s, 5.8 GB", 716, mib_of_gb(5.8)};

// Runs `work` in a child process and times it from here; a failed child is a one-line error.
BenchSample in_child(const std::string& what, const std::function<std::string()>& work,
                     json* result) {
  const auto t0 = Clock::now();
  const ChildOutcome out = run_in_child(work);
  BenchSample sample;
  sample.wall_seconds = seconds_since(t0);
  sample.peak_mib = out.max_rss_mib;
  if (!out.ok) throw std::runtime_error(what + ": " + out.error);
  *result = json::parse(out.output);
  return sample;
}

struct ModelRun {
  ModelRun(std::function<Graph()> m, std::vector<std::string> o = {})
      : model(std::move(m)), overrides(std::move(o)) {}
  std::function<Graph()> model;  // called in the child: parsing is part of the run
  std::vector<std::string> overrides;
  bool timing_only = true;
  Fidelity fidelity = Fidelity::kFast;
  bool check = false;
};

// One compile-and-simulate through the run API. The child reports RunInfo's times, the cycles
// and (into *macs when given) the program's useful MACs.
BenchSample run_model_once(const std::string& name, const ModelRun& spec,
                           std::uint64_t* macs = nullptr) {
  json r;
  BenchSample sample = in_child(name, [&] {
    RunOptions options;
    options.timing_only = spec.timing_only;
    options.fidelity = spec.fidelity;
    options.check = spec.check;
    const Graph model = spec.model();
    const Run run = run_model(default_config(spec.overrides), model, name, options);
    if (run.check_failed())
      throw std::runtime_error("--check failed: " + std::to_string(run.check->mismatches) +
                               " of " + std::to_string(run.check->compared) + " values wrong");
    std::uint64_t program_macs = 0;
    for (const LayerInfo& l : run.program.layers) program_macs += l.macs;
    return json{{"compile_seconds", run.info.compile_seconds},
                {"simulate_seconds", run.info.host_seconds},
                {"cycles", run.result.total_cycles},
                {"macs", program_macs}}
        .dump();
  }, &r);
  sample.compile_seconds = r["compile_seconds"];
  sample.simulate_seconds = r["simulate_seconds"];
  sample.cycles = r["cycles"];
  if (macs != nullptr) *macs = r["macs"];
  return sample;
}

std::function<Graph()> model_file(const std::string& path) {
  return [path] { return load_model(path); };
}

std::function<Graph()> gemms(const std::string& name, const std::vector<GemmShape>& shapes) {
  return [name, shapes] { return gemm_model(name, DataType::kInt8, shapes); };
}

// The host's ceiling the functional run is compared with: an i-k-j int8 GEMM with int32 sums,
// K = N = 1024 (B stays in cache) and M rows chosen for the given MACs (to within 2^20).
double plain_gemm_seconds(std::uint64_t macs) {
  constexpr std::size_t kK = 1024, kN = 1024;
  const std::size_t m = std::max<std::size_t>(1, std::size_t(std::llround(double(macs) / (kK * kN))));
  std::mt19937 rng(1);
  std::uniform_int_distribution<int> dist(-64, 63);
  std::vector<std::int8_t> a(m * kK), b(kK * kN);
  for (auto& x : a) x = std::int8_t(dist(rng));
  for (auto& x : b) x = std::int8_t(dist(rng));
  std::vector<std::int32_t> c(kN);
  std::int64_t sink = 0;
  const auto t0 = Clock::now();
  for (std::size_t i = 0; i < m; ++i) {
    std::fill(c.begin(), c.end(), 0);
    for (std::size_t k = 0; k < kK; ++k) {
      const std::int32_t aik = a[i * kK + k];
      const std::int8_t* brow = &b[k * kN];
      for (std::size_t j = 0; j < kN; ++j) c[j] += aik * brow[j];
    }
    for (const std::int32_t v : c) sink += v;  // every result is used: no work can be dropped
  }
  const double s = seconds_since(t0);
  volatile std::int64_t keep = sink;
  (void)keep;
  return s;
}

BenchSample memtest_once() {
  json r;
  BenchSample sample = in_child("memtest", [] {
    const Config config = default_config();
    const MemtestResult m = run_memtest(config, MemtestOptions{});  // 64 MiB stream
    // Memtest has no core; its simulated time is counted in core clock cycles.
    return json{{"simulate_seconds", m.wall_seconds},
                {"cycles", std::llround(m.simulated_ns * config.clock_mhz / 1000)}}
        .dump();
  }, &r);
  sample.simulate_seconds = r["simulate_seconds"];
  sample.cycles = r["cycles"];
  return sample;
}

// ConvNet, timing-only, over 100 core clocks (500..1490 MHz) through the sweep runner with two
// jobs, in a fresh temporary directory. Cycles are summed over the items.
BenchSample sweep_once(const std::string& source_dir) {
  std::string dir_template = (fs::temp_directory_path() / "tpusim_bench_XXXXXX").string();
  if (mkdtemp(dir_template.data()) == nullptr)
    throw std::runtime_error("sweep-100: cannot create a directory in " +
                             fs::temp_directory_path().string());
  const fs::path dir = dir_template;
  json clocks = json::array();
  for (int i = 0; i < 100; ++i) clocks.push_back(500 + 10 * i);
  const json sweep = {{"models", {source_dir + "/models/convnet.json"}},
                      {"axes", {{"clock_mhz", clocks}}},
                      {"timing_only", true}};
  json r;
  BenchSample sample;
  try {
    write_output_file((dir / "sweep.json").string(), sweep.dump());
    sample = in_child("sweep-100", [&] {
      SweepRunOptions options;
      options.out_dir = (dir / "out").string();
      options.jobs = 2;
      const std::size_t failed = run_sweep(load_sweep((dir / "sweep.json").string()), options);
      if (failed) throw std::runtime_error(std::to_string(failed) + " items failed");
      return std::string("{}");
    }, &r);
    std::ifstream results(dir / "out" / "results.jsonl");
    std::size_t items = 0;
    for (std::string line; std::getline(results, line); ++items)
      sample.cycles += json::parse(line)["totals"]["cycles"].get<std::uint64_t>();
    if (items != 100)
      throw std::runtime_error("sweep-100: " + std::to_string(items) + " results, not 100");
  } catch (...) {
    fs::remove_all(dir);
    throw;
  }
  fs::remove_all(dir);
  return sample;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// 2.32M, 715k: for simulated cycles per second.
std::string human(double v) {
  if (v >= 1e9) return format("%.3gG", v / 1e9);
  if (v >= 1e6) return format("%.3gM", v / 1e6);
  if (v >= 1e3) return format("%.3gk", v / 1e3);
  return format("%.3g", v);
}

struct Medians {
  double wall, wall_min, wall_max, compile, simulate, peak_mib, plain, plain_min, plain_max;
  std::uint64_t cycles;
};

Medians medians(const std::vector<BenchSample>& samples) {
  std::vector<double> wall, compile, simulate, peak, plain;
  for (const BenchSample& s : samples) {
    wall.push_back(s.wall_seconds);
    compile.push_back(s.compile_seconds);
    simulate.push_back(s.simulate_seconds);
    peak.push_back(s.peak_mib);
    plain.push_back(s.plain_seconds);
  }
  return {median(wall),     *std::min_element(wall.begin(), wall.end()),
          *std::max_element(wall.begin(), wall.end()),
          median(compile),  median(simulate), median(peak), median(plain),
          *std::min_element(plain.begin(), plain.end()),
          *std::max_element(plain.begin(), plain.end()), samples.back().cycles};
}

// "647x faster", "1.08x slower": a ratio of reference to measured, said the readable way round.
std::string times(double ratio, const char* better, const char* worse) {
  const double r = ratio >= 1 ? ratio : 1 / ratio;
  return format(r >= 10 ? "%.0fx " : "%.2fx ", r) + (ratio >= 1 ? better : worse);
}

std::string seconds_or_dash(double s) { return s < 0 ? "-" : format("%.3f", s); }

void print_case(const BenchCase& c, const Medians& m) {
  // Simulated cycles per second of simulation time, or of wall time when the case has no
  // separate simulation time (a sweep).
  const double sim_s = m.simulate > 0 ? m.simulate : m.wall;
  std::printf("%-21s %8.3f %17s %9s %8s %11s %12llu %9.1f\n", c.name.c_str(), m.wall,
              (format("%.3f", m.wall_min) + "-" + format("%.3f", m.wall_max)).c_str(),
              seconds_or_dash(m.compile).c_str(), seconds_or_dash(m.simulate).c_str(),
              human(double(m.cycles) / sim_s).c_str(), static_cast<unsigned long long>(m.cycles),
              m.peak_mib);
  if (m.plain > 0)
    std::printf("  plain int8 GEMM loop of the same MACs: %.3f s (%.3f-%.3f); run / loop %.1fx, "
                "compile / loop %.1fx\n",
                m.plain, m.plain_min, m.plain_max, m.wall / m.plain, m.compile / m.plain);
  if (c.reference) {
    const BenchReference& r = *c.reference;
    std::printf("  vs %s: %s", r.what.c_str(), times(r.seconds / m.wall, "faster", "slower").c_str());
    if (r.mib > 0) std::printf(", %s", times(r.mib / m.peak_mib, "less memory", "more memory").c_str());
    std::printf("\n");
  }
  const BenchTarget& t = c.target;
  std::string targets;
  auto add = [&](bool met, const std::string& text) {
    targets += (targets.empty() ? "" : ", ") + text + (met ? " met" : " MISSED");
  };
  if (t.seconds > 0) add(m.wall <= t.seconds, "wall <= " + format("%g", t.seconds) + " s");
  if (t.mib > 0) add(m.peak_mib <= t.mib, "peak <= " + format("%g", t.mib) + " MiB");
  if (t.plain_ratio > 0)
    add(m.wall <= t.plain_ratio * m.plain, "wall <= " + format("%g", t.plain_ratio) + "x the loop");
  if (!targets.empty()) std::printf("  target (issue 13): %s\n", targets.c_str());
  std::fflush(stdout);
}

int parse_repeat(const std::string& text) {
  std::size_t used = 0;
  int r = 0;
  try {
    r = std::stoi(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || r < 1 || r > 1000)
    throw std::invalid_argument("--repeat expects a whole number from 1 to 1000, not '" + text +
                                "'");
  return r;
}

}  // namespace

std::vector<BenchCase> bench_cases(const std::string& source_dir) {
  const std::string models = source_dir + "/models/";
  auto model_case = [](std::string name, std::string description, bool quick,
                       std::optional<BenchReference> reference, BenchTarget target,
                       ModelRun spec) {
    BenchCase c{name, std::move(description), quick, std::move(reference), target, {}};
    c.run = [name, spec] { return run_model_once(name, spec); };
    return c;
  };
  const std::vector<std::string> ideal = {"hbm.preset=ideal"};
  std::vector<BenchCase> cases;
  cases.push_back(model_case("resnet50-graph",
                             "ResNet-50, our graph (models/resnet50.json), timing-only, default "
                             "config (128 x 128, HBM2)",
                             true, kScaleSimResnet50, {0.2, 100, 0},
                             {model_file(models + "resnet50.json")}));
  cases.push_back(model_case("resnet50-csv",
                             "ResNet-50, SCALE-Sim's topology "
                             "(models/scalesim/scalesim_resnet50.csv), timing-only, default config",
                             true, kScaleSimResnet50, {0.2, 100, 0},
                             {model_file(models + "scalesim/scalesim_resnet50.csv")}));
  cases.push_back(model_case("resnet50-graph-ideal",
                             "resnet50-graph with --set hbm.preset=ideal", true, kScaleSimResnet50,
                             {0.1, 100, 0}, {model_file(models + "resnet50.json"), ideal}));
  cases.push_back(model_case("resnet50-csv-ideal", "resnet50-csv with --set hbm.preset=ideal",
                             true, kScaleSimResnet50, {0.1, 100, 0},
                             {model_file(models + "scalesim/scalesim_resnet50.csv"), ideal}));
  cases.push_back(model_case("gpt2",
                             "GPT-2's GEMM list, sequence 1024 "
                             "(models/scalesim/scalesim_gpt2.csv), timing-only, default config",
                             true, kScaleSimGpt2, {0.3, 0, 0},
                             {model_file(models + "scalesim/scalesim_gpt2.csv")}));
  cases.push_back(model_case(
      "gpt3-ffn-up", "GPT-3 175B FFN up-projection, 2048 x 12288 x 49152 int8, timing-only", false,
      BenchReference{"tpusim when issue 13 was filed: 26.5 s", 26.5, 0}, {3, 200, 0},
      {gemms("gpt3_ffn_up", {{2048, 12288, 49152}})}));
  cases.push_back(model_case(
      "gpt3-ffn",
      "GPT-3 175B FFN layer: 2048 x 12288 x 49152 then 2048 x 49152 x 12288, timing-only", false,
      std::nullopt, {0, 200, 0},
      {gemms("gpt3_ffn", {{2048, 12288, 49152}, {2048, 49152, 12288}})}));
  for (const char* phase : {"prefill", "decode"}) {
    cases.push_back(model_case(
        std::string("gpt3-") + phase,
        std::string("GPT-3 175B decoder layer, ") + phase +
            " (models/gpt3_layer_" + phase + ".json), timing-only, default config",
        false, std::nullopt, {0, 200, 0},
        {model_file(models + "gpt3_layer_" + phase + ".json")}));
  }
  // A run with data and --check, beside the plain int8 GEMM loop of its MACs.
  auto check_case = [](std::string name, std::string description, ModelRun spec,
                       BenchTarget target) {
    spec.timing_only = false;
    spec.check = true;
    BenchCase c{name, std::move(description), false, std::nullopt, target, {}};
    c.run = [name, spec] {
      std::uint64_t macs = 0;
      BenchSample sample = run_model_once(name, spec, &macs);
      sample.plain_seconds = plain_gemm_seconds(macs);
      return sample;
    };
    return c;
  };
  cases.push_back(check_case("resnet50-check",
                             "resnet50-graph with data, fast fidelity, --check (compile makes the "
                             "data and reference outputs), beside a plain int8 GEMM loop of the "
                             "same MACs",
                             {model_file(models + "resnet50.json")}, {0, 0, 3}));
  // Issue 13 found a functional 4096^3 matmul compiling for ten minutes before a 12 s simulation.
  for (const char* n : {"1024", "2048"}) {
    const std::uint64_t size = std::stoull(n);
    cases.push_back(check_case(std::string("matmul") + n + "-check",
                               std::string(n) + "^3 int8 matmul with data, fast fidelity, --check, "
                                                "beside a plain int8 GEMM loop of the same MACs",
                               {gemms(std::string("matmul") + n, {{size, size, size}})}, {}));
  }
  for (const char* fidelity : {"pe", "fast"}) {
    ModelRun spec{gemms("matmul128", {{128, 128, 128}})};
    spec.timing_only = false;
    spec.fidelity = std::string(fidelity) == "pe" ? Fidelity::kPe : Fidelity::kFast;
    cases.push_back(model_case(std::string("matmul128-") + fidelity,
                               std::string("128 x 128 x 128 int8 matmul with data, ") + fidelity +
                                   " fidelity",
                               true, std::nullopt, {}, spec));
  }
  cases.push_back({"memtest-64mib", "tpusim memtest: a 64 MiB read stream on the default HBM2",
                   true, BenchReference{"tpusim when issue 13 was filed: 0.79 s", 0.79, 0},
                   {0.2, 0, 0}, memtest_once});
  cases.push_back({"sweep-100",
                   "ConvNet (models/convnet.json) timing-only over 100 clocks, 500..1490 MHz, "
                   "through the sweep runner with 2 jobs",
                   false, std::nullopt, {}, [source_dir] { return sweep_once(source_dir); }});
  return cases;
}

BenchArgs parse_bench_args(const std::vector<std::string>& args) {
  BenchArgs out;
  bool named = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> const std::string& {
      if (i + 1 >= args.size()) throw std::invalid_argument(a + " needs a value");
      return args[++i];
    };
    if (a == "--cases") {
      named = true;
      std::stringstream list(value());
      for (std::string name; std::getline(list, name, ',');)
        if (!name.empty()) out.cases.push_back(name);
      if (out.cases.empty()) throw std::invalid_argument("--cases needs at least one name");
    } else if (a == "--repeat") {
      out.repeat = parse_repeat(value());
    } else if (a == "--all") {
      out.all = true;
    } else if (a == "--list") {
      out.list = true;
    } else {
      throw std::invalid_argument("unknown option '" + a +
                                  "' (allowed: --cases A,B, --all, --list, --repeat R)");
    }
  }
  if (named && out.all) throw std::invalid_argument("--all and --cases exclude each other");
  return out;
}

std::vector<const BenchCase*> select_cases(const std::vector<BenchCase>& cases,
                                           const BenchArgs& args) {
  std::vector<const BenchCase*> out;
  for (const std::string& name : args.cases) {
    auto it = std::find_if(cases.begin(), cases.end(),
                           [&](const BenchCase& c) { return c.name == name; });
    if (it == cases.end()) {
      std::string allowed;
      for (const BenchCase& c : cases) allowed += (allowed.empty() ? "" : ", ") + c.name;
      throw std::invalid_argument("unknown case '" + name + "' (allowed: " + allowed + ")");
    }
  }
  for (const BenchCase& c : cases) {
    const bool named = std::find(args.cases.begin(), args.cases.end(), c.name) != args.cases.end();
    if (args.cases.empty() ? (args.all || c.quick) : named) out.push_back(&c);
  }
  return out;
}

bool run_bench(const std::vector<const BenchCase*>& cases, int repeat) {
  std::printf("medians of %d runs; wall = the child process, from fork to exit\n", repeat);
  std::printf("%-21s %8s %17s %9s %8s %11s %12s %9s\n", "case", "wall s", "min-max s",
              "compile s", "sim s", "sim cyc/s", "cycles", "peak MiB");
  bool ok = true;
  for (const BenchCase* c : cases) {
    std::vector<BenchSample> samples;
    try {
      for (int r = 0; r < repeat; ++r) samples.push_back(c->run());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "tpusim_bench: %s: %s\n", c->name.c_str(), e.what());
      ok = false;
      continue;
    }
    print_case(*c, medians(samples));
  }
  return ok;
}

}  // namespace tpu
