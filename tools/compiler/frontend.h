#pragma once
// Front ends: model files -> Graph (tools/compiler/graph.h), shapes inferred and validated.
//
// - Model JSON (documented key by key in models/README.md) in graph form ("inputs", "nodes",
//   "outputs") or in chain form ("layers": each layer reads the previous one's output; every
//   output nobody reads becomes a graph output).
// - SCALE-Sim topology CSV (conv rows or GEMM M, N, K rows): one independent layer per row.
// - ONNX (tools/compiler/onnx_frontend.h).
//
// Every error is one line naming the file, the layer or node, and the key.
#include <cstdint>
#include <string>
#include <vector>

#include "tools/compiler/graph.h"

namespace tpu {

// Reads `path` and dispatches on content: '{' starts model JSON, a SCALE-Sim header line starts
// a topology CSV, ONNX's first protobuf byte (or the name *.onnx) an ONNX model
// (tools/compiler/onnx_frontend.h). The model name defaults to the file's stem.
Graph load_model(const std::string& path);
// `source` names the text in error messages and provides the default model name.
Graph parse_model_json(const std::string& text, const std::string& source);
Graph parse_scalesim_csv(const std::string& text, const std::string& source);

// The file name in `path` without its extension (kept when the name starts with its only dot): a
// model's default name.
std::string stem_of(const std::string& path);

// Runs `graph` in `dtype` (the CLI's --dtype), over the model's own choice: the model JSON's
// "dtype", bf16 for an ONNX float graph. A quantised ONNX graph runs only int8 (its own
// scales): bf16 is an error naming the file.
void set_dtype(Graph& graph, DataType dtype);

// One standalone GEMM C[m,n] = A[m,k] x B[k,n]: a matmul layer.
struct GemmShape {
  std::uint64_t m = 0, k = 0, n = 0;
};
// A model named `name` of matmul layers gemm0, gemm1, ..., each on its own generated input, as
// the benchmarks and the hardware validation run GEMMs. Errors (a size out of range) name
// "<name>".
Graph gemm_model(const std::string& name, DataType dtype, const std::vector<GemmShape>& gemms);

}  // namespace tpu
