// Memory planning on its own: liveness-based residency, views, copies and staging limits, with
// a stand-in for the lowering's staging question.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <utility>

#include "tools/compiler/frontend.h"
#include "tools/compiler/memory_plan.h"

namespace tpu {
namespace {

Config array_config(std::uint32_t n) {
  Config c;
  c.array.rows = n;
  c.array.cols = n;
  return c;
}

// Every node needs `rows` staging rows whatever is resident.
StagingQuery flat(std::uint64_t rows) {
  return [rows](std::size_t, const std::vector<bool>&, const std::vector<bool>&, bool) {
    return rows;
  };
}

TensorId id(const Graph& g, const std::string& name) {
  return TensorId(g.find_tensor(name));
}

// x -> a -> b -> c -> d: a chain of 1x1 convs on 4 x 4 x 8 (16 rows per resident tensor on an
// 8-wide array). a and c never live at once, so c reuses a's rows.
const char* kChain = R"({"batch": 1, "inputs": [{"name": "x", "shape": [4, 4, 8]}], "nodes": [
  {"name": "a", "op": "conv2d", "inputs": ["x"], "out_channels": 8, "kernel": 1},
  {"name": "b", "op": "conv2d", "inputs": ["a"], "out_channels": 8, "kernel": 1},
  {"name": "c", "op": "conv2d", "inputs": ["b"], "out_channels": 8, "kernel": 1},
  {"name": "d", "op": "conv2d", "inputs": ["c"], "out_channels": 8, "kernel": 1}],
  "outputs": ["d"]})";

TEST(MemoryPlan, TensorsWhoseLivesDoNotOverlapShareRows) {
  const Graph g = parse_model_json(kChain, "chain.json");
  const MemoryPlan p = plan_memory(g, array_config(8), 1000, true, flat(10));
  const Placement& a = p.tensors[id(g, "a")];
  const Placement& b = p.tensors[id(g, "b")];
  const Placement& c = p.tensors[id(g, "c")];
  ASSERT_TRUE(a.resident && b.resident && c.resident);
  // The region is the top half: rows 500 .. 999. a lives in nodes 0-1, b in 1-2, c in 2-3.
  EXPECT_EQ(a.ub.base, 500u);
  EXPECT_EQ(b.ub.base, 516u);
  EXPECT_EQ(c.ub.base, 500u);
  EXPECT_EQ(a.ub.rows(), 16u);
  // Graph inputs and outputs stay in HBM.
  EXPECT_FALSE(p.tensors[id(g, "x")].resident);
  EXPECT_FALSE(p.tensors[id(g, "d")].resident);
  // Every node has a resident tensor live: staging stops below the region.
  for (std::uint64_t limit : p.staging_limit) EXPECT_EQ(limit, 500u);
}

TEST(MemoryPlan, ResidencyYieldsWhenStagingWouldNotFit) {
  const Graph g = parse_model_json(kChain, "chain.json");
  // Node 2 needs more staging than the rows below the region: b and c, live at node 2, go to
  // HBM; a (nodes 0-1) still fits.
  StagingQuery q = [](std::size_t node, const std::vector<bool>&, const std::vector<bool>&,
                      bool) {
    return node == 2 ? std::uint64_t(600) : std::uint64_t(10);
  };
  const MemoryPlan p = plan_memory(g, array_config(8), 1000, true, q);
  EXPECT_TRUE(p.tensors[id(g, "a")].resident);
  EXPECT_FALSE(p.tensors[id(g, "b")].resident);
  EXPECT_FALSE(p.tensors[id(g, "c")].resident);
  EXPECT_EQ(p.staging_limit[2], 1000u);  // nothing resident is live there
  EXPECT_EQ(p.staging_limit[0], 500u);
  // Residency off: everything in HBM, distinct addresses, staging over the whole UB.
  const MemoryPlan off = plan_memory(g, array_config(8), 1000, false, flat(10));
  for (const Placement& t : off.tensors) EXPECT_FALSE(t.resident);
  EXPECT_NE(off.tensors[id(g, "a")].hbm.base, off.tensors[id(g, "c")].hbm.base);
  for (std::uint64_t limit : off.staging_limit) EXPECT_EQ(limit, 1000u);
}

