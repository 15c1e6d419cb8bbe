// LSTM layers (tools/compiler/lstm.h): the expansion's shape, the machine against the reference
// in int8 and bf16 with pe == fast, the expansion against a plain-loop LSTM, and the recurrence
// serialised in the simulated timeline.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>

#include "sim/config/config.h"
#include "sim/observer.h"
#include "sim/tpu_core.h"
#include "tools/compiler/data.h"
#include "tools/compiler/frontend.h"
#include "tools/compiler/lowering.h"
#include "tools/compiler/reference.h"
#include "tools/compiler/reference_graph.h"
#include "tools/run/child.h"
#include "tools/run/run.h"
#include "tests/test_paths.h"

namespace tpu {
namespace {

// Two stacked LSTMs over 2 samples of T = 5 steps of F = 7 features, U = 6 units: the first
// returns its sequence (the second's input), the second its last state.
Graph two_lstms(const std::string& dtype, bool first_sequences, bool second_sequences,
                bool bias = false) {
  const auto b = [](bool v) { return v ? "true" : "false"; };
  return parse_model_json(
      R"({"dtype": ")" + dtype + R"(", "batch": 2,
      "inputs": [{"name": "seq", "shape": [1, 5, 7]}],
      "nodes": [
        {"name": "l1", "op": "lstm", "inputs": ["seq"], "units": 6, "bias": )" + b(bias) +
          R"(, "return_sequences": )" + b(first_sequences) + R"(},
        {"name": "l2", "op": "lstm", "inputs": ["l1"], "units": 6, "bias": )" + b(bias) +
          R"(, "return_sequences": )" + b(second_sequences) + R"(}],
      "outputs": ["l2"]})",
      "lstm.json");
}

// SystemC elaborates once per process: each simulation runs in a child. Says "pass <compared>
// <cycles>" or why not.
std::string run_checked(const Config& config, const Graph& g, Fidelity fidelity) {
  const ChildOutcome out = run_in_child([&] {
    RunOptions options;
    options.check = true;
    options.fidelity = fidelity;
    const tpu::Run r = run_model(config, g, g.source, options);
    return std::string(r.check->passed ? "pass " : "FAIL ") + std::to_string(r.check->compared) +
           " " + std::to_string(r.result.total_cycles);
  });
  return out.ok ? out.output : "error: " + out.error;
}

// The number of compared elements in a run_checked result.
std::uint64_t compared(const std::string& result) {
  return std::stoull(result.substr(5, result.find(' ', 5) - 5));
}

std::size_t index_of(const Graph& g, const std::string& name) {
  for (std::size_t i = 0; i < g.nodes.size(); ++i) {
    if (g.nodes[i].name == name) return i;
  }
  ADD_FAILURE() << "no node " << name;
  return 0;
}

// Step 0 has no recurrent term: xw, then per step 0 three gate slices (i, g, o), their
// activations, ig, tc, h = 9 nodes; every later step x, hw, z, four slices, four activations,
// ig, fc, c, tc, h = 16; the sequence adds its concat and reshape. T = 5: 1 + 9 + 4 * 16 = 74,
// + 2 = 76 with return_sequences.
TEST(Lstm, ExpandsIntoPerStepNodesSharingTheRecurrentWeights) {
  const Graph g = two_lstms("int8", true, false);
  EXPECT_EQ(g.nodes.size(), 76u + 74u);
  const Node& seq = g.nodes[index_of(g, "l1")];
  EXPECT_EQ(seq.kind, OpKind::kReshape);
  EXPECT_EQ(seq.out, (Shape3{1, 5, 6}));
  const Node& last = g.nodes[index_of(g, "l2")];
  EXPECT_EQ(last.kind, OpKind::kMul);
  EXPECT_EQ(last.out, (Shape3{1, 1, 6}));
  EXPECT_EQ(g.tensors[g.outputs[0]].name, "l2");
  // W: 7 x 24 for all steps at once (M = 2 samples x 5 steps); U: 6 x 24, step 1's, shared.
  const Node& xw = g.nodes[index_of(g, "l1/xw")];
  EXPECT_EQ(xw.gemm_m(), 10u);
  EXPECT_EQ(xw.gemm_k(), 7u);
  EXPECT_EQ(xw.gemm_n(), 24u);
  const std::size_t first = index_of(g, "l1/t1/hw");
  EXPECT_EQ(g.nodes[first].shares_weights, -1);
  EXPECT_EQ(g.nodes[first].gemm_k(), 6u);
  for (const char* s : {"l1/t2/hw", "l1/t3/hw", "l1/t4/hw"}) {
    EXPECT_EQ(g.nodes[index_of(g, s)].shares_weights, std::int64_t(first)) << s;
  }
  // Gate order i, f, g, o: f is channels [6, 12) of the pre-activations.
  const Node& zf = g.nodes[index_of(g, "l1/t2/zf")];
  EXPECT_EQ(zf.c0, 6u);
  EXPECT_EQ(zf.c1, 12u);
  // MACs: per layer M x F x 4U for xw plus (T - 1) x samples x U x 4U recurrent:
  // l1 10 x 7 x 24 + 4 x 2 x 6 x 24 = 1680 + 1152; l2 10 x 6 x 24 + 1152 = 1440 + 1152.
  std::uint64_t macs = 0;
  for (const Node& n : g.nodes) macs += n.macs();
  EXPECT_EQ(macs, 1680u + 1152 + 1440 + 1152);
}

// The bundled LSTM models by hand. lstm_classifier: lstm1 x W 28 x 28 x 256 = 200,704 and
// h U for 27 steps 27 x 64 x 256 = 442,368; lstm2 28 x 64 x 256 = 458,752 + 442,368; dense
// 64 x 10 = 640; 1,544,832 in all. tpu_v1_lstm0: six layers of W 1040 x 4160 and U 1040 x 4160
// (stored once, shared by the steps): 6 x 8 x 1040^2 = 51,916,800 weights.
TEST(Lstm, ClassifierMacsByHand) {
  const std::string dir = tpu::test_paths::source_dir() + "/models/";
  std::uint64_t macs = 0;
  for (const Node& n : load_model(dir + "lstm_classifier.json").nodes) macs += n.macs();
  EXPECT_EQ(macs, 1544832u);
  std::uint64_t weights = 0;
  for (const Node& n : load_model(dir + "tpu_v1_lstm0.json").nodes) {
    if (n.shares_weights < 0) weights += n.weight_count();
  }
  EXPECT_EQ(weights, 51916800u);
}

// The expansion against the plain-loop LSTM on the same generated data (bf16: every
// intermediate tensor is rounded to bf16, about 2^-9 relative per node, |h| < 1).
// With "bias": the generated b (4U, on l/xw) is added to every step's gates.
TEST(Lstm, ExpansionMatchesAPlainLoopLstm) {
  for (bool sequences : {true, false}) {
    for (bool bias : {false, true}) {
      SCOPED_TRACE(::testing::Message() << sequences << " bias " << bias);
      const Graph g = parse_model_json(std::string(R"({"dtype": "bf16", "batch": 3,
          "inputs": [{"name": "seq", "shape": [1, 5, 7]}],
          "nodes": [{"name": "l", "op": "lstm", "inputs": ["seq"], "units": 6, "bias": )") +
                                           (bias ? "true" : "false") + R"(,
                     "return_sequences": )" + (sequences ? "true" : "false") + R"(}],
          "outputs": ["l"]})",
                                       "lstm.json");
      const GraphData data = generate_data(g, g.seed);
      const Evaluation ev = evaluate(g, data);
      const std::vector<float>& b = data.biases[index_of(g, "l/xw")];
      EXPECT_EQ(b.size(), bias ? 24u : 0u);
      const std::vector<float> want = reference_lstm(
          data.inputs[g.inputs[0]].f32, data.weights[index_of(g, "l/xw")].f32,
          data.weights[index_of(g, "l/t1/hw")].f32, 3, 5, 7, 6, sequences, b);
      const std::vector<float>& got = ev.tensors[g.outputs[0]].f32;
      ASSERT_EQ(got.size(), want.size());
      ASSERT_EQ(want.size(), sequences ? 3u * 5 * 6 : 3u * 6);
      float max_abs = 0;
      for (std::size_t e = 0; e < want.size(); ++e) {
        EXPECT_NEAR(got[e], want[e], 0.02f) << e;
        max_abs = std::max(max_abs, std::fabs(want[e]));
      }
      EXPECT_GT(max_abs, 0.05f);  // not a vanishing state
    }
  }
}

