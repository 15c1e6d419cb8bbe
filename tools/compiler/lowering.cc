#include "tools/compiler/lowering.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <string>

#include "tools/compiler/reference.h"

namespace tpu {

namespace {

constexpr std::uint64_t kHbmAlign = 64;
constexpr std::uint64_t kMax16 = 0xffff;
constexpr std::uint64_t kMax24 = 0xffffff;
constexpr std::uint64_t kMax32 = 0xffffffff;
constexpr std::uint64_t kMaxHbmAddress = std::uint64_t(1) << 40;
// The requantiser maps the largest |accumulator| of a layer to about this int8 value.
constexpr std::int64_t kRequantTarget = 100;

std::uint64_t ceil_div(std::uint64_t a, std::uint64_t b) { return (a + b - 1) / b; }
std::uint64_t align_up(std::uint64_t x) { return ceil_div(x, kHbmAlign) * kHbmAlign; }
std::uint16_t bit(std::uint32_t sem) { return std::uint16_t(1u << sem); }

// Deterministic across platforms, unlike the std distributions.
class Rng {
 public:
  Rng(std::uint64_t seed, std::uint64_t stream) : state_(seed * 0x9e3779b97f4a7c15ull + stream) {
    next();
  }
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }

 private:
  std::uint64_t state_;
};

// Values of one tensor in logical NHWC order (no border): int8, or bf16-exact floats.
struct Values {
  std::vector<std::int8_t> i8;
  std::vector<float> f32;
};

Values random_values(DataType dtype, std::uint64_t count, std::uint64_t seed,
                     std::uint64_t stream, bool weights) {
  Rng rng(seed, stream);
  Values v;
  if (dtype == DataType::kInt8) {
    v.i8.resize(count);
    for (auto& x : v.i8) x = std::int8_t(int(rng.next() % 128) - 64);  // [-64, 63]
  } else {
    // Multiples of 2^-6 (inputs) or 2^-10 (weights) with 8 significant bits: exact in bf16.
    const float scale = weights ? 1.0f / 1024 : 1.0f / 64;
    v.f32.resize(count);
    for (auto& x : v.f32) x = float(int(rng.next() % 256) - 128) * scale;
  }
  return v;
}

// An activation tensor in HBM: samples x (h + 2 pad) x (w + 2 pad) x c, NHWC, zero border of
// `pad` pixels (the padding its consumer convolution needs).
struct HbmTensor {
  std::uint64_t base = 0;
  std::uint32_t samples = 0;
  Shape3 shape;
  std::uint32_t pad = 0;
  std::uint32_t eb = 1;

  std::uint64_t pixel_bytes() const { return std::uint64_t(shape.c) * eb; }
  std::uint64_t row_bytes() const { return (std::uint64_t(shape.w) + 2 * pad) * pixel_bytes(); }
  std::uint64_t image_bytes() const { return (std::uint64_t(shape.h) + 2 * pad) * row_bytes(); }
  std::uint64_t bytes() const { return samples * image_bytes(); }
  // Address of pixel (b, y, x), channel 0; y and x are unpadded coordinates (>= -pad).
  std::uint64_t addr(std::uint64_t b, std::int64_t y, std::int64_t x) const {
    return base + b * image_bytes() + std::uint64_t(y + pad) * row_bytes() +
           std::uint64_t(x + pad) * pixel_bytes();
  }
  TensorView view() const {
    TensorView v;
    v.base = addr(0, 0, 0);
    v.count0 = shape.w * shape.c;
    v.count1 = shape.h;
    v.stride1 = row_bytes();
    v.count2 = samples;
    v.stride2 = image_bytes();
    return v;
  }
  // The tensor with its zero border as image bytes.
  std::vector<std::uint8_t> image(const Values& v) const {
    std::vector<std::uint8_t> bytes_out(bytes(), 0);
    std::uint64_t i = 0;
    for (std::uint64_t b = 0; b < samples; ++b) {
      for (std::uint32_t y = 0; y < shape.h; ++y) {
        std::uint8_t* p = bytes_out.data() + (addr(b, y, 0) - base);
        for (std::uint64_t e = 0; e < std::uint64_t(shape.w) * shape.c; ++e, ++i) {
          if (eb == 1) {
            p[e] = std::uint8_t(v.i8[i]);
          } else {
            std::uint16_t bits = reference_bf16_bits(v.f32[i]);
            std::memcpy(p + 2 * e, &bits, 2);
          }
        }
      }
    }
    return bytes_out;
  }
};

void requant_for(std::uint64_t max_abs, std::int32_t& multiplier, std::uint8_t& shift) {
  multiplier = 1;
  shift = 0;
  if (max_abs == 0) return;
  // The largest shift whose multiplier stays below 2^15 keeps the most precision.
  for (int s = 31; s >= 0; --s) {
    std::int64_t m = ((kRequantTarget << s) + std::int64_t(max_abs / 2)) / std::int64_t(max_abs);
    if (m < (1 << 15)) {
      multiplier = std::int32_t(std::max<std::int64_t>(m, 1));
      shift = std::uint8_t(s);
      return;
    }
  }
}

class Lowerer {
 public:
  Lowerer(const Model& model, const Config& config, const CompileOptions& options)
      : model_(model),
        config_(config),
        options_(options),
        data_(!options.timing_only),
        seed_(options.seed.value_or(model.seed)),
        eb_(element_bytes(model.dtype)),
        R_(config.array.rows),
        C_(config.array.cols),
        ub_rows_(std::min<std::uint64_t>(config.ub_rows(model.dtype), kMax24 + 1)),
        acc_rows_(std::min<std::uint64_t>(config.acc_rows(), kMax24 + 1)) {}

