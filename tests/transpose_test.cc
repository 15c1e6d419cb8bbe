// The `transpose` and `split` graph ops: shapes and expansion, one-line errors, the reference
// against a plain permutation of the generated input, functional runs against the reference in
// both fidelities (int8 bit-exact, bf16), and a transpose's cycles derived by hand.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "tests/assembly_run.h"
#include "tests/model_json.h"
#include "tools/compiler/data.h"
#include "tools/compiler/frontend.h"
#include "tools/compiler/lowering.h"
#include "tools/compiler/reference_graph.h"
#include "tests/test_paths.h"

namespace tpu {
namespace {

Graph parse(const std::string& json) { return parse_model_json(json, "t.json"); }

std::string shape_json(const Shape3& s) {
  return "[" + std::to_string(s.h) + ", " + std::to_string(s.w) + ", " + std::to_string(s.c) + "]";
}

// One transpose of a graph input x.
std::string transpose_json(const Shape3& in, const std::vector<int>& perm,
                           const std::string& dtype = "int8", int batch = 1) {
  std::string p;
  for (int a : perm) p += (p.empty() ? "" : ", ") + std::to_string(a);
  return R"({"dtype": ")" + dtype + R"(", "batch": )" + std::to_string(batch) +
         R"(, "inputs": [{"name": "x", "shape": )" + shape_json(in) +
         R"(}], "nodes": [{"name": "t", "op": "transpose", "inputs": ["x"], "perm": [)" + p +
         R"(]}], "outputs": ["t"]})";
}

const Node& producer(const Graph& g, const std::string& tensor) {
  const std::int64_t id = g.find_tensor(tensor);
  if (id < 0) throw std::runtime_error("no tensor " + tensor);
  return g.nodes.at(std::size_t(g.tensors[std::size_t(id)].producer));
}

TEST(Transpose, ShapesAndExpansionPerPerm) {
  const Shape3 in{3, 5, 7};
  struct Case {
    std::vector<int> perm;
    Shape3 out;
    std::vector<OpKind> kinds;  // the nodes, in order
  };
  const std::vector<Case> cases = {
      {{0, 1, 2}, {3, 5, 7}, {OpKind::kTranspose}},  // a copy
      {{1, 0, 2}, {5, 3, 7}, {OpKind::kTranspose}},  // S: pixels change place
      {{2, 0, 1}, {7, 3, 5}, {OpKind::kTensorMatmul, OpKind::kReshape}},  // M
      {{0, 2, 1}, {3, 7, 5}, {OpKind::kTensorMatmul, OpKind::kReshape, OpKind::kTranspose}},
      {{2, 1, 0}, {7, 5, 3}, {OpKind::kTranspose, OpKind::kTensorMatmul, OpKind::kReshape}},
      {{1, 2, 0},
       {5, 7, 3},
       {OpKind::kTranspose, OpKind::kTensorMatmul, OpKind::kReshape, OpKind::kTranspose}},
  };
  for (const Case& c : cases) {
    const Graph g = parse(transpose_json(in, c.perm));
    SCOPED_TRACE(shape_json({std::uint32_t(c.perm[0]), std::uint32_t(c.perm[1]),
                             std::uint32_t(c.perm[2])}));
    EXPECT_EQ(g.tensors[g.outputs[0]].shape, c.out);
    std::vector<OpKind> kinds;
    for (const Node& n : g.nodes) kinds.push_back(n.kind);
    EXPECT_EQ(kinds, c.kinds);
    EXPECT_EQ(g.nodes.back().name, "t");
    for (const Node& n : g.nodes) {
      if (n.kind == OpKind::kTranspose && n.perm[0] != 0) {
        EXPECT_EQ(n.perm[2], 2u) << "only C-last transposes reach the lowering";
      }
      if (n.kind == OpKind::kTensorMatmul) {
        EXPECT_TRUE(n.identity_a);
        EXPECT_TRUE(n.transpose_b);
        // The identity is a graph input of given values.
        const Tensor& id = g.tensors[n.inputs[0]];
        EXPECT_EQ(id.producer, -1);
        EXPECT_EQ(id.shape, (Shape3{1, 7, 7}));
        ASSERT_EQ(id.values.size(), 49u);
        EXPECT_EQ(id.values[0], 1.0f);
        EXPECT_EQ(id.values[1], 0.0f);
        EXPECT_EQ(id.values[8], 1.0f);
      }
    }
  }
  // 1 x S x D -> 1 x D x S (a sequence's tokens to channels) is the matrix unit alone.
  const Graph seq = parse(transpose_json({1, 6, 4}, {0, 2, 1}));
  ASSERT_EQ(seq.nodes.size(), 1u);
  EXPECT_EQ(seq.nodes[0].kind, OpKind::kTensorMatmul);
  EXPECT_EQ(seq.nodes[0].out, (Shape3{1, 4, 6}));
  // Only axes of size 1 move: a view.
  const Graph view = parse(transpose_json({1, 1, 4}, {2, 0, 1}));
  ASSERT_EQ(view.nodes.size(), 1u);
  EXPECT_EQ(view.nodes[0].kind, OpKind::kReshape);
  EXPECT_EQ(view.nodes[0].out, (Shape3{4, 1, 1}));
}

TEST(Transpose, BadPermsAreOneLineErrorsNamingTheNode) {
  for (const char* perm : {"[0, 0, 1]", "[0, 1]", "[0, 1, 3]", "\"hwc\"", "[0, 1.5, 2]"}) {
    const std::string json = R"({"inputs": [{"name": "x", "shape": [2, 3, 4]}], "nodes": [)"
                             R"({"name": "t", "op": "transpose", "inputs": ["x"], "perm": )" +
                             std::string(perm) + R"(}], "outputs": ["t"]})";
    const std::string e = compile_error(json, "t.json");
    EXPECT_NE(e.find("t.json: node 0 't': key 'perm': expected a permutation of [0, 1, 2]"),
              std::string::npos)
        << e;
    EXPECT_EQ(e.find('\n'), std::string::npos);
  }
  const std::string missing = compile_error(
      R"({"inputs": [{"name": "x", "shape": [2, 3, 4]}], "nodes": [)"
      R"({"name": "t", "op": "transpose", "inputs": ["x"]}], "outputs": ["t"]})", "t.json");
  EXPECT_NE(missing.find("'perm'"), std::string::npos) << missing;
}

// The reference output of every perm (through the expansion: identity matmuls, DMA
// transposes, views) is the plain permutation of the generated input, element for element, in
// int8 (values and scale kept) and bf16; two samples, shapes off the array's multiples.
TEST(Transpose, ReferenceIsThePlainPermutation) {
  const std::vector<std::vector<int>> perms = {{0, 1, 2}, {1, 0, 2}, {2, 0, 1},
                                               {0, 2, 1}, {2, 1, 0}, {1, 2, 0}};
  const Shape3 in{3, 5, 130};
  for (const char* dtype : {"int8", "bf16"}) {
    for (const std::vector<int>& perm : perms) {
      const Graph g = parse(transpose_json(in, perm, dtype, 2));
      SCOPED_TRACE(std::string(dtype) + " perm " + std::to_string(perm[0]) +
                   std::to_string(perm[1]) + std::to_string(perm[2]));
      const GraphData d = generate_data(g, g.seed);
      const Evaluation ev = evaluate(g, d);
      const Values& x = d.inputs[std::size_t(g.find_tensor("x"))];
      const Values& y = ev.tensors[g.outputs[0]];
      const std::uint64_t dims[3] = {in.h, in.w, in.c};
      const bool int8 = std::string(dtype) == "int8";
      std::uint64_t o = 0, wrong = 0;
      for (std::uint64_t b = 0; b < 2; ++b) {
        for (std::uint64_t i0 = 0; i0 < dims[perm[0]]; ++i0) {
          for (std::uint64_t i1 = 0; i1 < dims[perm[1]]; ++i1) {
            for (std::uint64_t i2 = 0; i2 < dims[perm[2]]; ++i2, ++o) {
              std::uint64_t j[3];
              j[perm[0]] = i0;
              j[perm[1]] = i1;
              j[perm[2]] = i2;
              const std::uint64_t at = ((b * in.h + j[0]) * in.w + j[1]) * in.c + j[2];
              wrong += int8 ? y.i8.at(o) != x.i8.at(at) : y.f32.at(o) != x.f32.at(at);
            }
          }
        }
      }
      EXPECT_EQ(o, 2 * in.elements());
      EXPECT_EQ(wrong, 0u);
    }
  }
}

Config array8() {
  Config c;
  c.array.rows = 8;
  c.array.cols = 8;
  c.ub.capacity_bytes = 64 << 10;
  return c;
}

// Each perm on 8 x 8 with H, W and C off the array's multiples (C = 13: two K tiles of the
// identity and a short one; 3 x 11 = 33 pixels: five N tiles), batch 2, int8 and bf16.
TEST(Transpose, EveryPermMatchesTheReferenceInBothFidelities) {
  for (const char* dtype : {"int8", "bf16"}) {
    for (const std::vector<int>& perm :
         std::vector<std::vector<int>>{{1, 0, 2}, {2, 0, 1}, {0, 2, 1}, {2, 1, 0}, {1, 2, 0}}) {
      expect_functional(array8(), transpose_json({3, 11, 13}, perm, dtype, 2), "t.json");
    }
  }
  // A sequence's 1 x S x D -> 1 x D x S on the default 128 x 128 array: D = 200 and S = 130
  // each take two tiles.
  expect_functional(Config(), transpose_json({1, 130, 200}, {0, 2, 1}, "int8"), "t.json");
}

// The split node: one slice per output, equal parts or the given sizes, along channels or width.
TEST(Split, ExpandsIntoSlicesOfTheGivenOrEqualParts) {
  const Graph g = parse(R"({"inputs": [{"name": "x", "shape": [2, 6, 9]}], "nodes": [
      {"name": "s", "op": "split", "inputs": ["x"], "outputs": ["a", "b", "c"],
       "axis": "channels", "sizes": [2, 3, 4]},
      {"name": "w", "op": "split", "inputs": ["x"], "outputs": ["w0", "w1"], "axis": "width"},
      {"name": "y", "op": "concat", "inputs": ["a", "b", "c"]}],
      "outputs": ["y", "w0", "w1"]})");
  ASSERT_EQ(g.nodes.size(), 6u);
  const std::vector<std::pair<std::uint32_t, std::uint32_t>> channels = {{0, 2}, {2, 5}, {5, 9}};
  for (std::size_t k = 0; k < 3; ++k) {
    const Node& n = g.nodes[k];
    EXPECT_EQ(n.kind, OpKind::kSlice);
    EXPECT_EQ(n.name, std::string(1, char('a' + k)));
    EXPECT_EQ(std::make_pair(n.c0, n.c1), channels[k]);
    EXPECT_EQ(n.x0, 0u);
    EXPECT_EQ(n.x1, 6u);
  }
  EXPECT_EQ(producer(g, "w0").out, (Shape3{2, 3, 9}));
  EXPECT_EQ(producer(g, "w1").x0, 3u);
  EXPECT_EQ(producer(g, "w1").x1, 6u);
}