// With biases (ACTIVATE's bias on l/xw): int8 bit-exact and bf16 within tolerance, pe == fast.
TEST(Lstm, BiasedLstmMatchesTheReferenceAndPeEqualsFast) {
  for (const char* dtype : {"int8", "bf16"}) {
    SCOPED_TRACE(dtype);
    const Graph g = two_lstms(dtype, true, false, true);
    const Config config = default_config({"array.rows=16", "array.cols=16"});
    const std::string fast = run_checked(config, g, Fidelity::kFast);
    EXPECT_EQ(fast.substr(0, 5), "pass ") << fast;
    EXPECT_EQ(run_checked(config, g, Fidelity::kPe), fast);
  }
}

// int8 bit-exact and bf16 within tolerance, both return modes, on 16 x 16 (4U = 24 spans two
// column tiles) and 4 x 4 (U = 6 wider than the array), pe == fast in cycles.
TEST(Lstm, MachineMatchesTheReferenceAndPeEqualsFast) {
  for (const char* dtype : {"int8", "bf16"}) {
    for (bool sequences : {true, false}) {
      const Graph g = two_lstms(dtype, true, sequences);
      for (const char* size : {"16", "4"}) {
        SCOPED_TRACE(std::string(dtype) + (sequences ? " sequences " : " last ") + size);
        const Config config = default_config({std::string("array.rows=") + size,
                                              std::string("array.cols=") + size});
        const std::string fast = run_checked(config, g, Fidelity::kFast);
        EXPECT_EQ(fast.substr(0, 5), "pass ") << fast;
        // The output and every intermediate tensor that reaches HBM (slices always do).
        EXPECT_GT(compared(fast), sequences ? 2u * 5 * 6 : 2u * 6);
        EXPECT_EQ(run_checked(config, g, Fidelity::kPe), fast);
      }
    }
  }
}