  Program run();

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw CompileError(model_.source + ": layer " + std::to_string(layer_index_) + " '" +
                       layer_->name + "': " + what);
  }
  void check_width(std::uint64_t value, std::uint64_t max, const std::string& what) const {
    if (value > max) {
      fail(what + " = " + std::to_string(value) + " exceeds its instruction field (max " +
           std::to_string(max) + ")");
    }
  }
  std::uint64_t allocate(std::uint64_t bytes) {
    std::uint64_t at = hbm_top_;
    hbm_top_ = align_up(hbm_top_ + bytes);
    return at;
  }
  HbmTensor make_tensor(std::uint32_t samples, Shape3 shape, std::uint32_t pad) {
    HbmTensor t;
    t.samples = samples;
    t.shape = shape;
    t.pad = pad;
    t.eb = eb_;
    t.base = allocate(t.bytes());
    return t;
  }
  void add_segment(const std::string& name, std::uint64_t address,
                   std::vector<std::uint8_t> bytes) {
    HbmSegment seg;
    seg.name = name;
    seg.address = address;
    seg.bytes = std::move(bytes);
    program_.hbm_image.push_back(std::move(seg));
  }
  void emit(const Instruction& inst) { program_.instructions.push_back(inst); }
  Instruction dma(Opcode op, const DmaFields& d, std::uint16_t wait, std::uint16_t signal) {
    check_width(d.group_stride, kMax32, "DMA group_stride (bytes)");
    check_width(d.seg_stride, kMax32, "DMA seg_stride (bytes)");
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
    if (pixel_stride == chans * eb_ && pixels * chans <= kMax16) {
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
      if (x != 0 || left < w || w > kMax16) {
        std::uint64_t n = std::min({w - x, left, kMax16});
        fn(m0, b, y, x, n, 1, 0);
        m0 += n;
      } else if (h == 1) {
        std::uint64_t rows = std::min({left / w, t.samples - b, kMax16});
        fn(m0, b, 0, 0, w, rows, t.image_bytes());
        m0 += rows * w;
      } else {
        std::uint64_t rows = std::min({left / w, h - y, kMax16});
        fn(m0, b, y, 0, w, rows, t.row_bytes());
        m0 += rows * w;
      }
    }
  }

  void lower_gemm(const Layer& layer, const HbmTensor& in, const HbmTensor& out,
                  std::uint64_t weights, const Values& x, Values& y);
  void lower_pool(const Layer& layer, const HbmTensor& in, const HbmTensor& out,
                  const Values& x, Values& y);

  const Model& model_;
  const Config& config_;
  const CompileOptions& options_;
  const bool data_;
  const std::uint64_t seed_;
  const std::uint32_t eb_;
  const std::uint32_t R_, C_;
  const std::uint64_t ub_rows_, acc_rows_;

