// Fuzz target: SCALE-Sim topology CSV (conv or GEMM rows) through the front end and shape
// inference. A bad topology must raise CompileError.
#include <cstddef>
#include <cstdint>
#include <string>

#include "tools/compiler/frontend.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    tpu::parse_scalesim_csv(std::string(reinterpret_cast<const char*>(data), size), "fuzz.csv");
  } catch (const tpu::CompileError&) {
  }
  return 0;
}
