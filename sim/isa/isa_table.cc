// The opcode table. Widths are chosen with room to grow: UB and accumulator rows and row
// counts 32 bits (4 G rows), HBM addresses 48 bits (256 TiB), semaphore masks 64 bits, the
// unit instance 16 bits of which 0..kMaxUnitInstances-1 are valid today.
#include "sim/isa/isa_table.h"

#include <iterator>
#include <limits>
#include <stdexcept>

namespace tpu {
namespace {

// get/set of one Instruction member (possibly nested, e.g. dma.pack), through int64.
#define TPU_FIELD(member)                                                                     \
  FieldAccess {                                                                               \
    [](const Instruction& i) { return std::int64_t(i.member); },                              \
        [](Instruction& i, std::int64_t v) { i.member = decltype(Instruction::member)(v); } \
  }

// Builds a FieldSpec: unsigned over its whole width and required unless told otherwise.
class Field {
 public:
  Field(const char* name, unsigned bits, FieldAccess access, const char* doc) {
    s_.name = name;
    s_.bits = bits;
    s_.access = access;
    s_.doc = doc;
    s_.max = bits >= 63 ? std::numeric_limits<std::int64_t>::max()
                        : (std::int64_t(1) << bits) - 1;
  }
  Field& fallback(std::int64_t v) {
    s_.required = false;
    s_.fallback = v;
    return *this;
  }
  Field& range(std::int64_t lo, std::int64_t hi) {
    s_.min = lo;
    s_.max = hi;
    return *this;
  }
  Field& sign() {
    s_.format = FieldFormat::kSigned;
    return range(-(std::int64_t(1) << (s_.bits - 1)), (std::int64_t(1) << (s_.bits - 1)) - 1);
  }
  Field& hex() {
    s_.format = FieldFormat::kHex;
    return *this;
  }
  template <std::size_t N>
  Field& one_of(const char* const (&names)[N]) {
    s_.format = FieldFormat::kEnum;
    s_.names = names;
    return range(0, std::int64_t(N) - 1);
  }
  // Omitted from canonical assembly when at its fallback.
  Field& quiet() {
    s_.print_default = false;
    return *this;
  }
  Field& semaphores() {
    s_.format = FieldFormat::kSemaphores;
    return fallback(0).quiet();
  }
  operator FieldSpec() const { return s_; }