  Program program_;
  std::uint64_t hbm_top_ = 0;
  std::size_t layer_index_ = 0;
  const Layer* layer_ = nullptr;
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
  program_.semaphore_names[kSemAccFree] = "acc_free";
  program_.semaphore_names[kSemOutReady] = "out_ready";
  program_.semaphore_names[kSemOutFree] = "out_free";
  program_.semaphore_names[kSemPoolReady] = "pool_ready";
  program_.semaphore_names[kSemPoolFree] = "pool_free";
  if (model_.layers.size() > kMax16) {
    throw CompileError(model_.source + ": " + std::to_string(model_.layers.size()) +
                       " layers exceed the LAYER instruction's limit of 65535");
  }

  HbmTensor current;  // output of the previous layer
  Values current_values;
  for (layer_index_ = 0; layer_index_ < model_.layers.size(); ++layer_index_) {
    const Layer& layer = model_.layers[layer_index_];
    layer_ = &layer;
    const std::uint32_t in_pad = layer.kind == LayerKind::kConv2d ? layer.padding : 0;
    if (layer.independent_input || layer_index_ == 0) {
      current = make_tensor(layer.samples, layer.in, in_pad);
      if (data_) {
        current_values = random_values(model_.dtype, std::uint64_t(layer.samples) *
                                                         layer.in.elements(),
                                       seed_, 2 * layer_index_, false);
        add_segment(layer.name + ".input", current.base, current.image(current_values));
      }
    }
    // The output carries the zero border its consumer convolution reads.
    std::uint32_t out_pad = 0;
    if (layer_index_ + 1 < model_.layers.size()) {
      const Layer& next = model_.layers[layer_index_ + 1];
      if (!next.independent_input && next.kind == LayerKind::kConv2d) out_pad = next.padding;
    }
    Instruction tag;
    tag.op = Opcode::kLayer;
    tag.layer = std::uint16_t(layer_index_);
    emit(tag);

    LayerInfo info;
    info.name = layer.name;
    info.kind = to_string(layer.kind);
    info.macs = layer.macs();
    Values out_values;
    std::uint64_t weights = 0;
    if (layer.kind != LayerKind::kMaxPool2d) {
      weights = allocate(layer.gemm_k() * layer.gemm_n() * eb_);
    }
    HbmTensor out = make_tensor(layer.samples, layer.out, out_pad);
    if (layer.kind == LayerKind::kMaxPool2d) {
      lower_pool(layer, current, out, current_values, out_values);
    } else {
      lower_gemm(layer, current, out, weights, current_values, out_values);
    }
    current = out;
    info.output = current.view();
    if (data_) {
      if (model_.dtype == DataType::kInt8) {
        info.expected_int8 = out_values.i8;
      } else {
        info.expected_fp32 = out_values.f32;
        // The machine rounds each output to bf16; the next layer reads the rounded values.
        for (auto& v : out_values.f32) v = reference_round_bf16(v);
      }
    }
    current_values = std::move(out_values);
    program_.layers.push_back(std::move(info));
  }
  Instruction halt;
  halt.op = Opcode::kHalt;
  emit(halt);

  program_.hbm_bytes = std::max<std::uint64_t>(hbm_top_, kHbmAlign);
  if (program_.hbm_bytes > config_.hbm.capacity_bytes || program_.hbm_bytes > kMaxHbmAddress) {
    throw CompileError(model_.source + ": model needs " + std::to_string(program_.hbm_bytes) +
                       " bytes of HBM but hbm.capacity_bytes = " +
                       std::to_string(config_.hbm.capacity_bytes) +
                       "; it would fit with hbm.capacity_bytes >= " +
                       std::to_string(program_.hbm_bytes));
  }
  return std::move(program_);
}

std::string bytes_str(std::uint64_t rows, std::uint64_t row_bytes) {
  return std::to_string(rows * row_bytes);
}

