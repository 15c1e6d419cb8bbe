#include "sim/dram/address_mapping.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <stdexcept>

namespace tpu::dram {

namespace {

bool is_power_of_two(std::uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

unsigned log2_exact(std::uint64_t v) {
  unsigned bits = 0;
  while ((std::uint64_t(1) << bits) < v) ++bits;
  return bits;
}

}  // namespace

AddressMapping::AddressMapping(const DramSpec& spec, const std::string& order) {
  auto fail = [&](const std::string& problem) {
    throw std::invalid_argument("address mapping '" + order + "': " + problem);
  };
  const Organization& o = spec.org;
  const std::array<std::uint64_t, kNumFields> sizes = {
      0, o.banks_per_group, o.bank_groups, o.pseudo_channels, o.channels, spec.columns()};
  const std::array<const char*, kNumFields> names = {"ro", "ba", "bg", "pc", "ch", "co"};
  for (int f = kBank; f < kNumFields; ++f) {
    if (!is_power_of_two(sizes[f])) fail(std::string(names[f]) + " count is not a power of two");
  }
  if (!is_power_of_two(spec.burst_bytes())) fail("burst size is not a power of two");
  offset_bits_ = log2_exact(spec.burst_bytes());

  struct Token {
    Field field;
    int width;  // -1: the rest of the field
  };
  std::vector<Token> tokens;
  std::size_t start = 0;
  while (start <= order.size()) {
    std::size_t end = order.find('_', start);
    if (end == std::string::npos) end = order.size();
    const std::string token = order.substr(start, end - start);
    start = end + 1;
    std::size_t name_end = 0;
    while (name_end < token.size() && std::isalpha(static_cast<unsigned char>(token[name_end]))) {
      ++name_end;
    }
    const std::string name = token.substr(0, name_end);
    int field = -1;
    for (int f = 0; f < kNumFields; ++f) {
      if (name == names[f]) field = f;
    }
    if (field < 0) fail("unknown field '" + token + "' (expected ro, ba, bg, pc, ch, co)");
    int width = -1;
    if (name_end < token.size()) {
      const std::string digits = token.substr(name_end);
      for (char ch : digits) {
        if (!std::isdigit(static_cast<unsigned char>(ch))) fail("bad width in '" + token + "'");
      }
      width = std::stoi(digits);
    }
    tokens.push_back({Field(field), width});
  }
  if (tokens.empty() || tokens.front().field != kRow || tokens.front().width != -1) {
    fail("must start with 'ro' (the row takes the remaining high bits)");
  }

  // Widths of the tokens without one: what their field has left.
  std::array<int, kNumFields> explicit_bits{};
  std::array<int, kNumFields> rest_tokens{};
  for (std::size_t i = 1; i < tokens.size(); ++i) {
    const Token& t = tokens[i];
    if (t.field == kRow) fail("'ro' may appear only once, first");
    if (t.width < 0) {
      ++rest_tokens[t.field];
    } else {
      explicit_bits[t.field] += t.width;
    }
  }
  for (int f = kBank; f < kNumFields; ++f) {
    const int bits = int(log2_exact(sizes[f]));
    if (rest_tokens[f] > 1) fail(std::string("'") + names[f] + "' appears twice without a width");
    if (explicit_bits[f] > bits || (rest_tokens[f] == 0 && explicit_bits[f] != bits)) {
      fail(std::string("'") + names[f] + "' needs " + std::to_string(bits) +
           " bits for this preset");
    }
  }

  // Assign bit positions from the least significant token up.
  std::array<unsigned, kNumFields> field_pos{};
  unsigned shift = offset_bits_;
  for (std::size_t i = tokens.size(); i-- > 1;) {
    const Token& t = tokens[i];
    const unsigned bits = t.width >= 0
                              ? unsigned(t.width)
                              : log2_exact(sizes[t.field]) - unsigned(explicit_bits[t.field]);
    if (bits == 0) continue;
    slices_.push_back({t.field, shift, bits, field_pos[t.field]});
    field_pos[t.field] += bits;
    shift += bits;
  }
  if (shift >= 64) fail("uses more than 64 address bits");
  slices_.push_back({kRow, shift, 64 - shift, 0});
  row_shift_ = shift;
  for (const Slice& s : slices_) {
    if (s.field != kChannel && s.field != kPseudoChannel) break;
    spread_bits_ += s.bits;
  }

  const unsigned low_bits = row_shift_ - offset_bits_;
  for (unsigned at = 0; at < low_bits; at += kChunkBits) {
    const unsigned width = std::min(kChunkBits, low_bits - at);
    for (std::uint64_t v = 0; v < (std::uint64_t(1) << kChunkBits); ++v) {
      // Values wider than the last chunk never occur; their entries stay zero.
      const DramAddress a = v >> width ? DramAddress{}
                                       : map_slices(v << (offset_bits_ + at));
      low_.push_back({a.channel, a.pseudo_channel, a.bank_group, a.bank, a.column});
    }
  }
}

DramAddress AddressMapping::map_slices(std::uint64_t addr) const {
  std::array<std::uint64_t, kNumFields> v{};
  for (const Slice& s : slices_) {
    const std::uint64_t mask = s.bits >= 64 ? ~std::uint64_t(0) : (std::uint64_t(1) << s.bits) - 1;
    v[s.field] |= ((addr >> s.shift) & mask) << s.field_pos;
  }
  DramAddress a;
  a.channel = std::uint32_t(v[kChannel]);
  a.pseudo_channel = std::uint32_t(v[kPseudoChannel]);
  a.bank_group = std::uint32_t(v[kBankGroup]);
  a.bank = std::uint32_t(v[kBank]);
  a.row = v[kRow];
  a.column = std::uint32_t(v[kColumn]);
  return a;
}

std::uint64_t AddressMapping::unmap(const DramAddress& a) const {
  const std::array<std::uint64_t, kNumFields> v = {
      a.row, a.bank, a.bank_group, a.pseudo_channel, a.channel, a.column};
  std::uint64_t addr = 0;
  for (const Slice& s : slices_) {
    const std::uint64_t mask = s.bits >= 64 ? ~std::uint64_t(0) : (std::uint64_t(1) << s.bits) - 1;
    addr |= ((v[s.field] >> s.field_pos) & mask) << s.shift;
  }
  return addr;
}

}  // namespace tpu::dram
