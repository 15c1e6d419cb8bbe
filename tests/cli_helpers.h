#pragma once
// For the tests that drive executables (the tpusim binary, a browser): run a shell command and
// capture what it prints, in files under the test's temporary directory.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <fstream>
#include <sstream>
#include <string>

#include <sys/wait.h>

#include "tests/test_paths.h"

namespace tpu::test_shell {

struct Outcome {
  int exit_code = -1;
  std::string out, err;
};

inline std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A file name of the running test's own.
// Named after the test and the build tree, so test runs of two checkouts at once (worktrees)
// never share a path, while reruns of one reuse theirs.
inline std::string temp_path(const std::string& name) {
  const ::testing::TestInfo* t = ::testing::UnitTest::GetInstance()->current_test_info();
  static const std::string build = std::to_string(std::hash<std::string>{}(tpu::test_paths::binary()) % 100000);
  return ::testing::TempDir() + "tpusim" + build + "_" + t->name() + "_" + name;
}

#if defined(__SANITIZE_ADDRESS__)
// A binary that throws after a simulation meets the same false report as the test binaries
// (tests/asan.supp), which test_main.cc suppresses for them but nothing does for tpusim.
inline const std::string kSanitizerEnv =
    std::string("ASAN_OPTIONS=suppressions=") + tpu::test_paths::source_dir() + "/tests/asan.supp ";
// The three-line warning ASan prints before that report, even when it is suppressed.
inline std::string without_sanitizer_warning(const std::string& err) {
  std::istringstream in(err);
  std::string kept;
  for (std::string line; std::getline(in, line);) {
    if (line.find("ASan is ignoring requested __asan_handle_no_return") != std::string::npos ||
        line == "False positive error reports may follow" ||
        line == "For details see https://github.com/google/sanitizers/issues/189") {
      continue;
    }
    kept += line + "\n";
  }
  return kept;
}
#else
inline const std::string kSanitizerEnv;
inline std::string without_sanitizer_warning(const std::string& err) { return err; }
#endif

// An empty directory of the running test's own.
inline std::string fresh_dir(const std::string& name) {
  const std::string dir = temp_path(name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline Outcome shell(const std::string& command) {
  const std::string out = temp_path("stdout"), err = temp_path("stderr");
  const int status = std::system((command + " >" + out + " 2>" + err).c_str());
  Outcome o;
  o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  o.out = slurp(out);
  o.err = without_sanitizer_warning(slurp(err));
  return o;
}

// `tpusim ARGS`, the binary under test; `shell_prefix` runs first in the same shell, e.g.
// "ulimit -v 1000000;".
inline Outcome tpusim(const std::string& args, const std::string& shell_prefix = "") {
  return shell(shell_prefix + kSanitizerEnv + tpu::test_paths::binary() + " " + args);
}

}  // namespace tpu::test_shell
