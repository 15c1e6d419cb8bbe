#include "tools/teach/explain.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "sim/tpu_core.h"
#include "tools/compiler/frontend.h"
#include "tools/compiler/lowering.h"
#include "tools/report/check.h"
#include "tools/run/output_file.h"
#include "tools/teach/annotate.h"
#include "tools/teach/html.h"
#include "tools/teach/vcd.h"

namespace tpu {
namespace {

// Records the instruction events and, after every array step, what each PE holds.
class Recorder : public Observer {
 public:
  Recorder(const Config& config, const Program& program, Explained& out)
      : viewer_(config, program), out_(out) {}

  void instruction(const InstructionEvent& e) override {
    out_.events.push_back(e);
    viewer_.instruction(e);
  }
  void array_step(Cycle t, const SystolicArray& a,
                  const std::vector<AccumulatorWrite>& landed) override {
    out_.steps.push_back(viewer_.view(t, a, landed));
  }
  // The streams with what was seen of them.
  std::vector<StreamView> streams() const {
    std::vector<StreamView> streams = viewer_.streams();
    for (const ArrayCycle& c : out_.steps) {
      std::map<std::uint64_t, std::uint32_t> per_stream;
      for (const AccumulatorWrite& w : c.landed) {
        StreamView& s = streams[w.out.stream - 1];
        if (s.results++ == 0) s.first_landed = c.cycle;
        s.last_landed = c.cycle;
        ++per_stream[w.out.stream];
      }
      for (const auto& [id, count] : per_stream) {
        StreamView& s = streams[id - 1];
        if (count == std::min(s.m_rows, s.n_cols)) ++s.peak_cycles;
      }
    }
    return streams;
  }

 private:
  PeViewer viewer_;
  Explained& out_;
};

// Integers as integers (int8 runs), other values to six significant digits (bf16 runs).
std::string value(double v) {
  char buf[32];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.6g", v);
  }
  return buf;
}

std::string pad(const std::string& s, std::size_t width) {
  return s.size() >= width ? s : std::string(width - s.size(), ' ') + s;
}

const char* kind_name(InstructionEvent::Kind kind) {
  switch (kind) {
    case InstructionEvent::Kind::kIssued: return "issue";
    case InstructionEvent::Kind::kTaken: return "take";
    case InstructionEvent::Kind::kWaited: return "wait";
    case InstructionEvent::Kind::kStarted: return "start";
    case InstructionEvent::Kind::kFinished: return "finish";
  }
  return "?";
}

std::string event_line(const Explained& run, const InstructionEvent& e) {
  char head[64];
  std::snprintf(head, sizeof head, "  %-7s %-12s pc %-3zu ", kind_name(e.kind), to_string(e.unit),
                e.pc);
  std::string line = head;
  if (e.kind == InstructionEvent::Kind::kWaited) {
    line += "waited " + std::to_string(e.cycle - e.from) + " cycles (" + std::to_string(e.from) +
            " .. " + std::to_string(e.cycle - 1) + ") on " + e.cause;
  } else {
    line += to_assembly(run.program.instructions[e.pc], &run.program);
  }
  return line + "\n";
}

bool same(const PeView& a, const PeView& b) {
  return a.stream == b.stream && a.weight == b.weight && a.has_input == b.has_input &&
         a.input == b.input &&
         a.m == b.m && a.has_psum == b.has_psum && a.psum == b.psum;
}

// Cells wide enough for every value of the run, so the grid's columns line up.
struct Widths {
  std::size_t w = 1, x = 1, p = 1;
};

Widths widths(const Explained& run) {
  Widths d;
  for (const ArrayCycle& c : run.steps) {
    for (const PeView& v : c.pes) {
      d.w = std::max(d.w, value(v.weight).size());
      if (v.has_input) {
        d.x = std::max(d.x, value(v.input).size() + 3 + std::to_string(v.m).size());
      }
      if (v.has_psum) d.p = std::max(d.p, value(v.psum).size());
    }
  }
  return d;
}

}  // namespace

