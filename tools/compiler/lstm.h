#pragma once
// LSTM expansion, a graph pass run by the front end after shape inference: every `lstm` node
// becomes the per-step nodes the rest of the compiler already lowers, so the recurrence is real
// in the program (step t's recurrent GEMM reads h_{t-1}, which step t-1's last vector op
// writes) and every per-step cost shows in the report.
//
// For an lstm node L over x of shape 1 x T x F per sample, with U units (gate order i, f, g, o
// as in Keras and PyTorch; zero initial state; the lstm's bias, if any, on L/xw):
//   L/xw        conv2d 1x1, 4U filters: x_t W for all T steps in one GEMM (x does not depend
//               on h), 1 x T x 4U
//   L/t<t>/x    slice: column t of L/xw, 1 x 1 x 4U                      (t > 0)
//   L/t<t>/hw   dense 4U on h_{t-1}: h_{t-1} U                          (t > 0)
//   L/t<t>/z    add x + hw: the gates' pre-activations                  (t > 0; step 0 slices
//               its gates straight from column 0 of L/xw)
//   L/t<t>/zi, zf, zg, zo   slices of channels [0, U), [U, 2U), [2U, 3U), [3U, 4U)
//   L/t<t>/i, f, o = sigmoid, g = tanh of them (f only for t > 0: c_{-1} = 0)
//   L/t<t>/ig = i * g;  L/t<t>/fc = f * c_{t-1};  L/t<t>/c = fc + ig (step 0: c_0 = ig)
//   L/t<t>/tc = tanh(c);  L/t<t>/h = o * tc
// With return_sequences the h_t are concatenated along channels (L/seq, 1 x 1 x T*U) and
// reshaped to 1 x T x U, which is L; otherwise L is the last step's h. Weights: W is L/xw's
// (F x 4U); U is step 1's dense's (U x 4U), which every later step's dense shares
// (Node::shares_weights: the same data at the same HBM address, streamed again each step).
#include "tools/compiler/graph.h"

namespace tpu {

// Replaces every kLstm node of a shape-inferred graph by its expansion and infers shapes again.
// Throws CompileError naming the lstm node when a generated name is already taken.
void expand_lstms(Graph& graph);

}  // namespace tpu