// The DMA sends one request per HBM burst a segment touches, so every allocation starts on a
// burst: kChain's 128-byte tensors and its nodes' weights each take a 256-byte burst of their
// own; 64-byte bursts pack them at 64-byte steps; a 1 MiB burst pads only to 4 KiB.
TEST(MemoryPlan, HbmAllocationsStartOnABurst) {
  const Graph g = parse_model_json(kChain, "chain.json");
  for (const auto& [burst, align] : {std::pair<std::uint32_t, std::uint64_t>{256, 256},
                                     {64, 64},
                                     {1u << 20, 4096}}) {
    Config c = array_config(8);
    c.hbm.burst_bytes = burst;
    const MemoryPlan p = plan_memory(g, c, 1000, false, flat(10));
    for (const std::string name : {"x", "a", "b", "c", "d"}) {
      EXPECT_EQ(p.tensors[id(g, name)].hbm.base % align, 0u) << name << ", burst " << burst;
    }
    for (std::size_t i = 0; i < g.nodes.size(); ++i) {
      EXPECT_EQ(p.weights[i] % align, 0u) << "node " << i << ", burst " << burst;
    }
    // Tensor a (4 x 4 x 8 = 128 bytes) and the allocation after it: one aligned step apart.
    std::uint64_t next = ~std::uint64_t(0);
    const std::uint64_t a = p.tensors[id(g, "a")].hbm.base;
    for (const Placement& t : p.tensors) {
      if (t.hbm.base > a) next = std::min(next, t.hbm.base);
    }
    for (const std::vector<std::uint64_t>* v : {&p.weights, &p.biases}) {
      for (std::uint64_t w : *v) {
        if (w > a) next = std::min(next, w);
      }
    }
    if (p.zeros > a) next = std::min(next, p.zeros);
    EXPECT_EQ(next - a, std::max<std::uint64_t>(128, align)) << "burst " << burst;
  }
}

TEST(MemoryPlan, TheSkipTensorLivesUntilTheAdd) {
  const Graph g = parse_model_json(R"({"inputs": [{"name": "x", "shape": [4, 4, 8]}], "nodes": [
    {"name": "s", "op": "conv2d", "inputs": ["x"], "out_channels": 8, "kernel": 1},
    {"name": "c1", "op": "conv2d", "inputs": ["s"], "out_channels": 8, "kernel": 3, "padding": 1},
    {"name": "c2", "op": "conv2d", "inputs": ["c1"], "out_channels": 8, "kernel": 1},
    {"name": "sum", "op": "add", "inputs": ["c2", "s"]}], "outputs": ["sum"]})",
                                   "skip.json");
  const MemoryPlan p = plan_memory(g, array_config(8), 1000, true, flat(10));
  const Placement& s = p.tensors[id(g, "s")];
  const Placement& c1 = p.tensors[id(g, "c1")];
  const Placement& c2 = p.tensors[id(g, "c2")];
  ASSERT_TRUE(s.resident && c1.resident && c2.resident);
  // s carries c1's zero border (6 x 6 rows); c1 and c2 are placed beside it, not over it.
  EXPECT_EQ(s.ub.pad, 1u);
  EXPECT_EQ(s.ub.rows(), 36u);
  EXPECT_GE(c1.ub.base, s.ub.base + 36);
  EXPECT_GE(c2.ub.base, s.ub.base + 36);
  // c2 (nodes 2-3) may reuse c1's rows (nodes 1-2)? No: both live at node 2.
  EXPECT_NE(c1.ub.base, c2.ub.base);
  // Too small a region for s with its neighbours: s goes to HBM with its border.
  const MemoryPlan tight = plan_memory(g, array_config(8), 60, true, flat(10));
  EXPECT_FALSE(tight.tensors[id(g, "s")].resident);
  EXPECT_EQ(tight.tensors[id(g, "s")].hbm.pad, 1u);
}

