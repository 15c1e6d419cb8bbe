#pragma once
// compile(): Graph -> Program, the passes after the front end (tools/compiler/README.md): data
// generation and the reference interpreter (unless timing-only), memory planning, then per
// node, in order, tiling that fits the array, the unified buffer and the accumulators,
// scheduling with double buffering and counting semaphores, and emission.
//
// Contracts of the emitted program:
// - Executing the instructions one by one in program order is a valid execution (every wait is
//   satisfied by signals of earlier instructions, and a buffer slot is only overwritten after
//   the instructions reading its previous contents), and every semaphore is waited on by one
//   unit only. Together these make the program deadlock-free for any queue depth >= 1: the
//   oldest unfinished instruction can always issue and start.
// - HBM outside the memory image is zero: the zero borders that make padded convolutions plain
//   strided gathers are not part of the image.
// - Activation residency and views: tools/compiler/memory_plan.h. A resident tensor has no HBM
//   copy: its LayerInfo has no output view and no expected values; every other output that
//   reaches HBM as whole pixels is checked (a concat slice is checked through its concat).
// - Resident layout: one UB row per padded pixel per channel chunk of min(R, C) channels,
//   chunk-major: row = base + ((cc * samples + b) * Hp + y) * Wp + x over the zero-padded
//   Hp x Wp image, so every chunk of every image is a plain grid of consecutive rows. The
//   producer writes it with one ACTIVATE (or POOL) per output row when the consumer's border
//   breaks the rows apart, else one per tile; the consumer zeroes the border rows with DMA
//   loads from a zero region of HBM at its first reader's start.
// - Convolution paths. "Taps": K tiles are (ky, kx, channel chunk) with K_t = the chunk's
//   channels; per weight tile, one MATMUL per output row segment reads the row's input pixels
//   (oy * s + ky, ox * s + kx) with ub_stride s. Used when the input is resident, and for an
//   input in HBM when C >= R / 2 or packed taps need no more tiles than im2col, with each M
//   tile's band of padded input rows loaded into UB pixel rows (at stride s > 1, unless the
//   extra transfers' memory waits outweigh it, as s x s compact residue images per chunk, tap
//   (ky, kx) reading residue (ky mod s, kx mod s) with ub_stride 1). From HBM, when several taps'
//   channels fit min(R, C) rows, a tile packs consecutive taps (in (ky, kx) order) that are
//   evenly spaced in HBM: a run along a kernel row, or a pair crossing to the next one. Tiles
//   of one shape share a band image whose UB row per anchor pixel holds those taps' channels,
//   gathered by the DMA (K_t = taps * C). With more channels than min(R, C), the full chunks
//   take a tile per tap (and, strided, their residue images by the same rule) and the
//   remainder chunk's taps pack the same way (48 channels on 32 rows: 25 + 13 tiles). With very few channels (a first RGB layer), a tile
//   may pack whole kernel rows instead (one kernel_w * C segment each) when that is strictly
//   cheaper than im2col (max(weight tiles, 1 + UB rows the gather writes) per output pixel, the
//   1 being the output row; the DMA fetches each burst once per transfer, so overlapping
//   windows cost rows, not segments): all tiles share one image anchored at
//   (oy * s + ky0, ox * s), loaded only at the anchors they read and stored densely in anchor
//   order (space-to-depth: with every s-th anchor row, consecutive output pixels read
//   consecutive UB rows). The 7x7 stride-2 RGB stem takes it on 128 rows. A
//   strided 1 x 1 conv's band holds only the pixels it reads (every s-th of every s-th row), so
//   its MATMULs stream consecutive rows. Otherwise "rows": im2col patches gathered from HBM
//   (kernel_w * C per segment), packed R per UB row, in M tiles of at most an eighth of the
//   output pixels with ideal memory on one core (Lowerer::rows_m_cap), so that only a short
//   first gather comes before the streams. A dilated conv takes the taps path, one
//   tap per tile, tap (ky, kx) reading (oy * s + ky * dh, ox * s + kx * dw). A grouped conv
//   stores block-diagonal weight tiles of whole groups (GroupMap, gemm_tiling.h): one block
//   takes the paths above; several take the taps path with K tiles per N tile (its block's taps
//   and channel chunks), and `load.weights blocks` carries the groups per tile for the used-PE
//   count.
// - DMA order (one transfer runs at a time): the next M tile's input is queued in shares, one
//   behind each weight-tile load of the current M tile; output tile t is stored behind the
//   first weight load of tile t + 2, when the vector unit has long written it, so a weight load
//   never waits behind a store that waits for the vector unit. With two or more DMA engines a
//   GEMM node's stores run on engine 1 (kStoreEngine), queued in the same places, so they
//   overlap the loads; with three or more the weight FIFO fills run on engines 2 and up
//   (kFirstWeightEngine); everything else stays on engine 0. Engine 1's last store of a node
//   hands stores_done to engine 0's next transfer and staging_free.1 to the next node's first
//   vector instruction, so the one-engine orderings below hold across the split.
// - Cross-layer order: the last vector instruction of a node with a resident output signals
//   layer_done, which the next DMA waits on (its signal bit is set only once that DMA is
//   emitted, so counts balance). Only then may DMAs overwrite the staging rows or a resident
//   tensor's border rows. A consumer's first MATMUL needs its first weight tile, which a later DMA
//   loads (the DMA engine runs one transfer at a time, in order), so it sees both the whole
//   resident tensor and its zeroed border without a semaphore of its own. A pooling or add
//   reader runs on the vector unit, in order behind the producer. The other way round, a
//   pooling or add node's first vector instruction waits (staging_free) for the last DMA
//   before it: its first writes to staging rows may come before any DMA of its own, while an
//   earlier node's stores or copies still use those rows.
// - Weight stream: a GEMM node's first weight tiles are loaded while the node before it runs,
//   except when the node is a matmul of two tensors whose b that node computes: its weight
//   loads then follow that node's last store in DMA order.
// - Timing-only programs have the same instructions as functional ones except the requantiser
//   fields (multipliers, shift), which functional programs take from the reference
//   interpreter's calibration and timing-only programs derive from the shapes.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sim/config/config.h"
#include "sim/isa/program.h"
#include "tools/compiler/graph.h"

