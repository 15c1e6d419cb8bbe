// Fuzz target: assembly text (`tpusim asm`, `run --program FILE.asm`). Bad text must raise
// IsaError; a program that parses must survive printing and re-parsing, and the binary format,
// unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "sim/isa/isa.h"
#include "sim/isa/program.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  tpu::Program program;
  try {
    program = tpu::parse_assembly(std::string(reinterpret_cast<const char*>(data), size));
  } catch (const tpu::IsaError&) {
    return 0;
  }
  const std::string text = tpu::to_assembly(program);
  if (tpu::to_assembly(tpu::parse_assembly(text)) != text) std::abort();
  const std::vector<std::uint8_t> bytes = tpu::serialize(program);
  if (tpu::serialize(tpu::deserialize(bytes)) != bytes) std::abort();
  return 0;
}
