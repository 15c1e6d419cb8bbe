// tpusim explain: what the recording shows of a tiny run, against values worked out by hand
// from the timing contract (sim/README.md, "Matrix unit") and a plain matmul of the operands
// the compiler's data generator gives (not the simulator's).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "sim/config/config.h"
#include "tools/compiler/data.h"
#include "tools/compiler/frontend.h"
#include "tools/compiler/lowering.h"
#include "tools/teach/annotate.h"
#include "tools/teach/explain.h"
#include "tools/teach/html.h"
#include "tools/teach/vcd.h"
#include "tests/cli_helpers.h"

namespace tpu {
namespace {

// One M x K by K x N int8 matmul on an R x C array, explained, with its operands.
struct Case {
  std::uint32_t r, c, m, k, n;
  Config config;
  Program program;
  std::vector<std::int32_t> x, w;  // X (M x K), W (K x N), row-major

  Case(std::uint32_t rows, std::uint32_t cols, std::uint32_t m_, std::uint32_t k_,
       std::uint32_t n_)
      : r(rows), c(cols), m(m_), k(k_), n(n_) {
    config = default_config({"array.rows=" + std::to_string(r), "array.cols=" + std::to_string(c)});
    const Graph g = parse_model_json(matmul_model_json(m, k, n, 1), "<test>");
    program = compile(g, config, CompileOptions{});
    const GraphData d = generate_data(g, g.seed);
    x.assign(d.inputs[g.inputs[0]].i8.begin(), d.inputs[g.inputs[0]].i8.end());
    w.assign(d.weights[0].i8.begin(), d.weights[0].i8.end());
  }
  std::int32_t X(std::uint32_t mi, std::uint32_t ki) const { return x[mi * k + ki]; }
  std::int32_t W(std::uint32_t ki, std::uint32_t ni) const { return w[ki * n + ni]; }
  // Partial sum of row mi through PE rows 0 .. kr, column ni.
  std::int32_t psum(std::uint32_t mi, std::uint32_t kr, std::uint32_t ni) const {
    std::int32_t s = 0;
    for (std::uint32_t j = 0; j <= kr && j < k; ++j) s += X(mi, j) * W(j, ni);
    return s;
  }
};

const ArrayCycle& step_at(const Explained& run, Cycle t) {
  for (const ArrayCycle& c : run.steps) {
    if (c.cycle == t) return c;
  }
  throw std::runtime_error("cycle " + std::to_string(t) + " was not stepped");
}

Cycle load_start(const Explained& run) {
  for (const InstructionEvent& e : run.events) {
    if (e.kind == InstructionEvent::Kind::kStarted && e.unit == Unit::kWeightLoad) return e.cycle;
  }
  throw std::runtime_error("no weight load started");
}

// 2 x 2 array, X 3 x 2 by W 2 x 2: every register of every PE in every cycle of the stream.
TEST(Explain, TinyArrayEveryRegisterByHand) {
  const Case t(2, 2, 3, 2, 2);
  const Explained run = explain(t.config, t.program);
  ASSERT_EQ(run.streams.size(), 1u);
  const Cycle s = run.streams[0].start;
  const Cycle e = load_start(run);
  // Double buffering: the stream may start from e + 1, and weight (j, n) reaches its PE in
  // e + j + n; the first input meets PE (j, n) in s + j + n, after it.
  EXPECT_GE(s, e + 1);
  // The stream lasts M + N_t + R - 1 = 3 + 2 + 2 - 1 = 6 cycles: s .. s + 5 land results at
  // s + m + n + R, the first at s + 2 and the last at L = s + M + N_t + R - 2 = s + 5.
  for (Cycle d = 0; d < 6; ++d) {
    const ArrayCycle& a = step_at(run, s + d);
    for (std::uint32_t j = 0; j < 2; ++j) {
      for (std::uint32_t n = 0; n < 2; ++n) {
        const PeView& v = a.pes[j * 2 + n];
        const std::string where = "cycle s+" + std::to_string(d) + " PE (" + std::to_string(j) +
                                  "," + std::to_string(n) + ")";
        EXPECT_EQ(v.weight, e + j + n <= s + d ? t.W(j, n) : 0) << where;
        // PE (j, n) multiplies X[m][j] in s + m + j + n.
        const long mi = long(d) - long(j) - long(n);
        ASSERT_EQ(v.has_input, mi >= 0 && mi < 3) << where;
        ASSERT_EQ(v.has_psum, v.has_input) << where;
        if (!v.has_input) continue;
        EXPECT_EQ(v.m, std::uint32_t(mi)) << where;
        EXPECT_EQ(v.input, t.X(std::uint32_t(mi), j)) << where;
        EXPECT_EQ(v.psum, t.psum(std::uint32_t(mi), j, n)) << where;
      }
    }
    // Y[m][n] lands in s + m + n + R, into accumulator row m (the compiled MATMUL's acc=0);
    // one result per column, left to right.
    std::vector<std::pair<std::uint32_t, std::uint32_t>> expected;
    for (std::uint32_t n = 0; n < 2; ++n) {
      const long mi = long(d) - long(n) - 2;
      if (mi >= 0 && mi < 3) expected.push_back({std::uint32_t(mi), n});
    }
    ASSERT_EQ(a.landed.size(), expected.size()) << "cycle s+" << d;
    for (std::size_t i = 0; i < expected.size(); ++i) {
      const auto [mi, n] = expected[i];
      EXPECT_EQ(a.landed[i].out.m, mi);
      EXPECT_EQ(a.landed[i].out.n, n);
      EXPECT_EQ(a.landed[i].acc_row, mi);
      EXPECT_EQ(a.landed[i].out.i32, t.psum(mi, 1, n)) << "Y[" << mi << "][" << n << "]";
    }
  }
  // Fill R + min(M, N_t) - 1 = 3, full rate |M - N_t| + 1 = 2 cycles of 2 results, drain 1.
  EXPECT_EQ(run.streams[0].first_landed, s + 2);
  EXPECT_EQ(run.streams[0].last_landed, s + 5);
  EXPECT_EQ(run.streams[0].results, 6u);
  EXPECT_EQ(run.streams[0].peak_cycles, 2u);
}

// Weights travel the diagonal wave: PE (j, n) holds W[j][n] from e + j + n on, zero before.
TEST(Explain, WeightsArriveOnTheDiagonal) {
  const Case t(4, 4, 6, 4, 4);
  const Explained run = explain(t.config, t.program);
  const Cycle e = load_start(run);
  for (Cycle d = 0; d < 7; ++d) {
    const ArrayCycle& a = step_at(run, e + d);
    for (std::uint32_t j = 0; j < 4; ++j) {
      for (std::uint32_t n = 0; n < 4; ++n) {
        EXPECT_EQ(a.pes[j * 4 + n].weight, j + n <= d ? t.W(j, n) : 0)
            << "cycle e+" << d << " PE (" << j << "," << n << ")";
      }
    }
  }
}

// The acceptance case, 4 x 4 array, X 6 x 4 by W 4 x 4, in the printed trace: the
// first activation entering, the first and the last result leaving, and the summary.
TEST(Explain, TextShowsEntriesAndResultsAtTheirCycles) {
  const Case t(4, 4, 6, 4, 4);
  const Explained run = explain(t.config, t.program);
  const Cycle s = run.streams.at(0).start;
  const std::string text = explain_text(run, false);
  const auto block = [&](Cycle c) {
    const std::string head = "\ncycle " + std::to_string(c) + "\n";
    const std::size_t at = text.find(head);
    EXPECT_NE(at, std::string::npos) << head;
    return text.substr(at + 1, text.find("\ncycle ", at + 1) - at);
  };
  const auto has = [](const std::string& b, const std::string& line) {
    EXPECT_NE(b.find(line), std::string::npos) << "missing '" << line << "' in\n" << b;
  };
  // Row k receives X[m][k] in s + m + k: at s only X[0][0] enters.
  has(block(s), "  enter   row 0: X[0][0]=" + std::to_string(t.X(0, 0)) + "\n");
  // At s + 3: X[3][0], X[2][1], X[1][2], X[0][3].
  has(block(s + 3), "  enter   row 0: X[3][0]=" + std::to_string(t.X(3, 0)) + ", row 1: X[2][1]=" +
                        std::to_string(t.X(2, 1)) + ", row 2: X[1][2]=" +
                        std::to_string(t.X(1, 2)) + ", row 3: X[0][3]=" +
                        std::to_string(t.X(0, 3)) + "\n");
  // Y[0][0] leaves in s + R = s + 4, Y[5][3] (the last) in s + 6 + 4 + 4 - 2 = s + 12.
  has(block(s + 4),
      "  leave   col 0: Y[0][0]=" + std::to_string(t.psum(0, 3, 0)) + " -> acc[0][0]\n");
  has(block(s + 12),
      "  leave   col 3: Y[5][3]=" + std::to_string(t.psum(5, 3, 3)) + " -> acc[5][3]\n");
  EXPECT_EQ(block(s + 3).find("leave"), std::string::npos);
  // Every cycle is printed; --changes prints fewer, but still every one where data moves.
  const std::string changes = explain_text(run, true);
  EXPECT_LT(changes.size(), text.size());
  for (Cycle c = s; c <= s + 12; ++c) {
    EXPECT_NE(changes.find("\ncycle " + std::to_string(c) + "\n"), std::string::npos) << c;
  }
  const std::string summary = explain_summary(run);
  const auto n = [](Cycle v) { return std::to_string(v); };
  has(summary, "L = s + M + N_t + R - 2     = " + std::string(6 - n(s + 12).size(), ' ') +
                   n(s + 12) + "   seen " + n(s + 12));
  has(summary, "|M - N_t| + 1               =      3 cycles");
  has(summary, "4 results a cycle; seen 3");
  // 96 MACs in 6 + 4 + 4 - 1 = 13 cycles of 16 PEs.
  has(summary, "= 96 / 208 = 46.2 %");
}

// A VCD file read back: each signal's value changes, (time in ps, value), by name.
std::map<std::string, std::vector<std::pair<long long, long long>>> read_vcd(
    const std::string& path) {
  std::ifstream in(path);
  std::map<std::string, std::string> name_of;  // VCD id -> signal name
  std::map<std::string, std::vector<std::pair<long long, long long>>> changes;
  std::string line;
  long long time = 0;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string first;
    words >> first;
    if (first == "$var") {
      std::string type, id, name;
      int width = 0;
      words >> type >> width >> id >> name;
      name_of[id] = name;
    } else if (!first.empty() && first[0] == '#') {
      time = std::stoll(first.substr(1));
    } else if (!first.empty() && first[0] == 'b') {
      std::string id;
      words >> id;
      // Two's complement: SystemC drops leading zeros, so a negative value has all 32 bits.
      const std::string bits = first.substr(1);
      long long v = std::stoll(bits, nullptr, 2);
      if (bits.size() == 32 && bits[0] == '1') v -= 1LL << 32;
      changes[name_of.at(id)].push_back({time, v});
    } else if (first.size() > 1 && (first[0] == '0' || first[0] == '1')) {
      changes[name_of.at(first.substr(1))].push_back({time, first[0] - '0'});
    }
  }
  return changes;
}

// The value a signal has at time t (the last change at or before t).
long long value_at(const std::vector<std::pair<long long, long long>>& changes, long long t) {
  long long v = 0;
  for (const auto& [at, value] : changes) {
    if (at > t) break;
    v = value;
  }
  return v;
}

// The 2 x 2 run's waveforms: every PE and unit signal is declared, and the PE registers change
// when the array steps, at c + 3/4 of cycle c, to the values the contract gives.
TEST(Explain, VcdHoldsThePeRegistersAndUnitStates) {
  const Case t(2, 2, 3, 2, 2);
  const std::string path = tpu::test_shell::temp_path("run.vcd");
  VcdWriter vcd(path, t.config, t.program);
  const Explained run = explain(t.config, t.program, {&vcd});
  vcd.close();
  const auto changes = read_vcd(path);
  for (const char* name : {"pe_0_0_w", "pe_0_0_x", "pe_0_0_p", "pe_0_0_xv", "pe_1_1_w",
                           "pe_1_1_p", "matmul_busy", "matmul_waiting", "matmul_pc",
                           "weight_load_busy", "dma_busy", "vector_busy"}) {
    EXPECT_TRUE(changes.count(name)) << name << " never changes (or is missing)";
  }
  // Picoseconds, as SystemC rounds the period to its 1 ps resolution.
  const long long p = std::llround(t.config.period_ns() * 1000), q = std::llround(0.75 * p);
  const Cycle s = run.streams.at(0).start;
  const long long step = (long long)s * p + q;  // the array's step of cycle s
  // X[0][0] meets PE (0, 0) in s; X[0][1] meets PE (1, 0) in s + 1, whose psum is then
  // X[0][0] W[0][0] + X[0][1] W[1][0]; Y[0][1] leaves PE (1, 1) in s + 2.
  EXPECT_EQ(value_at(changes.at("pe_0_0_xv"), step - 1), 0);
  EXPECT_EQ(value_at(changes.at("pe_0_0_xv"), step), 1);
  EXPECT_EQ(value_at(changes.at("pe_0_0_x"), step), t.X(0, 0));
  EXPECT_EQ(value_at(changes.at("pe_0_0_p"), step), t.psum(0, 0, 0));
  EXPECT_EQ(value_at(changes.at("pe_1_0_p"), step + p), t.psum(0, 1, 0));
  EXPECT_EQ(value_at(changes.at("pe_1_1_p"), step + 2 * p), t.psum(0, 1, 1));
  EXPECT_EQ(value_at(changes.at("pe_1_1_w"), step + 2 * p), t.W(1, 1));
  // The MATMUL is busy from its start (at s, or at the UB grant half a cycle into s) until its
  // completion at L + 1 = s + M + N_t + R - 1 = s + 6.
  const auto& busy = changes.at("matmul_busy");
  EXPECT_EQ(value_at(busy, (long long)s * p - 1), 0);
  EXPECT_EQ(value_at(busy, (long long)s * p + p / 2), 1);
  EXPECT_EQ(value_at(busy, (long long)(s + 6) * p - 1), 1);
  EXPECT_EQ(value_at(busy, (long long)(s + 6) * p), 0);
  EXPECT_EQ(value_at(changes.at("matmul_pc"), (long long)s * p + p / 2),
            (long long)run.streams[0].pc);
}

// The page carries everything inline (no http(s) source or link, no external script or style)
// and its embedded data is the run: every stepped cycle's registers and results.
TEST(Explain, HtmlIsSelfContainedAndCarriesTheRun) {
  const Case t(2, 2, 3, 2, 2);
  const Explained run = explain(t.config, t.program);
  const std::string html = explain_html(explain_json(run));
  for (const char* banned : {"http://", "https://", "src=", "href=", "<link", "@import"}) {
    EXPECT_EQ(html.find(banned), std::string::npos) << banned;
  }
  const std::string open = "<script type=\"application/json\" id=\"data\">";
  const std::size_t from = html.find(open);
  ASSERT_NE(from, std::string::npos);
  const std::size_t begin = from + open.size(), end = html.find("</script>", begin);
  const nlohmann::json data = nlohmann::json::parse(html.substr(begin, end - begin));
  EXPECT_EQ(data["rows"], 2);
  EXPECT_EQ(data["cols"], 2);
  EXPECT_EQ(data["total_cycles"], run.result.total_cycles);
  ASSERT_EQ(data["cycles"].size(), run.steps.size());
  const Cycle s = run.streams.at(0).start;
  for (const nlohmann::json& c : data["cycles"]) {
    const Cycle cycle = c["t"];
    if (cycle == s) {
      // X[0][0] meets PE (0, 0) in s; nothing else has an input yet.
      EXPECT_EQ(c["x"], nlohmann::json::parse("[" + std::to_string(t.X(0, 0)) +
                                              ", null, null, null]"));
      EXPECT_EQ(c["m"], nlohmann::json::parse("[0, null, null, null]"));
    }
    if (cycle == s + 2) {
      // Y[0][0] lands in s + R = s + 2, alone.
      ASSERT_EQ(c["out"].size(), 1u);
      EXPECT_EQ(c["out"][0]["m"], 0);
      EXPECT_EQ(c["out"][0]["n"], 0);
      EXPECT_EQ(c["out"][0]["value"], t.psum(0, 1, 0));
    }
  }
  // Every instruction the run reported, with its cycles.
  std::size_t started = 0;
  for (const InstructionEvent& e : run.events) {
    started += e.kind == InstructionEvent::Kind::kStarted;
  }
  std::size_t with_start = 0;
  for (const nlohmann::json& i : data["instructions"]) with_start += i.contains("start");
  EXPECT_EQ(with_start, started);
}

// The compiled 6 x 4 by 4 x 4 program on a 4 x 4 array, read by hand: X (6 rows of 4) is
// gathered into UB rows 0..5, W (16 elements) into weight FIFO entry 0 (on DMA engine 2, the
// default config's weight path); the activate writes UB rows 12..17, which the store sends to
// HBM (on engine 1); each wait pairs with the one signal before it. X, W and the output each
// start on a 256-byte HBM burst (hbm.burst_bytes): 0x0, 0x100, 0x200.
TEST(Explain, AnnotatedAssemblySaysWhatEachInstructionDoes) {
  const Case t(4, 4, 6, 4, 4);
  const std::string a = annotated_assembly(t.program, t.config);
  for (const char* line : {
           "# layer 0 'gemm' (matmul, 96 MACs)",
           "# HBM 0x100 -> weight FIFO entry 0: 1 group(s) of 1 segment(s) of 16 elements\n",
           "# HBM 0x0 -> UB rows 0..5: 6 group(s) of 1 segment(s) of 4 elements\n",
           "# weight tile 0 (K_t = 4 x N_t = 4) from weight FIFO entry 0 into weight buffer 0; "
           "waits on first_input: signalled by pc 2 (dma.load)\n",
           "# 6 input rows (UB rows 0..5) through weight tile 0 -> accumulator rows 0..5, "
           "overwritten; waits on x_ready: signalled by pc 2 (dma.load)\n",
           "# accumulator rows 0..5, 4 columns, requantised and activated -> UB rows 12..17; "
           "waits on acc_ready: signalled by pc 4 (matmul)\n",
           "# UB rows 12..17 -> HBM 0x200: 6 group(s) of 1 segment(s) of 4 elements; waits on "
           "store_ready: signalled by pc 5 (activate)\n"}) {
    EXPECT_NE(a.find(line), std::string::npos) << "missing: " << line << "\nin\n" << a;
  }
}

}  // namespace
}  // namespace tpu
