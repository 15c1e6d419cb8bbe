#pragma once
// A program's instruction stream as it is held in host memory. An Instruction struct is about
// 170 bytes and a GPT-3 layer has millions of them, so the list keeps each one as a compact
// record and decodes it on access: the opcode, flags and unit instance bytes, a 3-byte index
// into the list's table of distinct (wait, signal) mask pairs (a program uses a few hundred of
// them, and the two 8-byte masks were half of every record), then every other field the ISA
// table lists for the opcode as a LEB128 varint (zigzagged), about 17 bytes on average in GPT-3.
// The fixed part reads without a decode (op(), flags(), instance(), signal()), for scans over
// the whole program.
// Fields the opcode does not list are not part of the instruction (isa.h) and are not kept.
// Any value of a field's C++ type round-trips; range checks stay with the binary encoding and
// the simulator.
#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <map>
#include <vector>

#include "sim/isa/isa.h"

namespace tpu {

class InstructionList {
 public:
  // Reads instructions by value, in program order.
  class const_iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = Instruction;
    using difference_type = std::ptrdiff_t;
    using pointer = void;
    using reference = Instruction;
    const_iterator(const InstructionList* list, std::size_t pc) : list_(list), pc_(pc) {}
    Instruction operator*() const { return (*list_)[pc_]; }
    const_iterator& operator++() {
      ++pc_;
      return *this;
    }
    bool operator==(const const_iterator& o) const { return pc_ == o.pc_; }
    bool operator!=(const const_iterator& o) const { return pc_ != o.pc_; }

   private:
    const InstructionList* list_;
    std::size_t pc_;
  };
  using value_type = Instruction;
  using iterator = const_iterator;

  InstructionList() = default;
  InstructionList(std::initializer_list<Instruction> insts);

  std::size_t size() const { return offsets_.size(); }
  bool empty() const { return offsets_.empty(); }
  // Decodes instruction pc.
  Instruction operator[](std::size_t pc) const;
  // Instruction pc's opcode, flags, unit instance and signal mask, without decoding its fields.
  Opcode op(std::size_t pc) const;
  std::uint8_t flags(std::size_t pc) const;
  std::uint8_t instance(std::size_t pc) const;
  std::uint64_t signal(std::size_t pc) const;
  Instruction back() const { return (*this)[size() - 1]; }
  const_iterator begin() const { return {this, 0}; }
  const_iterator end() const { return {this, size()}; }

  void push_back(const Instruction& inst);
  // Replaces instruction `pc` (in place when its record keeps its length, else the new record
  // goes to the end of the store).
  void set(std::size_t pc, const Instruction& inst);
  // Or-s `mask` into instruction pc's signal mask (the compiler's back-patching), in place.
  void add_signal(std::size_t pc, std::uint64_t mask);
  // Room for `instructions` whose records take `record_bytes` in all (record_bytes()).
  void reserve(std::size_t instructions, std::size_t record_bytes = 0);
  void clear();
  // Bytes the records, their index and the mask pairs take (without spare capacity).
  std::size_t bytes() const {
    return bytes_.size() + offsets_.size() * sizeof(std::uint32_t) +
           mask_pairs_.size() * sizeof(MaskPair);
  }
  // Bytes of the records alone.
  std::size_t record_bytes() const { return bytes_.size(); }

  // Element-wise Instruction::operator==.
  bool operator==(const InstructionList& o) const;
  bool operator!=(const InstructionList& o) const { return !(*this == o); }

 private:
  using MaskPair = std::array<std::uint64_t, 2>;  // wait, signal

  // Appends inst's record to bytes_ and returns its offset.
  std::uint32_t append(const Instruction& inst);
  // Bytes of the record at `offset`.
  std::size_t record_length(std::size_t offset) const;
  // The index of `masks` in mask_pairs_, added if new.
  std::uint32_t mask_index(const MaskPair& masks);

  std::vector<std::uint8_t> bytes_;
  std::vector<std::uint32_t> offsets_;  // record of instruction pc starts at bytes_[offsets_[pc]]
  std::vector<MaskPair> mask_pairs_;    // distinct (wait, signal) pairs, in order of first use
  std::map<MaskPair, std::uint32_t> mask_index_;  // their indices
};

}  // namespace tpu
