// The DRAM core without SystemC: presets, address mapping, and one directed test per timing
// rule of the controller. Expected cycles are derived from the preset's fields in comments;
// each test is built so that dropping the rule it names changes the observed cycle.
#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "sim/config/config.h"
#include "sim/dram/address_mapping.h"
#include "sim/dram/dram_controller.h"
#include "sim/dram/dram_spec.h"

namespace tpu::dram {
namespace {

// The hbm2 preset cut down to one pseudo-channel, so every access shares its banks and buses.
// hbm2: tCK 1 ns, CL 14, CWL 4, tRCD 14, tRP 14, tRAS 34, tRC 48, tCCD_S 2, tCCD_L 4,
// tRRD_S 4, tRRD_L 6, tFAW 30, tWR 16, tWTR_S 6, tWTR_L 8, tRTP 4, tRFC 260, tREFI 3900;
// BL4 at 2 beats per tCK: burst = 2 cycles of 32 bytes.
DramSpec one_pc(const char* preset = "hbm2") {
  DramSpec spec = *find_dram_spec(preset);
  spec.org.channels = 1;
  spec.org.pseudo_channels = 1;
  return spec;
}

struct Request {
  std::uint64_t addr;
  std::uint64_t bytes;
  bool write;
  DramCycle arrival;
};

// The tests address banks through this mapping: with one pseudo-channel it keeps two bursts
// of a row together, then rotates over the bank groups.
struct Bench {
  explicit Bench(const DramSpec& s, std::uint32_t queue_depth = 32,
                 const std::string& order = "ro_ba_co_bg_pc_ch_co1")
      : spec(s), mapping(spec, order), controller(spec, mapping, queue_depth) {
    controller.set_trace(&trace);
  }

  std::uint64_t addr(std::uint32_t bank_group, std::uint32_t bank, std::uint64_t row,
                     std::uint32_t column = 0) const {
    DramAddress a;
    a.bank_group = bank_group;
    a.bank = bank;
    a.row = row;
    a.column = column;
    return mapping.unmap(a);
  }

  // Runs requests (sorted by arrival) to completion; returns each one's completion cycle.
  std::vector<DramCycle> run(const std::vector<Request>& requests) {
    std::vector<DramCycle> done(requests.size(), kNever);
    std::size_t next = 0, finished = 0;
    std::vector<Completion> completions;
    while (finished < requests.size()) {
      DramCycle now = controller.next_event();
      if (next < requests.size()) now = std::min(now, requests[next].arrival);
      if (now == kNever) throw std::logic_error("controller stuck");
      for (; next < requests.size() && requests[next].arrival == now; ++next) {
        const Request& r = requests[next];
        if (!controller.can_accept(r.addr, r.bytes)) throw std::logic_error("queue full");
        controller.enqueue(next, r.addr, r.bytes, r.write, now);
      }
      completions.clear();
      controller.step(now, completions);
      for (const Completion& c : completions) {
        done[c.tag] = c.done;
        ++finished;
      }
    }
    return done;
  }

  // Cycle of the n-th issued command of kind `c` (0-based), or kNever.
  DramCycle issued(Command c, int n = 0) const {
    for (const CommandRecord& r : trace) {
      if (r.command == c && n-- == 0) return r.cycle;
    }
    return kNever;
  }

