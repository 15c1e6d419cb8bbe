// The `tpusim` command line: run, compile, sweep, merge, plot, memtest, asm, disasm, isa,
// explain.
#include <cstdio>
#include <filesystem>
#include <optional>
#include <iostream>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <systemc>

#include "embedded_defaults.h"
#include "sim/config/config.h"
#include "sim/config/user_input.h"
#include "sim/isa/isa_table.h"
#include "sim/isa/program.h"
#include "sim/memtest.h"
#include "sim/tpu_core.h"
#include "tools/compiler/estimate.h"
#include "tools/compiler/frontend.h"
#include "tools/compiler/lowering.h"
#include "tools/plot/plot.h"
#include "tools/run/output_file.h"
#include "tools/run/run.h"
#include "tools/run/scaling_table.h"
#include "tools/run/zoo_table.h"
#include "tools/sweep/slurm.h"
#include "tools/sweep/sweep.h"
#include "tools/teach/annotate.h"
#include "tools/teach/explain.h"

namespace {

// Thrown for problems with the command line's own files (unreadable, unwritable).
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

std::string read_text(const std::string& path) {
  std::string why;
  std::optional<std::string> text = tpu::read_file(path, tpu::kMaxProgramFileBytes, &why);
  if (!text) throw UsageError(path + ": cannot open file (" + why + ")");
  return std::move(*text);
}

// Refuses, before any work, an output that cannot be written or would overwrite one of the
// run's inputs.
void check_outputs(const std::vector<std::string>& inputs,
                          const std::vector<std::pair<const char*, std::string>>& outputs) {
  namespace fs = std::filesystem;
  for (const auto& [flag, out] : outputs) {
    if (out.empty()) continue;
    tpu::check_output_path(flag, out);
    for (const std::string& in : inputs) {
      std::error_code ec1, ec2;
      if (!in.empty() && fs::weakly_canonical(out, ec1) == fs::weakly_canonical(in, ec2)) {
        throw UsageError(std::string(flag) + " " + out + " is an input of this run; write the " +
                         "output elsewhere");
      }
    }
  }
}

std::vector<std::uint8_t> read_bytes(const std::string& path) {
  const std::string text = read_text(path);
  return std::vector<std::uint8_t>(text.begin(), text.end());
}

void write_text(const std::string& path, const std::string& text) {
  tpu::write_output_file(path, text);
}

void write_bytes(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  tpu::write_output_file(path, std::string_view(reinterpret_cast<const char*>(bytes.data()),
                                                bytes.size()));
}

// Runs `parse` on a program file, prefixing ISA errors ("line 3: ...") with the file's path.
template <typename Parse>
tpu::Program in_file(const std::string& path, Parse parse) {
  try {
    return parse();
  } catch (const tpu::IsaError& e) {
    throw tpu::IsaError(path + ": " + e.what());
  }
}

// --config and --set, for every subcommand that needs an architecture.
struct ConfigOptions {
  std::string config_path;
  std::vector<std::string> overrides;

  void add_to(CLI::App& cmd) {
    cmd.add_option("--config,-c", config_path,
                   "Architecture config JSON (default: the bundled configs/default.json)");
    cmd.add_option("--set,-s", overrides,
                   "Override a config key by dotted path, e.g. --set array.rows=64 (repeatable)")
        ->take_all();
  }

  tpu::Config config() const {
    return config_path.empty() ? tpu::default_config(overrides)
                               : tpu::load_config(config_path, overrides);
  }
};

// Options shared by every subcommand that compiles a model for a config.
struct ModelOptions : ConfigOptions {
  std::string model_path;
  std::string dtype;  // empty: the model's own
  bool timing_only = false;
  bool force = false;

