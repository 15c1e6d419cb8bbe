// Fuzz target: model JSON, graph or chain form, through the front end and shape inference
// (`tpusim run --model FILE.json` before compiling). A bad model must raise CompileError.
#include <cstddef>
#include <cstdint>
#include <string>

#include "tools/compiler/frontend.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    tpu::parse_model_json(std::string(reinterpret_cast<const char*>(data), size), "fuzz.json");
  } catch (const tpu::CompileError&) {
  }
  return 0;
}
