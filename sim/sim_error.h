#pragma once
// The simulator's one error type, SystemC-free so sim/dram/ can raise it too.
#include <stdexcept>

namespace tpu {

// Raised for a program the core cannot run: deadlock (names each blocked unit, its
// instruction and what it waits on), out-of-range addresses, a program compiled for another
// array shape, no HALT within SimOptions::max_cycles. what() is one line.
class SimError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace tpu
