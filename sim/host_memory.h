#pragma once
// Host buffers whose size comes from the user's input (a model's tensors, a program's HBM):
// when the host cannot provide one, the error names the buffer and its size instead of a bare
// std::bad_alloc.
#include <cstdio>
#include <new>
#include <stdexcept>
#include <string>

namespace tpu {

class HostMemoryError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Runs `allocate`, which allocates about `bytes` for `what` ("the simulated HBM"); a
// std::bad_alloc becomes "cannot allocate 4.00 GiB of host memory for the simulated HBM".
template <typename F>
decltype(auto) allocating(const std::string& what, double bytes, F&& allocate) {
  try {
    return allocate();
  } catch (const std::bad_alloc&) {
    char size[32];
    std::snprintf(size, sizeof size, "%.2f GiB", bytes / double(1 << 30));
    throw HostMemoryError("cannot allocate " + std::string(size) + " of host memory for " + what);
  }
}

}  // namespace tpu
