#include "sim/isa/instruction_list.h"

#include <cstring>
#include <limits>
#include <string>
#include <stdexcept>

#include "sim/isa/isa_table.h"

namespace tpu {
namespace {

// Record layout: opcode, flags and unit instance bytes (the header fields of isa_table.cc,
// `unit`, `wait`, `signal`, at fixed places), the index of its (wait, signal) pair in the list's
// mask table (3 bytes: a list holds at most 2^24 distinct pairs), then the opcode's fields in
// table order, each a zigzagged LEB128 varint (zigzag for every field, so any 64-bit value of
// any field type round-trips in few bytes when small). The index has a fixed width so
// add_signal patches it in place.
constexpr std::size_t kOpAt = 0, kFlagsAt = 1, kInstanceAt = 2, kMasksAt = 3, kMaskIndexBytes = 3,
                      kFieldsAt = kMasksAt + kMaskIndexBytes;
constexpr std::uint32_t kMaxMaskPairs = std::uint32_t(1) << (8 * kMaskIndexBytes);

// Calls f(field) for every field of `op` after the header, in table order.
template <typename F>
void for_each_varint_field(Opcode op, F&& f) {
  if (std::size_t(op) >= isa_table().size()) return;  // an unknown opcode has the header only
  for (const FieldSpec& field : opcode_spec(op).fields) {
    if (field.format == FieldFormat::kSemaphores) {
      throw std::logic_error("InstructionList: a mask outside the header");
    }
    f(field);
  }
}

void put_mask_index(std::uint8_t* p, std::uint32_t index) {
  for (std::size_t i = 0; i < kMaskIndexBytes; ++i) p[i] = std::uint8_t(index >> (8 * i));
}

std::uint32_t get_mask_index(const std::uint8_t* p) {
  std::uint32_t v = 0;
  for (std::size_t i = 0; i < kMaskIndexBytes; ++i) v |= std::uint32_t(p[i]) << (8 * i);
  return v;
}

}  // namespace

InstructionList::InstructionList(std::initializer_list<Instruction> insts) {
  reserve(insts.size());
  for (const Instruction& inst : insts) push_back(inst);
}

void InstructionList::reserve(std::size_t instructions, std::size_t record_bytes) {
  offsets_.reserve(instructions);
  bytes_.reserve(record_bytes);
}

std::uint32_t InstructionList::mask_index(const MaskPair& masks) {
  const auto [it, added] = mask_index_.emplace(masks, std::uint32_t(mask_pairs_.size()));
  if (added) {
    if (mask_pairs_.size() == kMaxMaskPairs) {
      mask_index_.erase(it);
      throw IsaError("program too large: more than " + std::to_string(kMaxMaskPairs) +
                     " distinct (wait, signal) semaphore mask pairs");
    }
    mask_pairs_.push_back(masks);
  }
  return it->second;
}

std::uint32_t InstructionList::append(const Instruction& inst) {
  const std::size_t at = bytes_.size();
  if (at > std::numeric_limits<std::uint32_t>::max()) {
    throw IsaError("program too large: its instructions exceed 4 GiB in host memory");
  }
  const std::uint32_t masks = mask_index({inst.wait, inst.signal});
  bytes_.push_back(std::uint8_t(inst.op));
  bytes_.push_back(inst.flags);
  bytes_.push_back(inst.instance);
  bytes_.resize(at + kFieldsAt);
  put_mask_index(bytes_.data() + at + kMasksAt, masks);
  for_each_varint_field(inst.op, [&](const FieldSpec& f) {
    const std::uint64_t raw = std::uint64_t(f.get(inst));
    std::uint64_t zz = (raw << 1) ^ (0 - (raw >> 63));
    while (zz >= 0x80) {
      bytes_.push_back(std::uint8_t(zz | 0x80));
      zz >>= 7;
    }
    bytes_.push_back(std::uint8_t(zz));
  });
  return std::uint32_t(at);
}

void InstructionList::push_back(const Instruction& inst) { offsets_.push_back(append(inst)); }

Instruction InstructionList::operator[](std::size_t pc) const {
  const std::uint8_t* p = bytes_.data() + offsets_[pc];
  Instruction inst;
  inst.op = Opcode(p[kOpAt]);
  inst.flags = p[kFlagsAt];
  inst.instance = p[kInstanceAt];
  const MaskPair& masks = mask_pairs_[get_mask_index(p + kMasksAt)];
  inst.wait = masks[0];
  inst.signal = masks[1];
  p += kFieldsAt;
  for_each_varint_field(inst.op, [&](const FieldSpec& f) {
    std::uint64_t zz = 0;
    for (unsigned shift = 0;; shift += 7) {
      const std::uint8_t b = *p++;
      zz |= std::uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) break;
    }
    f.set(inst, std::int64_t((zz >> 1) ^ (0 - (zz & 1))));
  });
  return inst;
}

Opcode InstructionList::op(std::size_t pc) const { return Opcode(bytes_[offsets_[pc] + kOpAt]); }

std::uint8_t InstructionList::flags(std::size_t pc) const {
  return bytes_[offsets_[pc] + kFlagsAt];
}

std::uint8_t InstructionList::instance(std::size_t pc) const {
  return bytes_[offsets_[pc] + kInstanceAt];
}

std::uint64_t InstructionList::signal(std::size_t pc) const {
  return mask_pairs_[get_mask_index(bytes_.data() + offsets_[pc] + kMasksAt)][1];
}

void InstructionList::set(std::size_t pc, const Instruction& inst) {
  const std::size_t old = offsets_[pc];
  const std::size_t old_length = record_length(old);
  const std::uint32_t at = append(inst);
  const std::size_t length = bytes_.size() - at;
  if (length == old_length) {
    std::memcpy(bytes_.data() + old, bytes_.data() + at, length);
    bytes_.resize(at);
  } else {
    offsets_[pc] = at;
  }
}

std::size_t InstructionList::record_length(std::size_t offset) const {
  const std::uint8_t* p = bytes_.data() + offset + kFieldsAt;
  for_each_varint_field(Opcode(bytes_[offset + kOpAt]), [&](const FieldSpec&) {
    while (*p++ & 0x80) {
    }
  });
  return std::size_t(p - (bytes_.data() + offset));
}

void InstructionList::add_signal(std::size_t pc, std::uint64_t mask) {
  std::uint8_t* p = bytes_.data() + offsets_[pc] + kMasksAt;
  MaskPair masks = mask_pairs_[get_mask_index(p)];
  masks[1] |= mask;
  put_mask_index(p, mask_index(masks));
}

void InstructionList::clear() {
  bytes_.clear();
  offsets_.clear();
  mask_pairs_.clear();
  mask_index_.clear();
}

bool InstructionList::operator==(const InstructionList& o) const {
  if (size() != o.size()) return false;
  for (std::size_t pc = 0; pc < size(); ++pc) {
    if ((*this)[pc] != o[pc]) return false;
  }
  return true;
}

}  // namespace tpu
