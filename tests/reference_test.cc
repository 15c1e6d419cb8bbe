// The compiler's reference GEMM kernels against plain per-output dot products (bit for bit in
// fp32: both must sum each output's products in the documented order), and the generated data
// (every graph input its own values).
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "tools/compiler/data.h"
#include "tools/compiler/frontend.h"
#include "tools/compiler/reference.h"

namespace tpu {
namespace {

// Values whose sums round differently in another order: several magnitudes, all signs.
template <typename T>
std::vector<T> random_vector(std::size_t n, std::mt19937& rng) {
  std::vector<T> v(n);
  if constexpr (std::is_same_v<T, float>) {
    std::uniform_real_distribution<float> mantissa(-1.0f, 1.0f);
    std::uniform_int_distribution<int> exponent(-8, 8);
    for (float& x : v) x = std::ldexp(mantissa(rng), exponent(rng));
  } else {
    std::uniform_int_distribution<int> dist(-128, 127);
    for (T& x : v) x = T(dist(rng));
  }
  return v;
}

template <typename T>
void expect_same_bits(const std::vector<T>& got, const std::vector<T>& want) {
  ASSERT_EQ(got.size(), want.size());
  EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(T)), 0);
}

// One dot product per output, k increasing from a zero sum (reference.h).
template <typename T, typename Acc>
std::vector<Acc> dot_matmul(const std::vector<T>& x, const std::vector<T>& w, std::uint64_t m,
                            std::uint64_t k, std::uint64_t n) {
  std::vector<Acc> y(m * n);
  for (std::uint64_t i = 0; i < m; ++i) {
    for (std::uint64_t j = 0; j < n; ++j) {
      Acc sum = 0;
      for (std::uint64_t p = 0; p < k; ++p) sum += Acc(x[i * k + p]) * Acc(w[p * n + j]);
      y[i * n + j] = sum;
    }
  }
  return y;
}

// Per output: taps (ky, kx) row-major, then the channels of the filter's group; padding skipped.
template <typename T, typename Acc>
std::vector<Acc> dot_conv2d(const std::vector<T>& x, const std::vector<T>& w, const ConvShape& s) {
  const Shape3 in = s.in, out = s.out();
  const std::uint32_t cg = in.c / s.groups, ng = s.out_channels / s.groups;
  std::vector<Acc> y(std::uint64_t(s.samples) * out.elements());
  for (std::uint32_t b = 0; b < s.samples; ++b)
    for (std::uint32_t oy = 0; oy < out.h; ++oy)
      for (std::uint32_t ox = 0; ox < out.w; ++ox)
        for (std::uint32_t n = 0; n < s.out_channels; ++n) {
          Acc sum = 0;
          for (std::uint32_t ky = 0; ky < s.kernel_h; ++ky)
            for (std::uint32_t kx = 0; kx < s.kernel_w; ++kx)
              for (std::uint32_t c = 0; c < cg; ++c) {
                const std::int64_t iy = std::int64_t(oy * s.stride + ky * s.dilation_h) - s.padding_h;
                const std::int64_t ix = std::int64_t(ox * s.stride + kx * s.dilation_w) - s.padding;
                if (iy < 0 || ix < 0 || iy >= in.h || ix >= in.w) continue;
                sum += Acc(x[((std::uint64_t(b) * in.h + iy) * in.w + ix) * in.c + n / ng * cg + c]) *
                       Acc(w[((std::uint64_t(ky) * s.kernel_w + kx) * cg + c) * s.out_channels + n]);
              }
          y[((std::uint64_t(b) * out.h + oy) * out.w + ox) * s.out_channels + n] = sum;
        }
  return y;
}

