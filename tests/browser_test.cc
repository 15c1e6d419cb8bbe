// The explain page in a real browser (ctest label `browser`): Debian's chromium, headless,
// opens `tpusim explain --html` at chosen cycles (#t=CYCLE) and the test reads what the page
// then shows against the same run's printed trace, and saves a screenshot. Skipped when
// chromium is not installed (apt-get install chromium).
#include <gtest/gtest.h>

#include <cctype>
#include <cstdio>
#include <regex>
#include <string>

#include "tests/cli_helpers.h"

namespace {

using tpu::test_shell::shell;
using tpu::test_shell::slurp;
using tpu::test_shell::temp_path;
using tpu::test_shell::tpusim;

const char* kChromium =
    "chromium --headless --no-sandbox --disable-gpu --window-size=1400,1100 ";

// The page's DOM after its script ran, opened at cycle t.
std::string dom_at(const std::string& page, unsigned long long t) {
  const tpu::test_shell::Outcome o = shell(std::string(kChromium) + "--dump-dom 'file://" +
                                            page + "#t=" + std::to_string(t) + "'");
  EXPECT_EQ(o.exit_code, 0) << o.err;
  return o.out;
}

// The value of attribute `attr` of the element with id `id`.
std::string attr(const std::string& dom, const std::string& id, const std::string& attr) {
  std::smatch m;
  const std::regex tag("<[^>]*id=\"" + id + "\"[^>]*>");
  if (!std::regex_search(dom, m, tag)) return "<no element " + id + ">";
  const std::string t = m.str();
  std::smatch v;
  if (!std::regex_search(t, v, std::regex(attr + "=\"([^\"]*)\""))) return "<no " + attr + ">";
  return v[1];
}

// The number after `prefix` in `text` (the first match).
std::string after(const std::string& text, const std::string& prefix) {
  const std::size_t at = text.find(prefix);
  if (at == std::string::npos) return "<no '" + prefix + "'>";
  std::size_t end = at + prefix.size();
  while (end < text.size() && (std::isdigit(static_cast<unsigned char>(text[end])) ||
                               text[end] == '-')) {
    ++end;
  }
  return text.substr(at + prefix.size(), end - at - prefix.size());
}

// The acceptance run, 4 x 4 array, X 6 x 4 by W 4 x 4: the page at the first input's
// cycle, the first result's and the last result's shows what the printed trace says then.
TEST(Browser, PageShowsTheRunAtChosenCycles) {
  if (shell("command -v chromium").exit_code != 0) GTEST_SKIP() << "chromium is not installed";
  const std::string page = temp_path("explain.html");
  const tpu::test_shell::Outcome run =
      tpusim("explain --rows 4 --cols 4 --m 6 --k 4 --n 4 --html " + page);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const std::string& text = run.out;
  const unsigned long long s = std::stoull(after(text, "stream start s = "));
  const std::string matmul_pc = after(text, "matmul pc ");  // the summary's line

  // Cycle s: X[0][0] enters PE (0, 0); the MATMUL is busy.
  std::string dom = dom_at(page, s);
  EXPECT_NE(dom.find(">cycle " + std::to_string(s) + "<"), std::string::npos);
  EXPECT_EQ(attr(dom, "pe-0-0", "data-x"), after(text, "enter   row 0: X[0][0]="));
  EXPECT_EQ(attr(dom, "pe-0-0", "data-m"), "0");
  EXPECT_EQ(attr(dom, "pe-1-0", "data-x"), "");
  EXPECT_EQ(attr(dom, "inst-" + matmul_pc, "data-state"), "busy");

  // Cycle s + R = s + 4: Y[0][0] leaves column 0.
  dom = dom_at(page, s + 4);
  EXPECT_EQ(attr(dom, "out-0", "data-m"), "0");
  EXPECT_EQ(attr(dom, "out-0", "data-v"), after(text, "leave   col 0: Y[0][0]="));
  EXPECT_EQ(attr(dom, "out-1", "data-v"), "");

  // Cycle L = s + M + N_t + R - 2 = s + 12: Y[5][3], the last result, leaves column 3; the
  // MATMUL completes at L + 1.
  dom = dom_at(page, s + 12);
  EXPECT_EQ(attr(dom, "out-3", "data-m"), "5");
  EXPECT_EQ(attr(dom, "out-3", "data-v"), after(text, "leave   col 3: Y[5][3]="));
  EXPECT_EQ(attr(dom, "inst-" + matmul_pc, "data-state"), "busy");
  EXPECT_EQ(attr(dom_at(page, s + 13), "inst-" + matmul_pc, "data-state"), "done");

  const std::string shot = temp_path("explain.png");
  EXPECT_EQ(shell(std::string(kChromium) + "--screenshot=" + shot + " 'file://" + page + "#t=" +
                  std::to_string(s + 5) + "'")
                .exit_code,
            0);
  EXPECT_GT(slurp(shot).size(), 10000u) << shot;
  std::printf("screenshot of cycle %llu: %s\n", s + 5, shot.c_str());
}

}  // namespace
