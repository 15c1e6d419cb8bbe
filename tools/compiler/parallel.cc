#include "tools/compiler/parallel.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "sim/isa/isa_table.h"

namespace tpu {
namespace {

std::uint64_t ceil_div(std::uint64_t a, std::uint64_t b) { return (a + b - 1) / b; }

// Cycles one core's weight engines spend on `tiles` weight tiles (parallel.h): each tile is one
// transfer of an engine, its memory latency exposed, then R FIFO rows at one a cycle.
double weight_fetch_cycles(const Config& config, std::uint64_t tiles) {
  const double latency =
      (config.hbm.preset == "ideal" ? 0 : config.hbm.latency_ns / config.period_ns()) +
      (config.chip.cores > 1 ? 2.0 * config.chip.interconnect_latency_cycles : 0);
  const std::uint32_t engines = config.core.dma_engines > kFirstWeightEngine
                                    ? config.core.dma_engines - kFirstWeightEngine
                                    : 1;
  return double(tiles) * (latency + double(config.array.rows)) / engines;
}

// `tiles` weight tiles whose fetches (memory, in all) overlap the multiplications of the tile
// before (compute, in all): a two-stage pipeline, the longer stage every tile plus the shorter
// one once (the first fetch or the last multiplication).
double pipelined(double compute, double memory, std::uint64_t tiles) {
  return std::max(compute, memory) + std::min(compute, memory) / double(std::max<std::uint64_t>(tiles, 1));
}

// Cycles to move `weight_bytes` through the one HBM, every core's reads together.
double hbm_cycles(const Config& config, double weight_bytes) {
  const double per_cycle = config.hbm_peak_bytes_per_cycle();
  return std::isinf(per_cycle) ? 0 : weight_bytes / per_cycle;
}

// The estimate of tools/compiler/parallel.h for GEMM node `n` with its samples split over
// `cores_used` cores, each reading every weight.
double gemm_cycles(const Graph& graph, const Config& config, const Node& n,
                   std::uint32_t cores_used) {
  const std::uint64_t R = config.array.rows, C = config.array.cols;
  const std::uint64_t m = ceil_div(n.gemm_m(), cores_used);
  const std::uint64_t tiles = ceil_div(n.gemm_k(), R) * ceil_div(n.gemm_n(), C);
  const double compute = double(tiles * std::max(m, R)) / config.core.mxus;
  const double weight_bytes = double(n.gemm_k() * n.gemm_n() * element_bytes(graph.dtype));
  const double memory = std::max(hbm_cycles(config, weight_bytes * cores_used),
                                 weight_fetch_cycles(config, tiles));
  return pipelined(compute, memory, tiles);
}

// The estimate of tools/compiler/parallel.h with the samples split over `cores_used` cores.
double estimate_cycles(const Graph& graph, const Config& config, std::uint32_t cores_used) {
  double cycles = 0;
  for (const Node& n : graph.nodes) {
    if (is_gemm(n.kind)) cycles += gemm_cycles(graph, config, n, cores_used);
  }
  return cycles;
}

// The estimate of tools/compiler/parallel.h for model_n over `cores` cores.
double estimate_model_n_cycles(const Graph& graph, const Config& config, std::uint32_t cores) {
  const std::uint64_t R = config.array.rows, C = config.array.cols;
  const double latency = config.hbm.preset == "ideal" ? 0 : config.hbm.latency_ns / config.period_ns();
  const double barrier = 2.0 * config.chip.interconnect_latency_cycles + latency + double(R + C);
  double cycles = double(graph.nodes.size() - 1) * barrier;
  for (const Node& n : graph.nodes) {
    if (!is_gemm(n.kind)) continue;
    const std::uint64_t m = n.gemm_m(), kt = ceil_div(n.gemm_k(), R);
    const std::uint64_t nt = ceil_div(ceil_div(n.gemm_n(), C), cores);
    const double compute = double(kt * nt * std::max(m, R)) / config.core.mxus;
    const double weight_bytes = double(n.gemm_k() * n.gemm_n() * element_bytes(graph.dtype));
    const double memory = std::max(hbm_cycles(config, weight_bytes),
                                   weight_fetch_cycles(config, kt * nt));
    cycles += pipelined(compute, memory, kt * nt) + double(m * (kt + nt));
  }
  return cycles;
}

// The estimate of tools/compiler/parallel.h for model_k over `cores` cores.
double estimate_model_k_cycles(const Graph& graph, const Config& config, std::uint32_t cores) {
  const std::uint64_t R = config.array.rows, C = config.array.cols;
  const double latency = config.hbm.preset == "ideal" ? 0 : config.hbm.latency_ns / config.period_ns();
  const double barrier = 2.0 * config.chip.interconnect_latency_cycles + latency + double(R + C);
  const std::uint64_t row_bytes = std::uint64_t(config.ub_row_elems()) * element_bytes(graph.dtype);
  const double raw_w = double((4 * C + row_bytes - 1) / row_bytes);
  double cycles = double(graph.nodes.size() - 1) * barrier;
  for (const Node& n : graph.nodes) {
    if (!is_gemm(n.kind)) continue;
    const std::uint64_t m = n.gemm_m(), kt = ceil_div(n.gemm_k(), R), nt = ceil_div(n.gemm_n(), C);
    if (n.kind != OpKind::kDense && n.kind != OpKind::kMatmul) {
      // On core 0 alone, its input and output through HBM.
      const double compute = double(kt * nt * std::max(m, R)) / config.core.mxus;
      const double weight_bytes = double(n.gemm_k() * n.gemm_n() * element_bytes(graph.dtype));
      const double memory =
          std::max(hbm_cycles(config, weight_bytes), weight_fetch_cycles(config, kt * nt));
      cycles += pipelined(compute, memory, kt * nt) + double(m * (kt + nt));
      continue;
    }
    const std::uint64_t kc = ceil_div(kt, cores), owned = ceil_div(nt, cores);
    const double compute = double(kc * nt * std::max(m, R)) / config.core.mxus;
    const double weight_bytes = double(n.gemm_k() * n.gemm_n() * element_bytes(graph.dtype));
    const double memory =
        std::max(hbm_cycles(config, weight_bytes), weight_fetch_cycles(config, kc * nt));
    // The input in, every raw partial row out, then the owned tiles' partials of every core in
    // and their outputs out (one UB row a cycle each, serialised), and the barrier before.
    const double reduction = double(m) * (double(nt) * raw_w +
                                          double(owned) * (double(cores) * raw_w + 1)) +
                             double(cores) * double(owned) * (latency + 2.0 *
                                                              config.chip.interconnect_latency_cycles) +
                             barrier;
    cycles += pipelined(compute, memory, kc * nt) + double(m * kt) + reduction;
  }
  return cycles;
}

// `graph` with every input's samples cut to core `core`'s share of `cores`.
Graph share_of(const Graph& graph, std::uint32_t core, std::uint32_t cores) {
  Graph part = graph;
  for (TensorId id : part.inputs) {
    Tensor& t = part.tensors[id];
    t.samples = t.samples / cores + (core < t.samples % cores ? 1 : 0);
  }
  infer_shapes(part);
  return part;
}

// Makes room in `out` for every part's instructions (their records may grow by a byte or two
// where a merge rebases an address or a layer), so the copy never reallocates; a merge frees
// each part's instructions once they are copied, so it holds at most one part beside `out`.
void reserve_instructions(Program& out, const std::vector<Program>& parts) {
  std::size_t instructions = 0, bytes = 0;
  for (const Program& p : parts) {
    instructions += p.instructions.size();
    bytes += p.instructions.record_bytes();
  }
  out.instructions.reserve(instructions, bytes + bytes / 8);
}

// How merge() lays the per-core programs' memory images into the one HBM (parallel.h).
enum class MemoryImage {
  kRegions,  // data: each core's own plan in a region of its own (its addresses moved up), every
             // image and output check kept
  kShares,   // model_n, model_k: one plan; core 0's image and output checks (its share's plan is
             // every share's), each other core's weight slices
  kUnion,    // pipeline: one plan and data; the union of the images (the inputs each wrote, the
             // weights of its own nodes)
};

// A model-parallel share's slice of a node's weights, "<name>.weights": each core has its own.
bool is_weight_slice(const std::string& name) {
  const std::string weights = ".weights";
  return name.size() > weights.size() &&
         name.compare(name.size() - weights.size(), weights.size(), weights) == 0;
}

// The per-core programs as one program of one stream per core, their layers named
// "<name>@c<c>" and numbered on, their memory images laid out as `image` says.
Program merge(std::vector<Program> parts, MemoryImage image, const Config& config) {
  Program out;
  out.dtype = parts[0].dtype;
  out.array_rows = parts[0].array_rows;
  out.array_cols = parts[0].array_cols;
  out.semaphore_names = parts[0].semaphore_names;
  out.hbm_bytes = parts[0].hbm_bytes;
  reserve_instructions(out, parts);
  const std::uint64_t align = std::max<std::uint64_t>(4096, config.hbm.burst_bytes);
  std::uint64_t base = 0;          // where core c's plan starts: 0 but for kRegions
  std::set<std::uint64_t> placed;  // kUnion: the segments' addresses so far
  for (std::size_t c = 0; c < parts.size(); ++c) {
    Program& p = parts[c];
    const auto layer_base = std::uint16_t(out.layers.size());
    const std::string suffix = "@c" + std::to_string(c);
    out.core_begin.push_back(out.instructions.size());
    for (Instruction inst : p.instructions) {
      if (inst.op == Opcode::kDmaLoad || inst.op == Opcode::kDmaStore) inst.dma.hbm_addr += base;
      if (inst.op == Opcode::kLayer) inst.layer = std::uint16_t(inst.layer + layer_base);
      out.instructions.push_back(inst);
    }
    p.instructions = InstructionList();
    for (LayerInfo& l : p.layers) {
      l.name += suffix;
      if (l.output.elements() > 0) l.output.base += base;
      if (image == MemoryImage::kShares && c > 0) {
        l.output = TensorView();
        l.expected_int8.clear();
        l.expected_fp32.clear();
      }
      out.layers.push_back(std::move(l));
    }
    for (HbmSegment& seg : p.hbm_image) {
      if (image == MemoryImage::kShares) {
        const bool weight_slice = is_weight_slice(seg.name);
        if (c > 0 && !weight_slice) continue;
        if (weight_slice) seg.name += suffix;
      }
      if (image == MemoryImage::kUnion && !placed.insert(seg.address).second) continue;
      seg.address += base;
      out.hbm_image.push_back(std::move(seg));
    }
    if (image == MemoryImage::kRegions) base += ceil_div(p.hbm_bytes, align) * align;
  }
  if (image == MemoryImage::kRegions) out.hbm_bytes = base;
  return out;
}

// Pipeline (parallel.h): `micro` copies of the graph, copy b with every input cut to micro-batch
// b's share (share_of), its tensors and nodes named "<name>#b<b>", in copy-major node order.
// Every copy's GEMMs use copy 0's weights (one copy in HBM, the same values).
Graph micro_batched(const Graph& graph, std::uint32_t micro) {
  Graph out = graph;
  out.tensors.clear();
  out.nodes.clear();
  out.inputs.clear();
  out.outputs.clear();
  for (std::uint32_t b = 0; b < micro; ++b) {
    const Graph part = share_of(graph, b, micro);
    const std::string suffix = "#b" + std::to_string(b);
    const auto t0 = TensorId(out.tensors.size());
    const auto n0 = std::int64_t(out.nodes.size());
    for (Tensor t : part.tensors) {
      t.name += suffix;
      if (t.producer >= 0) t.producer += n0;
      t.consumers.clear();
      out.tensors.push_back(std::move(t));
    }
    for (std::size_t i = 0; i < part.nodes.size(); ++i) {
      Node n = part.nodes[i];
      n.name += suffix;
      for (TensorId& id : n.inputs) id += t0;
      n.output += t0;
      if (n.shares_weights < 0 && b > 0 && n.kind != OpKind::kTensorMatmul &&
          is_gemm(n.kind)) {
        n.shares_weights = std::int64_t(i);  // copy 0's node: the index is the same
      }
      out.nodes.push_back(std::move(n));
    }
    for (TensorId id : part.inputs) out.inputs.push_back(id + t0);
    for (TensorId id : part.outputs) out.outputs.push_back(id + t0);
  }
  infer_shapes(out);
  return out;
}

// Estimated cycles of each node of `graph` (one micro-batch) alone on a core, activations in
// HBM (parallel.h, pipeline).
std::vector<double> node_cycles(const Graph& graph, const Config& config) {
  const std::uint64_t R = config.array.rows, C = config.array.cols;
  const std::uint64_t cw = std::min(R, C);
  std::vector<double> cycles;
  for (const Node& n : graph.nodes) {
    if (is_view(n.kind)) {
      cycles.push_back(0);
    } else if (is_gemm(n.kind)) {
      const std::uint64_t m = n.gemm_m();
      const double rows = double(m * (ceil_div(n.gemm_k(), R) + ceil_div(n.gemm_n(), C)));
      cycles.push_back(gemm_cycles(graph, config, n, 1) + rows);
    } else {
      const double rows =
          double(n.samples) * n.out.h * n.out.w * double(ceil_div(n.out.c, cw));
      cycles.push_back(rows * double(n.inputs.size() + 1));
    }
  }
  return cycles;
}

// Node i's stage: the nodes cut into min(cores, nodes) contiguous stages of least largest
// estimated cost (dynamic programming over the cut points).
std::vector<std::uint32_t> cut_stages(const std::vector<double>& cost, std::uint32_t cores) {
  const std::size_t n = cost.size();
  const std::size_t stages = std::min<std::size_t>(cores, n);
  std::vector<double> prefix(n + 1, 0);
  for (std::size_t i = 0; i < n; ++i) prefix[i + 1] = prefix[i] + cost[i];
  // best[s][i]: the least largest stage of nodes [0, i) in s + 1 stages; from[s][i] its cut.
  const double kInf = std::numeric_limits<double>::infinity();
  std::vector<std::vector<double>> best(stages, std::vector<double>(n + 1, kInf));
  std::vector<std::vector<std::size_t>> from(stages, std::vector<std::size_t>(n + 1, 0));
  for (std::size_t i = 1; i <= n; ++i) best[0][i] = prefix[i];
  for (std::size_t s = 1; s < stages; ++s) {
    for (std::size_t i = s + 1; i <= n; ++i) {
      for (std::size_t j = s; j < i; ++j) {
        const double worst = std::max(best[s - 1][j], prefix[i] - prefix[j]);
        if (worst < best[s][i]) {
          best[s][i] = worst;
          from[s][i] = j;
        }
      }
    }
  }
  std::vector<std::uint32_t> stage_of(n, 0);
  std::size_t end = n;
  for (std::size_t s = stages; s-- > 0;) {
    const std::size_t begin = s == 0 ? 0 : from[s][end];
    for (std::size_t i = begin; i < end; ++i) stage_of[i] = std::uint32_t(s);
    end = begin;
  }
  return stage_of;
}

// A pipeline's plan: micro-batches, every node's stage, and its estimated cycles.
struct PipelinePlan {
  std::uint32_t micro = 1;
  std::vector<std::uint32_t> stage_of;  // per node of the original graph
  double cycles = 0;
};

// The pipeline of least estimate over 1 .. min(fewest, 4 x cores) micro-batches: per
// micro-batch, the sum of the stages once (fill and drain) plus the slowest stage for every
// further micro-batch, each stage paying a hand-over per micro-batch (its last store's round
// trip and the signal, as a model_n barrier).
PipelinePlan plan_pipeline(const Graph& graph, const Config& config, std::uint32_t fewest) {
  const std::uint32_t cores = config.chip.cores;
  const double latency =
      config.hbm.preset == "ideal" ? 0 : config.hbm.latency_ns / config.period_ns();
  const double handover = 2.0 * config.chip.interconnect_latency_cycles + latency +
                          double(config.array.rows + config.array.cols);
  PipelinePlan best;
  best.cycles = std::numeric_limits<double>::infinity();
  const std::uint32_t given = config.compiler.micro_batches;
  const std::uint32_t least = given > 0 ? given : 1;
  const std::uint32_t most = given > 0 ? given : std::max<std::uint32_t>(1, std::min(fewest, 4 * cores));
  // The LAYER instruction numbers every copy's nodes.
  const std::uint64_t max_nodes = field_max(Opcode::kLayer, "id") + 1;
  for (std::uint32_t micro = least; micro <= most; ++micro) {
    if (std::uint64_t(micro) * graph.nodes.size() > max_nodes) break;
    const std::vector<double> cost = node_cycles(share_of(graph, 0, micro), config);
    const std::vector<std::uint32_t> stage_of = cut_stages(cost, cores);
    std::vector<double> stage(cores, 0);
    for (std::size_t i = 0; i < cost.size(); ++i) stage[stage_of[i]] += cost[i];
    double sum = 0, slowest = 0;
    for (std::uint32_t s = 0; s <= stage_of.back(); ++s) {
      const double t = stage[s] + (s < stage_of.back() ? handover : 0);
      sum += t;
      slowest = std::max(slowest, t);
    }
    const double cycles = sum + double(micro - 1) * slowest;
    if (cycles < best.cycles) best = {micro, stage_of, cycles};
  }
  return best;
}

}  // namespace

std::optional<Program> compile_parallel(const Graph& graph, const Config& config,
                                        const CompileOptions& options) {
  const std::uint32_t cores = config.chip.cores;
  std::string choice = config.compiler.parallelism;
  if (cores == 1 || choice == "single") return std::nullopt;
  std::uint32_t fewest = ~0u;
  for (TensorId id : graph.inputs) fewest = std::min(fewest, graph.tensors[id].samples);
  if (choice == "data" && fewest < cores) {
    throw CompileError(graph.source + ": compiler.parallelism = data needs at least " +
                       std::to_string(cores) + " samples in every graph input (chip.cores), " +
                       "the fewest is " + std::to_string(fewest));
  }
  if (choice == "auto") {
    // The cheapest estimate; a tie keeps the earlier of single, data, model_n, model_k.
    double best = estimate_cycles(graph, config, 1);
    choice = "single";
    if (fewest >= cores && estimate_cycles(graph, config, cores) < best) {
      best = estimate_cycles(graph, config, cores);
      choice = "data";
    }
    // model_n's estimate leaves out what its other nodes cost once their inputs and outputs
    // leave the UB (TPU v1's LSTM0, 700 element-wise nodes at batch 64, ran 8x slower on
    // tpu_v2 than data): it is taken only for graphs of GEMMs and views, or when the samples
    // cannot split.
    bool gemms_only = true;
    for (const Node& n : graph.nodes) gemms_only &= is_gemm(n.kind) || is_view(n.kind);
    if ((gemms_only || fewest < cores) && estimate_model_n_cycles(graph, config, cores) < best) {
      best = estimate_model_n_cycles(graph, config, cores);
      choice = "model_n";
    }
    // model_k likewise (its other nodes run on core 0 as model_n's do).
    if ((gemms_only || fewest < cores) && estimate_model_k_cycles(graph, config, cores) < best) {
      best = estimate_model_k_cycles(graph, config, cores);
      choice = "model_k";
    }
    // A pipeline of one micro-batch runs its stages one after another: never better than one core.
    if (fewest >= cores && config.compiler.micro_batches <= fewest) {
      const PipelinePlan plan = plan_pipeline(graph, config, fewest);
      if (plan.micro > 1 && plan.cycles < best) choice = "pipeline";
    }
    if (choice == "single") return std::nullopt;
  }
  if (choice == "pipeline") {
    const std::uint32_t given = config.compiler.micro_batches;
    if (given > fewest) {
      throw CompileError(graph.source + ": compiler.micro_batches = " + std::to_string(given) +
                         " exceeds the fewest samples of a graph input, " +
                         std::to_string(fewest));
    }
    const PipelinePlan plan = plan_pipeline(graph, config, fewest);
    if (plan.stage_of.empty()) {
      throw CompileError(graph.source + ": compiler.micro_batches = " + std::to_string(given) +
                         " copies of " + std::to_string(graph.nodes.size()) +
                         " nodes exceed the LAYER instruction's limit of " +
                         std::to_string(field_max(Opcode::kLayer, "id") + 1));
    }
    const Graph micro = micro_batched(graph, plan.micro);
    PipelineStage stage;
    for (std::uint32_t b = 0; b < plan.micro; ++b) {
      stage.stage_of.insert(stage.stage_of.end(), plan.stage_of.begin(), plan.stage_of.end());
    }
    std::vector<Program> parts;
    for (std::uint32_t c = 0; c < cores; ++c) {
      if (options.progress) options.progress("compiling core " + std::to_string(c));
      stage.core = c;
      parts.push_back(compile_core(micro, config, options, CoreShare{}, stage));
    }
    return merge(std::move(parts), MemoryImage::kUnion, config);
  }
  std::vector<Program> parts;
  for (std::uint32_t c = 0; c < cores; ++c) {
    if (options.progress) options.progress("compiling core " + std::to_string(c));
    if (choice == "data") {
      parts.push_back(compile_core(share_of(graph, c, cores), config, options));
    } else {
      parts.push_back(compile_core(graph, config, options, CoreShare{c, cores, choice == "model_k"}));
    }
  }
  if (choice == "data") return merge(std::move(parts), MemoryImage::kRegions, config);
  for (const Program& p : parts) {
    if (p.hbm_bytes != parts[0].hbm_bytes) {
      throw CompileError(graph.source + ": internal: the " + choice +
                         " shares planned HBM differently");
    }
  }
  return merge(std::move(parts), MemoryImage::kShares, config);
}

}  // namespace tpu