void Lowerer::lower_gemm(const Layer& layer, const HbmTensor& in, const HbmTensor& out,
                         std::uint64_t weights, const Values& x, Values& y) {
  const bool conv = layer.kind == LayerKind::kConv2d;
  const std::uint64_t M = layer.gemm_m(), K = layer.gemm_k(), N = layer.gemm_n();
  const std::uint64_t KT = ceil_div(K, R_), NT = ceil_div(N, C_);
  const std::uint64_t KR = KT;  // UB rows holding one input vector of K elements, R per row
  const std::uint64_t row_bytes = std::uint64_t(config_.ub_row_elems()) * eb_;
  check_width(KR, kMax16, "UB rows per input vector ceil(K / array.rows) (MATMUL ub_stride)");

  // UB: two input tiles of M_t * KR rows, two weight staging slots of R rows, two output
  // staging tiles of M_t rows. Accumulators: two tiles of M_t rows.
  const std::uint64_t fixed = 2 * std::uint64_t(R_), per_m = 2 * KR + 2;
  if (ub_rows_ < fixed + per_m) {
    const std::uint64_t need = fixed + per_m;
    fail("needs 2 x " + std::to_string(KR) + " rows (one input vector of K = " +
         std::to_string(K) + ", double-buffered) + 2 x " + std::to_string(R_) +
         " (weight staging) + 2 x 1 (output staging) = " + std::to_string(need) +
         " unified-buffer rows for the smallest tile (M_t = 1), but the unified buffer holds " +
         std::to_string(config_.ub_rows(model_.dtype)) + " rows of " +
         std::to_string(row_bytes) + " bytes (ub.capacity_bytes = " +
         std::to_string(config_.ub.capacity_bytes) +
         "); it would fit with ub.capacity_bytes >= " + bytes_str(need, row_bytes));
  }
  if (acc_rows_ < 2) {
    fail("needs 2 accumulator rows (one output row, double-buffered) but the accumulators hold " +
         std::to_string(config_.acc_rows()) + " (acc.capacity_bytes = " +
         std::to_string(config_.acc.capacity_bytes) +
         "); it would fit with acc.capacity_bytes >= " +
         std::to_string(2 * std::uint64_t(C_) * 4));
  }
  std::uint64_t m_tile = std::min({M, (ub_rows_ - fixed) / per_m, acc_rows_ / 2, kMax16});
  if (options_.max_m_tile > 0) m_tile = std::min<std::uint64_t>(m_tile, options_.max_m_tile);
  // Whole output image rows keep the stores to few, long DMAs.
  if (conv && m_tile < M && m_tile >= layer.out.w) m_tile -= m_tile % layer.out.w;
  const std::uint64_t MT = ceil_div(M, m_tile);
  const std::uint64_t x_slot[2] = {0, m_tile * KR};
  const std::uint64_t w_slot[2] = {2 * m_tile * KR, 2 * m_tile * KR + R_};
  const std::uint64_t o_slot[2] = {2 * m_tile * KR + 2 * R_, 2 * m_tile * KR + 2 * R_ + m_tile};
  const std::uint64_t acc_slot[2] = {0, m_tile};

  if (conv) {
    check_width(std::uint64_t(layer.kernel_w) * layer.in.c, kMax16,
                "im2col segment kernel_w * in_channels (DMA elems)");
    check_width(layer.kernel_h, kMax16, "im2col segments per patch kernel_h (DMA segs)");
  } else {
    check_width(K, kMax16, "input row of K elements (DMA elems)");
  }

  // Data: weights K x N, stored tile-major; reference output; requantiser.
  std::int32_t multiplier = 1;
  std::uint8_t shift = 0;
  if (data_) {
    Values w = random_values(model_.dtype, K * N, seed_, 2 * layer_index_ + 1, true);
    std::vector<std::uint8_t> image(K * N * eb_);
    std::uint64_t at = 0;
    for (std::uint64_t n0 = 0; n0 < N; n0 += C_) {
      for (std::uint64_t k0 = 0; k0 < K; k0 += R_) {
        for (std::uint64_t k = k0; k < std::min(K, k0 + R_); ++k) {
          for (std::uint64_t n = n0; n < std::min(N, n0 + C_); ++n, at += eb_) {
            if (eb_ == 1) {
              image[at] = std::uint8_t(w.i8[k * N + n]);
            } else {
              std::uint16_t b = reference_bf16_bits(w.f32[k * N + n]);
              std::memcpy(&image[at], &b, 2);
            }
          }
        }
      }
    }
    add_segment(layer.name + ".weights", weights, std::move(image));
    ConvShape cs{layer.samples, layer.in, layer.kernel_h, layer.kernel_w,
                 layer.stride,  layer.padding, layer.out_channels};
    if (model_.dtype == DataType::kInt8) {
      std::vector<std::int32_t> acc = conv ? reference_conv2d(x.i8, w.i8, cs)
                                           : reference_matmul(x.i8, w.i8, M, K, N);
      std::uint64_t max_abs = 0;
      for (std::int32_t a : acc) max_abs = std::max<std::uint64_t>(max_abs, std::llabs(a));
      requant_for(max_abs, multiplier, shift);
      y.i8.resize(acc.size());
      for (std::size_t i = 0; i < acc.size(); ++i) {
        y.i8[i] = reference_requantize(acc[i], multiplier, shift, 0, layer.activation);
      }
    } else {
      y.f32 = conv ? reference_conv2d(x.f32, w.f32, cs) : reference_matmul(x.f32, w.f32, M, K, N);
      for (float& v : y.f32) v = reference_activate(v, layer.activation);
    }
  } else if (model_.dtype == DataType::kInt8) {
    // Full-scale inputs and weights bound |acc| by 64 * 64 * K.
    requant_for(std::min<std::uint64_t>(4096 * K, std::numeric_limits<std::int32_t>::max()),
                multiplier, shift);
  }

  auto emit_input = [&](std::uint64_t mt) {
    const std::uint64_t m0 = mt * m_tile, m1 = std::min(M, m0 + m_tile);
    std::vector<DmaFields> pieces;
    if (conv) {
      // One group per output pixel: kernel_h segments of kernel_w * C contiguous elements,
      // packed R per UB row, so K-tile kt of the pixel is UB row patch + kt.
      const std::uint64_t ohw = std::uint64_t(layer.out.h) * layer.out.w;
      for (std::uint64_t m = m0; m < m1;) {
        const std::uint64_t b = m / ohw, oy = (m % ohw) / layer.out.w, ox = m % layer.out.w;
        const std::uint64_t n = std::min({layer.out.w - ox, m1 - m, kMax16});
        DmaFields d;
        d.hbm_addr = in.addr(b, std::int64_t(oy * layer.stride) - layer.padding,
                             std::int64_t(ox * layer.stride) - layer.padding);
        d.ub_row = std::uint32_t(x_slot[mt % 2] + (m - m0) * KR);
        d.elems = std::uint16_t(layer.kernel_w * layer.in.c);
        d.segs = std::uint16_t(layer.kernel_h);
        d.seg_stride = std::uint32_t(layer.kernel_h > 1 ? in.row_bytes() : 0);
        d.groups = std::uint16_t(n);
        d.group_stride = std::uint32_t(n > 1 ? layer.stride * in.pixel_bytes() : 0);
        d.ub_stride = std::uint16_t(KR);
        d.pack = std::uint16_t(R_);
        pieces.push_back(d);
        m += n;
      }
    } else {
      DmaFields d;
      d.hbm_addr = in.addr(m0, 0, 0);
      d.ub_row = std::uint32_t(x_slot[mt % 2]);
      d.elems = std::uint16_t(K);
      d.groups = std::uint16_t(m1 - m0);
      d.group_stride = std::uint32_t(m1 - m0 > 1 ? in.image_bytes() : 0);
      d.ub_stride = std::uint16_t(KR);
      d.pack = std::uint16_t(R_);
      pieces.push_back(d);
    }
    for (std::size_t i = 0; i < pieces.size(); ++i) {
      std::uint16_t wait = i == 0 && mt >= 2 ? bit(kSemXFree) : 0;
      std::uint16_t signal = i + 1 == pieces.size() ? bit(kSemXReady) : 0;
      emit(dma(Opcode::kDmaLoad, pieces[i], wait, signal));
    }
  };

  const std::uint64_t T = MT * NT, J = T * KT;
  auto emit_store = [&](std::uint64_t t) {
    const std::uint64_t mt = t / NT, nt = t % NT;
    const std::uint64_t m0 = mt * m_tile, m1 = std::min(M, m0 + m_tile);
    const std::uint64_t n0 = nt * C_, nts = std::min<std::uint64_t>(C_, N - n0);
    std::vector<DmaFields> pieces;
    pixel_blocks(m0, m1, out,
                 [&](std::uint64_t first, std::uint64_t b, std::uint64_t py, std::uint64_t px,
                     std::uint64_t pixels, std::uint64_t rows, std::uint64_t row_stride) {
                   pieces.push_back(block(out.addr(b, std::int64_t(py), std::int64_t(px)) +
                                              n0 * eb_,
                                          o_slot[t % 2] + (first - m0), rows, row_stride, pixels,
                                          out.pixel_bytes(), nts));
                 });
    for (std::size_t i = 0; i < pieces.size(); ++i) {
      std::uint16_t wait = i == 0 ? bit(kSemOutReady) : 0;
      std::uint16_t signal = i + 1 == pieces.size() && t + 2 < T ? bit(kSemOutFree) : 0;
      emit(dma(Opcode::kDmaStore, pieces[i], wait, signal));
    }
  };

  emit_input(0);
  for (std::uint64_t mt = 0; mt < MT; ++mt) {
    const std::uint64_t m0 = mt * m_tile, rows = std::min(M, m0 + m_tile) - m0;
    for (std::uint64_t nt = 0; nt < NT; ++nt) {
      const std::uint64_t t = mt * NT + nt;
      const std::uint64_t n0 = nt * C_, nts = std::min<std::uint64_t>(C_, N - n0);
      for (std::uint64_t kt = 0; kt < KT; ++kt) {
        const std::uint64_t j = t * KT + kt;
        const std::uint64_t k0 = kt * R_, kts = std::min<std::uint64_t>(R_, K - k0);
        // Weight tile (nt, kt): K_t x N_t row-major, after all tiles of earlier column blocks
        // (full width C) and earlier row blocks of this one (full height R).
        const std::uint64_t addr = weights + (n0 * K + k0 * nts) * eb_;
        emit(dma(Opcode::kDmaLoad, block(addr, w_slot[j % 2], 1, 0, kts, nts * eb_, nts),
                 j >= 2 ? bit(kSemWFree) : 0, bit(kSemWReady)));
        Instruction lw;
        lw.op = Opcode::kLoadWeights;
        lw.ub_row = std::uint32_t(w_slot[j % 2]);
        lw.rows = std::uint32_t(kts);
        lw.cols = std::uint16_t(nts);
        lw.wait = bit(kSemWReady);
        lw.signal = j + 2 < J ? bit(kSemWFree) : 0;
        emit(lw);
        Instruction mm;
        mm.op = Opcode::kMatmul;
        mm.flags = kt > 0 ? kFlagAccumulate : 0;
        mm.ub_row = std::uint32_t(x_slot[mt % 2] + kt);
        mm.ub_stride = std::uint16_t(KR);
        mm.rows = std::uint32_t(rows);
        mm.acc_row = std::uint32_t(acc_slot[t % 2]);
        if (nt == 0 && kt == 0) mm.wait |= bit(kSemXReady);
        if (kt == 0 && t >= 2) mm.wait |= bit(kSemAccFree);
        if (kt + 1 == KT) mm.signal |= bit(kSemAccReady);
        if (kt + 1 == KT && nt + 1 == NT && mt + 2 < MT) mm.signal |= bit(kSemXFree);
        emit(mm);
      }
      // Queued behind this tile's weights, so the weight stream never waits on the vector unit.
      if (nt == 0 && mt + 1 < MT) emit_input(mt + 1);
      if (t > 0) emit_store(t - 1);
      Instruction act;
      act.op = Opcode::kActivate;
      act.acc_row = std::uint32_t(acc_slot[t % 2]);
      act.rows = std::uint32_t(rows);
      act.cols = std::uint16_t(nts);
      act.ub_row = std::uint32_t(o_slot[t % 2]);
      act.func = layer.activation;
      act.multiplier = multiplier;
      act.shift = shift;
      act.zero_point = 0;
      act.wait = bit(kSemAccReady) | (t >= 2 ? bit(kSemOutFree) : 0);
      act.signal = bit(kSemOutReady) | (t + 2 < T ? bit(kSemAccFree) : 0);
      emit(act);
    }
  }
  emit_store(T - 1);
}