  DramSpec spec;
  AddressMapping mapping;
  DramController controller;
  std::vector<CommandRecord> trace;
};

constexpr std::uint64_t kBurst = 32;  // hbm2 burst bytes

TEST(DramSpec, PresetsDerivePeakBandwidthAndCapacity) {
  // Per pseudo-channel bus bytes * beats per tCK / tCK, times the pseudo-channel count.
  EXPECT_DOUBLE_EQ(find_dram_spec("hbm2")->peak_gbs(), 16 * 8 * 2 / 1.0);      // 256 GB/s
  EXPECT_DOUBLE_EQ(find_dram_spec("hbm2e")->peak_gbs(), 16 * 8 * 2 / 0.625);   // 409.6
  EXPECT_DOUBLE_EQ(find_dram_spec("hbm3")->peak_gbs(), 32 * 4 * 4 / 0.625);    // 819.2
  EXPECT_DOUBLE_EQ(find_dram_spec("ddr3")->peak_gbs(), 2 * 8 * 2 / 0.9375);    // 34.13
  // 16 PCs * 16 banks * 32768 rows * 1 KiB = 8 GiB; 2 * 8 * 65536 * 8 KiB = 8 GiB.
  EXPECT_EQ(find_dram_spec("hbm2")->capacity_bytes(), 8ull << 30);
  EXPECT_EQ(find_dram_spec("ddr3")->capacity_bytes(), 8ull << 30);
  EXPECT_EQ(find_dram_spec("ideal"), nullptr);
  for (const char* name : {"hbm2", "hbm2e", "hbm3", "ddr3"}) {
    SCOPED_TRACE(name);
    const DramSpec& s = *find_dram_spec(name);
    EXPECT_GT(s.source.size(), 20u);
    EXPECT_EQ(s.burst_bytes(), 32u + (s.name == "ddr3" ? 32u : 0u));
    EXPECT_LE(s.burst_cycles(), s.timing.ccd_s);  // bursts can stream back to back
    EXPECT_GE(s.timing.rc + 1, s.timing.ras + s.timing.rp);
  }
}

TEST(AddressMapping, DefaultSpreadsConsecutiveBurstsOverChannelsThenBankGroups) {
  const DramSpec spec = *find_dram_spec("hbm2");
  const AddressMapping m(spec, Config{}.hbm.address_mapping);
  // Bits: 5 byte offset (32-byte burst), ch 3, pc 1, bg 2, co 5, ba 2, row above.
  EXPECT_EQ(m.map(31).channel, 0u);
  EXPECT_EQ(m.map(32).channel, 1u);  // next burst: next channel
  EXPECT_EQ(m.map(8 * 32).pseudo_channel, 1u);
  EXPECT_EQ(m.map(16 * 32).bank_group, 1u);
  EXPECT_EQ(m.map(64 * 32).column, 1u);  // every PC and group visited once
  EXPECT_EQ(m.map(64 * 32 * 32).bank, 1u);
  EXPECT_EQ(m.map(64 * 32 * 32 * 4).row, 1u);
  std::set<std::uint32_t> channels;
  for (std::uint64_t a = 0; a < 8 * 32; a += 32) channels.insert(m.map(a).channel);
  EXPECT_EQ(channels.size(), 8u);
  for (std::uint64_t a : {0ull, 4096ull, 123456ull * 32, (5ull << 33) + 96}) {
    EXPECT_EQ(m.unmap(m.map(a)), a);
  }
}

// map() looks fields up per 8 bits of the burst index; compare it with the bit layout written
// out by hand, over addresses that set bits in every field (both table chunks and the row).
TEST(AddressMapping, MapsRandomAddressesAsTheBitLayoutSays) {
  const DramSpec spec = *find_dram_spec("hbm2");
  const AddressMapping plain(spec, "ro_ba_co_bg_pc_ch");
  const AddressMapping split(spec, "ro_ba_co_bg_pc_ch_co1");  // column bit 0 below the channel
  std::uint64_t x = 12345;
  for (int i = 0; i < 2000; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    const std::uint64_t a = x >> 20;  // 44-bit addresses
    const DramAddress p = plain.map(a);
    EXPECT_EQ(p.channel, (a >> 5) & 7);
    EXPECT_EQ(p.pseudo_channel, (a >> 8) & 1);
    EXPECT_EQ(p.bank_group, (a >> 9) & 3);
    EXPECT_EQ(p.column, (a >> 11) & 31);
    EXPECT_EQ(p.bank, (a >> 16) & 3);
    EXPECT_EQ(p.row, a >> 18);
    const DramAddress s = split.map(a);
    EXPECT_EQ(s.column, ((a >> 5) & 1) | ((a >> 12) & 15) << 1);
    EXPECT_EQ(s.channel, (a >> 6) & 7);
    EXPECT_EQ(s.pseudo_channel, (a >> 9) & 1);
    EXPECT_EQ(s.bank_group, (a >> 10) & 3);
    EXPECT_EQ(s.bank, (a >> 16) & 3);
    EXPECT_EQ(s.row, a >> 18);
  }
}

// The controller admits a request without mapping it while every queue has room for
// ceil(k / 2^spread_bits) of its k bursts; check that bound by counting runs of bursts.
TEST(AddressMapping, SpreadBitsBoundTheBurstsOfARunInOnePseudoChannel) {
  const DramSpec spec = *find_dram_spec("hbm2");  // ch 3 bits, pc 1 bit
  struct Case {
    const char* order;
    unsigned spread;  // the lowest fields that are ch or pc, in bits
  };
  for (const Case& c : {Case{"ro_ba_co_bg_pc_ch", 4}, Case{"ro_ba_co_bg_ch_pc", 4},
                        Case{"ro_ba_co_pc_bg_ch", 3}, Case{"ro_ba_co_bg_ch2_pc_ch1", 4},
                        Case{"ro_ba_co_ch2_bg_pc_ch1", 2}, Case{"ro_ba_co_bg_pc_ch_co1", 0},
                        Case{"ro_ch_pc_ba_co_bg", 0}}) {
    SCOPED_TRACE(c.order);
    const AddressMapping m(spec, c.order);
    EXPECT_EQ(m.spread_bits(), c.spread);
    auto most_in_one_pc = [&m](std::uint64_t first, std::uint64_t k) {
      std::array<std::uint64_t, 16> per_pc{};
      for (std::uint64_t b = first; b < first + k; ++b) {
        const DramAddress a = m.map(b * 32);
        ++per_pc[a.channel * 2 + a.pseudo_channel];
      }
      return *std::max_element(per_pc.begin(), per_pc.end());
    };
    std::mt19937_64 rng(7);
    for (int i = 0; i < 300; ++i) {
      const std::uint64_t first = rng() % (1ull << 30);
      const std::uint64_t k = 1 + rng() % 70;
      EXPECT_LE(most_in_one_pc(first, k), ((k - 1) >> c.spread) + 1) << first << " + " << k;
      // Where the low bits choose the whole pseudo-channel the bound is met: the first and
      // last of 2^spread + 1 bursts share one. (An overstated spread fails the check above.)
      if (c.spread == 4) {
        EXPECT_EQ(most_in_one_pc(first, 17), 2u) << first;
      }
    }
  }
}

TEST(AddressMapping, RejectsBadOrderStrings) {
  const DramSpec spec = *find_dram_spec("hbm2");
  EXPECT_THROW(AddressMapping(spec, "ba_ro_co_bg_pc_ch"), std::invalid_argument);  // ro first
  EXPECT_THROW(AddressMapping(spec, "ro_ba_co_bg_pc"), std::invalid_argument);     // no ch
  EXPECT_THROW(AddressMapping(spec, "ro_ba_co_bg_pc_ch_xx"), std::invalid_argument);
  EXPECT_THROW(AddressMapping(spec, "ro_ba_co_bg_pc_ch_co9"), std::invalid_argument);
  EXPECT_NO_THROW(AddressMapping(spec, "ro_co_ba_bg_pc_ch"));
}

TEST(DramTiming, ClosedBankCostsRcdClBurstAndOpenRowHitClBurst) {
  Bench b(one_pc());
  // Closed bank at 0: ACT 0, RD at tRCD 14, data done 14 + CL 14 + burst 2 = 30.
  // Same row at 100: RD 100, done 100 + CL 14 + burst 2 = 116.
  const auto done = b.run({{b.addr(0, 0, 5), kBurst, false, 0}, {b.addr(0, 0, 5, 2), kBurst,
                                                                  false, 100}});
  EXPECT_EQ(done[0], 14u + 14 + 2);
  EXPECT_EQ(done[1], 100u + 14 + 2);
  EXPECT_EQ(b.controller.stats(0).row_misses, 1u);
  EXPECT_EQ(b.controller.stats(0).row_hits, 1u);
}

TEST(DramTiming, RowConflictCostsRpRcdClBurst) {
  Bench b(one_pc());
  // Row 5 open since 0 (tRAS and tRTP long over at 100). Row 6 at 100: PRE 100, ACT at
  // 100 + tRP 14 = 114, RD at 114 + tRCD 14 = 128, done 128 + CL 14 + burst 2 = 144.
  const auto done =
      b.run({{b.addr(0, 0, 5), kBurst, false, 0}, {b.addr(0, 0, 6), kBurst, false, 100}});
  EXPECT_EQ(done[1], 100u + 14 + 14 + 14 + 2);
  EXPECT_EQ(b.controller.stats(0).row_conflicts, 1u);
}

TEST(DramTiming, PrechargeWaitsForRas) {
  DramSpec spec = one_pc();
  spec.timing.rc = 1;  // so only tRAS holds the PRE back
  Bench b(spec);
  // ACT row 5 at 0, RD at 14 (tRTP allows PRE at 18); row 6 arrives at 1 but PRE waits for
  // tRAS 34; ACT 34 + tRP 14 = 48; RD 62; done 62 + 16 = 78. Without tRAS: PRE 18, done 62.
  const auto done =
      b.run({{b.addr(0, 0, 5), kBurst, false, 0}, {b.addr(0, 0, 6), kBurst, false, 1}});
  EXPECT_EQ(b.issued(Command::kPrecharge), 34u);
  EXPECT_EQ(done[1], 34u + 14 + 14 + 14 + 2);
}

TEST(DramTiming, ActivateWaitsForRcSameBank) {
  DramSpec spec = one_pc();
  spec.timing.ras = 20;  // tRAS + tRP = 34 < tRC 48: tRC binds
  Bench b(spec);
  // PRE at max(tRAS 20, RD 14 + tRTP 4) = 20; ACT at max(20 + tRP 14, tRC 48) = 48;
  // RD 62; done 78. Without tRC: ACT 34, done 64.
  const auto done =
      b.run({{b.addr(0, 0, 5), kBurst, false, 0}, {b.addr(0, 0, 6), kBurst, false, 1}});
  EXPECT_EQ(b.issued(Command::kActivate, 1), 48u);
  EXPECT_EQ(done[1], 48u + 14 + 14 + 2);
}

TEST(DramTiming, ActivatesRespectRrdLongInGroupAndShortAcross) {
  // Two closed banks at 0. Same bank group: second ACT at tRRD_L 6, RD at 20 (tCCD_L from 14
  // is 18), done 20 + 16 = 36. Different groups: ACT at tRRD_S 4, RD 18, done 34.
  Bench same(one_pc());
  const auto d1 =
      same.run({{same.addr(0, 0, 1), kBurst, false, 0}, {same.addr(0, 1, 1), kBurst, false, 0}});
  EXPECT_EQ(same.issued(Command::kActivate, 1), 6u);
  EXPECT_EQ(d1[1], 6u + 14 + 14 + 2);
  Bench across(one_pc());
  const auto d2 = across.run(
      {{across.addr(0, 0, 1), kBurst, false, 0}, {across.addr(1, 0, 1), kBurst, false, 0}});
  EXPECT_EQ(across.issued(Command::kActivate, 1), 4u);
  EXPECT_EQ(d2[1], 4u + 14 + 14 + 2);
}

TEST(DramTiming, FifthActivateWaitsForFaw) {
  Bench b(one_pc());
  // Five closed banks: groups 0, 1, 2, 3, then group 0 again. ACTs at 0, 4, 8, 12 (tRRD_S);
  // the fifth may not be in the same tFAW window as the first: ACT at 0 + 30 = 30 (tRRD
  // alone would allow 16). Its RD at 44, done 44 + 16 = 60.
  const auto done = b.run({{b.addr(0, 0, 1), kBurst, false, 0},
                           {b.addr(1, 0, 1), kBurst, false, 0},
                           {b.addr(2, 0, 1), kBurst, false, 0},
                           {b.addr(3, 0, 1), kBurst, false, 0},
                           {b.addr(0, 1, 1), kBurst, false, 0}});
  EXPECT_EQ(b.issued(Command::kActivate, 3), 12u);
  EXPECT_EQ(b.issued(Command::kActivate, 4), 30u);
  EXPECT_EQ(done[4], 30u + 14 + 14 + 2);
}

// Opens row 1 of banks (0,0), (0,1), (1,0) by cycle 100, so later accesses there are hits.
std::vector<Request> open_rows(const Bench& b) {
  return {{b.addr(0, 0, 1), kBurst, false, 0},
          {b.addr(0, 1, 1), kBurst, false, 0},
          {b.addr(1, 0, 1), kBurst, false, 0}};
}

TEST(DramTiming, ColumnCommandsRespectCcdLongInGroupAndShortAcross) {
  // Two hits at 200. Same bank group: RD 200 and 200 + tCCD_L 4, done 204 + 16 = 220.
  // Different groups: 200 and 200 + tCCD_S 2, done 218.
  Bench same(one_pc());
  auto reqs = open_rows(same);
  reqs.push_back({same.addr(0, 0, 1, 2), kBurst, false, 200});
  reqs.push_back({same.addr(0, 1, 1, 2), kBurst, false, 200});
  EXPECT_EQ(same.run(reqs)[4], 200u + 4 + 14 + 2);
  Bench across(one_pc());
  reqs = open_rows(across);
  reqs.push_back({across.addr(0, 0, 1, 2), kBurst, false, 200});
  reqs.push_back({across.addr(1, 0, 1, 2), kBurst, false, 200});
  EXPECT_EQ(across.run(reqs)[4], 200u + 2 + 14 + 2);
}

TEST(DramTiming, RequestLargerThanBurstCompletesWithItsLastBurst) {
  Bench b(one_pc());
  auto reqs = open_rows(b);
  // 64 bytes = two bursts of one row (same bank): RD 200 and 204 (tCCD_L), done 204 + 16.
  reqs.push_back({b.addr(0, 0, 1, 2), 2 * kBurst, false, 200});
  EXPECT_EQ(b.run(reqs)[3], 200u + 4 + 14 + 2);
  EXPECT_EQ(b.controller.stats(0).reads, 3u + 2);
}

TEST(DramTiming, WriteThenReadRespectsWtrLongInGroupAndShortAcross) {
  // WR hit at 200: data done 200 + CWL 4 + burst 2 = 206. A read in the same group may issue
  // at 206 + tWTR_L 8 = 214 (done 230); in another group at 206 + tWTR_S 6 = 212 (done 228).
  Bench same(one_pc());
  auto reqs = open_rows(same);
  reqs.push_back({same.addr(0, 0, 1, 2), kBurst, true, 200});
  reqs.push_back({same.addr(0, 1, 1, 2), kBurst, false, 200});
  const auto d1 = same.run(reqs);
  EXPECT_EQ(d1[3], 200u + 4 + 2);
  EXPECT_EQ(d1[4], 206u + 8 + 14 + 2);
  Bench across(one_pc());
  reqs = open_rows(across);
  reqs.push_back({across.addr(0, 0, 1, 2), kBurst, true, 200});
  reqs.push_back({across.addr(1, 0, 1, 2), kBurst, false, 200});
  EXPECT_EQ(across.run(reqs)[4], 206u + 6 + 14 + 2);
}

TEST(DramTiming, ReadThenWriteWaitsForBusTurnaround) {
  Bench b(one_pc());
  auto reqs = open_rows(b);
  // RD hit at 200; WR in another group no earlier than 200 + CL 14 + burst 2 + 2 - CWL 4 =
  // 214; done 214 + CWL 4 + burst 2 = 220 (tCCD_S alone would give 202 and 208).
  reqs.push_back({b.addr(0, 0, 1, 2), kBurst, false, 200});
  reqs.push_back({b.addr(1, 0, 1, 2), kBurst, true, 200});
  EXPECT_EQ(b.run(reqs)[4], 200u + 14 + 2 + 2 - 4 + 4 + 2);
}

TEST(DramTiming, PrechargeAfterReadWaitsForRtp) {
  Bench b(one_pc());
  // At 100 a hit to row 1 and a conflict to row 2 of the same bank arrive. FR-FCFS reads the
  // hit first (RD 100); PRE waits tRTP 4: 104; ACT 118; RD 132; done 148 (PRE at 101 without
  // tRTP: done 145).
  const auto done = b.run({{b.addr(0, 0, 1), kBurst, false, 0},
                           {b.addr(0, 0, 2), kBurst, false, 100},
                           {b.addr(0, 0, 1, 2), kBurst, false, 100}});
  EXPECT_EQ(done[2], 100u + 14 + 2);
  EXPECT_EQ(b.issued(Command::kPrecharge), 104u);
  EXPECT_EQ(done[1], 104u + 14 + 14 + 14 + 2);
}

TEST(DramTiming, PrechargeAfterWriteWaitsForWriteRecovery) {
  Bench b(one_pc());
  // WR hit at 100, data done 106; PRE for the conflicting read waits tWR 16: 122; ACT 136;
  // RD 150; done 166.
  const auto done = b.run({{b.addr(0, 0, 1), kBurst, false, 0},
                           {b.addr(0, 0, 1, 2), kBurst, true, 100},
                           {b.addr(0, 0, 2), kBurst, false, 100}});
  EXPECT_EQ(done[1], 100u + 4 + 2);
  EXPECT_EQ(b.issued(Command::kPrecharge), 106u + 16);
  EXPECT_EQ(done[2], 122u + 14 + 14 + 14 + 2);
}

TEST(DramTiming, RefreshClosesBanksAndBlocksForRfc) {
  Bench b(one_pc());
  // Row 1 open since 0. A hit arriving at tREFI 3900 finds a refresh due: PRE 3900, REF at
  // 3900 + tRP 14 = 3914, banks blocked until 3914 + tRFC 260 = 4174: ACT 4174, RD 4188,
  // done 4204 (a plain hit would be done at 3916).
  const auto done =
      b.run({{b.addr(0, 0, 1), kBurst, false, 0}, {b.addr(0, 0, 1, 2), kBurst, false, 3900}});
  EXPECT_EQ(b.issued(Command::kRefresh), 3914u);
  EXPECT_EQ(done[1], 3914u + 260 + 14 + 14 + 2);
  EXPECT_EQ(b.controller.stats(0).refreshes, 1u);
  EXPECT_EQ(b.controller.stats(0).refresh_cycles, 260u);
}

TEST(DramTiming, IdleRefreshesAreReplayedWhenWorkArrives) {
  Bench b(one_pc());
  // Idle from 30 to 10000: refreshes were due at 3900 (row 1 open: PRE 3900, REF 3914) and
  // 7800 (REF 7800). The read at 10000 finds the bank closed: ACT, done 10000 + 30.
  const auto done =
      b.run({{b.addr(0, 0, 1), kBurst, false, 0}, {b.addr(0, 0, 1, 2), kBurst, false, 10000}});
  EXPECT_EQ(b.issued(Command::kRefresh, 0), 3914u);
  EXPECT_EQ(b.issued(Command::kRefresh, 1), 7800u);
  EXPECT_EQ(done[1], 10000u + 14 + 14 + 2);
  EXPECT_EQ(b.controller.stats(0).row_misses, 2u);
}

TEST(DramTiming, YoungerRowHitGoesBeforeOlderConflict) {
  Bench b(one_pc());
  // FR-FCFS: the older conflict (row 2) arrives first, the hit (row 1) with it; the hit is
  // served at 100 (done 116) and the row stays open for it.
  const auto done = b.run({{b.addr(0, 0, 1), kBurst, false, 0},
                           {b.addr(0, 0, 2), kBurst, false, 100},
                           {b.addr(0, 0, 1, 4), kBurst, false, 100}});
  EXPECT_EQ(done[2], 116u);
  EXPECT_GT(done[1], done[2]);
}

TEST(DramTiming, SingleCommandBusSerialisesRowAndColumnCommands) {
  DramSpec spec = one_pc("ddr3");
  // ddr3: tCK 0.9375 ns, CL 13, tRCD 13, tCCD 4, burst 8 beats / 2 = 4 cycles of 64 bytes.
  Bench b(spec);
  // Bank 0 row 1 opened at 0. At 100 a hit to bank 0 and a read of closed bank 1: the RD
  // takes the command bus at 100, the ACT follows at 101, its RD at 114, done 114 + 13 + 4 =
  // 131 (with separate buses: ACT 100, done 130).
  const auto done = b.run({{b.addr(0, 0, 1), 64, false, 0},
                           {b.addr(0, 0, 1, 2), 64, false, 100},
                           {b.addr(0, 1, 1), 64, false, 100}});
  EXPECT_EQ(done[1], 100u + 13 + 4);
  EXPECT_EQ(b.issued(Command::kActivate, 1), 101u);
  EXPECT_EQ(done[2], 101u + 13 + 13 + 4);
}

TEST(DramQueue, FullQueueRefusesUntilAColumnCommandIssues) {
  Bench b(one_pc(), 4);
  // Two 64-byte requests fill the 4 entries of the queue.
  b.controller.enqueue(0, b.addr(0, 0, 1), 64, false, 0);
  b.controller.enqueue(1, b.addr(1, 0, 1), 64, false, 0);
  EXPECT_FALSE(b.controller.can_accept(b.addr(2, 0, 1), kBurst));
  std::vector<Completion> done;
  DramCycle now = 0;
  // ACTs at 0 and 4, the first RD at tRCD 14 frees an entry.
  while (b.controller.next_event() <= 14) {
    now = b.controller.next_event();
    b.controller.step(now, done);
  }
  EXPECT_EQ(now, 14u);
  EXPECT_TRUE(b.controller.can_accept(b.addr(2, 0, 1), kBurst));
  EXPECT_FALSE(b.controller.can_accept(b.addr(2, 0, 1), 2 * kBurst));
}

TEST(DramQueue, RequestLargerThanTheQueueStillGoesThroughAnEmptyQueue) {
  Bench b(one_pc(), 4);
  // 8 bursts in one PC; the queue holds 4 but is empty, so the request is taken.
  EXPECT_TRUE(b.controller.can_accept(0, 8 * kBurst));
  const auto done = b.run({{0, 8 * kBurst, false, 0}});
  EXPECT_GT(done[0], 0u);
}

// Random request streams for the stepping test: runs of consecutive bursts (row hits), jumps
// to random rows and banks (misses and conflicts), reads and writes, 1..4 bursts each, with
// arrival gaps from none to idle periods longer than a refresh interval.
std::vector<Request> random_stream(std::mt19937_64& rng, std::uint64_t capacity, int n) {
  std::vector<Request> requests;
  std::uint64_t addr = 0;
  DramCycle arrival = 0;
  for (int i = 0; i < n; ++i) {
    const std::uint64_t jump = rng() % 8;
    if (jump == 0) addr = (rng() % (capacity / kBurst)) * kBurst;        // anywhere
    if (jump == 1) addr = (addr + (rng() % 64) * 1024 * kBurst) % capacity;  // another row
    const std::uint64_t bytes = kBurst * (1 + rng() % 4) - (rng() % 2) * (rng() % kBurst);
    if (addr + bytes > capacity) addr = 0;
    const bool write = rng() % 4 == 0;
    const std::uint64_t gap = rng() % 16;
    arrival += gap < 8 ? 0 : gap < 15 ? gap : 2000 + rng() % 6000;
    requests.push_back({addr, bytes, write, arrival});
    addr += bytes;
  }
  return requests;
}

// What a run produced, in order: every completion with the cycle it was reported at, every
// command, and the per-PC counters.
struct RunLog {
  std::vector<std::array<DramCycle, 3>> completions;  // step cycle, tag, done
  std::vector<CommandRecord> trace;
  std::vector<PseudoChannelStats> stats;
};

// Drives the controller as the HBM channel does: requests join in arrival order, a refused
// one holds back the rest and is retried after each step. The reference visits every cycle
// and steps again whenever a request joins; the event-driven run visits only cycles where
// next_event() or an arrival falls, and steps again only when next_event() says so.
RunLog run_stream(const DramSpec& spec, const std::vector<Request>& requests,
                   std::uint32_t queue_depth, bool every_cycle) {
  AddressMapping mapping(spec, "ro_ba_co_bg_pc_ch");
  DramController controller(spec, mapping, queue_depth);
  RunLog out;
  controller.set_trace(&out.trace);
  controller.set_step_every_cycle(every_cycle);
  std::size_t next = 0, finished = 0;
  std::vector<Completion> done;
  auto admit = [&](DramCycle now) {
    bool any = false;
    for (; next < requests.size() && requests[next].arrival <= now; ++next) {
      const Request& r = requests[next];
      if (!controller.can_accept(r.addr, r.bytes)) break;
      controller.enqueue(next, r.addr, r.bytes, r.write, now);
      any = true;
    }
    return any;
  };
  DramCycle now = 0;
  while (finished < requests.size()) {
    admit(now);
    do {
      done.clear();
      controller.step(now, done);
      for (const Completion& c : done) out.completions.push_back({now, c.tag, c.done});
      finished += done.size();
    } while (admit(now) && (every_cycle || controller.next_event() <= now));
    if (finished == requests.size()) break;
    DramCycle then = controller.next_event();
    if (next < requests.size()) then = std::min(then, std::max(requests[next].arrival, now + 1));
    if (then == kNever) throw std::logic_error("controller stuck");
    now = every_cycle ? now + 1 : std::max(then, now + 1);
  }
  controller.catch_up(now);
  for (std::uint32_t pc = 0; pc < spec.pseudo_channel_count(); ++pc)
    out.stats.push_back(controller.stats(pc));
  return out;
}

// The event-driven stepping skips only cycles where nothing can issue: over random streams on
// every DRAM preset, with queues that back-pressure and queues that do not, every request
// completes at the same cycle, reported at the same step, behind the same commands, with the
// same counters, as when every pseudo-channel is stepped and fully scanned every cycle.
TEST(DramStepping, SkippingIdleCyclesMovesNoCommandOnRandomStreams) {
  std::mt19937_64 rng(13);
  int compared = 0;
  for (const char* preset : {"hbm2", "hbm2e", "hbm3", "ddr3"}) {
    for (std::uint32_t channels : {1u, 2u}) {
      DramSpec spec = *find_dram_spec(preset);
      spec.org.channels = channels;
      for (std::uint32_t queue_depth : {4u, 32u}) {
        const auto requests =
            random_stream(rng, std::min<std::uint64_t>(spec.capacity_bytes(), 1ull << 30), 3000);
        const RunLog stepped = run_stream(spec, requests, queue_depth, true);
        const RunLog fast = run_stream(spec, requests, queue_depth, false);
        SCOPED_TRACE(std::string(preset) + ", " + std::to_string(channels) + " channels, queue " +
                     std::to_string(queue_depth));
        ASSERT_EQ(stepped.completions.size(), requests.size());
        ASSERT_EQ(fast.completions, stepped.completions);
        ASSERT_EQ(fast.trace.size(), stepped.trace.size());
        for (std::size_t i = 0; i < fast.trace.size(); ++i) {
          const CommandRecord& f = fast.trace[i];
          const CommandRecord& s = stepped.trace[i];
          ASSERT_TRUE(f.command == s.command && f.cycle == s.cycle &&
                      f.pseudo_channel == s.pseudo_channel && f.bank == s.bank && f.row == s.row)
              << "command " << i << ": " << to_string(f.command) << " at " << f.cycle
              << " vs " << to_string(s.command) << " at " << s.cycle;
        }
        for (std::size_t pc = 0; pc < fast.stats.size(); ++pc) {
          const PseudoChannelStats& f = fast.stats[pc];
          const PseudoChannelStats& s = stepped.stats[pc];
          EXPECT_EQ(f.row_hits, s.row_hits);
          EXPECT_EQ(f.row_misses, s.row_misses);
          EXPECT_EQ(f.row_conflicts, s.row_conflicts);
          EXPECT_EQ(f.refreshes, s.refreshes);
          EXPECT_EQ(f.access_latency_cycles, s.access_latency_cycles);
        }
        ++compared;
      }
    }
  }
  EXPECT_EQ(compared, 16);
}

}  // namespace
}  // namespace tpu::dram
