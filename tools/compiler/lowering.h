#pragma once
// Lowering: Model -> Program. Chooses tiles that fit the array, the unified buffer and the
// accumulators, lays tensors and weights out in HBM, schedules with double buffering and
// counting semaphores, and (unless timing-only) generates inputs and weights from the model
// seed and computes every layer's expected output with the plain reference kernels.
//
// Contracts of the emitted program:
// - Executing the instructions one by one in program order is a valid execution (every wait is
//   satisfied by signals of earlier instructions, and a buffer slot is only overwritten after
//   the instructions reading its previous contents), and every semaphore is waited on by one
//   unit only. Together these make the program deadlock-free for any queue depth >= 1: the
//   oldest unfinished instruction can always issue and start.
// - HBM outside the memory image is zero: the zero borders that make padded convolutions plain
//   strided gathers are not part of the image.
// - Timing-only programs have the same instructions as functional ones except the ACTIVATE
//   requantiser fields (multiplier, shift), which functional programs calibrate from the
//   reference accumulators and timing-only programs derive from the layer shape.
#include <cstdint>
#include <optional>

#include "sim/config/config.h"
#include "sim/isa/program.h"
#include "tools/compiler/model.h"

namespace tpu {

struct CompileOptions {
  // No data: no memory image, no expected outputs (for sweeps over very large layers).
  bool timing_only = false;
  // Replaces Model::seed for the generated inputs and weights.
  std::optional<std::uint64_t> seed;
  // Upper bound on the rows of one M tile; 0 = as many as fit the UB and accumulators.
  std::uint32_t max_m_tile = 0;
};

// Names of the semaphores the compiler uses (Program::semaphore_names holds them by index).
enum CompilerSemaphore : std::uint32_t {
  kSemXReady = 0,    // dma -> matmul: an input tile is in the UB
  kSemXFree = 1,     // matmul -> dma: an input slot may be overwritten
  kSemWReady = 2,    // dma -> weight_load: a weight tile is staged in the UB
  kSemWFree = 3,     // weight_load -> dma: a weight staging slot may be overwritten
  kSemAccReady = 4,  // matmul -> vector: an accumulator tile is complete
  kSemAccFree = 5,   // vector -> matmul: an accumulator slot may be overwritten
  kSemOutReady = 6,  // vector -> dma: an output tile is staged in the UB
  kSemOutFree = 7,   // dma -> vector: an output staging slot may be overwritten
  kSemPoolReady = 8, // dma -> vector: a pooling input band is in the UB
  kSemPoolFree = 9,  // vector -> dma: a pooling input slot may be overwritten
};

// Throws CompileError when a layer cannot fit (saying why and what would fit), when HBM is too
// small, or when a field would overflow its instruction width.
Program compile(const Model& model, const Config& config, const CompileOptions& options = {});

}  // namespace tpu
