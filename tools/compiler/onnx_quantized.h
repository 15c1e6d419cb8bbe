#pragma once
// Quantised ONNX graphs (models/README.md, "Quantised ONNX graphs"), for the ONNX front end:
// QuantizeLinear/DequantizeLinear pairs around Conv, Gemm and MatMul (QDQ format) and
// QLinearConv/QLinearMatMul (QOperator format) become plain Conv, Gemm and MatMul nodes whose
// weights are the int8 values and whose biases are int32 accumulator units (s_in x s_weight,
// the input zero point folded in), all as float initializers; the scales and zero points go
// beside, per node, into Node::quant. The float graph that results imports as any other, so
// the weight layouts, relu fusion and flatten order are the importer's. Every error is one line
// naming the file and the node; a quantised graph with any unsupported form fails as a whole.
#include <map>
#include <string>

#include <onnx/onnx_pb.h>

#include "tools/compiler/graph.h"

namespace tpu {

// Whether `graph` holds a QuantizeLinear, DequantizeLinear, QLinearConv or QLinearMatMul.
bool is_quantised_onnx(const onnx::GraphProto& graph);

// The float graph of plain GEMMs for a quantised `graph`; `quant` receives each GEMM's scales
// and output zero point under the GEMM's node name (the importer's node name).
onnx::GraphProto dequantise_onnx(const onnx::GraphProto& graph, const std::string& source,
                                 std::map<std::string, Node::Quant>& quant);

}  // namespace tpu
