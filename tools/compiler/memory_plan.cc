#include "tools/compiler/memory_plan.h"

#include <algorithm>
#include <set>
#include <string>

#include "tools/compiler/gemm_tiling.h"

namespace tpu {

namespace {

// Every HBM allocation starts on an HBM burst (hbm.burst_bytes, at least 64 bytes and at most
// 4 KiB, so a huge burst does not pad every tensor): the DMA sends one request per burst a
// segment touches, so a tensor of whole-burst pixels at a misaligned base would cost two
// requests a pixel (112x112x256 at 128 bytes past a burst: the input of a 1 x 1 conv took twice
// its stream's cycles to load).
constexpr std::uint64_t kMinHbmAlign = 64, kMaxHbmAlign = 4096;

class Planner {
 public:
  Planner(const Graph& g, const Config& config, std::uint64_t ub_rows, bool resident,
          const StagingQuery& staging)
      : g_(g),
        staging_(staging),
        allow_resident_(resident),
        config_(config),
        align_(std::clamp<std::uint64_t>(config.hbm.burst_bytes, kMinHbmAlign, kMaxHbmAlign)),
        eb_(element_bytes(g.dtype)),
        cw_(std::min(config.array.rows, config.array.cols)) {
    plan_.ub_rows = ub_rows;
    region_start_ = ub_rows - ub_rows / 2;
  }

  MemoryPlan run() {
    find_roots();
    find_readers();
    for (TensorId r = 0; r < g_.tensors.size(); ++r) {
      if (plan_.root[r] == r) check_layout(r);
    }
    place_resident();
    allocate_hbm();
    place_views();
    place_copies();
    staging_limits();
    return std::move(plan_);
  }

 private:
  [[noreturn]] void fail(std::size_t node, const std::string& what) const {
    const Node& n = g_.nodes[node];
    throw CompileError(g_.source + ": node " + std::to_string(node) + " '" + n.name + "' (" +
                       to_string(n.kind) + "): " + what);
  }

  // Concat inputs become slices of the concat's output, reshape outputs aliases of their input.
  void find_roots() {
    const std::size_t T = g_.tensors.size();
    parent_.assign(T, -1);
    concat_link_.assign(T, false);
    copied_.assign(g_.nodes.size(), {});
    offset_.assign(T, 0);
    for (std::size_t i = 0; i < g_.nodes.size(); ++i) {
      const Node& n = g_.nodes[i];
      if (n.kind == OpKind::kConcat) {
        std::uint32_t c0 = 0;
        for (std::size_t k = 0; k < n.inputs.size(); ++k) {
          const TensorId id = n.inputs[k];
          const Tensor& t = g_.tensors[id];
          if (parent_[id] >= 0 || id == n.output || read_whole(id)) {
            // Already a view (of a reshape or of another concat), or read as whole pixels by
            // another node (an LSTM step's h): copied into its slice.
            copied_[i].push_back({k, c0});
            c0 += t.shape.c;
            continue;
          }
          parent_[id] = n.output;
          concat_link_[id] = true;
          offset_[id] = c0;
          c0 += t.shape.c;
        }
      } else if (n.kind == OpKind::kReshape) {
        parent_[n.output] = n.inputs[0];
      }
    }
    plan_.root.resize(T);
    c0_.assign(T, 0);
    slice_.assign(T, false);
    for (std::size_t t = 0; t < T; ++t) {
      std::size_t r = t;
      std::uint32_t c0 = 0;
      while (parent_[r] >= 0) {
        c0 += offset_[r];
        // A concat input sits in its concat's output; a reshape's output is its input's bytes.
        slice_[t] = slice_[t] || concat_link_[r];
        r = std::size_t(parent_[r]);
      }
      plan_.root[t] = TensorId(r);
      c0_[t] = c0;
    }
  }

