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
// - Activation residency. The top half of the UB holds two activation arenas of ub_rows / 4
//   rows each; layer i's output goes to arena i % 2 (the rest of the UB is staging for tiles).
//   Layer i's output stays in the UB instead of going to HBM when: residency is on, a next
//   layer reads it (not the last layer, no independent input), that consumer reads UB pixel
//   rows (a convolution, a max pool, or a dense layer on a 1 x 1 x C input), the tensor with
//   its consumer's zero border fits an arena, and the producer's and consumer's smallest tiles
//   fit the staging rows left beside the arenas. A resident tensor has no HBM copy: its
//   LayerInfo has no output view and no expected values; every other output is checked.
// - Resident layout: one UB row per padded pixel per channel chunk of min(R, C) channels,
//   chunk-major: row = arena + ((cc * samples + b) * Hp + y) * Wp + x over the zero-padded
//   Hp x Wp image, so every chunk of every image is a plain grid of consecutive rows. The
//   producer writes it with one ACTIVATE (or POOL) per output row when the consumer's border
//   breaks the rows apart, else one per tile; the consumer zeroes the border rows with DMA
//   loads from a zero region of HBM at its start.
// - Convolution paths. "Taps": K tiles are (ky, kx, channel chunk) with K_t = the chunk's
//   channels; per weight tile, one MATMUL per output row segment reads the row's input pixels
//   (oy * s + ky, ox * s + kx) with ub_stride s. Used when the input is resident, and for an
//   input in HBM when C >= R / 2 or packed taps need no more tiles than im2col, with each M
//   tile's band of padded input rows loaded into UB pixel rows. From HBM, when several taps'
//   channels fit min(R, C) rows, a tile packs consecutive taps (in (ky, kx) order) that are
//   evenly spaced in HBM: a run along a kernel row, or a pair crossing to the next one. Tiles
//   of one shape share a band image whose UB row per anchor pixel holds those taps' channels,
//   gathered by the DMA (K_t = taps * C). With very few channels (a first RGB layer), a tile
//   packs whole kernel rows instead (one kernel_w * C segment each) when that beats im2col's
//   DMA-bound gather (max(weight tiles, DMA segments) per output pixel): all tiles share one
//   image anchored at (oy * s + ky0, ox * s), loaded only at the anchors they read. A
//   strided 1 x 1 conv's band holds only the pixels it reads (every s-th of every s-th row), so
//   its MATMULs stream consecutive rows. Otherwise "rows": im2col patches gathered from HBM
//   (kernel_w * C per segment), packed R per UB row.
// - DMA order (one transfer runs at a time): the next M tile's input is queued in shares, one
//   behind each weight-tile load of the current M tile; output tile t is stored behind the
//   first weight load of tile t + 2, when the vector unit has long written it, so a weight load
//   never waits behind a store that waits for the vector unit.
// - Cross-layer order: the last ACTIVATE/POOL of a layer with a resident output signals
//   layer_done, which the next DMA waits on (its signal bit is set only once that DMA is
//   emitted, so counts balance). Only then may DMAs overwrite the staging rows or an arena's
//   border rows. A consumer's first MATMUL needs its first weight tile, which a later DMA
//   loads (the DMA engine runs one transfer at a time, in order), so it sees both the whole
//   resident tensor and its zeroed border without a semaphore of its own. A pooling consumer
//   runs on the vector unit, in order behind the producer.
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
  // Keep a layer's output in the unified buffer as the next layer's input when it fits (see
  // above); false sends every activation through HBM.
  bool resident_activations = true;
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
  kSemLayerDone = 10, // vector -> dma: a layer with a resident output is done with the UB
};

// Throws CompileError when a layer cannot fit (saying why and what would fit), when HBM is too
// small, or when a field would overflow its instruction width.
Program compile(const Model& model, const Config& config, const CompileOptions& options = {});

}  // namespace tpu
