// Binary encoding of one instruction: 32 bytes, layout documented in sim/isa/ISA.md.
//   byte 0 opcode, byte 1 flags, bytes 2-3 wait mask, bytes 4-5 signal mask (little endian),
//   bytes 6..31 (208 bits) the opcode's fields packed little-endian from bit 0, in the order
//   of the field tables below; bits past the last field are zero.
#include <string>

#include "sim/isa/isa.h"

namespace tpu {
namespace {

constexpr std::size_t kPayloadByte = 6;
constexpr unsigned kPayloadBits = (kInstructionBytes - kPayloadByte) * 8;

// Appends fields to the payload, least significant bit first.
class BitWriter {
 public:
  explicit BitWriter(EncodedInstruction& bytes) : bytes_(bytes) {}

  void put(const char* field, std::uint64_t value, unsigned width) {
    if (width < 64 && (value >> width) != 0) {
      throw IsaError(std::string(mnemonic_) + ": field " + field + " = " + std::to_string(value) +
                     " does not fit in " + std::to_string(width) + " bits");
    }
    for (unsigned i = 0; i < width; ++i, ++bit_) {
      if ((value >> i) & 1) bytes_[kPayloadByte + bit_ / 8] |= std::uint8_t(1u << (bit_ % 8));
    }
  }
  void set_mnemonic(const char* m) { mnemonic_ = m; }

 private:
  EncodedInstruction& bytes_;
  unsigned bit_ = 0;
  const char* mnemonic_ = "";
};

class BitReader {
 public:
  explicit BitReader(const EncodedInstruction& bytes) : bytes_(bytes) {}

  std::uint64_t get(unsigned width) {
    std::uint64_t v = 0;
    for (unsigned i = 0; i < width; ++i, ++bit_) {
      v |= std::uint64_t((bytes_[kPayloadByte + bit_ / 8] >> (bit_ % 8)) & 1) << i;
    }
    return v;
  }
  // True when every payload bit past the fields read so far is zero.
  bool rest_is_zero() const {
    for (unsigned b = bit_; b < kPayloadBits; ++b) {
      if ((bytes_[kPayloadByte + b / 8] >> (b % 8)) & 1) return false;
    }
    return true;
  }