  // Every node reading each root's storage (through any view), and who writes it.
  void find_readers() {
    readers_.assign(g_.tensors.size(), {});
    first_.assign(g_.tensors.size(), ~std::uint64_t(0));
    last_.assign(g_.tensors.size(), 0);
    for (std::size_t i = 0; i < g_.nodes.size(); ++i) {
      const Node& n = g_.nodes[i];
      if (!is_view(n.kind)) {
        const TensorId r = plan_.root[n.output];
        first_[r] = std::min<std::uint64_t>(first_[r], i);
        last_[r] = std::max<std::uint64_t>(last_[r], i);
      }
      for (std::size_t k = 0; k < n.inputs.size(); ++k) {
        if (n.kind == OpKind::kConcat && !is_copied(i, k)) continue;  // a view, not a read
        const TensorId r = plan_.root[n.inputs[k]];
        readers_[r].push_back({i, n.inputs[k]});
        first_[r] = std::min<std::uint64_t>(first_[r], i);
        last_[r] = std::max<std::uint64_t>(last_[r], i);
      }
    }
    pad_.assign(g_.tensors.size(), 0);
    for (TensorId r = 0; r < g_.tensors.size(); ++r) {
      for (const Reader& rd : readers_[r]) {
        const Node& n = g_.nodes[rd.node];
        // convs and pools: a zero border
        pad_[r] = std::max({pad_[r], n.padding, n.padding_h});
      }
    }
  }

  bool read_whole(TensorId t) const {
    for (std::uint32_t c : g_.tensors[t].consumers) {
      const OpKind k = g_.nodes[c].kind;
      if (k == OpKind::kDense || k == OpKind::kMatmul || k == OpKind::kReshape) return true;
    }
    return false;
  }
  bool is_copied(std::size_t node, std::size_t k) const {
    for (const Slot& c : copied_[node]) {
      if (c.input == k) return true;
    }
    return false;
  }

  // Readers that need a layout the root cannot have.
  void check_layout(TensorId r) {
    for (const Reader& rd : readers_[r]) {
      const Node& n = g_.nodes[rd.node];
      const Tensor& t = g_.tensors[rd.tensor];
      const bool dense_flatten = (n.kind == OpKind::kDense || n.kind == OpKind::kMatmul) &&
                                 (t.shape.h > 1 || t.shape.w > 1);
      if ((n.kind == OpKind::kReshape || dense_flatten) && pad_[r] > 0) {
        fail(rd.node, "reads '" + t.name + "' flattened, but that tensor also feeds a convolution "
                      "with padding " + std::to_string(pad_[r]) +
                      " and so carries a zero border; flatten it through another layer");
      }
    }
  }

  bool can_be_resident(TensorId r) const {
    if (!allow_resident_ || first_[r] == ~std::uint64_t(0)) return false;
    for (TensorId o : g_.outputs) {
      if (plan_.root[o] == r) return false;
    }
    // Every slice must be written by a node (not generated input data) at a chunk boundary.
    for (TensorId t = 0; t < g_.tensors.size(); ++t) {
      if (plan_.root[t] != r) continue;
      const Tensor& x = g_.tensors[t];
      const bool written = x.producer >= 0 && !is_view(g_.nodes[std::size_t(x.producer)].kind);
      const bool viewed = x.producer >= 0 && is_view(g_.nodes[std::size_t(x.producer)].kind);
      if (!written && !viewed) return false;
      // A transpose writes HBM only (lower_transpose).
      if (x.producer >= 0 && g_.nodes[std::size_t(x.producer)].kind == OpKind::kTranspose) {
        return false;
      }
      if (c0_[t] % cw_ != 0) return false;
    }
    if (readers_[r].empty()) return false;
    // A slice's DMA loads write it: vector readers wait for the DMA before them, but a GEMM's
    // weight tiles may be loaded (and its MATMULs start) before the slice's loads.
    const Tensor& rt = g_.tensors[r];
    if (rt.producer >= 0 && g_.nodes[std::size_t(rt.producer)].kind == OpKind::kSlice) {
      for (const Reader& rd : readers_[r]) {
        if (is_gemm(g_.nodes[rd.node].kind)) return false;
      }
    }
    // Copies land in HBM only.
    for (std::size_t i = 0; i < g_.nodes.size(); ++i) {
      if (!copied_[i].empty() && plan_.root[g_.nodes[i].output] == r) return false;
    }
    for (const Reader& rd : readers_[r]) {
      const Node& n = g_.nodes[rd.node];
      const Tensor& t = g_.tensors[rd.tensor];
      switch (n.kind) {
        case OpKind::kConv2d:
        case OpKind::kAdd:
        case OpKind::kMul:
        case OpKind::kActivation:
        case OpKind::kSoftmax:
        case OpKind::kLayerNorm:
        case OpKind::kRmsNorm:
        case OpKind::kConcat:  // a copy: DMA stores of the resident rows
          break;
        case OpKind::kMaxPool2d:
        case OpKind::kAvgPool2d:
        case OpKind::kGlobalAvgPool2d:
          // A pool reads its padded grid as consecutive rows: the border must be its own.
          if (pad_[r] != n.padding) return false;
          break;
        case OpKind::kDense:
          if (pad_[r] > 0 || t.shape.h != 1 || t.shape.w != 1) return false;
          break;
        default:
          return false;
      }
    }
    return true;
  }

