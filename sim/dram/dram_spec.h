#pragma once
// DRAM device presets: organisation and timing as declarative tables, one row per preset, and
// where every number comes from. Header-only and SystemC-free so the config layer can derive a
// preset's peak bandwidth without linking the simulator.
//
// Units: every timing is in command-clock cycles (tCK) except tck_ns. A column access moves
// `burst_length` beats on the pseudo-channel's data bus, `beats_per_clock` beats per tCK
// (2 for DDR signalling, 4 for HBM3 whose data runs at twice the command clock's DDR rate), so
// one burst occupies the bus burst_length / beats_per_clock cycles.
#include <cstdint>
#include <string>
#include <vector>

namespace tpu::dram {

struct Organization {
  std::uint32_t channels = 1;         // independent channels of the device (stack or DIMMs)
  std::uint32_t pseudo_channels = 1;  // per channel; each has its own banks and data bus
  std::uint32_t bank_groups = 1;      // per pseudo-channel (1 when the device has none)
  std::uint32_t banks_per_group = 1;
  std::uint32_t rows = 1;             // per bank
  std::uint32_t row_bytes = 1;        // page: bytes one ACT opens in one pseudo-channel
  std::uint32_t bus_bits = 8;         // data bus width of one pseudo-channel
  std::uint32_t burst_length = 1;     // beats per column access
  std::uint32_t beats_per_clock = 2;  // data beats per tCK
  bool dual_command_bus = false;      // row (ACT/PRE/REF) and column (RD/WR) buses apart (HBM)
};

struct Timing {
  double tck_ns = 1.0;
  std::uint32_t cl = 0;     // RD to first data beat
  std::uint32_t cwl = 0;    // WR to first data beat
  std::uint32_t rcd = 0;    // ACT to RD/WR, same bank
  std::uint32_t rp = 0;     // PRE to ACT (or REF), same bank
  std::uint32_t ras = 0;    // ACT to PRE, same bank
  std::uint32_t rc = 0;     // ACT to ACT, same bank
  std::uint32_t ccd_s = 0;  // RD to RD / WR to WR, different bank group
  std::uint32_t ccd_l = 0;  // RD to RD / WR to WR, same bank group
  std::uint32_t rrd_s = 0;  // ACT to ACT, different bank group
  std::uint32_t rrd_l = 0;  // ACT to ACT, same bank group
  std::uint32_t faw = 0;    // window holding at most four ACTs (per pseudo-channel)
  std::uint32_t wr = 0;     // end of write data to PRE, same bank (write recovery)
  std::uint32_t wtr_s = 0;  // end of write data to RD, different bank group
  std::uint32_t wtr_l = 0;  // end of write data to RD, same bank group
  std::uint32_t rtp = 0;    // RD to PRE, same bank
  std::uint32_t rfc = 0;    // REF to ACT: the pseudo-channel's banks are blocked
  std::uint32_t refi = 0;   // interval between REFs
};

struct DramSpec {
  std::string name;
  Organization org;
  Timing timing;
  std::string source;  // where the organisation and timing numbers come from