void Lowerer::lower_pool(const Layer& layer, const HbmTensor& in, const HbmTensor& out,
                         const Values& x, Values& y) {
  const std::uint64_t W = layer.in.w, C = layer.in.c, OH = layer.out.h, OW = layer.out.w;
  const std::uint64_t k = layer.kernel_h, s = layer.stride;
  const std::uint64_t row_bytes = std::uint64_t(config_.ub_row_elems()) * eb_;
  check_width(W, kMax16, "input width (POOL in_w)");
  // Two input bands of in_h(ob) * W rows and two output bands of ob * OW rows.
  auto in_h = [&](std::uint64_t ob) { return (ob - 1) * s + k; };
  auto need = [&](std::uint64_t ob) { return 2 * in_h(ob) * W + 2 * ob * OW; };
  if (need(1) > ub_rows_) {
    fail("needs 2 x " + std::to_string(k * W) + " rows (" + std::to_string(k) +
         " input rows of width " + std::to_string(W) + ", double-buffered) + 2 x " +
         std::to_string(OW) + " (one output row, double-buffered) = " +
         std::to_string(need(1)) + " unified-buffer rows, but the unified buffer holds " +
         std::to_string(config_.ub_rows(model_.dtype)) + " rows of " +
         std::to_string(row_bytes) + " bytes (ub.capacity_bytes = " +
         std::to_string(config_.ub.capacity_bytes) +
         "); it would fit with ub.capacity_bytes >= " + bytes_str(need(1), row_bytes));
  }
  std::uint64_t ob = 1;
  while (ob < std::min(OH, kMax16) && need(ob + 1) <= ub_rows_ && in_h(ob + 1) <= kMax16) ++ob;
  check_width(in_h(ob), kMax16, "input band height (POOL in_h)");
  const std::uint64_t in_rows = in_h(ob) * W, out_rows = ob * OW;
  const std::uint64_t in_slot[2] = {0, in_rows};
  const std::uint64_t out_slot[2] = {2 * in_rows, 2 * in_rows + out_rows};
  const std::uint64_t chunk = std::min<std::uint64_t>(C, config_.ub_row_elems());

  struct Band {
    std::uint64_t b, c0, cc, oy0, rows;
  };
  std::vector<Band> bands;
  for (std::uint64_t b = 0; b < layer.samples; ++b) {
    for (std::uint64_t c0 = 0; c0 < C; c0 += chunk) {
      for (std::uint64_t oy0 = 0; oy0 < OH; oy0 += ob) {
        bands.push_back({b, c0, std::min(chunk, C - c0), oy0, std::min(ob, OH - oy0)});
      }
    }
  }
  const std::uint64_t J = bands.size();
  auto emit_load = [&](std::uint64_t j) {
    const Band& band = bands[j];
    DmaFields d = block(in.addr(band.b, std::int64_t(band.oy0 * s), 0) + band.c0 * eb_,
                        in_slot[j % 2], in_h(band.rows), in.row_bytes(), W, in.pixel_bytes(),
                        band.cc);
    emit(dma(Opcode::kDmaLoad, d, j >= 2 ? bit(kSemPoolFree) : 0, bit(kSemPoolReady)));
  };
  auto emit_store = [&](std::uint64_t j) {
    const Band& band = bands[j];
    DmaFields d = block(out.addr(band.b, std::int64_t(band.oy0), 0) + band.c0 * eb_,
                        out_slot[j % 2], band.rows, out.row_bytes(), OW, out.pixel_bytes(),
                        band.cc);
    emit(dma(Opcode::kDmaStore, d, bit(kSemOutReady), j + 2 < J ? bit(kSemOutFree) : 0));
  };

  emit_load(0);
  for (std::uint64_t j = 0; j < J; ++j) {
    if (j + 1 < J) emit_load(j + 1);
    if (j > 0) emit_store(j - 1);
    const Band& band = bands[j];
    Instruction pool;
    pool.op = Opcode::kPool;
    pool.ub_row = std::uint32_t(in_slot[j % 2]);
    pool.dst_row = std::uint32_t(out_slot[j % 2]);
    pool.in_h = std::uint16_t(in_h(band.rows));
    pool.in_w = std::uint16_t(W);
    pool.cols = std::uint16_t(band.cc);
    pool.kernel = std::uint8_t(k);
    pool.stride = std::uint8_t(s);
    pool.wait = bit(kSemPoolReady) | (j >= 2 ? bit(kSemOutFree) : 0);
    pool.signal = bit(kSemOutReady) | (j + 2 < J ? bit(kSemPoolFree) : 0);
    emit(pool);
  }
  emit_store(J - 1);

  if (data_) {
    y.i8.clear();
    y.f32.clear();
    if (model_.dtype == DataType::kInt8) {
      y.i8 = reference_maxpool(x.i8, layer.samples, layer.in, layer.kernel_h, layer.stride);
    } else {
      y.f32 = reference_maxpool(x.f32, layer.samples, layer.in, layer.kernel_h, layer.stride);
    }
  }
}

}  // namespace

Program compile(const Model& model, const Config& config, const CompileOptions& options) {
  return Lowerer(model, config, options).run();
}

}  // namespace tpu