PeViewer::PeViewer(const Config& config, const Program& program)
    : program_(program), double_buffer_(config.mxu.double_buffer_weights) {
  // A MATMUL multiplies by the tile of the last LOAD_WEIGHTS before it (program order).
  std::optional<Instruction> load;
  for (const Instruction& inst : program.instructions) {
    if (inst.op == Opcode::kLoadWeights) load = inst;
    if (inst.op == Opcode::kMatmul && load) tile_of_.push_back({load->rows, load->cols});
  }
}

void PeViewer::instruction(const InstructionEvent& e) {
  if (e.kind != InstructionEvent::Kind::kStarted) return;
  const Instruction& inst = program_.instructions[e.pc];
  // A transposed load's rows reach the array only after its N_t staged rows (sim/README.md).
  if (inst.op == Opcode::kLoadWeights) {
    load_starts_.push_back(e.cycle + ((inst.flags & kFlagTranspose) ? inst.cols : 0));
  }
  if (inst.op == Opcode::kMatmul) {
    // The array numbers streams 1, 2, ... as MATMULs start, in program order.
    StreamView s;
    s.pc = e.pc;
    s.start = e.cycle;
    s.m_rows = inst.rows;
    s.k_rows = tile_of_[streams_.size()].first;
    s.n_cols = tile_of_[streams_.size()].second;
    streams_.push_back(s);
  }
}

ArrayCycle PeViewer::view(Cycle t, const SystolicArray& a,
                          const std::vector<AccumulatorWrite>& landed) const {
  // Load j writes buffer j % 2 when double buffering (sim/README.md, "Matrix unit").
  const std::size_t loads = std::size_t(
      std::upper_bound(load_starts_.begin(), load_starts_.end(), t) - load_starts_.begin());
  const int last_buffer = double_buffer_ && loads > 0 ? int((loads - 1) % 2) : 0;
  ArrayCycle c;
  c.cycle = t;
  c.landed = landed;
  c.pes.resize(std::size_t(a.rows()) * a.cols());
  for (std::uint32_t k = 0; k < a.rows(); ++k) {
    for (std::uint32_t n = 0; n < a.cols(); ++n) {
      PeView& v = c.pes[std::size_t(k) * a.cols() + n];
      const std::uint64_t id = a.input_stream(k, n);
      v.weight = a.weight(id ? a.input_buffer(k, n) : last_buffer, k, n);
      if (id == 0) continue;
      v.stream = id;
      const StreamView& s = streams_[id - 1];
      if (k < s.k_rows) {
        // PE (k, n) multiplies X[m][k] in cycle s + m + k + n.
        v.has_input = true;
        v.input = a.input(k, n);
        v.m = std::uint32_t(t - s.start - k - n);
      }
      if (n < s.n_cols) {
        v.has_psum = true;
        v.psum = a.psum(k, n);
      }
    }
  }
  return c;
}

std::string matmul_model_json(std::uint32_t m, std::uint32_t k, std::uint32_t n,
                              std::uint64_t seed) {
  nlohmann::json model = {
      {"name", "explain"},
      {"description", "One int8 GEMM for tpusim explain"},
      {"dtype", "int8"},
      {"seed", seed},
      {"layers", {{{"name", "gemm"}, {"type", "matmul"}, {"m", m}, {"k", k}, {"n", n}}}}};
  return model.dump();
}

Explained explain(const Config& config, const Program& program,
                  const std::vector<Observer*>& also) {
  Explained run;
  run.config = config;
  run.program = program;
  Recorder recorder(run.config, run.program, run);
  SimOptions options;
  options.fidelity = Fidelity::kPe;
  options.observers = also;
  options.observers.push_back(&recorder);
  run.result = simulate(run.config, run.program, options);
  run.streams = recorder.streams();
  return run;
}

