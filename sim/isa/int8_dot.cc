#include "sim/isa/int8_dot.h"

#include <algorithm>

namespace tpu {
namespace {

std::int32_t dot(const std::int16_t* __restrict a, const std::int16_t* __restrict b,
                 std::uint64_t k) {
  std::int32_t sum = 0;
  for (std::uint64_t i = 0; i < k; ++i) sum += std::int32_t(a[i]) * std::int32_t(b[i]);
  return sum;
}

// Four rows of a (k apart) against one row b: each value of b is loaded once for four sums.
void dot4(const std::int16_t* __restrict a, const std::int16_t* __restrict b, std::uint64_t k,
          std::int32_t* s) {
  std::int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (std::uint64_t i = 0; i < k; ++i) {
    const std::int32_t v = b[i];
    s0 += std::int32_t(a[i]) * v;
    s1 += std::int32_t(a[k + i]) * v;
    s2 += std::int32_t(a[2 * k + i]) * v;
    s3 += std::int32_t(a[3 * k + i]) * v;
  }
  s[0] = s0;
  s[1] = s1;
  s[2] = s2;
  s[3] = s3;
}

}  // namespace

void int16_dot_rows(const std::int16_t* a, std::uint64_t rows, const std::int16_t* bt,
                    std::uint64_t n, std::uint64_t k, std::int32_t* y, std::uint64_t ldy) {
  for (std::uint64_t j = 0; j < n; ++j) {
    const std::int16_t* b = bt + j * k;
    std::uint64_t r = 0;
    for (; r + 4 <= rows; r += 4) {
      std::int32_t s[4];
      dot4(a + r * k, b, k, s);
      for (std::uint64_t q = 0; q < 4; ++q) y[(r + q) * ldy + j] = s[q];
    }
    for (; r < rows; ++r) y[r * ldy + j] = dot(a + r * k, b, k);
  }
}

void transpose_to_int16(const std::int8_t* w, std::uint64_t k, std::uint64_t n, std::uint64_t ld,
                        std::int16_t* t) {
  // Blocks of 64 rows of w: their cache lines stay loaded while each column is written out.
  constexpr std::uint64_t kBlock = 64;
  for (std::uint64_t p0 = 0; p0 < k; p0 += kBlock) {
    const std::uint64_t p1 = std::min(k, p0 + kBlock);
    for (std::uint64_t j = 0; j < n; ++j) {
      for (std::uint64_t p = p0; p < p1; ++p) t[j * k + p] = w[p * ld + j];
    }
  }
}

}  // namespace tpu
