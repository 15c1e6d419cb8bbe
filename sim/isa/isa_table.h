#pragma once
// The instruction set as data: every opcode once, with its fields in encoding order. Encoding,
// decoding, Instruction::operator==, the assembler and disassembler, range checks, the field
// tables of sim/isa/ISA.md and the tests' random instructions all iterate this table, so an
// opcode has exactly the fields listed here and a new field or opcode is one entry.
#include <cstdint>
#include <string>
#include <vector>

#include "sim/isa/isa.h"

namespace tpu {

enum class FieldFormat : std::uint8_t {
  kUnsigned,    // decimal
  kSigned,      // decimal, two's complement in the encoding
  kHex,         // printed as 0x...
  kEnum,        // printed as FieldSpec::names[value]
  kSemaphores,  // a 64-bit semaphore mask, printed as a list of names
};

// How a field is read from and written to an Instruction.
struct FieldAccess {
  std::int64_t (*get)(const Instruction&);
  void (*set)(Instruction&, std::int64_t);
};

struct FieldSpec {
  const char* name;  // the assembly keyword; also the field's name in messages and ISA.md
  unsigned bits;     // encoded width
  FieldAccess access;
  const char* doc;
  FieldFormat format = FieldFormat::kUnsigned;
  std::int64_t min = 0;  // valid values [min, max]; masks take every bit pattern
  std::int64_t max = 0;
  bool required = true;       // in assembly; else `fallback` when omitted
  std::int64_t fallback = 0;
  bool print_default = true;  // canonical assembly prints the key even at its fallback
  const char* const* names = nullptr;  // kEnum: names of 0..max

  std::int64_t get(const Instruction& i) const { return access.get(i); }
  void set(Instruction& i, std::int64_t v) const { access.set(i, v); }
  bool is_signed() const { return format == FieldFormat::kSigned; }
};

// A bare assembly word setting one flag bit.
struct FlagSpec {
  std::uint8_t bit;
  const char* word;
  const char* doc;
};

struct OpcodeSpec {
  Opcode op;
  const char* mnemonic;
  Unit unit;
  const char* doc;
  std::vector<FlagSpec> flags;
  std::vector<FieldSpec> fields;  // encoding order, after the header fields

  std::uint8_t flag_mask() const;
};

// Every opcode, indexed by its code.
const std::vector<OpcodeSpec>& isa_table();
// Fields every instruction has (unit instance, wait, signal), encoded before its own.
const std::vector<FieldSpec>& header_fields();
// The opcode's entry; IsaError "unknown opcode N" when it has none.
const OpcodeSpec& opcode_spec(Opcode op);
// The largest value field `name` of `op` encodes (what compilers must stay within); IsaError
// when the opcode has no such field.
std::uint64_t field_max(Opcode op, const std::string& name);

// Calls f(field, first_bit) for the header fields then the opcode's fields, in encoding
// order; first_bit counts from bit 0 of byte 0 of the instruction.
constexpr unsigned kFirstFieldBit = 16;  // after the opcode and flags bytes
template <typename F>
void for_each_field(const OpcodeSpec& op, F&& f) {
  unsigned bit = kFirstFieldBit;
  for (const FieldSpec& field : header_fields()) {
    f(field, bit);
    bit += field.bits;
  }
  for (const FieldSpec& field : op.fields) {
    f(field, bit);
    bit += field.bits;
  }
}

// IsaError "<mnemonic>: <field> = <value> out of range <min>..<max>" unless value is valid.
void check_field(const OpcodeSpec& op, const FieldSpec& field, std::int64_t value);

// The opcode and field tables of sim/isa/ISA.md (between its isa-table markers).
std::string isa_markdown();

}  // namespace tpu