std::string explain_text(const Explained& run, bool changes_only) {
  const std::uint32_t rows = run.config.array.rows, cols = run.config.array.cols;
  std::multimap<Cycle, const InstructionEvent*> events;
  for (const InstructionEvent& e : run.events) events.emplace(e.cycle, &e);
  const Widths wd = widths(run);
  std::ostringstream out;
  out << "tpusim explain: " << rows << " x " << cols << " array, pe fidelity, "
      << (run.program.dtype == DataType::kInt8 ? "int8" : "bf16") << ", "
      << run.result.total_cycles << " cycles" << (changes_only ? " (changes only)" : "") << "\n"
      << "Each cycle: instruction events; `enter` the activations X[m][k] entering PE row k at "
         "the left edge; per PE row the weight w each PE multiplies by, the activation x (with "
         "its row m of X) and the partial sum p it passes down ('.' = none); `leave` the "
         "results Y[m][n] leaving the bottom of column n into the accumulators.\n\n"
      << "The program, each instruction with what it does:\n"
      << annotated_assembly(run.program, run.config) << "\n";

  std::vector<PeView> previous(std::size_t(rows) * cols);
  std::vector<PeView> now(previous.size());
  auto step = run.steps.begin();
  const Cycle end = std::max<Cycle>(run.result.total_cycles,
                                    run.steps.empty() ? 0 : run.steps.back().cycle + 1);
  for (Cycle t = 0; t < end; ++t) {
    const ArrayCycle* c = nullptr;
    if (step != run.steps.end() && step->cycle == t) c = &*step++;
    if (c) {
      now = c->pes;
    } else {
      // An unstepped cycle: nothing in flight, the weights stay.
      for (std::size_t i = 0; i < now.size(); ++i) {
        now[i] = PeView();
        now[i].weight = previous[i].weight;
      }
    }
    const auto [first, last] = events.equal_range(t);
    const bool changed = first != last || (c && !c->landed.empty()) ||
                         !std::equal(now.begin(), now.end(), previous.begin(), same);
    previous = now;
    if (changes_only && !changed) continue;

    out << "cycle " << t << "\n";
    for (auto it = first; it != last; ++it) out << event_line(run, *it->second);
    std::string enter;
    for (std::uint32_t k = 0; k < rows; ++k) {
      const PeView& v = now[std::size_t(k) * cols];
      if (!v.has_input) continue;
      enter += std::string(enter.empty() ? "" : ", ") + "row " + std::to_string(k) + ": X[" +
               std::to_string(v.m) + "][" + std::to_string(k) + "]=" + value(v.input);
    }
    if (!enter.empty()) out << "  enter   " << enter << "\n";
    for (std::uint32_t k = 0; k < rows; ++k) {
      std::string w = "  row " + std::to_string(k) + "  w", x = "  x", p = "  p";
      for (std::uint32_t n = 0; n < cols; ++n) {
        const PeView& v = now[std::size_t(k) * cols + n];
        w += " " + pad(value(v.weight), wd.w);
        x += " " + pad(v.has_input ? value(v.input) + "(m" + std::to_string(v.m) + ")" : ".",
                       wd.x);
        p += " " + pad(v.has_psum ? value(v.psum) : ".", wd.p);
      }
      out << w << " |" << x << " |" << p << "\n";
    }
    if (c) {
      for (const AccumulatorWrite& a : c->landed) {
        const std::string col = std::to_string(a.out.n);
        out << "  leave   col " << col << ": Y[" << a.out.m << "][" << col << "]="
            << value(run.program.dtype == DataType::kInt8 ? a.out.i32 : a.out.f32) << " -> acc["
            << a.acc_row << "][" << col << "]" << (a.accumulate ? " (added)" : "") << "\n";
      }
    }
  }
  return out.str();
}