struct Lifetimes : Observer {
  std::map<std::size_t, Cycle> start, finish;  // by pc
  void instruction(const InstructionEvent& e) override {
    if (e.kind == InstructionEvent::Kind::kStarted) start[e.pc] = e.cycle;
    if (e.kind == InstructionEvent::Kind::kFinished) finish[e.pc] = e.cycle;
  }
};

// The recurrence in the timeline: step t's recurrent dense multiplies h_{t-1}, which step t-1's
// last node (the mul o * tanh(c)) writes with the vector unit, so its first MATMUL cannot start
// before that node's last vector instruction has finished.
TEST(Lstm, RecurrentMatmulsWaitForThePreviousStep) {
  const Graph g = two_lstms("int8", true, false);
  const Config config = default_config({"array.rows=16", "array.cols=16"});
  const Program p = compile(g, config);
  const ChildOutcome out = run_in_child([&] {
    Lifetimes seen;
    SimOptions options;
    options.observers = {&seen};
    simulate(config, p, options);
    // Layer of every pc from the LAYER markers.
    std::vector<int> layer(p.instructions.size(), -1);
    int current = -1;
    for (std::size_t pc = 0; pc < p.instructions.size(); ++pc) {
      if (p.instructions[pc].op == Opcode::kLayer) current = p.instructions[pc].layer;
      layer[pc] = current;
    }
    std::string result;
    int serialised = 0;
    for (const char* l : {"l1", "l2"}) {
      for (int t = 1; t < 5; ++t) {
        const std::string h = std::string(l) + "/t" + std::to_string(t - 1) + "/h";
        const int producer = int(index_of(g, h));
        const int dense = int(index_of(g, std::string(l) + "/t" + std::to_string(t) + "/hw"));
        Cycle last_vector = 0, first_matmul = ~Cycle(0);
        for (std::size_t pc = 0; pc < p.instructions.size(); ++pc) {
          if (layer[pc] == producer && unit_of(p.instructions[pc].op) == Unit::kVector) {
            last_vector = std::max(last_vector, seen.finish.at(pc));
          }
          if (layer[pc] == dense && p.instructions[pc].op == Opcode::kMatmul) {
            first_matmul = std::min(first_matmul, seen.start.at(pc));
          }
        }
        if (last_vector > 0 && first_matmul >= last_vector) {
          ++serialised;
        } else {
          result += h + ": last vector op ends at " + std::to_string(last_vector) +
                    ", next step's first MATMUL starts at " + std::to_string(first_matmul) + "; ";
        }
      }
    }
    return result + std::to_string(serialised) + " steps serialised";
  });
  EXPECT_EQ(out.ok ? out.output : out.error, "8 steps serialised");
}