TEST(MemoryPlan, ConcatInputsAreSlicesAndReshapesAliases) {
  const Graph g = parse_model_json(R"({"batch": 2, "inputs": [{"name": "x", "shape": [3, 3, 4]}],
    "nodes": [
      {"name": "a", "op": "conv2d", "inputs": ["x"], "out_channels": 8, "kernel": 1},
      {"name": "b", "op": "conv2d", "inputs": ["x"], "out_channels": 5, "kernel": 1},
      {"name": "cat", "op": "concat", "inputs": ["a", "b"]},
      {"name": "again", "op": "concat", "inputs": ["b", "a"]},
      {"name": "f", "op": "flatten", "inputs": ["cat"]},
      {"name": "fc", "op": "dense", "inputs": ["f"], "units": 3}],
    "outputs": ["fc", "again"]})",
                                   "views.json");
  const MemoryPlan p = plan_memory(g, array_config(8), 1000, true, flat(10));
  const HbmTensor& cat = p.tensors[id(g, "cat")].hbm;
  const HbmTensor& a = p.tensors[id(g, "a")].hbm;
  const HbmTensor& b = p.tensors[id(g, "b")].hbm;
  EXPECT_EQ(p.root[id(g, "a")], id(g, "cat"));
  EXPECT_EQ(p.root[id(g, "b")], id(g, "cat"));
  EXPECT_EQ(a.base, cat.base);
  EXPECT_EQ(a.ctot, 13u);
  EXPECT_EQ(b.c0, 8u);
  EXPECT_EQ(b.addr(1, 2, 1) - cat.base, (9u + 2 * 3 + 1) * 13 + 8);
  // The flatten reads cat's bytes as 1 x 1 x 117 pixels.
  const HbmTensor& f = p.tensors[id(g, "f")].hbm;
  EXPECT_EQ(p.root[id(g, "f")], id(g, "cat"));
  EXPECT_EQ(f.base, cat.base);
  EXPECT_EQ(f.ctot, 117u);
  EXPECT_TRUE(f.contiguous());
  // b and a already are slices of cat: the second concat copies them into its own storage.
  const std::size_t again = 3;
  ASSERT_EQ(p.copies[again].size(), 2u);
  EXPECT_EQ(p.copies[again][0].from, id(g, "b"));
  EXPECT_EQ(p.copies[again][0].to.c0, 0u);
  EXPECT_EQ(p.copies[again][1].to.c0, 5u);
  EXPECT_EQ(p.copies[again][1].to.ctot, 13u);
  EXPECT_EQ(p.copies[again][1].to.base, p.tensors[id(g, "again")].hbm.base);
}

// The lowering's staging estimate learns from the query what its tiling reads from the
// placement: an input's pixels in HBM are contiguous exactly when their ctot is its own
// channel count (not a concat's channel slice), so both choose one tap plan.
TEST(MemoryPlan, TheStagingQueryKnowsWhichInputsAreChannelSlices) {
  // s may stay on chip from node 0 to the add: every node is asked its staging.
  const Graph g = parse_model_json(R"({"inputs": [{"name": "x", "shape": [4, 4, 2]}], "nodes": [
      {"name": "s", "op": "conv2d", "inputs": ["x"], "out_channels": 2, "kernel": 1},
      {"name": "a", "op": "conv2d", "inputs": ["x"], "out_channels": 3, "kernel": 1},
      {"name": "cat", "op": "concat", "inputs": ["a", "x"]},
      {"name": "ra", "op": "conv2d", "inputs": ["a"], "out_channels": 2, "kernel": 3},
      {"name": "rc", "op": "conv2d", "inputs": ["cat"], "out_channels": 2, "kernel": 3,
       "padding": 1},
      {"name": "sum", "op": "add", "inputs": ["rc", "s"]}],
    "outputs": ["cat", "ra", "sum"]})",
                                   "slices.json");
  std::vector<std::vector<bool>> told(g.nodes.size());
  const StagingQuery q = [&](std::size_t node, const std::vector<bool>&,
                             const std::vector<bool>& in_contiguous, bool) {
    told[node] = in_contiguous;
    return std::uint64_t(10);
  };
  const MemoryPlan p = plan_memory(g, array_config(8), 1000, true, q);
  // s and a read x, ra reads a: slices of cat (the concat is a view, never asked).
  const std::vector<std::vector<bool>> expected = {{false}, {false}, {}, {false}, {true},
                                                   {true, true}};
  for (std::size_t i = 0; i < g.nodes.size(); ++i) {
    EXPECT_EQ(told[i], expected[i]) << g.nodes[i].name;
    for (std::size_t k = 0; k < told[i].size(); ++k) {
      const HbmTensor& t = p.tensors[g.nodes[i].inputs[k]].hbm;
      EXPECT_EQ(told[i][k], t.ctot == t.shape.c) << g.nodes[i].name;
    }
  }
}