std::string explain_summary(const Explained& run) {
  const std::uint64_t r = run.config.array.rows, c = run.config.array.cols;
  std::ostringstream out;
  char line[200];
  out << "Summary: the timing contract (sim/README.md, \"Matrix unit\") for each MATMUL's "
         "stream on the R = "
      << r << " x C = " << c << " array, beside what the run showed.\n";
  for (const StreamView& s : run.streams) {
    const std::uint64_t m = s.m_rows, k = s.k_rows, n = s.n_cols;
    const std::uint64_t lo = std::min(m, n), hi = std::max(m, n);
    const Cycle last = s.start + m + n + r - 2;
    const Cycle fill_end = s.start + r + lo - 2, full_end = s.start + r + hi - 1;
    std::snprintf(line, sizeof line,
                  "matmul pc %zu: M = %llu rows, tile K_t = %llu x N_t = %llu, stream start s = "
                  "%llu\n",
                  s.pc, (unsigned long long)m, (unsigned long long)k, (unsigned long long)n,
                  (unsigned long long)s.start);
    out << line;
    const auto row = [&](const char* what, const char* formula, unsigned long long v,
                         const std::string& seen) {
      std::snprintf(line, sizeof line, "  %-20s %-27s = %6llu%s\n", what, formula, v,
                    seen.c_str());
      out << line;
    };
    const auto seen = [](unsigned long long v) { return "   seen " + std::to_string(v); };
    std::snprintf(line, sizeof line,
                  "  %-20s K_t x N_t of R x C = %llu of %llu (%.1f %%): rows >= K_t multiply "
                  "zeros, columns >= N_t carry no result\n",
                  "PEs holding weights", (unsigned long long)(k * n), (unsigned long long)(r * c),
                  100.0 * double(k * n) / double(r * c));
    out << line;
    row("first input enters", "s", s.start, "");
    row("first result lands", "Y[0][0]: s + 0 + 0 + R", s.start + r, seen(s.first_landed));
    row("last result lands", "L = s + M + N_t + R - 2", last, seen(s.last_landed));
    row("results", "M x N_t", m * n, seen(s.results));
    row("fill", "R + min(M, N_t) - 1", r + lo - 1,
        " cycles, s .. " + std::to_string(fill_end) + ": columns start one by one");
    row("full rate", "|M - N_t| + 1", hi - lo + 1,
        " cycles, .. " + std::to_string(full_end) + ": " + std::to_string(lo) +
            " results a cycle; seen " + std::to_string(s.peak_cycles));
    row("drain", "min(M, N_t) - 1", lo - 1, " cycles, .. " + std::to_string(last));
    row("tile", "M + N_t + R - 1", m + n + r - 1,
        " cycles, completes at L + 1 = " + std::to_string(last + 1));
    std::snprintf(line, sizeof line,
                  "  %-20s M K_t N_t / (tile x R x C) = %llu / %llu = %.1f %%\n", "utilisation",
                  (unsigned long long)(m * k * n), (unsigned long long)((m + n + r - 1) * r * c),
                  100.0 * double(m * k * n) / double((m + n + r - 1) * r * c));
    out << line;
  }
  std::uint64_t macs = 0;
  for (const LayerInfo& l : run.program.layers) macs += l.macs;
  const Cycle total = run.result.total_cycles;
  std::snprintf(line, sizeof line,
                "run: %llu cycles, %llu useful MACs; MXU utilisation MACs / (cycles x R x C) = "
                "%llu / %llu = %.1f %%\n",
                (unsigned long long)total, (unsigned long long)macs, (unsigned long long)macs,
                (unsigned long long)(total * r * c),
                total ? 100.0 * double(macs) / double(total * r * c) : 0.0);
  out << line;
  return out.str();
}

