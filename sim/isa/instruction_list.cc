#include "sim/isa/instruction_list.h"

#include <cstring>
#include <limits>
#include <stdexcept>

#include "sim/isa/isa_table.h"

namespace tpu {
namespace {

// Calls f(field) for every field of `op` after the header, in table order: the varints
// (zigzag for every field, so any 64-bit value of any field type round-trips in few bytes
// when small).
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

void put_u64(std::vector<std::uint8_t>& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(std::uint8_t(v >> (8 * i)));
}

std::uint64_t get_u64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= std::uint64_t(p[i]) << (8 * i);
  return v;
}

}  // namespace

InstructionList::InstructionList(std::initializer_list<Instruction> insts) {
  reserve(insts.size());
  for (const Instruction& inst : insts) push_back(inst);
}

std::uint32_t InstructionList::append(const Instruction& inst) {
  const std::size_t at = bytes_.size();
  if (at > std::numeric_limits<std::uint32_t>::max()) {
    throw IsaError("program too large: its instructions exceed 4 GiB in host memory");
  }
  bytes_.push_back(std::uint8_t(inst.op));
  bytes_.push_back(inst.flags);
  bytes_.push_back(inst.instance);
  put_u64(bytes_, inst.wait);
  put_u64(bytes_, inst.signal);
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
  inst.wait = get_u64(p + kWaitAt);
  inst.signal = get_u64(p + kSignalAt);
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

std::uint64_t InstructionList::signal(std::size_t pc) const {
  return get_u64(bytes_.data() + offsets_[pc] + kSignalAt);
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
  std::uint8_t* p = bytes_.data() + offsets_[pc] + kSignalAt;
  const std::uint64_t signal = get_u64(p) | mask;
  for (int i = 0; i < 8; ++i) p[i] = std::uint8_t(signal >> (8 * i));
}

void InstructionList::clear() {
  bytes_.clear();
  offsets_.clear();
}

bool InstructionList::operator==(const InstructionList& o) const {
  if (size() != o.size()) return false;
  for (std::size_t pc = 0; pc < size(); ++pc) {
    if ((*this)[pc] != o[pc]) return false;
  }
  return true;
}

}  // namespace tpu