TEST(Split, BadSplitsAreOneLineErrorsNamingTheNode) {
  const auto split = [](const std::string& attrs) {
    return compile_error(R"({"inputs": [{"name": "x", "shape": [2, 6, 9]}], "nodes": [
        {"name": "s", "op": "split", "inputs": ["x"], "outputs": ["a", "b"])" + attrs +
                         R"(}], "outputs": ["a", "b"]})", "t.json");
  };
  struct Case {
    std::string attrs, want;
  };
  const std::vector<Case> cases = {
      {R"(, "axis": "channels")",
       "node 0 'a' (slice): part of split 's' along channels: the axis of 9 does not split into 2 equal "
       "parts (give \"sizes\")"},
      {R"(, "axis": "channels", "sizes": [4, 4])",
       "part of split 's' along channels: sizes [4, 4] sum to 8, but the axis has 9"},
      {R"(, "axis": "width", "sizes": [1, 2, 3])",
       "node 0 's': key 'sizes': expected an array of 2 sizes (one per output)"},
      {R"(, "axis": "width", "sizes": [6, 0])", "node 0 's': key 'sizes'"},
      {R"(, "axis": "height")",
       "node 0 's': key 'axis': expected \"channels\" or \"width\", got \"height\""},
      {"", "node 0 's': missing required key 'axis'"},
  };
  for (const Case& c : cases) {
    const std::string e = split(c.attrs);
    EXPECT_NE(e.find(c.want), std::string::npos) << e;
    EXPECT_EQ(e.find('\n'), std::string::npos);
  }
  const std::string dup = compile_error(R"({"inputs": [{"name": "x", "shape": [2, 6, 8]}],
      "nodes": [{"name": "s", "op": "split", "inputs": ["x"], "outputs": ["x", "b"],
                 "axis": "channels"}], "outputs": ["b"]})", "t.json");
  EXPECT_NE(dup.find("duplicate name 'x'"), std::string::npos) << dup;
  EXPECT_NE(compile_error(R"({"layers": [{"type": "split"}], "input": [1, 1, 4]})", "t.json")
                .find("split need the graph form"),
            std::string::npos);
}

