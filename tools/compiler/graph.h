#pragma once
// The compiler's graph IR: a DAG of nodes connected by named tensors. Every front end (model
// JSON in graph or chain form, SCALE-Sim CSV) builds a Graph; infer_shapes() validates it and
// fills in every tensor's shape; the later passes (reference evaluation, memory planning,
// lowering) read it and never change it.
//
// Each node produces exactly one tensor, named after the node. Nodes are kept in execution
// order (every node after the producers of its inputs), so a node's index is also its layer
// index in the compiled program and the report.
//
// A tensor is `samples` independent items of shape H x W x C (NHWC): `samples` is the model
// batch, or M for a standalone matmul, whose operand is an M x 1 x 1 x K tensor.
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "sim/config/config.h"
#include "sim/isa/isa.h"

namespace tpu {

// Raised for any model the compiler cannot accept: bad syntax, unknown keys, impossible shapes,
// bad graphs, layers that do not fit the machine. what() is one line naming the file, the node
// and the key.
class CompileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The largest size a model may give (a dimension, a channel or feature count): larger ones are
// certainly typos and would overflow address arithmetic. Every front end and infer_shapes check it.
constexpr std::int64_t kMaxSize = std::int64_t(1) << 24;

struct Shape3 {
  std::uint32_t h = 1, w = 1, c = 1;
  std::uint64_t elements() const { return std::uint64_t(h) * w * c; }
  bool operator==(const Shape3& o) const { return h == o.h && w == o.w && c == o.c; }
  bool operator!=(const Shape3& o) const { return !(*this == o); }
};
std::string to_string(const Shape3& s);  // "HxWxC"

enum class OpKind {
  kMatmul,     // standalone GEMM: its own M x K operand (a graph input) times K x N weights
  kTensorMatmul,  // per sample and head, a (M pixels x K channels) times b (K x N), both
                  // computed tensors: b's pixels are K rows (or, transpose_b, N rows of K)
  kDense,      // fully connected on the flattened input (NHWC order)
  kConv2d,     // 2-D convolution (dilated, grouped), symmetric zero padding; conv1d is one on 1 x L
               // inputs with kernel 1 x k and no padding along H
  kMaxPool2d,  // max pooling; padding only over a non-negative input (zeros then act as -inf)
  kAvgPool2d,  // average pooling; padded zeros count in the window (count_include_pad)
  kGlobalAvgPool2d,  // average over the whole H x W plane: output 1 x 1 x C
  kAdd,        // element-wise sum of two tensors of one shape (residuals)
  kMul,        // element-wise product of two tensors of one shape
  kActivation, // `activation` applied element-wise (sigmoid, tanh, gelu, silu, relu6)
  kSoftmax,    // softmax along channels (the last axis), optionally causally masked
  kLayerNorm,  // layer norm along channels with per-channel gamma and beta
  kRmsNorm,    // RMS norm along channels with per-channel gamma
  kConcat,     // concatenation along channels
  kReshape,    // a new H x W x C view of the same elements in NHWC order (flatten: 1 x 1 x HWC)
  kSlice,      // columns [x0, x1) and channels [c0, c1) of every row, copied by the DMA engine
  kTranspose,  // a permutation `perm` of the (H, W, C) axes of every sample; perms that move C
               // exist only until expand_transposes (tools/compiler/transpose.h)
  kLstm,       // an LSTM over a 1 x T x F sequence; only before expand_lstms (tools/compiler/lstm.h)
};
const char* to_string(OpKind kind);  // the model JSON `op`/`type` name

// The inputs a node of this kind takes (0: two or more).
std::size_t input_count(OpKind kind);
// Whether the node runs on the matrix unit (matmul of either form, dense, conv2d).
bool is_gemm(OpKind kind);
// Whether the node only changes how existing data is viewed (no instructions of its own).
bool is_view(OpKind kind);
// Whether the vector unit computes the node pixel by pixel from UB rows of its inputs' shape
// (add, mul, standalone activations, softmax, the norms).
bool is_eltwise(OpKind kind);

using TensorId = std::uint32_t;

struct Tensor {
  std::string name;
  // A graph input's given values (per sample, NHWC, repeated for every sample), else generated.
  std::vector<float> values;
  std::int64_t producer = -1;          // node index; -1 for a graph input
  std::vector<std::uint32_t> consumers;  // node indices, in order (filled by infer_shapes)
  // Inferred (given for graph inputs).
  std::uint32_t samples = 0;
  Shape3 shape;
  std::uint64_t elements() const { return std::uint64_t(samples) * shape.elements(); }
};

struct Node {
  std::string name;
  OpKind kind = OpKind::kMatmul;
  Activation activation = Activation::kNone;
  std::vector<TensorId> inputs;
  TensorId output = 0;

