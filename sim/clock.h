#pragma once
// Converts between core cycles and SystemC time. Every block times itself in whole cycles of
// the core clock (Config::clock_mhz); helpers here keep that arithmetic in one place.
#include <cmath>

#include <systemc>

#include "sim/cycles.h"

namespace tpu {

class Clock {
 public:
  explicit Clock(double period_ns) : period_(period_ns, sc_core::SC_NS) {}

  const sc_core::sc_time& period() const { return period_; }
  sc_core::sc_time at(Cycle c) const { return period_ * double(c); }
  // The cycle the current simulation time falls in.
  Cycle now() const { return Cycle(std::floor(sc_core::sc_time_stamp() / period_ + 1e-9)); }
  // The first cycle that starts at or after time t.
  Cycle ceil_cycle(const sc_core::sc_time& t) const {
    return Cycle(std::ceil(t / period_ - 1e-9));
  }
  // Delay from now until the start of cycle c (zero if c has started).
  sc_core::sc_time until(Cycle c) const {
    sc_core::sc_time t = at(c), now = sc_core::sc_time_stamp();
    return t > now ? t - now : sc_core::SC_ZERO_TIME;
  }

 private:
  sc_core::sc_time period_;
};

}  // namespace tpu
