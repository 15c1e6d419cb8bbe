// Test entry point. The tests run from sc_main instead of linking gtest_main, which could lose
// to the main() in libsystemc and run zero tests.
#include <gtest/gtest.h>

#include <systemc>

#include "sim/tpu_core.h"
#include "tests/test_paths.h"

namespace tpu::test_paths {
const std::string& source_dir() {
  static const std::string dir = TPUSIM_SOURCE_DIR;
  return dir;
}
const std::string& binary() {
  static const std::string path = TPUSIM_BINARY;
  return path;
}
}  // namespace tpu::test_paths

int sc_main(int argc, char* argv[]) {
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}

int main(int argc, char* argv[]) { return tpu::run_sc_main(argc, argv); }

// Sanitizer builds only (ordinary builds never call these): libsystemc switches thread stacks
// by hand without telling AddressSanitizer, and keeps a few small allocations it never frees
// when a simulation ends in an error. tests/asan.supp explains the one report that follows.
extern "C" const char* __asan_default_options() {
  return "suppressions=" TPUSIM_SOURCE_DIR "/tests/asan.supp";
}
extern "C" const char* __lsan_default_suppressions() { return "leak:libsystemc\n"; }
