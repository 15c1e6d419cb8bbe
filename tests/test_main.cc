// Test entry point. libsystemc defines main() and calls sc_main, so the tests provide sc_main
// instead of linking gtest_main (which could lose to SystemC's main and run zero tests).
#include <gtest/gtest.h>

#include <systemc>

int sc_main(int argc, char* argv[]) {
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