// Random small graphs of two transposes and a split between 1-wide convs (so the transposed
// tensors are computed, and the split's parts feed a concat and a GEMM): random perms, shapes,
// arrays, memories and dtypes; pe agrees with fast and the check passes.
TEST(Transpose, RandomGraphsWithSplitsMatchTheReferenceInBothFidelities) {
  std::mt19937 rng(11);
  const auto pick = [&rng](std::uint32_t lo, std::uint32_t hi) {
    return std::uniform_int_distribution<std::uint32_t>(lo, hi)(rng);
  };
  const std::uint32_t perms[6][3] = {{1, 0, 2}, {2, 0, 1}, {0, 2, 1},
                                     {2, 1, 0}, {1, 2, 0}, {0, 1, 2}};
  const auto list = [](const std::uint32_t* v, std::size_t n) {
    std::string s;
    for (std::size_t i = 0; i < n; ++i) s += (i ? ", " : "") + std::to_string(v[i]);
    return "[" + s + "]";
  };
  for (int i = 0; i < 6; ++i) {
    Config c;
    c.array.rows = pick(4, 8);
    c.array.cols = pick(4, 8);
    c.vector.lanes = pick(1, 8);
    c.ub.capacity_bytes = pick(0, 1) ? 256 << 10 : 32 << 10;
    c.hbm.preset = pick(0, 1) ? "ideal" : "simple";
    c.mxu.weight_fifo_tiles = pick(0, 1) ? 4 : 0;
    const std::uint32_t* p1 = perms[pick(0, 5)];
    const std::uint32_t* p2 = perms[pick(0, 5)];
    std::uint32_t a[3] = {pick(1, 4), pick(2, 9), pick(3, 12)}, t[3], u[3];
    for (int k = 0; k < 3; ++k) t[k] = a[p1[k]];
    for (int k = 0; k < 3; ++k) u[k] = t[p2[k]];
    // u's channels in up to three parts, the first ones 1 wide.
    const std::uint32_t parts = std::min<std::uint32_t>(pick(1, 3), u[2]);
    std::uint32_t sizes[3] = {1, 1, 1};
    sizes[parts - 1] = u[2] - (parts - 1);
    std::string outs;
    for (std::uint32_t k = 0; k < parts; ++k) {
      outs += std::string(k ? ", " : "") + "\"p" + std::to_string(k) + "\"";
    }
    const std::string json =
        std::string(R"({"dtype": ")") + (pick(0, 1) ? "int8" : "bf16") + R"(", "batch": )" +
        std::to_string(pick(1, 2)) + R"(, "inputs": [{"name": "x", "shape": [)" +
        std::to_string(a[0]) + ", " + std::to_string(a[1]) + R"(, 3]}], "nodes": [)" +
        R"({"name": "a", "op": "conv2d", "inputs": ["x"], "kernel": 1, "out_channels": )" +
        std::to_string(a[2]) + "}, " +
        R"({"name": "t", "op": "transpose", "inputs": ["a"], "perm": )" + list(p1, 3) + "}, " +
        R"({"name": "u", "op": "transpose", "inputs": ["t"], "perm": )" + list(p2, 3) + "}, " +
        R"({"name": "s", "op": "split", "inputs": ["u"], "axis": "channels", "outputs": [)" +
        outs + R"(], "sizes": )" + list(sizes, parts) + "}, " +
        (parts > 1 ? R"({"name": "y", "op": "concat", "inputs": [)" + outs + "]}, " : "") +
        R"({"name": "o", "op": "conv2d", "inputs": [")" + (parts > 1 ? "y" : "p0") +
        R"("], "kernel": 1, "out_channels": 5}], )" +
        R"("outputs": ["o", "t"]})";
    SCOPED_TRACE(::testing::Message() << c.array.rows << "x" << c.array.cols);
    expect_functional(c, json, "t.json");
  }
}

