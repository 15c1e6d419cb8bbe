#include "tools/compiler/estimate.h"

#include <algorithm>
#include <stdexcept>

#include "tools/compiler/memory_plan.h"
#include "tools/report/report.h"

namespace tpu {
namespace {

// Measured on 2 shared cores (Release): the reference interpreter's GEMMs reach 4 (int8 2048^3,
// busy machine) to 18 G MAC/s (int8 4096^3, user time), its fp32 path (bf16 models) about 1.2
// (1024^3, busy); the fast matrix unit about 5, the PE model about 0.8 G MAC/s. The lower
// figures are used so the estimate errs long.
constexpr double kReferenceMacsPerSecond = 1e9;
constexpr double kFastMacsPerSecond = 4e9;
constexpr double kPeMacsPerSecond = 0.5e9;
// The process itself: SystemC, the program's instructions and reports of a small run.
constexpr double kBaseBytes = 16.0 * (1 << 20);

double simulation_seconds(double macs, bool pe) {
  return macs / (pe ? kPeMacsPerSecond : kFastMacsPerSecond);
}

// The unified buffer and accumulators, which a functional run allocates whole.
double on_chip_bytes(const Config& config, DataType dtype) {
  return double(config.ub_rows(dtype)) * config.ub_row_elems() * element_bytes(dtype) +
         double(config.acc_rows()) * config.array.cols * 4;
}

std::string duration(double seconds) {
  return seconds < 120 ? format("%.0f s", seconds) : format("%.0f min", seconds / 60);
}

}  // namespace

RunEstimate estimate_functional_run(const Graph& graph, const Config& config, bool pe) {
  const double eb = element_bytes(graph.dtype);
  // The reference keeps bf16 values and expected outputs as fp32.
  const double value_bytes = graph.dtype == DataType::kInt8 ? 1 : 4;
  const std::uint64_t cw = std::min(config.array.rows, config.array.cols);
  double inputs = 0, weights = 0, outputs = 0, widest_gemm = 0, macs = 0;
  for (TensorId id : graph.inputs) inputs += double(graph.tensors[id].elements()) * eb;
  for (const Node& n : graph.nodes) {
    const double out = double(graph.tensors[n.output].elements());
    outputs += out;
    // Shared weights are generated and stored once; a grouped conv's image holds its zeros.
    if (n.shares_weights < 0) weights += double(stored_weight_elems(n, cw)) * eb;
    if (is_gemm(n.kind)) widest_gemm = std::max(widest_gemm, out);
    macs += double(n.macs());
  }
  const double data = inputs + weights;  // generated, then copied into the memory image
  const double expected = outputs * value_bytes;
  // Compiling: the data and its image, every tensor the reference computes (with int32
  // accumulators for the widest GEMM) and the expected outputs.
  const double compiling = 2 * data + outputs * value_bytes + widest_gemm * 4 + expected;
  // Simulating: the image, the expected outputs, HBM (every tensor at most) and the chip.
  const double hbm = data + outputs * eb;
  const double simulating = data + expected + hbm + on_chip_bytes(config, graph.dtype);
  RunEstimate e;
  e.host_bytes = kBaseBytes + std::max(compiling, simulating);
  e.seconds = macs / kReferenceMacsPerSecond + simulation_seconds(macs, pe);
  return e;
}

RunEstimate estimate_functional_run(const Program& program, const Config& config, bool pe) {
  double image = 0, expected = 0, macs = 0;
  for (const HbmSegment& s : program.hbm_image) image += double(s.bytes.size());
  for (const LayerInfo& l : program.layers) {
    expected += double(l.expected_int8.size()) + 4.0 * double(l.expected_fp32.size());
    macs += double(l.macs);
  }
  RunEstimate e;
  e.host_bytes = kBaseBytes + image + expected + double(program.hbm_bytes) +
                 on_chip_bytes(config, program.dtype);
  e.seconds = simulation_seconds(macs, pe);
  return e;
}

std::string exceeds_functional_limits(const RunEstimate& e) {
  std::string why;
  if (e.host_bytes > kMaxFunctionalRunBytes) {
    why = "needs about " + human_bytes(e.host_bytes) + " of host memory (limit " +
          human_bytes(kMaxFunctionalRunBytes) + ")";
  }
  if (e.seconds > kMaxFunctionalRunSeconds) {
    why += (why.empty() ? "" : " and ") + std::string("would take about ") + duration(e.seconds) +
           " (limit " + duration(kMaxFunctionalRunSeconds) + ")";
  }
  return why;
}

void refuse_oversized_functional_run(const RunEstimate& e, const std::string& source) {
  const std::string why = exceeds_functional_limits(e);
  if (!why.empty()) {
    throw std::runtime_error(source + ": a functional run " + why + "; --timing-only gives its " +
                             "cycles without data, --force runs it anyway");
  }
}

}  // namespace tpu
