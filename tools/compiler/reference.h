#pragma once
// Plain reference kernels, written for obviousness and independent of the ISA semantics: the
// compiler computes every layer's expected output with these, and the tests compare the
// machine's results against them.
//
// Layouts: activations are NHWC (samples x H x W x C, C fastest); weights are K x N row-major
// with K ordered (ky, kx, c) for convolutions. int8 math accumulates exactly in int32; the
// fp32 versions take bf16-rounded values as floats and accumulate in increasing k order.
#include <cstdint>
#include <vector>

#include "sim/isa/isa.h"
#include "tools/compiler/graph.h"

namespace tpu {

// y[m][n] = sum_k x[m][k] * w[k][n].
std::vector<std::int32_t> reference_matmul(const std::vector<std::int8_t>& x,
                                           const std::vector<std::int8_t>& w, std::uint64_t m,
                                           std::uint64_t k, std::uint64_t n);
std::vector<float> reference_matmul(const std::vector<float>& x, const std::vector<float>& w,
                                    std::uint64_t m, std::uint64_t k, std::uint64_t n);

// A matmul of two computed tensors (graph.h, kTensorMatmul), per sample s and head h:
// y[s][m][h * n + j] = sum_i a[s][m][h * k + i] * B(i, j), where a is samples x m x (heads * k)
// and B(i, j) = b[s][i][h * n + j] (b: samples x k x (heads * n)) or, transposed,
// b[s][j][h * k + i] (b: samples x n x (heads * k)). Output samples x m x (heads * n).
struct TensorMatmulShape {
  std::uint64_t samples, m, k, n, heads;
  bool transpose_b;
};
std::vector<std::int32_t> reference_tensor_matmul(const std::vector<std::int8_t>& a,
                                                  const std::vector<std::int8_t>& b,
                                                  const TensorMatmulShape& s);
std::vector<float> reference_tensor_matmul(const std::vector<float>& a,
                                           const std::vector<float>& b,
                                           const TensorMatmulShape& s);

// Direct convolution of `samples` NHWC images of shape `in` with out_channels filters of
// kh x kw x (in.c / groups), stride, zero padding `padding_h` above and below and `padding`
// left and right, taps dilation_h x dilation_w pixels apart. Filter n reads the channels of
// its group g = n / (out_channels / groups), in.c / groups from channel g * (in.c / groups).
// Weights are K x N as above with K = kh * kw * (in.c / groups). Output NHWC.
struct ConvShape {
  std::uint32_t samples;
  Shape3 in;
  std::uint32_t kernel_h, kernel_w, stride, padding, out_channels;
  std::uint32_t padding_h = 0, dilation_h = 1, dilation_w = 1, groups = 1;
  Shape3 out() const;
};
std::vector<std::int32_t> reference_conv2d(const std::vector<std::int8_t>& x,
                                           const std::vector<std::int8_t>& w,
                                           const ConvShape& s);
std::vector<float> reference_conv2d(const std::vector<float>& x, const std::vector<float>& w,
                                    const ConvShape& s);

// int8 requantisation as the vector unit does it (sim/isa/ISA.md, ACTIVATE):
// v = acc * multiplier (64-bit); if shift > 0, v = (v + 2^(shift-1)) >> shift (arithmetic);
// v += zero_point; clamp to [-128, 127]; ReLU then keeps max(v, zero_point).
std::int8_t reference_requantize(std::int32_t acc, std::int32_t multiplier, std::uint8_t shift,
                                 std::int8_t zero_point, Activation func);
// fp32 activation, float operations in this order (models/README.md, "Vector arithmetic"):
// relu6 clamps to [0, 6]; sigmoid 1 / (1 + e^-x); tanh 1 - 2 / (e^2x + 1); gelu (tanh
// approximation) 0.5 x (1 + tanh(0.7978845608 (x + 0.044715 x^3))); silu x / (1 + e^-x).
float reference_activate(float x, Activation func);
// The int8 end of the fp32 path: round(y * inv_scale), halves away from zero, clamped to
// [-128, 127].
std::int8_t reference_requantize_fp32(float y, float inv_scale);
// Softmax along rows of n values (rows x n, row-major): max, then e^(x - max) summed in column
// order, then each times 1 / sum. causal: row r keeps columns j <= (r % rows_per_sample) +
// offset, the rest (and every column of a row that keeps none) are 0.
// Layer norm along rows of n values: mean and variance summed in column order, each times
// 1 / n, then (x - mean) * (1 / sqrt(var + eps)) * gamma + beta. rms: no mean, no beta:
// x * (1 / sqrt(mean of x^2 + eps)) * gamma.
std::vector<float> reference_norm(const std::vector<float>& x, std::uint32_t n,
                                  const std::vector<float>& gamma, const std::vector<float>& beta,
                                  float eps, bool rms);
// Softmax along rows of n values; causal: row r of a sample keeps columns
// j <= r / heads + offset (the rows of `heads` heads interleaved), the rest 0.
std::vector<float> reference_softmax(const std::vector<float>& x, std::uint32_t n, bool causal,
                                     std::int64_t offset, std::uint64_t rows_per_sample,
                                     std::uint64_t heads = 1);
// An LSTM in plain fp32 loops, the oracle for the graph expansion (tools/compiler/lstm.h):
// x is samples x T x F, w F x 4U and u U x 4U row-major, gate columns i, f, g, o; zero initial
// state; `bias` (4U, or empty for none) added to every step's gate pre-activations;
// c_t = f * c_{t-1} + i * g, h_t = o * tanh(c_t) with this file's sigmoid and tanh. Returns
// h_0..h_{T-1} (samples x T x U) or h_{T-1} (samples x U).
std::vector<float> reference_lstm(const std::vector<float>& x, const std::vector<float>& w,
                                  const std::vector<float>& u, std::uint32_t samples,
                                  std::uint32_t steps, std::uint32_t features,
                                  std::uint32_t units, bool return_sequences,
                                  const std::vector<float>& bias = {});
// fp32 -> nearest bf16 (ties to even), returned as the float it represents. Finite inputs only
// (the generated data never overflows).
float reference_round_bf16(float f);

// Pooling windows of kernel_h x kernel_w, `stride` both ways, over the input with `padding`
// zeros around it. Output NHWC.
struct PoolShape {
  std::uint32_t samples;
  Shape3 in;
  std::uint32_t kernel_h, kernel_w, stride;
  std::uint32_t padding = 0;  // zeros around the input; max skips them, sums count them
  Shape3 out() const;
};
std::vector<std::int8_t> reference_maxpool(const std::vector<std::int8_t>& x, const PoolShape& s);
std::vector<float> reference_maxpool(const std::vector<float>& x, const PoolShape& s);
// Window sums: int32 for int8 (then requantised with the node's multiplier and shift), fp32
// summed in row-major window order and multiplied by 1 / (kernel_h * kernel_w) for bf16.
std::vector<std::int32_t> reference_window_sum(const std::vector<std::int8_t>& x,
                                               const PoolShape& s);
std::vector<float> reference_avgpool(const std::vector<float>& x, const PoolShape& s);

// Element-wise sum with per-input requantisation (int8):
// v = a * multiplier_a + b * multiplier_b (64-bit), then the rounding shift, zero point, clamp
// and activation of reference_requantize.
std::int8_t reference_add(std::int8_t a, std::int8_t b, std::int32_t multiplier_a,
                          std::int32_t multiplier_b, std::uint8_t shift, std::int8_t zero_point,
                          Activation func);

}  // namespace tpu