  std::uint32_t burst_bytes() const { return org.bus_bits / 8 * org.burst_length; }
  std::uint32_t burst_cycles() const { return org.burst_length / org.beats_per_clock; }
  std::uint32_t columns() const { return org.row_bytes / burst_bytes(); }  // accesses per row
  std::uint32_t banks() const { return org.bank_groups * org.banks_per_group; }  // per PC
  std::uint32_t pseudo_channel_count() const { return org.channels * org.pseudo_channels; }
  // Every pseudo-channel's data bus busy every cycle, in bytes per ns (GB/s).
  double peak_gbs() const {
    return double(pseudo_channel_count()) * org.bus_bits / 8.0 * org.beats_per_clock /
           timing.tck_ns;
  }
  std::uint64_t capacity_bytes() const {
    return std::uint64_t(pseudo_channel_count()) * banks() * org.rows * org.row_bytes;
  }
};

struct NamedOrganization {
  const char* name;
  Organization org;
};

struct NamedTiming {
  const char* name;
  Timing timing;
  const char* source;
};

// Per pseudo-channel: HBM2/HBM2E run a 128-bit channel as two 64-bit pseudo-channels with
// BL4; HBM3 runs a 64-bit channel as two 32-bit pseudo-channels with BL8 at 4 beats per tCK.
// DDR3 is one 64-bit DIMM channel of x8 chips (8 KiB page), no bank groups, BL8.
// clang-format off
inline const NamedOrganization kOrganizations[] = {
  //  name     {ch  pc  bg  ba  rows    row_B  bus  BL  beats  dual_cmd}
  {"hbm2",     { 8,  2,  4,  4, 32768,  1024,  64,  4,  2,    true}},
  {"hbm2e",    { 8,  2,  4,  4, 65536,  1024,  64,  4,  2,    true}},
  {"hbm3",     {16,  2,  4,  4, 32768,  1024,  32,  8,  4,    true}},
  {"ddr3",     { 2,  1,  1,  8, 65536,  8192,  64,  8,  2,    false}},
};

inline const NamedTiming kTimings[] = {
  //  name   {tCK_ns  CL  CWL RCD  RP RAS  RC CCDS CCDL RRDS RRDL FAW  WR WTRS WTRL RTP  RFC  REFI}
  {"hbm2",   {1.0,    14,  4, 14, 14, 34, 48,   2,   4,   4,   6, 30, 16,   6,   8,  4, 260, 3900},
   "DRAMsim3 configs/HBM2_8Gb_x128.ini (tCK 1 ns = 2 Gb/s per pin; tRTP = its tRTP_S); "
   "JESD235A pseudo-channel mode: BL4 takes 2 tCK, so tCCD_S = 2 and tCCD_L = 4 (assumed "
   "2 x tCCD_S as in Ramulator 2.0's HBM3 table; DRAMsim3 lists 1/2 for legacy mode)"},
  {"hbm2e",  {0.625,  23,  7, 23, 23, 55, 77,   2,   4,   7,  10, 48, 26,  10,  13,  7, 416, 6240},
   "DRAMsim3 HBM2_8Gb_x128 absolute timings (ns) rounded up to tCK 0.625 ns "
   "(1.6 GHz, 3.2 Gb/s per pin, JESD235D HBM2E speed); tCCD as hbm2"},
  {"hbm3",   {0.625,  23,  7, 23, 23, 55, 77,   2,   4,   2,   4, 48, 26,  10,  13,  7, 560, 6240},
   "Ramulator 2.0 src/dram/impl/HBM3.cpp preset HBM3_6.4Gbps (tCK 0.625 ns, 6.4 Gb/s per "
   "pin); tRFC 350 ns from its 8 Gb density table; tRTP = its nRTPS"},
  {"ddr3",   {0.9375, 13, 10, 13, 13, 36, 49,   4,   4,   6,   6, 27, 16,   8,   8,  8, 278, 8320},
   "Ramulator 2.0 src/dram/impl/DDR3.cpp preset DDR3_2133M (13-13-13, x8: nRRD 6, nFAW 27); "
   "CWL 10 per JESD79-3F for tCK 0.938 ns; tRFC 260 ns (4 Gb) and tREFI 7.8 us in tCK"},
};
// clang-format on

// The DRAM preset named `name` (organisation and timing of that name), or nullptr when `name`
// is not a DRAM preset (e.g. "ideal" or "simple").
inline const DramSpec* find_dram_spec(const std::string& name) {
  static const std::vector<DramSpec> specs = [] {
    std::vector<DramSpec> all;
    for (const NamedTiming& t : kTimings) {
      for (const NamedOrganization& o : kOrganizations) {
        if (std::string(o.name) == t.name) all.push_back({t.name, o.org, t.timing, t.source});
      }
    }
    return all;
  }();
  for (const DramSpec& spec : specs) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

}  // namespace tpu::dram
