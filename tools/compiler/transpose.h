#pragma once
// Transpose expansion, a graph pass run by the front ends after shape inference (and after the
// LSTM expansion): every `transpose` whose perm moves the channel axis becomes nodes the rest of
// the compiler lowers, so that no element is ever gathered one DMA request at a time.
//
// Two primitives do every perm of (H, W, C):
//   S  a `transpose` [1, 0, 2] of a view (A, B, X) -> (B, A, X): whole pixels change place, the
//      DMA engine copies them with strided transfers (lowering.cc, lower_transpose);
//   M  (H, W, C) -> (C, H, W), [2, 0, 1]: the matrix unit. The P = H * W pixels of C channels
//      are b of a tensor matmul read transposed (`load.weights transpose`, the MXU's transpose
//      path, as a TPU moves data across lanes) and a is the C x C identity, a graph input of
//      given values (`T/identity`, one per channel count): out = I x T^T, C pixels of P
//      channels, exact in int8 (identity 64 at scale 1/64, requantiser exactly 1/64:
//      Node::identity_a) and in bf16 (products by 1 summed with zeros in fp32).
// [2, 0, 1] = M; [0, 2, 1] = M, S; [2, 1, 0] = S, M; [1, 2, 0] = S, M, S. A step whose permuted
// axes of size > 1 keep their order is a reshape (a view), so 1 x S x D -> 1 x D x S is M alone.
// For transpose T the nodes are T/s0/view, T/s0, T/rows, T/mxu, T/s1/view, T/s1, T/view (those
// needed); the last takes T's name and tensor (rewrite_nodes, graph.h). M multiplies every K
// tile of the identity, zero blocks included: ceil(C / array rows) times the useful work when C
// exceeds one tile, which the report's MACs show.
#include "tools/compiler/graph.h"

namespace tpu {

// Replaces every kTranspose node that moves C by its expansion and infers shapes again. Throws
// CompileError naming the transpose when a generated name is already taken.
void expand_transposes(Graph& graph);

// Whether `perm` leaves the elements of a tensor of `shape` in the same order (only axes of size
// 1 move): the transpose is then a reshape.
bool keeps_order(const Shape3& shape, const std::uint32_t perm[3]);

}  // namespace tpu