  bool is_resident(TensorId t) const { return resident_[plan_.root[t]]; }

  // Elements per pixel of t's storage in HBM (HbmTensor::ctot): the concat's channels for a
  // channel slice of it, else t's own (a reshape's output: the same bytes, another pixel size).
  std::uint32_t pixel_elems(TensorId t) const {
    return slice_[t] ? g_.tensors[plan_.root[t]].shape.c : g_.tensors[t].shape.c;
  }

  // Whether every node in [first, last] still fits its smallest staging below the region.
  bool staging_fits(std::uint64_t first, std::uint64_t last) const {
    for (std::uint64_t i = first; i <= last; ++i) {
      const Node& n = g_.nodes[i];
      if (is_view(n.kind)) continue;
      std::vector<bool> in_res, in_contiguous;
      for (TensorId id : n.inputs) {
        in_res.push_back(is_resident(id));
        in_contiguous.push_back(pixel_elems(id) == g_.tensors[id].shape.c);
      }
      if (staging_(i, in_res, in_contiguous, is_resident(n.output)) > region_start_) {
        return false;
      }
    }
    return true;
  }

  UbTensor ub_root(TensorId r) const {
    UbTensor u;
    u.samples = g_.tensors[r].samples;
    u.shape = g_.tensors[r].shape;
    u.pad = pad_[r];
    u.cw = cw_;
    return u;
  }

  // First-fit in the activation region among the roots whose live ranges overlap.
  void place_resident() {
    resident_.assign(g_.tensors.size(), false);
    plan_.tensors.resize(g_.tensors.size());
    std::vector<TensorId> order;
    for (TensorId r = 0; r < g_.tensors.size(); ++r) {
      if (plan_.root[r] == r && can_be_resident(r)) order.push_back(r);
    }
    std::stable_sort(order.begin(), order.end(),
                     [&](TensorId a, TensorId b) { return first_[a] < first_[b]; });
    const std::uint64_t region = plan_.ub_rows - region_start_;
    struct Block {
      std::uint64_t first, last, lo, hi;
    };
    std::vector<Block> placed;
    for (TensorId r : order) {
      const std::uint64_t rows = ub_root(r).rows();
      if (rows > region) continue;
      std::vector<std::pair<std::uint64_t, std::uint64_t>> busy;
      for (const Block& b : placed) {
        if (b.first <= last_[r] && first_[r] <= b.last) busy.push_back({b.lo, b.hi});
      }
      std::sort(busy.begin(), busy.end());
      std::uint64_t at = 0;
      for (const auto& [lo, hi] : busy) {
        if (at + rows <= lo) break;
        at = std::max(at, hi);
      }
      if (at + rows > region) continue;
      resident_[r] = true;
      if (!staging_fits(first_[r], last_[r])) {
        resident_[r] = false;
        continue;
      }
      placed.push_back({first_[r], last_[r], at, at + rows});
      Placement& p = plan_.tensors[r];
      p.resident = true;
      p.ub = ub_root(r);
      p.ub.base = region_start_ + at;
    }
  }

  std::uint64_t allocate(std::uint64_t bytes) {
    const std::uint64_t at = top_;
    top_ = (top_ + bytes + align_ - 1) / align_ * align_;
    return at;
  }

  void allocate_root(TensorId r) {
    if (allocated_.count(r) || resident_[r]) return;
    allocated_.insert(r);
    HbmTensor h;
    h.samples = g_.tensors[r].samples;
    h.shape = g_.tensors[r].shape;
    h.pad = pad_[r];
    h.ctot = h.shape.c;
    h.eb = eb_;
    h.base = allocate(h.bytes());
    plan_.tensors[r].hbm = h;
  }