  // Attributes. kMatmul/kDense: `units` output features (N). kConv2d: out_channels filters of
  // kernel_h x kernel_w taps spaced dilation_h x dilation_w pixels apart, each filter reading
  // the in.c / groups channels of its group (filter n is in group n / (out_channels / groups)).
  // Conv and pooling: kernel, stride; conv: `padding` zero pixels left and right, `padding_h`
  // above and below (equal for conv2d, 0 for conv1d); pooling: `padding` on every side. kReshape: the per-sample output shape
  // `target`.
  std::uint32_t units = 0;
  std::uint32_t out_channels = 0;
  std::uint32_t kernel_h = 0, kernel_w = 0;
  std::uint32_t stride = 1;
  std::uint32_t padding = 0, padding_h = 0;
  std::uint32_t dilation_h = 1, dilation_w = 1;
  std::uint32_t groups = 1;
  Shape3 target;
  // kSoftmax: pixel i (y * W + x within a sample) keeps channels j <= i / heads + mask_offset
  // (`heads` interleaved rows per query: attention's scores reshaped to one head per pixel).
  bool causal = false;
  std::int32_t mask_offset = 0;
  float epsilon = 1e-5f;  // kLayerNorm, kRmsNorm: added to the variance or mean square
  // kTensorMatmul: a's and b's channels split into `heads` groups, head h multiplying group h
  // of a by group h of b, heads concatenated along the output channels; b read transposed
  // (N pixels x K channels per head); the product scaled by `scale` (1 / sqrt(d) of attention,
  // folded into the int8 requantiser's output scale).
  std::uint32_t heads = 1;
  bool transpose_b = false;
  float scale = 1.0f;
  // kSlice: columns [x0, x1) and channels [c0, c1); 0 as x1 or c1 means up to the end (set by
  // infer_shapes).
  std::uint32_t x0 = 0, x1 = 0, c0 = 0, c1 = 0;
  // A kSlice that is part `index` of a split node's `count` parts along width or channels:
  // infer_shapes sets its range from the input's shape (split_ranges). `node` names the split
  // for messages.
  struct SplitPart {
    std::string node;
    std::uint32_t index = 0, count = 0;
    bool width = false;
    std::vector<std::uint64_t> sizes;  // empty: equal parts
  } split;
  // kTranspose: output axis i is input axis perm[i] of (0 = H, 1 = W, 2 = C).
  std::uint32_t perm[3] = {0, 1, 2};
  // kTensorMatmul of a transpose's expansion: `a` is the identity (ones at int8 value 64, the
  // generated scale's 1.0), so the int8 requantiser is exactly 1 / 64 and the output keeps b's
  // values and scale.
  bool identity_a = false;
  // kLstm: `units` hidden units; the whole sequence h_0..h_{T-1} (1 x T x units) or only h_{T-1}.
  bool return_sequences = false;
  // A GEMM that uses the weights of the earlier GEMM node with this index (same data, same HBM
  // address) instead of its own: an LSTM's recurrent dense at every step after the first.
  std::int64_t shares_weights = -1;
  // Given parameter values (an imported model's initializers), in the order of
  // weight_count(): a GEMM's K x N row-major, a norm's gamma then beta. Empty: generated.
  std::vector<float> weights;
  // kMatmul, kDense, kConv2d: a per-output-channel bias added to the accumulators (ACTIVATE's
  // `bias`), its N values given (an import's) or, when empty, generated.
  bool bias = false;
  std::vector<float> bias_values;
  // kMatmul, kDense, kConv2d of a quantised ONNX graph: the graph's own int8 scales and zero
  // points (real = (q - zero) * scale) instead of calibration. `weights` then hold the int8
  // values and `bias_values` int32 accumulator units (s_in x s_weight), the input zero point
  // already folded in (models/README.md, "Quantised ONNX graphs").
  struct Quant {
    float in_scale = 0, weight_scale = 0, out_scale = 0;
    std::int32_t out_zero = 0;
    bool given() const { return in_scale > 0; }
  } quant;

