#pragma once
// Memory planning: where every tensor of a Graph lives, in HBM or resident in the unified
// buffer, and which UB rows each node may use for staging.
//
// - Storage. Each tensor is a root with storage of its own, or a view of another tensor's
//   storage: a concat input is the channel slice [c0, c0 + C) of the concat's output, a
//   reshape's output aliases its input's bytes (NHWC order is unchanged). Views need no
//   instructions: producers write the slice directly, consumers read it in place. A tensor that
//   already is a view when a concat takes it, or that a dense or reshape also reads as whole
//   pixels, is copied into its slice instead (`copies`). A `slice` is no view: a DMA copy from an
//   input in HBM into a root of its own, resident when no GEMM reads it (DMA loads write it).
// - HBM roots are bump-allocated (a checked output must survive to the end of the run): NHWC
//   with the zero border of `pad` pixels the padded convolutions reading it need, so a padded
//   convolution is a plain strided gather. HBM outside the memory image is zero.
// - UB residency is decided by liveness. The top half of the UB is the activation region; a
//   root lives there from its first producer to its last reader (through every view), placed
//   first-fit among the roots live at the same time, when: residency is on; it is not a graph
//   input or output and no reshape reads it; every reader can read UB pixel rows (a
//   convolution, a pooling, an add, or a dense layer on 1 x 1 inputs) and agrees on its border
//   (pooling and dense read no border); every slice of a concat starts at a multiple of the
//   resident chunk width; and every node in its live range still finds its smallest staging
//   below the region (`StagingQuery`).
// - Staging: a node may use UB rows [0, staging_limit) for its tiles: the whole UB, or the
//   rows below the activation region while any resident root is live at that node.
#include <cstdint>
#include <functional>
#include <vector>

#include "sim/config/config.h"
#include "tools/compiler/graph.h"

namespace tpu {

// A tensor (or channel slice) in HBM: samples x (h + 2 pad) x (w + 2 pad) pixels, NHWC, each
// pixel `ctot` elements of which this tensor is channels [c0, c0 + shape.c).
struct HbmTensor {
  std::uint64_t base = 0;  // of the root, bytes
  std::uint32_t samples = 0;
  Shape3 shape;
  std::uint32_t pad = 0;
  std::uint32_t ctot = 1;  // elements per pixel in memory
  std::uint32_t c0 = 0;    // first channel of this tensor within a pixel
  std::uint32_t eb = 1;

  bool contiguous() const { return pad == 0 && ctot == shape.c; }
  std::uint64_t pixel_bytes() const { return std::uint64_t(ctot) * eb; }
  std::uint64_t row_bytes() const { return (std::uint64_t(shape.w) + 2 * pad) * pixel_bytes(); }
  std::uint64_t image_bytes() const { return (std::uint64_t(shape.h) + 2 * pad) * row_bytes(); }
  std::uint64_t bytes() const { return samples * image_bytes(); }
  // Address of pixel (b, y, x), first channel; y and x are unpadded coordinates (>= -pad).
  std::uint64_t addr(std::uint64_t b, std::int64_t y, std::int64_t x) const {
    return base + b * image_bytes() + std::uint64_t(y + pad) * row_bytes() +
           std::uint64_t(x + pad) * pixel_bytes() + std::uint64_t(c0) * eb;
  }
};

// A tensor resident in the UB: one row per padded pixel per chunk of `cw` channels,
// chunk-major, so each chunk of each image is a plain padded Hp x Wp grid of consecutive rows:
// row = base + ((cc * samples + b) * Hp + y + pad) * Wp + x + pad. A concat slice is the same
// grid with `base` moved by whole chunks.
struct UbTensor {
  std::uint64_t base = 0;
  std::uint32_t samples = 0;
  Shape3 shape;
  std::uint32_t pad = 0;
  std::uint32_t cw = 1;

  std::uint64_t chunks() const { return (std::uint64_t(shape.c) + cw - 1) / cw; }
  std::uint64_t hp() const { return std::uint64_t(shape.h) + 2 * pad; }
  std::uint64_t wp() const { return std::uint64_t(shape.w) + 2 * pad; }
  std::uint64_t image_rows() const { return hp() * wp(); }
  std::uint64_t rows() const { return chunks() * samples * image_rows(); }
  // y and x are unpadded coordinates (>= -pad).
  std::uint64_t row(std::uint64_t cc, std::uint64_t b, std::int64_t y, std::int64_t x) const {
    return base + (cc * samples + b) * image_rows() + std::uint64_t(y + pad) * wp() +
           std::uint64_t(x + pad);
  }
};

// Where a tensor is read from or written to.
struct Placement {
  bool resident = false;
  HbmTensor hbm;  // when !resident
  UbTensor ub;    // when resident
};

// A concat input that cannot be a view (it already is one: of a reshape, or of another concat)
// is copied into its slice of the concat's storage, which then stays in HBM.
struct Copy {
  TensorId from;
  HbmTensor to;
};

struct MemoryPlan {
  std::vector<Placement> tensors;        // per tensor
  std::vector<std::vector<Copy>> copies; // per node (concats)
  std::vector<TensorId> root;            // per tensor: the tensor owning its storage
  std::vector<std::uint64_t> staging_limit;  // per node: UB rows [0, limit) for staging
  std::vector<std::uint64_t> weights;    // per node: HBM address of its weights (GEMMs, norms)
  std::vector<std::uint64_t> biases;     // per node with a bias: HBM address of its bias rows
  std::uint64_t zeros = 0;               // HBM address of a zero region (resident borders)
  std::uint64_t hbm_bytes = 0;           // HBM footprint
  std::uint64_t ub_rows = 0;             // rows the plan used (the UB, capped by the ISA)
};

// UB rows a GEMM node's bias takes: its N 32-bit words, whole rows (0 without a bias). In HBM
// it is stored as these rows, zero-padded, so one DMA loads it.
inline std::uint64_t bias_rows(const Node& n, const Config& config, DataType dtype) {
  const std::uint64_t row_bytes = std::uint64_t(config.ub_row_elems()) * element_bytes(dtype);
  return n.bias ? (4 * std::uint64_t(n.out.c) + row_bytes - 1) / row_bytes : 0;
}

// The smallest number of staging rows node `node` needs with each of its inputs and its output
// resident or not; larger than any UB when that node cannot take that combination.
// in_contiguous[k]: input k's pixels in HBM hold just its channels (HbmTensor::ctot ==
// shape.c), not those of a concat it is a channel slice of, so a run of its pixels is one run
// of elements; the lowering's tiling reads the same from the placement's ctot.
using StagingQuery = std::function<std::uint64_t(
    std::size_t node, const std::vector<bool>& in_res, const std::vector<bool>& in_contiguous,
    bool out_res)>;

// Throws CompileError (one line, naming the node) for layouts the machine cannot serve: a
// reshape of a padded tensor, a dense layer flattening a padded tensor. (A concat input that a
// reshape or dense also reads is copied, so neither ever reads a channel slice.)
MemoryPlan plan_memory(const Graph& graph, const Config& config, std::uint64_t ub_rows,
                       bool resident_activations, const StagingQuery& staging);

// Elements of node n's weights as stored in HBM: a convolution's weight tiles, a grouped one's
// with the zeros off its diagonal blocks (stored_weights, tools/compiler/gemm_tiling.h; cw =
// min(array rows, cols)), else weight_count(). A node sharing another's weights
// (shares_weights >= 0) stores none of its own: callers skip it.
std::uint64_t stored_weight_elems(const Node& n, std::uint64_t cw);

}  // namespace tpu
