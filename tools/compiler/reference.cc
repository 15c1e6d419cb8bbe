#include "tools/compiler/reference.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "sim/isa/int8_dot.h"

namespace tpu {

namespace {

// The fp32 kernels run row times row (i-k-j): each input value scales one contiguous weight row
// into one contiguous output row, which the compiler vectorises. Every output still sums its
// products in increasing k (conv: ky, kx, c) order, starting from zero, so the results are the
// same as a dot product per output.
void add_scaled_row(float* y, float x, const float* w, std::uint64_t n) {
  for (std::uint64_t j = 0; j < n; ++j) y[j] += x * w[j];
}

std::vector<float> matmul(const std::vector<float>& x, const std::vector<float>& w,
                          std::uint64_t m, std::uint64_t k, std::uint64_t n) {
  std::vector<float> y(m * n, 0.0f);
  for (std::uint64_t i = 0; i < m; ++i) {
    for (std::uint64_t p = 0; p < k; ++p) add_scaled_row(&y[i * n], x[i * k + p], &w[p * n], n);
  }
  return y;
}

std::vector<float> conv2d(const std::vector<float>& x, const std::vector<float>& w,
                          const ConvShape& s) {
  const Shape3 in = s.in;
  const Shape3 out = s.out();
  const std::uint32_t n_out = s.out_channels;
  const std::uint32_t cg = in.c / s.groups, ng = n_out / s.groups;  // per group
  std::vector<float> y(std::uint64_t(s.samples) * out.elements(), 0.0f);
  for (std::uint32_t b = 0; b < s.samples; ++b) {
    for (std::uint32_t oy = 0; oy < out.h; ++oy) {
      for (std::uint32_t ox = 0; ox < out.w; ++ox) {
        float* yp = &y[((std::uint64_t(b) * out.h + oy) * out.w + ox) * n_out];
        for (std::uint32_t ky = 0; ky < s.kernel_h; ++ky) {
          const std::int64_t iy =
              std::int64_t(oy) * s.stride + std::int64_t(ky) * s.dilation_h - s.padding_h;
          if (iy < 0 || iy >= in.h) continue;  // zero padding
          for (std::uint32_t kx = 0; kx < s.kernel_w; ++kx) {
            const std::int64_t ix =
                std::int64_t(ox) * s.stride + std::int64_t(kx) * s.dilation_w - s.padding;
            if (ix < 0 || ix >= in.w) continue;
            const float* xp = &x[((std::uint64_t(b) * in.h + iy) * in.w + ix) * in.c];
            const float* wp = &w[(std::uint64_t(ky) * s.kernel_w + kx) * cg * n_out];
            // Filter n reads channel n / ng * cg + c of the pixel and weight row (tap, c).
            for (std::uint32_t g = 0; g < s.groups; ++g) {
              for (std::uint32_t c = 0; c < cg; ++c) {
                add_scaled_row(yp + g * ng, xp[g * cg + c], wp + c * n_out + g * ng, ng);
              }
            }
          }
        }
      }
    }
  }
  return y;
}

// fn(output index, input index) for every element of every window inside the input, in
// row-major window order (padding positions are skipped).
template <typename Fn>
void for_each_window_element(const PoolShape& s, Fn fn) {
  const Shape3 in = s.in, out = s.out();
  for (std::uint64_t b = 0; b < s.samples; ++b) {
    for (std::uint64_t oy = 0; oy < out.h; ++oy) {
      for (std::uint64_t ox = 0; ox < out.w; ++ox) {
        for (std::uint64_t c = 0; c < in.c; ++c) {
          const std::uint64_t o = ((b * out.h + oy) * out.w + ox) * in.c + c;
          for (std::uint64_t ky = 0; ky < s.kernel_h; ++ky) {
            for (std::uint64_t kx = 0; kx < s.kernel_w; ++kx) {
              const std::int64_t iy = std::int64_t(oy * s.stride + ky) - s.padding;
              const std::int64_t ix = std::int64_t(ox * s.stride + kx) - s.padding;
              if (iy < 0 || ix < 0 || iy >= std::int64_t(in.h) || ix >= std::int64_t(in.w)) {
                continue;
              }
              fn(o, ((b * in.h + std::uint64_t(iy)) * in.w + std::uint64_t(ix)) * in.c + c);
            }
          }
        }
      }
    }
  }
}

template <typename T>
std::vector<T> maxpool(const std::vector<T>& x, const PoolShape& s) {
  std::vector<T> y(std::uint64_t(s.samples) * s.out().elements());
  std::vector<bool> seen(y.size(), false);
  for_each_window_element(s, [&](std::uint64_t o, std::uint64_t i) {
    y[o] = seen[o] ? std::max(y[o], x[i]) : x[i];
    seen[o] = true;
  });
  return y;
}

std::vector<float> tensor_matmul(const std::vector<float>& a, const std::vector<float>& b,
                                 const TensorMatmulShape& s) {
  const std::uint64_t ac = s.heads * s.k, yc = s.heads * s.n;
  std::vector<float> y(s.samples * s.m * yc, 0.0f);
  for (std::uint64_t smp = 0; smp < s.samples; ++smp) {
    const float* as = a.data() + smp * s.m * ac;
    const float* bs = b.data() + smp * s.k * s.n * s.heads;
    for (std::uint64_t h = 0; h < s.heads; ++h) {
      for (std::uint64_t m = 0; m < s.m; ++m) {
        const float* am = as + m * ac + h * s.k;
        float* ym = &y[(smp * s.m + m) * yc + h * s.n];
        if (s.transpose_b) {
          // B(i, j) = b[j][h * k + i]: a dot product of two contiguous rows per output.
          for (std::uint64_t j = 0; j < s.n; ++j) {
            const float* bj = bs + j * ac + h * s.k;
            float sum = 0;
            for (std::uint64_t i = 0; i < s.k; ++i) sum += am[i] * bj[i];
            ym[j] = sum;
          }
        } else {
          for (std::uint64_t i = 0; i < s.k; ++i) add_scaled_row(ym, am[i], bs + i * yc + h * s.n, s.n);
        }
      }
    }
  }
  return y;
}

// The int8 kernels widen their operands and run sim/isa/int8_dot.h's dot products on blocks of
// kBlockRows rows, which share each pass over the transposed right operand.
constexpr std::uint64_t kBlockRows = 16;

// dst[r * k + i] = src[r * ld + i] for r < rows, i < k.
void widen_rows(const std::int8_t* src, std::uint64_t rows, std::uint64_t k, std::uint64_t ld,
                std::int16_t* dst) {
  for (std::uint64_t r = 0; r < rows; ++r) std::copy(src + r * ld, src + r * ld + k, dst + r * k);
}

}  // namespace

Shape3 ConvShape::out() const {
  const std::uint32_t kh = (kernel_h - 1) * dilation_h + 1, kw = (kernel_w - 1) * dilation_w + 1;
  return {(in.h + 2 * padding_h - kh) / stride + 1, (in.w + 2 * padding - kw) / stride + 1,
          out_channels};
}

std::vector<std::int32_t> reference_matmul(const std::vector<std::int8_t>& x,
                                           const std::vector<std::int8_t>& w, std::uint64_t m,
                                           std::uint64_t k, std::uint64_t n) {
  std::vector<std::int16_t> wt(n * k);
  transpose_to_int16(w.data(), k, n, n, wt.data());
  std::vector<std::int32_t> y(m * n);
  std::vector<std::int16_t> a(kBlockRows * k);
  for (std::uint64_t i = 0; i < m; i += kBlockRows) {
    const std::uint64_t rows = std::min(kBlockRows, m - i);
    widen_rows(x.data() + i * k, rows, k, k, a.data());
    int16_dot_rows(a.data(), rows, wt.data(), n, k, y.data() + i * n, n);
  }
  return y;
}

std::vector<float> reference_matmul(const std::vector<float>& x, const std::vector<float>& w,
                                    std::uint64_t m, std::uint64_t k, std::uint64_t n) {
  return matmul(x, w, m, k, n);
}

std::vector<std::int32_t> reference_tensor_matmul(const std::vector<std::int8_t>& a,
                                                  const std::vector<std::int8_t>& b,
                                                  const TensorMatmulShape& s) {
  const std::uint64_t ac = s.heads * s.k, yc = s.heads * s.n;
  std::vector<std::int32_t> y(s.samples * s.m * yc);
  std::vector<std::int16_t> rows16(kBlockRows * s.k), bt(s.n * s.k);
  for (std::uint64_t smp = 0; smp < s.samples; ++smp) {
    const std::int8_t* as = a.data() + smp * s.m * ac;
    const std::int8_t* bs = b.data() + smp * s.k * s.n * s.heads;
    for (std::uint64_t h = 0; h < s.heads; ++h) {
      // B's columns of head h as rows: b[j][h * k + i] (transposed) or b[i][h * n + j].
      if (s.transpose_b) {
        widen_rows(bs + h * s.k, s.n, s.k, ac, bt.data());
      } else {
        transpose_to_int16(bs + h * s.n, s.k, s.n, yc, bt.data());
      }
      for (std::uint64_t m = 0; m < s.m; m += kBlockRows) {
        const std::uint64_t rows = std::min(kBlockRows, s.m - m);
        widen_rows(as + m * ac + h * s.k, rows, s.k, ac, rows16.data());
        int16_dot_rows(rows16.data(), rows, bt.data(), s.n, s.k,
                       &y[(smp * s.m + m) * yc + h * s.n], yc);
      }
    }
  }
  return y;
}

std::vector<float> reference_tensor_matmul(const std::vector<float>& a,
                                           const std::vector<float>& b,
                                           const TensorMatmulShape& s) {
  return tensor_matmul(a, b, s);
}

std::vector<std::int32_t> reference_conv2d(const std::vector<std::int8_t>& x,
                                           const std::vector<std::int8_t>& w,
                                           const ConvShape& s) {
  const Shape3 in = s.in, out = s.out();
  const std::uint64_t n_out = s.out_channels, cg = in.c / s.groups, ng = n_out / s.groups;
  const std::uint64_t k = std::uint64_t(s.kernel_h) * s.kernel_w * cg;  // per group
  const std::uint64_t pixels = std::uint64_t(s.samples) * out.h * out.w;
  std::vector<std::int32_t> y(pixels * n_out);
  std::vector<std::int16_t> patches(kBlockRows * k), wt(ng * k);
  for (std::uint64_t g = 0; g < s.groups; ++g) {
    // Filter n of group g reads weight rows (tap, c), channels g * cg + c of the window.
    transpose_to_int16(w.data() + g * ng, k, ng, n_out, wt.data());
    for (std::uint64_t p0 = 0; p0 < pixels; p0 += kBlockRows) {
      const std::uint64_t rows = std::min(kBlockRows, pixels - p0);
      for (std::uint64_t r = 0; r < rows; ++r) {
        const std::uint64_t p = p0 + r, b = p / (out.h * out.w);
        const std::uint64_t oy = p / out.w % out.h, ox = p % out.w;
        std::int16_t* patch = &patches[r * k];
        for (std::uint64_t ky = 0; ky < s.kernel_h; ++ky) {
          for (std::uint64_t kx = 0; kx < s.kernel_w; ++kx, patch += cg) {
            const std::int64_t iy = std::int64_t(oy * s.stride + ky * s.dilation_h) - s.padding_h;
            const std::int64_t ix = std::int64_t(ox * s.stride + kx * s.dilation_w) - s.padding;
            if (iy < 0 || ix < 0 || iy >= in.h || ix >= in.w) {
              std::fill(patch, patch + cg, 0);  // zero padding
            } else {
              widen_rows(&x[((b * in.h + std::uint64_t(iy)) * in.w + std::uint64_t(ix)) * in.c + g * cg],
                         1, cg, cg, patch);
            }
          }
        }
      }
      int16_dot_rows(patches.data(), rows, wt.data(), ng, k, &y[p0 * n_out + g * ng], n_out);
    }
  }
  return y;
}

std::vector<float> reference_conv2d(const std::vector<float>& x, const std::vector<float>& w,
                                    const ConvShape& s) {
  return conv2d(x, w, s);
}

namespace {

// The rounding shift, zero point, clamp and ReLU of every int8 requantiser.
std::int8_t requantize_scaled(std::int64_t v, std::uint8_t shift, std::int8_t zero_point,
                              Activation func) {
  if (shift > 0) v = (v + (std::int64_t(1) << (shift - 1))) >> shift;
  v += zero_point;
  v = std::clamp<std::int64_t>(v, -128, 127);
  if (func == Activation::kRelu) v = std::max<std::int64_t>(v, zero_point);
  return std::int8_t(v);
}

}  // namespace

std::int8_t reference_requantize(std::int32_t acc, std::int32_t multiplier, std::uint8_t shift,
                                 std::int8_t zero_point, Activation func) {
  return requantize_scaled(std::int64_t(acc) * multiplier, shift, zero_point, func);
}

float reference_activate(float x, Activation func) {
  const auto tanh_approx = [](float u) { return 1.0f - 2.0f / (std::exp(2.0f * u) + 1.0f); };
  switch (func) {
    case Activation::kNone:
      return x;
    case Activation::kRelu:
      return x < 0.0f ? 0.0f : x;
    case Activation::kRelu6:
      return x < 0.0f ? 0.0f : (x > 6.0f ? 6.0f : x);
    case Activation::kSigmoid:
      return 1.0f / (1.0f + std::exp(-x));
    case Activation::kTanh:
      return tanh_approx(x);
    case Activation::kGelu:
      return 0.5f * x * (1.0f + tanh_approx(0.7978845608f * (x + 0.044715f * (x * x * x))));
    case Activation::kSilu:
      return x / (1.0f + std::exp(-x));
  }
  return x;
}

std::int8_t reference_requantize_fp32(float y, float inv_scale) {
  const float r = std::round(y * inv_scale);
  if (std::isnan(r)) return 0;
  return std::int8_t(r < -128.0f ? -128 : (r > 127.0f ? 127 : int(r)));
}

std::vector<float> reference_norm(const std::vector<float>& x, std::uint32_t n,
                                  const std::vector<float>& gamma, const std::vector<float>& beta,
                                  float eps, bool rms) {
  std::vector<float> y(x.size());
  const float inv_n = 1.0f / float(n);
  for (std::uint64_t r = 0; r * n < x.size(); ++r) {
    const float* in = x.data() + r * n;
    float mean = 0.0f;
    if (!rms) {
      float sum = 0.0f;
      for (std::uint32_t j = 0; j < n; ++j) sum += in[j];
      mean = sum * inv_n;
    }
    float sq = 0.0f;
    for (std::uint32_t j = 0; j < n; ++j) sq += (in[j] - mean) * (in[j] - mean);
    const float scale = 1.0f / std::sqrt(sq * inv_n + eps);
    for (std::uint32_t j = 0; j < n; ++j) {
      y[r * n + j] = rms ? in[j] * scale * gamma[j] : (in[j] - mean) * scale * gamma[j] + beta[j];
    }
  }
  return y;
}

std::vector<float> reference_softmax(const std::vector<float>& x, std::uint32_t n, bool causal,
                                     std::int64_t offset, std::uint64_t rows_per_sample,
                                     std::uint64_t heads) {
  std::vector<float> y(x.size(), 0.0f);
  for (std::uint64_t r = 0; r * n < x.size(); ++r) {
    const std::int64_t last =
        causal ? std::int64_t(r % rows_per_sample / heads) + offset : std::int64_t(n) - 1;
    const std::uint64_t kept = std::uint64_t(std::clamp<std::int64_t>(last + 1, 0, n));
    if (kept == 0) continue;
    const float* in = x.data() + r * n;
    float* out = y.data() + r * n;
    float mx = in[0];
    for (std::uint64_t j = 1; j < kept; ++j) mx = std::max(mx, in[j]);
    float sum = 0.0f;
    for (std::uint64_t j = 0; j < kept; ++j) {
      out[j] = std::exp(in[j] - mx);
      sum += out[j];
    }
    const float inv = 1.0f / sum;
    for (std::uint64_t j = 0; j < kept; ++j) out[j] = out[j] * inv;
  }
  return y;
}

float reference_round_bf16(float f) {
  std::uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  bits += 0x7fffu + ((bits >> 16) & 1u);  // round to nearest even on the 16 dropped bits
  bits &= 0xffff0000u;
  float r;
  std::memcpy(&r, &bits, sizeof r);
  return r;
}

Shape3 PoolShape::out() const {
  return {(in.h + 2 * padding - kernel_h) / stride + 1,
          (in.w + 2 * padding - kernel_w) / stride + 1, in.c};
}

std::vector<std::int8_t> reference_maxpool(const std::vector<std::int8_t>& x, const PoolShape& s) {
  return maxpool(x, s);
}

std::vector<float> reference_maxpool(const std::vector<float>& x, const PoolShape& s) {
  return maxpool(x, s);
}

std::vector<std::int32_t> reference_window_sum(const std::vector<std::int8_t>& x,
                                               const PoolShape& s) {
  std::vector<std::int32_t> y(std::uint64_t(s.samples) * s.out().elements(), 0);
  for_each_window_element(s, [&](std::uint64_t o, std::uint64_t i) { y[o] += x[i]; });
  return y;
}

std::vector<float> reference_avgpool(const std::vector<float>& x, const PoolShape& s) {
  std::vector<float> y(std::uint64_t(s.samples) * s.out().elements(), 0.0f);
  for_each_window_element(s, [&](std::uint64_t o, std::uint64_t i) { y[o] += x[i]; });
  const float scale = 1.0f / float(s.kernel_h * s.kernel_w);
  for (float& v : y) v *= scale;
  return y;
}

std::int8_t reference_add(std::int8_t a, std::int8_t b, std::int32_t multiplier_a,
                          std::int32_t multiplier_b, std::uint8_t shift, std::int8_t zero_point,
                          Activation func) {
  return requantize_scaled(std::int64_t(a) * multiplier_a + std::int64_t(b) * multiplier_b, shift,
                           zero_point, func);
}

std::vector<float> reference_lstm(const std::vector<float>& x, const std::vector<float>& w,
                                  const std::vector<float>& u, std::uint32_t samples,
                                  std::uint32_t steps, std::uint32_t features,
                                  std::uint32_t units, bool return_sequences,
                                  const std::vector<float>& bias) {
  const std::uint64_t U = units, G = 4 * U;
  std::vector<float> out;
  for (std::uint64_t b = 0; b < samples; ++b) {
    std::vector<float> h(U, 0.0f), c(U, 0.0f);
    for (std::uint64_t t = 0; t < steps; ++t) {
      std::vector<float> z = bias.empty() ? std::vector<float>(G, 0.0f) : bias;
      for (std::uint64_t j = 0; j < G; ++j) {
        for (std::uint64_t f = 0; f < features; ++f) {
          z[j] += x[(b * steps + t) * features + f] * w[f * G + j];
        }
        for (std::uint64_t k = 0; k < U; ++k) z[j] += h[k] * u[k * G + j];
      }
      for (std::uint64_t k = 0; k < U; ++k) {
        const float i = reference_activate(z[k], Activation::kSigmoid);
        const float f = reference_activate(z[U + k], Activation::kSigmoid);
        const float g = reference_activate(z[2 * U + k], Activation::kTanh);
        const float o = reference_activate(z[3 * U + k], Activation::kSigmoid);
        c[k] = f * c[k] + i * g;
        h[k] = o * reference_activate(c[k], Activation::kTanh);
      }
      if (return_sequences || t + 1 == steps) out.insert(out.end(), h.begin(), h.end());
    }
  }
  return out;
}

}  // namespace tpu