template <typename T, typename Acc>
std::vector<Acc> dot_tensor_matmul(const std::vector<T>& a, const std::vector<T>& b,
                                   const TensorMatmulShape& s) {
  const std::uint64_t ac = s.heads * s.k, yc = s.heads * s.n;
  std::vector<Acc> y(s.samples * s.m * yc);
  for (std::uint64_t smp = 0; smp < s.samples; ++smp)
    for (std::uint64_t h = 0; h < s.heads; ++h)
      for (std::uint64_t m = 0; m < s.m; ++m)
        for (std::uint64_t j = 0; j < s.n; ++j) {
          Acc sum = 0;
          for (std::uint64_t i = 0; i < s.k; ++i) {
            const T bij = s.transpose_b ? b[(smp * s.n + j) * ac + h * s.k + i]
                                        : b[(smp * s.k + i) * yc + h * s.n + j];
            sum += Acc(a[(smp * s.m + m) * ac + h * s.k + i]) * Acc(bij);
          }
          y[(smp * s.m + m) * yc + h * s.n + j] = sum;
        }
  return y;
}

template <typename T, typename Acc>
void check_kernels(std::mt19937& rng) {
  const std::vector<ConvShape> convs = {
      {2, {7, 6, 5}, 3, 3, 1, 1, 4, 1},                 // padded 3x3
      {1, {9, 8, 3}, 3, 2, 2, 0, 7, 1},                 // strided, uneven kernel and padding
      {1, {8, 8, 6}, 3, 3, 1, 2, 6, 2, 2, 2, 6},        // dilated depthwise
      {1, {6, 7, 8}, 1, 3, 1, 1, 12, 0, 1, 2, 4},       // grouped 1x3
      {1, {4, 4, 70}, 1, 1, 1, 0, 33},                  // 1x1, wide channels
  };
  for (const ConvShape& s : convs) {
    SCOPED_TRACE("conv " + std::to_string(s.in.h) + "x" + std::to_string(s.in.w) + "x" +
                 std::to_string(s.in.c) + " groups " + std::to_string(s.groups));
    const auto x = random_vector<T>(std::uint64_t(s.samples) * s.in.elements(), rng);
    const auto w = random_vector<T>(std::uint64_t(s.kernel_h) * s.kernel_w * (s.in.c / s.groups) *
                                        s.out_channels, rng);
    expect_same_bits(reference_conv2d(x, w, s), dot_conv2d<T, Acc>(x, w, s));
  }
  for (const auto& [m, k, n] : std::vector<std::array<std::uint64_t, 3>>{{5, 37, 19}, {1, 300, 3}}) {
    const auto x = random_vector<T>(m * k, rng), w = random_vector<T>(k * n, rng);
    expect_same_bits(reference_matmul(x, w, m, k, n), dot_matmul<T, Acc>(x, w, m, k, n));
  }
  for (const bool transpose : {false, true}) {
    const TensorMatmulShape s{2, 5, 9, 6, 3, transpose};
    const auto a = random_vector<T>(s.samples * s.m * s.heads * s.k, rng);
    const auto b = random_vector<T>(s.samples * s.k * s.heads * s.n, rng);
    expect_same_bits(reference_tensor_matmul(a, b, s), dot_tensor_matmul<T, Acc>(a, b, s));
  }
}

TEST(ReferenceKernels, SumEveryOutputInTheDocumentedOrder) {
  std::mt19937 rng(7);
  check_kernels<float, float>(rng);
  check_kernels<std::int8_t, std::int32_t>(rng);
}

TEST(GeneratedData, EveryGraphInputHasItsOwnValues) {
  // Both inputs are first read by the same node.
  const Graph g = parse_model_json(R"({"name": "two", "dtype": "int8",
      "inputs": [{"name": "a", "shape": [4, 4, 8]}, {"name": "b", "shape": [4, 4, 8]}],
      "nodes": [{"name": "sum", "op": "add", "inputs": ["a", "b"]}], "outputs": ["sum"]})",
                                   "<test>");
  ASSERT_EQ(g.inputs.size(), 2u);
  const GraphData d = generate_data(g, g.seed);
  const std::vector<std::int8_t>& a = d.inputs[g.inputs[0]].i8;
  const std::vector<std::int8_t>& b = d.inputs[g.inputs[1]].i8;
  ASSERT_EQ(a.size(), 128u);
  ASSERT_EQ(b.size(), 128u);
  std::size_t same = 0;
  for (std::size_t i = 0; i < a.size(); ++i) same += a[i] == b[i];
  // Independent values in [-64, 63] agree at 1 / 128 of the positions: 1 expected of 128.
  EXPECT_LT(same, 10u);
}

}  // namespace
}  // namespace tpu
