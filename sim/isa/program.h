#pragma once
// A compiled program: the instruction stream, the names that make it readable, the HBM memory
// image it starts from and, for checking, where each layer's output lands and what it should be.
// This is what the compiler emits and the sequencer executes; it serialises to a versioned
// binary file and to assembly text.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sim/config/config.h"
#include "sim/isa/instruction_list.h"
#include "sim/isa/isa.h"

namespace tpu {

// A 3-D view of a tensor in HBM: count2 x count1 x count0 elements, count0 contiguous.
struct TensorView {
  std::uint64_t base = 0;        // bytes
  std::uint32_t count0 = 0;      // contiguous elements
  std::uint32_t count1 = 1;
  std::uint64_t stride1 = 0;     // bytes
  std::uint32_t count2 = 1;
  std::uint64_t stride2 = 0;     // bytes
  std::uint64_t elements() const { return std::uint64_t(count0) * count1 * count2; }
};

// The byte just past the last element of `view` in elements of `dtype` (0 for an empty view),
// or nothing when that exceeds 64 bits.
std::optional<std::uint64_t> view_end(const TensorView& view, DataType dtype);

struct HbmSegment {
  std::string name;
  std::uint64_t address = 0;
  std::vector<std::uint8_t> bytes;
};

struct LayerInfo {
  std::string name;
  std::string kind;             // "matmul", "conv2d", "maxpool2d", ...
  std::uint64_t macs = 0;       // useful multiply-accumulates
  TensorView output;            // where the layer's output lands in HBM
  // Expected output in element order of `output`: int8 values for int8 programs; fp32
  // reference values (before bf16 rounding) for bf16 programs. Empty when not computed.
  std::vector<std::int8_t> expected_int8;
  std::vector<float> expected_fp32;
};

// Limits of what a program may be: a run holds every instruction in host memory (an
// InstructionList record, about 17 bytes each, and a 4-byte index entry), and a binary program
// file carries its memory image and expected outputs.
constexpr std::size_t kMaxInstructions = std::size_t(1) << 24;
constexpr std::uint64_t kMaxProgramFileBytes = std::uint64_t(1) << 30;

struct Program {
  // 2: 64-byte instructions (64 semaphores, unit instances, wider fields). 3: grouped convs'
  // load.weights blocks. 4: dma.load fifo (several MXUs). 5: 128-byte instructions (a VOP row
  // op's row spanning several UB rows). 6: one instruction stream per core (core_begin),
  // signal.core.
  static constexpr std::uint32_t kFormatVersion = 7;

  DataType dtype = DataType::kInt8;
  // Array shape the program was compiled for; the simulator rejects a mismatching config.
  std::uint32_t array_rows = 0;
  std::uint32_t array_cols = 0;
  InstructionList instructions;
  // Several cores: core c runs instructions [core_begin[c], core_begin[c + 1]) (the last one
  // to the end), each stream ending in its HALT; core_begin[0] = 0. Empty: one stream, core
  // 0's. Cores of the chip beyond the streams stay idle.
  std::vector<std::size_t> core_begin;
  std::vector<LayerInfo> layers;                // indexed by kLayer's `layer`
  std::vector<std::string> semaphore_names;     // kNumSemaphores entries; "" = unnamed
  std::vector<HbmSegment> hbm_image;            // initial HBM contents (empty if timing-only)
  std::uint64_t hbm_bytes = 0;                  // HBM footprint the program addresses
};

// Instruction streams in `program` (at least 1), and core c's [first pc, end pc).
std::size_t program_cores(const Program& program);
std::pair<std::size_t, std::size_t> core_stream(const Program& program, std::size_t core);
// Raises IsaError unless core_begin starts at 0, rises strictly and stays within the program.
void check_core_begin(const Program& program);
// The semaphores the program's signal.core instructions (of any stream) signal on `core`.
std::uint64_t core_signalled_semaphores(const Program& program, std::size_t core);

// Assembly text: directives (.dtype, .array, .layer, .sem) then one instruction per line,
// '#' or ';' comments. Does not carry the memory image. Errors raise IsaError "line N: ...".
std::string to_assembly(const Program& program);
Program parse_assembly(const std::string& text);
std::string to_assembly(const Instruction& inst, const Program* names = nullptr);
// Semaphore i's name: its `.sem` name in `names`, else "s<i>".
std::string semaphore_name(unsigned i, const Program* names);

// Versioned binary container with everything, memory image and expected outputs included.
// deserialize rejects a layer whose expected values do not match its output view or whose
// view reaches past the program's HBM footprint.
std::vector<std::uint8_t> serialize(const Program& program);
Program deserialize(const std::vector<std::uint8_t>& bytes);
// Whether `bytes` start like a serialized program (rather than, say, assembly text).
bool is_serialized_program(const std::vector<std::uint8_t>& bytes);

}  // namespace tpu
