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
//   model_k model parallelism, K split: every dense or matmul node's K tiles split into
//           chip.cores contiguous shares, each core multiplying its K range of every output
//           tile and storing the raw 32-bit partial sums (activate raw) to HBM; after a barrier
//           core c sums every core's partials of its model_n share of the N tiles (acc.load,
//           in core order) and requantises them once (bias, activation), then the cores meet
//           again. Other nodes run on core 0, as under model_n. CoreShare::k_split, lowering.h.
//   pipeline layer pipelining: the nodes cut into min(chip.cores, nodes) contiguous stages of
//           least largest estimated cost (node_cycles below, dynamic programming over the cuts),
//           stage s on core s, and the samples cut into compiler.micro_batches micro-batches
//           (0: the count of least estimate, 1 .. 4 x cores): the graph is copied once per
//           micro-batch ("<name>#b<b>", every copy's GEMMs reading copy 0's weights, one copy
//           in HBM), every core compiles the copies with one memory plan and emits only its own
//           stage's nodes (PipelineStage, lowering.h), micro-batch by micro-batch, so core s
//           works on micro-batch b while core s + 1 works on b - 1. Every activation goes
//           through HBM (a residual crossing a cut included: every tensor live across it is
//           there); a stage's run hands over with its last stores signalling node_stored and
//           a signal.core to the next core (peers_done), which the next stage's first
//           instruction but its weight fills waits for. Weights are re-streamed from HBM per
//           micro-batch (the weight FIFO holds a tile or two, and the compiler keeps no weights
//           in the UB), so on one chip pipelining saves no weight traffic: each core reads only
//           its stage's weights, but once per micro-batch.
//   auto    the choice of lowest estimate (a tie keeps single, then data, then model_n), data
//           only when every graph input has at least chip.cores samples, model_n and model_k
//           only when every node is a GEMM or a view or the samples cannot split (their
//           estimates do not see what the other nodes lose with their activations in HBM),
//           pipeline only with at least chip.cores samples and two or more micro-batches.
//           One choice per graph.
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
// the estimate counts in full). model_k: a dense or matmul node as single's with the busiest
// core's ceil(ceil(K / R) / cores) K tiles of all N tiles, the input in (M ceil(K / R) rows),
// plus its reduction, serialised, one UB row a cycle: every raw partial row out (M x N tiles x
// W, W = ceil(4 C / UB row bytes)), the core's ceil(N tiles / cores) tiles of every core's
// partials in (x cores x W) and its outputs out, a memory round trip per partial load and a
// barrier; other GEMM nodes as single's plus their input and output rows. It wins where the
// weight fetches dominate and M x N is small: a 1 x 8192 x 128 decode GEMV (one N tile: model_n
// cannot split it), CIFAR's CNN at batch 1 on tpu_v2.
// pipeline (taken by auto only with at least chip.cores samples and two or more micro-batches):
// per micro-batch, each node's cost alone on a core with its activations in HBM (a GEMM as
// single's plus model_n's input and output rows, any other node one UB row a cycle per input and
// output row, views free), each stage its nodes' sum plus a hand-over (as model_n's barrier); the
// sum of the stages once (fill and drain) plus the slowest for every further micro-batch. Over the
// bundled models and configs auto never takes it: data or model_n is cheaper wherever the samples
// split (README, "Scaling over MXUs and cores").
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
