// Test entry point. The tests run from sc_main instead of linking gtest_main, which could lose
// to the main() in libsystemc and run zero tests.
#include <gtest/gtest.h>

#include <cstdlib>
#include <systemc>

int sc_main(int argc, char* argv[]) {
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}

// libsystemc's own main() would print a banner from sc_elab_and_sim() before sc_main runs;
// this one switches it off first.
int main(int argc, char* argv[]) {
  setenv("SC_COPYRIGHT_MESSAGE", "DISABLE", 1);
  return sc_core::sc_elab_and_sim(argc, argv);
}

// Sanitizer builds only (ordinary builds never call these): libsystemc switches thread stacks
// by hand without telling AddressSanitizer, and keeps a few small allocations it never frees
// when a simulation ends in an error. tests/asan.supp explains the one report that follows.
extern "C" const char* __asan_default_options() {
  return "suppressions=" TPUSIM_SOURCE_DIR "/tests/asan.supp";
}
extern "C" const char* __lsan_default_suppressions() { return "leak:libsystemc\n"; }