// A transpose [1, 0, 2] of one 2 x 3 x 8 int8 sample on the 8 x 8 teaching core (ideal memory,
// one UB read and one write port, 2 banks): layer at 0, then
//   dma.load (pc 1): starts 1; its 3 groups (input columns) of 2 segments (pixels, 24 bytes
//     apart) lie in one 64-byte burst: one request at 1, answered at 1; its 6 UB rows (one per
//     pixel, alternating banks) are written one a cycle 1 .. 6; done the cycle after, 7;
//   dma.store (pc 2): starts 7 (the engine's previous transfer done); reads its 6 rows 7 .. 12;
//     the 48 output bytes are one contiguous run in one burst: one write at 13, answered at 13;
//     done 14 = the run's total.
TEST(Transpose, PixelSwapCyclesByHand) {
  Config c = load_config(tpu::test_paths::source_dir() + "/configs/teach_8x8.json");
  const Program p = compile(parse(transpose_json({2, 3, 8}, {1, 0, 2})), c);
  const RunResult r = run_traced(p, c);
  EXPECT_EQ(at_pc(r, 1).start, 1u);
  EXPECT_EQ(at_pc(r, 1).done, 7u);
  EXPECT_EQ(at_pc(r, 2).start, 7u);
  EXPECT_EQ(at_pc(r, 2).done, 14u);
  EXPECT_EQ(r.total_cycles, 14u);
}

}  // namespace
}  // namespace tpu
