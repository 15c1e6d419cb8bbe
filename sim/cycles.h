#pragma once
// Simulated time in core clock cycles. Cycle c occupies [c * period, (c + 1) * period).
#include <cstdint>

namespace tpu {

using Cycle = std::uint64_t;

// Ceiling division for sizes and cycle counts.
constexpr std::uint64_t ceil_div(std::uint64_t a, std::uint64_t b) { return (a + b - 1) / b; }

}  // namespace tpu
