#include "tools/report/check.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "sim/isa/semantics.h"

namespace tpu {
namespace {

// "name[i2,i1,i0]", leaving out outer dimensions of extent 1.
std::string element_name(const LayerInfo& layer, std::uint64_t i2, std::uint64_t i1,
                         std::uint64_t i0) {
  std::ostringstream out;
  out << layer.name << '[';
  if (layer.output.count2 > 1) out << i2 << ',';
  if (layer.output.count2 > 1 || layer.output.count1 > 1) out << i1 << ',';
  out << i0 << ']';
  return out.str();
}

void note(CheckResult& result, const std::string& message) {
  result.passed = false;
  if (result.first_mismatches.size() < kMaxReportedMismatches) {
    result.first_mismatches.push_back(message);
  }
}

void check_layer(const LayerInfo& layer, DataType dtype, const std::vector<std::uint8_t>& hbm,
                 CheckResult& result) {
  const TensorView& v = layer.output;
  const std::uint64_t expected_count =
      dtype == DataType::kInt8 ? layer.expected_int8.size() : layer.expected_fp32.size();
  if (expected_count == 0) return;
  if (expected_count != v.elements()) {
    result.mismatches += expected_count;
    note(result, layer.name + ": " + std::to_string(expected_count) +
                     " expected values but the output view has " + std::to_string(v.elements()) +
                     " elements");
    return;
  }
  const std::optional<std::uint64_t> end = view_end(v, dtype);
  if (!end || *end > hbm.size()) {
    result.mismatches += expected_count;
    note(result, layer.name + ": output view ends past the " + std::to_string(hbm.size()) +
                     " bytes of HBM");
    return;
  }
  float max_abs_ref = 0;
  for (float ref : layer.expected_fp32) max_abs_ref = std::max(max_abs_ref, std::fabs(ref));

  std::uint64_t index = 0;
  for (std::uint64_t i2 = 0; i2 < v.count2; ++i2) {
    for (std::uint64_t i1 = 0; i1 < v.count1; ++i1) {
      const std::uint8_t* row = hbm.data() + v.base + i2 * v.stride2 + i1 * v.stride1;
      for (std::uint64_t i0 = 0; i0 < v.count0; ++i0, ++index) {
        ++result.compared;
        if (dtype == DataType::kInt8) {
          const auto got = static_cast<std::int8_t>(row[i0]);
          const std::int8_t ref = layer.expected_int8[index];
          if (got == ref) continue;
          ++result.mismatches;
          note(result, element_name(layer, i2, i1, i0) + ": got " + std::to_string(got) +
                           " expected " + std::to_string(ref));
        } else {
          const auto bits = static_cast<std::uint16_t>(row[2 * i0] | (row[2 * i0 + 1] << 8));
          const float got = bf16_to_fp32(bits);
          const float ref = layer.expected_fp32[index];
          if (bf16_within_tolerance(got, ref, max_abs_ref)) continue;
          ++result.mismatches;
          std::ostringstream msg;
          msg << element_name(layer, i2, i1, i0) << ": got " << got << " expected " << ref;
          note(result, msg.str());
        }
      }
    }
  }
}

}  // namespace

bool bf16_within_tolerance(float got, float ref, float max_abs_ref) {
  if (!std::isfinite(got)) return false;
  const double tolerance =
      std::ldexp(std::fabs(double(ref)), -7) + std::ldexp(double(max_abs_ref), -7) / 16;
  return std::fabs(double(got) - double(ref)) <= tolerance;
}

CheckResult check_outputs(const Program& program, const std::vector<std::uint8_t>& hbm_final) {
  CheckResult result;
  for (const LayerInfo& layer : program.layers) {
    check_layer(layer, program.dtype, hbm_final, result);
  }
  return result;
}

}  // namespace tpu