TEST(MemoryPlan, AlignedSlicesStayOnChipAsWholeChunks) {
  const Graph g = parse_model_json(R"({"inputs": [{"name": "x", "shape": [3, 3, 4]}], "nodes": [
      {"name": "a", "op": "conv2d", "inputs": ["x"], "out_channels": 8, "kernel": 1},
      {"name": "b", "op": "conv2d", "inputs": ["x"], "out_channels": 5, "kernel": 1},
      {"name": "cat", "op": "concat", "inputs": ["a", "b"]},
      {"name": "c", "op": "conv2d", "inputs": ["cat"], "out_channels": 2, "kernel": 1}],
    "outputs": ["c"]})",
                                   "aligned.json");
  const MemoryPlan p = plan_memory(g, array_config(8), 1000, true, flat(10));
  const Placement& cat = p.tensors[id(g, "cat")];
  ASSERT_TRUE(cat.resident);
  EXPECT_EQ(p.tensors[id(g, "a")].ub.base, cat.ub.base);
  EXPECT_EQ(p.tensors[id(g, "b")].ub.base, cat.ub.base + 9);  // one chunk of 3 x 3 rows
  // On a 16-wide array a ends mid-chunk: the concat stays in HBM.
  EXPECT_FALSE(plan_memory(g, array_config(16), 1000, true, flat(10)).tensors[id(g, "cat")].resident);
}

TEST(MemoryPlan, LayoutsTheMachineCannotServeAreOneLineErrors) {
  // A flatten of a tensor that also feeds a padded convolution (so it has a zero border).
  const Graph g = parse_model_json(R"({"inputs": [{"name": "x", "shape": [4, 4, 8]}], "nodes": [
      {"name": "a", "op": "conv2d", "inputs": ["x"], "out_channels": 8, "kernel": 1},
      {"name": "c", "op": "conv2d", "inputs": ["a"], "out_channels": 8, "kernel": 3, "padding": 1},
      {"name": "f", "op": "flatten", "inputs": ["a"]}],
    "outputs": ["c", "f"]})",
                                   "border.json");
  try {
    plan_memory(g, array_config(8), 1000, true, flat(10));
    ADD_FAILURE() << "no error";
  } catch (const CompileError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("node 2 'f' (reshape)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("zero border"), std::string::npos) << msg;
  }
}

// The HBM image stores a grouped conv's weight tiles with their zeros, and every other node's
// weights as they are.
TEST(MemoryPlan, StoredWeightsOfAGroupedConvHoldItsBlocksZeros) {
  const Graph g = parse_model_json(
      R"({"batch": 1, "inputs": [{"name": "x", "shape": [4, 4, 16]}], "nodes": [
        {"name": "dw", "op": "conv2d", "inputs": ["x"], "out_channels": 16, "kernel": 3,
         "padding": 1, "groups": 16},
        {"name": "pw", "op": "conv2d", "inputs": ["dw"], "out_channels": 8, "kernel": 1},
        {"name": "fc", "op": "dense", "inputs": ["pw"], "units": 5}],
        "outputs": ["fc"]})",
      "grouped.json");
  // Depthwise on an 8-wide array: 8 groups of 1 channel per 8 x 8 block, 2 blocks, 9 taps.
  EXPECT_EQ(stored_weight_elems(g.nodes[0], 8), 9u * 2 * 8 * 8);
  EXPECT_EQ(g.nodes[0].weight_count(), 9u * 16);
  // Dense convs and other GEMMs store exactly their weights: K x N.
  EXPECT_EQ(stored_weight_elems(g.nodes[1], 8), 16u * 8);
  EXPECT_EQ(stored_weight_elems(g.nodes[2], 8), 4u * 4 * 8 * 5);
}

}  // namespace
}  // namespace tpu
