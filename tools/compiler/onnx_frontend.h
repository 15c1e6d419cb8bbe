#pragma once
// ONNX front end: an ONNX ModelProto (models/README.md "ONNX") -> Graph, shapes inferred.
//
// NCHW activations become NHWC tensors; initializers become the GEMM and norm weights (their
// values when the file holds them, else generated); shape arithmetic on constants (Shape,
// Gather, Unsqueeze, Concat, Cast) is folded at import. Every error is one line naming the file
// and the node; an unsupported operator fails the whole import. A float graph runs bf16 (the
// user may choose int8: set_dtype); a quantised graph (tools/compiler/onnx_quantized.h) int8
// with its own scales.
#include <string>

#include "tools/compiler/graph.h"

namespace tpu {

// Whether `bytes` starts like a serialized ModelProto (field 1, ir_version, as a varint).
bool looks_like_onnx(const std::string& bytes);
// `source` names the file in error messages and provides the model name (its stem).
Graph parse_onnx(const std::string& bytes, const std::string& source);

}  // namespace tpu
