// Binary encoding of one instruction, layout documented in sim/isa/ISA.md: byte 0 opcode,
// byte 1 flags, then the header fields and the opcode's fields of the table (isa_table.cc)
// packed little-endian from bit 16, each least significant bit first, signed fields in two's
// complement; bits past the last field are zero.
#include <string>

#include "sim/isa/isa_table.h"

namespace tpu {
namespace {

constexpr unsigned kInstructionBits = kInstructionBytes * 8;

void put_bits(EncodedInstruction& bytes, unsigned first, unsigned width, std::uint64_t value) {
  for (unsigned i = 0; i < width; ++i) {
    const unsigned b = first + i;
    if ((value >> i) & 1) bytes[b / 8] |= std::uint8_t(1u << (b % 8));
  }
}

std::uint64_t get_bits(const EncodedInstruction& bytes, unsigned first, unsigned width) {
  std::uint64_t v = 0;
  for (unsigned i = 0; i < width; ++i) {
    const unsigned b = first + i;
    v |= std::uint64_t((bytes[b / 8] >> (b % 8)) & 1) << i;
  }
  return v;
}

// The value of a `width`-bit two's complement pattern.
std::int64_t sign_extend(std::uint64_t raw, unsigned width) {
  if (width < 64 && (raw >> (width - 1)) & 1) raw |= ~std::uint64_t(0) << width;
  return std::int64_t(raw);
}

void check_flags(const OpcodeSpec& spec, std::uint8_t flags) {
  if (flags & ~spec.flag_mask()) {
    throw IsaError(std::string(spec.mnemonic) + ": flags " + hex(flags) + " not valid");
  }
}

}  // namespace

std::string hex(std::uint64_t v) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  do {
    s.insert(s.begin(), digits[v & 15]);
    v >>= 4;
  } while (v != 0);
  return "0x" + s;
}

bool Instruction::operator==(const Instruction& o) const {
  if (op != o.op || flags != o.flags) return false;
  if (std::size_t(op) >= isa_table().size()) return true;  // nothing else to compare
  bool equal = true;
  for_each_field(opcode_spec(op), [&](const FieldSpec& f, unsigned) {
    equal = equal && f.get(*this) == f.get(o);
  });
  return equal;
}

EncodedInstruction encode(const Instruction& inst) {
  const OpcodeSpec& spec = opcode_spec(inst.op);
  check_flags(spec, inst.flags);
  EncodedInstruction b{};
  b[0] = std::uint8_t(inst.op);
  b[1] = inst.flags;
  for_each_field(spec, [&](const FieldSpec& f, unsigned bit) {
    const std::int64_t v = f.get(inst);
    check_field(spec, f, v);
    const std::uint64_t mask = f.bits < 64 ? (std::uint64_t(1) << f.bits) - 1 : ~std::uint64_t(0);
    put_bits(b, bit, f.bits, std::uint64_t(v) & mask);
  });
  return b;
}

Instruction decode(const EncodedInstruction& b) {
  if (b[0] >= isa_table().size()) throw IsaError("unknown opcode byte " + hex(b[0]));
  Instruction inst;
  inst.op = Opcode(b[0]);
  const OpcodeSpec& spec = opcode_spec(inst.op);
  inst.flags = b[1];
  check_flags(spec, inst.flags);
  unsigned end = kFirstFieldBit;
  for_each_field(spec, [&](const FieldSpec& f, unsigned bit) {
    const std::uint64_t raw = get_bits(b, bit, f.bits);
    const std::int64_t v = f.is_signed() ? sign_extend(raw, f.bits) : std::int64_t(raw);
    check_field(spec, f, v);
    f.set(inst, v);
    end = bit + f.bits;
  });
  for (unsigned bit = end; bit < kInstructionBits; ++bit) {
    if (get_bits(b, bit, 1)) throw IsaError(std::string(spec.mnemonic) + ": reserved bits set");
  }
  return inst;
}

}  // namespace tpu
