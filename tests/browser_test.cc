// The explain page in a real browser (ctest label `browser`): Debian's chromium, headless,
// driven by tests/browser/step_page.js (node) through the DevTools protocol. The page opens
// just before the first input enters, the test presses its step buttons, reads what the page
// shows after each press against the same run's printed trace, and saves a screenshot.
// Skipped when chromium or node is missing (apt-get install chromium nodejs).
#include <gtest/gtest.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/cli_helpers.h"
#include "tests/test_paths.h"

namespace {

using tpu::test_shell::shell;
using tpu::test_shell::temp_path;
using tpu::test_shell::tpusim;

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

// The acceptance run, 4 x 4 array, X 6 x 4 by W 4 x 4, stepped through the first
// input's cycle, the first result's and the last result's.
TEST(Browser, PageStepsThroughTheRun) {
  if (shell("command -v chromium && command -v node").exit_code != 0) {
    // CI installs both and sets TPUSIM_REQUIRE_BROWSER, so there a skip cannot pass unseen.
    if (std::getenv("TPUSIM_REQUIRE_BROWSER")) FAIL() << "chromium or node is not installed";
    GTEST_SKIP() << "chromium or node is not installed";
  }
  const std::string page = temp_path("explain.html");
  const tpu::test_shell::Outcome run =
      tpusim("explain --rows 4 --cols 4 --m 6 --k 4 --n 4 --html " + page);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const std::string& text = run.out;
  const unsigned long long s = std::stoull(after(text, "stream start s = "));
  const std::string matmul_pc = after(text, "matmul pc ");  // the summary's line

  // Open at s - 1, then 14 steps forward to L + 1 = s + M + N_t + R - 1 = s + 13, one back.
  std::string presses = "next";
  for (int i = 1; i < 14; ++i) presses += ",next";
  presses += ",prev";
  const std::string shot = temp_path("explain.png");
  const tpu::test_shell::Outcome driven =
      shell("node " + tpu::test_paths::source_dir() + "/tests/browser/step_page.js " + page + " " +
            std::to_string(s - 1) + " " + presses + " " + shot);
  ASSERT_EQ(driven.exit_code, 0) << driven.err;
  std::vector<nlohmann::json> seen;  // seen[i]: after i presses
  std::istringstream lines(driven.out);
  for (std::string line; std::getline(lines, line);) seen.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(seen.size(), 16u) << driven.out;
  for (std::size_t i = 0; i <= 14; ++i) {
    EXPECT_EQ(seen[i]["cycle"], "cycle " + std::to_string(s - 1 + i));
  }
  EXPECT_EQ(seen[15]["cycle"], "cycle " + std::to_string(s + 12));

  // s - 1: nothing has entered; the MATMUL waits. s: X[0][0] enters PE (0, 0); it is busy.
  EXPECT_EQ(seen[0]["pe00"]["x"], "");
  EXPECT_EQ(seen[0]["states"][matmul_pc], "waiting");
  EXPECT_EQ(seen[1]["pe00"]["x"], after(text, "enter   row 0: X[0][0]="));
  EXPECT_EQ(seen[1]["pe00"]["m"], "0");
  EXPECT_EQ(seen[1]["states"][matmul_pc], "busy");
  // s + R = s + 4: Y[0][0] leaves column 0, nothing else.
  EXPECT_EQ(seen[5]["out"][0]["m"], "0");
  EXPECT_EQ(seen[5]["out"][0]["v"], after(text, "leave   col 0: Y[0][0]="));
  EXPECT_EQ(seen[5]["out"][1]["v"], "");
  EXPECT_EQ(seen[4]["out"][0]["v"], "");
  // L = s + 12: Y[5][3], the last result, leaves column 3; the MATMUL completes at L + 1.
  EXPECT_EQ(seen[13]["out"][3]["m"], "5");
  EXPECT_EQ(seen[13]["out"][3]["v"], after(text, "leave   col 3: Y[5][3]="));
  EXPECT_EQ(seen[13]["states"][matmul_pc], "busy");
  EXPECT_EQ(seen[14]["states"][matmul_pc], "done");
  EXPECT_EQ(seen[15]["out"], seen[13]["out"]);  // one step back shows L again

  EXPECT_GT(tpu::test_shell::slurp(shot).size(), 10000u) << shot;
  std::printf("screenshot of cycle %llu: %s\n", s + 12, shot.c_str());
}

}  // namespace
