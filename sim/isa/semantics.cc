// Data-path semantics of every instruction (see sim/isa/ISA.md, "Semantics"). The exec_*
// functions check the ranges they touch before their loops, which then run free of checks.
#include "sim/isa/semantics.h"

#include "sim/cycles.h"
#include "sim/host_memory.h"
#include "sim/isa/int8_dot.h"
#include "sim/isa/isa_table.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

namespace tpu {
namespace {

[[noreturn]] void fail(const char* op, const std::string& what) {
  throw std::out_of_range(std::string(op) + ": " + what);
}

void require_range(const char* op, const char* field, std::uint64_t value, std::uint64_t lo,
                   std::uint64_t hi, const char* meaning) {
  if (value < lo || value > hi) {
    fail(op, std::string(field) + " " + std::to_string(value) + " not in [" + std::to_string(lo) +
                 ", " + std::to_string(hi) + "] (" + meaning + ")");
  }
}

void require_ub_rows(const MachineState& s, const char* op, const char* field, std::uint64_t first,
                     std::uint64_t end) {
  if (end > s.ub_rows) {
    fail(op, std::string(field) + " rows [" + std::to_string(first) + ", " + std::to_string(end) +
                 ") outside the unified buffer of " + std::to_string(s.ub_rows) + " rows");
  }
}

void require_acc_rows(const MachineState& s, const char* op, std::uint64_t first,
                      std::uint64_t end) {
  if (end > s.acc_rows) {
    fail(op, "acc rows [" + std::to_string(first) + ", " + std::to_string(end) +
                 ") outside the accumulators of " + std::to_string(s.acc_rows) + " rows");
  }
}

void require_fifo(const MachineState& s, const char* op) {
  if (s.weight_fifo_tiles < 2) {
    fail(op, "the config has no weight FIFO (mxu.weight_fifo_tiles = " +
                 std::to_string(s.weight_fifo_tiles) + ")");
  }
}

void check_dma(const MachineState& s, const DmaFields& d, const char* op, bool fifo = false) {
  require_range(op, "elems", d.elems, 1, 0xffff, "elements per segment");
  require_range(op, "segs", d.segs, 1, 0xffff, "segments per group");
  require_range(op, "groups", d.groups, 1, 0xffff, "groups");
  require_range(op, "pack", d.pack, 1, s.row_elems, "elements per UB row");
  const std::uint64_t rows = dma_rows_per_group(d);
  if (d.groups > 1 && d.ub_stride < rows) {
    fail(op, "ub_stride " + std::to_string(d.ub_stride) + " < " + std::to_string(rows) +
                 " rows per group: groups would overlap in the unified buffer");
  }
  const std::uint64_t hbm_end = d.hbm_addr + std::uint64_t(d.groups - 1) * d.group_stride +
                                std::uint64_t(d.segs - 1) * d.seg_stride +
                                std::uint64_t(d.elems) * s.elem_bytes;
  if (hbm_end > s.hbm_bytes) {
    fail(op, "hbm range [" + hex(d.hbm_addr) + ", " + hex(hbm_end) + ") outside HBM of " +
                 std::to_string(s.hbm_bytes) + " bytes");
  }
  const std::uint64_t ub_end = d.ub_row + std::uint64_t(d.groups - 1) * d.ub_stride + rows;
  if (fifo) {
    require_fifo(s, "dma.load weights");
    require_range("dma.load weights", "fifo", d.fifo, 0, s.mxus - 1, "an MXU of core.mxus");
    require_range("dma.load weights", "ub", d.ub_row, 0, 0, "a FIFO entry starts at row 0");
    if (ub_end > s.array_rows) {
      fail("dma.load weights", "rows [0, " + std::to_string(ub_end) +
                                   ") outside a weight FIFO entry of " +
                                   std::to_string(s.array_rows) + " rows");
    }
    return;
  }
  require_ub_rows(s, op, "ub", d.ub_row, ub_end);
}

void check_load_weights(const MachineState& s, const Instruction& inst) {
  const char* op = "load.weights";
  require_range(op, "unit", inst.instance, 0, s.mxus - 1, "an MXU of core.mxus");
  require_range(op, "rows", inst.rows, 1, s.array_rows, "weight rows K <= array rows");
  require_range(op, "cols", inst.cols, 1, s.array_cols, "weight columns N <= array columns");
  require_range(op, "blocks", inst.ub_stride, 1, inst.cols, "block-diagonal blocks <= cols");
  if (inst.cols % inst.ub_stride != 0) {
    fail(op, "blocks = " + std::to_string(inst.ub_stride) + " must divide cols = " +
                 std::to_string(inst.cols));
  }
  // Rows staged: K_t, or N_t of a transposed tile.
  const std::uint32_t staged = (inst.flags & kFlagTranspose) ? inst.cols : inst.rows;
  if (inst.flags & kFlagFifo) {
    require_fifo(s, "load.weights fifo");
    require_range("load.weights fifo", "ub", inst.ub_row, 0, 0, "the FIFO, not UB rows");
    require_range("load.weights fifo transpose", "cols", staged, 1, s.array_rows,
                  "staged rows <= a FIFO entry's array rows");
    return;
  }
  require_ub_rows(s, op, "ub", inst.ub_row, std::uint64_t(inst.ub_row) + staged);
}

void check_matmul(const MachineState& s, const Instruction& inst) {
  const char* op = "matmul";
  require_range(op, "unit", inst.instance, 0, s.mxus - 1, "an MXU of core.mxus");
  static const std::uint64_t max_rows = field_max(Opcode::kMatmul, "rows");
  require_range(op, "rows", inst.rows, 1, max_rows, "input rows M");
  const std::uint64_t last = inst.ub_row + std::uint64_t(inst.rows - 1) * inst.ub_stride;
  require_ub_rows(s, op, "ub", inst.ub_row, last + 1);
  require_acc_rows(s, op, inst.acc_row, std::uint64_t(inst.acc_row) + inst.rows);
}

// The requantiser and activation ACTIVATE and ADD share. int8 ACTIVATE computes activations
// beyond relu on the fp32 path (its scale fields); ADD has no scales for it.
void check_requantiser(const MachineState& s, const char* op, const Instruction& inst) {
  require_range(op, "shift", inst.shift, 0, 62, "requantiser right shift");
  if (s.dtype == DataType::kInt8 && inst.op == Opcode::kAdd && inst.func > Activation::kRelu) {
    fail(op, std::string("func ") + to_string(inst.func) +
                 " needs a bf16 program (int8 carries no output scale)");
  }
}

void check_activate(const MachineState& s, const Instruction& inst) {
  const char* op = "activate";
  static const std::uint64_t max_rows = field_max(Opcode::kActivate, "rows");
  require_range(op, "rows", inst.rows, 1, max_rows, "rows");
  require_range(op, "cols", inst.cols, 1, s.array_cols, "columns <= array columns");
  check_requantiser(s, op, inst);
  require_acc_rows(s, op, inst.acc_row, std::uint64_t(inst.acc_row) + inst.rows);
  const std::uint64_t row_bytes = std::uint64_t(s.row_elems) * s.elem_bytes;
  const std::uint64_t per_row = inst.flags & kFlagRaw ? raw_rows_per_acc_row(inst.cols, row_bytes) : 1;
  require_ub_rows(s, op, "ub", inst.ub_row, std::uint64_t(inst.ub_row) + inst.rows * per_row);
  if (inst.flags & kFlagBias) {
    const auto [first, last] = activate_bias_rows(inst, std::uint64_t(s.row_elems) * s.elem_bytes);
    require_ub_rows(s, op, "bias", first, last);
  }
}

void check_acc_load(const MachineState& s, const Instruction& inst) {
  const char* op = "acc.load";
  static const std::uint64_t max_rows = field_max(Opcode::kAccLoad, "rows");
  require_range(op, "rows", inst.rows, 1, max_rows, "rows");
  require_range(op, "cols", inst.cols, 1, s.array_cols, "columns <= array columns");
  require_acc_rows(s, op, inst.acc_row, std::uint64_t(inst.acc_row) + inst.rows);
  const std::uint64_t per_row =
      raw_rows_per_acc_row(inst.cols, std::uint64_t(s.row_elems) * s.elem_bytes);
  require_ub_rows(s, op, "ub", inst.ub_row, std::uint64_t(inst.ub_row) + inst.rows * per_row);
}

void check_vop(const MachineState& s, const Instruction& inst) {
  const char* op = "vop";
  require_range(op, "rows", inst.rows, 1, 0xffffffff, "rows");
  const std::uint32_t chunks = vop_chunks(inst);
  if (inst.chunk_cols == 0) {
    require_range(op, "cols", inst.cols, 1, s.row_elems, "elements <= UB row elements");
  } else {
    if (!vop_reduces(inst.kind)) {
      fail(op, std::string("chunk_cols needs a row op (softmax, layernorm, rmsnorm), not ") +
                   to_string(inst.kind));
    }
    require_range(op, "cols", inst.cols, 1, 0xffff, "elements per row");
    require_range(op, "chunk_cols", inst.chunk_cols, 1, s.row_elems,
                  "elements per UB row <= UB row elements");
    if (chunks > 1) {
      // A row's chunks and the other rows never share a UB row.
      require_range(op, "chunk_stride_a", inst.chunk_stride_a, inst.rows, 0xffffffff,
                    "UB rows between chunks >= rows");
      require_range(op, "chunk_stride_dst", inst.chunk_stride_dst, inst.rows, 0xffffffff,
                    "UB rows between chunks >= rows");
    }
  }
  const std::uint64_t span_a = std::uint64_t(chunks - 1) * inst.chunk_stride_a + inst.rows;
  const std::uint64_t span_dst = std::uint64_t(chunks - 1) * inst.chunk_stride_dst + inst.rows;
  require_ub_rows(s, op, "ub_a", inst.ub_row, inst.ub_row + span_a);
  const std::uint32_t b_rows = vop_b_rows(inst);
  if (b_rows > 0) {
    require_ub_rows(s, op, "ub_b", inst.src_row, std::uint64_t(inst.src_row) + b_rows);
  }
  require_ub_rows(s, op, "dst", inst.dst_row, inst.dst_row + span_dst);
}

void check_pool(const MachineState& s, const Instruction& inst) {
  const char* op = "pool";
  require_range(op, "kernel_h", inst.kernel_h, 1, 0xffff, "window height");
  require_range(op, "kernel_w", inst.kernel_w, 1, 0xffff, "window width");
  require_range(op, "stride", inst.stride, 1, 0xff, "window step");
  require_range(op, "in_h", inst.in_h, inst.kernel_h, 0xffff, "input height >= kernel_h");
  require_range(op, "in_w", inst.in_w, inst.kernel_w, 0xffff, "input width >= kernel_w");
  require_range(op, "cols", inst.cols, 1, s.row_elems, "channels <= UB row elements");
  if (inst.flags & kFlagAverage) {
    // Bounds |window sum| by 2^31 (int32, as the hardware sums) and sum * multiplier by 2^62.
    require_range(op, "kernel_h * kernel_w", std::uint64_t(inst.kernel_h) * inst.kernel_w, 1,
                  std::uint64_t(1) << 24, "window elements summed in int32");
    require_range(op, "shift", inst.shift, 0, 62, "requantiser right shift");
  }
  const std::uint64_t oh = pool_out_h(inst), ow = pool_out_w(inst);
  require_ub_rows(s, op, "ub", inst.ub_row,
                  std::uint64_t(inst.ub_row) + std::uint64_t(inst.in_h) * inst.in_w);
  require_ub_rows(s, op, "dst", inst.dst_row, std::uint64_t(inst.dst_row) + oh * ow);
}

void check_add(const MachineState& s, const Instruction& inst) {
  const char* op = "add";
  require_range(op, "rows", inst.rows, 1, 0xffffffff, "rows");
  require_range(op, "cols", inst.cols, 1, s.row_elems, "elements <= UB row elements");
  check_requantiser(s, op, inst);
  require_ub_rows(s, op, "ub_a", inst.ub_row, std::uint64_t(inst.ub_row) + inst.rows);
  require_ub_rows(s, op, "ub_b", inst.src_row, std::uint64_t(inst.src_row) + inst.rows);
  require_ub_rows(s, op, "dst", inst.dst_row, std::uint64_t(inst.dst_row) + inst.rows);
}

// The int8 requantiser of ACTIVATE, ADD and average POOL: rounding right shift (round half
// up), zero point, clamp to [lo, 127].
std::int8_t requantise(std::int64_t v, unsigned shift, std::int64_t zero_point, std::int64_t lo) {
  const std::int64_t round = shift > 0 ? std::int64_t(1) << (shift - 1) : 0;
  v = ((v + round) >> shift) + zero_point;
  return std::int8_t(std::min<std::int64_t>(std::max(v, lo), 127));
}

float fp32(std::uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// 1 - 2 / (e^2x + 1): saturates to +-1 where e^2x overflows or vanishes.
float tanh_fp32(float x) { return 1.0f - 2.0f / (std::exp(2.0f * x) + 1.0f); }

template <typename T>
T load_elem(const std::uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// sum[n] = sum over k < K of x[k] * w[k][n] (w row-major K x N) in fp32: each sum[n] starts at
// +0.0 and adds its products in increasing k, one rounding per product and per addition, as the
// partial sums flow down the array. The k-then-n order vectorises the inner loop.
void fp32_row_times_tile(const float* __restrict x, const float* __restrict w,
                         float* __restrict sum, std::uint32_t k_rows, std::uint32_t n_cols) {
  std::fill(sum, sum + n_cols, 0.0f);
  for (std::uint32_t k = 0; k < k_rows; ++k) {
    const float xk = x[k];
    const float* __restrict wrow = w + std::size_t(k) * n_cols;
    for (std::uint32_t n = 0; n < n_cols; ++n) {
      const float product = xk * wrow[n];
      sum[n] += product;
    }
  }
}

}  // namespace

float activation_fp32(float x, Activation func) {
  switch (func) {
    case Activation::kNone:
      return x;
    case Activation::kRelu:
      return x < 0.0f ? 0.0f : x;
    case Activation::kRelu6:
      return x < 0.0f ? 0.0f : x > 6.0f ? 6.0f : x;
    case Activation::kSigmoid:
      return 1.0f / (1.0f + std::exp(-x));
    case Activation::kTanh:
      return tanh_fp32(x);
    case Activation::kGelu: {
      const float inner = 0.7978845608f * (x + 0.044715f * (x * x * x));  // sqrt(2 / pi)
      return 0.5f * x * (1.0f + tanh_fp32(inner));
    }
    case Activation::kSilu:
      return x / (1.0f + std::exp(-x));
  }
  return x;
}

std::int8_t requantise_fp32(float y, float scale_out, std::int8_t zero_point) {
  const float r = std::round(y * scale_out);
  if (std::isnan(r)) return zero_point;
  const float clamped = std::min(std::max(r, -1024.0f), 1024.0f);
  return std::int8_t(std::clamp(std::int32_t(clamped) + zero_point, -128, 127));
}

void softmax_fp32(float* x, std::uint32_t n, std::uint32_t kept) {
  kept = std::min(kept, n);
  float m = -INFINITY;
  for (std::uint32_t j = 0; j < kept; ++j) m = std::max(m, x[j]);
  float sum = 0.0f;
  for (std::uint32_t j = 0; j < kept; ++j) {
    x[j] = std::exp(x[j] - m);
    sum += x[j];
  }
  const float r = kept ? 1.0f / sum : 0.0f;
  for (std::uint32_t j = 0; j < kept; ++j) x[j] *= r;
  std::fill(x + kept, x + n, 0.0f);
}

void norm_fp32(float* x, std::uint32_t n, const float* gamma, const float* beta, float eps) {
  const float inv_n = 1.0f / float(n);
  float mean = 0.0f;
  if (beta) {
    float sum = 0.0f;
    for (std::uint32_t j = 0; j < n; ++j) sum += x[j];
    mean = sum * inv_n;
  }
  float sq = 0.0f;
  for (std::uint32_t j = 0; j < n; ++j) {
    const float d = x[j] - mean;
    sq += d * d;
  }
  const float r = 1.0f / std::sqrt(sq * inv_n + eps);
  for (std::uint32_t j = 0; j < n; ++j) {
    x[j] = beta ? (x[j] - mean) * r * gamma[j] + beta[j] : x[j] * r * gamma[j];
  }
}

std::uint64_t dma_rows_per_group(const DmaFields& d) {
  return ceil_div(std::uint64_t(d.segs) * d.elems, d.pack);
}

std::uint16_t fp32_to_bf16(float f) {
  std::uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  if (std::isnan(f)) return std::uint16_t((bits >> 16) | 0x0040);  // quiet NaN, sign kept
  const std::uint32_t bias = 0x7fff + ((bits >> 16) & 1);
  return std::uint16_t((bits + bias) >> 16);
}

float bf16_to_fp32(std::uint16_t b) {
  const std::uint32_t bits = std::uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

MachineState::MachineState(const Config& config, const Program& program, bool allocate,
                           bool with_hbm)
    : dtype(program.dtype),
      array_rows(config.array.rows),
      array_cols(config.array.cols),
      row_elems(config.ub_row_elems()),
      elem_bytes(element_bytes(program.dtype)),
      ub_rows(config.ub_rows(program.dtype)),
      acc_rows(config.acc_rows()),
      hbm_bytes(program.hbm_bytes),
      mxus(config.core.mxus),
      weight_fifo_tiles(config.mxu.weight_fifo_tiles),
      weight_fifos(config.core.mxus) {
  if ((program.array_rows != 0 || program.array_cols != 0) &&
      (program.array_rows != array_rows || program.array_cols != array_cols)) {
    throw std::invalid_argument("program was compiled for a " + std::to_string(program.array_rows) +
                                "x" + std::to_string(program.array_cols) +
                                " array, the config has " + std::to_string(array_rows) + "x" +
                                std::to_string(array_cols));
  }
  if (hbm_bytes > config.hbm.capacity_bytes) {
    throw std::out_of_range("program addresses " + std::to_string(hbm_bytes) +
                            " bytes of HBM, the config has " +
                            std::to_string(config.hbm.capacity_bytes));
  }
  for (const HbmSegment& seg : program.hbm_image) {
    if (seg.address > hbm_bytes || seg.bytes.size() > hbm_bytes - seg.address) {
      throw std::out_of_range("hbm image segment '" + seg.name + "' [" + hex(seg.address) + ", " +
                              hex(seg.address + seg.bytes.size()) + ") outside HBM of " +
                              std::to_string(hbm_bytes) + " bytes");
    }
  }
  if (!allocate) return;
  if (with_hbm) {
    allocating("the simulated HBM", double(hbm_bytes), [&] { hbm.assign(hbm_bytes, 0); });
    for (const HbmSegment& seg : program.hbm_image) {
      std::copy(seg.bytes.begin(), seg.bytes.end(), hbm.begin() + std::ptrdiff_t(seg.address));
    }
  }
  const std::uint64_t ub_bytes = ub_rows * row_elems * elem_bytes;
  allocating("the unified buffer", double(ub_bytes), [&] { ub.assign(ub_bytes, 0); });
  allocating("the accumulators", 4.0 * double(acc_rows) * array_cols, [&] {
    if (dtype == DataType::kInt8) {
      acc_i32.assign(acc_rows * array_cols, 0);
    } else {
      acc_f32.assign(acc_rows * array_cols, 0.0f);
    }
  });
}

namespace {

// Writes `len` bytes of a group's packed stream into its rows (`rows` = the group's first row).
void write_packed(std::uint8_t* rows, std::uint64_t row_bytes, std::uint64_t eb,
                  const DmaFields& d, std::uint64_t offset, const std::uint8_t* bytes,
                  std::uint64_t len) {
  const std::uint64_t data_bytes = std::uint64_t(d.pack) * eb;  // per row
  const std::uint64_t stream_bytes = std::uint64_t(d.segs) * d.elems * eb;
  while (len > 0) {
    const std::uint64_t in_row = offset % data_bytes;
    const std::uint64_t n = std::min(len, data_bytes - in_row);
    std::uint8_t* row = rows + (offset / data_bytes) * row_bytes;
    std::memcpy(row + in_row, bytes, n);
    std::memset(row + data_bytes, 0, row_bytes - data_bytes);
    if (offset + n == stream_bytes) std::memset(row + in_row + n, 0, data_bytes - in_row - n);
    bytes += n;
    offset += n;
    len -= n;
  }
}

}  // namespace

void dma_write_ub(MachineState& s, const DmaFields& d, std::uint32_t group, std::uint64_t offset,
                  const std::uint8_t* bytes, std::uint64_t len) {
  write_packed(s.ub_row(d.ub_row + std::uint64_t(group) * d.ub_stride),
               std::uint64_t(s.row_elems) * s.elem_bytes, s.elem_bytes, d, offset, bytes, len);
}

void dma_write_fifo(const MachineState& s, std::uint8_t* entry, const DmaFields& d,
                    std::uint32_t group, std::uint64_t offset, const std::uint8_t* bytes,
                    std::uint64_t len) {
  const std::uint64_t row_bytes = std::uint64_t(s.row_elems) * s.elem_bytes;
  write_packed(entry + std::uint64_t(group) * d.ub_stride * row_bytes, row_bytes, s.elem_bytes,
               d, offset, bytes, len);
}

void dma_read_ub(const MachineState& s, const DmaFields& d, std::uint32_t group,
                 std::uint64_t offset, std::uint8_t* bytes, std::uint64_t len) {
  const std::uint64_t row_bytes = std::uint64_t(s.row_elems) * s.elem_bytes;
  const std::uint64_t data_bytes = std::uint64_t(d.pack) * s.elem_bytes;
  const std::uint8_t* rows = s.ub_row(d.ub_row + std::uint64_t(group) * d.ub_stride);
  while (len > 0) {
    const std::uint64_t in_row = offset % data_bytes;
    const std::uint64_t n = std::min(len, data_bytes - in_row);
    std::memcpy(bytes, rows + (offset / data_bytes) * row_bytes + in_row, n);
    bytes += n;
    offset += n;
    len -= n;
  }
}

void exec_dma_load(MachineState& s, const DmaFields& d) {
  check_dma(s, d, "dma.load");
  const std::uint64_t seg_bytes = std::uint64_t(d.elems) * s.elem_bytes;
  for (std::uint32_t g = 0; g < d.groups; ++g) {
    for (std::uint32_t seg = 0; seg < d.segs; ++seg) {
      dma_write_ub(s, d, g, seg * seg_bytes,
                   s.hbm.data() + d.hbm_addr + std::uint64_t(g) * d.group_stride +
                       std::uint64_t(seg) * d.seg_stride,
                   seg_bytes);
    }
  }
}

void exec_dma_load_fifo(MachineState& s, const DmaFields& d) {
  check_dma(s, d, "dma.load", true);
  std::vector<std::uint8_t>& entry = s.weight_fifos[d.fifo].emplace_back(s.fifo_entry_bytes(), 0);
  const std::uint64_t seg_bytes = std::uint64_t(d.elems) * s.elem_bytes;
  for (std::uint32_t g = 0; g < d.groups; ++g) {
    for (std::uint32_t seg = 0; seg < d.segs; ++seg) {
      dma_write_fifo(s, entry.data(), d, g, seg * seg_bytes,
                     s.hbm.data() + d.hbm_addr + std::uint64_t(g) * d.group_stride +
                         std::uint64_t(seg) * d.seg_stride,
                     seg_bytes);
    }
  }
}

void exec_dma_store(MachineState& s, const DmaFields& d) {
  check_dma(s, d, "dma.store");
  const std::uint64_t seg_bytes = std::uint64_t(d.elems) * s.elem_bytes;
  for (std::uint32_t g = 0; g < d.groups; ++g) {
    for (std::uint32_t seg = 0; seg < d.segs; ++seg) {
      dma_read_ub(s, d, g, seg * seg_bytes,
                  s.hbm.data() + d.hbm_addr + std::uint64_t(g) * d.group_stride +
                      std::uint64_t(seg) * d.seg_stride,
                  seg_bytes);
    }
  }
}

void exec_load_weights(MachineState& s, const Instruction& inst, WeightTile& tile) {
  check_load_weights(s, inst);
  const bool fifo = inst.flags & kFlagFifo;
  std::deque<std::vector<std::uint8_t>>& queue = s.weight_fifos[inst.instance];
  if (fifo && queue.empty()) {
    fail("load.weights fifo", "the weight FIFO of MXU " + std::to_string(inst.instance) +
                                  " is empty");
  }
  const std::uint64_t row_bytes = std::uint64_t(s.row_elems) * s.elem_bytes;
  const auto row = [&](std::uint32_t k) -> const std::uint8_t* {
    return fifo ? queue.front().data() + k * row_bytes : s.ub_row(inst.ub_row + k);
  };
  const std::uint32_t rows = inst.rows, cols = inst.cols;
  tile.rows = rows;
  tile.cols = cols;
  const std::uint32_t eb = s.elem_bytes;
  // Straight into the tile's own storage (reused across loads: no allocation once grown).
  std::uint8_t* dst;
  if (s.dtype == DataType::kInt8) {
    tile.bf16.clear();
    tile.int8.resize(std::size_t(rows) * cols);
    dst = reinterpret_cast<std::uint8_t*>(tile.int8.data());
  } else {
    tile.int8.clear();
    tile.bf16.resize(std::size_t(rows) * cols);
    dst = reinterpret_cast<std::uint8_t*>(tile.bf16.data());
  }
  if (inst.flags & kFlagTranspose) {
    // Staged row n holds column n of the tile: W[k][n] = element k of row n.
    for (std::uint32_t n = 0; n < cols; ++n) {
      const std::uint8_t* r = row(n);
      for (std::uint32_t k = 0; k < rows; ++k) {
        std::memcpy(dst + (std::size_t(k) * cols + n) * eb, r + std::size_t(k) * eb, eb);
      }
    }
  } else {
    for (std::uint32_t k = 0; k < rows; ++k) {
      std::memcpy(dst + std::size_t(k) * cols * eb, row(k), std::size_t(cols) * eb);
    }
  }
  widen_for_dot(tile);
  if (fifo) queue.pop_front();
}

void widen_for_dot(WeightTile& tile) {
  if (tile.int8.empty()) {
    tile.int16_nk.clear();
    return;
  }
  tile.int16_nk.resize(std::size_t(tile.rows) * tile.cols);
  transpose_to_int16(tile.int8.data(), tile.rows, tile.cols, tile.cols, tile.int16_nk.data());
}

WeightTile exec_load_weights(MachineState& s, const Instruction& inst) {
  WeightTile tile;
  exec_load_weights(s, inst, tile);
  return tile;
}

void matmul_compute(const MachineState& s, const Instruction& inst, const WeightTile& w,
                    TileSums& sums) {
  check_matmul(s, inst);
  if (w.rows == 0 || w.cols == 0) fail("matmul", "no weight tile loaded");
  const std::uint32_t m_rows = inst.rows, k_rows = w.rows, n_cols = w.cols;
  sums.rows = m_rows;
  sums.cols = n_cols;
  if (s.dtype == DataType::kInt8) {
    sums.f32.clear();
    if (w.int16_nk.size() != std::size_t(k_rows) * n_cols) {
      throw std::logic_error("matmul: the weight tile was not widened (widen_for_dot)");
    }
    sums.i32.resize(std::size_t(m_rows) * n_cols);
    // The input rows widened for int8_dot.h a block at a time, into a buffer small enough to
    // stay in cache (and off the page-faulting path of large allocations).
    constexpr std::uint32_t kBlockRows = 64;
    const std::unique_ptr<std::int16_t[]> x(new std::int16_t[std::size_t(kBlockRows) * k_rows]);
    for (std::uint32_t m0 = 0; m0 < m_rows; m0 += kBlockRows) {
      const std::uint32_t block = std::min(kBlockRows, m_rows - m0);
      for (std::uint32_t m = 0; m < block; ++m) {
        const auto* row = reinterpret_cast<const std::int8_t*>(
            s.ub_row(inst.ub_row + std::uint64_t(m0 + m) * inst.ub_stride));
        std::copy(row, row + k_rows, x.get() + std::size_t(m) * k_rows);
      }
      int16_dot_rows(x.get(), block, w.int16_nk.data(), n_cols, k_rows,
                     sums.i32.data() + std::size_t(m0) * n_cols, n_cols);
    }
  } else {
    sums.i32.clear();
    sums.f32.resize(std::size_t(m_rows) * n_cols);
    std::vector<float> wf(std::size_t(k_rows) * n_cols);
    for (std::size_t i = 0; i < wf.size(); ++i) wf[i] = bf16_to_fp32(w.bf16[i]);
    std::vector<float> xf(k_rows);
    for (std::uint32_t m = 0; m < m_rows; ++m) {
      const std::uint8_t* x = s.ub_row(inst.ub_row + std::uint64_t(m) * inst.ub_stride);
      for (std::uint32_t k = 0; k < k_rows; ++k) {
        xf[k] = bf16_to_fp32(load_elem<std::uint16_t>(x + 2 * k));
      }
      fp32_row_times_tile(xf.data(), wf.data(), sums.f32.data() + std::size_t(m) * n_cols, k_rows,
                          n_cols);
    }
  }
}

void matmul_commit(MachineState& s, const Instruction& inst, const TileSums& sums) {
  const std::uint32_t m_rows = sums.rows, n_cols = sums.cols;
  const std::uint64_t acc_stride = s.array_cols;
  const bool accumulate = inst.flags & kFlagAccumulate;
  for (std::uint32_t m = 0; m < m_rows; ++m) {
    const std::size_t row = (inst.acc_row + std::uint64_t(m)) * acc_stride;
    if (s.dtype == DataType::kInt8) {
      const std::int32_t* sum = sums.i32.data() + std::size_t(m) * n_cols;
      std::int32_t* out = s.acc_i32.data() + row;
      // Accumulators wrap modulo 2^32 like 32-bit hardware registers.
      if (accumulate) {
        for (std::uint32_t n = 0; n < n_cols; ++n) {
          out[n] = std::int32_t(std::uint32_t(out[n]) + std::uint32_t(sum[n]));
        }
      } else {
        std::copy(sum, sum + n_cols, out);
      }
    } else {
      const float* sum = sums.f32.data() + std::size_t(m) * n_cols;
      float* out = s.acc_f32.data() + row;
      if (accumulate) {
        for (std::uint32_t n = 0; n < n_cols; ++n) out[n] += sum[n];
      } else {
        std::copy(sum, sum + n_cols, out);
      }
    }
  }
}

void matmul_tile(MachineState& s, const Instruction& inst, const WeightTile& w) {
  TileSums sums;
  matmul_compute(s, inst, w, sums);
  matmul_commit(s, inst, sums);
}

void exec_activate(MachineState& s, const Instruction& inst) {
  check_activate(s, inst);
  const std::uint32_t rows = inst.rows, cols = inst.cols;
  const std::uint64_t acc_stride = s.array_cols;
  // The bias words, 0 without the flag: int32 or fp32 bits, as the accumulators hold them.
  std::vector<std::uint32_t> bias(cols, 0);
  if (inst.flags & kFlagBias) {
    std::memcpy(bias.data(), s.ub.data() + 4 * std::uint64_t(inst.src_row), 4 * std::size_t(cols));
  }
  // int32 sums wrap, as the accumulators' own do.
  const auto acc_i32 = [&](const std::int32_t* a, std::uint32_t n) {
    return std::int32_t(std::uint32_t(a[n]) + bias[n]);
  };
  if (inst.flags & kFlagRaw) {
    // The words as the accumulators hold them (after the bias): int32 or fp32 bits.
    const std::uint64_t per_row =
        raw_rows_per_acc_row(cols, std::uint64_t(s.row_elems) * s.elem_bytes);
    for (std::uint32_t m = 0; m < rows; ++m) {
      const std::uint64_t at = (inst.acc_row + std::uint64_t(m)) * acc_stride;
      std::uint8_t* out = s.ub_row(inst.ub_row + m * per_row);
      for (std::uint32_t n = 0; n < cols; ++n) {
        std::uint32_t word;
        if (s.dtype == DataType::kInt8) {
          word = std::uint32_t(acc_i32(s.acc_i32.data() + at, n));
        } else {
          const float* a = s.acc_f32.data() + at;
          const float x = (inst.flags & kFlagBias) ? a[n] + fp32(bias[n]) : a[n];
          std::memcpy(&word, &x, 4);
        }
        std::memcpy(out + 4 * std::uint64_t(n), &word, 4);
      }
    }
  } else if (s.dtype == DataType::kInt8 && inst.func > Activation::kRelu) {
    // The fp32 path: dequantise, activate, requantise.
    const float scale_in = fp32(inst.scale_a), scale_out = fp32(inst.scale_out);
    for (std::uint32_t m = 0; m < rows; ++m) {
      const std::int32_t* a = s.acc_i32.data() + (inst.acc_row + std::uint64_t(m)) * acc_stride;
      auto* out = reinterpret_cast<std::int8_t*>(s.ub_row(inst.ub_row + std::uint64_t(m)));
      for (std::uint32_t n = 0; n < cols; ++n) {
        out[n] = requantise_fp32(activation_fp32(float(acc_i32(a, n)) * scale_in, inst.func),
                                 scale_out, inst.zero_point);
      }
    }
  } else if (s.dtype == DataType::kInt8) {
    const std::int64_t mult = inst.multiplier;
    const std::int64_t zp = inst.zero_point;
    const std::int64_t lo = inst.func == Activation::kRelu ? zp : -128;
    for (std::uint32_t m = 0; m < rows; ++m) {
      const std::int32_t* a = s.acc_i32.data() + (inst.acc_row + std::uint64_t(m)) * acc_stride;
      auto* out = reinterpret_cast<std::int8_t*>(s.ub_row(inst.ub_row + std::uint64_t(m)));
      for (std::uint32_t n = 0; n < cols; ++n) {
        out[n] = requantise(acc_i32(a, n) * mult, inst.shift, zp, lo);
      }
    }
  } else {
    const float scale = fp32(inst.scale_a);
    for (std::uint32_t m = 0; m < rows; ++m) {
      const float* a = s.acc_f32.data() + (inst.acc_row + std::uint64_t(m)) * acc_stride;
      std::uint8_t* out = s.ub_row(inst.ub_row + std::uint64_t(m));
      for (std::uint32_t n = 0; n < cols; ++n) {
        const float x = (inst.flags & kFlagBias) ? (a[n] + fp32(bias[n])) * scale : a[n] * scale;
        const std::uint16_t b = fp32_to_bf16(activation_fp32(x, inst.func));
        std::memcpy(out + 2 * n, &b, 2);
      }
    }
  }
}

void exec_acc_load(MachineState& s, const Instruction& inst) {
  check_acc_load(s, inst);
  const std::uint64_t acc_stride = s.array_cols;
  const std::uint64_t per_row =
      raw_rows_per_acc_row(inst.cols, std::uint64_t(s.row_elems) * s.elem_bytes);
  const bool add = inst.flags & kFlagAccumulate;
  for (std::uint32_t m = 0; m < inst.rows; ++m) {
    const std::uint8_t* in = s.ub_row(inst.ub_row + m * per_row);
    const std::uint64_t at = (inst.acc_row + std::uint64_t(m)) * acc_stride;
    for (std::uint32_t n = 0; n < inst.cols; ++n) {
      std::uint32_t word;
      std::memcpy(&word, in + 4 * std::uint64_t(n), 4);
      if (s.dtype == DataType::kInt8) {
        // int32 sums wrap, as the accumulators' own do.
        std::int32_t& a = s.acc_i32[at + n];
        a = std::int32_t((add ? std::uint32_t(a) : 0u) + word);
      } else {
        float& a = s.acc_f32[at + n];
        a = add ? a + fp32(word) : fp32(word);
      }
    }
  }
}

void exec_pool(MachineState& s, const Instruction& inst) {
  check_pool(s, inst);
  const std::uint32_t kh = inst.kernel_h, kw = inst.kernel_w, stride = inst.stride;
  const std::uint32_t w = inst.in_w, cols = inst.cols;
  const std::uint32_t oh = pool_out_h(inst), ow = pool_out_w(inst);
  const std::uint64_t eb = s.elem_bytes;
  const bool average = inst.flags & kFlagAverage;
  const float inv_window = 1.0f / float(std::uint64_t(kh) * kw);
  // Every input is read before any output is written, so source and destination may overlap.
  std::vector<std::uint8_t> result(std::size_t(oh) * ow * cols * eb);
  std::vector<std::int32_t> sum_i32(average ? cols : 0);
  std::vector<float> sum_f32(average ? cols : 0);
  for (std::uint32_t y = 0; y < oh; ++y) {
    for (std::uint32_t x = 0; x < ow; ++x) {
      std::uint8_t* out = result.data() + (std::size_t(y) * ow + x) * cols * eb;
      std::fill(sum_i32.begin(), sum_i32.end(), 0);
      std::fill(sum_f32.begin(), sum_f32.end(), 0.0f);
      for (std::uint32_t i = 0; i < kh; ++i) {
        for (std::uint32_t j = 0; j < kw; ++j) {
          const std::uint64_t pixel = std::uint64_t(y * stride + i) * w + (x * stride + j);
          const std::uint8_t* in = s.ub_row(inst.ub_row + pixel);
          const bool first = i == 0 && j == 0;
          if (s.dtype == DataType::kInt8) {
            auto* o = reinterpret_cast<std::int8_t*>(out);
            const auto* v = reinterpret_cast<const std::int8_t*>(in);
            if (average) {
              for (std::uint32_t c = 0; c < cols; ++c) sum_i32[c] += v[c];
            } else {
              for (std::uint32_t c = 0; c < cols; ++c) o[c] = first ? v[c] : std::max(o[c], v[c]);
            }
          } else {
            for (std::uint32_t c = 0; c < cols; ++c) {
              const std::uint16_t v = load_elem<std::uint16_t>(in + 2 * c);
              if (average) {
                sum_f32[c] += bf16_to_fp32(v);
              } else if (first ||
                         bf16_to_fp32(v) > bf16_to_fp32(load_elem<std::uint16_t>(out + 2 * c))) {
                std::memcpy(out + 2 * c, &v, 2);
              }
            }
          }
        }
      }
      if (!average) continue;
      for (std::uint32_t c = 0; c < cols; ++c) {
        if (s.dtype == DataType::kInt8) {
          out[c] = std::uint8_t(
              requantise(std::int64_t(sum_i32[c]) * inst.multiplier, inst.shift, 0, -128));
        } else {
          const std::uint16_t b = fp32_to_bf16(sum_f32[c] * inv_window);
          std::memcpy(out + 2 * c, &b, 2);
        }
      }
    }
  }
  for (std::uint32_t p = 0; p < oh * ow; ++p) {
    std::memcpy(s.ub_row(inst.dst_row + std::uint64_t(p)), result.data() + p * cols * eb,
                cols * eb);
  }
}

void exec_add(MachineState& s, const Instruction& inst) {
  check_add(s, inst);
  const std::uint32_t rows = inst.rows, cols = inst.cols;
  const std::uint64_t row_bytes = std::uint64_t(cols) * s.elem_bytes;
  // Every input is read before any output is written, so the ranges may overlap.
  std::vector<std::uint8_t> result(rows * row_bytes);
  for (std::uint32_t m = 0; m < rows; ++m) {
    const std::uint8_t* a = s.ub_row(inst.ub_row + std::uint64_t(m));
    const std::uint8_t* b = s.ub_row(inst.src_row + std::uint64_t(m));
    std::uint8_t* out = result.data() + m * row_bytes;
    if (s.dtype == DataType::kInt8) {
      const std::int64_t zp = inst.zero_point;
      const std::int64_t lo = inst.func == Activation::kRelu ? zp : -128;
      for (std::uint32_t n = 0; n < cols; ++n) {
        const std::int64_t v = std::int64_t(std::int8_t(a[n])) * inst.multiplier +
                               std::int64_t(std::int8_t(b[n])) * inst.multiplier_b;
        out[n] = std::uint8_t(requantise(v, inst.shift, zp, lo));
      }
    } else {
      for (std::uint32_t n = 0; n < cols; ++n) {
        const float sum = bf16_to_fp32(load_elem<std::uint16_t>(a + 2 * n)) +
                          bf16_to_fp32(load_elem<std::uint16_t>(b + 2 * n));
        const float r = bf16_to_fp32(fp32_to_bf16(sum));
        const std::uint16_t v = fp32_to_bf16(activation_fp32(r, inst.func));
        std::memcpy(out + 2 * n, &v, 2);
      }
    }
  }
  for (std::uint32_t m = 0; m < rows; ++m) {
    std::memcpy(s.ub_row(inst.dst_row + std::uint64_t(m)), result.data() + m * row_bytes,
                row_bytes);
  }
}

void exec_vop(MachineState& s, const Instruction& inst) {
  check_vop(s, inst);
  const std::uint32_t rows = inst.rows, cols = inst.cols;
  const std::uint32_t width = vop_chunk_cols(inst), chunks = vop_chunks(inst);
  const bool int8 = s.dtype == DataType::kInt8;
  const float scale_a = fp32(inst.scale_a), scale_b = fp32(inst.scale_b);
  const float scale_out = fp32(inst.scale_out);
  // Element n of a row lives in its chunk n / width, at n % width.
  const auto load = [&](std::uint64_t first_row, std::uint64_t stride, std::uint32_t n,
                        float scale) {
    const std::uint8_t* row = s.ub_row(first_row + (n / width) * stride);
    const std::uint32_t i = n % width;
    return int8 ? float(std::int8_t(row[i])) * scale
                : bf16_to_fp32(load_elem<std::uint16_t>(row + 2 * i));
  };
  const std::uint64_t eb = s.elem_bytes;
  // Every input is read before any output is written, so the ranges may overlap.
  std::vector<std::uint8_t> result(std::uint64_t(rows) * cols * eb);
  std::vector<float> y(cols);
  const bool causal = inst.kind == VopKind::kSoftmax && (inst.flags & kFlagCausal);
  const bool norm = inst.kind == VopKind::kLayerNorm || inst.kind == VopKind::kRmsNorm;
  std::vector<float> gamma(norm ? cols : 0), beta(inst.kind == VopKind::kLayerNorm ? cols : 0);
  for (std::uint32_t n = 0; n < gamma.size(); ++n) gamma[n] = load(inst.src_row, 1, n, scale_b);
  for (std::uint32_t n = 0; n < beta.size(); ++n) {
    beta[n] = load(inst.src_row + chunks, 1, n, scale_b);
  }
  for (std::uint32_t m = 0; m < rows; ++m) {
    for (std::uint32_t n = 0; n < cols; ++n) {
      y[n] = load(inst.ub_row + std::uint64_t(m), inst.chunk_stride_a, n, scale_a);
    }
    if (inst.kind == VopKind::kMul) {
      for (std::uint32_t n = 0; n < cols; ++n) {
        y[n] = y[n] * load(inst.src_row + std::uint64_t(m), 0, n, scale_b);
      }
    } else if (inst.kind == VopKind::kSoftmax) {
      // Causal: row m keeps the columns up to mask_row + m + mask_offset.
      const std::int64_t last = std::int64_t(inst.mask_row) + m + inst.mask_offset;
      const std::uint32_t kept =
          causal ? std::uint32_t(std::clamp<std::int64_t>(last + 1, 0, cols)) : cols;
      softmax_fp32(y.data(), cols, kept);
    } else if (norm) {
      norm_fp32(y.data(), cols, gamma.data(), beta.empty() ? nullptr : beta.data(),
                fp32(inst.eps));
    }
    std::uint8_t* out = result.data() + std::uint64_t(m) * cols * eb;
    for (std::uint32_t n = 0; n < cols; ++n) {
      const float v = activation_fp32(y[n], inst.func);
      if (int8) {
        out[n] = std::uint8_t(requantise_fp32(v, scale_out, 0));
      } else {
        const std::uint16_t b = fp32_to_bf16(v);
        std::memcpy(out + 2 * n, &b, 2);
      }
    }
  }
  for (std::uint32_t m = 0; m < rows; ++m) {
    for (std::uint32_t k = 0; k < chunks; ++k) {
      const std::uint32_t n0 = k * width, len = std::min(width, cols - n0);
      std::memcpy(s.ub_row(inst.dst_row + std::uint64_t(k) * inst.chunk_stride_dst + m),
                  result.data() + (std::uint64_t(m) * cols + n0) * eb, len * eb);
    }
  }
}

void check_bounds(const MachineState& s, const Instruction& inst) {
  switch (inst.op) {
    case Opcode::kNop:
    case Opcode::kHalt:
    case Opcode::kLayer:
    case Opcode::kSignalCore:
      return;
    case Opcode::kDmaLoad:
      check_dma(s, inst.dma, "dma.load", inst.flags & kFlagWeights);
      return;
    case Opcode::kDmaStore:
      check_dma(s, inst.dma, "dma.store");
      return;
    case Opcode::kLoadWeights:
      check_load_weights(s, inst);
      return;
    case Opcode::kMatmul:
      check_matmul(s, inst);
      return;
    case Opcode::kActivate:
      check_activate(s, inst);
      return;
    case Opcode::kPool:
      check_pool(s, inst);
      return;
    case Opcode::kAdd:
      check_add(s, inst);
      return;
    case Opcode::kVop:
      check_vop(s, inst);
      return;
    case Opcode::kAccLoad:
      check_acc_load(s, inst);
      return;
  }
}

namespace {

// Executes one instruction on core state `s` (its tiles: the one each MXU last loaded).
void execute(MachineState& s, const Instruction& inst, std::vector<WeightTile>& tiles) {
  check_bounds(s, inst);
  switch (inst.op) {
    case Opcode::kNop:
    case Opcode::kLayer:
    case Opcode::kHalt:
    case Opcode::kSignalCore:
      break;
    case Opcode::kDmaLoad:
      if (inst.flags & kFlagWeights) {
        exec_dma_load_fifo(s, inst.dma);
      } else {
        exec_dma_load(s, inst.dma);
      }
      break;
    case Opcode::kDmaStore:
      exec_dma_store(s, inst.dma);
      break;
    case Opcode::kLoadWeights:
      exec_load_weights(s, inst, tiles[inst.instance]);
      break;
    case Opcode::kMatmul:
      matmul_tile(s, inst, tiles[inst.instance]);
      break;
    case Opcode::kActivate:
      exec_activate(s, inst);
      break;
    case Opcode::kPool:
      exec_pool(s, inst);
      break;
    case Opcode::kAdd:
      exec_add(s, inst);
      break;
    case Opcode::kVop:
      exec_vop(s, inst);
      break;
    case Opcode::kAccLoad:
      exec_acc_load(s, inst);
      break;
  }
}

}  // namespace

MachineState interpret(const Config& config, const Program& program) {
  const std::size_t cores = program_cores(program);
  std::vector<MachineState> states;
  states.reserve(cores);
  for (std::size_t c = 0; c < cores; ++c) states.emplace_back(config, program, true, c == 0);
  std::vector<std::vector<WeightTile>> tiles(cores, std::vector<WeightTile>(states[0].mxus));
  // Per core: the semaphores some signal.core signals on it, and their counts so far.
  std::vector<std::uint64_t> remote(cores);
  for (std::size_t c = 0; c < cores; ++c) remote[c] = core_signalled_semaphores(program, c);
  std::vector<std::array<std::uint64_t, kNumSemaphores>> counts(cores);
  std::vector<std::size_t> pc(cores);
  std::vector<bool> halted(cores, false);
  for (std::size_t c = 0; c < cores; ++c) pc[c] = core_stream(program, c).first;
  std::size_t running = cores;
  while (running > 0) {
    bool progressed = false;
    for (std::size_t c = 0; c < cores; ++c) {
      const std::size_t end = core_stream(program, c).second;
      std::swap(states[0].hbm, states[c].hbm);  // core c holds the HBM while it runs
      while (!halted[c] && pc[c] < end) {
        const Instruction& inst = program.instructions[pc[c]];
        const std::uint64_t need = inst.wait & remote[c];
        bool ready = true;
        for (std::uint32_t i = 0; i < kNumSemaphores; ++i) {
          if ((need >> i & 1) && counts[c][i] == 0) ready = false;
        }
        if (!ready) break;
        for (std::uint32_t i = 0; i < kNumSemaphores; ++i) counts[c][i] -= need >> i & 1;
        execute(states[c], inst, tiles[c]);
        if (inst.op == Opcode::kSignalCore) {
          if (inst.core >= cores) {
            throw std::out_of_range("instruction " + std::to_string(pc[c]) +
                                    ": signal.core core=" + std::to_string(inst.core) +
                                    ", but the program has " + std::to_string(cores) +
                                    " core streams");
          }
          for (std::uint32_t i = 0; i < kNumSemaphores; ++i) {
            counts[inst.core][i] += inst.signal >> i & 1;
          }
        }
        ++pc[c];
        progressed = true;
        if (inst.op == Opcode::kHalt || pc[c] == end) {
          halted[c] = true;
          --running;
        }
      }
      std::swap(states[0].hbm, states[c].hbm);
    }
    if (running > 0 && !progressed) {
      throw std::runtime_error("cross-core deadlock: every running core waits on a semaphore "
                               "no other core signals");
    }
  }
  return std::move(states[0]);
}

}  // namespace tpu