namespace tpu {

struct CompileOptions {
  // No data: no memory image, no expected outputs (for sweeps over very large layers).
  bool timing_only = false;
  // Replaces Graph::seed for the generated inputs and weights.
  std::optional<std::uint64_t> seed;
  // Upper bound on the rows of one M tile; 0 = as many as fit the UB and accumulators.
  std::uint32_t max_m_tile = 0;
  // Keep a layer's output in the unified buffer as the next layer's input when it fits (see
  // above); false sends every activation through HBM.
  bool resident_activations = true;
  // Told what the compiler is doing as it goes ("generating data", "computing the reference",
  // "emitting node 3 of 53"), for a progress line on long compiles.
  std::function<void(const std::string&)> progress;
};

// Names of the semaphores the compiler uses (Program::semaphore_names holds them by index).
enum CompilerSemaphore : std::uint32_t {
  kSemXReady = 0,    // dma -> matmul: an input tile is in the UB
  kSemXFree = 1,     // matmul -> dma: an input slot may be overwritten
  kSemWReady = 2,    // dma -> weight_load: a weight tile is staged in the UB
  kSemWFree = 3,     // weight_load -> dma: a weight staging slot may be overwritten
  kSemAccReady = 4,  // matmul -> vector: an output tile's accumulators are complete
  kSemAccFree = 5,   // vector -> matmul: an accumulator slot may be overwritten
  kSemOutReady = 6,  // vector -> dma: an output tile is staged in the UB
  kSemOutFree = 7,   // dma -> vector: an output staging slot may be overwritten
  kSemPoolReady = 8, // dma -> vector: a pooling (or add) input band (or a GEMM's bias) is in the UB
  kSemPoolFree = 9,  // vector -> dma: a pooling (or add) input slot may be overwritten
  kSemLayerDone = 10, // vector -> dma: a layer with a resident output is done with the UB
  kSemAccReadyOdd = 11,  // the same for the other width (or parity) of output tiles
  kSemStagingFree = 12,  // dma -> vector: earlier nodes' transfers are done with the staging rows
  kSemInputReady = 13,   // vector -> weight_load: a resident input of a GEMM node is written
  kSemBorderReady = 14,  // dma -> weight_load: a resident input's zero border is written
  kSemFirstInput = 15,   // dma -> weight_load: a GEMM node's first input tile is in the UB
};
// With several MXUs (core.mxus) a GEMM node spreads its N tiles over them, N tile nt on MXU
// nt % U (U <= core.mxus, N tiles, kMaxCompilerMxus, ub.read_ports, chosen in tile_gemm; 1
// without a weight FIFO). MXU 0 uses
// the semaphores above; MXU u >= 1 its own block of these, named "<name>.<u>" (x_ready.1, ...),
// so every MXU is a copy of the one-MXU schedule with its own weight stream (its FIFO) and
// its own accumulator slots:
enum MxuSemaphore : std::uint32_t {
  kMxuXReady = 0,     // dma -> matmul: an input tile is in the UB
  kMxuXFree,          // matmul -> dma: this MXU is done with an input slot
  kMxuAccReady,       // matmul -> vector: an output tile of this MXU is complete
  kMxuAccReadyOdd,    // matmul -> vector: one of the other width (or parity)
  kMxuAccFree,        // vector -> matmul: this MXU's accumulator slot may be overwritten
  kMxuGo,             // weight_load 0 -> weight_load u: MXU 0's first tile of the node started
                      // (its waits on the node's resident input and border, first input)
  kMxuSemaphores,
};
// Semaphore blocks after kSemFirstInput: 16 + 6 x 7 = 58 of the 64.
constexpr std::uint32_t kMaxCompilerMxus = 8;
// With two or more DMA engines (core.dma_engines) a GEMM node's output stores run on engine 1,
// beside the loads on engine 0, with their own semaphores (so a pooling node's stores on
// engine 0 never take a GEMM tile's signal), after the MXU blocks:
constexpr std::uint32_t kSemStoreReady = 58;  // vector -> dma.1: an output tile is staged
constexpr std::uint32_t kSemStoreFree = 59;   // dma.1 -> vector: an output slot may be reused
// dma.1 -> dma: a node's stores are done; engine 0's next transfer waits, so every later
// transfer sees (and may reuse) what they touched.
constexpr std::uint32_t kSemStoresDone = 60;
constexpr std::uint32_t kSemStagingFreeStores = 61;  // dma.1 -> vector: staging_free, engine 1
constexpr std::uint32_t kStoreEngine = 1;
// With three or more DMA engines the weight FIFO fills run on engines 2 .. dma_engines - 1, MXU
// u's on engine 2 + u % (dma_engines - 2), so the MXUs' weight streams (each a transfer at a
// time, its memory latency exposed) overlap one another and the loads on engine 0, as the
// hardware's separate weight paths do. Fills touch no UB row and read weights no instruction
// writes, so they need no ordering but their FIFO's (one engine each) and, for a GEMM node
// with a resident input, MXU 0's first LOAD_WEIGHTS waiting for engine 0's last transfer
// (first_input), which a later engine-0 weight fill gave before. A tensor matmul reads its
// weights from a tensor that stores write: in a model with one, the fills stay on engine 0.
constexpr std::uint32_t kFirstWeightEngine = 2;
// Model parallelism (CoreShare, below): the two semaphores left. A node's last HBM write (per
// DMA engine) signals node_stored, which the sequencer's first signal.core to the other cores
// waits for; their signal.cores count peers_done, which the sequencer waits for cores - 1 times
// before the next node issues.
constexpr std::uint32_t kSemNodeStored = 62;  // dma -> sequencer (signal.core)
constexpr std::uint32_t kSemPeersDone = 63;   // other cores' signal.core -> sequencer (nop)

// Core `core`'s share of a graph split by N over `cores` cores (tools/compiler/parallel.h,
// model_n): every GEMM node runs only its N tiles part(NT) with only those columns' weights (one
// copy in HBM, each core's slice in its own segment), every input read whole. Element-wise nodes
// run only their pixels part(samples x H x W) (in whole queries of a causal mask over
// interleaved heads), pooling its output rows part(samples x OH), and copies (concat, slice)
// their rows part(samples x H). Every activation goes through HBM, and after every node but the
// last the cores meet at a barrier (kSemNodeStored, kSemPeersDone). The memory plan, and so every
// HBM address, is the same for every share. cores = 1 is the one-core program.
struct CoreShare {
  std::uint32_t core = 0, cores = 1;
  // Model parallelism by K instead (tools/compiler/parallel.h, model_k): every dense or
  // matmul node runs only the K tiles [KT c / cores, KT (c + 1) / cores) of every output tile
  // and stores their raw partial sums (ACTIVATE raw) to HBM; after a barrier core c loads every
  // core's partials of its N tiles (as model_n's), sums them into the accumulators (ACC_LOAD)
  // and requantises them once, with the bias. Other GEMM nodes run on core 0; element-wise,
  // pooling and copy nodes split their rows as under model_n.
  bool k_split = false;
  // This core's contiguous share [begin, end) of `units` (N tiles, pixels, rows): core c takes
  // [ceil(units c / cores), ceil(units (c + 1) / cores)), so core 0 always has one.
  std::pair<std::uint64_t, std::uint64_t> part(std::uint64_t units) const {
    return {(units * core + cores - 1) / cores, (units * (core + 1) + cores - 1) / cores};
  }
};

// Core `core`'s stage of a layer pipeline (tools/compiler/parallel.h, pipeline): `stage_of`
// gives every node's stage (the core running it), contiguous runs in node order; this core
// emits only its own nodes. A run of its nodes waits first (s > 0) for the stage before's
// signal (peers_done) and ends (unless last) with its stores signalling node_stored, then a
// signal.core to the next stage's core. No activation is resident (a stage reads what another
// core wrote). Empty stage_of: not pipelined.
struct PipelineStage {
  std::uint32_t core = 0;
  std::vector<std::uint32_t> stage_of;
};

// Throws CompileError when a layer cannot fit (saying why and what would fit), when HBM is too
// small, or when a field would overflow its instruction width. On a chip of several cores the
// graph is spread over them as compiler.parallelism says (tools/compiler/parallel.h).
Program compile(const Graph& graph, const Config& config, const CompileOptions& options = {});
// The program of `graph` for one core (stream 0), whatever chip.cores says, or that core's
// share of a model-parallel program, or its stage of a pipeline.
Program compile_core(const Graph& graph, const Config& config, const CompileOptions& options,
                     CoreShare share = {}, const PipelineStage& stage = {});

}  // namespace tpu