  // Inferred: the shape of inputs[0] and of the output, per sample.
  std::uint32_t samples = 0;
  Shape3 in, out;

  // GEMM view of matmul/dense/conv2d: M x K times K x N, K per output (kernel taps x the
  // channels of one group for a grouped conv). A tensor matmul: M = samples x a's pixels,
  // K = a's channels per head, N = the output channels of all heads.
  std::uint64_t gemm_m() const;
  std::uint64_t gemm_k() const;
  std::uint64_t gemm_n() const;
  // Useful multiply-accumulates (0 for everything that is not a GEMM).
  std::uint64_t macs() const;
  // Generated parameters: a GEMM's K x N weights, a norm's gamma (and beta) per channel.
  std::uint64_t weight_count() const;
};

struct Graph {
  std::string name;
  std::string source;  // file the model came from, for messages
  DataType dtype = DataType::kInt8;
  std::uint32_t batch = 1;
  std::uint64_t seed = 1;  // for the generated inputs and weights
  std::vector<Tensor> tensors;
  std::vector<Node> nodes;       // in execution order
  std::vector<TensorId> inputs;  // graph inputs (generated data)
  std::vector<TensorId> outputs; // graph outputs (always written to HBM and checked)

  // Index of the tensor named `name`, or -1.
  std::int64_t find_tensor(const std::string& name) const;
};

// The [begin, end) ranges of `count` consecutive parts of an axis of `size`: `sizes` (each
// positive, summing to `size`) or, when empty, equal parts. On a bad split returns no ranges and
// sets `error` (one phrase, e.g. "sizes [2, 3] sum to 5, but the axis has 6").
std::vector<std::pair<std::uint64_t, std::uint64_t>> split_ranges(
    std::uint64_t size, std::uint64_t count, const std::vector<std::uint64_t>& sizes,
    std::string& error);

// Shape inference and validation: fills every tensor's consumers and shape and every node's
// samples/in/out, in node order. Throws a one-line CompileError naming the node for an input
// count an op does not take, mismatching shapes, attributes out of range, a tensor that is
// never used (neither consumed nor a graph output), or nodes out of execution order.
void infer_shapes(Graph& graph);

// What a rewrite pass (rewrite_nodes) builds a replaced node's expansion with.
class GraphRewrite {
 public:
  // Appends `n` producing a new tensor named after it; returns that tensor.
  TensorId add(Node n);
  // Adds a graph input of given values (its name, samples, shape and values); returns it.
  TensorId add_input(Tensor t);
  // The index the next added node takes (Node::shares_weights of a later one).
  std::size_t next_node() const { return graph_.nodes.size(); }

 private:
  friend void rewrite_nodes(Graph&, const std::function<bool(const Node&)>&,
                            const std::function<void(const Node&, GraphRewrite&)>&);
  explicit GraphRewrite(Graph& graph) : graph_(graph) {}
  Graph& graph_;
};

// The scaffold of the passes that replace nodes by subgraphs (expand_lstms, expand_transposes):
// rebuilds `graph`'s nodes in order, keeping every node `replace` rejects and handing each
// other one to `expand`, which adds its expansion through the GraphRewrite in execution order.
// The last node added takes the replaced node's name and tensor, so its consumers and the
// graph outputs read the expansion unchanged; shapes are inferred again when any node was
// replaced. Throws a one-line CompileError naming the replaced node when another new name is
// already a tensor's.
void rewrite_nodes(Graph& graph, const std::function<bool(const Node&)>& replace,
                   const std::function<void(const Node&, GraphRewrite&)>& expand);

}  // namespace tpu
