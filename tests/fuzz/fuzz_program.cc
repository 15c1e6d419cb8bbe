// Fuzz target: the binary program format (`tpusim disasm`, `run --program FILE.tpuprog`). A
// damaged file must raise IsaError, and so must disassembling a program that assembly cannot
// spell; a program that loads must serialise back to bytes that load as the same program.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "sim/isa/isa.h"
#include "sim/isa/program.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  tpu::Program program;
  try {
    program = tpu::deserialize(std::vector<std::uint8_t>(data, data + size));
  } catch (const tpu::IsaError&) {
    return 0;
  }
  try {
    tpu::to_assembly(program);
  } catch (const tpu::IsaError&) {  // e.g. a semaphore name assembly cannot spell
  }
  const std::vector<std::uint8_t> bytes = tpu::serialize(program);
  if (tpu::serialize(tpu::deserialize(bytes)) != bytes) std::abort();
  return 0;
}
