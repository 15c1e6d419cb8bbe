// The teaching labs of README.md ("A guided tour for teachers"): each command runs as written
// (from the source tree) and prints the figures the text quotes.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/cli_helpers.h"
#include "tests/test_paths.h"

namespace {

using tpu::test_shell::shell;
using tpu::test_shell::slurp;

const std::string kSource = tpu::test_paths::source_dir();

// Runs `command` ("build/tpusim ARGS", as README.md writes it) from the source tree with the
// binary under test, after checking README.md still shows it; expects every line in `says`.
void lab(const std::string& command, const std::vector<std::string>& says) {
  const std::string readme = slurp(kSource + "/README.md");
  EXPECT_NE(readme.find("\n" + command + "\n"), std::string::npos)
      << "README.md no longer shows: " << command;
  const std::string args = command.substr(std::string("build/tpusim ").size());
  const tpu::test_shell::Outcome o =
      shell("cd " + kSource + " && " + tpu::test_paths::binary() + " " + args);
  ASSERT_EQ(o.exit_code, 0) << o.err;
  for (const std::string& s : says) {
    EXPECT_NE(o.out.find(s), std::string::npos) << command << "\ndoes not print: " << s;
  }
}

// Conv1: K = 7 x 7 x 3 = 147 rows in folds of 84 and 63 (4 and 3 kernel rows), N = 64 of 128
// columns: 147 x 64 / (2 x 128 x 128) = 28.7 %.
TEST(Labs, FirstConvolutionLeavesTheArrayIdle) {
  lab("build/tpusim run --model models/scalesim/scalesim_resnet50.csv --timing-only",
      {"Conv1   conv2d   112M   39861   42.405    17.1       28.7",
       "CB2a_2  conv2d   107M   25733   27.376    25.5       45.0"});
  // K = 27 = 8 + 8 + 8 + 3 rows of an 8 x 8 array, N = 4 columns: 32 and 12 of 64 PEs.
  lab("build/tpusim explain --model models/lab_rgb_conv.json --rows 8 --cols 8 --summary",
      {"K_t x N_t of R x C = 32 of 64 (50.0 %)", "K_t x N_t of R x C = 12 of 64 (18.8 %)",
       "0 differ from the plain C++ reference"});
}

TEST(Labs, BatchSizeDecidesWhetherADenseLayerIsMemoryBound) {
  lab("build/tpusim run --model models/lab_dense_batch1.json --config configs/tpu_v1.json "
      "--timing-only",
      {"92529 cycles", "0.0635 TOPS, MXU utilization 0.1 %", "roofline 86100 cycles",
       "4.19M"});
  lab("build/tpusim run --model models/lab_dense_batch256.json --config configs/tpu_v1.json "
      "--timing-only",
      {"115387 cycles", "13 TOPS, MXU utilization 14.2 %", "roofline 107520 cycles"});
}

// An M = 8 stream through a full R x R tile: M + N_t + R - 1 cycles, utilisation
// M R R / ((M + 2R - 1) R R): 128 / 240, 2048 / 9984, 8192 / 72704.
TEST(Labs, ArraySizeTradesFillAndDrainAgainstThroughput) {
  lab("build/tpusim explain --rows 4 --cols 4 --m 8 --k 4 --n 4 --summary",
      {"=     15 cycles", "= 128 / 240 = 53.3 %"});
  lab("build/tpusim explain --rows 16 --cols 16 --m 8 --k 16 --n 16 --summary",
      {"=     39 cycles", "= 2048 / 9984 = 20.5 %"});
  lab("build/tpusim explain --rows 32 --cols 32 --m 8 --k 32 --n 32 --summary",
      {"=     71 cycles", "= 8192 / 72704 = 11.3 %"});
}

}  // namespace