 private:
  FieldSpec s_;
};

const char* const kActivationNames[] = {"none",    "relu", "relu6", "sigmoid",
                                        "tanh",    "gelu", "silu"};
static_assert(sizeof kActivationNames / sizeof *kActivationNames == kNumActivations);
const char* const kVopKindNames[] = {"map", "mul", "softmax", "layernorm", "rmsnorm"};
constexpr std::int64_t kOne = 0x3f800000;  // 1.0f, the default of every fp32 scale

std::vector<FieldSpec> dma_fields(bool load) {
  std::vector<FieldSpec> fields = {
      Field("hbm", 48, TPU_FIELD(dma.hbm_addr), "first HBM byte").hex(),
      Field("ub", 32, TPU_FIELD(dma.ub_row), "first UB row"),
      Field("elems", 16, TPU_FIELD(dma.elems), "elements per contiguous segment"),
      Field("pack", 16, TPU_FIELD(dma.pack), "elements per UB row"),
      Field("segs", 16, TPU_FIELD(dma.segs), "segments per group").fallback(1),
      Field("seg_stride", 32, TPU_FIELD(dma.seg_stride), "HBM bytes between segments")
          .fallback(0),
      Field("groups", 16, TPU_FIELD(dma.groups), "groups").fallback(1),
      Field("group_stride", 32, TPU_FIELD(dma.group_stride), "HBM bytes between groups")
          .fallback(0),
      Field("ub_stride", 16, TPU_FIELD(dma.ub_stride), "UB rows between groups").fallback(1),
  };
  if (load) {
    fields.push_back(Field("fifo", 8, TPU_FIELD(dma.fifo),
                           "with `weights`: the MXU (unit instance) whose weight FIFO it fills")
                         .range(0, kMaxUnitInstances - 1)
                         .fallback(0)
                         .quiet());
  }
  return fields;
}

std::vector<OpcodeSpec> build_table() {
  return {
      {Opcode::kNop, "nop", Unit::kSequencer, "sync only: waits and signals, no work", {}, {}},
      {Opcode::kHalt, "halt", Unit::kSequencer, "ends the program once every unit has drained",
       {}, {}},
      {Opcode::kLayer, "layer", Unit::kSequencer,
       "tags the following instructions with a layer, for statistics", {},
       {Field("id", 16, TPU_FIELD(layer), "index into the program's layer table")}},
      {Opcode::kDmaLoad, "dma.load", Unit::kDma, "HBM -> UB rows, strided gather",
       {{kFlagWeights, "weights",
         "fill the next weight FIFO entry instead of UB rows (rows packed as from `ub` = 0, "
         "which it must be)"}},
       dma_fields(true)},
      {Opcode::kDmaStore, "dma.store", Unit::kDma, "UB rows -> HBM, strided scatter", {},
       dma_fields(false)},
      {Opcode::kLoadWeights, "load.weights", Unit::kWeightLoad,
       "UB rows -> the MXU's weight tile",
       {{kFlagFifo, "fifo",
         "read the rows from the weight FIFO's oldest entry instead of the UB (`ub` must be 0)"},
        {kFlagTranspose, "transpose",
         "the staged tile is N_t rows of K_t elements, loaded transposed (W[k][n] = row n, "
         "element k)"}},
       {
           Field("ub", 32, TPU_FIELD(ub_row), "first UB row"),
           Field("rows", 32, TPU_FIELD(rows), "tile rows K_t"),
           Field("cols", 16, TPU_FIELD(cols), "tile columns N_t"),
           Field("blocks", 16, TPU_FIELD(ub_stride),
                 "block-diagonal blocks: each weight row feeds cols / blocks columns (a grouped "
                 "conv's group); statistics count rows * cols / blocks PEs as used")
               .fallback(1)
               .quiet(),
       }},
      {Opcode::kMatmul, "matmul", Unit::kMatmul, "UB rows through the MXU into accumulators",
       {{kFlagAccumulate, "accumulate", "add into the accumulators instead of overwriting"}},
       {
           Field("ub", 32, TPU_FIELD(ub_row), "first input UB row"),
           Field("stride", 16, TPU_FIELD(ub_stride), "UB rows between inputs").fallback(1),
           Field("rows", 32, TPU_FIELD(rows), "input rows M"),
           Field("acc", 32, TPU_FIELD(acc_row), "first accumulator row"),
       }},
      {Opcode::kActivate, "activate", Unit::kVector,
       "accumulators -> requantise + activation -> UB rows",
       {{kFlagBias, "bias",
         "add the 32-bit per-column bias from UB word `bias` on to the accumulators first"},
        {kFlagRaw, "raw",
         "write the raw 32-bit accumulator words, each row from the start of its own UB rows, "
         "not requantised elements"}},
       {
           Field("acc", 32, TPU_FIELD(acc_row), "first accumulator row"),
           Field("rows", 32, TPU_FIELD(rows), "rows"),
           Field("cols", 16, TPU_FIELD(cols), "columns"),
           Field("ub", 32, TPU_FIELD(ub_row), "first destination UB row"),
           Field("func", 8, TPU_FIELD(func), "activation").one_of(kActivationNames).fallback(0),
           Field("multiplier", 32, TPU_FIELD(multiplier), "int8 requantiser multiplier")
               .sign()
               .fallback(1),
           Field("shift", 8, TPU_FIELD(shift), "int8 rounding right shift (<= 62 to run)")
               .fallback(0),
           Field("zero_point", 8, TPU_FIELD(zero_point), "int8 output zero point")
               .sign()
               .fallback(0),
           Field("scale_in", 32, TPU_FIELD(scale_a),
                 "accumulator scale, int8 fp32 path and bf16 (fp32 bits)")
               .hex()
               .fallback(kOne)
               .quiet(),
           Field("scale_out", 32, TPU_FIELD(scale_out),
                 "int8 fp32 path: 1 / output scale (fp32 bits)")
               .hex()
               .fallback(kOne)
               .quiet(),
           Field("bias", 32, TPU_FIELD(src_row),
                 "with `bias`: first UB word (4 bytes) of the cols biases")
               .fallback(0)
               .quiet(),
       }},
      {Opcode::kPool, "pool", Unit::kVector, "UB rows -> max or average pooling -> UB rows",
       {{kFlagAverage, "average", "average instead of maximum"}},
       {
           Field("ub", 32, TPU_FIELD(ub_row), "first input UB row"),
           Field("dst", 32, TPU_FIELD(dst_row), "first output UB row"),
           Field("in_h", 16, TPU_FIELD(in_h), "input grid height"),
           Field("in_w", 16, TPU_FIELD(in_w), "input grid width"),
           Field("kernel_h", 16, TPU_FIELD(kernel_h), "window height"),
           Field("kernel_w", 16, TPU_FIELD(kernel_w), "window width"),
           Field("stride", 8, TPU_FIELD(stride), "window step"),
           Field("cols", 16, TPU_FIELD(cols), "channels"),
           Field("multiplier", 32, TPU_FIELD(multiplier), "int8 average: sum multiplier")
               .sign()
               .fallback(1),
           Field("shift", 8, TPU_FIELD(shift), "int8 average: rounding right shift").fallback(0),
       }},
      {Opcode::kAdd, "add", Unit::kVector, "two UB row ranges -> element-wise add -> UB rows",
       {},
       {
           Field("ub_a", 32, TPU_FIELD(ub_row), "first UB row of input a"),
           Field("ub_b", 32, TPU_FIELD(src_row), "first UB row of input b"),
           Field("dst", 32, TPU_FIELD(dst_row), "first output UB row"),
           Field("rows", 32, TPU_FIELD(rows), "rows"),
           Field("cols", 16, TPU_FIELD(cols), "elements per row"),
           Field("func", 8, TPU_FIELD(func), "activation").one_of(kActivationNames).fallback(0),
           Field("multiplier_a", 32, TPU_FIELD(multiplier), "int8 requantiser multiplier of a")
               .sign()
               .fallback(1),
           Field("multiplier_b", 32, TPU_FIELD(multiplier_b), "int8 requantiser multiplier of b")
               .sign()
               .fallback(1),
           Field("shift", 8, TPU_FIELD(shift), "int8 rounding right shift (<= 62 to run)")
               .fallback(0),
           Field("zero_point", 8, TPU_FIELD(zero_point), "int8 output zero point")
               .sign()
               .fallback(0),
       }},
      {Opcode::kVop, "vop", Unit::kVector,
       "UB rows -> fp32 map, multiply, softmax or norm, then activation -> UB rows",
       {{kFlagCausal, "causal",
         "softmax: row i keeps columns j <= mask_row + i + mask_offset, the rest are 0"}},
       {
           Field("kind", 8, TPU_FIELD(kind), "what each row computes")
               .one_of(kVopKindNames)
               .fallback(0),
           Field("ub_a", 32, TPU_FIELD(ub_row), "first UB row of input a"),
           Field("ub_b", 32, TPU_FIELD(src_row),
                 "first UB row of input b (mul), or of gamma then beta (the norms)")
               .fallback(0),
           Field("dst", 32, TPU_FIELD(dst_row), "first output UB row"),
           Field("rows", 32, TPU_FIELD(rows), "rows"),
           Field("cols", 16, TPU_FIELD(cols), "elements per row"),
           Field("func", 8, TPU_FIELD(func), "activation").one_of(kActivationNames).fallback(0),
           Field("scale_a", 32, TPU_FIELD(scale_a), "int8: scale of input a (fp32 bits)")
               .hex()
               .fallback(kOne)
               .quiet(),
           Field("scale_b", 32, TPU_FIELD(scale_b), "int8: scale of input b (fp32 bits)")
               .hex()
               .fallback(kOne)
               .quiet(),
           Field("scale_out", 32, TPU_FIELD(scale_out), "int8: 1 / output scale (fp32 bits)")
               .hex()
               .fallback(kOne)
               .quiet(),
           Field("mask_row", 32, TPU_FIELD(mask_row), "causal: mask row of the first row")
               .fallback(0)
               .quiet(),
           Field("mask_offset", 32, TPU_FIELD(mask_offset), "causal: columns kept past the row")
               .sign()
               .fallback(0)
               .quiet(),
           Field("eps", 32, TPU_FIELD(eps), "norms: added to the variance (fp32 bits)")
               .hex()
               .fallback(0x3727c5ac)
               .quiet(),
           Field("chunk_cols", 16, TPU_FIELD(chunk_cols),
                 "row ops: elements per UB row of a row spanning several (0: one UB row)")
               .fallback(0)
               .quiet(),
           Field("chunk_stride_a", 32, TPU_FIELD(chunk_stride_a),
                 "row ops: UB rows between a row's chunks in a")
               .fallback(0)
               .quiet(),
           Field("chunk_stride_dst", 32, TPU_FIELD(chunk_stride_dst),
                 "row ops: UB rows between a row's chunks in dst")
               .fallback(0)
               .quiet(),
       }},
      {Opcode::kSignalCore, "signal.core", Unit::kSequencer,
       "waits like nop, then signals its `signal` semaphores on core `core`, "
       "chip.interconnect_latency_cycles later",
       {},
       {Field("core", 8, TPU_FIELD(core), "the core whose semaphores are signalled")
            .range(0, kMaxUnitInstances - 1)}},
      {Opcode::kAccLoad, "acc.load", Unit::kVector,
       "raw 32-bit words in UB rows (as `activate raw` writes them) -> accumulators",
       {{kFlagAccumulate, "accumulate",
         "add to the accumulators (int32 wrapping, or one fp32 addition) instead of overwriting"}},
       {
           Field("ub", 32, TPU_FIELD(ub_row), "first source UB row"),
           Field("rows", 32, TPU_FIELD(rows), "accumulator rows"),
           Field("cols", 16, TPU_FIELD(cols), "columns (32-bit words per accumulator row)"),
           Field("acc", 32, TPU_FIELD(acc_row), "first accumulator row"),
       }},
  };
}

std::vector<FieldSpec> build_header() {
  return {
      Field("unit", 16, TPU_FIELD(instance), "which unit of the opcode's kind runs it")
          .range(0, kMaxUnitInstances - 1)
          .fallback(0)
          .quiet(),
      Field("wait", 64, TPU_FIELD(wait), "semaphores to wait for and decrement at the start")
          .semaphores(),
      Field("signal", 64, TPU_FIELD(signal), "semaphores to increment at completion")
          .semaphores(),
  };
}

#undef TPU_FIELD

std::string range_text(const FieldSpec& f) {
  switch (f.format) {
    case FieldFormat::kSemaphores:
      return "mask of s0..s" + std::to_string(kNumSemaphores - 1);
    case FieldFormat::kEnum: {
      std::string out;
      for (std::int64_t v = 0; v <= f.max; ++v) {
        out += (v ? ", " : "") + std::to_string(v) + " `" + f.names[v] + "`";
      }
      return out;
    }
    case FieldFormat::kSigned:
      if (f.bits > 8 && f.min == -(std::int64_t(1) << (f.bits - 1))) {
        return "-2^" + std::to_string(f.bits - 1) + " .. 2^" + std::to_string(f.bits - 1) + "-1";
      }
      break;
    case FieldFormat::kUnsigned:
    case FieldFormat::kHex:
      if (f.min == 0 && f.bits > 8 && f.bits < 63 && f.max == (std::int64_t(1) << f.bits) - 1) {
        return "0 .. 2^" + std::to_string(f.bits) + "-1";
      }
      break;
  }
  return std::to_string(f.min) + " .. " + std::to_string(f.max);
}

std::string default_text(const FieldSpec& f) {
  if (f.required) return "-";
  if (f.format == FieldFormat::kSemaphores) return "none";
  if (f.format == FieldFormat::kEnum) return f.names[f.fallback];
  if (f.format == FieldFormat::kHex) return hex(std::uint64_t(f.fallback));
  return std::to_string(f.fallback);
}

std::string field_row(const std::string& op_cell, const FieldSpec& f, unsigned bit) {
  return "| " + op_cell + " | `" + f.name + "` | " + std::to_string(f.bits) + " | " +
         std::to_string(bit) + "-" + std::to_string(bit + f.bits - 1) + " | " + range_text(f) +
         " | " + default_text(f) + " | " + f.doc + " |\n";
}

}  // namespace

std::uint8_t OpcodeSpec::flag_mask() const {
  std::uint8_t mask = 0;
  for (const FlagSpec& f : flags) mask |= f.bit;
  return mask;
}

const std::vector<OpcodeSpec>& isa_table() {
  static const std::vector<OpcodeSpec> table = [] {
    std::vector<OpcodeSpec> t = build_table();
    unsigned header = kFirstFieldBit;
    for (const FieldSpec& f : header_fields()) header += f.bits;
    for (std::size_t code = 0; code < t.size(); ++code) {
      unsigned end = header;
      for (const FieldSpec& f : t[code].fields) end += f.bits;
      if (std::size_t(t[code].op) != code || end > kInstructionBytes * 8) {
        throw std::logic_error(std::string("ISA table: ") + t[code].mnemonic +
                               " is out of order or does not fit the instruction");
      }
    }
    return t;
  }();
  return table;
}

const std::vector<FieldSpec>& header_fields() {
  static const std::vector<FieldSpec> fields = build_header();
  return fields;
}

const OpcodeSpec& opcode_spec(Opcode op) {
  const std::vector<OpcodeSpec>& table = isa_table();
  if (std::size_t(op) >= table.size()) {
    throw IsaError("unknown opcode " + std::to_string(int(op)));
  }
  return table[std::size_t(op)];
}

void check_field(const OpcodeSpec& op, const FieldSpec& field, std::int64_t value) {
  if (field.format == FieldFormat::kSemaphores) return;  // every bit names a semaphore
  if (value < field.min || value > field.max) {
    throw IsaError(std::string(op.mnemonic) + ": " + field.name + " = " + std::to_string(value) +
                   " out of range " + std::to_string(field.min) + ".." +
                   std::to_string(field.max));
  }
}

std::uint64_t field_max(Opcode op, const std::string& name) {
  for (const FieldSpec& f : opcode_spec(op).fields) {
    if (name == f.name) return std::uint64_t(f.max);
  }
  throw IsaError(std::string(mnemonic(op)) + " has no field '" + name + "'");
}

Unit unit_of(Opcode op) { return opcode_spec(op).unit; }

const char* mnemonic(Opcode op) { return opcode_spec(op).mnemonic; }

const char* to_string(Activation func) {
  return std::uint8_t(func) < kNumActivations ? kActivationNames[std::uint8_t(func)] : "?";
}

const char* to_string(VopKind kind) {
  return std::uint8_t(kind) < std::size(kVopKindNames) ? kVopKindNames[std::uint8_t(kind)] : "?";
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

std::string isa_markdown() {
  std::string out =
      "| code | mnemonic | unit | flag words | what it does |\n"
      "|---|---|---|---|---|\n";
  for (const OpcodeSpec& op : isa_table()) {
    std::string flags;
    for (const FlagSpec& f : op.flags) {
      flags += (flags.empty() ? "" : ", ") + std::string("`") + f.word + "` (" +
               hex(f.bit) + "): " + f.doc;
    }
    out += "| " + std::to_string(int(op.op)) + " | `" + op.mnemonic + "` | " +
           to_string(op.unit) + " | " + flags + " | " + op.doc + " |\n";
  }
  out +=
      "\n| opcode | field | bits | instruction bits | range | default | meaning |\n"
      "|---|---|---|---|---|---|---|\n";
  // Header fields sit at the same bits in every instruction: listed once.
  unsigned bit = kFirstFieldBit;
  for (const FieldSpec& f : header_fields()) {
    out += field_row(bit == kFirstFieldBit ? "every opcode" : "", f, bit);
    bit += f.bits;
  }
  const unsigned payload = bit;
  for (const OpcodeSpec& op : isa_table()) {
    bit = payload;
    for (const FieldSpec& f : op.fields) {
      out += field_row(bit == payload ? std::string("`") + op.mnemonic + "`" : "", f, bit);
      bit += f.bits;
    }
  }
  return out;
}

}  // namespace tpu
