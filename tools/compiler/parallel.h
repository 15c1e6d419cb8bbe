#pragma once
// Spreading a graph over the cores of a chip (chip.cores > 1), chosen by
// compiler.parallelism (tools/compiler/README.md, "Several cores"):
//   single  every node on core 0, the other cores idle
//   data    data parallelism: the samples (the batch, or M of a standalone matmul) of every
//           graph input split into chip.cores near-equal shares, core c compiling the whole
//           graph for its share; the samples never meet, so the cores need no
//           synchronisation. Each core's program gets its own region of the one HBM (its
//           inputs, weights, activations and outputs) and its layers are named "<name>@c<c>".
//   model_n model parallelism, N split: every GEMM node's N tiles split into chip.cores
//           contiguous shares (core c: [ceil(NT c / P), ceil(NT (c + 1) / P)), so core 0 always
//           has one), each core reading the node's whole input and only its columns' weights
//           (one copy in HBM); the other nodes split their work the same way (CoreShare::part):
//           element-wise nodes their pixels (samples x H x W; softmax and the norms reduce
//           along channels, so whole pixels stay exact), pooling its output rows (samples x
//           OH), copies (concat, slice) their rows (samples x H), each core reading and
//           writing its share in HBM.
//           Every activation goes through HBM (no residency: the next node's readers are on
//           other cores), and after every node but the last the cores meet at a barrier: each
//           core's last store of the node (per DMA engine) signals node_stored, its sequencer's
//           signal.core to every other core waits for it, then cores - 1 nops wait for the
//           others' signals (peers_done). One memory plan serves every core; the layers are
//           named "<name>@c<c>", their output checks on core 0's. CoreShare, lowering.h.
//   auto    the choice of lowest estimate (a tie keeps single, then data), data only when every
//           graph input has at least chip.cores samples, model_n only when every node is a
//           GEMM or a view or the samples cannot split (its estimate does not see what the
//           other nodes lose with their activations in HBM). One choice per graph.
// Estimates (cycles, per GEMM node, summed): a two-stage pipeline over the node's weight tiles,
// fetch then multiply, max(compute, memory) + min(compute, memory) / tiles (the longer stage
// every tile, the shorter once). single and data: compute = ceil(K / R) * ceil(N / C) *
// max(m, R) / core.mxus for the m samples' rows of the busiest core (a tile streams its m rows,
// or at least R cycles to load its weights); memory = the larger of the weight bytes every core
// reads from the one HBM / its peak bytes per cycle (each core reads every weight) and one
// core's weight engines fetching every tile, each tile one transfer of (HBM latency + 2 x
// interconnect latency + R FIFO rows) on one of max(1, core.dma_engines - 2) engines (weight
// fetches are latency-bound long before the HBM's bandwidth runs out: TPU v1's MLP0 on tpu_v4
// is 1.4x faster split by N, which a bandwidth-only estimate missed). Activations are left out:
// they stay on chip or are the same bytes either way. model_n: compute and the tile fetches
// over the busiest core's ceil(ceil(N / C) / cores) N tiles of all M rows, the weight bytes read
// once, plus what the split gives up: the node's input and output through HBM, one UB row a
// cycle each (M (ceil(K / R) + its N tiles) rows, not hidden), and a barrier per node boundary
// of 2 x interconnect latency + the HBM latency + R + C (the last store's round trip, the
// signal, the next node's pipeline fill). Over the bundled models on tpu_v2..v4 (81 model and
// config pairs) auto picks the fastest of single, data and model_n in 71; the misses are at
// most 1.40x (SCALE-Sim's conv lists on tpu_v2, where model_n hides the input and output rows
// the estimate counts in full).
#include <optional>

#include "sim/config/config.h"
#include "sim/isa/program.h"
#include "tools/compiler/graph.h"
#include "tools/compiler/lowering.h"

namespace tpu {

// The program of `graph` spread over the chip's cores, or nothing when compiler.parallelism
// (or its estimate, for auto) keeps it on one core. Throws CompileError when `data` is forced
// but a graph input has fewer samples than cores.
std::optional<Program> compile_parallel(const Graph& graph, const Config& config,
                                        const CompileOptions& options);

}  // namespace tpu
