#pragma once
// Physical address -> DRAM coordinates. SystemC-free.
//
// The mapping is an order string of fields from the most to the least significant address
// bits, separated by '_', e.g. "ro_ba_co_bg_pc_ch_co1":
//   ro  row (must come first; takes every remaining high bit, so any address maps)
//   ba  bank within its bank group      bg  bank group      pc  pseudo-channel
//   ch  channel                          co  column (burst within the row)
// A field may be split: a token with a width ("co1") takes that many bits of its field, the
// lowest not yet taken; the one token of a field without a width takes the rest. Every field
// with more than one value must appear. The bits below the fields are the byte offset inside
// one burst. Field sizes must be powers of two.
//
// The default (HbmConfig::address_mapping), "ro_ba_co_bg_pc_ch", sends consecutive bursts to
// consecutive channels, then pseudo-channels, then bank groups, before moving on in the row:
// a stream spreads over every data bus, alternates bank groups (tCCD_S, not tCCD_L) and stays
// in open rows.
#include <cstdint>
#include <string>
#include <vector>

#include "sim/dram/dram_spec.h"

namespace tpu::dram {

struct DramAddress {
  std::uint32_t channel = 0;
  std::uint32_t pseudo_channel = 0;
  std::uint32_t bank_group = 0;
  std::uint32_t bank = 0;  // within its bank group
  std::uint64_t row = 0;
  std::uint32_t column = 0;
};

class AddressMapping {
 public:
  // Throws std::invalid_argument with a one-line message naming the problem.
  AddressMapping(const DramSpec& spec, const std::string& order);

  DramAddress map(std::uint64_t addr) const;
  // The address of the first byte of the burst at `a` (inverse of map()).
  std::uint64_t unmap(const DramAddress& a) const;
  // How many of the lowest burst-index bits choose only the channel or pseudo-channel. Two
  // bursts of one pseudo-channel then lie a multiple of 2^n bursts apart, so a run of k
  // consecutive bursts puts at most ceil(k / 2^n) into any one pseudo-channel.
  unsigned spread_bits() const { return spread_bits_; }

 private:
  enum Field { kRow, kBank, kBankGroup, kPseudoChannel, kChannel, kColumn, kNumFields };
  struct Slice {
    Field field;
    unsigned shift;      // position of the slice's lowest bit in the address
    unsigned bits;       // width (row: 64 - shift)
    unsigned field_pos;  // position of the slice's lowest bit in the field's value
  };

  // map() walking the slices one at a time (builds the tables below).
  DramAddress map_slices(std::uint64_t addr) const;

  // map() is a fixed bit permutation, so the fields below the row are the OR of one table
  // entry per 8 bits of the burst index below the row bits: two lookups instead of a walk
  // over every slice for each burst.
  struct LowFields {
    std::uint32_t channel, pseudo_channel, bank_group, bank, column;
  };
  static constexpr unsigned kChunkBits = 8;

  unsigned offset_bits_ = 0;
  unsigned row_shift_ = 0;  // the row is every address bit from here up
  unsigned spread_bits_ = 0;
  std::vector<Slice> slices_;  // least significant first
  std::vector<LowFields> low_;  // chunk k's entries at [k << kChunkBits, (k + 1) << kChunkBits)
};

// Inline: the controller maps every burst of every request.
inline DramAddress AddressMapping::map(std::uint64_t addr) const {
  DramAddress a;
  a.row = addr >> row_shift_;
  std::uint64_t low = (addr & ((std::uint64_t(1) << row_shift_) - 1)) >> offset_bits_;
  for (const LowFields* table = low_.data(); low != 0; low >>= kChunkBits, table += 1 << kChunkBits) {
    const LowFields& f = table[low & ((1 << kChunkBits) - 1)];
    a.channel |= f.channel;
    a.pseudo_channel |= f.pseudo_channel;
    a.bank_group |= f.bank_group;
    a.bank |= f.bank;
    a.column |= f.column;
  }
  return a;
}

}  // namespace tpu::dram