nlohmann::json explain_json(const Explained& run) {
  const bool int8 = run.program.dtype == DataType::kInt8;
  nlohmann::json instructions = nlohmann::json::array();
  std::map<std::size_t, std::size_t> at;  // pc -> index in instructions
  for (const InstructionEvent& e : run.events) {
    if (!at.count(e.pc)) {
      at[e.pc] = instructions.size();
      instructions.push_back({{"pc", e.pc},
                              {"unit", to_string(unit_of(run.program.instructions[e.pc].op))},
                              {"asm", to_assembly(run.program.instructions[e.pc], &run.program)},
                              {"waits", nlohmann::json::array()}});
    }
    nlohmann::json& i = instructions[at[e.pc]];
    switch (e.kind) {
      case InstructionEvent::Kind::kWaited:
        i["waits"].push_back(
            {{"unit", to_string(e.unit)}, {"from", e.from}, {"to", e.cycle}, {"cause", e.cause}});
        break;
      default:
        i[kind_name(e.kind)] = e.cycle;
    }
  }
  nlohmann::json cycles = nlohmann::json::array();
  for (const ArrayCycle& c : run.steps) {
    nlohmann::json w = nlohmann::json::array(), x = nlohmann::json::array(),
                   m = nlohmann::json::array(), p = nlohmann::json::array(),
                   stream = nlohmann::json::array(), out = nlohmann::json::array();
    for (const PeView& v : c.pes) {
      stream.push_back(v.stream);
      w.push_back(v.weight);
      x.push_back(v.has_input ? nlohmann::json(v.input) : nlohmann::json());
      m.push_back(v.has_input ? nlohmann::json(v.m) : nlohmann::json());
      p.push_back(v.has_psum ? nlohmann::json(v.psum) : nlohmann::json());
    }
    for (const AccumulatorWrite& a : c.landed) {
      out.push_back({{"m", a.out.m},
                     {"n", a.out.n},
                     {"value", int8 ? double(a.out.i32) : double(a.out.f32)},
                     {"acc_row", a.acc_row},
                     {"added", a.accumulate}});
    }
    cycles.push_back(
        {{"t", c.cycle}, {"s", stream}, {"w", w}, {"x", x}, {"m", m}, {"p", p}, {"out", out}});
  }
  nlohmann::json streams = nlohmann::json::array();
  for (const StreamView& s : run.streams) {
    streams.push_back({{"pc", s.pc},
                       {"start", s.start},
                       {"m", s.m_rows},
                       {"k", s.k_rows},
                       {"n", s.n_cols},
                       {"first_landed", s.first_landed},
                       {"last_landed", s.last_landed}});
  }
  return {{"rows", run.config.array.rows},
          {"cols", run.config.array.cols},
          {"dtype", int8 ? "int8" : "bf16"},
          {"total_cycles", run.result.total_cycles},
          {"instructions", instructions},
          {"streams", streams},
          {"cycles", cycles},
          {"summary", explain_summary(run)}};
}

void explain_command(const ExplainOptions& o, std::ostream& out) {
  // The bundled config's 128 x 128 array is far too big to watch: 4 x 4 unless asked.
  std::vector<std::string> overrides = o.overrides;
  const std::uint32_t rows = o.rows ? o.rows : o.config_path.empty() ? 4 : 0;
  const std::uint32_t cols = o.cols ? o.cols : o.config_path.empty() ? 4 : 0;
  if (rows) overrides.push_back("array.rows=" + std::to_string(rows));
  if (cols) overrides.push_back("array.cols=" + std::to_string(cols));
  const Config config = o.config_path.empty() ? default_config(overrides)
                                              : load_config(o.config_path, overrides);
  if (config.array.rows > 64 || config.array.cols > 64) {
    throw std::invalid_argument(
        "explain shows every PE: use an array of at most 64 x 64 (--rows, --cols), not " +
        std::to_string(config.array.rows) + " x " + std::to_string(config.array.cols));
  }
  const Graph model = o.model_path.empty()
                          ? parse_model_json(matmul_model_json(o.m, o.k, o.n, o.seed), "<explain>")
                          : load_model(o.model_path);
  const Program program = compile(model, config, CompileOptions{});
  // SystemC writes the VCD as the run goes: staged, so a failed run leaves no partial file.
  std::unique_ptr<StagedOutput> vcd_file;
  std::unique_ptr<VcdWriter> vcd;
  std::vector<Observer*> also;
  if (!o.vcd_path.empty()) {
    vcd_file = std::make_unique<StagedOutput>(o.vcd_path, ".vcd");
    vcd = std::make_unique<VcdWriter>(vcd_file->staging_path(), config, program);
    also.push_back(vcd.get());
  }
  const Explained run = explain(config, program, also);
  if (vcd) {
    vcd->close();
    vcd_file->commit();
  }
  if (!o.summary_only) out << explain_text(run, o.changes_only) << "\n";
  out << explain_summary(run);
  const CheckResult check = check_outputs(run.program, run.result.hbm_final);
  out << "check: " << check.compared << " output values, " << check.mismatches
      << " differ from the plain C++ reference\n";
  if (!o.html_path.empty()) {
    // Made before it is written, as in tpusim run.
    const std::string html = explain_html(explain_json(run));
    write_output_file(o.html_path, html);
  }
}

}  // namespace tpu
