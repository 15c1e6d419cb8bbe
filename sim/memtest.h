#pragma once
// Memory test: drives an HbmChannel alone with a traffic generator and measures bandwidth,
// latency and row-buffer behaviour.
//
// The generator keeps up to `outstanding` requests in flight, sending the next one as soon as
// a slot is free and the channel has accepted the previous one (END_REQ), all at the same
// instant if the channel allows: it measures the memory, not an initiator's issue rate. The
// channel's own request limit is raised to `outstanding` so the generator's window binds.
// Time runs from the first request (t = 0) to the last response; bandwidth is the bytes moved
// over that time. Latency is BEGIN_REQ to BEGIN_RESP, per request, so it includes queueing
// and back-pressure.
//
// Elaborates SystemC modules: call once per process (run_memtest_sweep runs several
// measurements in one elaboration, one after the other on the same channel).
#include <cstdint>
#include <string>
#include <vector>

#include "sim/config/config.h"
#include "sim/stats.h"

namespace tpu {

struct MemtestOptions {
  std::string pattern = "stream";  // stream | random | strided
  std::uint64_t bytes = 64 << 20;  // total bytes requested
  double read_fraction = 1.0;      // probability that a request is a read
  std::uint64_t stride = 4096;     // strided: bytes between consecutive request addresses
  std::uint32_t outstanding = 256;  // requests in flight at most (enough to cover HBM2 latency)
  std::uint32_t request_bytes = 64;
  std::uint64_t seed = 1;          // random addresses and read/write choice
};

struct MemtestChannelResult {
  std::uint32_t channel = 0;
  std::uint64_t bytes = 0;
  double achieved_gbs = 0;
  double row_hit_rate = 0;
  double avg_latency_ns = 0;    // per burst access: arrival to data done
  double refresh_fraction = 0;  // of the channel's pseudo-channel time spent in tRFC
};

struct MemtestResult {
  std::string preset;
  double peak_gbs = 0;       // 0 when unbounded (ideal)
  double achieved_gbs = 0;
  double efficiency = 0;     // achieved / peak (0 when the peak is unbounded)
  double avg_latency_ns = 0;
  double p99_latency_ns = 0;
  double row_hit_rate = 0;   // DRAM presets: hits / burst accesses
  double refresh_fraction = 0;  // DRAM presets: tRFC time / (pseudo-channels x run time)
  std::uint64_t requests = 0;
  std::uint64_t bytes = 0;
  double simulated_ns = 0;
  double wall_seconds = 0;   // host time of the simulation
  std::vector<MemtestChannelResult> channels;  // DRAM presets only
};

// Throws SimError for bad options (unknown pattern, zero sizes, read_fraction outside [0, 1]).
MemtestResult run_memtest(const Config& config, const MemtestOptions& options);
std::vector<MemtestResult> run_memtest_sweep(const Config& config,
                                             const std::vector<MemtestOptions>& runs);

}  // namespace tpu
