#pragma once
// The compiler's layer IR and its front ends: our model JSON (documented key by key in
// models/README.md) and SCALE-Sim topology CSV (conv rows or GEMM M, N, K rows).
//
// Shapes are inferred once, at parse time: every Layer leaves the front end with its input and
// output shapes filled in, so lowering never guesses. A layer sees `samples` independent inputs
// of shape `in` (H x W x C, NHWC): `samples` is the model batch, or M for a standalone matmul,
// whose operand is a samples x 1 x 1 x K tensor.
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "sim/config/config.h"
#include "sim/isa/isa.h"

namespace tpu {

// Raised for any model the compiler cannot accept: bad syntax, unknown keys, impossible shapes,
// layers that do not fit the machine. what() is one line naming the file or layer and the key.
class CompileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class LayerKind { kMatmul, kDense, kConv2d, kMaxPool2d };
const char* to_string(LayerKind kind);  // "matmul", "dense", "conv2d", "maxpool2d"

struct Shape3 {
  std::uint32_t h = 1, w = 1, c = 1;
  std::uint64_t elements() const { return std::uint64_t(h) * w * c; }
  bool operator==(const Shape3& o) const { return h == o.h && w == o.w && c == o.c; }
};

struct Layer {
  std::string name;
  LayerKind kind = LayerKind::kMatmul;
  Activation activation = Activation::kNone;
  // True when the layer reads its own (generated) input instead of the previous layer's
  // output: a standalone matmul, a SCALE-Sim row, or a JSON layer with an "input" key.
  bool independent_input = false;

  // kMatmul: the operand sizes as written (samples = m, in = 1x1xk, out = 1x1xn).
  std::uint32_t m = 0, k = 0, n = 0;
  // kDense: output features; the input is flattened in NHWC order.
  std::uint32_t units = 0;
  // kConv2d: out_channels filters of kernel_h x kernel_w; kMaxPool2d: a kernel_h x kernel_w
  // window (square). Both: stride, and symmetric zero padding (conv only).
  std::uint32_t out_channels = 0;
  std::uint32_t kernel_h = 0, kernel_w = 0;
  std::uint32_t stride = 1;
  std::uint32_t padding = 0;

  // Inferred.
  std::uint32_t samples = 0;
  Shape3 in, out;

  // GEMM view of matmul/dense/conv2d: M x K times K x N.
  std::uint64_t gemm_m() const;
  std::uint64_t gemm_k() const;
  std::uint64_t gemm_n() const;
  // Useful multiply-accumulates (0 for pooling).
  std::uint64_t macs() const;
};

struct Model {
  std::string name;
  std::string source;  // file the model came from
  DataType dtype = DataType::kInt8;
  std::uint32_t batch = 1;
  Shape3 input;             // model input per sample (meaningful when has_input)
  bool has_input = false;
  std::uint64_t seed = 1;   // for the generated inputs and weights
  std::vector<Layer> layers;
};

// Reads `path` and dispatches on content: '{' starts model JSON, a SCALE-Sim header line starts
// a topology CSV. The model name defaults to the file's stem.
Model load_model(const std::string& path);
// `source` names the text in error messages and provides the default model name.
Model parse_model_json(const std::string& text, const std::string& source);
Model parse_scalesim_csv(const std::string& text, const std::string& source);

}  // namespace tpu