  void add_to(CLI::App& cmd) {
    cmd.add_option("--model,-m", model_path,
                   "Model: our JSON format (graph or chain), a SCALE-Sim topology CSV or an ONNX "
                   "model (default: the bundled ConvNet, models/convnet.json)");
    ConfigOptions::add_to(cmd);
    cmd.add_option("--dtype", dtype,
                   "Data type to run the model in, over its own choice (the model JSON's "
                   "\"dtype\"; bf16 for an ONNX float graph, int8 for a quantised one)")
        ->check(CLI::IsMember({"int8", "bf16"}));
    cmd.add_flag("--timing-only", timing_only,
                 "Skip data values: no tensors are allocated or computed; cycles are unchanged");
    cmd.add_flag("--force", force,
                 "Run with data even when the estimate exceeds 4 GiB of host memory or 5 minutes");
  }

  tpu::Graph model() const {
    tpu::Graph g = model_path.empty() ? tpu::parse_model_json(tpu::kEmbeddedModelJson,
                                                              "<embedded default model>")
                                      : tpu::load_model(model_path);
    if (!dtype.empty()) tpu::set_dtype(g, *tpu::parse_data_type(dtype));
    return g;
  }
  std::string model_source() const {
    return model_path.empty() ? "<embedded default model>" : model_path;
  }
};

// A program file is the binary container if it starts with its magic, else assembly text.
tpu::Program load_program(const std::string& path) {
  return in_file(path, [&] {
    std::vector<std::uint8_t> bytes = read_bytes(path);
    if (tpu::is_serialized_program(bytes)) return tpu::deserialize(bytes);
    return tpu::parse_assembly(std::string(bytes.begin(), bytes.end()));
  });
}

int run_command(const ModelOptions& opts, const std::string& program_path,
                const std::string& fidelity, bool check, const std::string& json_path,
                const std::string& csv_path, const std::string& trace_path, bool quiet) {
  check_outputs({opts.model_path, opts.config_path, program_path},
                       {{"--json", json_path}, {"--csv", csv_path}, {"--trace", trace_path}});
  tpu::RunOptions options;
  options.fidelity = fidelity == "pe" ? tpu::Fidelity::kPe : tpu::Fidelity::kFast;
  options.timing_only = opts.timing_only;
  options.check = check;
  options.trace = !trace_path.empty();
  options.force = opts.force;
  // Long runs show how far issue has got, on a terminal only (logs and pipes stay clean).
  const bool show_progress = !quiet && isatty(STDERR_FILENO);
  if (show_progress) {
    options.progress = [](std::size_t issued, std::size_t total) {
      std::fprintf(stderr, "\r%-60s\rsimulating: %3zu%% of %zu instructions issued", "",
                   issued * 100 / total, total);
    };
    options.compile_progress = [](const std::string& what) {
      std::fprintf(stderr, "\r%-60s\rcompiling: %s", "", what.c_str());
    };
  }
  const tpu::Config config = opts.config();
  const tpu::Run run = program_path.empty()
                           ? tpu::run_model(config, opts.model(), opts.model_source(), options)
                           : tpu::run_program(config, load_program(program_path), program_path,
                                              options);
  if (show_progress) std::fprintf(stderr, "\r%60s\r", "");

  if (!quiet) std::cout << run.report_table();
  // Every text is made before any is written: a write error then unwinds no report being
  // built (under ASan, unwinding after a SystemC run meets stale stack poison, tests/asan.supp).
  const std::string json_text = json_path.empty() ? "" : run.report_json().dump(2) + "\n";
  const std::string csv_text = csv_path.empty() ? "" : run.report_csv();
  const std::string trace_text = trace_path.empty() ? "" : run.timeline_json().dump() + "\n";
  if (!json_path.empty()) write_text(json_path, json_text);
  if (!csv_path.empty()) write_text(csv_path, csv_text);
  if (!trace_path.empty()) write_text(trace_path, trace_text);
  if (run.check_failed() && quiet) {
    // Even quiet, a failed check says so (the table would have).
    const tpu::CheckResult& c = *run.check;
    std::cerr << "tpusim: check failed: " << c.mismatches << " of " << c.compared
              << " output values wrong"
              << (c.first_mismatches.empty() ? std::string() : ", first " + c.first_mismatches[0])
              << "\n";
  }
  return run.check_failed() ? 2 : 0;
}

nlohmann::json memtest_json(const tpu::Config& config, const tpu::MemtestOptions& o,
                            const tpu::MemtestResult& r) {
  nlohmann::json channels = nlohmann::json::array();
  for (const tpu::MemtestChannelResult& c : r.channels)
    channels.push_back({{"channel", c.channel}, {"bytes", c.bytes},
                        {"achieved_gbs", c.achieved_gbs}, {"row_hit_rate", c.row_hit_rate},
                        {"avg_latency_ns", c.avg_latency_ns},
                        {"refresh_fraction", c.refresh_fraction}});
  return {{"config", tpu::to_json(config)},
          {"options", {{"pattern", o.pattern}, {"bytes", o.bytes},
                       {"read_fraction", o.read_fraction}, {"stride", o.stride},
                       {"outstanding", o.outstanding}, {"request_bytes", o.request_bytes},
                       {"seed", o.seed}}},
          {"result", {{"preset", r.preset}, {"peak_gbs", r.peak_gbs},
                      {"achieved_gbs", r.achieved_gbs}, {"efficiency", r.efficiency},
                      {"avg_latency_ns", r.avg_latency_ns}, {"p99_latency_ns", r.p99_latency_ns},
                      {"row_hit_rate", r.row_hit_rate}, {"refresh_fraction", r.refresh_fraction},
                      {"requests", r.requests}, {"bytes", r.bytes},
                      {"simulated_ns", r.simulated_ns}, {"host_seconds", r.wall_seconds},
                      {"channels", channels}}}};
}

std::string memtest_table(const tpu::MemtestResult& r) {
  std::ostringstream out;
  char line[160];
  std::snprintf(line, sizeof line, "memtest on %s: %llu requests, %.1f MiB in %.1f us "
                "(host %.2f s)\n", r.preset.c_str(), static_cast<unsigned long long>(r.requests),
                r.bytes / 1048576.0, r.simulated_ns / 1000.0, r.wall_seconds);
  out << line;
  if (r.peak_gbs > 0)
    std::snprintf(line, sizeof line, "bandwidth   %.1f GB/s of %.1f GB/s peak (%.1f %%)\n",
                  r.achieved_gbs, r.peak_gbs, 100.0 * r.efficiency);
  else
    std::snprintf(line, sizeof line, "bandwidth   %.1f GB/s (unbounded peak)\n", r.achieved_gbs);
  out << line;
  std::snprintf(line, sizeof line, "latency     %.1f ns average, %.1f ns p99\n",
                r.avg_latency_ns, r.p99_latency_ns);
  out << line;
  if (!r.channels.empty()) {
    std::snprintf(line, sizeof line, "row hits    %.1f %%\nrefresh     %.2f %% of the time\n",
                  100.0 * r.row_hit_rate, 100.0 * r.refresh_fraction);
    out << line;
    out << "channel        GB/s   row hit %   avg lat ns   refresh %\n";
    for (const tpu::MemtestChannelResult& c : r.channels) {
      std::snprintf(line, sizeof line, "%7u %11.1f %11.1f %12.1f %11.2f\n", c.channel,
                    c.achieved_gbs, 100.0 * c.row_hit_rate, c.avg_latency_ns,
                    100.0 * c.refresh_fraction);
      out << line;
    }
  }
  return out.str();
}

// `tpusim sweep --slurm`: the scripts (every path absolute, this binary's own path in them),
// then either their submission or the commands that submit them.
int slurm_command(const tpu::Sweep& plan, const std::string& out_dir, unsigned jobs,
                  long long shards, tpu::SlurmSweepOptions options, bool submit) {
  namespace fs = std::filesystem;
  if (shards < 1)
    throw UsageError("--shards expects N >= 1 array tasks, got " + std::to_string(shards));
  if (static_cast<unsigned long long>(shards) > plan.items.size())
    throw UsageError("--shards " + std::to_string(shards) + " is more than the " +
                     std::to_string(plan.items.size()) + " items of " + plan.path +
                     ": some array tasks would have nothing to run");
  options.shards = static_cast<unsigned>(shards);
  std::error_code ec;
  options.tpusim = fs::read_symlink("/proc/self/exe", ec).string();
  if (ec) throw UsageError("cannot find the path of this tpusim binary (" + ec.message() + ")");
  options.sweep_file = fs::absolute(plan.path).lexically_normal().string();
  options.out_dir = fs::absolute(out_dir).lexically_normal().string();
  options.jobs = jobs;
  const tpu::SlurmScripts scripts = tpu::write_slurm_scripts(options);
  const std::string array_q = tpu::shell_quote(scripts.array);
  const std::string merge_q = tpu::shell_quote(scripts.merge);
  const std::string logs = tpu::shell_quote(options.out_dir + "/logs");
  if (!submit) {
    std::cout << "wrote " << scripts.array << " (" << options.shards << " array tasks) and "
              << scripts.merge << "; submit them with:\n"
              << "  array=$(sbatch --parsable " << array_q << ") && sbatch --dependency=afterok:"
              << "${array%%;*} " << merge_q << "\n";
    return 0;
  }
  const tpu::SlurmJobs ids = tpu::submit_slurm_scripts(scripts);
  std::cout << "submitted array job " << ids.array_id << " (" << options.shards
            << " tasks) and merge job " << ids.merge_id << " (after every task succeeds)\n"
            << "watch:   squeue -j " << ids.array_id << "," << ids.merge_id << "\n"
            << "logs:    " << logs << "\n"
            << "results: " << tpu::shell_quote(options.out_dir + "/summary.csv")
            << " once the merge has run; resubmitting redoes only unfinished items\n";
  return 0;
}

}  // namespace

