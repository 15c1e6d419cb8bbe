#pragma once
// int8 GEMM kernels for the functional MXU (sim/isa/semantics.cc) and the compiler's reference
// (tools/compiler/reference.cc): int8 values held as int16, multiplied as dot products of rows.
// On plain x86-64 the compiler turns a widening int16 multiply-add into pmaddwd (8 products an
// instruction); that, and four rows sharing each load of the other operand, makes them several
// times faster than scaling rows into int32 sums. Integer sums are exact in any order.
#include <cstdint>

namespace tpu {

// y[r * ldy + j] = sum over i < k of a[r * k + i] * bt[j * k + i], for r < rows and j < n:
// rows of a against the rows of bt (the right operand transposed), summed in int32.
void int16_dot_rows(const std::int16_t* a, std::uint64_t rows, const std::int16_t* bt,
                    std::uint64_t n, std::uint64_t k, std::int32_t* y, std::uint64_t ldy);

// t[j * k + p] = w[p * ld + j] for p < k, j < n: the n x k transpose of the k x n int8 matrix
// at w (row stride ld), widened to int16.
void transpose_to_int16(const std::int8_t* w, std::uint64_t k, std::uint64_t n, std::uint64_t ld,
                        std::int16_t* t);

}  // namespace tpu