// Bad attributes are one-line errors naming the node.
TEST(Lstm, BadAttributesNameTheNode) {
  const auto error = [](const std::string& input_shape, const std::string& attrs) {
    try {
      parse_model_json(R"({"inputs": [{"name": "seq", "shape": )" + input_shape + R"(}],
          "nodes": [{"name": "rnn", "op": "lstm", "inputs": ["seq"])" + attrs + R"(}],
          "outputs": ["rnn"]})",
                       "bad.json");
    } catch (const CompileError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(error("[1, 5, 7]", R"(, "units": 0)"),
            "bad.json: node 0 'rnn': key 'units': expected an integer in [1, 16777216], got 0");
  EXPECT_EQ(error("[4, 5, 7]", R"(, "units": 6)"),
            "bad.json: node 0 'rnn' (lstm): input 'seq' is 4x5x7; an lstm reads a sequence of "
            "shape 1 x T x F (T steps of F features)");
  EXPECT_EQ(error("[7]", R"(, "units": 6)"),
            "bad.json: input 0: key 'shape': expected [height, width, channels], got [7]");
  EXPECT_EQ(error("[1, 5, 7]", R"(, "units": 6, "return_sequences": 1)"),
            "bad.json: node 0 'rnn': key 'return_sequences': expected true or false, got the "
            "integer 1");
  EXPECT_NE(error("[1, 5, 7]", "").find("'units'"), std::string::npos) << error("[1, 5, 7]", "");
}

// A slice on its own: columns [1, 4) and channels [2, 7) of 2 x 3 x 5 x 9, and a range past
// the input's end.
TEST(Lstm, SliceCopiesItsColumnsAndChannels) {
  for (const char* dtype : {"int8", "bf16"}) {
    const Graph g = parse_model_json(std::string(R"({"dtype": ")") + dtype + R"(", "batch": 2,
        "inputs": [{"name": "x", "shape": [3, 5, 9]}],
        "nodes": [{"name": "s", "op": "slice", "inputs": ["x"], "width": [1, 4],
                   "channels": [2, 7]},
                  {"name": "t", "op": "tanh", "inputs": ["s"]}],
        "outputs": ["s", "t"]})",
                                     "slice.json");
    EXPECT_EQ(g.nodes[0].out, (Shape3{3, 3, 5}));
    const GraphData data = generate_data(g, g.seed);
    const Evaluation ev = evaluate(g, data);
    // Element (b, y, x, c) of s is (b, y, x + 1, c + 2) of x.
    const Values& x = data.inputs[g.inputs[0]];
    const Values& s = ev.tensors[g.nodes[0].output];
    const std::size_t at = ((1 * 3 + 2) * 3 + 1) * 5 + 3, from = ((1 * 3 + 2) * 5 + 2) * 9 + 5;
    if (std::string(dtype) == "int8") {
      EXPECT_EQ(s.i8.at(at), x.i8.at(from));
    } else {
      EXPECT_EQ(s.f32.at(at), x.f32.at(from));
    }
    const std::string r =
        run_checked(default_config({"array.rows=8", "array.cols=8"}), g, Fidelity::kFast);
    EXPECT_EQ(r.substr(0, 5), "pass ") << r;
    EXPECT_EQ(compared(r), 2u * (2 * 3 * 3 * 5));  // s and t
  }
  try {
    parse_model_json(R"({"inputs": [{"name": "x", "shape": [1, 5, 9]}],
        "nodes": [{"name": "s", "op": "slice", "inputs": ["x"], "channels": [4, 10]}],
        "outputs": ["s"]})",
                     "slice.json");
    ADD_FAILURE() << "no error";
  } catch (const CompileError& e) {
    EXPECT_STREQ(e.what(), "slice.json: node 0 's' (slice): key 'channels': [4, 10) is not a "
                           "non-empty range of the input's 9 channels");
  }
}

}  // namespace
}  // namespace tpu