int sc_main(int argc, char* argv[]) {
  CLI::App app{"tpusim: a cycle-level simulator of a TPU-style systolic-array accelerator"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "tpusim 0.1");

  ModelOptions run_opts;
  std::string fidelity = "fast", json_path, csv_path, trace_path, program_path;
  bool check = false, quiet = false;
  CLI::App* run = app.add_subcommand(
      "run", "Compile a model for a config, simulate it and print the per-layer report");
  run_opts.add_to(*run);
  run->add_option("--program,-p", program_path,
                  "Run a program instead of a model: assembly text or a binary program "
                  "(tpusim compile --binary, tpusim asm); its HBM starts from the program's "
                  "memory image, or zero")
      ->excludes("--model");
  run->add_option("--fidelity", fidelity,
                  "MXU model: fast (tile at a time) or pe (every PE, cycle by cycle); both give "
                  "identical cycles and outputs")
      ->check(CLI::IsMember({"fast", "pe"}));
  run->add_flag("--check", check,
                "Compare every layer output that reaches HBM (the network's output and any tensor that "
                "does not stay on chip) with the plain C++ reference (exit 2 on mismatch)");
  run->add_option("--json", json_path, "Write the report as JSON to this file");
  run->add_option("--csv", csv_path, "Write one CSV row per layer to this file");
  run->add_option("--trace", trace_path,
                  "Write a timeline of every instruction and wait on every unit, with HBM and "
                  "UB bandwidth counters (Chrome trace JSON, opens in Perfetto)");
  run->add_flag("--quiet,-q", quiet, "Do not print the report table");

  ModelOptions compile_opts;
  std::string asm_out, bin_out;
  bool annotate = false;
  CLI::App* compile = app.add_subcommand(
      "compile", "Compile a model for a config and write its assembly (and binary program)");
  compile_opts.add_to(*compile);
  compile->add_option("--output,-o", asm_out, "Assembly output file (default: standard output)");
  compile->add_flag("--annotate", annotate,
                    "Write a listing instead: each instruction numbered, with a comment saying "
                    "which layer and tile it serves, what it moves or computes, and which "
                    "instruction's signal each of its waits needs (for reading; asm takes the "
                    "plain assembly)");
  compile->add_option("--binary,-b", bin_out,
                      "Also write the binary program with its memory image and expected outputs");

  std::string asm_in, asm_bin_out;
  CLI::App* assemble =
      app.add_subcommand("asm", "Assemble a text program into the binary program format");
  assemble->add_option("input", asm_in, "Assembly file")->required();
  assemble->add_option("--output,-o", asm_bin_out, "Binary output file")->required();

  std::string disasm_in, disasm_out;
  CLI::App* disassemble =
      app.add_subcommand("disasm", "Disassemble a binary program into assembly text");
  disassemble->add_option("input", disasm_in, "Binary program file")->required();
  disassemble->add_option("--output,-o", disasm_out,
                          "Assembly output file (default: standard output)");

  CLI::App* isa = app.add_subcommand(
      "isa", "Print the opcode and field tables of the instruction set (Markdown, as in ISA.md)");

  std::string mem_json;
  ConfigOptions mem_config;
  tpu::MemtestOptions mem;
  CLI::App* memtest = app.add_subcommand(
      "memtest", "Drive the memory channel alone and measure bandwidth, latency and row hits");
  mem_config.add_to(*memtest);
  memtest->add_option("--pattern", mem.pattern, "Address pattern")
      ->check(CLI::IsMember({"stream", "random", "strided"}))
      ->capture_default_str();
  memtest->add_option("--bytes", mem.bytes, "Total bytes requested")
      ->check(CLI::Range(std::uint64_t(1), std::uint64_t(1) << 40))
      ->capture_default_str();
  memtest->add_option("--read-fraction", mem.read_fraction, "Share of requests that are reads")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  memtest->add_option("--stride", mem.stride, "Bytes between requests (strided pattern)")
      ->capture_default_str();
  memtest->add_option("--outstanding", mem.outstanding, "Requests in flight at most")
      ->capture_default_str();
  memtest->add_option("--request-bytes", mem.request_bytes, "Bytes per request")
      ->capture_default_str();
  memtest->add_option("--seed", mem.seed, "Seed of random addresses and read/write choices")
      ->capture_default_str();
  memtest->add_option("--json", mem_json, "Write the result as JSON to this file");

  std::string sweep_file, sweep_out, shard = "0/1";
  tpu::SweepRunOptions sweep_opts;
  CLI::App* sweep = app.add_subcommand(
      "sweep", "Run a sweep file (configs/README.md, \"Sweeps\"): every point of its axes with "
               "every model, each in its own process; results.jsonl and summary.csv in --out");
  sweep->add_option("file", sweep_file, "Sweep file (JSON)")->required();
  sweep->add_option("--out,-o", sweep_out, "Output directory")->required();
  sweep->add_option("--jobs,-j", sweep_opts.jobs, "Simulations at once")
      ->check(CLI::Range(1u, 1024u))
      ->capture_default_str();
  sweep->add_option("--shard", shard, "Run only shard I of N (items with index % N == I), as I/N")
      ->capture_default_str();
  sweep->add_flag("--resume", sweep_opts.resume,
                  "Continue a sweep in --out: skip the items results.jsonl already records");
  tpu::SlurmSweepOptions slurm_opts;
  bool submit = false;
  long long slurm_shards = 0;  // signed, so that a negative N gets the same error as 0
  CLI::Option* shards =
      sweep->add_option("--shards", slurm_shards, "With --slurm: array tasks N (shards)");
  CLI::Option* slurm =
      sweep->add_flag("--slurm",
                      "Run on Slurm instead (configs/README.md, \"Sweeps on Slurm\"): write into "
                      "--out an sbatch job array whose task i runs shard i/N into --out/shard-i "
                      "with --jobs CPUs and --resume, and a merge script that joins the shards "
                      "into --out; print the commands that submit them")
          ->excludes("--shard")
          ->excludes("--resume")
          ->needs(shards);
  shards->needs(slurm);
  sweep->add_option("--sbatch-option", slurm_opts.sbatch_options,
                    "With --slurm: an sbatch option for both jobs, e.g. --sbatch-option="
                    "--partition=long (repeatable)")
      ->needs(slurm);
  sweep->add_flag("--submit", submit,
                  "With --slurm: submit the array (sbatch --parsable) and the merge "
                  "(--dependency=afterok on the array) and print their job ids")
      ->needs(slurm);

  std::vector<std::string> merge_in;
  std::string merge_out;
  CLI::App* merge = app.add_subcommand(
      "merge", "Join the output directories of sweep shards into one, as an unsharded run");
  merge->add_option("dirs", merge_in, "Shard output directories")->required();
  merge->add_option("--out,-o", merge_out, "Output directory")->required();

  std::string plot_in, plot_out;
  tpu::SweepPlotOptions plot_opts;
  CLI::App* plot = app.add_subcommand(
      "plot", "Draw a sweep's summary or a run report's roofline as SVG or PNG (runs gnuplot)");
  plot->require_subcommand(1);
  CLI::App* plot_sweep = plot->add_subcommand(
      "sweep", "One metric against one axis of a sweep, one line per model or per --by value");
  plot_sweep->add_option("summary", plot_in, "Sweep output directory or its summary.csv")
      ->required();
  plot_sweep->add_option("--x", plot_opts.x, "Column on the x axis: an axis of the sweep or a "
                                              "metric")->required();
  plot_sweep->add_option("--y", plot_opts.y, "Numeric column on the y axis, e.g. cycles, "
                                              "latency_us, tops, utilization, hbm_bytes")
      ->required();
  plot_sweep->add_option("--by", plot_opts.by, "One line per value of this column: model or an "
                                                "axis")->capture_default_str();
  plot_sweep->add_flag("--log-x", plot_opts.log_x, "Logarithmic x axis");
  plot_sweep->add_flag("--log-y", plot_opts.log_y, "Logarithmic y axis");
  CLI::App* plot_roofline = plot->add_subcommand(
      "roofline", "Each layer's operational intensity against its attained TOPS, under the "
                  "compute and bandwidth roofs of the report's config");
  plot_roofline->add_option("report", plot_in, "Run report (tpusim run --json)")->required();
  for (CLI::App* sub : {plot_sweep, plot_roofline})
    sub->add_option("--out,-o", plot_out, "Image to write: .svg or .png")->required();

  tpu::ExplainOptions ex;
  CLI::App* explain = app.add_subcommand(
      "explain", "Watch a small array work cycle by cycle (pe fidelity): the weight in each PE, "
                 "activations and partial sums passing, results leaving into the accumulators, "
                 "and a summary tied to the timing contract");
  explain->add_option("--model,-m", ex.model_path,
                      "Model to run instead of the --m x --k by --k x --n matmul");
  explain->add_option("--config,-c", ex.config_path,
                      "Architecture config JSON (default: the bundled one, with a 4 x 4 array)");
  explain->add_option("--set,-s", ex.overrides, "Override a config key by dotted path (repeatable)")
      ->take_all();
  explain->add_option("--rows", ex.rows, "Array rows R (default 4, or the --config's)")
      ->check(CLI::Range(1, 64));
  explain->add_option("--cols", ex.cols, "Array columns C (default 4, or the --config's)")
      ->check(CLI::Range(1, 64));
  for (auto [flag, field, what] : {std::tuple{"--m", &ex.m, "Rows M of the input X"},
                                   std::tuple{"--k", &ex.k, "Inner dimension K"},
                                   std::tuple{"--n", &ex.n, "Columns N of the weights W"}}) {
    explain->add_option(flag, *field, what)
        ->check(CLI::Range(1, 4096))
        ->excludes("--model")
        ->capture_default_str();
  }
  explain->add_option("--seed", ex.seed, "Seed of the generated X and W")->capture_default_str();
  explain->add_flag("--changes", ex.changes_only,
                    "Print only the cycles in which something happens or changes");
  explain->add_flag("--summary", ex.summary_only,
                    "Print only the summary (fill, full rate, drain, utilisation), no trace");
  explain->add_option("--vcd", ex.vcd_path,
                      "Also write the PE registers and each unit's busy and waiting state as a "
                      "VCD waveform (GTKWave)");
  explain->add_option("--html", ex.html_path,
                      "Also write one self-contained HTML page that animates the run: step, "
                      "play, pause, scrub to a cycle");

  tpu::ZooTableOptions zoo;
  CLI::App* table = app.add_subcommand(
      "table", "Run every model on every config timing-only, each in its own process, and "
               "print the markdown table of models/README.md: MACs, cycles, latency, "
               "utilisation and the shares of time the MXU multiplies and waits and the vector "
               "unit is busy");
  table->add_option("--models", zoo.models, "Model files, one row per config each")
      ->required()
      ->check(CLI::ExistingFile);
  table->add_option("--configs", zoo.configs, "Config files")
      ->required()
      ->check(CLI::ExistingFile);
  table->add_option("--jobs,-j", zoo.jobs, "Simulations at once")
      ->check(CLI::Range(1u, 1024u))
      ->capture_default_str();
  table->add_option("--max-bound-cycles", zoo.max_bound_cycles,
                    "Skip pairs whose MACs / PEs exceed this many cycles")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();

  tpu::ScalingTableOptions scale;
  CLI::App* scaling = app.add_subcommand(
      "scaling", "Run every model on one config with core.mxus 1, 2, 4, 8 and chip.cores 1, 2, "
                 "with the config's memory and with hbm.preset=ideal, timing-only, each point "
                 "in its own process, and print a markdown table of cycles, speed-up against "
                 "one core of one MXU on the same memory, and MXU utilisation");
  scaling->add_option("--models", scale.models, "Model files")
      ->required()
      ->check(CLI::ExistingFile);
  scaling->add_option("--config", scale.config, "The base config")
      ->required()
      ->check(CLI::ExistingFile);
  scaling->add_option("--jobs,-j", scale.jobs, "Simulations at once")
      ->check(CLI::Range(1u, 1024u))
      ->capture_default_str();

  tpu::install_interrupt_handlers();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version print and succeed; every command-line error is one line and exit 1.
    if (e.get_exit_code() == 0) return app.exit(e);
    std::cerr << "tpusim: error: " << e.what() << " (see --help)\n";
    return 1;
  }

  // Reports go to stdout too: a full disk or closed pipe there is an error, not a silent loss.
  const int status = [&] {
    try {
      if (*run) return run_command(run_opts, program_path, fidelity, check, json_path, csv_path,
                                   trace_path, quiet);
      if (*compile) {
        check_outputs({compile_opts.model_path, compile_opts.config_path},
                             {{"--output", asm_out}, {"--binary", bin_out}});
        tpu::CompileOptions copts;
        copts.timing_only = compile_opts.timing_only;
        const tpu::Graph model = compile_opts.model();
        const tpu::Config config = compile_opts.config();
        if (!copts.timing_only && !compile_opts.force)
          tpu::refuse_oversized_functional_run(tpu::estimate_functional_run(model, config, false),
                                               compile_opts.model_source());
        tpu::Program program = tpu::compile(model, config, copts);
        const std::string text =
            annotate ? tpu::annotated_assembly(program, config) : tpu::to_assembly(program);
        if (asm_out.empty()) std::cout << text; else write_text(asm_out, text);
        if (!bin_out.empty()) write_bytes(bin_out, tpu::serialize(program));
        return 0;
      }
      if (*sweep) {
        unsigned i = 0, n = 0;
        char rest = 0;
        if (std::sscanf(shard.c_str(), "%u/%u%c", &i, &n, &rest) != 2 || n == 0 || i >= n)
          throw UsageError("--shard expects I/N with 0 <= I < N, got '" + shard + "'");
        sweep_opts.shard = i;
        sweep_opts.shards = n;
        sweep_opts.out_dir = sweep_out;
        const tpu::Sweep plan = tpu::load_sweep(sweep_file);
        if (*slurm)
          return slurm_command(plan, sweep_out, sweep_opts.jobs, slurm_shards, slurm_opts, submit);
        const bool tty = isatty(STDERR_FILENO);
        sweep_opts.progress = [tty](const tpu::SweepProgress& p) {
          const double rate = p.seconds > 0 ? p.done / p.seconds : 0;
          const double left = rate > 0 ? (p.total - p.done) / rate : 0;
          std::fprintf(stderr, tty ? "\rsweep: %zu/%zu done, %zu failed, %.2f/s, %.0f s left   "
                                   : "sweep: %zu/%zu done, %zu failed, %.2f/s, %.0f s left\n",
                       p.done, p.total, p.failed, rate, left);
        };
        const std::size_t failed = tpu::run_sweep(plan, sweep_opts);
        if (tty) std::fprintf(stderr, "\n");
        std::cout << "sweep: " << plan.items.size() << " items (" << failed << " failed); "
                  << sweep_out << "/summary.csv\n";
        return failed ? 3 : 0;
      }
      if (*plot) {
        check_outputs({plot_in}, {{"--out", plot_out}});
        tpu::check_plot_format(plot_out);
        std::vector<std::string> notes;
        const tpu::Plot figure =
            *plot_sweep ? tpu::sweep_plot(tpu::read_sweep_summary(plot_in), plot_opts, &notes)
                        : tpu::roofline_plot(tpu::read_run_report(plot_in), plot_in, &notes);
        for (const std::string& note : notes) std::cerr << "tpusim: note: " << note << "\n";
        tpu::render_plot(figure, plot_out);
        return 0;
      }
      if (*merge) {
        tpu::merge_sweeps(merge_in, merge_out);
        return 0;
      }
      if (*memtest) {
        check_outputs({mem_config.config_path}, {{"--json", mem_json}});
        tpu::Config config = mem_config.config();
        tpu::MemtestResult r = tpu::run_memtest(config, mem);
        std::cout << memtest_table(r);
        // Made before it is written, as in run_command.
        const std::string json_text = mem_json.empty() ? "" : memtest_json(config, mem, r).dump(2) + "\n";
        if (!mem_json.empty()) write_text(mem_json, json_text);
        return 0;
      }
      if (*assemble) {
        check_outputs({asm_in}, {{"--output", asm_bin_out}});
        const tpu::Program program =
            in_file(asm_in, [&] { return tpu::parse_assembly(read_text(asm_in)); });
        // A program that never halts would run until it deadlocks.
        if (program.instructions.empty() || program.instructions.back().op != tpu::Opcode::kHalt) {
          throw UsageError(asm_in + ": the program does not end with halt");
        }
        write_bytes(asm_bin_out, tpu::serialize(program));
        return 0;
      }
      if (*disassemble) {
        check_outputs({disasm_in}, {{"--output", disasm_out}});
        std::string text = tpu::to_assembly(
            in_file(disasm_in, [&] { return tpu::deserialize(read_bytes(disasm_in)); }));
        if (disasm_out.empty()) std::cout << text; else write_text(disasm_out, text);
        return 0;
      }
      if (*explain) {
        check_outputs({ex.model_path, ex.config_path},
                             {{"--vcd", ex.vcd_path}, {"--html", ex.html_path}});
        tpu::explain_command(ex, std::cout);
        return 0;
      }
      if (*table) {
        std::cout << tpu::zoo_table(zoo);
        return 0;
      }
      if (*scaling) {
        std::cout << tpu::scaling_table(scale);
        return 0;
      }
      if (*isa) {
        std::cout << tpu::isa_markdown();
        return 0;
      }
    } catch (const std::exception& e) {
      std::cerr << "tpusim: error: " << e.what() << "\n";
      return 1;
    }
    return 0;
  }();
  if (!std::cout.flush()) {
    std::cerr << "tpusim: error: cannot write standard output\n";
    return 1;
  }
  return status;
}

int main(int argc, char* argv[]) { return tpu::run_sc_main(argc, argv); }
