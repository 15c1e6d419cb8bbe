// The DRAM model behind the HBM channel's socket: memtest figures on the presets, and the DMA
// engine end to end on a DRAM preset. Each test elaborates its own bench (one elaboration per
// process: run through ctest or with --gtest_filter naming one test).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <systemc>

#include "sim/dram/dram_spec.h"
#include "sim/hbm_channel.h"
#include "sim/memtest.h"
#include "sim/tpu_core.h"

namespace tpu {
namespace {

Config dram_config(const std::string& preset) {
  Config c;
  c.hbm.preset = preset;
  return c;
}

MemtestOptions stream(std::uint64_t bytes, std::uint32_t outstanding) {
  MemtestOptions o;
  o.pattern = "stream";
  o.bytes = bytes;
  o.outstanding = outstanding;
  return o;
}

TEST(Memtest, Hbm2StreamingReadsReachMostOfPeak) {
  // hbm2: 16 pseudo-channels x 8 bytes x 2 beats per 1 ns tCK = 256 GB/s. 512 requests of
  // 64 bytes in flight cover the latency (Little: 256 B/ns x ~30 ns = 7.7 KB << 32 KB), so the
  // buses stream; what is lost: every tREFI (3900 cycles) all banks close for tRP + tRFC
  // (14 + 260) and reopen (tRCD 14 + CL 14 before data): ~300 / 3900 = 7.7%, plus one ACT per
  // row hidden behind other groups' bursts. Expected 85..93.3% (93.3% = 1 - tRFC / tREFI).
  const MemtestResult r = run_memtest(dram_config("hbm2"), stream(4 << 20, 512));
  std::printf("hbm2 stream: %.1f of %.1f GB/s (%.1f%%), row hits %.3f, refresh %.3f, "
              "avg %.1f ns, p99 %.1f ns, %.3f s wall\n",
              r.achieved_gbs, r.peak_gbs, 100 * r.efficiency, r.row_hit_rate, r.refresh_fraction,
              r.avg_latency_ns, r.p99_latency_ns, r.wall_seconds);
  EXPECT_DOUBLE_EQ(r.peak_gbs, 256.0);
  EXPECT_GE(r.efficiency, 0.85);
  EXPECT_LE(r.efficiency, 1.0 - 260.0 / 3900.0);
  // A row holds 32 bursts and the stream reads each row once, from start to end: 1 miss in 32.
  EXPECT_NEAR(r.row_hit_rate, 31.0 / 32.0, 0.01);
  EXPECT_EQ(r.bytes, 4u << 20);
  EXPECT_EQ(r.channels.size(), 8u);
  for (const MemtestChannelResult& ch : r.channels) EXPECT_EQ(ch.bytes, 512u << 10);
  EXPECT_GE(r.p99_latency_ns, r.avg_latency_ns);
}

TEST(Memtest, Hbm2RandomReadsMissRowsAndReachFarLess) {
  // Random 64-byte reads over 8 GiB: each burst finds its bank holding another row
  // (1 in 32768 chance of a hit), so every access pays tRP + tRCD + CL + burst = 44 ns and
  // a bank serves at most one access per tRC = 48 ns; tFAW allows 4 ACTs per 30 ns per PC:
  // 16 PCs x 4 x 32 B / 30 ns = 68 GB/s at most, 27% of peak. Expect well under half of peak
  // and a hit rate near zero.
  MemtestOptions o;
  o.pattern = "random";
  o.bytes = 1 << 20;
  o.outstanding = 512;
  const MemtestResult r = run_memtest(dram_config("hbm2"), o);
  std::printf("hbm2 random: %.1f GB/s (%.1f%%), row hits %.4f, avg %.1f ns, p99 %.1f ns\n",
              r.achieved_gbs, 100 * r.efficiency, r.row_hit_rate, r.avg_latency_ns,
              r.p99_latency_ns);
  EXPECT_LT(r.row_hit_rate, 0.01);
  EXPECT_LE(r.achieved_gbs, 16 * 4 * 32 / 30.0);
  EXPECT_LT(r.efficiency, 0.3);
  EXPECT_GT(r.avg_latency_ns, 14 + 14 + 14 + 2);
}

TEST(Memtest, RefreshCostsAboutRfcOverRefi) {
  // Every pseudo-channel refreshes once per tREFI = 3900 ns and is blocked tRFC = 260 ns each
  // time: 6.7% of the time. Over a run of T ns each PC refreshes floor(T / tREFI) times (the
  // last one may fall after the run): the fraction lies in
  // [(T / tREFI - 1) * tRFC / T, T / tREFI * tRFC / T].
  const MemtestResult r = run_memtest(dram_config("hbm2"), stream(8 << 20, 512));
  const double t = r.simulated_ns, k = t / 3900.0;
  std::printf("hbm2 refresh: %.4f of %.0f ns (tRFC / tREFI = %.4f)\n", r.refresh_fraction, t,
              260.0 / 3900.0);
  EXPECT_GE(r.refresh_fraction, (k - 1) * 260.0 / t);
  EXPECT_LE(r.refresh_fraction, k * 260.0 / t + 1e-9);
  EXPECT_NEAR(r.refresh_fraction, 260.0 / 3900.0, 0.012);
  for (const MemtestChannelResult& ch : r.channels) {
    EXPECT_NEAR(ch.refresh_fraction, r.refresh_fraction, 1e-9);  // refreshes are aligned
  }
}

TEST(Memtest, BandwidthRisesWithOutstandingRequestsUntilItSaturates) {
  // Little's law: bandwidth = in-flight bytes / latency until the buses saturate. One 64-byte
  // request (two 32-byte bursts on two channels, in parallel) at a time takes between a row
  // hit, CL + burst = 16 ns, and a miss, tRCD + CL + burst = 30 ns, so 64 / 30 .. 64 / 16 GB/s
  // (plus up to 1 ns of clock alignment). Four times as many in flight give nearly four times
  // as much; from 256 on the buses are the limit and 1024 gains little.
  const std::vector<std::uint32_t> depths = {1, 4, 16, 64, 256, 1024};
  std::vector<MemtestOptions> runs;
  for (std::uint32_t d : depths) runs.push_back(stream(d < 64 ? 256 << 10 : 4 << 20, d));
  const std::vector<MemtestResult> r = run_memtest_sweep(dram_config("hbm2"), runs);
  for (std::size_t i = 0; i < r.size(); ++i) {
    std::printf("outstanding %4u: %6.1f GB/s, avg latency %.1f ns\n", depths[i],
                r[i].achieved_gbs, r[i].avg_latency_ns);
  }
  EXPECT_GE(r[0].achieved_gbs, 64.0 / 31);
  EXPECT_LE(r[0].achieved_gbs, 64.0 / 16);
  EXPECT_GE(r[1].achieved_gbs, 3 * r[0].achieved_gbs);
  for (std::size_t i = 1; i < r.size(); ++i) EXPECT_GT(r[i].achieved_gbs, r[i - 1].achieved_gbs);
  EXPECT_GE(r[4].efficiency, 0.8);
  EXPECT_LT(r[5].achieved_gbs, 1.1 * r[4].achieved_gbs);
}

TEST(Memtest, Ddr3TwoChannelsStreamNearTheirPeak) {
  // ddr3: two DDR3-2133 channels of 8 bytes x 2 beats per 0.9375 ns = 34.1 GB/s. One command
  // bus per channel and 8 KiB rows; refresh takes tRFC / tREFI = 278 / 8320 = 3.3%.
  const MemtestResult r = run_memtest(dram_config("ddr3"), stream(2 << 20, 256));
  std::printf("ddr3 stream: %.1f of %.1f GB/s (%.1f%%), row hits %.3f\n", r.achieved_gbs,
              r.peak_gbs, 100 * r.efficiency, r.row_hit_rate);
  EXPECT_NEAR(r.peak_gbs, 2 * 8 * 2 / 0.9375, 1e-9);
  EXPECT_GE(r.efficiency, 0.85);
  EXPECT_LE(r.efficiency, 1.0 - 278.0 / 8320.0 + 0.01);
}

TEST(Memtest, MixedReadsAndWritesCostBusTurnarounds) {
  // Half writes, chosen at random: every read/write switch on a bus costs a turnaround
  // (CL + burst + 2 - CWL = 14 cycles after a read, CWL + burst + tWTR_S = 12 after a write),
  // so the same stream moves less than all reads, yet still more than random reads.
  MemtestOptions o = stream(4 << 20, 512);
  o.read_fraction = 0.5;
  const MemtestResult r = run_memtest(dram_config("hbm2"), o);
  std::printf("hbm2 50%% writes: %.1f GB/s (%.1f%%)\n", r.achieved_gbs, 100 * r.efficiency);
  EXPECT_LT(r.efficiency, 0.85);
  EXPECT_GT(r.efficiency, 0.3);
}

TEST(Memtest, RejectsBadOptions) {
  MemtestOptions o;
  o.pattern = "zigzag";
  EXPECT_THROW(run_memtest(dram_config("hbm2"), o), SimError);
}

}  // namespace
}  // namespace tpu
