#pragma once
// Checks a functional run: every layer's output, read from the final HBM contents through the
// layer's TensorView, against the expected values the compiler computed with the plain C++
// reference.
//
// Comparison rule:
//   int8 programs: exact equality with LayerInfo::expected_int8.
//   bf16 programs: the output element is read from HBM as bf16 (2 bytes, little-endian, the
//   upper half of an fp32) and widened to fp32 exactly; it passes when
//       |got - ref| <= 2^-7 * |ref| + 2^-7 * max_abs_ref / 16
//   where ref is the LayerInfo::expected_fp32 value (not rounded to bf16) and max_abs_ref is
//   the largest |ref| of that layer. The relative term covers bf16 rounding of the result
//   (at most 2^-8 relative) plus fp32 accumulation in a different order; the absolute term,
//   2^-11 of the layer's largest magnitude, covers results that cancel to near zero.
//   NaN or infinite outputs never pass.
// Layers without expected data (empty vectors) are skipped. A layer whose expected data does
// not match its view's element count, or whose view reaches past the HBM contents, fails with
// a message instead of being compared.
#include <cstdint>
#include <string>
#include <vector>

#include "sim/isa/program.h"

namespace tpu {

struct CheckResult {
  bool passed = true;
  std::uint64_t compared = 0;    // output elements compared
  std::uint64_t mismatches = 0;  // elements outside the rule (plus unreadable ones)
  // The first few problems, e.g. "conv1[3,5,7]: got 12 expected 13".
  std::vector<std::string> first_mismatches;
};

constexpr std::size_t kMaxReportedMismatches = 10;

CheckResult check_outputs(const Program& program, const std::vector<std::uint8_t>& hbm_final);

// The bf16 acceptance rule above, for one element.
bool bf16_within_tolerance(float got, float ref, float max_abs_ref);

}  // namespace tpu