  // In node order: a node's graph inputs, its weights, then its output.
  void allocate_hbm() {
    plan_.weights.assign(g_.nodes.size(), 0);
    plan_.biases.assign(g_.nodes.size(), 0);
    for (std::size_t i = 0; i < g_.nodes.size(); ++i) {
      const Node& n = g_.nodes[i];
      for (TensorId id : n.inputs) allocate_root(plan_.root[id]);
      if (n.shares_weights >= 0) {
        plan_.weights[i] = plan_.weights[std::size_t(n.shares_weights)];
      } else if (const std::uint64_t elems = stored_weight_elems(n, cw_); elems > 0) {
        plan_.weights[i] = allocate(elems * eb_);
      }
      if (n.bias) {
        plan_.biases[i] = allocate(bias_rows(n, config_, g_.dtype) * config_.ub_row_elems() * eb_);
      }
      allocate_root(plan_.root[n.output]);
    }
    // One zero region serves every resident border (see the lowering's zero-border loads).
    std::uint64_t zeros = 0;
    for (TensorId r = 0; r < g_.tensors.size(); ++r) {
      if (!resident_[r] || pad_[r] == 0) continue;
      const UbTensor u = plan_.tensors[r].ub;
      zeros = std::max({zeros, u.pad * u.wp() + u.pad, 2 * std::uint64_t(u.pad)});
    }
    if (zeros > 0) plan_.zeros = allocate(zeros * eb_);
    plan_.hbm_bytes = std::max<std::uint64_t>(top_, align_);
  }

  // Views take their root's placement, narrowed to their channels or reshaped.
  void place_views() {
    for (TensorId t = 0; t < g_.tensors.size(); ++t) {
      const TensorId r = plan_.root[t];
      if (r == t) continue;
      const Tensor& x = g_.tensors[t];
      Placement p = plan_.tensors[r];
      if (p.resident) {
        p.ub.base += std::uint64_t(c0_[t] / cw_) * p.ub.samples * p.ub.image_rows();
        p.ub.shape = x.shape;
      } else {
        p.hbm.samples = x.samples;
        p.hbm.shape = x.shape;
        p.hbm.c0 = c0_[t];
        p.hbm.ctot = pixel_elems(t);
      }
      plan_.tensors[t] = p;
    }
  }

  // Each copied concat input's slot: the concat's storage narrowed to the input's channels.
  void place_copies() {
    plan_.copies.assign(g_.nodes.size(), {});
    for (std::size_t i = 0; i < g_.nodes.size(); ++i) {
      const Node& n = g_.nodes[i];
      for (const Slot& c : copied_[i]) {
        const Tensor& x = g_.tensors[n.inputs[c.input]];
        HbmTensor to = plan_.tensors[n.output].hbm;
        to.c0 += c.c0;
        to.shape = x.shape;
        plan_.copies[i].push_back({n.inputs[c.input], to});
      }
    }
  }

  void staging_limits() {
    plan_.staging_limit.assign(g_.nodes.size(), plan_.ub_rows);
    for (TensorId r = 0; r < g_.tensors.size(); ++r) {
      if (!resident_[r]) continue;
      for (std::uint64_t i = first_[r]; i <= last_[r]; ++i) plan_.staging_limit[i] = region_start_;
    }
  }

  struct Reader {
    std::size_t node;
    TensorId tensor;  // the view it reads
  };

  const Graph& g_;
  const StagingQuery& staging_;
  const bool allow_resident_;
  const Config& config_;
  const std::uint64_t align_;  // of every HBM allocation
  const std::uint32_t eb_;
  const std::uint32_t cw_;
  std::uint64_t region_start_ = 0;
  MemoryPlan plan_;
  std::vector<std::int64_t> parent_;
  std::vector<std::uint32_t> offset_, c0_, pad_;
  struct Slot {
    std::size_t input;  // index into the concat's inputs
    std::uint32_t c0;   // first channel of its slice
  };
  std::vector<std::vector<Slot>> copied_;  // per node: concat inputs copied, not viewed
  std::vector<bool> concat_link_;  // per tensor: its parent is the concat it feeds
  std::vector<bool> slice_;        // per tensor: a channel slice of a concat's output
  std::vector<std::vector<Reader>> readers_;
  std::vector<std::uint64_t> first_, last_;
  std::vector<bool> resident_;
  std::set<TensorId> allocated_;
  std::uint64_t top_ = 0;
};

}  // namespace

MemoryPlan plan_memory(const Graph& graph, const Config& config, std::uint64_t ub_rows,
                       bool resident_activations, const StagingQuery& staging) {
  return Planner(graph, config, ub_rows, resident_activations, staging).run();
}

std::uint64_t stored_weight_elems(const Node& n, std::uint64_t cw) {
  if (n.kind != OpKind::kConv2d) return n.weight_count();
  return stored_weights(group_map(n.in.c, n.out_channels, n.groups, cw),
                        std::uint64_t(n.kernel_h) * n.kernel_w);
}

}  // namespace tpu
