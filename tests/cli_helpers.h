#pragma once
// For the tests that drive executables (the tpusim binary, a browser): run a shell command and
// capture what it prints, in files under the test's temporary directory.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include <sys/wait.h>

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
inline std::string temp_path(const std::string& name) {
  const ::testing::TestInfo* t = ::testing::UnitTest::GetInstance()->current_test_info();
  return ::testing::TempDir() + "tpusim_" + t->name() + "_" + name;
}

inline Outcome shell(const std::string& command) {
  const std::string out = temp_path("stdout"), err = temp_path("stderr");
  const int status = std::system((command + " >" + out + " 2>" + err).c_str());
  Outcome o;
  o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  o.out = slurp(out);
  o.err = slurp(err);
  return o;
}

// `tpusim ARGS`, the binary under test.
inline Outcome tpusim(const std::string& args) { return shell(std::string(TPUSIM_BINARY) + " " + args); }

}  // namespace tpu::test_shell