 private:
  const EncodedInstruction& bytes_;
  unsigned bit_ = 0;
};

std::uint8_t valid_flags(Opcode op) { return op == Opcode::kMatmul ? kFlagAccumulate : 0; }

bool valid_opcode(std::uint8_t b) { return b <= std::uint8_t(Opcode::kPool); }

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


Unit unit_of(Opcode op) {
  switch (op) {
    case Opcode::kNop:
    case Opcode::kHalt:
    case Opcode::kLayer:
      return Unit::kSequencer;
    case Opcode::kDmaLoad:
    case Opcode::kDmaStore:
      return Unit::kDma;
    case Opcode::kLoadWeights:
      return Unit::kWeightLoad;
    case Opcode::kMatmul:
      return Unit::kMatmul;
    case Opcode::kActivate:
    case Opcode::kPool:
      return Unit::kVector;
  }
  throw IsaError("unknown opcode " + std::to_string(int(op)));
}

const char* to_string(Unit u) {
  switch (u) {
    case Unit::kSequencer:
      return "sequencer";
    case Unit::kDma:
      return "dma";
    case Unit::kWeightLoad:
      return "weight_load";
    case Unit::kMatmul:
      return "matmul";
    case Unit::kVector:
      return "vector";
  }
  return "?";
}

const char* mnemonic(Opcode op) {
  switch (op) {
    case Opcode::kNop:
      return "nop";
    case Opcode::kHalt:
      return "halt";
    case Opcode::kLayer:
      return "layer";
    case Opcode::kDmaLoad:
      return "dma.load";
    case Opcode::kDmaStore:
      return "dma.store";
    case Opcode::kLoadWeights:
      return "load.weights";
    case Opcode::kMatmul:
      return "matmul";
    case Opcode::kActivate:
      return "activate";
    case Opcode::kPool:
      return "pool";
  }
  throw IsaError("unknown opcode " + std::to_string(int(op)));
}

bool Instruction::operator==(const Instruction& o) const {
  if (op != o.op || flags != o.flags || wait != o.wait || signal != o.signal) return false;
  switch (op) {
    case Opcode::kNop:
    case Opcode::kHalt:
      return true;
    case Opcode::kLayer:
      return layer == o.layer;
    case Opcode::kDmaLoad:
    case Opcode::kDmaStore:
      return dma.hbm_addr == o.dma.hbm_addr && dma.ub_row == o.dma.ub_row &&
             dma.elems == o.dma.elems && dma.segs == o.dma.segs &&
             dma.seg_stride == o.dma.seg_stride && dma.groups == o.dma.groups &&
             dma.group_stride == o.dma.group_stride && dma.ub_stride == o.dma.ub_stride &&
             dma.pack == o.dma.pack;
    case Opcode::kLoadWeights:
      return ub_row == o.ub_row && rows == o.rows && cols == o.cols;
    case Opcode::kMatmul:
      return ub_row == o.ub_row && ub_stride == o.ub_stride && rows == o.rows &&
             acc_row == o.acc_row;
    case Opcode::kActivate:
      return acc_row == o.acc_row && rows == o.rows && cols == o.cols && ub_row == o.ub_row &&
             func == o.func && multiplier == o.multiplier && shift == o.shift &&
             zero_point == o.zero_point;
    case Opcode::kPool:
      return ub_row == o.ub_row && dst_row == o.dst_row && in_h == o.in_h && in_w == o.in_w &&
             kernel == o.kernel && stride == o.stride && cols == o.cols;
  }
  return false;
}

EncodedInstruction encode(const Instruction& inst) {
  if (!valid_opcode(std::uint8_t(inst.op))) {
    throw IsaError("unknown opcode " + std::to_string(int(inst.op)));
  }
  const char* name = mnemonic(inst.op);
  if (inst.flags & ~valid_flags(inst.op)) {
    throw IsaError(std::string(name) + ": flags " + hex(inst.flags) + " not valid");
  }
  EncodedInstruction b{};
  b[0] = std::uint8_t(inst.op);
  b[1] = inst.flags;
  b[2] = std::uint8_t(inst.wait);
  b[3] = std::uint8_t(inst.wait >> 8);
  b[4] = std::uint8_t(inst.signal);
  b[5] = std::uint8_t(inst.signal >> 8);
  BitWriter w(b);
  w.set_mnemonic(name);
  switch (inst.op) {
    case Opcode::kNop:
    case Opcode::kHalt:
      break;
    case Opcode::kLayer:
      w.put("layer", inst.layer, 16);
      break;
    case Opcode::kDmaLoad:
    case Opcode::kDmaStore:
      w.put("hbm_addr", inst.dma.hbm_addr, 40);
      w.put("ub_row", inst.dma.ub_row, 24);
      w.put("elems", inst.dma.elems, 16);
      w.put("segs", inst.dma.segs, 16);
      w.put("seg_stride", inst.dma.seg_stride, 32);
      w.put("groups", inst.dma.groups, 16);
      w.put("group_stride", inst.dma.group_stride, 32);
      w.put("ub_stride", inst.dma.ub_stride, 16);
      w.put("pack", inst.dma.pack, 16);
      break;
    case Opcode::kLoadWeights:
      w.put("ub_row", inst.ub_row, 24);
      w.put("rows", inst.rows, 24);
      w.put("cols", inst.cols, 16);
      break;
    case Opcode::kMatmul:
      w.put("ub_row", inst.ub_row, 24);
      w.put("ub_stride", inst.ub_stride, 16);
      w.put("rows", inst.rows, 24);
      w.put("acc_row", inst.acc_row, 24);
      break;
    case Opcode::kActivate:
      if (std::uint8_t(inst.func) > std::uint8_t(Activation::kRelu6)) {
        throw IsaError("activate: func " + std::to_string(int(inst.func)) + " not valid");
      }
      w.put("acc_row", inst.acc_row, 24);
      w.put("rows", inst.rows, 24);
      w.put("cols", inst.cols, 16);
      w.put("ub_row", inst.ub_row, 24);
      w.put("func", std::uint8_t(inst.func), 8);
      w.put("multiplier", std::uint32_t(inst.multiplier), 32);
      w.put("shift", inst.shift, 8);
      w.put("zero_point", std::uint8_t(inst.zero_point), 8);
      break;
    case Opcode::kPool:
      w.put("ub_row", inst.ub_row, 24);
      w.put("dst_row", inst.dst_row, 24);
      w.put("in_h", inst.in_h, 16);
      w.put("in_w", inst.in_w, 16);
      w.put("kernel", inst.kernel, 8);
      w.put("stride", inst.stride, 8);
      w.put("cols", inst.cols, 16);
      break;
  }
  return b;
}

Instruction decode(const EncodedInstruction& b) {
  if (!valid_opcode(b[0])) throw IsaError("unknown opcode byte " + hex(b[0]));
  Instruction inst;
  inst.op = Opcode(b[0]);
  const char* name = mnemonic(inst.op);
  inst.flags = b[1];
  if (inst.flags & ~valid_flags(inst.op)) {
    throw IsaError(std::string(name) + ": flags " + hex(inst.flags) + " not valid");
  }
  inst.wait = std::uint16_t(b[2] | (b[3] << 8));
  inst.signal = std::uint16_t(b[4] | (b[5] << 8));
  BitReader r(b);
  switch (inst.op) {
    case Opcode::kNop:
    case Opcode::kHalt:
      break;
    case Opcode::kLayer:
      inst.layer = std::uint16_t(r.get(16));
      break;
    case Opcode::kDmaLoad:
    case Opcode::kDmaStore:
      inst.dma.hbm_addr = r.get(40);
      inst.dma.ub_row = std::uint32_t(r.get(24));
      inst.dma.elems = std::uint16_t(r.get(16));
      inst.dma.segs = std::uint16_t(r.get(16));
      inst.dma.seg_stride = std::uint32_t(r.get(32));
      inst.dma.groups = std::uint16_t(r.get(16));
      inst.dma.group_stride = std::uint32_t(r.get(32));
      inst.dma.ub_stride = std::uint16_t(r.get(16));
      inst.dma.pack = std::uint16_t(r.get(16));
      break;
    case Opcode::kLoadWeights:
      inst.ub_row = std::uint32_t(r.get(24));
      inst.rows = std::uint32_t(r.get(24));
      inst.cols = std::uint16_t(r.get(16));
      break;
    case Opcode::kMatmul:
      inst.ub_row = std::uint32_t(r.get(24));
      inst.ub_stride = std::uint16_t(r.get(16));
      inst.rows = std::uint32_t(r.get(24));
      inst.acc_row = std::uint32_t(r.get(24));
      break;
    case Opcode::kActivate: {
      inst.acc_row = std::uint32_t(r.get(24));
      inst.rows = std::uint32_t(r.get(24));
      inst.cols = std::uint16_t(r.get(16));
      inst.ub_row = std::uint32_t(r.get(24));
      const std::uint64_t func = r.get(8);
      if (func > std::uint8_t(Activation::kRelu6)) {
        throw IsaError("activate: func " + std::to_string(func) + " not valid");
      }
      inst.func = Activation(func);
      inst.multiplier = std::int32_t(std::uint32_t(r.get(32)));
      inst.shift = std::uint8_t(r.get(8));
      inst.zero_point = std::int8_t(std::uint8_t(r.get(8)));
      break;
    }
    case Opcode::kPool:
      inst.ub_row = std::uint32_t(r.get(24));
      inst.dst_row = std::uint32_t(r.get(24));
      inst.in_h = std::uint16_t(r.get(16));
      inst.in_w = std::uint16_t(r.get(16));
      inst.kernel = std::uint8_t(r.get(8));
      inst.stride = std::uint8_t(r.get(8));
      inst.cols = std::uint16_t(r.get(16));
      break;
  }
  if (!r.rest_is_zero()) throw IsaError(std::string(name) + ": reserved payload bits set");
  return inst;
}

}  // namespace tpu
