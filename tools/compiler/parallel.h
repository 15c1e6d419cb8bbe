#pragma once
// Spreading a graph over the cores of a chip (chip.cores > 1), chosen by
// compiler.parallelism (tools/compiler/README.md, "Several cores"):
//   single  every node on core 0, the other cores idle
//   data    data parallelism: the samples (the batch, or M of a standalone matmul) of every
//           graph input split into chip.cores near-equal shares, core c compiling the whole
//           graph for its share; the samples never meet, so the cores need no
//           synchronisation. Each core's program gets its own region of the one HBM (its
//           inputs, weights, activations and outputs) and its layers are named "<name>@c<c>".
//   auto    data when every graph input has at least chip.cores samples and the estimate
//           below is lower than single's, else single.
// Estimate of a choice (cycles, per GEMM node, summed): max(compute, memory) with compute =
// ceil(K / R) * ceil(N / C) * max(m, R) / core.mxus for the m samples' rows of the busiest
// core (a tile streams its m rows, or at least R cycles to load its weights), and memory =
// the weight bytes every core reads from the one HBM / its peak bytes per cycle (each core
// reads every weight). Activations are left out: they are the same bytes either way.
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
