#include "tools/compiler/lowering.h"
#include "tools/compiler/parallel.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <numeric>
#include <string>
#include <utility>

#include "sim/cycles.h"
#include "sim/host_memory.h"
#include "sim/isa/isa_table.h"
#include "sim/isa/semantics.h"
#include "sim/isa/vector_cost.h"
#include "tools/compiler/data.h"
#include "tools/compiler/gemm_tiling.h"
#include "tools/compiler/memory_plan.h"
#include "tools/compiler/reference_graph.h"

namespace tpu {

namespace {

// The instruction fields the emitted program must fit, from the ISA table.
// DMA elems, segs, groups, ub_stride and pack share one width.
const std::uint64_t kMaxCount = field_max(Opcode::kDmaLoad, "elems");
const std::uint64_t kMaxMatmulStride = field_max(Opcode::kMatmul, "stride");
const std::uint64_t kMaxPoolGrid = field_max(Opcode::kPool, "in_h");  // and in_w, kernel_h/w
const std::uint64_t kMaxStride = field_max(Opcode::kDmaLoad, "group_stride");
const std::uint64_t kMaxUbRow = field_max(Opcode::kDmaLoad, "ub");
const std::uint64_t kMaxAccRow = field_max(Opcode::kMatmul, "acc");
const std::uint64_t kMaxHbmAddress = field_max(Opcode::kDmaLoad, "hbm");
const std::uint64_t kMaxLayer = field_max(Opcode::kLayer, "id");
const std::uint64_t kMaxPoolStride = field_max(Opcode::kPool, "stride");
// The largest m in [1, hi] with fits(m), for a fits that holds from 1 up to some m and fails
// above it (a tile size against the UB rows it takes).
template <typename Fits>
std::uint64_t largest_fitting(std::uint64_t hi, Fits fits) {
  std::uint64_t lo = 1;
  while (lo < hi) {
    const std::uint64_t mid = lo + (hi - lo + 1) / 2;
    if (fits(mid)) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return lo;
}

// Accumulator slots beyond one turnaround for grouped ACTIVATEs (GemmTiling::act_tiles) when
// the one vector unit is still slower than the array: it is `busy` cycles on the ACTIVATE of
// what the MXU streams in `per_tile` cycles, so over `tiles` of those it falls behind by
// (busy - per_tile) / busy of one per one. A slot is free only after its ACTIVATE, so without
// these the array waits for the vector unit. (Not for one ACTIVATE per tile: there the array
// ran ahead only to wait for its weights, GPT-2 prefill's stalls moving from the vector unit
// to the weights.)
std::uint64_t vector_backlog(std::uint64_t busy, std::uint64_t per_tile, std::uint64_t tiles) {
  if (busy <= per_tile || tiles < 2) return 0;
  return ceil_div((tiles - 1) * (busy - per_tile), busy);
}

// Most output tiles one ACTIVATE covers (GemmTiling::act_tiles).
constexpr std::uint64_t kMaxActTiles = 16;

// More rows than any unified buffer: a layout a node cannot take.
constexpr std::uint64_t kNever = std::numeric_limits<std::uint64_t>::max() / 4;

std::uint64_t bit(std::uint32_t sem) { return std::uint64_t(1) << sem; }
std::uint32_t fp32_bits(float f) {
  std::uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}
// MATMULs of different widths complete out of order (ISA.md), so each accumulator slot of an
// output tile t has its own completion semaphore: a narrow tile t + 1 finishing first cannot
// stand in for tile t.
std::uint32_t mxu_sem(std::uint64_t u, MxuSemaphore s) {
  static constexpr std::uint32_t kFirst[] = {kSemXReady, kSemXFree, kSemAccReady, kSemAccReadyOdd,
                                             kSemAccFree};
  if (u == 0) return kFirst[s];  // no kMxuGo: MXU 0 starts the node, it waits for nobody
  return kSemFirstInput + 1 + std::uint32_t(u - 1) * kMxuSemaphores + s;
}
// The completion semaphore of an output tile of MXU u: one of two (GemmTiling::ready_by_width).
std::uint32_t acc_ready(std::uint64_t u, bool odd) {
  return mxu_sem(u, odd ? kMxuAccReadyOdd : kMxuAccReady);
}

enum class GemmPath {
  kRows,  // input vectors of K elements packed R per UB row: matmul, dense, im2col conv
  kTaps,  // one (ky, kx, channel chunk) K tile at a time over UB pixel rows
};

// The mapping of one GEMM node onto the array and the unified buffer: the tiling pass's output.
struct GemmTiling {
  GemmPath path = GemmPath::kRows;
  Taps g{};
  TapPlan plan;                 // taps path: weight tiles and band images
  // K tiles in K's order: KT shared by every N tile, or (per_n, a grouped conv of several
  // blocks) KT per N tile, N tile by N tile.
  std::vector<KTile> ktiles;
  bool per_n = false;
  std::vector<NTile> ntiles;
  std::vector<std::uint64_t> w_off;  // elements before weight tile (nt, kt) in HBM
  std::uint64_t w_elems = 0;         // elements of all weight tiles
  std::uint64_t M = 0, K = 0, N = 0;  // K over all input channels (dense, for a grouped conv)
  std::uint64_t NT = 0;  // N tiles
  std::uint64_t mxus = 1;  // U: N tile nt runs on MXU nt % U
  std::uint64_t KR = 0, KT = 0;  // UB rows per input vector (rows path), K tiles per N tile
  std::uint64_t x_stride = 0;    // UB rows from one input vector to the next in a slot (rows path)
  // A matmul's input slot K chunk by K chunk (chunk k of row m in UB row x + k m_tile + m) rather
  // than row by row (x + m x_stride + k): see tile_gemm.
  bool k_major = false;
  bool k_transfers = false;  // k_major: one transfer per chunk (where transfers start free)
  std::uint64_t m_tile = 0, MT = 0;
  // Accumulator slots of m_tile rows per MXU, used in turn by its output tiles: as many as a
  // tile's turnaround needs, at least two, or three when each output tile is one K tile
  // (tile_gemm).
  std::uint64_t acc_slots = 2;
  // Whether the node's N tiles have at most two widths (full and the last): then each MXU's
  // output tiles of one width complete in order (ISA.md), and tile t's last MATMUL signals the
  // MXU's accumulator semaphore of its width; otherwise that of its parity, with two or three
  // slots.
  bool ready_by_width = false;
  // How many groups of N tiles (one per MXU) the ACTIVATEs trail their MATMULs by in program
  // order, within an M tile (see tile_gemm); with act_tiles > 1, how many N tiles the
  // ACTIVATE of a group trails its last one's MATMULs by.
  std::uint64_t act_lag = 0;
  // Output tiles per ACTIVATE (one MXU): an M tile's N tiles go in groups of act_tiles of one
  // width (the narrower last one alone), each group's accumulator slots and output slot rows
  // consecutive, so one ACTIVATE and one completion semaphore serve the group (tile_gemm).
  std::uint64_t act_tiles = 1;
  // UB rows of the input slots, used in turn by the M tiles: two (double buffering), or one
  // per M tile for packed anchors (see tile_gemm).
  std::vector<std::uint64_t> x_slot;
  std::uint64_t o_slot = 0;          // first UB row of the out_slots output slots of m_tile rows
  // Output slots, used in turn by the output tiles: 2 x mxus, or four when the stores are split
  // over two DMA engines (see tile_gemm).
  std::uint64_t out_slots = 2;
  bool split_stores = false;
  std::uint64_t bias_slot = 0;       // first UB row of the bias (bias_rows()), above them
  // Weight source. A tensor matmul runs `parts` = samples x heads GEMMs of M x K x N one after
  // another (M tiles counted over all of them, part by part): part p multiplies head p % heads
  // of sample p / heads of a (from HBM) by the tiles of b read in place from HBM (`b`, staged
  // N_t x K_t and loaded transposed with transpose_b). Otherwise the node's generated weights,
  // stored tile by tile (w_off).
  bool b_tensor = false, transpose = false;
  HbmTensor a, b;
  std::uint64_t parts = 1, heads = 1;
  // Model parallelism by K (CoreShare::k_split, k_share): this core's K tiles are the whole
  // node's from k_first on; its output tiles are raw partial sums (ACTIVATE raw), each
  // accumulator row raw_w UB rows of an output slot, stored to `partials` (the node's
  // M x N int32 or fp32 words, this core's copy).
  bool raw = false;
  std::uint64_t k_first = 0, raw_w = 1, partials = 0;

  const KTile& ktile(std::uint64_t nt, std::uint64_t kt) const {
    return ktiles[(per_n ? nt * KT : 0) + kt];
  }
  // Weight tile j of the node in emission order: its output tile t = mt * NT + nt and K tile.
  // Per M tile the N tiles go in groups of `mxus`, one per MXU, K step by K step over the
  // group, so every MXU's weight stream advances with the others'; the group's n-th N tile
  // takes its K tiles from first_k on, cyclically (lower_gemm). One MXU: (t, kt) order.
  std::pair<std::uint64_t, std::uint64_t> weight_tile(std::uint64_t j) const {
    const std::uint64_t mt = j / (NT * KT), r = j % (NT * KT);
    const std::uint64_t g0 = r / (mxus * KT) * mxus;  // the group's first N tile
    const std::uint64_t size = std::min(mxus, NT - g0), in = r - g0 * KT;
    return {mt * NT + g0 + in % size, (first_k(in % size, size) + in / size) % KT};
  }
  // The K tile the n-th of a group of `size` N tiles starts from.
  std::uint64_t first_k(std::uint64_t n, std::uint64_t size) const { return n * KT / size; }
};

class Lowerer {
 public:
  Lowerer(const Graph& graph, const Config& config, const CompileOptions& options,
          CoreShare share, const PipelineStage& stage)
      : model_(graph),
        config_(config),
        options_(options),
        data_(!options.timing_only),
        eb_(element_bytes(graph.dtype)),
        R_(config.array.rows),
        C_(config.array.cols),
        cw_(std::min(config.array.rows, config.array.cols)),
        ub_rows_(std::min<std::uint64_t>(config.ub_rows(graph.dtype), kMaxUbRow + 1)),
        acc_rows_(std::min<std::uint64_t>(config.acc_rows(), kMaxAccRow + 1)),
        fifo_(config.mxu.weight_fifo_tiles >= 2),
        store_engine_(config.core.dma_engines >= 2),
        weight_engines_(fifo_ && config.core.dma_engines > kFirstWeightEngine &&
                                std::none_of(graph.nodes.begin(), graph.nodes.end(),
                                             [](const Node& n) {
                                               return n.kind == OpKind::kTensorMatmul;
                                             })
                            ? config.core.dma_engines - kFirstWeightEngine
                            : 0),
        share_(share),
        stage_(stage) {}

  Program run();

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw CompileError(model_.source + ": node " + std::to_string(layer_index_) + " '" +
                       layer_->name + "' (" + to_string(layer_->kind) + "): " + what);
  }
  void check_width(std::uint64_t value, std::uint64_t max, const std::string& what) const {
    if (value > max) {
      fail(what + " = " + std::to_string(value) + " exceeds its instruction field (max " +
           std::to_string(max) + ")");
    }
  }
  void add_segment(const std::string& name, std::uint64_t address,
                   std::vector<std::uint8_t> bytes) {
    HbmSegment seg;
    seg.name = name;
    seg.address = address;
    seg.bytes = std::move(bytes);
    program_.hbm_image.push_back(std::move(seg));
  }
  // The memory image: every graph input written into its root's storage, one segment a root.
  void write_inputs(const GraphData& data);
  // Appends `inst`; the first instruction of a unit with a pending hand-off waits on it, and
  // only then does the producer signal (so every signal has exactly one wait).
  void emit(Instruction inst) {
    // A pipeline stage's run waits for the stage before just ahead of its first instruction
    // that is not a weight FIFO fill (weights never depend on another core: they overlap it).
    if (stage_wait_ && inst.op != Opcode::kLayer &&
        !(inst.op == Opcode::kDmaLoad && (inst.flags & kFlagWeights))) {
      emit_stage_wait();
    }
    if (program_.instructions.size() >= kMaxInstructions) {
      fail("the program would exceed " + std::to_string(kMaxInstructions) +
           " instructions, the most a run holds in memory");
    }
    const Unit unit = unit_of(inst.op);
    for (auto it = handoffs_.begin(); it != handoffs_.end();) {
      if (it->waiter == unit && inst.instance == 0) {
        inst.wait |= bit(it->sem);
        program_.instructions.add_signal(it->producer, bit(it->sem));
        it = handoffs_.erase(it);
      } else {
        ++it;
      }
    }
    if (unit == Unit::kDma && inst.instance < kFirstWeightEngine) {
      (inst.instance == 0 ? last_dma_ : last_store_dma_) = program_.instructions.size();
    }
    if (unit == Unit::kVector) last_vector_ = program_.instructions.size();
    if (inst.op == Opcode::kLoadWeights) load_weights_at_.push_back(program_.instructions.size());
    if (inst.op == Opcode::kLoadWeights && (inst.flags & kFlagFifo)) ++fifo_reads_[inst.instance];
    program_.instructions.push_back(inst);
  }
  // Instruction `producer` (default: the last emitted) signals `sem` to the next instruction
  // of unit `waiter` (instance 0: MXU 0 starts every GEMM node and passes the wait on,
  // kMxuGo; DMA engine 0). It replaces a pending hand-off of `sem`, whose producer, earlier
  // on the same unit, completes first: each signal keeps exactly one wait.
  void hand_off(std::uint32_t sem, Unit waiter, std::optional<std::size_t> producer = {}) {
    handoffs_.erase(std::remove_if(handoffs_.begin(), handoffs_.end(),
                                   [&](const Handoff& h) { return h.sem == sem; }),
                    handoffs_.end());
    handoffs_.push_back({producer.value_or(program_.instructions.size() - 1), sem, waiter});
  }
  Instruction dma(Opcode op, const DmaFields& d, std::uint64_t wait, std::uint64_t signal) {
    check_width(d.group_stride, kMaxStride, "DMA group_stride (bytes)");
    check_width(d.seg_stride, kMaxStride, "DMA seg_stride (bytes)");
    Instruction inst;
    inst.op = op;
    inst.dma = d;
    inst.wait = wait;
    inst.signal = signal;
    return inst;
  }
  // A rows x pixels block of `chans` channels per pixel, one UB row per pixel.
  DmaFields block(std::uint64_t hbm_addr, std::uint64_t ub_row, std::uint64_t rows,
                  std::uint64_t row_stride, std::uint64_t pixels, std::uint64_t pixel_stride,
                  std::uint64_t chans) const {
    DmaFields d;
    d.hbm_addr = hbm_addr;
    d.ub_row = std::uint32_t(ub_row);
    d.groups = std::uint16_t(rows);
    d.group_stride = std::uint32_t(rows > 1 ? row_stride : 0);
    if (pixel_stride == chans * eb_ && pixels * chans <= kMaxCount) {
      d.segs = 1;
      d.elems = std::uint16_t(pixels * chans);
    } else {
      d.segs = std::uint16_t(pixels);
      d.elems = std::uint16_t(chans);
      d.seg_stride = std::uint32_t(pixels > 1 ? pixel_stride : 0);
    }
    d.pack = std::uint16_t(chans);
    d.ub_stride = std::uint16_t(rows > 1 ? pixels : 1);
    return d;
  }
  // Splits pixels [m0, m1) of `t` into DMA-able blocks: partial rows, runs of whole rows within
  // an image, or whole one-row images. fn(first_pixel, b, y, x, pixels, rows, row_stride).
  void pixel_blocks(std::uint64_t m0, std::uint64_t m1, const HbmTensor& t,
                    const std::function<void(std::uint64_t, std::uint64_t, std::uint64_t,
                                             std::uint64_t, std::uint64_t, std::uint64_t,
                                             std::uint64_t)>& fn) const {
    const std::uint64_t h = t.shape.h, w = t.shape.w;
    while (m0 < m1) {
      const std::uint64_t b = m0 / (h * w), r = m0 % (h * w), y = r / w, x = r % w;
      const std::uint64_t left = m1 - m0;
      if (x != 0 || left < w || w > kMaxCount) {
        std::uint64_t n = std::min({w - x, left, kMaxCount});
        fn(m0, b, y, x, n, 1, 0);
        m0 += n;
      } else if (h == 1) {
        std::uint64_t rows = std::min({left / w, t.samples - b, kMaxCount});
        fn(m0, b, 0, 0, w, rows, t.image_bytes());
        m0 += rows * w;
      } else {
        std::uint64_t rows = std::min({left / w, h - y, kMaxCount});
        fn(m0, b, y, 0, w, rows, t.row_bytes());
        m0 += rows * w;
      }
    }
  }

  // The geometry of a GEMM's input as it reads it: resident, or the bands it loads from HBM
  // (see Taps::sub), whose pixels are `contiguous` or those of a concat's channel slice.
  // Subsampling a strided 1 x 1 conv's input loads only the pixels it reads, and its MATMULs
  // stream consecutive UB rows: one pass per tile instead of one per output row, whose stride-s
  // reads would also drift across the UB banks the vector unit and the DMA are writing.
  Taps taps_of(const Node& layer, bool in_res, bool contiguous) const {
    const bool conv = layer.kind == OpKind::kConv2d;
    const bool hbm_band = !in_res;
    Taps g;
    g.contiguous = contiguous;
    g.kh = conv ? layer.kernel_h : 1;
    g.kw = conv ? layer.kernel_w : 1;
    g.s = conv ? layer.stride : 1;
    g.pad = conv ? layer.padding : 0;
    g.pad_h = conv ? layer.padding_h : 0;
    g.dh = conv ? layer.dilation_h : 1;
    g.dw = conv ? layer.dilation_w : 1;
    g.W = layer.in.w;
    g.C = layer.in.c;
    g.OH = layer.out.h;
    g.OW = layer.out.w;
    g.Wp = g.W + 2 * g.pad;
    if (hbm_band && g.kh == 1 && g.kw == 1 && g.s > 1) {
      g.sub = g.s;
      g.s = 1;
      g.Wp = g.OW;
    }
    return g;
  }
  // Convolutions keep M tiles of whole output rows when they can (few, long stores).
  std::uint64_t round_tile(const Node& layer, std::uint64_t m_tile) const {
    if (layer.kind == OpKind::kConv2d && m_tile < layer.gemm_m() && m_tile >= layer.out.w) {
      return m_tile - m_tile % layer.out.w;
    }
    return m_tile;
  }
  // K of a GEMM over all its input channels: a grouped conv's weight matrix is block-diagonal
  // over them (GroupMap), stored with its zeros.
  std::uint64_t dense_k(const Node& layer) const {
    return layer.kind == OpKind::kConv2d
               ? std::uint64_t(layer.kernel_h) * layer.kernel_w * layer.in.c
               : layer.gemm_k();
  }
  GroupMap groups_of(const Node& layer) const {
    return group_map(layer.in.c, layer.out_channels, layer.groups, cw_);
  }
  // A conv that takes the taps path one tap per tile: dilated taps are no contiguous run of an
  // im2col segment or of a packed UB row, and a grouped conv of several blocks gives each N
  // tile the K tiles of its own block.
  bool tap_by_tap(const Node& layer) const {
    return layer.kind == OpKind::kConv2d &&
           (layer.dilation_h > 1 || layer.dilation_w > 1 || groups_of(layer).blocks > 1);
  }
  // Cycles a DMA transfer waits for the memory before its first response (an engine runs one
  // transfer at a time): hbm.latency_ns, none with ideal memory.
  double transfer_start() const {
    return config_.hbm.preset == "ideal" ? 0 : config_.hbm.latency_ns / config_.period_ns();
  }
  // Whether a strided conv reading its input bands from HBM (g) loads each channel chunk whose
  // tiles take one tap each (all but a packed remainder) as s x s compact residue images
  // (tap_plan, grouped_plan): the one rule, packed remainder or not. A stride-s
  // stream through a plain band waits whole for a window free of the UB writes (the DMA's, the
  // vector unit's) crossing its banks, up to 39 % of its cycles on long output rows (a 32 x 32
  // array, 160 pixels per row); stride-1 streams keep their distance. The residue images take
  // s^2 - 1 more transfers per chunk, band part and M tile, each waiting for the memory
  // (transfer_start) on an engine that also loads the weights and stores the outputs (one
  // engine on the edge config): a small layer (7 x 7 outputs) lost more there than its short
  // streams gained, and so did a DMA-bound depthwise one. Taken while those waits, over M tiles
  // of half the accumulators, stay under 1/32 of the array's passes (weight tiles x M); always
  // with ideal memory.
  bool residue_images(const Node& layer, const Taps& g) const {
    if (layer.kind != OpKind::kConv2d || g.s < 2) return false;
    // A grouped conv's N tiles each take their block's chunks (GroupedPlan).
    const GroupMap gm = groups_of(layer);
    const std::uint64_t M = layer.gemm_m(), chunks = ceil_div(gm.block_in(0), cw_);
    std::uint64_t ntiles = 0;
    for (std::uint64_t b = 0; b < gm.blocks; ++b) ntiles += ceil_div(gm.block_out(b), C_);
    const std::uint64_t tiles = g.kh * g.kw * chunks * ntiles;
    const std::uint64_t m_tile = std::clamp<std::uint64_t>(acc_rows_ / 2, 1, M);
    const std::uint64_t extra = (std::min(g.s, g.kh) * std::min(g.s, g.kw) - 1) * gm.blocks *
                                chunks * band_of(g, 0, m_tile).parts.size() * ceil_div(M, m_tile);
    return double(extra) * transfer_start() * 32 <= double(tiles * M);
  }
  // Kernel taps one weight tile of the last channel chunk holds when a tap-based conv reads its
  // input from HBM (g, its bands: taps_of(layer, false, contiguous)): that chunk's channels (all
  // C when C <= min(R, C)) of several taps when they fit the array's rows (the DMA packs them
  // into one UB row), else 1 (a tile is one tap's channel chunk). A resident input has one
  // pixel per UB row and is never packed. Packing trades weight tiles (each a pass over every
  // output pixel, per N tile) for UB rows the DMA writes (each packed image loads the input
  // again, through the UB's write port): with C <= min(R, C) it is kept only where it lowers
  // the larger of the two. A remainder's images beside the full chunks' also take UB rows that
  // shrink the M tiles, so with C > min(R, C) it is kept where it lowers plan_cycles, and, when
  // it takes more tiles than im2col, only where it is within_folds.
  std::uint64_t taps_per_tile(const Node& layer, const Taps& g) const {
    if (layer.kind != OpKind::kConv2d || tap_by_tap(layer)) return 1;
    const std::uint64_t pack = cw_ / last_chunk(layer.in.c, cw_);
    if (pack < 2) return 1;
    const bool residues = residue_images(layer, g);
    const TapPlan packed = tap_plan(g, cw_, pack, R_, residues);
    const std::uint64_t M = layer.gemm_m();
    if (layer.in.c > cw_ && !within_folds(layer, packed.ktiles.size())) return 1;
    const TapPlan plain = tap_plan(g, cw_, 1, R_, residues);
    if (layer.in.c > cw_) {
      return plan_cycles(layer, g, packed) < plan_cycles(layer, g, plain) ? pack : 1;
    }
    const std::uint64_t NT = ceil_div(layer.gemm_n(), C_);
    auto cost = [&](const TapPlan& plan) {
      return std::max(plan.ktiles.size() * NT * M, band_rows_written(g, plan, 0, M));
    };
    return cost(packed) < cost(plain) ? pack : 1;
  }
  // Whether a tap plan of `ktiles` weight tiles (of a conv reading its input from HBM) fits
  // im2col's classic schedule, ceil(K / R) x (2R + C + M - 2) per N tile: each of its tiles
  // is a pass over the M output pixels, so with more tiles than im2col's the array alone
  // can stream longer than SCALE-Sim's folds, whatever the cheaper gather saves, and issue 6
  // holds compute cycles (first MXU activity to last result) to the folds. gemm_path weighs
  // taps against im2col by the whole layer's time (path_cycles), first gather included, which
  // compute cycles leave out: the taps' gather, once per input element, can win there while
  // the array streams past the folds (40 channels, 2x2 on 32 rows over 59 x 59 pixels:
  // 6 x 3481 = 20886 against 5 x (64 + 32 + 3481 - 2) = 17875). So taps_per_tile packs, and
  // gemm_path takes the taps path, only within them.
  bool within_folds(const Node& layer, std::uint64_t ktiles) const {
    const std::uint64_t M = layer.gemm_m(), im2col = ceil_div(dense_k(layer), R_);
    return ktiles <= im2col || ktiles * M <= im2col * (2 * R_ + C_ + M - 2);
  }
  // Estimated cycles of a tap-based conv with more channels than min(R, C) reading its input
  // from HBM with tap plan `plan`: each weight tile is a pass over every output pixel per N
  // tile, while the DMA writes the band images' UB rows; the larger of the two binds. Band
  // images also take UB rows: with M tiles of the most
  // output pixels whose images (double-buffered) and output slots fit the UB beside the weight
  // slots, each weight tile streams max(M_t, K_t) cycles (its loader reads K_t rows), so
  // images that shrink the M tiles below the weight tiles' rows cost passes too. Infinite when
  // one output pixel's images do not fit: an input only the tap path reads (a concat's channel
  // slice) then keeps the unpacked plan that does.
  double plan_cycles(const Node& layer, const Taps& g, const TapPlan& plan) const {
    const std::uint64_t M = layer.gemm_m(), NT = ceil_div(layer.gemm_n(), C_);
    auto fits = [&](std::uint64_t m) {
      return 2 * (band_layout(g, plan, band_of(g, 0, m)).rows + m) + weight_rows() <= ub_rows_;
    };
    if (!fits(1)) return std::numeric_limits<double>::infinity();
    const std::uint64_t lo = largest_fitting(std::min({M, acc_rows_ / 2, kMaxCount}), fits);
    const std::uint64_t MT = ceil_div(M, lo);
    double passes = 0;
    for (const KTile& k : plan.ktiles) passes += double(std::max(lo, k.kts));
    return std::max(double(MT * NT) * passes, double(band_rows_written(g, plan, 0, M)));
  }
  // The weight tiles and band images of a tap-based conv over input geometry g
  // (taps_of(layer, in_res, contiguous)), with N tiles of at most nw channels: the one plan
  // the staging estimate (band_slot_rows) and the tiling (tile_gemm) both take. A grouped conv
  // of several blocks has its own N tiles and K tiles per N tile (GroupedPlan); any other
  // leaves `ntiles` empty, its K tiles shared by every N tile. The images do not depend on nw.
  GroupedPlan taps_plan(const Node& layer, const Taps& g, bool in_res, std::uint64_t nw) const {
    if (layer.kind == OpKind::kConv2d && groups_of(layer).blocks > 1) {
      return grouped_plan(g, groups_of(layer), cw_, nw, !in_res && residue_images(layer, g));
    }
    GroupedPlan p;
    p.plan = tap_plan(g, cw_, in_res ? 1 : taps_per_tile(layer, g), R_,
                      !in_res && residue_images(layer, g));
    p.KT = p.plan.ktiles.size();
    return p;
  }
  // A grouped conv of one block with few channels per tap: read from HBM its taps pack into
  // fuller tiles, resident it streams every output pixel once per tap (a 3x3 depthwise conv
  // over 32 channels on 128 rows: 3 passes against 9), which costs far more than the tensor's
  // round trip through HBM. (im2col's full tiles do not pay: its gather of kernel_h segments
  // per pixel binds instead, as MobileNetV2's 96-channel stride-2 depthwise conv showed.) The
  // packed tiles must also outrun the DMA loading their band images (band_dma_cycles): a
  // strided conv's images each load a share of the input again.
  bool prefers_hbm_input(const Node& layer, bool contiguous) const {
    if (layer.kind != OpKind::kConv2d || layer.groups == 1) return false;
    const Taps g = taps_of(layer, false, contiguous);
    const TapPlan hbm = taps_plan(layer, g, false, C_).plan;
    const std::uint64_t resident = taps_plan(layer, taps_of(layer, true, contiguous), true, C_).KT;
    const double M = double(layer.gemm_m());
    return std::max(double(hbm.ktiles.size()) * M, band_dma_cycles(g, hbm, 0, layer.gemm_m())) <
           double(resident) * M;
  }
  // HBM requests (one a cycle, each one burst of hbm.burst_bytes) per segment of a run of
  // `len`-byte segments `stride` bytes apart, as a transfer fetches them: each burst once,
  // shared with the segment before (unless `alone`: each segment in a transfer of its own).
  // Averaged over the first segments of the run (those of one period of the segments'
  // alignment to the bursts, at most 4096).
  double requests_per_segment(std::uint64_t len, std::uint64_t stride, bool alone = false) const {
    const std::uint64_t burst = config_.hbm.burst_bytes;
    const std::uint64_t n = std::min<std::uint64_t>(4096, burst / std::gcd(stride, burst));
    std::uint64_t requests = 0, next = 0;  // next: the first burst not yet fetched
    for (std::uint64_t i = 0; i < n; ++i) {
      if (alone) next = 0;
      const std::uint64_t first = std::max(next, i * stride / burst);
      const std::uint64_t last = (i * stride + len - 1) / burst;
      if (last >= first) requests += last - first + 1;
      next = std::max(next, last + 1);
    }
    return double(requests) / double(n);
  }
  // The HBM requests of the DMA loading the band images of `plan` for output pixels
  // [m0, m1). A chunk of a wider pixel (C over the array's rows) is a segment of its own each
  // UB row, one or two bursts: 1.5 requests a row for 128 of 949 channels at 256-byte bursts,
  // where im2col's whole pixels take 0.46 (path_cycles). (Pixels of just the layer's C
  // channels; a concat slice's are wider, more requests.)
  double band_requests(const Taps& g, const TapPlan& plan, std::uint64_t m0,
                       std::uint64_t m1) const {
    double requests = 0;
    const std::uint64_t pixel = g.C * eb_;
    for (const BandImage& im : plan.images) {
      TapPlan one;
      one.images.push_back(im);
      const double r = double(band_rows_written(g, one, m0, m1));
      // A row's taps: one segment where they run along a kernel row through whole pixels.
      const bool run = im.taps == 1 || (im.dy == 0 && im.dx == 1 && im.chans == g.C);
      const std::uint64_t stride = (im.taps == 1 && !im.compact ? g.sub : im.xstep) * pixel;
      requests += r * (run ? requests_per_segment(im.taps * im.chans * eb_, stride)
                           : double(im.taps) * requests_per_segment(im.chans * eb_, stride));
    }
    return requests;
  }
  // The DMA's cycles loading the band images of `plan` for output pixels [m0, m1): a UB row
  // written a cycle, or the bytes at the memory's peak (the rows' elements, an upper bound: a
  // transfer fetches each burst once), whichever is more, and each transfer waiting for the
  // memory (transfer_start).
  double band_dma_cycles(const Taps& g, const TapPlan& plan, std::uint64_t m0,
                         std::uint64_t m1) const {
    double rows = 0, bytes = 0;
    for (const BandImage& im : plan.images) {
      TapPlan one;
      one.images.push_back(im);
      const double r = double(band_rows_written(g, one, m0, m1));
      rows += r;
      bytes += r * double(im.taps * im.chans * eb_);
    }
    const double peak = config_.hbm_peak_bytes_per_cycle();
    return std::max(rows, std::isinf(peak) ? 0 : bytes / peak) +
           double(band_transfers(g, plan, m0, m1)) * transfer_start();
  }
  // Whether a grouped conv's channel chunks (input) or N tiles (output) are whole chunks of the
  // resident layout (min(R, C) channels per UB row).
  bool resident_ok(const Node& layer, bool in_res, bool out_res) const {
    if (layer.kind != OpKind::kConv2d) return true;
    const GroupMap gm = groups_of(layer);
    if (gm.blocks == 1) return true;
    return (!in_res || gm.per_block * gm.cg % cw_ == 0) &&
           (!out_res || gm.per_block * gm.ng % cw_ == 0);
  }
  // UB rows of one input slot of a tap-based conv reading its input bands from HBM, whose
  // pixels are `contiguous` or not.
  std::uint64_t band_slot_rows(const Node& layer, std::uint64_t m_tile, bool contiguous) const {
    const Taps g = taps_of(layer, false, contiguous);
    const TapPlan plan = taps_plan(layer, g, false, C_).plan;
    const std::uint64_t M = layer.gemm_m();
    std::uint64_t rows = 0;
    for (std::uint64_t m0 = 0; m0 < M; m0 += m_tile) {
      rows = std::max(rows, band_layout(g, plan, band_of(g, m0, std::min(M, m0 + m_tile))).rows);
    }
    return rows;
  }
  // DMA loads of band image `im` for one band part into UB rows from `ub` (the part's padded
  // pixel grid, Wp rows per input row). A plain band is one segment per input row; a packed
  // image writes only the anchors its tiles read, one UB row each, gathering its taps as
  // segments: a run along a kernel row is one segment of taps * C elements per anchor (one DMA
  // per part) when the tensor's pixels hold just those C channels, otherwise (a channel slice
  // of a concat, the remainder chunk of C > min(R, C) channels) and for a pair crossing kernel
  // rows, one segment per tap (one DMA per anchor row).
  void band_image_loads(const HbmTensor& t, const Taps& g, const BandImage& im,
                        const BandPart& part, std::uint64_t ub,
                        std::vector<DmaFields>& pieces) const {
    const std::int64_t pad = std::int64_t(g.pad);
    // The one place the image's first channel (its chunk's, or a concat slice's) is added.
    auto at = [&](std::int64_t y, std::int64_t x) { return t.addr(part.b, y, x) + im.c0 * eb_; };
    if (im.taps == 1 && !im.compact) {
      check_width(part.rows, kMaxCount, "input band rows (DMA groups)");
      pieces.push_back(block(at(std::int64_t(part.iy0 * g.sub - g.pad_h), -pad),
                             ub, part.rows, g.sub * t.row_bytes(), g.Wp,
                             g.sub * t.pixel_bytes(), im.chans));
      return;
    }
    const AnchorGrid grid = anchor_grid(g, im, part);
    const std::uint64_t y0 = grid.y0, y1 = grid.y1, x0 = grid.x0;
    const std::uint64_t row_elems = im.taps * im.chans;
    check_width(grid.rows, kMaxCount, "packed band rows (DMA groups)");
    check_width(grid.cols, kMaxCount, "packed band anchors per row (DMA segs)");
    auto ub_row = [&](std::uint64_t iy) {
      return im.compact ? ub + (iy - y0) / im.ystep * grid.cols : ub + (iy - part.iy0) * g.Wp + x0;
    };
    auto hbm = [&](std::uint64_t iy) {
      return at(std::int64_t(iy - g.pad_h), std::int64_t(x0) - pad);
    };
    if (one_transfer(g, im)) {
      DmaFields d;
      d.hbm_addr = hbm(y0);
      d.ub_row = std::uint32_t(ub_row(y0));
      d.groups = std::uint16_t(grid.rows);
      d.group_stride = std::uint32_t(grid.rows > 1 ? im.ystep * t.row_bytes() : 0);
      d.ub_stride = std::uint16_t(grid.rows > 1 ? (im.compact ? grid.cols : g.Wp) : 1);
      d.segs = std::uint16_t(grid.cols);
      d.seg_stride = std::uint32_t(grid.cols > 1 ? im.xstep * t.pixel_bytes() : 0);
      d.elems = std::uint16_t(row_elems);
      d.pack = std::uint16_t(row_elems);
      pieces.push_back(d);
      return;
    }
    // Kernel rows packed whole: an anchor row near the band's end takes only the rows left
    // (the tiles anchored there read no further), so no DMA reads past the image.
    const std::int64_t step = std::int64_t(im.dy * t.row_bytes()) +
                              im.dx * std::int64_t(t.pixel_bytes());
    const std::uint64_t anchors = grid.cols;
    for (std::uint64_t iy = y0; iy <= y1; iy += im.ystep) {
      const std::uint64_t segs =
          im.dx == 0 ? std::min(im.taps, part.iy0 + part.rows - iy) : im.taps;
      DmaFields d;
      d.hbm_addr = hbm(iy);
      d.ub_row = std::uint32_t(ub_row(iy));
      d.groups = std::uint16_t(anchors);
      d.group_stride = std::uint32_t(anchors > 1 ? im.xstep * t.pixel_bytes() : 0);
      d.ub_stride = std::uint16_t(anchors > 1 && !im.compact ? im.xstep : 1);
      d.segs = std::uint16_t(segs);
      d.seg_stride = std::uint32_t(segs > 1 ? step : 0);
      d.elems = std::uint16_t(im.chans);
      d.pack = std::uint16_t(row_elems);
      pieces.push_back(d);
    }
  }
  // Input vectors (of x_stride UB rows) per transfer of the next M tile's input on the rows
  // path. The DMA engine asks for a response's row writes as it arrives, and the memory
  // delivers rows faster than the one write port takes them, so a transfer's writes are booked
  // up to a share 1 - row / burst of its rows ahead (ideal memory: half with two 128-byte rows
  // a 256-byte burst, 7/8 with 32-byte rows). A MATMUL's stream is booked whole when it
  // starts, over cycles in a row: it cannot start inside a run of booked writes that step
  // through every bank, so it waits for the transfer's writes to end (a whole M tile's, 31,629
  // cycles of 107,121 on 3136 x 3072 x 100 at 128). Transfers of 512 rows (256 booked ahead
  // at 128 x 128) keep that wait short. With `one_n_tile` per MXU the streams run beside the
  // gather throughout, so there a transfer books at most 256 rows ahead with any row (292 rows
  // at 32 x 32: a one-N-tile conv's streams waited 1.5 % of their cycles with 512, 0.13 % with
  // 292, 112x112x40 5x5 -> 16 in M tiles of M / 8); with more N tiles the gather ends while the
  // tile still streams, and shorter transfers only added instructions (43 conv runs of
  // tools/validate/folds_check.py's sets on 32 x 32 up to 0.27 % slower). Each transfer waits
  // for the memory (transfer_start) before its first row, so with a slow memory one holds the
  // rows of at least 16 such waits (HBM2 at the default clock: about 1,800).
  // That holds where a transfer writes its vectors one after another, as a matmul's rows or
  // a conv's windows apart. A conv's windows that overlap along the row (kernel_w > stride)
  // share their bursts: a transfer fetches each once, and a response completes rows of all
  // the pixels it touches, so the writes of a transfer's pixels interleave, their banks no
  // longer step with the stream's, and it meets them at any phase: it waits for the
  // transfer's booked writes each time (102x102x220 11x11 -> 7 at 128, two pixels of 208 UB
  // rows a transfer: 138 of each M tile's 208 streams waited, 539,422 cycles in all). So such
  // a conv takes one pixel a transfer, whose writes step with the stream (there: 2,300,069 ->
  // 1,764,791 compute cycles, folds 1,839,968; 165x165x187 7x7 -> 7: 1,934,290 -> 1,829,218,
  // folds 1,847,736), even where that pixel's own requests (its kernel rows' bursts, no longer
  // shared) outnumber its UB rows: the gather then lags the write port by the difference,
  // less than the waits (the same layers at 256 x 256, 115 requests against 104 rows and 43
  // against 36: 1,247,223 -> 974,724 with input_row_stride's narrower stride, folds 959,920;
  // 939,613 -> 925,047, folds 937,692; 37 of 47 moves in tools/validate/random_wide_convs.csv
  // are under 1 % slower or faster, the worst +3 %, all within their folds). Not where a lone
  // pixel's requests (gather_requests alone) exceed the array's cycles a pixel by more than
  // a quarter, about what the interleaved writes cost (the waits above: 31 % of the streams):
  // a few channels under a large kernel fetch whole bursts a kernel row for a few bytes each
  // (176x176x16 11x11 -> 190 at 256, 18 requests against 8 stream cycles a pixel: one pixel a
  // transfer took 229,469 compute cycles, transfers of input_transfer_vectors 225,985, folds
  // 226,576; 189x189x14 7x11 -> 50: 169,918 against 168,694). lower_gemm keeps
  // a tile's transfers few enough for the sequencer's queue (input_transfers: one-pixel
  // transfers of 14 rows took 176x176x111 4x4 -> 25 at 128 from 421,530 to 444,849).
  std::uint64_t input_transfer_vectors(const Node& layer, std::uint64_t x_stride,
                                       bool one_n_tile) const {
    if (layer.kind == OpKind::kConv2d && layer.kernel_w > layer.stride &&
        gather_requests(layer, true) <= 1.25 * double(stream_cycles_per_pixel(layer))) {
      return std::max<std::uint64_t>(1, std::uint64_t(16 * transfer_start()) / x_stride);
    }
    const double row = double(config_.ub_row_elems()) * eb_;
    const double booked = std::max(0.5, 1 - row / double(config_.hbm.burst_bytes));
    const double rows = std::max(256 / (one_n_tile ? booked : 0.5), 16 * transfer_start());
    return std::max<std::uint64_t>(1, std::uint64_t(rows) / x_stride);
  }
  // Splits DMA pieces along their groups into about `parts` pieces of similar group counts
  // (each still one DMA with the same segments, strides and packing).
  static std::vector<DmaFields> split_groups(const std::vector<DmaFields>& pieces,
                                             std::uint64_t parts) {
    std::uint64_t total = 0;
    for (const DmaFields& d : pieces) total += d.groups;
    return split_at(pieces, std::max<std::uint64_t>(1, ceil_div(total, parts)));
  }
  // Splits DMA pieces along their groups into pieces of at most `most` groups.
  static std::vector<DmaFields> split_at(const std::vector<DmaFields>& pieces,
                                         std::uint64_t most) {
    std::vector<DmaFields> out;
    for (const DmaFields& d : pieces) {
      for (std::uint64_t g0 = 0; g0 < d.groups; g0 += most) {
        DmaFields p = d;
        p.groups = std::uint16_t(std::min<std::uint64_t>(most, d.groups - g0));
        p.hbm_addr = d.hbm_addr + g0 * d.group_stride;
        p.ub_row = std::uint32_t(d.ub_row + g0 * d.ub_stride);
        if (p.groups == 1) {
          p.group_stride = 0;
          p.ub_stride = 1;
        }
        out.push_back(p);
      }
    }
    return out;
  }
  // UB rows from one input vector (ceil(K / R) rows) to the next in an input slot (rows path):
  // the least stride of at least ceil(K / R) that is 1 modulo ub.banks. A MATMUL's stream
  // reads one row per vector, so its bank (row % ub.banks) steps by the stride each cycle,
  // and the UB's other bursts walk the rows in order, their bank stepping by one: the DMA
  // writing the next M tile's vectors, the ACTIVATEs writing an output slot, the stores
  // reading one. A stream is booked whole, in consecutive cycles, when it starts, so beside
  // a burst whose bank steps otherwise it meets that burst's bank within ub.banks cycles and
  // waits for the burst to end (an ACTIVATE of 3136 rows: about 2,400 cycles), and a DMA
  // write meeting it loses a cycle, one write in ub.banks, which a layer with one N tile (as
  // many writes as stream rows) pays on the array too. Stepping with them, the stream meets a
  // burst only where the DMA's writes jump to the next vector (by the stride less the
  // vector), and the two part again at the next jump. The spare rows cost UB room: smaller M
  // tiles where the UB bounds them. `stepping` (tile_gemm: more than one M tile, so a next
  // tile's input streams in beside the array, or one MXU), else ceil(K / R), plus one row
  // when ub.banks divides it. With one M tile on several MXUs what meet are their streams
  // side by side, which ceil(K / R) dividing ub.banks keeps apart (lower_gemm's first_k; the
  // stepping stride measured 0.9 % slower on tpu_v4's MLPs). A gather-bound layer steps too:
  // its stream waits for the gather, but stepping otherwise it also waits for the writes
  // (112x112x24 3x3 -> 33 on 128 x 128, two UB rows a pixel: 25,080 -> 24,729 compute
  // cycles, folds 24,964; YOLOv5s's 6x6 stem on 32 x 32: 420,316 -> 413,807).
  std::uint64_t input_row_stride(const Node& layer, bool stepping) const {
    const std::uint64_t KR = ceil_div(dense_k(layer), R_), banks = config_.ub.banks;
    if (!stepping) return banks > 1 && KR % banks == 0 ? KR + 1 : KR;
    return KR + (banks + 1 - KR % banks) % banks;
  }
  // HBM requests a pixel of a conv's im2col gather (rows path): kernel_h segments of
  // kernel_w pixels, `stride` pixels apart, each burst fetched once per transfer.
  // `alone`: a pixel in a transfer of its own, sharing no burst with its neighbours' windows.
  double gather_requests(const Node& layer, bool alone = false) const {
    const std::uint64_t pixel = std::uint64_t(layer.in.c) * eb_;
    return double(layer.kernel_h) * requests_per_segment(layer.kernel_w * pixel,
                                                         layer.stride * pixel, alone);
  }
  // Whether a conv's im2col gather (rows path) waits for more memory requests a UB row than
  // the array takes cycles to stream a pixel: ceil(K / R) K tiles times its MXU's N tiles
  // (core.mxus MXUs at most share them). A request is sent a cycle, and a UB row is written
  // once every request holding its bytes has returned: the kernel rows the row holds, one
  // request each (a transfer's later pixels share most of their bursts with the pixel before,
  // as the DMA coalesces a burst over consecutive groups, but its first pixel fetches them
  // all). With one UB row a pixel that is every kernel row; with more, a row of R elements
  // holds at most ceil(R / (kernel_w C)) + 1 of them (one it starts inside). Then the array
  // waits for the gather anyway, and neither M tiles capped for an early first stream
  // (rows_capped) nor short transfers pay: the smaller tiles only move more of the gather
  // behind the first tile's (112x112x24 3x3 -> 33 on 128 x 128: 24,729 -> 24,906 compute
  // cycles). Counting every kernel row with several UB rows a pixel, large kernels over a
  // few channels on a wide array (8 UB rows a pixel for 142x142x15 11x11 -> 7 on 256 x 256,
  // each holding 2 or 3 kernel rows) counted as bound: their transfers of whole output rows
  // booked up to 1,056 UB writes ahead, each stream waited for a gap in them (12,127 cycles
  // at the UB port), and two input slots left the array waiting for each next tile:
  // 151,782 -> 143,118 compute cycles, folds 145,520 (226x226x25 9x9 -> 207: 576,665 ->
  // 387,514, folds 386,320). Where one M tile held a whole layer, its capped tiles now pay
  // the gather's transfer starts inside the compute span, which the one tile's gather,
  // all before it, did not (112x112x4 5x5 -> 8 on 32 x 32: 46,696 -> 47,088 compute cycles,
  // folds 47,032, but 116,797 -> 54,885 in all). With more N
  // tiles the streams outlast the gather (a stem's few channels on a small array), which then
  // runs under them as any other: counting kernel rows against UB rows alone, such a layer
  // kept one M tile, of the plain stride, whose streams met the ACTIVATEs' writes
  // (112x112x4 5x5 -> 512 on 32 x 32, 16 N tiles: 763,785 -> 746,560, folds 752,512). With
  // one UB row a pixel a stream steps with the writes at any M tile size, and capped tiles
  // only add their turnarounds to the compute span (112x112x4 3x3 -> 257 on 128 x 128:
  // 36,429 -> 37,848, folds 37,446): such a layer stays bound with kernel_h > 1.
  // The array's cycles a pixel on the rows path: ceil(K / R) K tiles times an MXU's N tiles
  // (core.mxus MXUs at most share them).
  std::uint64_t stream_cycles_per_pixel(const Node& layer) const {
    const std::uint64_t mxus = std::min<std::uint64_t>(config_.core.mxus, kMaxCompilerMxus);
    return ceil_div(dense_k(layer), R_) * ceil_div(ceil_div(layer.gemm_n(), C_), mxus);
  }
  bool gather_bound(const Node& layer) const {
    if (layer.kind != OpKind::kConv2d) return false;
    const std::uint64_t KR = ceil_div(dense_k(layer), R_);
    const std::uint64_t streams = KR > 1 ? stream_cycles_per_pixel(layer) : 1;
    const std::uint64_t per_row = std::min<std::uint64_t>(
        layer.kernel_h, ceil_div(R_, std::uint64_t(layer.kernel_w) * layer.in.c) + 1);
    return per_row > streams;
  }
  // Staging rows (below any resident tensors) a GEMM node needs with M tiles of m_tile rows.
  // `mxus` MXUs have two output slots each.
  // `contiguous`: an input read from HBM has pixels of just its channels (Taps::contiguous).
  // `x_stride`: the rows path's input_row_stride, by default the larger, stepping one.
  std::uint64_t gemm_staging(const Node& layer, GemmPath path, bool in_res, bool contiguous,
                             bool out_res, std::uint64_t m_tile, std::uint64_t mxus = 1,
                             std::uint64_t x_stride = 0) const {
    std::uint64_t rows = weight_rows() + bias_rows(layer, config_, model_.dtype) +
                         (out_res ? 0 : 2 * mxus * m_tile);
    if (path == GemmPath::kRows) {
      rows += 2 * m_tile * (x_stride > 0 ? x_stride : input_row_stride(layer, true));
    } else if (!in_res) {
      rows += 2 * band_slot_rows(layer, m_tile, contiguous);
    }
    return rows;
  }
  // The cycles a conv reading its input from HBM is estimated to take on `path` (the one place
  // gemm_path's choice is costed): the array streams every output pixel once per weight tile
  // (K tiles x N tiles x M), while the DMA writes the UB rows of the gather (im2col: ceil(K / R)
  // per pixel; taps: the band images' rows, band_rows_written), one a cycle, and its transfers
  // each wait for the memory (transfer_start; im2col: one per output row, taps: band_transfers).
  // The first M tile's gather comes before any stream (the node's first weight load waits for
  // all of it), the rest overlaps the streams. An M tile is at most an accumulator slot
  // (tile_gemm). im2col's HBM bytes do not enter: the DMA fetches each burst once per
  // transfer, so its kh x kw reads of an input element cost about kh bursts, well within the
  // peak bandwidth at one UB row a cycle (band images: band_dma_cycles). Ideal memory leaves
  // the UB rows and the first tile's exposed gather. An im2col M tile is at most what two
  // input slots of `limit` UB rows hold (gemm_staging; 139x139x182 7x7 -> 10 on 32 x 32, 289
  // UB rows a pixel: about 900 pixels, where M / 8 is 2212; costed at 2212 its exposed gather
  // had the taps path taken, 294 K tiles against 279, 5,200,611 compute cycles, folds
  // 4,961,457; im2col 4,938,194, and 5,161,111 cycles in all against 5,279,058), in whole
  // output rows and even tiles, as tile_gemm takes it: 109x109x413 11x11 -> 195 on 128 x 128
  // fits 156 pixels, taken as one output row of 99, each stream shorter than a weight load;
  // costed at 156 im2col won, 9,894,895 compute cycles (estimated 7,725,378, now 9,948,213),
  // folds 7,963,106, the taps 7,762,597. On 32 x 32, 92x92x183 7x7 -> 60 fits 903, taken as
  // 860 (10 rows of 86): estimated 4,410,295, now 4,398,212, took 4,399,406 in all;
  // 102x102x220 11x11 -> 7: 7,303,296, now 7,271,680, took 7,273,479.
  double path_cycles(const Node& layer, GemmPath path, bool contiguous, bool requests,
                     bool out_res, std::uint64_t limit) const {
    const std::uint64_t M = layer.gemm_m(), NT = ceil_div(layer.gemm_n(), C_);
    const Taps g = taps_of(layer, false, contiguous);
    const TapPlan plan = path == GemmPath::kTaps ? taps_plan(layer, g, false, C_).plan : TapPlan();
    const std::uint64_t KT = path == GemmPath::kTaps ? plan.ktiles.size()
                                                      : ceil_div(dense_k(layer), R_);
    std::uint64_t first_m = std::min({M, acc_rows_ / (KT == 1 ? 3 : 2), kMaxCount});
    if (path == GemmPath::kRows && rows_capped(layer)) {
      first_m = std::min(first_m, rows_m_cap(layer));
    }
    if (path == GemmPath::kRows) {
      first_m = round_tile(layer, largest_fitting(first_m, [&](std::uint64_t m) {
        return gemm_staging(layer, GemmPath::kRows, false, contiguous, out_res, m) <= limit;
      }));
      const std::uint64_t even = ceil_div(M, ceil_div(M, first_m)), ow = layer.out.w;
      first_m = first_m % ow == 0 ? ceil_div(even, ow) * ow : even;
    }
    // With `requests`, the DMA sending one HBM request a cycle (band_requests; im2col: a group
    // per pixel of kernel_h segments of kernel_w pixels) may bind instead of its UB rows.
    const double per_pixel = requests ? gather_requests(layer) : 0;
    auto gather = [&](std::uint64_t m) {
      if (path == GemmPath::kTaps) {
        return std::max(band_dma_cycles(g, plan, 0, m),
                        requests ? band_requests(g, plan, 0, m) : 0);
      }
      return std::max(double(m * KT), double(m) * per_pixel) +
             double(ceil_div(m, g.OW)) * transfer_start();
    };
    const double first = gather(first_m);
    // Each of several M tiles' streams lasts at least the next weight tile's load (R rows),
    // which hides under it (in M tiles of 204 pixels, 11x11x248 at 256 x 256 took 390,486
    // compute cycles on im2col against 315,007 on the taps path), the last, shorter tile's
    // too (17x17x40 5x5 -> 130 on 32 x 32: tiles of 52, 52, 52 and 13 pixels, 32 x 5 x 188 =
    // 30,080 stream cycles where max(M, 4R) counted 32 x 5 x 169; it took 29,970).
    const std::uint64_t MT = ceil_div(M, first_m), last = M - (MT - 1) * first_m;
    const double streams =
        double(KT * NT) * double(MT == 1 ? M
                                         : (MT - 1) * std::max<std::uint64_t>(first_m, R_) +
                                               std::max<std::uint64_t>(last, R_));
    return first + std::max(streams, gather(M) - first);
  }
  // Whether a conv reading its input from HBM on the rows path takes M tiles of at most
  // rows_m_cap pixels: with double-buffered weights, unless its gather is slower than the UB's
  // write port anyway (gather_bound: a stem's few channels), and only where transfers start at
  // no cost on one core (ideal memory): every M tile reloads all weight tiles and its gather
  // waits for the memory once per output row, which on DRAM presets and two cores measured
  // slower than the exposed first gather (zoo: AlexNet +11 % on tpu_v1, +9 % on tpu_v4).
  bool rows_capped(const Node& layer) const {
    return layer.kind == OpKind::kConv2d && config_.mxu.double_buffer_weights &&
           transfer_start() == 0 && config_.chip.cores == 1 && !gather_bound(layer);
  }
  // The most output pixels of an M tile of such a conv. The node's first weight load waits for
  // the first M tile's whole gather (ceil(K / R) UB rows a pixel, one a cycle) while the array
  // idles, and each later tile's gather runs under the previous tile's streams: so an M tile is
  // at most an eighth of M, and at least 2R pixels, so that each stream hides the next weight
  // tile's load (112x112x24 3x3 -> 33 on 32 x 32: 254,583 -> 180,818 cycles in all, and
  // im2col's estimate then beats one tap per tile, 1.276x its folds). With one N tile the next
  // tile's gather takes as long as this tile's streams (ceil(K / R) rows a pixel each), so the
  // array keeps pace only where the streams do not wait for the gather's booked writes
  // (input_transfer_vectors): then one N tile takes the same cap (112x112x24 7x7 -> 16 on
  // 32 x 32: 1.313x its folds on one tap per tile, whose estimate beat a first M tile of all
  // but 50 x (3R - 2) pixels).
  std::uint64_t rows_m_cap(const Node& layer) const {
    return std::max(2 * std::uint64_t(R_), ceil_div(layer.gemm_m(), 8));
  }
  GemmPath gemm_path(const Node& layer, bool in_res, bool contiguous, bool out_res,
                     std::uint64_t limit) const {
    if (in_res || tap_by_tap(layer)) return GemmPath::kTaps;
    if (layer.kind != OpKind::kConv2d) return GemmPath::kRows;
    // The rows path reads whole pixels (im2col segments) as contiguous runs, which a concat
    // slice's are not: only the tap path reads it.
    if (!contiguous) return GemmPath::kTaps;
    // On-chip windows read each input element once from HBM instead of about kh times (or, with
    // packed taps, once per band image). They are taken when their tiles are no more than
    // im2col's full ones, when packing whole kernel rows is cheaper than im2col
    // (kernel_rows_per_tile), or, when a channel chunk fills at least half the array's rows, when
    // they are estimated no slower (path_cycles): C a little over a multiple of the rows (130 on
    // 128: 18 tiles against 10) or taps that do not pack (80 on 128: 9 against 6) are not.
    // Fewer channels keep im2col, whose tiles then are far fewer. In every case only
    // within_folds: the estimate counts im2col's first gather, which compute cycles leave out,
    // and taps faster over the whole layer by it streamed past the folds (on 32 x 32, 23 or 28
    // channels a tap's last chunk, packing no second tap: 92x92x183 7x7 -> 60, 294 tiles
    // against 281, estimated 0.25 % faster, took 4,348,908 compute cycles and 4,415,186 in all,
    // im2col 4,156,656 and 4,399,406, folds 4,209,380; 102x102x220 11x11 -> 7, 847 against
    // 832: 7,169,050 and 7,217,507, im2col 7,043,470 and 7,273,479, folds 7,120,256; 69x69x311
    // 7x7 -> 37, 490 against 477: 3,889,658 and 3,950,874, im2col 3,786,593 and 3,997,848,
    // folds 3,876,102).
    const Taps g = taps_of(layer, false, contiguous);
    const TapPlan plan = taps_plan(layer, g, false, C_).plan;
    const bool whole_rows = !plan.images.empty() && plan.images[0].chans > layer.in.c;
    const std::uint64_t M = layer.gemm_m(), NT = ceil_div(layer.gemm_n(), C_);
    auto faster = [&](bool requests) {
      return path_cycles(layer, GemmPath::kTaps, contiguous, requests, out_res, limit) <=
             path_cycles(layer, GemmPath::kRows, contiguous, requests, out_res, limit);
    };
    // A tap path whose gather sends more HBM requests than its weight tiles stream rows (the
    // channel chunks of wide pixels, band_requests) is bound by them where nothing else binds
    // first (ideal memory: transfer_start 0): taken only where estimated no slower with the
    // requests counted (141x141x949 1x1 -> 12 at 256: 145,295 compute cycles by taps, 83,464
    // by im2col, folds 82,588). On DRAM presets im2col's gather measured slower (tpu_v1:
    // MobileNetV2 +0.7 %, scalesim_convnet +1.7 %).
    const bool requests_bind = transfer_start() == 0 &&
                               band_requests(g, plan, 0, M) > double(plan.ktiles.size() * NT * M);
    const bool fills =
        within_folds(layer, plan.ktiles.size()) &&
        (requests_bind ? faster(true)
                       : plan.ktiles.size() <= ceil_div(dense_k(layer), R_) || whole_rows ||
                             (2 * std::uint64_t(layer.in.c) >= R_ && faster(false)));
    if (fills && layer.in.w + 2 * std::uint64_t(layer.padding) <= kMaxCount &&
        gemm_staging(layer, GemmPath::kTaps, false, contiguous, out_res, 1) <= limit) {
      return GemmPath::kTaps;
    }
    return GemmPath::kRows;
  }
  // Two slots of `pixels` pixels (all their chunks, for a row op) for each operand (inputs and
  // output) in HBM, and a norm's parameter rows.
  std::uint64_t eltwise_staging(const Node& layer, const std::vector<bool>& in_res, bool out_res,
                                std::uint64_t pixels) const {
    const std::uint64_t slot = 2 * pixels * row_chunks(layer);
    std::uint64_t need = (out_res ? 0 : slot) + param_rows(layer) * row_chunks(layer);
    for (bool r : in_res) need += r ? 0 : slot;
    return need;
  }
  std::uint64_t pool_staging(const Node& layer, bool in_res, bool out_res,
                             std::uint64_t ob) const {
    const std::uint64_t in_h = (ob - 1) * layer.stride + layer.kernel_h;
    const std::uint64_t in_w = layer.in.w + 2 * std::uint64_t(layer.padding);
    return (in_res ? 0 : 2 * in_h * in_w) + (out_res ? 0 : 2 * ob * layer.out.w);
  }
  // UB rows below a GEMM node's input slots: the two weight slots of R rows and half a slot
  // of spacing (see tile_gemm); none when weight tiles go through the MXU's weight FIFO.
  std::uint64_t weight_rows() const { return fifo_ ? 0 : 2 * std::uint64_t(R_) + R_ / 2; }
  // The memory planner's question: the fewest staging rows node i needs with its inputs and
  // output resident or not, its inputs' pixels in HBM contiguous or not (see memory_plan.h).
  std::uint64_t min_staging(std::size_t i, const std::vector<bool>& in_res,
                            const std::vector<bool>& in_contiguous, bool out_res) const {
    const Node& layer = model_.nodes[i];
    if (layer.kind == OpKind::kTensorMatmul) {
      // Both operands and the output in HBM: per head, a channel slice of a and of b.
      if (in_res[0] || in_res[1] || out_res) return kNever;
      return gemm_staging(layer, GemmPath::kRows, false, in_contiguous[0], false, 1);
    }
    if (is_gemm(layer.kind)) {
      const bool contiguous = in_contiguous[0];
      if ((in_res[0] && layer.kind != OpKind::kConv2d && (layer.in.h != 1 || layer.in.w != 1)) ||
          !resident_ok(layer, in_res[0], out_res) ||
          (in_res[0] && prefers_hbm_input(layer, contiguous))) {
        return kNever;
      }
      return gemm_staging(layer, gemm_path(layer, in_res[0], contiguous, out_res, kNever),
                          in_res[0], contiguous, out_res, 1);
    }
    if (is_eltwise(layer.kind)) {
      // Interleaved heads are gathered into per-head blocks by DMA (lower_eltwise).
      if (layer.causal && layer.heads > 1 && (in_res[0] || out_res)) return kNever;
      return eltwise_staging(layer, in_res, out_res, 1);
    }
    if (layer.kind == OpKind::kSlice) return out_res ? 0 : layer.out.w;  // an image row's copy
    // A transpose copies HBM to HBM through staging: one output row (an input column) at least.
    if (layer.kind == OpKind::kTranspose) return out_res ? kNever : layer.out.w;
    return pool_staging(layer, in_res[0], out_res, 1);
  }
  void emit_zero_border(const UbTensor& t);

  GemmTiling tile_gemm(const Node& layer, const Placement& in, const Placement& out,
                       std::uint64_t limit) const;
  void lower_gemm(const Node& layer, const Placement& in, const Placement& out,
                  const GemmTiling& tl, std::uint64_t weights, const Values* w, const Requant& q,
                  const std::vector<std::uint32_t>* bias);
  void emit_weight_tile(const GemmTiling& tl, std::uint64_t weights, std::uint64_t j);
  // Model parallelism (CoreShare): this core's N tiles of a node's tiling, and the barrier
  // after a node whose instructions begin at `node_begin`.
  GemmTiling n_share(const GemmTiling& tl) const;
  // `always`: also after the last node (a K split's partials meet before its reduction).
  void emit_barrier(std::size_t node_begin, bool always = false);
  // Marks the last HBM store on each DMA engine since `begin` to signal node_stored and emits
  // nops waiting for all but one of those signals; returns whether one is left for the
  // caller's next instruction to wait on.
  bool await_last_stores(std::size_t begin);
  // Model parallelism by K (CoreShare::k_split): whether node i splits K over the cores (a
  // dense layer or matmul with stored weights), this core's K tiles [kt0, kt1) of KT, its share
  // of a node's tiling, and the reduction after the partial sums: the cores meet, then core c
  // sums every core's raw partials of its N tiles (CoreShare::part) and requantises them.
  bool k_split_node(std::size_t i) const;
  std::pair<std::uint64_t, std::uint64_t> k_range(std::uint64_t KT, std::uint32_t core) const;
  GemmTiling k_share(const GemmTiling& tl, std::uint64_t limit) const;
  // Returns where the reduction's instructions begin (after the cores meet).
  std::size_t emit_k_reduction(const Node& layer, const Placement& out, const Requant& q,
                               const std::vector<std::uint32_t>* bias, std::size_t node_begin);
  // Pipeline (PipelineStage): whether node i runs on this core, the next node that does after
  // i (nodes.size() if none), and the hand-over to the next stage after a run of this core's
  // nodes whose instructions begin at `run_begin`.
  bool runs_here(std::size_t i) const {
    return stage_.stage_of.empty() || stage_.stage_of[i] == stage_.core;
  }
  std::size_t next_here(std::size_t i) const {
    while (++i < model_.nodes.size() && !runs_here(i)) {}
    return i;
  }
  void emit_stage_handover(std::size_t run_begin);
  void emit_stage_wait() {
    stage_wait_ = false;
    Instruction nop;
    nop.op = Opcode::kNop;
    nop.wait = bit(kSemPeersDone);
    emit(nop);
  }
  // The DMA staging weight tile (t, k) of a node at UB row `ub` (0 for a weight FIFO's next
  // entry): K_t rows of N_t elements from its stored tiles, or from a tensor matmul's b in
  // place (K_t pixels of its head's N_t channels, or transposed N_t pixels of K_t channels).
  DmaFields weight_source(const GemmTiling& tl, std::uint64_t weights, std::uint64_t t,
                          std::uint64_t k, std::uint64_t ub) const;
  // UB row of the weight slot of weight tile g (counted over the program).
  std::uint64_t weight_slot(std::uint64_t g) const { return g % 2 ? R_ : 0; }
  void lower_pool(const Node& layer, const Placement& in, const Placement& out,
                  std::uint64_t limit, const Requant& q);
  void lower_eltwise(const Node& layer, const std::vector<const Placement*>& in,
                     const Placement& out, std::uint64_t limit, const Requant& q, const Values* w);
  // A norm's parameters: gamma (and beta), each in row_chunks() UB rows.
  static std::uint64_t param_rows(const Node& layer) {
    return layer.kind == OpKind::kLayerNorm ? 2 : layer.kind == OpKind::kRmsNorm ? 1 : 0;
  }
  // UB rows per pixel a VOP row op (softmax, the norms) reduces over: its channel chunks, all
  // in one instruction; element-wise nodes take one chunk per instruction.
  std::uint64_t row_chunks(const Node& layer) const {
    return vop_reduces(vop_kind(layer.kind)) ? ceil_div(layer.out.c, cw_) : 1;
  }
  static VopKind vop_kind(OpKind kind) {
    switch (kind) {
      case OpKind::kMul:
        return VopKind::kMul;
      case OpKind::kSoftmax:
        return VopKind::kSoftmax;
      case OpKind::kLayerNorm:
        return VopKind::kLayerNorm;
      case OpKind::kRmsNorm:
        return VopKind::kRmsNorm;
      default:
        return VopKind::kMap;
    }
  }
  void lower_copy(const Placement& from, const HbmTensor& to, std::uint64_t limit);
  void lower_transpose(const Node& layer, const HbmTensor& from, const HbmTensor& to,
                       std::uint64_t limit);
  void lower_slice_to_ub(const HbmTensor& from, const UbTensor& to);

  struct Handoff {
    std::size_t producer;
    std::uint32_t sem;
    Unit waiter;
  };

  const Graph& model_;
  const Config& config_;
  const CompileOptions& options_;
  const bool data_;
  const std::uint32_t eb_;
  const std::uint32_t R_, C_;
  const std::uint32_t cw_;  // channels per UB row of a resident tensor
  const std::uint64_t ub_rows_, acc_rows_;
  // Weight tiles go HBM -> weight FIFO -> MXU (mxu.weight_fifo_tiles >= 2), not through the UB.
  const bool fifo_;
  // GEMM output stores on DMA engine kStoreEngine (core.dma_engines >= 2), not engine 0.
  const bool store_engine_;
  // DMA engines that run the weight FIFO fills (kFirstWeightEngine on), 0: engine 0 runs them.
  const std::uint32_t weight_engines_;
  const CoreShare share_;
  const PipelineStage& stage_;
  bool stage_wait_ = false;  // the next instruction but a weight fill waits (peers_done)

  MemoryPlan plan_;
  Program program_;
  std::vector<Handoff> handoffs_;
  // The last DMA (engine 0), store (engine kStoreEngine) and vector instructions, and the DMA
  // and store the last staging barrier waited for.
  std::optional<std::size_t> last_dma_, last_store_dma_, last_vector_, barrier_dma_,
      barrier_store_dma_;
  // The engine-0 transfer a GEMM node's first weight load last waited for (weight engines).
  std::optional<std::size_t> weights_after_dma_;
  // The weight tile stream: tiles whose load was emitted, and each LOAD_WEIGHTS's index.
  std::uint64_t weight_dmas_ = 0;
  // Weight FIFO fills and reads emitted so far, per MXU.
  std::array<std::uint64_t, kMaxCompilerMxus> fifo_fills_{}, fifo_reads_{};
  std::vector<std::size_t> load_weights_at_;
  std::vector<GemmTiling> tilings_;  // per node, from the tiling pass
  std::vector<std::uint64_t> share_macs_;  // per GEMM node, this core's MACs (CoreShare)
  std::vector<GemmTiling> whole_;          // per node split by K, the whole node's tiling
  std::vector<std::uint64_t> partials_;    // per node split by K, HBM of core 0's partials
  std::size_t layer_index_ = 0;
  const Node* layer_ = nullptr;
};

Program Lowerer::run() {
  program_.dtype = model_.dtype;
  program_.array_rows = R_;
  program_.array_cols = C_;
  program_.semaphore_names.assign(kNumSemaphores, "");
  program_.semaphore_names[kSemXReady] = "x_ready";
  program_.semaphore_names[kSemXFree] = "x_free";
  program_.semaphore_names[kSemWReady] = "w_ready";
  program_.semaphore_names[kSemWFree] = "w_free";
  program_.semaphore_names[kSemAccReady] = "acc_ready";
  program_.semaphore_names[kSemAccReadyOdd] = "acc_ready_odd";
  program_.semaphore_names[kSemStagingFree] = "staging_free";
  program_.semaphore_names[kSemInputReady] = "input_ready";
  program_.semaphore_names[kSemBorderReady] = "border_ready";
  program_.semaphore_names[kSemFirstInput] = "first_input";
  program_.semaphore_names[kSemAccFree] = "acc_free";
  program_.semaphore_names[kSemOutReady] = "out_ready";
  program_.semaphore_names[kSemOutFree] = "out_free";
  program_.semaphore_names[kSemPoolReady] = "pool_ready";
  program_.semaphore_names[kSemPoolFree] = "pool_free";
  program_.semaphore_names[kSemLayerDone] = "layer_done";
  if (store_engine_) {
    program_.semaphore_names[kSemStoreReady] = "store_ready";
    program_.semaphore_names[kSemStoreFree] = "store_free";
    program_.semaphore_names[kSemStoresDone] = "stores_done";
    program_.semaphore_names[kSemStagingFreeStores] = "staging_free.1";
  }
  if (share_.cores > 1 || !stage_.stage_of.empty()) {
    program_.semaphore_names[kSemNodeStored] = "node_stored";
    program_.semaphore_names[kSemPeersDone] = "peers_done";
  }
  const std::uint64_t mxus = std::min<std::uint64_t>(config_.core.mxus, kMaxCompilerMxus);
  for (std::uint64_t u = 1; u < mxus && fifo_; ++u) {
    static constexpr const char* kNames[] = {"x_ready",       "x_free",   "acc_ready",
                                             "acc_ready_odd", "acc_free", "go"};
    for (std::uint32_t s = 0; s < kMxuSemaphores; ++s) {
      program_.semaphore_names[mxu_sem(u, MxuSemaphore(s))] =
          std::string(kNames[s]) + "." + std::to_string(u);
    }
  }
  if (model_.nodes.size() > kMaxLayer + 1) {
    throw CompileError(model_.source + ": " + std::to_string(model_.nodes.size()) +
                       " nodes exceed the LAYER instruction's limit of " +
                       std::to_string(kMaxLayer + 1));
  }

  // Data and the reference: the requantisers come from the reference's calibration.
  GraphData data;
  Evaluation reference;
  std::vector<Requant> requant;
  const auto progress = [&](const std::string& what) {
    if (options_.progress) options_.progress(what);
  };
  if (data_) {
    progress("generating data");
    data = generate_data(model_, options_.seed.value_or(model_.seed));
    progress("computing the reference outputs");
    reference = evaluate(model_, data);
    requant = reference.requant;
  } else {
    requant = requant_from_shapes(model_);
  }
  // Split cores read each other's activations: all of them go through HBM.
  plan_ = plan_memory(model_, config_, ub_rows_,
                      options_.resident_activations && share_.cores == 1 &&
                          stage_.stage_of.empty(),
                      [&](std::size_t i, const std::vector<bool>& in_res,
                          const std::vector<bool>& in_contiguous, bool out_res) {
                        return min_staging(i, in_res, in_contiguous, out_res);
                      });
  program_.hbm_bytes = plan_.hbm_bytes;
  // A K split's raw partial sums: per node, every core's M x N words, after the plan (the
  // same addresses on every core), each starting a burst like the plan's tensors.
  partials_.assign(model_.nodes.size(), 0);
  const std::uint64_t align = std::max<std::uint64_t>(64, config_.hbm.burst_bytes);
  for (std::size_t i = 0; i < model_.nodes.size(); ++i) {
    if (!k_split_node(i)) continue;
    partials_[i] = ceil_div(program_.hbm_bytes, align) * align;
    program_.hbm_bytes = partials_[i] + std::uint64_t(share_.cores) * model_.nodes[i].gemm_m() *
                                            model_.nodes[i].gemm_n() * 4;
  }
  if (program_.hbm_bytes > config_.hbm.capacity_bytes || program_.hbm_bytes > kMaxHbmAddress + 1) {
    // The largest tensor in HBM, so an oversized input (a KV cache) is named.
    TensorId largest = 0;
    for (TensorId t = 0; t < model_.tensors.size(); ++t) {
      if (plan_.root[t] == t && !plan_.tensors[t].resident &&
          plan_.tensors[t].hbm.bytes() > plan_.tensors[largest].hbm.bytes()) {
        largest = t;
      }
    }
    // A graph input (a KV cache) is named with the first node that reads it.
    const Tensor& t = model_.tensors[largest];
    const std::string reader =
        t.producer < 0 && !t.consumers.empty()
            ? ", read by node " + std::to_string(t.consumers[0]) + " '" +
                  model_.nodes[t.consumers[0]].name + "'"
            : "";
    throw CompileError(model_.source + ": model needs " + std::to_string(program_.hbm_bytes) +
                       " bytes of HBM but hbm.capacity_bytes = " +
                       std::to_string(config_.hbm.capacity_bytes) +
                       "; it would fit with hbm.capacity_bytes >= " +
                       std::to_string(program_.hbm_bytes) + " (largest tensor '" + t.name +
                       "', " + std::to_string(plan_.tensors[largest].hbm.bytes()) + " bytes" +
                       reader + ")");
  }
  if (data_) write_inputs(data);

  // Tiling pass: every GEMM node's mapping, before any is emitted (a node prefetches the next
  // one's first weight tile).
  tilings_.assign(model_.nodes.size(), GemmTiling());
  share_macs_.assign(model_.nodes.size(), 0);
  whole_.assign(model_.nodes.size(), GemmTiling());
  for (layer_index_ = 0; layer_index_ < model_.nodes.size(); ++layer_index_) {
    const Node& layer = model_.nodes[layer_index_];
    layer_ = &layer;
    if (!is_gemm(layer.kind)) continue;
    tilings_[layer_index_] = tile_gemm(layer, plan_.tensors[layer.inputs[0]],
                                      plan_.tensors[layer.output],
                                      plan_.staging_limit[layer_index_]);
    if (share_.k_split) {
      // This core's useful MACs: the node's in proportion to its K tiles' rows; a node not
      // split by K runs on core 0.
      const GemmTiling& whole = tilings_[layer_index_];
      const std::uint64_t macs = layer.macs();
      if (!k_split_node(layer_index_)) {
        share_macs_[layer_index_] = share_.core == 0 ? macs : 0;
        continue;
      }
      const auto [kt0, kt1] = k_range(whole.KT, share_.core);
      share_macs_[layer_index_] = macs * kt1 / whole.KT - macs * kt0 / whole.KT;
      whole_[layer_index_] = whole;
      tilings_[layer_index_] = k_share(whole, plan_.staging_limit[layer_index_]);
      tilings_[layer_index_].partials = partials_[layer_index_];
    } else if (share_.cores > 1) {
      // This core's useful MACs: the node's in proportion to its columns (the columns before
      // its share and through it, so that the cores' shares add up to the node's).
      const GemmTiling& whole = tilings_[layer_index_];
      const auto [nt0, nt1] = share_.part(whole.NT);
      std::uint64_t before = 0, through = 0, all = 0;
      for (std::uint64_t nt = 0; nt < whole.NT; ++nt) {
        all += whole.ntiles[nt].nts;
        if (nt < nt0) before = all;
        if (nt < nt1) through = all;
      }
      const std::uint64_t macs = layer.macs();
      share_macs_[layer_index_] = macs * through / all - macs * before / all;
      tilings_[layer_index_] = n_share(whole);
    }
  }

  std::vector<bool> border_zeroed(model_.tensors.size(), false);
  std::size_t run_begin = 0;  // pipeline: the instruction opening this core's run of nodes
  for (layer_index_ = 0; layer_index_ < model_.nodes.size(); ++layer_index_) {
    const Node& layer = model_.nodes[layer_index_];
    layer_ = &layer;
    if (!runs_here(layer_index_)) continue;
    progress("emitting node " + std::to_string(layer_index_ + 1) + " of " +
             std::to_string(model_.nodes.size()));
    Instruction tag;
    tag.op = Opcode::kLayer;
    tag.layer = std::uint16_t(program_.layers.size());
    std::size_t node_begin = program_.instructions.size();
    emit(tag);
    // A pipeline stage's run of nodes (one micro-batch) starts once the stage before has
    // stored what it reads.
    const bool run_starts = !stage_.stage_of.empty() &&
                            (layer_index_ == 0 || !runs_here(layer_index_ - 1));
    if (run_starts) run_begin = node_begin;
    if (run_starts && stage_.core > 0) {
      if (stage_wait_) emit_stage_wait();  // the run before emitted nothing that waited
      stage_wait_ = true;
    }
    // A resident input's zero border is cleared before its first reader.
    for (TensorId id : layer.inputs) {
      const TensorId r = plan_.root[id];
      const Placement& p = plan_.tensors[r];
      if (is_view(layer.kind) || !p.resident || p.ub.pad == 0 || border_zeroed[r]) continue;
      border_zeroed[r] = true;
      emit_zero_border(p.ub);
      // Its first MATMUL reads the zeroed border: its first weight load waits for these loads
      // (its weights may have reached the UB earlier).
      if (is_gemm(layer.kind)) hand_off(kSemBorderReady, Unit::kWeightLoad);
    }

    // Split over cores (CoreShare): a GEMM node without N tiles here (or, under a K split, a
    // GEMM node that does not split K: core 0 runs it) only takes part in the barrier; every
    // other node runs its share, which may be empty.
    // (Core 0 has N tiles of every GEMM node: CoreShare::part rounds its share up.)
    if (share_.cores > 1 && share_.core != 0 && is_gemm(layer.kind) &&
        (tilings_[layer_index_].NT == 0 || (share_.k_split && !k_split_node(layer_index_)))) {
      emit_barrier(node_begin);
      LayerInfo info;
      info.name = layer.name;
      info.kind = to_string(layer.kind);
      info.macs = share_macs_[layer_index_];
      program_.layers.push_back(std::move(info));
      continue;
    }
    // A pooling or add node's first vector instruction may write staging rows before any DMA
    // of its own: it waits until earlier nodes' transfers are done with them (a GEMM's vector
    // work waits for its own weight loads, which come after those transfers in DMA order),
    // those of each DMA engine the compiler uses. A node without vector work (a slice) leaves
    // its hand-off pending: the later DMA replaces it (one engine's transfers finish in order).
    if (!is_view(layer.kind) && last_dma_ && last_dma_ != barrier_dma_) {
      hand_off(kSemStagingFree, Unit::kVector, last_dma_);
      barrier_dma_ = last_dma_;
    }
    if (!is_view(layer.kind) && last_store_dma_ && last_store_dma_ != barrier_store_dma_) {
      hand_off(kSemStagingFreeStores, Unit::kVector, last_store_dma_);
      barrier_store_dma_ = last_store_dma_;
    }
    const Placement& in = plan_.tensors[layer.inputs[0]];
    const Placement& out = plan_.tensors[layer.output];
    // A GEMM reading a resident tensor: its first weight load (and so its first MATMUL) waits
    // until the vector unit, in order, has written it, since the weights may have reached the
    // UB before this node began.
    if (is_gemm(layer.kind) && in.resident && last_vector_) {
      hand_off(kSemInputReady, Unit::kWeightLoad, last_vector_);
    }
    const std::uint64_t limit = plan_.staging_limit[layer_index_];
    const Requant& q = requant[layer_index_];
    switch (layer.kind) {
      case OpKind::kMatmul:
      case OpKind::kTensorMatmul:
      case OpKind::kDense:
      case OpKind::kConv2d:
        // A K split whose share has no K tiles only takes part in the reduction.
        if (tilings_[layer_index_].KT > 0) {
          lower_gemm(layer, in, out, tilings_[layer_index_], plan_.weights[layer_index_],
                     data_ ? &data.weights[layer_index_] : nullptr, q,
                     data_ ? &reference.bias_words[layer_index_] : nullptr);
        }
        if (k_split_node(layer_index_)) {
          node_begin = emit_k_reduction(layer, out, q,
                                        data_ ? &reference.bias_words[layer_index_] : nullptr,
                                        node_begin);
        }
        break;
      case OpKind::kMaxPool2d:
      case OpKind::kAvgPool2d:
      case OpKind::kGlobalAvgPool2d:
        lower_pool(layer, in, out, limit, q);
        break;
      case OpKind::kAdd:
      case OpKind::kMul:
      case OpKind::kActivation:
      case OpKind::kSoftmax:
      case OpKind::kLayerNorm:
      case OpKind::kRmsNorm: {
        std::vector<const Placement*> ins;
        for (TensorId id : layer.inputs) ins.push_back(&plan_.tensors[id]);
        lower_eltwise(layer, ins, out, limit, q, data_ ? &data.weights[layer_index_] : nullptr);
        break;
      }
      case OpKind::kConcat:
        for (const Copy& c : plan_.copies[layer_index_]) lower_copy(plan_.tensors[c.from], c.to, limit);
        break;  // otherwise a view: producers and readers address the storage directly
      case OpKind::kReshape:
        break;
      case OpKind::kSlice: {
        // The input (never resident) at the slice's first pixel and channel, with the input's
        // own row and image strides.
        HbmTensor from = in.hbm;
        from.base += std::uint64_t(layer.x0) * in.hbm.pixel_bytes() + std::uint64_t(layer.c0) * eb_;
        if (out.resident) {
          lower_slice_to_ub(from, out.ub);
        } else {
          lower_copy(Placement{false, from, {}}, out.hbm, limit);
        }
        break;
      }
      case OpKind::kTranspose:
        lower_transpose(layer, in.hbm, out.hbm, limit);
        break;
      case OpKind::kLstm:
        fail("lstm was not expanded");
    }
    if (out.resident && !is_view(layer.kind)) {
      // The next DMA waits for this node's last vector instruction: only then may it overwrite
      // the staging rows (and resident borders) this node used. A GEMM reader's first MATMUL
      // needs a weight tile loaded by a later DMA, so it also sees the whole tensor.
      hand_off(kSemLayerDone, Unit::kDma);
    }

    emit_barrier(node_begin);
    if (!stage_.stage_of.empty() && next_here(layer_index_) != layer_index_ + 1) {
      emit_stage_handover(run_begin);
    }

    LayerInfo info;
    info.name = layer.name;
    info.kind = to_string(layer.kind);
    info.macs = share_.cores > 1 && is_gemm(layer.kind) ? share_macs_[layer_index_] : layer.macs();
    // Checked: every output that reaches HBM as whole pixels (a concat slice is checked as part
    // of the concat's output).
    if (!out.resident && out.hbm.ctot == layer.out.c) {
      const HbmTensor& h = out.hbm;
      info.output.base = h.addr(0, 0, 0);
      info.output.count0 = h.shape.w * h.shape.c;
      info.output.count1 = h.shape.h;
      info.output.stride1 = h.row_bytes();
      info.output.count2 = h.samples;
      info.output.stride2 = h.image_bytes();
      if (data_) {
        if (model_.dtype == DataType::kInt8) {
          info.expected_int8 = reference.expected[layer_index_].i8;
        } else {
          info.expected_fp32 = reference.expected[layer_index_].f32;
        }
      }
    }
    program_.layers.push_back(std::move(info));
  }
  Instruction halt;
  halt.op = Opcode::kHalt;
  emit(halt);

  return std::move(program_);
}

void Lowerer::write_inputs(const GraphData& data) {
  std::map<TensorId, std::vector<std::uint8_t>> images;
  for (TensorId id : model_.inputs) {
    const TensorId r = plan_.root[id];
    const HbmTensor& h = plan_.tensors[id].hbm;
    const HbmTensor& root = plan_.tensors[r].hbm;
    std::vector<std::uint8_t>& image = images[r];
    allocating("the memory image of '" + model_.tensors[r].name + "'", double(root.bytes()),
               [&] { image.resize(root.bytes(), 0); });
    const Values& v = data.inputs[id];
    std::uint64_t i = 0;
    for (std::uint64_t b = 0; b < h.samples; ++b) {
      for (std::uint32_t y = 0; y < h.shape.h; ++y) {
        for (std::uint32_t x = 0; x < h.shape.w; ++x) {
          std::uint8_t* p = image.data() + (h.addr(b, y, x) - root.base);
          for (std::uint32_t c = 0; c < h.shape.c; ++c, ++i) {
            if (eb_ == 1) {
              p[c] = std::uint8_t(v.i8[i]);
            } else {
              const std::uint16_t bits = fp32_to_bf16(v.f32[i]);
              std::memcpy(p + 2 * c, &bits, 2);
            }
          }
        }
      }
    }
  }
  for (auto& [r, bytes] : images) {
    add_segment(model_.tensors[r].name, plan_.tensors[r].hbm.base, std::move(bytes));
  }
}

// Zeroes the border rows of every chunk image of `t` from a zero region of HBM: each DMA row
// takes one zero element and the rest of the row is zero-filled. Per image: the top rows with
// the left border of the first row, the right + left borders between rows, and the right border
// of the last row with the bottom rows.
void Lowerer::emit_zero_border(const UbTensor& t) {
  const std::uint64_t p = t.pad, H = t.shape.h, W = t.shape.w, Wp = t.wp();
  const std::uint64_t edge = p * Wp + p;
  check_width(edge, kMaxCount, "zero border rows pad * (width + 2 pad) + pad (DMA elems)");
  check_width(Wp, kMaxCount, "padded input width (DMA ub_stride)");
  check_width(H, kMaxCount, "input height (DMA groups)");
  const std::uint64_t zeros = plan_.zeros;
  std::vector<DmaFields> pieces;
  auto piece = [&](std::uint64_t ub_row, std::uint64_t elems, std::uint64_t groups) {
    DmaFields d;
    d.hbm_addr = zeros;
    d.ub_row = std::uint32_t(ub_row);
    d.elems = std::uint16_t(elems);
    d.groups = std::uint16_t(groups);
    d.ub_stride = std::uint16_t(groups > 1 ? Wp : 1);
    d.pack = 1;
    pieces.push_back(d);
  };
  for (std::uint64_t i = 0; i < t.chunks() * t.samples; ++i) {
    const std::uint64_t r0 = t.base + i * t.image_rows();
    piece(r0, edge, 1);
    if (H > 1) piece(r0 + p * Wp + p + W, 2 * p, H - 1);
    piece(r0 + (p + H) * Wp - p, edge, 1);
  }
  // The consumer's first weight tile is loaded by a later DMA, so its MATMULs see the zeros.
  for (const DmaFields& d : pieces) emit(dma(Opcode::kDmaLoad, d, 0, 0));
}

GemmTiling Lowerer::tile_gemm(const Node& layer, const Placement& in, const Placement& out,
                              std::uint64_t limit) const {
  const bool conv = layer.kind == OpKind::kConv2d;
  const bool in_res = in.resident, out_res = out.resident;
  // Whether the input's pixels in HBM hold just its channels (not a concat's channel slice),
  // as the memory planner told min_staging (StagingQuery's in_contiguous).
  const bool contiguous = in_res || in.hbm.ctot == layer.in.c;
  const GemmPath path = gemm_path(layer, in_res, contiguous, out_res, limit);
  const bool taps = path == GemmPath::kTaps;
  const bool x_dma = !in_res;  // the input arrives in UB slots by DMA
  // The rows path reads whole pixels (im2col segments, flattened vectors) as contiguous runs.
  if (!taps && (!contiguous || (!conv && in.hbm.pad > 0))) {
    fail("reads '" + model_.tensors[layer.inputs[0]].name +
         "' from HBM as contiguous pixels, but it is a channel slice or carries a zero border; "
         "no tiling of this layer fits the unified buffer on the tap path");
  }
  const Taps g = taps_of(layer, in_res, contiguous);
  const bool tensor = layer.kind == OpKind::kTensorMatmul;
  // A tensor matmul's M and N are those of one part (one sample, one head).
  const std::uint64_t M = tensor ? std::uint64_t(layer.in.h) * layer.in.w : layer.gemm_m();
  const std::uint64_t K = dense_k(layer), N = layer.gemm_n() / layer.heads;
  // A resident output is written one channel chunk (N tile) per UB row; a transposed tile is
  // staged as N_t rows, at most a weight slot's (or FIFO entry's) R.
  const std::uint64_t nw = out_res || layer.transpose_b ? cw_ : C_;
  const std::uint64_t KR = ceil_div(K, R_);  // UB rows per input vector (rows path)
  // UB rows from one input vector to the next: the stepping stride when there are several M
  // tiles (decided below, once M tiles of the plain stride are known).
  std::uint64_t XS = input_row_stride(layer, false);
  const std::uint64_t row_bytes = std::uint64_t(config_.ub_row_elems()) * eb_;
  if (!resident_ok(layer, in_res, out_res)) {
    fail("a grouped conv's channel blocks do not align with the resident chunks of " +
         std::to_string(cw_) + " channels");
  }

  // K tiles: R-row slices of K, or the tap plan's tiles in K's (ky, kx, c) order; a grouped
  // conv of several blocks has its own plan, K tiles per N tile.
  const GroupMap gm = conv ? groups_of(layer) : GroupMap();
  const bool per_n = conv && gm.blocks > 1;
  const GroupedPlan tap_tiles = taps ? taps_plan(layer, g, in_res, nw) : GroupedPlan();
  const TapPlan& plan = tap_tiles.plan;
  std::vector<KTile> ktiles = plan.ktiles;
  if (!taps) {
    check_width(XS, kMaxMatmulStride,
                "UB rows per input vector about ceil(K / array.rows) (MATMUL ub_stride)");
    for (std::uint64_t k0 = 0; k0 < K; k0 += R_) {
      ktiles.push_back({k0, std::min<std::uint64_t>(R_, K - k0), 0, 0, 0});
    }
  }
  const std::uint64_t KT = per_n ? tap_tiles.KT : ktiles.size();
  // Every weight row of a one-block grouped conv feeds the ng columns of its group.
  std::vector<NTile> ntiles = tap_tiles.ntiles;
  for (std::uint64_t n0 = 0; !per_n && n0 < N; n0 += nw) {
    ntiles.push_back({n0, std::min(nw, N - n0), gm.groups});
  }
  const std::uint64_t NT = ntiles.size();

  const std::uint64_t min_need =
      gemm_staging(layer, path, in_res, contiguous, out_res, 1, 1, XS);
  if (min_need > limit) {
    const std::string input =
        !taps    ? "2 x " + std::to_string(XS) + " rows (one input vector of K = " +
                       std::to_string(K) + ", double-buffered)"
        : in_res ? std::string("no input rows (resident input)")
                 : "2 x " + std::to_string(band_slot_rows(layer, 1, contiguous)) +
                       " rows (the input band of one output pixel, double-buffered)";
    fail("needs " + input + " + " +
         (fifo_ ? std::string()
                : "2 x " + std::to_string(R_) + " (weight staging) + " +
                      std::to_string(R_ / 2) + " (bank spacing) + ") +
         "2 x 1 (output staging) = " + std::to_string(min_need) +
         " unified-buffer rows for the smallest tile (M_t = 1), but the unified buffer holds " +
         std::to_string(config_.ub_rows(model_.dtype)) + " rows of " +
         std::to_string(row_bytes) + " bytes (ub.capacity_bytes = " +
         std::to_string(config_.ub.capacity_bytes) +
         "); it would fit with ub.capacity_bytes >= " + std::to_string(min_need * row_bytes));
  }
  // With one K tile per output tile, tile l + 2 of an MXU would stream about when tile l's
  // results leave the array, and with two accumulator slots it would wait for tile l's
  // ACTIVATE, N_t + R - 1 + M_t + (vector latency) cycles after tile l's stream ends, once per
  // two tiles. A third slot is free by then when M_t exceeds that drain: the array streams
  // back to back.
  const std::uint64_t acc_slots = KT == 1 ? 3 : 2;
  if (acc_rows_ < acc_slots) {
    fail("needs " + std::to_string(acc_slots) + " accumulator rows (one output row per slot) "
         "but the accumulators hold " +
         std::to_string(config_.acc_rows()) + " (acc.capacity_bytes = " +
         std::to_string(config_.acc.capacity_bytes) +
         "); it would fit with acc.capacity_bytes >= " +
         std::to_string(acc_slots * std::uint64_t(C_) * 4));
  }
  // With one K tile per output tile each N tile's store reads as many UB rows as its stream,
  // and sends one request per HBM burst a pixel's segment touches: when the output's pixels
  // are not whole bursts (N = 257 int8), a full tile's segment straddles two, so the stores
  // (three requests a pixel for N tiles of 256 + 1, against two stream cycles) would pace the
  // array. Then lower_gemm stores the odd output tiles on engine 0 (whose gather writes one
  // UB row a pixel), and four output slots let a full tile's store (two requests a pixel)
  // overlap the next two ACTIVATEs: each engine is then about as busy as the array. The taps
  // path alike (a 1 x 1 conv, or taps packed into one K tile): 112x112x130 1x1 -> 257 on
  // 256 x 256 took 1.36x its folds with every store on engine 1.
  // (Only where the UB holds the two extra slots of the smallest tile.)
  const bool split = store_engine_ && weight_engines_ > 0 && KT == 1 && NT > 1 &&
                     !out_res && !tensor && out.hbm.pixel_bytes() % config_.hbm.burst_bytes != 0 &&
                     min_need + 2 <= limit;
  const auto out_slots = [&](std::uint64_t U) { return split && U == 1 ? 4 : 2 * U; };
  // The M tile with U MXUs: each has acc_slots accumulator slots, and the node out_slots(U)
  // output slots of m_tile rows.
  const auto m_tile_for = [&](std::uint64_t U) {
    std::uint64_t cap = std::min({M, acc_rows_ / (acc_slots * U), kMaxCount});
    if (options_.max_m_tile > 0) cap = std::min<std::uint64_t>(cap, options_.max_m_tile);
    if (!taps && x_dma && rows_capped(layer)) {
      cap = std::min(cap, rows_m_cap(layer));
    }
    std::uint64_t m_tile = 1;
    if (!taps) {
      const std::uint64_t fixed = weight_rows() + bias_rows(layer, config_, model_.dtype);
      const auto fitting = [&](std::uint64_t x_slots) {
        const std::uint64_t per_m = x_slots * XS + (out_res ? 0 : out_slots(U));
        return round_tile(layer, std::min(cap, (limit - fixed) / per_m));
      };
      // Two input slots, or three where the UB bounds the tile and the rows path has one N
      // tile per MXU: its gather then writes as many UB rows as the array streams, and with
      // two slots tile mt + 2's gather starts only when tile mt's last MATMUL completes,
      // R + N_t - 1 cycles after its stream, so the array waits about that drain once per two
      // tiles. A third slot hides it; it pays where those drains exceed the classic
      // schedule's fill and drain allowance, 3R - 2 per K tile (112x112x130 2x2 -> 64 on
      // 256 x 256: 14 tiles of 888 pixels, 39,821 compute cycles, folds 39,261; 23 tiles of
      // 555, 38,706). With many K tiles a tile the drain is a small share, and the smaller
      // tiles' streams meet the gather's writes more often (7x7x130 -> 8: +4 %).
      m_tile = fitting(2);
      if (x_dma && rows_capped(layer) && ceil_div(NT, U) == 1 &&
          ceil_div(M, m_tile) * (R_ + std::min<std::uint64_t>(N, C_) - 1) > KT * (3 * R_ - 2)) {
        m_tile = fitting(3);
      }
    } else {
      // The band a tile reads grows with the tile: take the largest tile that fits.
      auto fits = [&](std::uint64_t m) {
        const std::uint64_t mt = round_tile(layer, m);
        return gemm_staging(layer, path, in_res, contiguous, out_res, mt, U) +
                   (out_res ? 0 : (out_slots(U) - 2 * U) * mt) <=
               limit;
      };
      m_tile = round_tile(layer, largest_fitting(cap, fits));
    }
    // Only the first M tile's input load is not overlapped with the array. When one M tile fits,
    // two still pay if loading the second half of the input and reloading every weight tile (the
    // DMA engine's work under the first tile, one UB row or one im2col segment per cycle, plus a
    // quarter for contention) takes less than the first tile's array time, and each tile streams
    // enough rows to hide a weight load and the previous tile's drain. Otherwise the array would
    // wait for the DMA inside the layer: with the default single DMA write port, layers that
    // load about as many rows as they stream stay one tile. Only with one N tile, as tuned when
    // the ACTIVATEs of earlier N tiles took that write port for whole tiles (the vector unit
    // has its own port now; the rule was not re-tuned).
    // Without weight double buffering each M tile pays every fold's load and drain again.
    if (x_dma && config_.mxu.double_buffer_weights && NT == 1 && ceil_div(M, m_tile) == 1) {
      std::uint64_t longest = 0, reloads = 0;
      for (const KTile& k : ktiles) {
        longest = std::max(longest, k.kts);
        reloads += k.kts;
      }
      const std::uint64_t shortest = longest + std::min<std::uint64_t>(N, C_) + R_ - 1;
      const std::uint64_t in = taps ? band_slot_rows(layer, M, contiguous)
                                    : M * (conv ? std::max<std::uint64_t>(KR, layer.kernel_h) : KR);
      // Whole output rows per tile for a conv (few, long stores), rounding up.
      std::uint64_t half = ceil_div(M, 2);
      if (conv && half > layer.out.w) half = ceil_div(half, layer.out.w) * layer.out.w;
      if (half < M && M - half >= shortest && 5 * (in / 2 + reloads) <= 4 * (KT * M / 2)) {
        m_tile = half;
      }
    }
    // Even M tiles: a short last tile would leave the array idle behind its weight tiles.
    {
      const std::uint64_t even = ceil_div(M, ceil_div(M, m_tile));
      const std::uint64_t ow = layer.out.w;
      m_tile = conv && m_tile % ow == 0 ? ceil_div(even, ow) * ow : even;
    }
    return m_tile;
  };
  // How many MXUs could share the node's N tiles (below).
  const std::uint64_t most =
      fifo_ ? std::min<std::uint64_t>({config_.core.mxus, NT, kMaxCompilerMxus,
                                       acc_rows_ / acc_slots,
                                       config_.ub.read_ports})
            : 1;
  // The rows path's input layout, one rule so that a stream (granted whole, one UB row a
  // cycle) never crosses the banks of the UB's other one-row-a-cycle accesses (the DMA's
  // writes, the ACTIVATEs, the stores): a matmul's input K chunk by K chunk (k_major, below:
  // each stream reads consecutive rows) where that layout is allowed (k_major_ok), else rows
  // whole at the stepping stride (input_row_stride: the stream's bank steps by one a cycle).
  // With one N tile and several M tiles (the next tile's input about as many UB rows as the
  // streams) chunk by chunk only with whole chunks each a transfer of its own (ideal memory,
  // one core): at 128 with a partial chunk its streams waited for their input (6000 x 2000
  // -> 40: 116,605 compute cycles against the stepping stride's 96,439, folds 102,112;
  // 20000 x 4500 -> 64: 1,003,844 against 722,678; 12100 x 1170 -> 8: 157,349 against
  // 121,717), and so with `simple` memory, one transfer of the chunks (3136 x 3072 -> 8:
  // 106,842 against 78,819; 12544 x 3072 -> 100: 503,025 against 324,540); whole chunks a
  // transfer each were ahead (3136 x 1024 -> 100 at 256: 12,900 against 13,332). With
  // several N tiles the stepping stride still met the ACTIVATEs (1024 x 1000 -> 3072 at 256:
  // 1.125 x the bound, chunk by chunk within 1.01).
  // The stepping stride with more than one M tile (of the plain stride), whose next tile's
  // input streams in beside the array, or on one MXU when its spare rows cost no M tile: a
  // second one would move half the input's load into the compute span (a 2x2 conv,
  // 112x112x24 -> 64 on 32 x 32: 73,990 -> 75,887 compute cycles, over its folds, though
  // 135,604 -> 106,754 in all).
  const bool any_order = config_.hbm.preset == "ideal" || config_.hbm.preset == "simple";
  const bool free_transfers = transfer_start() == 0 && config_.chip.cores == 1;
  bool k_major_ok = false;
  if (!taps) {
    const std::uint64_t parts = tensor ? std::uint64_t(layer.samples) * layer.heads : 1;
    const auto m_tiles = [&] { return ceil_div(M, m_tile_for(1)) * parts; };  // at XS
    const std::uint64_t plain = m_tiles();
    const std::uint64_t stepping = input_row_stride(layer, true);
    const bool whole = K % R_ == 0;
    k_major_ok = !conv && !tensor && KR > 1 && any_order &&
                 (NT == 1 && plain > 1 ? whole && free_transfers : whole || free_transfers);
    if (!k_major_ok && (most == 1 || plain > 1) && stepping <= kMaxMatmulStride &&
        gemm_staging(layer, path, in_res, contiguous, out_res, 1, 1, stepping) <= limit) {
      const std::uint64_t plain_stride = XS, banks = config_.ub.banks;
      XS = stepping;
      if (plain == 1 && m_tiles() > 1) {
        // Kept to one M tile, at the least odd stride that keeps it there (ub.banks even):
        // the stream's bank then steps by an odd count a cycle, an even one against the
        // UB's one-row-a-cycle bursts, so their relative phase keeps its parity and a stream
        // starting in the other parity never meets them; at an even stride it meets them
        // every ub.banks cycles, and a burst booked before it (an earlier N tile's ACTIVATE,
        // writing while the next N tile streams) holds it back until the burst ends, as that
        // burst loses a cycle at each meeting. 195x195x2 5x5 stride 2 -> 60 on 32 x 32 (2 UB
        // rows a pixel, 2 N tiles): its last stream waited 347 cycles for the first N tile's
        // ACTIVATE at a stride of 2, none at 3: 37,271 -> 36,925 compute cycles, folds 37,240.
        XS = banks % 2 == 0 && plain_stride % 2 == 0 ? plain_stride + 1 : plain_stride;
        if (m_tiles() > 1) XS = plain_stride;
      }
      // Where the stepping stride's spare rows leave the UB room only for M tiles under R rows,
      // each stream is shorter than the next weight tile's load (R rows) and the array waits
      // out the difference every K tile; then the least stride 1 modulo the largest power of
      // two under ub.banks that gives R (an odd stride still takes every bank, its stream
      // meeting a run of writes stepping by one only in banks / step of its phases, where the
      // stepping stride meets it in one): 102x102x220 11x11 -> 7 at 256 x 256, 104 UB rows a
      // pixel, M tiles of 184 pixels at the stride of 129, 276 at 113 (1,224,715 -> 974,724
      // compute cycles with one pixel a transfer, folds 959,920).
      for (std::uint64_t step = banks / 2; XS == stepping && step >= 2 && m_tile_for(1) < R_;
           step /= 2) {
        XS = KR + (step + 1 - KR % step) % step;
        if (m_tile_for(1) < R_) XS = stepping;
      }
    }
  }
  // How many MXUs share the node's N tiles, at most one per UB read port (more could not
  // stream at once). More MXUs mean smaller M tiles (the slots are per MXU); a count is taken
  // when its M tiles are no more than with one MXU, else when it has fewer estimated cycles:
  // each MXU's streams (max(M_t, R) per weight tile) against the one DMA engine, which moves
  // one transfer at a time: per M tile every weight tile (reloaded once per M tile), the input
  // and the stores, each costing its rows (one a cycle) or its bytes at the memory's peak,
  // whichever is more, plus hbm.latency_ns to start.
  std::uint64_t U = 1, m_tile = m_tile_for(1);
  const double peak = config_.hbm_peak_bytes_per_cycle();
  const double start = transfer_start();
  const auto transfer = [&](double rows, double bytes) {
    return std::max(rows, std::isinf(peak) ? 0 : bytes / peak) + start;
  };
  const auto estimate = [&](std::uint64_t u, std::uint64_t m) {
    const double mt = double(ceil_div(M, m)), row_bytes = double(config_.ub_row_elems() * eb_);
    const double streams = mt * double(ceil_div(NT, u) * KT * std::max<std::uint64_t>(m, R_));
    const double in_rows = x_dma ? double(taps ? band_slot_rows(layer, m, contiguous) : m * KR) : 0;
    const double dma = mt * (double(NT * KT) * transfer(R_, double(R_) * C_ * eb_) +
                             (x_dma ? transfer(in_rows, in_rows * row_bytes) : 0) +
                             (out_res ? 0 : double(NT) * transfer(m, double(m) * C_ * eb_)));
    return std::max(streams, dma);
  };
  for (std::uint64_t u = 2; u <= most; ++u) {
    if (gemm_staging(layer, path, in_res, contiguous, out_res, 1, u) > limit) break;
    const std::uint64_t m = m_tile_for(u);
    if (ceil_div(M, m) <= ceil_div(M, m_tile_for(1)) || estimate(u, m) < estimate(U, m_tile)) {
      U = u;
      m_tile = m;
    }
  }
  const std::uint64_t MT = ceil_div(M, m_tile);
  const std::uint64_t xs =
      taps ? (in_res ? 0 : band_slot_rows(layer, m_tile, contiguous)) : m_tile * XS;

  if (conv && !taps) {
    check_width(std::uint64_t(layer.kernel_w) * layer.in.c, kMaxCount,
                "im2col segment kernel_w * in_channels (DMA elems)");
    check_width(layer.kernel_h, kMaxCount, "im2col segments per patch kernel_h (DMA segs)");
  } else if (!taps) {
    check_width(K, kMaxCount, "input row of K elements (DMA elems)");
  }
  // Staging from the bottom of the UB: the two weight slots (shared by every GEMM node, so the
  // next node's first tile can load while this one runs), two input slots, two output slots.
  // The input slots start half a weight slot further on, so that where the bank count divides
  // the weight slots (2R rows), input row i and weight row i sit in different banks.
  GemmTiling tl;
  tl.path = path;
  tl.g = g;
  tl.plan = plan;
  tl.ktiles = ktiles;
  tl.per_n = per_n;
  tl.ntiles = ntiles;
  tl.M = M;
  tl.K = K;
  tl.N = N;
  tl.NT = NT;
  tl.mxus = U;
  tl.KR = KR;
  // A matmul's input from HBM sits in its slot K chunk by K chunk (chunk k of the M tile's row
  // m in UB row x + k m_tile + m; k_major_pieces), so its streams read one UB row a cycle: row
  // by row (KR rows per input vector) a stream would read every KR-th row, and the vector
  // unit's and DMA's row-by-row accesses, granted first, then meet it in some bank within
  // ub.banks rows, so the stream (granted whole) waits for them to end; with both one row a
  // cycle they meet only in one relative phase, which a stream starting a cycle later avoids
  // (with many N tiles each tile's second stream waited for the last tile's ACTIVATE or store:
  // M = 512, K = 256, N = 3072 at 128, ideal memory, 30,628 compute cycles against a bound of
  // 24,831). (im2col gathers a pixel's kernel rows as one group: its patches stay row by row.)
  // Only where the memory serves requests alike in any order: the gather then reads each input
  // row's bursts a chunk at a time, striding over the rows, which on a DRAM preset keeps to
  // fewer channels than a row-by-row sweep (hbm2: SCALE-Sim's transformer FF_A_0, M = 128,
  // K = 2048, its first input load 1,700 cycles longer than the 300 it saves the streams; zoo
  // HBM configs up to 12 % slower). Where transfers start at no cost (ideal memory, one
  // core) each chunk is a transfer of its own (k_transfers), which writes its rows in order
  // and lets the next M tile's input go out in shares between the MATMULs (M = 3136, K = 3072,
  // N = 256 at 128: 182,112 compute cycles in one transfer, 150,784 by chunks, bound 150,783);
  // otherwise one transfer of the whole chunks, and only with K a multiple of R: a second one,
  // for the partial chunk, pays the memory's latency again (tpu_v4, inception_block's fc: +198
  // cycles), or on several cores the interconnect's round trip. One MXU unless transfers start
  // at no cost: several stream different K tiles side by side, which row by row sit in
  // different banks (weight_tile's first_k), chunk by chunk in the same one when ub.banks
  // divides m_tile (tpu_v4, lab_dense_batch256: +2.5 %); with ideal memory four MXUs beat that
  // chunk by chunk (M = 8192, K = N = 2048 at 128: 613,199 -> 524,674 compute cycles). (With
  // M_t = 1 both orders are one.)
  // Not a tensor matmul, whose rows are a head's slice of wider pixels (GPT-2 prefill's
  // attn_context on tpu_v5e: its DMA 4,000 cycles longer, +2,026 cycles a layer). With one N
  // tile and several M tiles only whole chunks a transfer each (k_major_ok).
  tl.k_major = k_major_ok && m_tile > 1 && (U == 1 || free_transfers);
  tl.k_transfers = tl.k_major && free_transfers;
  if (tl.k_major) {
    check_width(m_tile, field_max(Opcode::kDmaLoad, "segs"), "input rows per M tile (DMA segs)");
  }
  tl.x_stride = XS;
  tl.KT = KT;
  tl.m_tile = m_tile;
  tl.MT = MT;
  // More accumulator slots than the two or three the M tile was sized for, as many as cover
  // a tile's turnaround (as the accumulators hold, up to one per output tile of an MXU): a
  // tile's slot is free only once its results have left the array (N_t + R - 1 cycles after
  // its last stream) and its ACTIVATE has run, so with short streams (M_t well below N_t + R)
  // a few slots paced the array by that drain and the vector unit instead of by max(M_t, K_t)
  // per weight tile. The turnaround counts the tile's streams, the drain and the ACTIVATE's
  // work and latency (sim/README.md, "Vector unit"); long streams keep two or three slots.
  // The completion semaphores then tell tiles apart by width (below), not by parity: with more
  // than two slots a narrow tile may complete before a wide one two tiles earlier.
  std::uint64_t per_tile = 0;
  for (std::uint64_t kt = 0; kt < KT; ++kt) {
    per_tile += std::max(m_tile, tl.ktile(0, kt).kts);
  }
  const std::uint64_t drain = std::min(N, nw) + R_ - 1;
  const VectorWork act = vector_work(activation_ops(layer.activation), m_tile, std::min(N, nw),
                                     config_.vector);
  const std::uint64_t turnaround = per_tile + drain + act.cycles() + act.latency;
  tl.ready_by_width = std::all_of(ntiles.begin(), ntiles.end(), [&](const NTile& n) {
    return n.nts == ntiles.front().nts || n.nts == ntiles.back().nts;
  });
  const std::uint64_t mt_all = MT * (tensor ? std::uint64_t(layer.samples) * layer.heads : 1);
  const std::uint64_t tiles_per_mxu = mt_all * ceil_div(NT, U);
  const std::uint64_t act_busy = act.cycles() + act.latency;
  const std::uint64_t wanted = std::min({acc_rows_ / (U * m_tile), tiles_per_mxu,
                                         1 + ceil_div(turnaround, per_tile)});
  tl.acc_slots = tl.ready_by_width ? std::max(acc_slots, wanted) : acc_slots;
  // An output tile's ACTIVATE waits about N_t + R - 1 cycles after its last stream for its
  // results, and the units take their queues in order: when that drain spans several tiles'
  // streams (M_t short against N_t + R), ACTIVATEs queued right behind their MATMULs, and the
  // stores behind them, fill the vector and store queues and hold back the issue of the next
  // tiles' MATMULs. So they trail by the tiles of one drain (fewer than the slots, so every
  // MATMUL's wait for a free slot follows its signal in program order).
  tl.act_lag = std::min(drain / per_tile, tl.acc_slots - 2);
  tl.out_slots = out_slots(U);
  tl.split_stores = split && U == 1;
  // Short streams whose ACTIVATE costs more than the array's time for the tile (its latency
  // over a few rows: M = 7, K = 3, N = 3072 on 32 x 32, 7 + 4 cycles against 7) pace the
  // array by the one vector unit: ACTIVATEs over G output tiles at once (GemmTiling::act_tiles)
  // pay the latency once, G x W + L against G x per_tile. A group ends later, though: its
  // ACTIVATE waits for its last tile, and the node for the last group's ACTIVATE and G stores
  // (m_tile rows each). So G is the one of the least estimated node time over T output tiles,
  // max(G x per_tile + T x W + ceil(T / G) x L (the vector unit's, with 10 % for the stores and
  // UB ports it meets: with none, M = 1, K = 3, N = 3072 on 32 x 32 took G = 2, which just
  // matches the array, and 410 compute cycles against a bound of 351), T x max(per_tile, the
  // sequencer's issue of a tile: a weight transfer, LOAD_WEIGHTS and MATMUL per K tile and
  // 2 / G for the ACTIVATE and store) + G x W + L (the array's)) + G x m_tile: 1 where the
  // drain of a large array hides the ACTIVATEs. One MXU, outputs staged (2 G output slots the
  // UB has room for), full M tiles and no bias (one per N tile) or raw partials, so G tiles'
  // accumulator and output rows run on as one; their stores, one transfer a group, are not
  // split over two engines (M = 7, K = 3, N = 770 on 32 x 32: 262 -> 232 compute cycles,
  // bound 238).
  const std::uint64_t W = act.cycles(), L = act.latency;
  if (U == 1 && act_busy > per_tile && tl.ready_by_width && !out_res && !layer.bias &&
      store_engine_ && M % m_tile == 0) {
    const std::uint64_t full = ntiles.back().nts == ntiles.front().nts ? NT : NT - 1;
    const std::uint64_t T = tiles_per_mxu;
    const std::uint64_t most = std::min({full, kMaxActTiles,
                                         field_max(Opcode::kActivate, "rows") / m_tile});
    const std::uint64_t staging = gemm_staging(layer, path, in_res, contiguous, out_res, m_tile,
                                               U, XS);
    const auto node_time = [&](std::uint64_t g) {
      const double vector = double(g * per_tile) + 1.1 * double(T * W + ceil_div(T, g) * L);
      const double issue = (3.0 * double(KT) + 2.0 / double(g)) /
                           double(config_.sequencer.issue_width);
      const double array = double(T) * std::max(double(per_tile), issue) + double(g * W + L);
      return std::max(vector, array) + double(g * m_tile);
    };
    std::uint64_t G = 1;
    for (std::uint64_t g = 2; g <= most && staging + (2 * g - 2) * m_tile <= limit; ++g) {
      if (node_time(g) < node_time(G)) G = g;
    }
    // Only a clear gain: the estimate leaves out how far the drain overlaps the ACTIVATEs and
    // the stores (M = 8, K = 3, N = 1000 on 128 x 128: G = 2 estimated 1.3 % faster, ran 4.7 %
    // slower in all, with the same compute cycles).
    if (node_time(G) > 0.95 * node_time(1)) G = 1;
    // Accumulator slots in groups of G: one group's turnaround, and the backlog.
    const std::uint64_t groups = mt_all * (ceil_div(full, G) + (full < NT ? 1 : 0));
    const std::uint64_t slot_groups = std::min(
        {acc_rows_ / (G * m_tile), groups,
         1 + ceil_div(G * per_tile + drain + G * W + L, G * per_tile) +
             vector_backlog(G * W + L, G * per_tile, groups)});
    if (G > 1 && slot_groups >= 2) {
      tl.act_tiles = G;
      tl.acc_slots = slot_groups * G;
      tl.out_slots = 2 * G;
      tl.split_stores = false;  // a group's one transfer on the store engine
      tl.act_lag = std::min(drain / per_tile, tl.acc_slots - G - 1);
    }
  }
  std::uint64_t at = 0;
  for (std::uint64_t nt = 0; nt < NT; ++nt) {
    for (std::uint64_t kt = 0; kt < KT; ++kt) {
      tl.w_off.push_back(at);
      at += tl.ktile(nt, kt).kts * ntiles[nt].nts;
    }
  }
  tl.w_elems = at;
  if (tensor) {
    const HbmTensor& a = in.hbm;
    const HbmTensor& b = plan_.tensors[layer.inputs[1]].hbm;
    if (a.pad > 0 || b.pad > 0) {
      fail("reads '" + model_.tensors[layer.inputs[a.pad > 0 ? 0 : 1]].name +
           "' as rows of whole pixels, but it carries a zero border (it also feeds a padded "
           "convolution)");
    }
    tl.b_tensor = true;
    tl.transpose = layer.transpose_b;
    tl.a = a;
    tl.b = b;
    tl.heads = layer.heads;
    tl.parts = std::uint64_t(layer.samples) * layer.heads;
  }
  // With two input slots the load of M tile mt + 2 can start only when M tile mt's MATMULs
  // end; a layer whose loads take about as long as its streams (a stem gathering a UB row per
  // output pixel, a large image's band images) then falls behind the array by the tail of
  // every tile. Each further slot the UB has room for (up to one per M tile) lets a load run
  // one more tile ahead.
  const std::uint64_t staged =
      gemm_staging(layer, path, in_res, contiguous, out_res, m_tile, U, XS) +
      (tl.out_slots - 2 * U) * m_tile;
  const std::uint64_t slots =
      in_res || MT <= 2 || xs == 0 || staged > limit
          ? 2
          : std::min(MT, 2 + (limit - staged) / xs);
  const std::uint64_t base = weight_rows();
  for (std::uint64_t i = 0; i < slots; ++i) tl.x_slot.push_back(base + i * xs);
  tl.o_slot = base + slots * xs;
  tl.bias_slot = tl.o_slot + (out_res ? 0 : tl.out_slots * m_tile);
  if (layer.bias && row_bytes % 4 != 0) {
    fail("a bias needs UB rows of a multiple of 4 bytes (its 32-bit words), but they hold " +
         std::to_string(row_bytes));
  }
  return tl;
}

void Lowerer::lower_gemm(const Node& layer, const Placement& in, const Placement& out,
                         const GemmTiling& tl, std::uint64_t weights, const Values* w,
                         const Requant& q, const std::vector<std::uint32_t>* bias) {
  const bool conv = layer.kind == OpKind::kConv2d;
  const bool in_res = in.resident, out_res = out.resident;
  const bool taps = tl.path == GemmPath::kTaps;
  const bool x_dma = !in_res;  // the input arrives in UB slots by DMA
  const Taps& g = tl.g;
  const TapPlan& plan = tl.plan;
  const std::uint64_t M = tl.M, K = tl.K, N = tl.N, NT = tl.NT, KR = tl.KR, XS = tl.x_stride;
  // M tiles over all parts (one part but for a tensor matmul): tile mt covers rows
  // [m_lo(mt), m_hi(mt)) of part mt / tl.MT.
  const std::uint64_t KT = tl.KT, m_tile = tl.m_tile, MT = tl.MT * tl.parts;
  // On the rows path (im2col pixels, matmul rows) a MATMUL waits only for the input transfers
  // that wrote its rows. After the first M tile (whose whole input the node's first weight
  // load waits for) every input transfer signals, and each MXU's first MATMUL of an M tile
  // (its first N tile's first K tile) is one per transfer, each waiting for its own rows: the
  // stream follows the gather transfer by transfer instead of a whole M tile behind. The
  // MXU's later MATMULs of the tile follow these in its in-order stream, so by then every row
  // is in. It pays only where the array reads an M tile's rows as fast as the DMA writes them:
  // - one UB row per input vector (KR = 1). A stream reading every KR-th row beside the DMA's
  //   (or the vector unit's) row-by-row writes meets them in some bank within ub.banks rows,
  //   and as a stream burst is granted whole, a short stream then waits for the writes to end
  //   (measured with KR > 1: ResNet-50's Conv1 on 32 x 32, KR = 5, 148,296 -> 157,259 compute
  //   cycles);
  // - one N tile per MXU. With more, each MXU streams the tile several times, the next tile's
  //   gather ends while this one still streams, and a MATMUL per transfer only adds
  //   instructions (measured: GPT-2 prefill's attention scores on tpu_v2 +1.6 % per layer).
  const bool one_n_tile = ceil_div(NT, tl.mxus) == 1;
  const bool paced = x_dma && !taps && KR == 1 && one_n_tile;
  auto m_lo = [&](std::uint64_t mt) { return mt % tl.MT * m_tile; };
  auto m_hi = [&](std::uint64_t mt) { return std::min(M, m_lo(mt) + m_tile); };
  const std::uint64_t S = tl.x_slot.size();
  auto x_slot = [&](std::uint64_t mt) { return tl.x_slot[mt % S]; };
  // N tile nt runs on MXU nt % U. Output tile t = (mt, nt) is its MXU's tile number local(t)
  // of the node (of tiles(u)), in the MXU's own A accumulator slots: every MXU runs the
  // one-MXU schedule on its share of the N tiles.
  const std::uint64_t U = tl.mxus;
  // Two gather engines. The input of M tiles after the first loads partly on MXU 0's
  // weight-fill engine (or the store engine, below), where one engine's gather falls behind
  // the stream within the node:
  // - a stem with one UB row a pixel (paced): a transfer (one output row) waits at its first
  //   pixel for a request per kernel row, sent one a cycle, so it takes kernel_h - 1 cycles
  //   beyond its rows, and an engine runs one transfer at a time (ISA.md): on one engine the
  //   stream waits that long every output row (U-Net's 572x572x1 3x3 -> 64 on 256 x 256:
  //   568 x 572 + 570 + 64 + 255 = 325,785 compute cycles, folds 325,666); on two, one
  //   engine's rows land while the other starts, and the UB write port paces the gather at a
  //   row a cycle, as the stream. Only where that lag, each output row after M tile 0
  //   kernel_h - 1 cycles more than its stream, exceeds a lead of tile 0's stream less tile
  //   1's first transfer (YOLOv5s's stem at 256: 5 x 316 > 1,280 - 325; a 112x112x64 2x2 conv
  //   at 256, 1 x 99 < 1,332 - 112, lost 124 cycles on two engines).
  // - wide pixels at a stride: an engine sends one HBM request a cycle, and a pixel of C
  //   bytes s C bytes apart straddles about C / burst + 1 bursts (gather_requests), which
  //   outnumber its ceil(K / R) stream cycles a pixel with one N tile (171x171x462 1x1 stride 3
  //   -> 159 on 256 x 256: 2.8 requests a pixel against 2 stream cycles, 9,145 compute cycles,
  //   folds 8,030). Two engines are then bound by the one UB write port, ceil(K / R) rows a
  //   pixel, as the stream: 7,767. Not for the transfer starts of such a layer: they are
  //   short beside a row's K / R x OW writes, and a second engine's writes, booked ahead beside
  //   the first's, held back the streams instead (3x3 stride-1 convs of 28-56 UB rows a pixel
  //   on 256 x 256 up to 12 % slower: 152x152x816 -> 238, 666,354 -> 748,670).
  // The second engine takes a share f of the transfers, spread evenly: a transfer of pixels
  // [m0, m1) goes there when it crosses a multiple of L / f pixels (L its longest transfer).
  // A stem's engines keep pace with the write port (requests <= K / R a pixel): the second
  // only hides the other's transfer starts, and f = 1/2 gives it the odd output rows (by
  // output-row parity, not by a transfer's place in its tile: with an odd number of rows a
  // tile, engine 0 would take one more every tile and fall behind, Inception-v3's 299x299x3
  // stem on 256 x 256: +2 %). Where the requests bind, f leaves both engines about as busy,
  // the fill engine's weight fills of the tile (W, each K_t rows or its requests) counted with
  // its share of one engine's gather G: f = (G - W) / 2G. Both engines' rows then exceed the
  // write port, so more only books the second engine's writes ahead, and its transfers delay
  // the fills the array waits for (187x187x543 1x1 stride 2 -> 46 at 256: 28,436 compute
  // cycles on one engine, 33,023 with every other row, 27,612 with f = 0.35). For the same
  // reason their transfers are half as long (input_transfers: 182x182x829 3x3 stride 4 -> 34
  // at 256, 64,578 on one engine, 65,799 on two with whole transfers, 63,010 with halves).
  // The second engine is the store engine instead where its stores of a tile (a UB row read a
  // pixel and N tile) are less work than the fill engine's fills: a few N channels stored
  // against ceil(K / R) fills of R rows a tile, each M tile refilling every weight tile
  // (127x125x186 4x1 stride 2 -> 51 at 256: 6 requests against 3 stream cycles a pixel, the
  // fill engine's 744 fill cycles a tile of 504 pixels left the streams waiting 372 cycles a
  // tile, 14,338 compute cycles, folds 14,016; beside 504 store reads, 13,752).
  // With one pixel a transfer (lone_px, input_transfer_vectors) a pixel's requests share no
  // burst with its neighbours' (gather_requests alone), and its writes step with the stream
  // only on one engine: the second engine's, interleaved with them, hold back each stream
  // that meets them (ub_port). It takes only the share engine 0 cannot keep pace with,
  // 1 - stream / requests (102x102x220 11x11 -> 7 at 256, 115 requests against 104 rows a
  // pixel: 974,724 -> 956,361, folds 959,920; with half the transfers 918,059, but
  // 182x200x98 11x10 -> 11, 53 requests against 43 rows, 1,434,830 -> 1,549,448 with half,
  // 1,436,277 with its share, folds 1,445,574).
  // The second engine's semaphores are MXU 1's x_ready, x_free and go, so only on cores of
  // one MXU (with more, another node's MXU 1 could signal them while this node waits). M tile
  // 0 stays on engine 0 (the node's first transfer takes its hand-offs); its last transfer
  // signals go, which the second engine's first transfer waits for, so that engine follows
  // all that engine 0 waited for. Each engine's last transfer of a tile signals its ready
  // semaphore, and the tile's first MATMUL waits for both (paced: each its own transfer's).
  const std::uint64_t OW = conv ? std::uint64_t(layer.out.w) : 1;
  const std::uint64_t extra = conv ? layer.kernel_h - 1 : 0;
  const std::uint64_t later = M - std::min(M, m_tile);  // pixels after M tile 0
  const double stream_px = double(KR * ceil_div(NT, tl.mxus));
  // One pixel a transfer (input_transfer_vectors): its requests share no burst with its
  // neighbours' windows.
  const bool lone_px = conv && !taps && !tl.k_major && XS > 1 && !gather_bound(layer) &&
                       input_transfer_vectors(layer, XS, one_n_tile) == 1;
  const double requests_px = conv ? gather_requests(layer, lone_px) : 0;
  const double gather_px = std::max(double(KR), requests_px);
  const double excess = double(later) * (gather_px - stream_px);
  const double starts = double(ceil_div(later, OW) * extra);
  double fills = 0;
  for (std::uint64_t nt = 0; nt < NT; ++nt) {
    for (std::uint64_t kt = 0; kt < KT; ++kt) {
      const std::uint64_t kts = tl.ktile(nt, kt).kts;
      fills += double(std::max(kts, ceil_div(kts * tl.ntiles[nt].nts * eb_,
                                             config_.hbm.burst_bytes)));
    }
  }
  // The store engine's work a tile: a UB row read a pixel and N tile.
  const double stores = double(m_tile * NT);
  const bool gather_on_stores = store_engine_ && !tl.split_stores && !tl.raw && stores < fills;
  const double second_work = gather_on_stores ? stores : fills;
  const double one_engine = double(m_tile) * gather_px + double(ceil_div(m_tile, OW) * extra);
  const double keep_pace = lone_px ? 1 - stream_px / gather_px : 0.5;
  const double second_share =
      requests_px <= double(KR)
          ? 0.5
          : std::clamp(std::min((one_engine - second_work) / (2 * one_engine), keep_pace), 0.0,
                       0.5);
  const bool two_gathers =
      conv && x_dma && !taps && !tl.k_major && tl.MT > 1 && config_.core.mxus == 1 &&
      weight_engines_ > 0 && second_share > 0 &&
      (paced ? excess + starts > 0 &&
                   excess + starts + double(OW + extra) > double(m_tile) * stream_px
             : excess > 0);
  // Split stores (tile_gemm: KT = 1, outputs not whole bursts) leave engine 0 the input and
  // the odd tiles' stores, two requests a pixel each, while the weight-fill engine has one
  // fill of K_t rows a tile: the input of M tiles after the first loads there instead, with
  // the same semaphores (ideal memory: 152x152x2 3x3 -> 509 on 256 x 256 went 67,103 ->
  // 45,509 compute cycles, folds 46,532; 197x197x1 5x5 -> 1442, 279,349 -> 224,898).
  const bool gather_off_stores =
      !two_gathers && x_dma && tl.split_stores && !tl.raw && config_.core.mxus == 1 &&
      weight_engines_ > 0 && tl.MT > 1;
  const bool second_engine = two_gathers || gather_off_stores;
  const std::uint32_t gather_ready = mxu_sem(1, kMxuXReady), gather_free = mxu_sem(1, kMxuXFree),
                      gather_go = mxu_sem(1, kMxuGo);
  if (second_engine) {  // named for listings and traces (a one-MXU core names no MXU 1 block)
    program_.semaphore_names[gather_ready] = "gather_ready";
    program_.semaphore_names[gather_free] = "gather_free";
    program_.semaphore_names[gather_go] = "gather_go";
  }
  const auto mxu = [&](std::uint64_t t) { return t % NT % U; };
  const auto per_m_tile = [&](std::uint64_t u) { return ceil_div(NT - u, U); };
  const auto local = [&](std::uint64_t t) {
    return t / NT * per_m_tile(mxu(t)) + t % NT / U;
  };
  const auto tiles = [&](std::uint64_t u) { return MT * per_m_tile(u); };
  const std::uint64_t A = tl.acc_slots;
  // Grouped ACTIVATEs (GemmTiling::act_tiles = G > 1, one MXU): the first `full` N tiles of
  // each M tile in groups of G (the last maybe fewer), then the narrower last N tile alone;
  // node-wide group gi takes accumulator slot group gi % (A / G) and output slot group gi % 2,
  // its tiles consecutive slots in each.
  const std::uint64_t G = tl.act_tiles;
  const bool grouped = G > 1;
  const std::uint64_t full = tl.ntiles.back().nts == tl.ntiles.front().nts ? NT : NT - 1;
  const std::uint64_t GPM = ceil_div(full, G) + (full < NT ? 1 : 0), GT = MT * GPM;
  const auto group_first = [&](std::uint64_t i) { return std::min(i * G, full); };
  const auto group_end = [&](std::uint64_t i) {
    return i * G < full ? std::min((i + 1) * G, full) : NT;
  };
  const auto group_in = [&](std::uint64_t nt) { return nt < full ? nt / G : GPM - 1; };
  const auto group = [&](std::uint64_t t) { return t / NT * GPM + group_in(t % NT); };
  const auto in_group = [&](std::uint64_t t) { return t % NT - group_first(group_in(t % NT)); };
  const auto acc_slot = [&](std::uint64_t t) {
    if (grouped) return (group(t) % (A / G) * G + in_group(t)) * m_tile;
    return (A * mxu(t) + local(t) % A) * m_tile;
  };
  const auto ready = [&](std::uint64_t t) {
    return acc_ready(mxu(t), tl.ready_by_width ? tl.ntiles[t % NT].nts != tl.ntiles[0].nts
                                               : local(t) % 2 == 1);
  };
  // O output staging slots, used in turn: ACTIVATEs run in order on the one vector unit.
  const std::uint64_t O = tl.out_slots;
  const auto o_slot = [&](std::uint64_t t) {
    if (grouped) return tl.o_slot + (group(t) % 2 * G + in_group(t)) * m_tile;
    return tl.o_slot + t % O * m_tile * tl.raw_w;
  };
  // The semaphore `s` of every MXU (not kMxuGo, which MXU 0 has not).
  const auto every_mxu = [&](MxuSemaphore s) {
    std::uint64_t mask = 0;
    for (std::uint64_t u = 0; u < U; ++u) mask |= bit(mxu_sem(u, s));
    return mask;
  };

  // Weights K x N, stored tile by tile (column block, then K tile, each K_t x N_t row-major).
  // A grouped conv's K row (tap, c) holds weight row tap * cg + c % cg of the columns of c's
  // group and zeros elsewhere.
  // A K split's image is the whole node's, written by core 0 (one copy in HBM).
  if (w && !tl.b_tensor && !(tl.raw && share_.core != 0)) {
    const GemmTiling& wt = tl.raw ? whole_[layer_index_] : tl;
    const std::uint64_t NT = wt.NT, KT = wt.KT;
    const std::uint64_t C = layer.in.c, cg = conv ? C / layer.groups : C;
    const std::uint64_t ng = N / (conv ? layer.groups : 1);
    std::vector<std::uint8_t> image(wt.w_elems * eb_);
    std::uint64_t at = 0;
    for (std::uint64_t nt = 0; nt < NT; ++nt) {
      const NTile& ntl = wt.ntiles[nt];
      for (std::uint64_t kt = 0; kt < KT; ++kt) {
        const KTile& kti = wt.ktile(nt, kt);
        for (std::uint64_t j = 0; j < kti.kts; ++j, at += ntl.nts * eb_) {
          const std::uint64_t k = kti.k_row(j, C);
          const std::uint64_t c = conv ? k % C : 0;
          const std::uint64_t wk = conv ? k / C * cg + c % cg : k;
          // The columns of c's group; off the diagonal blocks the image stays zero.
          const std::uint64_t n0 = conv ? std::max(ntl.n0, c / cg * ng) : ntl.n0;
          const std::uint64_t n1 =
              conv ? std::min(ntl.n0 + ntl.nts, (c / cg + 1) * ng) : ntl.n0 + ntl.nts;
          if (n1 <= n0) continue;
          std::uint8_t* dst = &image[at + (n0 - ntl.n0) * eb_];
          if (eb_ == 1) {
            std::memcpy(dst, &w->i8[wk * N + n0], n1 - n0);
          } else {
            for (std::uint64_t n = n0; n < n1; ++n, dst += 2) {
              const std::uint16_t b = fp32_to_bf16(w->f32[wk * N + n]);
              std::memcpy(dst, &b, 2);
            }
          }
        }
      }
    }
    // (A model-parallel share's tiles start at its first tile's offset.)
    add_segment(layer.name + ".weights", weights + wt.w_off[0] * eb_, std::move(image));
  }
  const std::int32_t multiplier = q.multiplier;
  const std::uint8_t shift = q.shift;

  // K chunk by K chunk (tl.k_major): the whole chunks (a group per chunk of R elements, a
  // segment per input row) in one transfer, or one per chunk (tl.k_transfers); the last,
  // partial chunk in one more (a group per row).
  auto k_major_pieces = [&](std::uint64_t hbm, std::uint64_t row_bytes, std::uint64_t rows,
                            std::uint64_t ub_row, std::vector<DmaFields>& pieces) {
    const std::uint64_t whole = K / R_, rest = K % R_;
    if (whole > 0) {
      DmaFields d;
      d.hbm_addr = hbm;
      d.ub_row = std::uint32_t(ub_row);
      d.elems = std::uint16_t(R_);
      d.segs = std::uint16_t(rows);
      d.seg_stride = std::uint32_t(rows > 1 ? row_bytes : 0);
      d.groups = std::uint16_t(whole);
      d.group_stride = std::uint32_t(whole > 1 ? R_ * eb_ : 0);
      d.ub_stride = std::uint16_t(m_tile);
      d.pack = std::uint16_t(R_);
      for (const DmaFields& p : split_groups({d}, tl.k_transfers ? whole : 1)) pieces.push_back(p);
    }
    if (rest > 0) {
      DmaFields d;
      d.hbm_addr = hbm + whole * R_ * eb_;
      d.ub_row = std::uint32_t(ub_row + whole * m_tile);
      d.elems = std::uint16_t(rest);
      d.groups = std::uint16_t(rows);
      d.group_stride = std::uint32_t(rows > 1 ? row_bytes : 0);
      d.pack = std::uint16_t(R_);
      pieces.push_back(d);
    }
  };
  auto input_pieces = [&](std::uint64_t mt) {
    const std::uint64_t m0 = m_lo(mt), m1 = m_hi(mt);
    std::vector<DmaFields> pieces;
    if (tl.b_tensor) {
      // Rows m0 .. m1 - 1 of the part's sample, its head's K channels, packed R per UB row.
      const std::uint64_t part = mt / tl.MT, head = part % tl.heads;
      const HbmTensor& a = tl.a;
      DmaFields d;
      d.hbm_addr = a.addr(part / tl.heads, std::int64_t(m0 / a.shape.w),
                          std::int64_t(m0 % a.shape.w)) + head * K * eb_;
      d.ub_row = std::uint32_t(x_slot(mt));
      d.elems = std::uint16_t(K);
      d.groups = std::uint16_t(m1 - m0);
      d.group_stride = std::uint32_t(m1 - m0 > 1 ? a.pixel_bytes() : 0);
      d.ub_stride = std::uint16_t(XS);
      d.pack = std::uint16_t(R_);
      pieces.push_back(d);
    } else if (taps) {
      // The padded input rows the tile's windows cover, once per band image.
      const Band band = band_of(g, m0, m1);
      const BandLayout layout = band_layout(g, plan, band);
      for (std::uint64_t i = 0; i < plan.images.size(); ++i) {
        for (std::uint64_t p = 0; p < band.parts.size(); ++p) {
          band_image_loads(in.hbm, g, plan.images[i], band.parts[p], x_slot(mt) + layout.at(i, p),
                           pieces);
        }
      }
    } else if (conv) {
      // One group per output pixel: kernel_h segments of kernel_w * C contiguous elements,
      // packed R per UB row, so K-tile kt of the pixel is UB row patch + kt.
      const HbmTensor& t = in.hbm;
      const std::uint64_t ohw = std::uint64_t(layer.out.h) * layer.out.w;
      for (std::uint64_t m = m0; m < m1;) {
        const std::uint64_t b = m / ohw, oy = (m % ohw) / layer.out.w, ox = m % layer.out.w;
        const std::uint64_t n = std::min({layer.out.w - ox, m1 - m, kMaxCount});
        DmaFields d;
        d.hbm_addr = t.addr(b, std::int64_t(oy * layer.stride) - layer.padding_h,
                            std::int64_t(ox * layer.stride) - layer.padding);
        d.ub_row = std::uint32_t(x_slot(mt) + (m - m0) * XS);
        d.elems = std::uint16_t(layer.kernel_w * layer.in.c);
        d.segs = std::uint16_t(layer.kernel_h);
        d.seg_stride = std::uint32_t(layer.kernel_h > 1 ? t.row_bytes() : 0);
        d.groups = std::uint16_t(n);
        d.group_stride = std::uint32_t(n > 1 ? layer.stride * t.pixel_bytes() : 0);
        d.ub_stride = std::uint16_t(XS);
        d.pack = std::uint16_t(R_);
        pieces.push_back(d);
        m += n;
      }
    } else if (tl.k_major) {
      k_major_pieces(in.hbm.addr(m0, 0, 0), in.hbm.image_bytes(), m1 - m0, x_slot(mt), pieces);
    } else {
      DmaFields d;
      d.hbm_addr = in.hbm.addr(m0, 0, 0);
      d.ub_row = std::uint32_t(x_slot(mt));
      d.elems = std::uint16_t(K);
      d.groups = std::uint16_t(m1 - m0);
      d.group_stride = std::uint32_t(m1 - m0 > 1 ? in.hbm.image_bytes() : 0);
      d.ub_stride = std::uint16_t(XS);
      d.pack = std::uint16_t(R_);
      pieces.push_back(d);
    }
    return pieces;
  };
  // The input transfers of M tile mt. Without engines of their own for the weight fills, split
  // into about one share per weight tile of the tile before and queued between their weight
  // loads: one DMA at a time runs, so a whole input tile queued at once would hold back the
  // next weight tiles, and queued late it would hold back the next M tile's first MATMUL.
  // With the weight fills on engines of their own, engine 0 has only the input (and split
  // stores): its transfers go in shares between a tile's MATMULs (below), on the rows path
  // with several UB rows a vector cut into transfers of input_transfer_vectors, half as many
  // on two gather engines (two_gathers: each books its writes ahead). With one row a vector
  // the stream steps with the transfers' writes and never meets them; a gather-bound layer's
  // stream waits for the gather anyway. The transfers go in shares of half the unit queue
  // before each of the tile's NT x KT MATMULs and at its end (spread, below), so a tile has
  // at most (NT x KT + 1) x half of them: with more, a share holds more transfers than the
  // queue, and the MATMUL behind it waits for the DMA to run them (YOLOv5s's 6x6 stem on
  // 32 x 32, four MATMULs of 5,120 pixels a tile, 4 UB rows a pixel: transfers of 8 pixels,
  // 427,030 compute cycles; of 128, 410,744; folds 409,976).
  const bool cut = !taps && !tl.k_major && XS > 1 && !gather_bound(layer);
  const std::uint64_t half = std::max<std::uint64_t>(config_.sequencer.queue_depth / 2, 1);
  const std::uint64_t transfer_vectors =
      std::max({std::uint64_t(1),
                input_transfer_vectors(layer, XS, one_n_tile) / (two_gathers ? 2 : 1),
                ceil_div(m_tile, (NT * KT + 1) * half)});
  const auto input_transfers = [&](std::uint64_t mt) {
    if (mt == 0) return input_pieces(0);
    if (weight_engines_ == 0) return split_groups(input_pieces(mt), NT * KT);
    if (!cut) return input_pieces(mt);
    return split_at(input_pieces(mt), transfer_vectors);
  };
  // Per M tile, whether each of its input transfers goes to the second gather engine
  // (two_gathers, gather_off_stores).
  std::vector<std::vector<bool>> on_second(second_engine ? MT : 0);
  const double lattice = double(cut ? std::min(OW, transfer_vectors) : OW) /
                         std::max(second_share, 1e-9);
  for (std::uint64_t mt = 1; mt < on_second.size(); ++mt) {
    for (const DmaFields& d : input_transfers(mt)) {
      const std::uint64_t m0 = m_lo(mt) + (d.ub_row - x_slot(mt)) / XS, m1 = m0 + d.groups;
      on_second[mt].push_back(gather_off_stores ||
                              std::floor(double(m1) / lattice) > std::floor(double(m0) / lattice));
    }
  }
  if (!on_second.empty()) on_second[0].assign(input_transfers(0).size(), false);
  const auto second_gather = [&](std::uint64_t mt, std::size_t i) {
    return second_engine && on_second[mt][i];
  };
  const auto gathers_on = [&](std::uint64_t mt, bool second) {
    if (!second_engine) return !second;
    return std::find(on_second[mt].begin(), on_second[mt].end(), second) != on_second[mt].end();
  };
  bool any_second = false;
  for (std::uint64_t mt = 1; mt < MT && !any_second; ++mt) {
    any_second = gathers_on(mt, true);
  }
  bool second_started = false;
  // Input pieces [from, to) of M tile mt; the first on each engine waits for its slot, the
  // last signals (and paced, every one: its MATMUL waits for it).
  auto emit_input = [&](std::uint64_t mt, const std::vector<DmaFields>& pieces, std::size_t from,
                        std::size_t to) {
    // Per engine: its first and last piece.
    std::size_t first[2] = {pieces.size(), pieces.size()}, last[2] = {0, 0};
    for (std::size_t i = pieces.size(); i-- > 0;) first[second_gather(mt, i)] = i;
    for (std::size_t i = 0; i < pieces.size(); ++i) last[second_gather(mt, i)] = i;
    for (std::size_t i = from; i < to; ++i) {
      const bool second = second_gather(mt, i);
      std::uint64_t wait = 0, signal = 0;
      if (second) {
        wait = i == first[1] && mt >= S ? bit(gather_free) : 0;
        if (!second_started) wait |= bit(gather_go);
        second_started = true;
        signal = paced || i == last[1] ? bit(gather_ready) : 0;
      } else {
        wait = i == first[0] && mt >= S ? every_mxu(kMxuXFree) : 0;
        signal = i == last[0] || (paced && mt > 0) ? every_mxu(kMxuXReady) : 0;
        if (mt == 0 && i + 1 == pieces.size() && any_second) signal |= bit(gather_go);
      }
      Instruction load = dma(Opcode::kDmaLoad, pieces[i], wait, signal);
      if (second) {
        load.instance = std::uint8_t(gather_on_stores ? kStoreEngine : kFirstWeightEngine);
      }
      emit(load);
    }
  };

  const std::uint64_t T = MT * NT, J = T * KT;
  auto store_pieces = [&](std::uint64_t t) {
    const std::uint64_t mt = t / NT, nt = t % NT;
    const std::uint64_t m0 = m_lo(mt), m1 = m_hi(mt);
    // A tensor matmul's part: its sample's pixels, its head's N channels.
    const std::uint64_t part = mt / tl.MT;
    const std::uint64_t p0 = part / tl.heads * M, c0 = part % tl.heads * N;
    const std::uint64_t n0 = c0 + tl.ntiles[nt].n0, nts = tl.ntiles[nt].nts;
    std::vector<DmaFields> pieces;
    if (tl.raw) {
      // This core's raw partials of the tile, row-major M x N words: a row's nts words from
      // the start of its raw_w UB rows.
      DmaFields d;
      d.hbm_addr = tl.partials + (std::uint64_t(share_.core) * M * N + m0 * N + n0) * 4;
      d.ub_row = std::uint32_t(o_slot(t));
      d.elems = std::uint16_t(nts * 4 / eb_);
      d.pack = std::uint16_t(config_.ub_row_elems());
      d.groups = std::uint16_t(m1 - m0);
      d.group_stride = std::uint32_t(m1 - m0 > 1 ? N * 4 : 0);
      d.ub_stride = std::uint16_t(
          raw_rows_per_acc_row(nts, std::uint64_t(config_.ub_row_elems()) * eb_));
      pieces.push_back(d);
      return pieces;
    }
    pixel_blocks(p0 + m0, p0 + m1, out.hbm,
                 [&](std::uint64_t first, std::uint64_t b, std::uint64_t py, std::uint64_t px,
                     std::uint64_t pixels, std::uint64_t rows, std::uint64_t row_stride) {
                   pieces.push_back(block(out.hbm.addr(b, std::int64_t(py), std::int64_t(px)) +
                                              n0 * eb_,
                                          o_slot(t) + (first - p0 - m0), rows, row_stride,
                                          pixels,
                                          out.hbm.pixel_bytes(), nts));
                 });
    return pieces;
  };
  // Tile t's store engine and semaphores: their own on the store engine; split stores
  // (tile_gemm) put the odd tiles on engine 0 with the one-engine pair, which engine 0 and the
  // vector unit use in program order.
  const auto on_store_engine = [&](std::uint64_t t) {
    return store_engine_ && !(tl.split_stores && !tl.raw && t % 2 == 1);
  };
  const auto out_ready = [&](std::uint64_t t) {
    return on_store_engine(t) ? kSemStoreReady : kSemOutReady;
  };
  const auto out_free = [&](std::uint64_t t) {
    return on_store_engine(t) ? kSemStoreFree : kSemOutFree;
  };
  // Store pieces [from, to) of output tile t; the first waits for the tile, the last frees its
  // slot.
  auto emit_store = [&](std::uint64_t t, const std::vector<DmaFields>& pieces, std::size_t from,
                        std::size_t to) {
    for (std::size_t i = from; i < to; ++i) {
      std::uint64_t wait = i == 0 ? bit(out_ready(t)) : 0;
      std::uint64_t signal = i + 1 == pieces.size() && t + O < T ? bit(out_free(t)) : 0;
      Instruction store = dma(Opcode::kDmaStore, pieces[i], wait, signal);
      store.instance = on_store_engine(t) ? kStoreEngine : 0;
      emit(store);
    }
  };
  // The stores of ACTIVATE group gi: the first waits for it, the last frees its slot group.
  // Where each tile's pixels are one evenly spaced run in HBM (a matmul's rows, or a conv's
  // whole image rows with no zero border between them), one transfer stores them all, a group
  // per tile, a segment per pixel (the engine pays each transfer's start: a store per tile of
  // one row paced M = 1, K = 3, N = 3072 on 32 x 32 at 440 compute cycles against a bound of
  // 351; and the sequencer issues each: a 1 x 1 conv over 2 x 2 pixels, its tiles stored as
  // two image rows each, N = 3072 on 32 x 32, took 96 stores beside 288 weight fills, LOAD_WEIGHTS
  // and MATMULs and 12 ACTIVATEs, 525 compute cycles against a bound of 447).
  // A piece as such a run: its pixels (one UB row each, from ub_row), the bytes from one to
  // the next, or none when it is not one.
  struct PixelRun {
    std::uint64_t pixels = 0, stride = 0;
  };
  const auto pixel_run = [&](const DmaFields& d, std::uint64_t nts) {
    PixelRun run;
    if (d.pack != nts || std::uint64_t(d.segs) * d.elems % nts != 0) return run;
    const std::uint64_t per_group = std::uint64_t(d.segs) * d.elems / nts;
    std::uint64_t stride = nts * eb_;  // one segment of whole pixels: contiguous
    if (d.segs > 1) {
      if (d.elems != nts) return run;
      stride = d.seg_stride;
    }
    if (d.groups > 1) {
      if (d.ub_stride != per_group) return run;
      if (per_group == 1) {
        stride = d.group_stride;
      } else if (d.group_stride != per_group * stride) {
        return run;
      }
    }
    run.pixels = per_group * d.groups;
    run.stride = run.pixels > 1 ? stride : 0;
    return run;
  };
  auto group_store_pieces = [&](std::uint64_t t0, std::uint64_t t1) {
    std::vector<DmaFields> pieces;
    PixelRun first;
    for (std::uint64_t t = t0; t < t1; ++t) {
      const std::vector<DmaFields> p = store_pieces(t);
      const std::uint64_t nts = tl.ntiles[t % NT].nts;
      const PixelRun run = p.size() == 1 ? pixel_run(p[0], nts) : PixelRun();
      if (t == t0) first = run;
      if (run.pixels == 0 || run.pixels > kMaxCount ||
          (t > t0 && (p[0].hbm_addr != pieces[0].hbm_addr + (t - t0) * nts * eb_ ||
                      p[0].ub_row != pieces[0].ub_row + (t - t0) * m_tile ||
                      run.pixels != first.pixels || run.stride != first.stride))) {
        pieces.clear();
        for (std::uint64_t u = t0; u < t1; ++u) {
          for (const DmaFields& d : store_pieces(u)) pieces.push_back(d);
        }
        return pieces;
      }
      if (t == t0) pieces.push_back(p[0]);
    }
    DmaFields& d = pieces[0];
    d.elems = std::uint16_t(tl.ntiles[t0 % NT].nts);
    d.segs = std::uint16_t(first.pixels);
    d.seg_stride = std::uint32_t(first.stride);
    d.groups = std::uint16_t(t1 - t0);
    d.group_stride = std::uint32_t(t1 - t0 > 1 ? tl.ntiles[t0 % NT].nts * eb_ : 0);
    d.ub_stride = std::uint16_t(m_tile);
    return pieces;
  };
  auto emit_group_store = [&](std::uint64_t gi) {
    const std::uint64_t t0 = gi / GPM * NT + group_first(gi % GPM);
    const std::uint64_t t1 = gi / GPM * NT + group_end(gi % GPM);
    const std::vector<DmaFields> pieces = group_store_pieces(t0, t1);
    for (std::size_t i = 0; i < pieces.size(); ++i) {
      const std::uint64_t wait = i == 0 ? bit(out_ready(t0)) : 0;
      const std::uint64_t signal = i + 1 == pieces.size() && gi + 2 < GT ? bit(out_free(t0)) : 0;
      Instruction store = dma(Opcode::kDmaStore, pieces[i], wait, signal);
      store.instance = kStoreEngine;
      emit(store);
    }
  };
  const std::size_t next = next_here(layer_index_);
  // The next node's b may be this node's output, which its stores (queued behind this node's
  // weight loads in the DMA's order) have not written yet: no prefetch across that boundary.
  const bool prefetch =
      next < model_.nodes.size() && is_gemm(model_.nodes[next].kind) &&
      !(model_.nodes[next].kind == OpKind::kTensorMatmul &&
        plan_.root[model_.nodes[next].inputs[1]] == plan_.root[layer.output]);
  // The weight tile stream runs `ahead` tiles ahead of the LOAD_WEIGHTS: before LOAD_WEIGHTS j
  // the loads of tiles up to j + ahead have been emitted, this node's and then the next GEMM
  // node's first. UB staging: one ahead (two slots). Weight FIFO: two ahead (at most
  // depth - 1, so fill j + ahead waits, in the hardware, for read j + ahead - depth, which
  // comes before read j), counted per MXU's FIFO: a fill is emitted while its FIFO has at most
  // `ahead` fills more than reads. Two measured best: one ahead leaves short streams waiting
  // for their weights behind the output stores, three hold back the next M tile's input.
  const std::uint64_t ahead =
      fifo_ ? std::min<std::uint64_t>(config_.mxu.weight_fifo_tiles - 1, 2) : 1;
  const std::uint64_t first_tile = load_weights_at_.size();  // this node's tile 0, globally
  const auto fifo_has_room = [&](const GemmTiling& tiling, std::uint64_t j) {
    const std::uint64_t f = tiling.weight_tile(j).first % tiling.NT % tiling.mxus;
    return fifo_fills_[f] - fifo_reads_[f] <= ahead;
  };
  auto top_up_weights = [&](std::uint64_t j) {
    const std::uint64_t target = fifo_ ? kNever : first_tile + j + ahead + 1;
    while (weight_dmas_ < std::min(target, first_tile + J) &&
           (!fifo_ || fifo_has_room(tl, weight_dmas_ - first_tile))) {
      emit_weight_tile(tl, weights, weight_dmas_ - first_tile);
    }
    if (!prefetch) return;
    const GemmTiling& nxt = tilings_[next];
    const std::uint64_t next_j = nxt.MT * nxt.NT * nxt.KT;
    while (weight_dmas_ < target && weight_dmas_ - first_tile - J < next_j &&
           (!fifo_ || fifo_has_room(nxt, weight_dmas_ - first_tile - J))) {
      emit_weight_tile(nxt, plan_.weights[next], weight_dmas_ - first_tile - J);
    }
  };
  // With the FIFO the node's first tiles load before its input: the first LOAD_WEIGHTS waits
  // for the input anyway (below), so the layer's compute span opens with tiles queued, which
  // absorb the output stores the DMA runs between weight tiles.
  // The bias, loaded once ahead of the node's other transfers; the first ACTIVATE waits for it.
  const std::uint64_t b_rows = tl.raw ? 0 : bias_rows(layer, config_, model_.dtype);
  const std::uint64_t row_elems = config_.ub_row_elems();
  if (b_rows > 0) {
    const std::uint64_t hbm = plan_.biases[layer_index_];
    if (bias) {
      std::vector<std::uint8_t> image(b_rows * row_elems * eb_);
      std::memcpy(image.data(), bias->data(), 4 * bias->size());
      add_segment(layer.name + ".bias", hbm, std::move(image));
    }
    check_width(b_rows, kMaxCount, "bias rows (DMA groups)");
    check_width(tl.bias_slot * row_elems * eb_ / 4 + N, field_max(Opcode::kActivate, "bias"),
                "bias UB word (ACTIVATE bias)");
    DmaFields d;
    d.hbm_addr = hbm;
    d.ub_row = std::uint32_t(tl.bias_slot);
    d.elems = std::uint16_t(row_elems);
    d.pack = std::uint16_t(row_elems);
    d.groups = std::uint16_t(b_rows);
    d.group_stride = std::uint32_t(row_elems * eb_);
    emit(dma(Opcode::kDmaLoad, d, 0, 0));
    hand_off(kSemPoolReady, Unit::kVector);
  }
  if (fifo_) top_up_weights(0);
  // The input transfers of the M tile being emitted (paced: its first MATMULs follow them).
  std::vector<DmaFields> input = x_dma ? input_transfers(0) : std::vector<DmaFields>();
  if (x_dma) {
    emit_input(0, input, 0, input.size());
    // The first weight tile enters the array only with the input there too, as when it loaded
    // behind the input: its early arrival hides the DMA, and the layer's compute span still
    // opens when its data is ready.
    hand_off(kSemFirstInput, Unit::kWeightLoad);
    weights_after_dma_ = last_dma_;
  } else if (weight_engines_ > 0 && last_dma_ && last_dma_ != weights_after_dma_) {
    // The fills no longer follow engine 0's transfers (the zeroed border, earlier stores). A
    // transfer signals once: a later node behind the same one waits behind this node's wait.
    hand_off(kSemFirstInput, Unit::kWeightLoad, last_dma_);
    weights_after_dma_ = last_dma_;
  }
  // The first weight tile, unless the node before loaded it.
  if (weight_dmas_ == first_tile) emit_weight_tile(tl, weights, 0);
  struct Pass {
    std::uint64_t ub_row, ub_stride, rows, acc_row;
  };
  for (std::uint64_t mt = 0; mt < MT; ++mt) {
    const std::uint64_t m0 = m_lo(mt), m1 = m_hi(mt), rows = m1 - m0;
    const std::vector<RowSeg> segs = taps ? row_segments(m0, m1, g.OH, g.OW)
                                          : std::vector<RowSeg>();
    const Band band = taps && !in_res ? band_of(g, m0, m1) : Band();
    const BandLayout layout = taps && !in_res ? band_layout(g, plan, band) : BandLayout();
    // The next M tile's input (input_transfers).
    std::vector<DmaFields> next_input =
        !x_dma || mt + 1 >= MT ? std::vector<DmaFields>() : input_transfers(mt + 1);
    // UB row of anchor pixel (iy, ix) of image b in band image img (resident: chunk img).
    auto in_row = [&](std::uint64_t img, std::uint64_t b, std::uint64_t iy, std::uint64_t ix) {
      if (in_res) {
        return in.ub.row(plan.images[img].c0 / cw_, b, std::int64_t(iy) - std::int64_t(g.pad_h),
                         std::int64_t(ix) - std::int64_t(g.pad));
      }
      std::uint64_t p = 0;
      while (band.parts[p].b != b) ++p;
      const BandPart* part = &band.parts[p];
      const std::uint64_t base = x_slot(mt) + layout.at(img, p);
      const BandImage& im = plan.images[img];
      if (im.compact) {
        const AnchorGrid a = anchor_grid(g, im, *part);
        return base + (iy - a.y0) / im.ystep * a.cols + (ix - a.x0) / im.xstep;
      }
      return base + (iy - part->iy0) * g.Wp + ix;
    };
    // The MATMUL passes of output tile (mt, nt) over K tile k (the kt-th of its MXU).
    auto passes_of = [&](std::uint64_t nt, std::uint64_t kt, std::uint64_t k) {
      const std::uint64_t t = mt * NT + nt;
      std::vector<Pass> passes;
      if (taps) {
        // One pass per output row segment (merged when the input rows continue the stride).
        // A compact image holds every xstep-th anchor of a row in consecutive UB rows.
        const KTile& kti = tl.ktile(nt, k);
        const BandImage& im = plan.images[kti.img];
        const std::uint64_t stride = im.compact ? g.s / im.xstep : g.s;
        for (const RowSeg& seg : segs) {
          Pass p{in_row(kti.img, seg.b, seg.oy * g.s + kti.ky * g.dh,
                        seg.ox0 * g.s + kti.kx * g.dw),
                 stride, seg.ox1 - seg.ox0, acc_slot(t) + (seg.m - m0)};
          if (!passes.empty()) {
            Pass& q = passes.back();
            if (q.ub_row + q.rows * stride == p.ub_row && q.acc_row + q.rows == p.acc_row) {
              q.rows += p.rows;
              continue;
            }
          }
          passes.push_back(p);
        }
      } else if (paced && mt > 0 && kt == 0 && nt < U) {
        for (const DmaFields& d : input) {
          const std::uint64_t m = (d.ub_row - x_slot(mt)) / XS;
          passes.push_back({d.ub_row + tl.k_first + k, XS, d.groups, acc_slot(t) + m});
        }
      } else if (tl.k_major) {
        passes.push_back({x_slot(mt) + (tl.k_first + k) * m_tile, 1, rows, acc_slot(t)});
      } else {
        passes.push_back({x_slot(mt) + tl.k_first + k, XS, rows, acc_slot(t)});
      }
      return passes;
    };
    // Engine 0's input transfers of the next M tile (weight fills on engines of their own): the
    // sequencer issues in program order, so transfers queued beyond the unit queue's depth
    // ahead of a MATMUL hold it back until the DMA has run them. A whole tile's worth ahead of
    // this tile's first MATMUL (engine 0 still busy with this tile's input, or the slot freed
    // only as an earlier tile's MATMULs end) would let the array drain: they go in shares
    // spread evenly over this tile's MATMUL passes and its end, a share half the queue at least
    // (short transfers still go out in runs), with engine 0's stores behind them. Transfers
    // not cut short behind M tile 0 go first, whole: the first MATMUL waits for tile 0's input
    // anyway, and the layer's compute span opens with tile 1's mostly loaded.
    const bool spread = weight_engines_ > 0 && !next_input.empty() && (mt > 0 || cut);
    std::uint64_t positions = 1, shares = 0, at_pass = 0;
    if (spread) {
      // (Over all K tiles: their order does not change the count.)
      for (std::uint64_t nt = 0; nt < NT; ++nt) {
        for (std::uint64_t kt = 0; kt < KT; ++kt) positions += passes_of(nt, kt, kt).size();
      }
      const std::uint64_t size = std::max(half, ceil_div(next_input.size(), positions));
      shares = ceil_div(next_input.size(), size);
    }
    // Before pass p (p = positions - 1: the tile's end) the shares that fall there.
    std::uint64_t shares_sent = 0;
    auto input_share = [&](std::uint64_t p) {
      while (shares_sent < shares && shares_sent * positions / shares <= p) {
        emit_input(mt + 1, next_input, next_input.size() * shares_sent / shares,
                   next_input.size() * (shares_sent + 1) / shares);
        ++shares_sent;
      }
    };
    // Engine 0's stores held back to the tile's end; one goes earlier if an ACTIVATE of this
    // tile needs its output slot (tile s's slot is tile s + O's), so every wait follows its
    // signal in program order.
    std::deque<std::uint64_t> engine0_stores;
    auto flush_stores = [&](std::uint64_t before) {
      while (!engine0_stores.empty() && engine0_stores.front() + O <= before) {
        const std::vector<DmaFields> stores = store_pieces(engine0_stores.front());
        emit_store(engine0_stores.front(), stores, 0, stores.size());
        engine0_stores.pop_front();
      }
    };
    // Output tile st is stored: on engine 0 when spread, behind the tile's input shares.
    auto store_tile = [&](std::uint64_t st) {
      if (spread && !on_store_engine(st)) {
        engine0_stores.push_back(st);
      } else {
        const std::vector<DmaFields> stores = store_pieces(st);
        emit_store(st, stores, 0, stores.size());
      }
    };
    // An ACTIVATE of `rows` accumulator rows from acc_row into UB rows from ub_row, with the
    // layer's function and requantisation: one tile's (emit_activates) or a group's.
    auto activate = [&](std::uint64_t acc_row, std::uint64_t rows, std::uint64_t cols,
                        std::uint64_t ub_row) {
      Instruction act;
      act.op = Opcode::kActivate;
      act.acc_row = std::uint32_t(acc_row);
      act.rows = std::uint32_t(rows);
      act.cols = std::uint16_t(cols);
      act.ub_row = std::uint32_t(ub_row);
      act.func = layer.activation;
      act.multiplier = multiplier;
      act.shift = shift;
      act.zero_point = q.zero_point;
      act.scale_a = fp32_bits(q.scale_a);
      act.scale_out = fp32_bits(q.scale_out);
      return act;
    };
    // The ACTIVATEs of output tile t (and, trailing, the store of tile t - 2U before them).
    auto emit_activates = [&](std::uint64_t t) {
      if (tl.act_lag > 0 && t >= 2 * U && !out_res) store_tile(t - 2 * U);
      const std::uint64_t nt = t % NT, u = mxu(t), l = local(t);
      const std::uint64_t n0 = tl.ntiles[nt].n0, nts = tl.ntiles[nt].nts;
      flush_stores(t);
      // Straight into the resident layout: one ACTIVATE per output row segment when the
      // consumer's zero border breaks the rows apart.
      std::vector<Pass> acts;
      if (!out_res) {
        acts.push_back({o_slot(t), 1, rows, acc_slot(t)});
      } else if (out.ub.pad == 0) {
        acts.push_back({out.ub.row(n0 / cw_, 0, 0, 0) + m0, 1, rows, acc_slot(t)});
      } else {
        for (const RowSeg& seg : row_segments(m0, m1, layer.out.h, layer.out.w)) {
          acts.push_back(
              {out.ub.row(n0 / cw_, seg.b, std::int64_t(seg.oy), std::int64_t(seg.ox0)), 1,
               seg.ox1 - seg.ox0, acc_slot(t) + (seg.m - m0)});
        }
      }
      for (std::size_t i = 0; i < acts.size(); ++i) {
        Instruction act = activate(acts[i].acc_row, acts[i].rows, nts, acts[i].ub_row);
        if (b_rows > 0) {
          act.flags = kFlagBias;
          act.src_row = std::uint32_t(tl.bias_slot * row_elems * eb_ / 4 + n0);
        }
        if (tl.raw) act.flags = kFlagRaw;
        if (i == 0) {
          act.wait = bit(ready(t)) | (t >= O && !out_res ? bit(out_free(t)) : 0);
        }
        if (i + 1 == acts.size()) {
          act.signal = (out_res ? 0 : bit(out_ready(t))) |
                       (l + A < tiles(u) ? bit(mxu_sem(u, kMxuAccFree)) : 0);
        }
        emit(act);
      }
    };
    // The ACTIVATE of group i of this M tile and, right behind it, its stores: on an engine of
    // their own they hold back nothing, and the ACTIVATE two groups on waits for them to free
    // its output slot group (queued only behind that ACTIVATE, the vector unit waited for each
    // store to start and end: 396 compute cycles against 350 for M = 1, K = 3, N = 3072).
    auto emit_group_activate = [&](std::uint64_t i) {
      const std::uint64_t gi = mt * GPM + i, t = mt * NT + group_first(i);
      Instruction act = activate(acc_slot(t), (group_end(i) - group_first(i)) * m_tile,
                                 tl.ntiles[t % NT].nts, o_slot(t));
      act.wait = bit(ready(t)) | (gi >= 2 ? bit(out_free(t)) : 0);
      act.signal = bit(out_ready(t)) | (gi + A / G < GT ? bit(mxu_sem(0, kMxuAccFree)) : 0);
      emit(act);
      emit_group_store(gi);
    };
    // The first group whose ACTIVATEs wait to be emitted (GemmTiling::act_lag).
    std::uint64_t activated = 0;
    // The N tiles in groups of U, one per MXU, K tile by K tile over the group (one MXU: N tile
    // by N tile), then the ACTIVATEs of the group act_lag groups earlier.
    for (std::uint64_t g0 = 0; g0 < NT; g0 += U) {
      const std::uint64_t size = std::min(U, NT - g0);
      for (std::uint64_t kt = 0; kt < KT; ++kt) {
        for (std::uint64_t nt = g0; nt < g0 + size; ++nt) {
          const std::uint64_t t = mt * NT + nt;
          const std::uint64_t u = mxu(t), l = local(t);
          const std::uint64_t nts = tl.ntiles[nt].nts;
          // Weight tile j of the node in emission order (GemmTiling::weight_tile).
          const std::uint64_t share = g0 * KT + kt * size + (nt - g0);
          const std::uint64_t j = mt * NT * KT + share;
          // The group's MXUs take the K tiles in turn, each from its own start spread evenly over
          // the K tiles (GemmTiling::weight_tile), so streams running side by side, even a few K
          // steps apart, read different UB rows: K tile k sits in rows x + k + m * x_stride (row
          // by row), so when x_stride divides ub.banks, in different banks, or in rows
          // x + k * rows + m (k_major), where a stream granted beside another starts a cycle or
          // two later.
          const std::uint64_t k = (tl.first_k(nt - g0, size) + kt) % KT;
          // Tiles ahead, so the weight stream never waits behind this tile's MATMULs; near the
          // last tile, the next GEMM node's first.
          top_up_weights(j);
          if (weight_engines_ == 0) {
            emit_input(mt + 1, next_input, next_input.size() * share / (NT * KT),
                       next_input.size() * (share + 1) / (NT * KT));
          } else if (share == 0 && !spread) {
            emit_input(mt + 1, next_input, 0, next_input.size());
          }
          // Output tile t - 2U (its MXU's tile before last) is stored behind tile t's first
          // weight load: by then the vector unit has long written it, so no weight load waits
          // behind a store that waits for the vector unit (as one queued right after tile t - 1
          // would), and it frees its slot before tile t's ACTIVATE needs it.
          // Spread: engine 0's stores go behind the tile's input shares (below).
          // Trailing ACTIVATEs (act_lag > 0) store tile t - 2U behind tile t's ACTIVATEs instead.
          if (!grouped && tl.act_lag == 0 && kt == 0 && t >= 2 * U && !out_res) {
            store_tile(t - 2 * U);
          }
          Instruction lw;
          lw.op = Opcode::kLoadWeights;
          lw.instance = std::uint8_t(u);
          // MXU 0's first tile takes the node's hand-offs (resident input, border, first input)
          // and passes them on: every other MXU's first tile starts after it.
          if (mt == 0 && kt == 0 && nt < U) {
            if (u == 0) {
              for (std::uint64_t v = 1; v < U; ++v) lw.signal |= bit(mxu_sem(v, kMxuGo));
            } else {
              lw.wait = bit(mxu_sem(u, kMxuGo));
            }
          }
          lw.rows = std::uint32_t(tl.ktile(nt, k).kts);
          lw.cols = std::uint16_t(nts);
          lw.ub_stride = std::uint16_t(tl.ntiles[nt].blocks);
          if (tl.transpose) lw.flags |= kFlagTranspose;
          if (fifo_) {
            // The FIFO orders it behind its tile's DMA: no semaphore.
            lw.flags |= kFlagFifo;
          } else {
            lw.ub_row = std::uint32_t(weight_slot(load_weights_at_.size()));
            lw.wait |= bit(kSemWReady);
          }
          emit(lw);
          const std::vector<Pass> passes = passes_of(nt, kt, k);
          for (std::size_t i = 0; i < passes.size(); ++i) {
            if (spread) input_share(at_pass++);
            Instruction mm;
            mm.op = Opcode::kMatmul;
            mm.flags = kt > 0 ? kFlagAccumulate : 0;
            mm.ub_row = std::uint32_t(passes[i].ub_row);
            mm.ub_stride = std::uint16_t(passes[i].ub_stride);
            mm.rows = std::uint32_t(passes[i].rows);
            mm.acc_row = std::uint32_t(passes[i].acc_row);
            mm.instance = std::uint8_t(u);
            if (paced && mt > 0 && x_dma && nt < U && kt == 0) {
              mm.wait |= bit(second_gather(mt, i) ? gather_ready : mxu_sem(u, kMxuXReady));
            } else if (i == 0 && x_dma && nt < U && kt == 0) {
              if (gathers_on(mt, false)) mm.wait |= bit(mxu_sem(u, kMxuXReady));
              if (gathers_on(mt, true)) mm.wait |= bit(gather_ready);
            }
            const bool first_of_slots = grouped ? in_group(t) == 0 && group(t) >= A / G : l >= A;
            if (i == 0 && kt == 0 && first_of_slots) mm.wait |= bit(mxu_sem(u, kMxuAccFree));
            if (i + 1 == passes.size() && kt + 1 == KT) {
              // Grouped, only the group's last tile: one width, so it completes last.
              if (!grouped || nt + 1 == group_end(group_in(nt))) mm.signal |= bit(ready(t));
              // The slot's next tile: each engine with a transfer into it waits.
              if (x_dma && nt + U >= NT && mt + S < MT) {
                if (gathers_on(mt + S, false)) mm.signal |= bit(mxu_sem(u, kMxuXFree));
                if (gathers_on(mt + S, true)) mm.signal |= bit(gather_free);
              }
            }
            emit(mm);
          }
        }
      }
      while (grouped && activated < GPM &&
             (group_end(activated) - 1 + tl.act_lag <= g0 || g0 + 1 == NT)) {
        emit_group_activate(activated++);
      }
      for (; !grouped && activated <= g0 / U &&
             (activated + tl.act_lag <= g0 / U || g0 + size == NT);
           ++activated) {
        for (std::uint64_t nt = activated * U; nt < std::min((activated + 1) * U, NT); ++nt) {
          emit_activates(mt * NT + nt);
        }
      }
    }
    if (spread) input_share(positions - 1);
    flush_stores(kNever);
    input = std::move(next_input);
  }
  if (out_res) return;
  for (std::uint64_t t = T >= 2 * U ? T - 2 * U : 0; !grouped && t < T; ++t) {
    const std::vector<DmaFields> pieces = store_pieces(t);
    emit_store(t, pieces, 0, pieces.size());
  }
  // On the store engine: engine 0's next transfer (the next node's) waits for the last store.
  if (store_engine_) hand_off(kSemStoresDone, Unit::kDma, last_store_dma_);
}

// Weight tile j = (t, kt) of a node: K_t x N_t row-major after all tiles of earlier column
// blocks (full width nw) and earlier K tiles of this one. Weight tiles form one stream over the
// whole program, alternating between the two weight slots: the load of tile g waits until the
// LOAD_WEIGHTS of tile g - 2 has read that slot, which then signals w_free (set here, so every
// signal has its wait). With the weight FIFO the load fills the FIFO's next entry instead: the
// hardware orders it (a fill waits for a free entry, a read for its fill); lower_gemm keeps the
// stream at most depth - 1 tiles ahead of the reads in program order, as the ISA requires.
void Lowerer::emit_weight_tile(const GemmTiling& tl, std::uint64_t weights, std::uint64_t j) {
  const std::uint64_t g = weight_dmas_++;
  const auto [t, k] = tl.weight_tile(j);
  const std::uint64_t nt = t % tl.NT;
  if (fifo_) {
    Instruction load = dma(Opcode::kDmaLoad, weight_source(tl, weights, t, k, 0), 0, 0);
    load.flags = kFlagWeights;
    load.dma.fifo = std::uint8_t(nt % tl.mxus);  // the FIFO of the MXU that runs N tile nt
    if (weight_engines_ > 0) {
      load.instance = std::uint8_t(kFirstWeightEngine + load.dma.fifo % weight_engines_);
    }
    ++fifo_fills_[load.dma.fifo];
    emit(load);
    return;
  }
  std::uint64_t wait = 0;
  if (g >= 2) {
    wait = bit(kSemWFree);
    program_.instructions.add_signal(load_weights_at_.at(g - 2), bit(kSemWFree));
  }
  emit(dma(Opcode::kDmaLoad, weight_source(tl, weights, t, k, weight_slot(g)), wait,
           bit(kSemWReady)));
}

GemmTiling Lowerer::n_share(const GemmTiling& tl) const {
  const std::uint64_t KT = tl.KT;
  const auto [nt0, nt1] = share_.part(tl.NT);
  GemmTiling s = tl;
  s.ntiles.assign(tl.ntiles.begin() + nt0, tl.ntiles.begin() + nt1);
  if (tl.per_n) s.ktiles.assign(tl.ktiles.begin() + nt0 * KT, tl.ktiles.begin() + nt1 * KT);
  s.NT = nt1 - nt0;
  // Tiles are stored N tile by N tile: this share's are one contiguous run of the weights.
  s.w_off.assign(tl.w_off.begin() + nt0 * KT, tl.w_off.begin() + nt1 * KT);
  if (!s.w_off.empty()) {
    s.w_elems = (nt1 < tl.NT ? tl.w_off[nt1 * KT] : tl.w_elems) - s.w_off[0];
  }
  // The M tile and slots stay those chosen for the whole node's MXUs.
  s.mxus = std::max<std::uint64_t>(1, std::min(tl.mxus, s.NT));
  return s;
}

bool Lowerer::k_split_node(std::size_t i) const {
  const OpKind kind = model_.nodes[i].kind;
  return share_.k_split && share_.cores > 1 && (kind == OpKind::kDense || kind == OpKind::kMatmul);
}

std::pair<std::uint64_t, std::uint64_t> Lowerer::k_range(std::uint64_t KT,
                                                         std::uint32_t core) const {
  return {ceil_div(core * KT, share_.cores), ceil_div((core + 1) * KT, share_.cores)};
}

GemmTiling Lowerer::k_share(const GemmTiling& tl, std::uint64_t limit) const {
  const auto [kt0, kt1] = k_range(tl.KT, share_.core);
  GemmTiling s = tl;
  s.raw = true;
  s.k_first = kt0;
  s.KT = kt1 - kt0;
  s.ktiles.assign(tl.ktiles.begin() + kt0, tl.ktiles.begin() + kt1);
  s.w_off.clear();
  for (std::uint64_t nt = 0; nt < tl.NT; ++nt) {
    for (std::uint64_t kt = kt0; kt < kt1; ++kt) s.w_off.push_back(tl.w_off[nt * tl.KT + kt]);
  }
  // The output slots hold raw rows (raw_w UB rows per accumulator row), where the bias was:
  // smaller M tiles when they do not fit.
  s.raw_w = raw_rows_per_acc_row(C_, std::uint64_t(config_.ub_row_elems()) * eb_);
  s.out_slots = 2 * s.mxus;
  s.split_stores = false;
  s.act_tiles = 1;
  while (s.m_tile > 1 && s.o_slot + 2 * s.mxus * s.m_tile * s.raw_w > limit) {
    s.m_tile = ceil_div(s.m_tile, 2);
  }
  if (s.o_slot + 2 * s.mxus * s.m_tile * s.raw_w > limit) {
    fail("compiler.parallelism = model_k: the raw partial sums of one row (" +
         std::to_string(s.raw_w) + " UB rows per output slot) do not fit the UB's staging rows");
  }
  s.MT = ceil_div(s.M, s.m_tile);
  return s;
}

std::size_t Lowerer::emit_k_reduction(const Node& layer, const Placement& out, const Requant& q,
                                      const std::vector<std::uint32_t>* bias,
                                      std::size_t node_begin) {
  // Every core's partials are in HBM once the cores meet.
  emit_barrier(node_begin, true);
  const std::size_t begin = program_.instructions.size();
  const GemmTiling& tl = whole_[layer_index_];
  const std::uint64_t M = tl.M, N = tl.N, KT = tl.KT;
  const std::uint64_t row_elems = config_.ub_row_elems(), row_bytes = row_elems * eb_;
  const std::uint64_t W = raw_rows_per_acc_row(C_, row_bytes);
  // UB above the weight slots (the next node's prefetched tiles): the bias, one buffer of raw
  // rows, one output staging slot; accumulator rows from 0.
  const std::uint64_t b_rows = bias_rows(layer, config_, model_.dtype);
  const std::uint64_t bias_slot = weight_rows(), buf = bias_slot + b_rows;
  const std::uint64_t limit = plan_.staging_limit[layer_index_];
  const std::uint64_t mr =
      std::min({M, limit > buf ? (limit - buf) / (W + 1) : 0, acc_rows_, kMaxCount});
  if (mr == 0) {
    fail("compiler.parallelism = model_k: no UB rows left for the reduction of the partial sums");
  }
  const std::uint64_t stage = buf + mr * W;
  if (b_rows > 0) {
    const std::uint64_t hbm = plan_.biases[layer_index_];
    if (bias) {
      std::vector<std::uint8_t> image(b_rows * row_elems * eb_);
      std::memcpy(image.data(), bias->data(), 4 * bias->size());
      add_segment(layer.name + ".bias", hbm, std::move(image));
    }
    DmaFields d;
    d.hbm_addr = hbm;
    d.ub_row = std::uint32_t(bias_slot);
    d.elems = std::uint16_t(row_elems);
    d.pack = std::uint16_t(row_elems);
    d.groups = std::uint16_t(b_rows);
    d.group_stride = std::uint32_t(row_elems * eb_);
    // The first partial's load signals for it: one engine completes in order.
    emit(dma(Opcode::kDmaLoad, d, 0, 0));
  }
  std::vector<std::uint32_t> from;  // the cores with K tiles, in core order
  for (std::uint32_t d = 0; d < share_.cores; ++d) {
    const auto [kt0, kt1] = k_range(KT, d);
    if (kt1 > kt0) from.push_back(d);
  }
  struct Piece {
    std::uint64_t m0, rows, nt;
  };
  std::vector<Piece> pieces;
  const auto [nt0, nt1] = share_.part(tl.NT);
  for (std::uint64_t m0 = 0; m0 < M; m0 += mr) {
    for (std::uint64_t nt = nt0; nt < nt1; ++nt) pieces.push_back({m0, std::min(mr, M - m0), nt});
  }
  // One buffer each way, in turn: partial load -> acc.load (pool_ready, pool_free), then
  // activate -> store (out_ready, out_free). The sums go in core order: fp32 adds
  // ((p_0 + p_1) + p_2) ..., each p_d summed over core d's K tiles in order.
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    const Piece& p = pieces[i];
    const std::uint64_t n0 = tl.ntiles[p.nt].n0, nts = tl.ntiles[p.nt].nts;
    for (std::size_t j = 0; j < from.size(); ++j) {
      const bool first = i == 0 && j == 0, last = i + 1 == pieces.size() && j + 1 == from.size();
      DmaFields d;
      d.hbm_addr = partials_[layer_index_] + (std::uint64_t(from[j]) * M * N + p.m0 * N + n0) * 4;
      d.ub_row = std::uint32_t(buf);
      d.elems = std::uint16_t(nts * 4 / eb_);
      d.pack = std::uint16_t(row_elems);
      d.groups = std::uint16_t(p.rows);
      d.group_stride = std::uint32_t(p.rows > 1 ? N * 4 : 0);
      d.ub_stride = std::uint16_t(raw_rows_per_acc_row(nts, row_bytes));
      emit(dma(Opcode::kDmaLoad, d, first ? 0 : bit(kSemPoolFree), bit(kSemPoolReady)));
      Instruction add;
      add.op = Opcode::kAccLoad;
      add.flags = j > 0 ? kFlagAccumulate : 0;
      add.ub_row = std::uint32_t(buf);
      add.rows = std::uint32_t(p.rows);
      add.cols = std::uint16_t(nts);
      add.acc_row = 0;
      add.wait = bit(kSemPoolReady);
      add.signal = last ? 0 : bit(kSemPoolFree);
      emit(add);
    }
    Instruction act;
    act.op = Opcode::kActivate;
    act.acc_row = 0;
    act.rows = std::uint32_t(p.rows);
    act.cols = std::uint16_t(nts);
    act.ub_row = std::uint32_t(stage);
    act.func = layer.activation;
    act.multiplier = q.multiplier;
    act.shift = q.shift;
    act.zero_point = q.zero_point;
    act.scale_a = fp32_bits(q.scale_a);
    act.scale_out = fp32_bits(q.scale_out);
    if (b_rows > 0) {
      act.flags = kFlagBias;
      act.src_row = std::uint32_t(bias_slot * row_elems * eb_ / 4 + n0);
    }
    act.wait = i > 0 ? bit(kSemOutFree) : 0;
    act.signal = bit(kSemOutReady);
    emit(act);
    std::vector<DmaFields> stores;
    pixel_blocks(p.m0, p.m0 + p.rows, out.hbm,
                 [&](std::uint64_t first, std::uint64_t b, std::uint64_t py, std::uint64_t px,
                     std::uint64_t pixels, std::uint64_t rows, std::uint64_t row_stride) {
                   stores.push_back(block(out.hbm.addr(b, std::int64_t(py), std::int64_t(px)) +
                                              n0 * eb_,
                                          stage + (first - p.m0), rows, row_stride, pixels,
                                          out.hbm.pixel_bytes(), nts));
                 });
    for (std::size_t k = 0; k < stores.size(); ++k) {
      const bool last = k + 1 == stores.size();
      emit(dma(Opcode::kDmaStore, stores[k], k == 0 ? bit(kSemOutReady) : 0,
               last && i + 1 < pieces.size() ? bit(kSemOutFree) : 0));
    }
  }
  return begin;
}

void Lowerer::emit_barrier(std::size_t node_begin, bool always) {
  if (share_.cores == 1 || (layer_index_ + 1 == model_.nodes.size() && !always)) return;
  bool stored = await_last_stores(node_begin);
  for (std::uint32_t d = 0; d < share_.cores; ++d) {
    if (d == share_.core) continue;
    Instruction sig;
    sig.op = Opcode::kSignalCore;
    sig.core = std::uint8_t(d);
    sig.signal = bit(kSemPeersDone);
    sig.wait = std::exchange(stored, false) ? bit(kSemNodeStored) : 0;
    emit(sig);
  }
  Instruction nop;
  nop.op = Opcode::kNop;
  nop.wait = bit(kSemPeersDone);
  for (std::uint32_t d = 1; d < share_.cores; ++d) emit(nop);
}

bool Lowerer::await_last_stores(std::size_t begin) {
  // The last HBM write on each DMA engine since `begin` (each engine completes in order).
  std::uint64_t stored = 0;
  std::vector<bool> seen(config_.core.dma_engines, false);
  const InstructionList& insts = program_.instructions;
  for (std::size_t pc = insts.size(); pc-- > begin;) {
    if (insts.op(pc) != Opcode::kDmaStore || seen[insts.instance(pc)]) continue;
    seen[insts.instance(pc)] = true;
    program_.instructions.add_signal(pc, bit(kSemNodeStored));
    ++stored;
  }
  Instruction nop;
  nop.op = Opcode::kNop;
  nop.wait = bit(kSemNodeStored);
  for (; stored > 1; --stored) emit(nop);
  return stored == 1;
}

void Lowerer::emit_stage_handover(std::size_t run_begin) {
  const std::uint32_t next_core = stage_.core + 1;
  if (std::find(stage_.stage_of.begin(), stage_.stage_of.end(), next_core) ==
      stage_.stage_of.end()) {
    return;  // the last stage
  }
  // The signal waits for the run's last HBM write on every DMA engine.
  const bool stored = await_last_stores(run_begin);
  Instruction sig;
  sig.op = Opcode::kSignalCore;
  sig.core = std::uint8_t(next_core);
  sig.signal = bit(kSemPeersDone);
  sig.wait = stored ? bit(kSemNodeStored) : 0;
  emit(sig);
}

DmaFields Lowerer::weight_source(const GemmTiling& tl, std::uint64_t weights, std::uint64_t t,
                                 std::uint64_t k, std::uint64_t ub) const {
  const std::uint64_t nt = t % tl.NT;
  const KTile& kt = tl.ktile(nt, k);
  const std::uint64_t n0 = tl.ntiles[nt].n0, nts = tl.ntiles[nt].nts;
  if (!tl.b_tensor) {
    return block(weights + tl.w_off[nt * tl.KT + k] * eb_, ub, 1, 0, kt.kts, nts * eb_, nts);
  }
  const std::uint64_t part = t / tl.NT / tl.MT, head = part % tl.heads;
  const HbmTensor& b = tl.b;
  // Pixel p of the part's sample, from channel c (pixels are contiguous: b has no border).
  auto at = [&](std::uint64_t p, std::uint64_t c) {
    return b.addr(part / tl.heads, std::int64_t(p / b.shape.w), std::int64_t(p % b.shape.w)) +
           c * eb_;
  };
  if (tl.transpose) {
    return block(at(n0, head * tl.K + kt.k0), ub, 1, 0, nts, b.pixel_bytes(), kt.kts);
  }
  return block(at(kt.k0, head * tl.N + n0), ub, 1, 0, kt.kts, b.pixel_bytes(), nts);
}

void Lowerer::lower_pool(const Node& layer, const Placement& in, const Placement& out,
                         std::uint64_t limit, const Requant& q) {
  const bool average = layer.kind != OpKind::kMaxPool2d;
  const bool in_res = in.resident, out_res = out.resident;
  // The pool reads a grid of the padded input, W columns wide including the zero border (its
  // input has that border in HBM and, when resident, in the UB: see the memory plan).
  const std::int64_t pad = layer.padding;
  const std::uint64_t W = layer.in.w + 2 * std::uint64_t(pad), C = layer.in.c;
  const std::uint64_t OH = layer.out.h, OW = layer.out.w;
  const std::uint64_t k = layer.kernel_h, s = layer.stride;
  const std::uint64_t row_bytes = std::uint64_t(config_.ub_row_elems()) * eb_;
  check_width(W, kMaxPoolGrid, "padded input width (POOL in_w)");
  check_width(k, kMaxPoolGrid, "window height (POOL kernel_h)");
  check_width(layer.kernel_w, kMaxPoolGrid, "window width (POOL kernel_w)");
  check_width(s, kMaxPoolStride, "stride (POOL stride)");
  // Two input bands of in_h(ob) * W rows and two output bands of ob * OW rows, each only when
  // that side goes through HBM.
  auto in_h = [&](std::uint64_t ob) { return (ob - 1) * s + k; };
  auto need = [&](std::uint64_t ob) { return pool_staging(layer, in_res, out_res, ob); };
  if (need(1) > limit) {
    fail("needs 2 x " + std::to_string(k * W) + " rows (" + std::to_string(k) +
         " input rows of width " + std::to_string(W) + ", double-buffered) + 2 x " +
         std::to_string(OW) + " (one output row, double-buffered) = " +
         std::to_string(need(1)) + " unified-buffer rows, but the unified buffer holds " +
         std::to_string(config_.ub_rows(model_.dtype)) + " rows of " +
         std::to_string(row_bytes) + " bytes (ub.capacity_bytes = " +
         std::to_string(config_.ub.capacity_bytes) +
         "); it would fit with ub.capacity_bytes >= " + std::to_string(need(1) * row_bytes));
  }
  std::uint64_t ob = 1;
  while (ob < std::min(OH, kMaxCount) && need(ob + 1) <= limit && in_h(ob + 1) <= kMaxPoolGrid) {
    ++ob;
  }
  check_width(in_h(ob), kMaxPoolGrid, "input band height (POOL in_h)");
  const std::uint64_t in_rows = in_res ? 0 : in_h(ob) * W, out_rows = out_res ? 0 : ob * OW;
  const std::uint64_t in_slot[2] = {0, in_rows};
  const std::uint64_t out_slot[2] = {2 * in_rows, 2 * in_rows + out_rows};
  // A padded resident output breaks the output rows apart: one POOL per output row.
  const bool per_row = out_res && out.ub.pad > 0;

  struct PoolBand {
    std::uint64_t b, c0, cc, oy0, rows;
  };
  // This core's output rows [r0, r1) of samples x OH (CoreShare), per sample and channel chunk.
  std::vector<PoolBand> bands;
  const auto [r0, r1] = share_.part(layer.samples * OH);
  for (std::uint64_t b = r0 / OH; b * OH < r1; ++b) {
    const std::uint64_t ya = std::max(r0, b * OH) - b * OH, yb = std::min(r1, b * OH + OH) - b * OH;
    for (std::uint64_t c0 = 0; c0 < C; c0 += cw_) {
      for (std::uint64_t oy0 = ya; oy0 < yb; oy0 += ob) {
        bands.push_back({b, c0, std::min<std::uint64_t>(cw_, C - c0), oy0, std::min(ob, yb - oy0)});
      }
    }
  }
  const std::uint64_t J = bands.size();
  if (J == 0) return;  // another core's share holds every row
  auto emit_load = [&](std::uint64_t j) {
    const PoolBand& band = bands[j];
    DmaFields d = block(in.hbm.addr(band.b, std::int64_t(band.oy0 * s) - pad, -pad) + band.c0 * eb_,
                        in_slot[j % 2], in_h(band.rows), in.hbm.row_bytes(), W,
                        in.hbm.pixel_bytes(), band.cc);
    emit(dma(Opcode::kDmaLoad, d, j >= 2 ? bit(kSemPoolFree) : 0, bit(kSemPoolReady)));
  };
  auto emit_store = [&](std::uint64_t j) {
    const PoolBand& band = bands[j];
    DmaFields d = block(out.hbm.addr(band.b, std::int64_t(band.oy0), 0) + band.c0 * eb_,
                        out_slot[j % 2], band.rows, out.hbm.row_bytes(), OW,
                        out.hbm.pixel_bytes(), band.cc);
    emit(dma(Opcode::kDmaStore, d, bit(kSemOutReady), j + 2 < J ? bit(kSemOutFree) : 0));
  };

  if (!in_res) emit_load(0);
  for (std::uint64_t j = 0; j < J; ++j) {
    if (!in_res && j + 1 < J) emit_load(j + 1);
    if (!out_res && j > 0) emit_store(j - 1);
    const PoolBand& band = bands[j];
    const std::uint64_t cc = band.c0 / cw_;
    const std::uint64_t src =
        in_res ? in.ub.row(cc, band.b, std::int64_t(band.oy0 * s) - pad, -pad) : in_slot[j % 2];
    const std::uint64_t pools = per_row ? band.rows : 1;
    for (std::uint64_t r = 0; r < pools; ++r) {
      Instruction pool;
      pool.op = Opcode::kPool;
      pool.ub_row = std::uint32_t(src + r * s * W);
      pool.dst_row = std::uint32_t(
          out_res ? out.ub.row(cc, band.b, std::int64_t(band.oy0 + r), 0) : out_slot[j % 2]);
      pool.in_h = std::uint16_t(per_row ? k : in_h(band.rows));
      pool.in_w = std::uint16_t(W);
      pool.cols = std::uint16_t(band.cc);
      pool.kernel_h = std::uint16_t(k);
      pool.kernel_w = std::uint16_t(layer.kernel_w);
      pool.stride = std::uint8_t(s);
      if (average) {
        pool.flags = kFlagAverage;
        pool.multiplier = q.multiplier;
        pool.shift = q.shift;
      }
      if (r == 0) {
        pool.wait = (in_res ? 0 : bit(kSemPoolReady)) |
                    (!out_res && j >= 2 ? bit(kSemOutFree) : 0);
      }
      if (r + 1 == pools) {
        pool.signal = (out_res ? 0 : bit(kSemOutReady)) |
                      (!in_res && j + 2 < J ? bit(kSemPoolFree) : 0);
      }
      emit(pool);
    }
  }
  if (!out_res) emit_store(J - 1);

}

// Element-wise nodes (add, mul, activations, softmax along channels), one ADD or VOP per band:
// bands of image rows per (channel chunk, sample), or per sample with every chunk for a row op
// (softmax, the norms) over more than cw channels: its VOP reduces over a pixel's chunks, which
// lie chunk_stride rows apart (a resident tensor's chunk grid, or P rows of a staging slot);
// each input from HBM is loaded into one of two
// slots, the vector instructions write the output straight into its resident layout or into
// one of two output slots that a store drains. Resident operands with a zero border are read
// (or written) one image row per instruction, since their rows break apart at the border.
// Split over cores, only this core's pixels (CoreShare).
void Lowerer::lower_eltwise(const Node& layer, const std::vector<const Placement*>& in,
                            const Placement& out, std::uint64_t limit, const Requant& q,
                            const Values* w) {
  const std::size_t inputs = in.size();
  const std::uint64_t H = layer.out.h, W = layer.out.w, C = layer.out.c;
  std::vector<bool> res;
  for (const Placement* p : in) res.push_back(p->resident);
  const bool loads = std::find(res.begin(), res.end(), false) != res.end();
  check_width(W, kMaxCount, "image width (DMA pixels)");
  // A row op's pixel spans `chunks` UB rows: one band of each input and the output holds them
  // all, chunk after chunk, and one VOP reads them (vop chunk_cols).
  const std::uint64_t chunks = row_chunks(layer);
  if (chunks > 1) check_width(C, field_max(Opcode::kVop, "cols"), "channels (vop cols)");
  auto need = [&](std::uint64_t pixels) {
    return eltwise_staging(layer, res, out.resident, pixels);
  };
  if (need(1) > limit) {
    const std::uint64_t row_bytes = std::uint64_t(config_.ub_row_elems()) * eb_;
    fail("needs " + std::to_string(need(1)) + " unified-buffer rows to stage one pixel" +
         (chunks > 1 ? " (" + std::to_string(chunks) + " rows of " + std::to_string(cw_) +
                           " channels)"
                     : "") +
         " per input and output (double-buffered), but only " +
         std::to_string(limit) + " rows are free (ub.capacity_bytes = " +
         std::to_string(config_.ub.capacity_bytes) + "); it would fit with ub.capacity_bytes >= " +
         std::to_string((ub_rows_ - limit + need(1)) * row_bytes));
  }
  // A causal mask over hq interleaved heads moves to the next query every hq pixels, a VOP's
  // mask every row: the DMAs gather (and scatter) each head's pixels into consecutive UB rows,
  // hq blocks of band.rows * px / hq rows per chunk of a slot, one VOP per head (min_staging
  // keeps such a softmax's operands in HBM). Bands hold whole queries: px a multiple of hq.
  const std::uint64_t hq = layer.causal ? layer.heads : 1;
  if (W % hq != 0) {
    fail("key 'heads': " + std::to_string(hq) + " does not divide the image width " +
         std::to_string(W) + " (an image row must hold whole queries)");
  }
  const std::uint64_t qw = W / hq;  // queries per image row
  // Bands of whole image rows, or of `px` pixels of one image row when one row does not fit.
  std::uint64_t band_rows = H, px = W;
  if (need(W) > limit) {
    const std::uint64_t per_pixel = need(2) - need(1);  // > 0: some operand is staged
    band_rows = 1;
    px = std::min(W - 1, (limit - (need(1) - per_pixel)) / per_pixel);
    px -= px % hq;
    if (px == 0) {
      fail("needs the " + std::to_string(hq) + " heads of one query staged at once, but only " +
           std::to_string(limit) + " unified-buffer rows are free");
    }
  }
  while (band_rows > 1 && (need(band_rows * W) > limit || band_rows > kMaxCount)) --band_rows;
  const std::uint64_t P = band_rows * px;  // staging rows per chunk of a slot
  // Bands of this core's pixels [p0, p1) of samples x H x W (CoreShare, whole queries): runs
  // of up to band_rows whole image rows of a sample, else pieces of up to px pixels of a row.
  struct AddBand {
    std::uint64_t cc, c0, chans, s, y0, rows, x0, px;
  };
  std::vector<AddBand> bands;
  const auto [q0, q1] = share_.part(layer.samples * H * qw);
  const std::uint64_t p0 = q0 * hq, p1 = q1 * hq;
  const std::uint64_t band_chans = chunks > 1 ? C : cw_;  // channels per band
  for (std::uint64_t c0 = 0; c0 < C; c0 += band_chans) {
    const std::uint64_t chans = std::min<std::uint64_t>(band_chans, C - c0);
    for (std::uint64_t row = p0 / W; row * W < p1;) {  // row: s * H + y
      const std::uint64_t s = row / H, y = row % H;
      const std::uint64_t xa = std::max(p0, row * W) - row * W;
      const std::uint64_t xb = std::min(p1, row * W + W) - row * W;
      if (xa == 0 && xb == W && px == W) {
        std::uint64_t rows = 1;
        while (rows < band_rows && y + rows < H && (row + rows + 1) * W <= p1) ++rows;
        bands.push_back({c0 / cw_, c0, chans, s, y, rows, 0, W});
        row += rows;
        continue;
      }
      for (std::uint64_t x0 = xa; x0 < xb; x0 += px) {
        bands.push_back({c0 / cw_, c0, chans, s, y, 1, x0, std::min(px, xb - x0)});
      }
      ++row;
    }
  }
  const std::uint64_t J = bands.size();
  if (J == 0) return;  // another core's share holds every pixel
  std::uint64_t next_slot = 0;
  std::uint64_t in_slot[2][2], out_slot[2];
  const std::uint64_t slot_rows = P * chunks;
  for (std::size_t k = 0; k < inputs; ++k) {
    for (int j = 0; j < 2; ++j) in_slot[k][j] = res[k] ? 0 : (next_slot += slot_rows) - slot_rows;
  }
  for (int j = 0; j < 2; ++j) out_slot[j] = out.resident ? 0 : (next_slot += slot_rows) - slot_rows;
  // A norm's gamma (and beta), `chunks` rows each, loaded once before the first band.
  const std::uint64_t params = next_slot, norm_rows = param_rows(layer);
  if (norm_rows > 0) {
    const std::uint64_t hbm = plan_.weights[layer_index_];
    if (w) {
      std::vector<std::uint8_t> image(norm_rows * C * eb_);
      for (std::uint64_t e = 0; e < norm_rows * C; ++e) {
        if (eb_ == 1) {
          image[e] = std::uint8_t(w->i8[e]);
        } else {
          const std::uint16_t b = fp32_to_bf16(w->f32[e]);
          std::memcpy(&image[2 * e], &b, 2);
        }
      }
      add_segment(layer.name + ".params", hbm, std::move(image));
    }
    // Ahead of the band loads in DMA order; with no loads the first VOP waits for it.
    DmaFields d;
    d.hbm_addr = hbm;
    d.ub_row = std::uint32_t(params);
    d.elems = std::uint16_t(C);
    d.groups = std::uint16_t(norm_rows);
    d.group_stride = std::uint32_t(norm_rows > 1 ? C * eb_ : 0);
    d.pack = std::uint16_t(std::min<std::uint64_t>(C, cw_));
    d.ub_stride = std::uint16_t(chunks);
    emit(dma(Opcode::kDmaLoad, d, 0, loads ? 0 : bit(kSemPoolReady)));
  }
  bool per_row = out.resident && out.ub.pad > 0;
  for (const Placement* p : in) per_row = per_row || (p->resident && p->ub.pad > 0);

  // The `chans` of band channels c0.. in pieces of at most cw: (channel offset, channels).
  auto pieces_of = [&](const AddBand& band) {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> out_pieces;
    for (std::uint64_t c = 0; c < band.chans; c += cw_) {
      out_pieces.push_back({c, std::min<std::uint64_t>(cw_, band.chans - c)});
    }
    return out_pieces;
  };
  auto emit_loads = [&](std::uint64_t j) {
    const AddBand& band = bands[j];
    std::vector<DmaFields> pieces;
    for (std::size_t k = 0; k < inputs; ++k) {
      if (res[k]) continue;
      const HbmTensor& t = in[k]->hbm;
      for (const auto& [c, chans] : pieces_of(band)) {
        for (std::uint64_t h = 0; h < hq; ++h) {
          pieces.push_back(block(t.addr(band.s, std::int64_t(band.y0),
                                        std::int64_t(band.x0 + h)) +
                                     (band.c0 + c) * eb_,
                                 in_slot[k][j % 2] + c / cw_ * P + h * band.rows * band.px / hq,
                                 band.rows, t.row_bytes(), band.px / hq, hq * t.pixel_bytes(),
                                 chans));
        }
      }
    }
    for (std::size_t i = 0; i < pieces.size(); ++i) {
      emit(dma(Opcode::kDmaLoad, pieces[i], i == 0 && j >= 2 ? bit(kSemPoolFree) : 0,
               i + 1 == pieces.size() ? bit(kSemPoolReady) : 0));
    }
  };
  auto emit_store = [&](std::uint64_t j) {
    const AddBand& band = bands[j];
    const HbmTensor& t = out.hbm;
    const auto pieces = pieces_of(band);
    for (std::size_t i = 0; i < pieces.size(); ++i) {
      const auto [c, chans] = pieces[i];
      for (std::uint64_t h = 0; h < hq; ++h) {
        DmaFields d = block(t.addr(band.s, std::int64_t(band.y0), std::int64_t(band.x0 + h)) +
                                (band.c0 + c) * eb_,
                            out_slot[j % 2] + c / cw_ * P + h * band.rows * band.px / hq,
                            band.rows, t.row_bytes(), band.px / hq, hq * t.pixel_bytes(), chans);
        const bool first = i == 0 && h == 0, last = i + 1 == pieces.size() && h + 1 == hq;
        emit(dma(Opcode::kDmaStore, d, first ? bit(kSemOutReady) : 0,
                 last && j + 2 < J ? bit(kSemOutFree) : 0));
      }
    }
  };
  // UB rows between a pixel's chunks in input k (k == inputs: the output).
  auto chunk_stride = [&](std::size_t k) {
    const Placement& p = k < inputs ? *in[k] : out;
    return p.resident ? std::uint64_t(p.ub.samples) * p.ub.image_rows() : P;
  };
  // UB row of pixel (y, x0) of the band's image in input k (k == inputs: the output).
  auto row_of = [&](std::size_t k, const AddBand& band, std::uint64_t j, std::uint64_t y) {
    const Placement& p = k < inputs ? *in[k] : out;
    if (p.resident) return p.ub.row(band.cc, band.s, std::int64_t(y), std::int64_t(band.x0));
    return (k < inputs ? in_slot[k][j % 2] : out_slot[j % 2]) + (y - band.y0) * band.px;
  };

  if (loads) emit_loads(0);
  for (std::uint64_t j = 0; j < J; ++j) {
    if (loads && j + 1 < J) emit_loads(j + 1);
    if (!out.resident && j > 0) emit_store(j - 1);
    const AddBand& band = bands[j];
    // One instruction per image row (per_row), else per head block of the band.
    const std::uint64_t n = per_row ? band.rows : hq;
    for (std::uint64_t r = 0; r < n; ++r) {
      const std::uint64_t y = per_row ? band.y0 + r : band.y0;
      const std::uint64_t off = per_row ? 0 : r * band.rows * band.px / hq;
      Instruction add;
      add.op = layer.kind == OpKind::kAdd ? Opcode::kAdd : Opcode::kVop;
      add.ub_row = std::uint32_t(row_of(0, band, j, y) + off);
      if (inputs == 2) add.src_row = std::uint32_t(row_of(1, band, j, y) + off);
      add.dst_row = std::uint32_t(row_of(inputs, band, j, y) + off);
      add.rows = std::uint32_t(per_row ? band.px : band.rows * band.px / hq);
      add.cols = std::uint16_t(band.chans);
      add.func = layer.activation;
      if (add.op == Opcode::kAdd) {
        add.multiplier = q.multiplier;
        add.multiplier_b = q.multiplier_b;
        add.shift = q.shift;
      } else {
        add.kind = vop_kind(layer.kind);
        if (norm_rows > 0) add.src_row = std::uint32_t(params);
        add.eps = fp32_bits(layer.epsilon);
        add.scale_a = fp32_bits(q.scale_a);
        add.scale_b = fp32_bits(q.scale_b);
        add.scale_out = fp32_bits(q.scale_out);
        if (chunks > 1) {
          add.chunk_cols = std::uint16_t(cw_);
          add.chunk_stride_a = std::uint32_t(chunk_stride(0));
          add.chunk_stride_dst = std::uint32_t(chunk_stride(inputs));
        }
        if (layer.causal) {
          add.flags = kFlagCausal;
          // The query of the first row: pixels count the rows of a sample, hq per query.
          add.mask_row = std::uint32_t(y * qw + band.x0 / hq);
          add.mask_offset = layer.mask_offset;
        }
      }
      if (r == 0) {
        add.wait = (loads || (norm_rows > 0 && j == 0) ? bit(kSemPoolReady) : 0) |
                   (!out.resident && j >= 2 ? bit(kSemOutFree) : 0);
      }
      if (r + 1 == n) {
        add.signal = (out.resident ? 0 : bit(kSemOutReady)) |
                     (loads && j + 2 < J ? bit(kSemPoolFree) : 0);
      }
      emit(add);
    }
  }
  if (!out.resident) emit_store(J - 1);
}

// Copies a tensor into a concat slice in HBM. From the UB (resident), one DMA store per
// channel chunk and image (per image row around a zero border); from HBM, bands of image rows
// through staging row 0 onwards, each a load then a store: the DMA engine runs one transfer at
// a time, so the store sees the load's data and the next load waits for the store. From HBM
// only this core's rows (CoreShare); a split program has no resident tensors.
void Lowerer::lower_copy(const Placement& from, const HbmTensor& to, std::uint64_t limit) {
  const std::uint64_t H = to.shape.h, W = to.shape.w, C = to.shape.c;
  check_width(W, kMaxCount, "image width (DMA pixels)");
  if (from.resident) {
    const UbTensor& u = from.ub;
    const std::uint64_t rows = u.pad == 0 ? H : 1;
    for (std::uint64_t cc = 0; cc * cw_ < C; ++cc) {
      const std::uint64_t chans = std::min<std::uint64_t>(cw_, C - cc * cw_);
      for (std::uint64_t b = 0; b < to.samples; ++b) {
        for (std::uint64_t y = 0; y < H; y += rows) {
          emit(dma(Opcode::kDmaStore,
                   block(to.addr(b, std::int64_t(y), 0) + cc * cw_ * eb_,
                         u.row(cc, b, std::int64_t(y), 0), rows, to.row_bytes(), W,
                         to.pixel_bytes(), chans),
                   0, 0));
        }
      }
    }
    return;
  }
  const HbmTensor& h = from.hbm;
  if (W > limit) fail("needs " + std::to_string(W) + " staging rows to copy one image row");
  if (H == 1 && to.samples > 1 &&
      std::max(h.image_bytes(), to.image_bytes()) <= kMaxStride) {
    // One-row images (an LSTM step's slices): the samples are the rows of each transfer.
    const std::uint64_t band = std::min<std::uint64_t>({to.samples, limit / W, kMaxCount});
    const auto [b0, b1] = share_.part(to.samples);
    for (std::uint64_t cc = 0; cc * cw_ < C; ++cc) {
      const std::uint64_t chans = std::min<std::uint64_t>(cw_, C - cc * cw_);
      for (std::uint64_t b = b0; b < b1; b += band) {
        const std::uint64_t rows = std::min<std::uint64_t>(band, b1 - b);
        emit(dma(Opcode::kDmaLoad,
                 block(h.addr(b, 0, 0) + cc * cw_ * eb_, 0, rows, h.image_bytes(), W,
                       h.pixel_bytes(), chans),
                 0, 0));
        emit(dma(Opcode::kDmaStore,
                 block(to.addr(b, 0, 0) + cc * cw_ * eb_, 0, rows, to.image_bytes(), W,
                       to.pixel_bytes(), chans),
                 0, 0));
      }
    }
    return;
  }
  const std::uint64_t band = std::min({H, limit / W, kMaxCount});
  const auto [r0, r1] = share_.part(to.samples * H);  // this core's rows of samples x H
  for (std::uint64_t cc = 0; cc * cw_ < C; ++cc) {
    const std::uint64_t chans = std::min<std::uint64_t>(cw_, C - cc * cw_);
    for (std::uint64_t b = r0 / H; b * H < r1; ++b) {
      const std::uint64_t yb = std::min(r1, b * H + H) - b * H;
      for (std::uint64_t y = std::max(r0, b * H) - b * H; y < yb; y += band) {
        const std::uint64_t rows = std::min(band, yb - y);
        emit(dma(Opcode::kDmaLoad,
                 block(h.addr(b, std::int64_t(y), 0) + cc * cw_ * eb_, 0, rows, h.row_bytes(), W,
                       h.pixel_bytes(), chans),
                 0, 0));
        emit(dma(Opcode::kDmaStore,
                 block(to.addr(b, std::int64_t(y), 0) + cc * cw_ * eb_, 0, rows, to.row_bytes(), W,
                       to.pixel_bytes(), chans),
                 0, 0));
      }
    }
  }
}

// A transpose that keeps C last (expand_transposes leaves no other): whole pixels change
// place, HBM to HBM through staging row 0 onwards. [1, 0, 2] per channel chunk and sample: a
// band of input columns loads with strided transfers (a group per column, a segment per pixel,
// row_bytes apart) into consecutive UB rows, which are the output's rows, stored as one block.
// The identity perm is a copy. Each store follows its load on the one engine, as in lower_copy.
void Lowerer::lower_transpose(const Node& layer, const HbmTensor& from, const HbmTensor& to,
                              std::uint64_t limit) {
  if (layer.perm[0] == 0) {
    lower_copy(Placement{false, from, {}}, to, limit);
    return;
  }
  const std::uint64_t H = from.shape.h, W = from.shape.w, C = from.shape.c;
  check_width(H, kMaxCount, "image height (DMA pixels of a transposed row)");
  if (H > limit) fail("needs " + std::to_string(H) + " staging rows to transpose one image column");
  const std::uint64_t band = std::min({W, limit / H, kMaxCount});
  for (std::uint64_t cc = 0; cc * cw_ < C; ++cc) {
    const std::uint64_t chans = std::min<std::uint64_t>(cw_, C - cc * cw_);
    for (std::uint64_t b = 0; b < to.samples; ++b) {
      for (std::uint64_t x = 0; x < W; x += band) {
        const std::uint64_t cols = std::min(band, W - x);
        emit(dma(Opcode::kDmaLoad,
                 block(from.addr(b, 0, std::int64_t(x)) + cc * cw_ * eb_, 0, cols,
                       from.pixel_bytes(), H, from.row_bytes(), chans),
                 0, 0));
        emit(dma(Opcode::kDmaStore,
                 block(to.addr(b, std::int64_t(x), 0) + cc * cw_ * eb_, 0, cols, to.row_bytes(), H,
                       to.pixel_bytes(), chans),
                 0, 0));
      }
    }
  }
}

// Loads a slice (`from`: the input at the slice's first pixel and channel, with the input's
// strides) straight into its resident rows: per channel chunk, the samples' one-row images of
// an unpadded output in one transfer each (they are consecutive grids), else one per image row.
void Lowerer::lower_slice_to_ub(const HbmTensor& from, const UbTensor& to) {
  const std::uint64_t H = to.shape.h, W = to.shape.w, C = to.shape.c;
  check_width(W, kMaxCount, "image width (DMA pixels)");
  const bool by_samples = H == 1 && to.pad == 0 && from.image_bytes() <= kMaxStride;
  const std::uint64_t band = by_samples ? std::min<std::uint64_t>(to.samples, kMaxCount) : 1;
  for (std::uint64_t cc = 0; cc * cw_ < C; ++cc) {
    const std::uint64_t chans = std::min<std::uint64_t>(cw_, C - cc * cw_);
    for (std::uint64_t b = 0; b < to.samples; b += band) {
      const std::uint64_t rows = std::min(band, to.samples - b);
      for (std::uint64_t y = 0; y < H; ++y) {
        emit(dma(Opcode::kDmaLoad,
                 block(from.addr(b, std::int64_t(y), 0) + cc * cw_ * eb_,
                       to.row(cc, b, std::int64_t(y), 0), rows,
                       by_samples ? from.image_bytes() : from.row_bytes(), W, from.pixel_bytes(),
                       chans),
                 0, 0));
      }
    }
  }
}

}  // namespace

Program compile_core(const Graph& graph, const Config& config, const CompileOptions& options,
                     CoreShare share, const PipelineStage& stage) {
  return Lowerer(graph, config, options, share, stage).run();
}

Program compile(const Graph& graph, const Config& config, const CompileOptions& options) {
  if (std::optional<Program> p = compile_parallel(graph, config, options)) return std::move(*p);
  return compile_core(graph, config, options);
}

}  // namespace tpu
