// The instruction set: binary encoding, assembly text and the program container.
#include "sim/isa/isa.h"

#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "sim/isa/isa_table.h"
#include "sim/isa/program.h"
#include "tests/test_paths.h"

namespace tpu {
namespace {

// A value drawn uniformly from the field's whole valid range.
std::int64_t random_value(const FieldSpec& f, std::mt19937_64& rng) {
  if (f.format == FieldFormat::kSemaphores) return std::int64_t(rng());
  const std::uint64_t span = std::uint64_t(f.max - f.min) + 1;
  return f.min + std::int64_t(rng() % span);
}

// An instruction of `op` whose flags and every table field are random over their valid range.
Instruction random_instruction(const OpcodeSpec& op, std::mt19937_64& rng) {
  Instruction i;
  i.op = op.op;
  i.flags = std::uint8_t(rng() & op.flag_mask());
  for_each_field(op, [&](const FieldSpec& f, unsigned) { f.set(i, random_value(f, rng)); });
  return i;
}

Instruction matmul(std::uint32_t ub, std::uint32_t rows, std::uint32_t acc) {
  Instruction i;
  i.op = Opcode::kMatmul;
  i.ub_row = ub;
  i.rows = rows;
  i.acc_row = acc;
  return i;
}

void expect_programs_equal(const Program& a, const Program& b, bool with_data) {
  EXPECT_EQ(a.dtype, b.dtype);
  EXPECT_EQ(a.array_rows, b.array_rows);
  EXPECT_EQ(a.array_cols, b.array_cols);
  EXPECT_EQ(a.hbm_bytes, b.hbm_bytes);
  EXPECT_EQ(a.instructions, b.instructions);
  EXPECT_EQ(a.semaphore_names, b.semaphore_names);
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (std::size_t i = 0; i < a.layers.size(); ++i) {
    EXPECT_EQ(a.layers[i].name, b.layers[i].name);
    EXPECT_EQ(a.layers[i].kind, b.layers[i].kind);
    EXPECT_EQ(a.layers[i].macs, b.layers[i].macs);
    if (!with_data) continue;
    const TensorView &va = a.layers[i].output, &vb = b.layers[i].output;
    EXPECT_EQ(va.base, vb.base);
    EXPECT_EQ(va.count0, vb.count0);
    EXPECT_EQ(va.count1, vb.count1);
    EXPECT_EQ(va.stride1, vb.stride1);
    EXPECT_EQ(va.count2, vb.count2);
    EXPECT_EQ(va.stride2, vb.stride2);
    EXPECT_EQ(a.layers[i].expected_int8, b.layers[i].expected_int8);
    EXPECT_EQ(a.layers[i].expected_fp32, b.layers[i].expected_fp32);
  }
  if (!with_data) return;
  ASSERT_EQ(a.hbm_image.size(), b.hbm_image.size());
  for (std::size_t i = 0; i < a.hbm_image.size(); ++i) {
    EXPECT_EQ(a.hbm_image[i].name, b.hbm_image[i].name);
    EXPECT_EQ(a.hbm_image[i].address, b.hbm_image[i].address);
    EXPECT_EQ(a.hbm_image[i].bytes, b.hbm_image[i].bytes);
  }
}

// The message of the IsaError `f` raises, or "" if it raises none.
template <typename F>
std::string isa_error(F f) {
  try {
    f();
  } catch (const IsaError& e) {
    return e.what();
  }
  return "";
}

std::string parse_error(const std::string& text) {
  return isa_error([&] { parse_assembly(text); });
}

// An 8x8 int8 matmul with every opcode and named semaphores; the example of ISA.md.
const char* const kExample = R"(
# Y = relu(requant(X * W)), X 8x8 at 0x0, W 8x8 at 0x40, Y to 0x80
.dtype int8
.array 8 8
.hbm 192
.sem 0 x_ready
.sem 1 w_ready   ; weights staged
.sem 2 acc_ready
.sem 3 y_ready
.layer 0 fc1 matmul 512
layer id=0
  dma.load hbm=0x40 ub=8 elems=8 pack=8 groups=8 group_stride=8 signal=w_ready
  dma.load hbm=0 ub=0 elems=8 pack=8 groups=8 group_stride=8 ub_stride=1 signal=x_ready
  load.weights ub=8 rows=8 cols=8 wait=w_ready
  matmul ub=0 rows=8 acc=0 wait=x_ready signal=acc_ready
  activate acc=0 rows=8 cols=8 ub=16 func=relu multiplier=3 shift=4 zero_point=-2 wait=acc_ready signal=y_ready
  pool ub=16 dst=24 in_h=4 in_w=2 kernel_h=2 kernel_w=2 stride=2 cols=8
  dma.store hbm=0x80 ub=16 elems=8 pack=8 groups=8 group_stride=8 wait=y_ready
  nop wait=s5,s4 signal=s15
halt
)";

// Each random instruction goes encode -> decode -> to_assembly -> parse_assembly and comes
// back equal; every opcode of the table is covered, so a new one is too.
TEST(Encoding, EveryOpcodeRoundTripsThroughBinaryAndText) {
  std::mt19937_64 rng(1234);
  Program p;
  for (const OpcodeSpec& op : isa_table()) {
    for (int n = 0; n < 200; ++n) {
      const Instruction inst = random_instruction(op, rng);
      const Instruction back = decode(encode(inst));
      EXPECT_EQ(back, inst) << op.mnemonic;
      p.instructions.push_back(back);
    }
  }
  // LAYER ids must name declared layers: declare as many as the largest id needs.
  std::size_t layers = 0;
  for (const Instruction& i : p.instructions) {
    if (i.op == Opcode::kLayer) layers = std::max<std::size_t>(layers, i.layer + 1u);
  }
  p.layers.resize(layers);
  const Program q = parse_assembly(to_assembly(p));
  ASSERT_EQ(q.instructions.size(), p.instructions.size());
  for (std::size_t i = 0; i < p.instructions.size(); ++i) {
    EXPECT_EQ(q.instructions[i], p.instructions[i]) << to_assembly(p.instructions[i]);
  }
}

// InstructionList keeps each instruction as a compact record: every opcode's random
// instructions come back equal (fields the opcode does not list are not kept), their opcode,
// flags, instance and signal read without a decode agree, set() replaces one in place or at
// the end without touching its neighbours, and add_signal patches a mask.
TEST(InstructionList, KeepsEveryOpcodeAndReplacesInPlaceOrAtTheEnd) {
  std::mt19937_64 rng(99);
  std::vector<Instruction> want;
  InstructionList list;
  for (const OpcodeSpec& op : isa_table()) {
    for (int n = 0; n < 200; ++n) {
      want.push_back(random_instruction(op, rng));
      list.push_back(want.back());
    }
  }
  ASSERT_EQ(list.size(), want.size());
  std::size_t pc = 0;
  for (const Instruction& inst : list) {
    EXPECT_EQ(inst, want[pc]) << to_assembly(want[pc]);
    EXPECT_EQ(list.op(pc), want[pc].op);
    EXPECT_EQ(list.flags(pc), want[pc].flags);
    EXPECT_EQ(list.instance(pc), want[pc].instance);
    EXPECT_EQ(list.signal(pc), want[pc].signal);
    ++pc;
  }

  Instruction m = matmul(1, 2, 3);
  m.dma.hbm_addr = 77;  // not a MATMUL field: not kept
  InstructionList one{m};
  EXPECT_EQ(one[0].dma.hbm_addr, 0u);
  EXPECT_EQ(one[0].rows, 2u);

  // Same length: in place. Longer: moved to the end. Both leave their neighbours alone.
  const std::size_t bytes = list.bytes();
  list.set(5, matmul(2, 3, 4));
  want[5] = matmul(2, 3, 4);
  Instruction wide = matmul(1u << 30, 1u << 30, 1u << 30);
  wide.wait = ~std::uint64_t(0);
  list.set(6, wide);
  want[6] = wide;
  list.add_signal(7, std::uint64_t(1) << 63);
  want[7].signal |= std::uint64_t(1) << 63;
  for (std::size_t i = 0; i < want.size(); ++i) EXPECT_EQ(list[i], want[i]) << i;
  EXPECT_GT(list.bytes(), bytes);
  list.set(6, wide);  // its record at the end now keeps its length: in place
  const std::size_t after = list.bytes();
  list.set(6, wide);
  EXPECT_EQ(list.bytes(), after);
}

// A MATMUL with small fields takes its opcode, flags, a 3-byte mask-pair index, a byte per
// other field (the unit and the table's MATMUL fields) and its 4-byte index entry; the one
// (wait, signal) pair they share is kept once (16 bytes).
TEST(InstructionList, SmallFieldsTakeOneByteEach) {
  InstructionList list;
  for (int i = 0; i < 1000; ++i) list.push_back(matmul(std::uint32_t(i % 60), 8, 3));
  const std::size_t record = 2 + 3 + 1 + opcode_spec(Opcode::kMatmul).fields.size();
  EXPECT_EQ(list.record_bytes(), 1000 * record);
  EXPECT_EQ(list.bytes(), 1000 * (record + 4) + 16);
}

// Instructions share their (wait, signal) pair: each distinct pair is kept once, and
// add_signal patches a record's pair index in place (its record keeps its length) without
// touching another instruction that had the same masks.
TEST(InstructionList, MaskPairsAreKeptOnceAndPatchedInPlace) {
  InstructionList list;
  Instruction a = matmul(1, 8, 3);
  a.wait = 1;
  a.signal = 2;
  Instruction b = a;
  b.signal = 4;
  for (int i = 0; i < 100; ++i) list.push_back(i % 2 ? b : a);
  const std::size_t records = list.record_bytes();
  EXPECT_EQ(list.bytes(), records + 100 * 4 + 2 * 16);
  list.add_signal(0, 4);   // a's pair becomes (1, 6): a third pair
  list.add_signal(1, 2);   // b's pair becomes (1, 6) too: no new pair
  EXPECT_EQ(list.record_bytes(), records);
  EXPECT_EQ(list.bytes(), records + 100 * 4 + 3 * 16);
  EXPECT_EQ(list[0].signal, 6u);
  EXPECT_EQ(list[1].signal, 6u);
  EXPECT_EQ(list[2], a);
  EXPECT_EQ(list[3], b);
  EXPECT_EQ(list[0].wait, 1u);
}

// Proves no field is ignored: changing any one field of any opcode changes the encoding and
// breaks equality.
TEST(Encoding, EveryFieldChangesTheEncodingAndEquality) {
  std::mt19937_64 rng(7);
  for (const OpcodeSpec& op : isa_table()) {
    for_each_field(op, [&](const FieldSpec& f, unsigned) {
      for (int n = 0; n < 20; ++n) {
        const Instruction a = random_instruction(op, rng);
        Instruction b = a;
        std::int64_t v;
        do v = random_value(f, rng);
        while (v == f.get(a));
        f.set(b, v);
        EXPECT_NE(encode(a), encode(b)) << op.mnemonic << " " << f.name;
        EXPECT_NE(a, b) << op.mnemonic << " " << f.name;
      }
    });
    for (const FlagSpec& flag : op.flags) {
      Instruction a = random_instruction(op, rng), b = a;
      b.flags ^= flag.bit;
      EXPECT_NE(encode(a), encode(b)) << op.mnemonic << " " << flag.word;
      EXPECT_NE(a, b) << op.mnemonic << " " << flag.word;
    }
  }
}

// The Instruction member behind each field can hold its whole range (a table wider than its
// member would silently truncate).
TEST(Encoding, EveryFieldHoldsItsWholeRange) {
  for (const OpcodeSpec& op : isa_table()) {
    for_each_field(op, [&](const FieldSpec& f, unsigned) {
      if (f.format == FieldFormat::kSemaphores) return;
      Instruction i;
      f.set(i, f.min);
      EXPECT_EQ(f.get(i), f.min) << op.mnemonic << " " << f.name;
      f.set(i, f.max);
      EXPECT_EQ(f.get(i), f.max) << op.mnemonic << " " << f.name;
      EXPECT_GE(f.max, f.min);
    });
  }
}

// Fields whose member can hold a value past the field's range are rejected by name.
TEST(Encoding, OutOfRangeValuesNameTheOpcodeAndField) {
  int checked = 0;
  for (const OpcodeSpec& op : isa_table()) {
    for_each_field(op, [&](const FieldSpec& f, unsigned) {
      if (f.format == FieldFormat::kSemaphores) return;
      for (const std::int64_t bad : {f.max + 1, f.min - 1}) {
        Instruction i;
        i.op = op.op;
        f.set(i, bad);
        if (f.get(i) != bad) continue;  // the member cannot hold it
        ++checked;
        EXPECT_EQ(isa_error([&] { encode(i); }),
                  std::string(op.mnemonic) + ": " + f.name + " = " + std::to_string(bad) +
                      " out of range " + std::to_string(f.min) + ".." + std::to_string(f.max));
      }
    });
  }
  EXPECT_GT(checked, 10);  // unit, func and hbm at least, for every opcode that has them
  Instruction n;
  n.flags = kFlagAccumulate;  // only MATMUL has a flag
  EXPECT_EQ(isa_error([&] { encode(n); }), "nop: flags 0x1 not valid");
  Instruction bad;
  bad.op = Opcode(0xee);
  EXPECT_EQ(isa_error([&] { encode(bad); }), "unknown opcode 238");
}

// The assembler checks every numeric field of every opcode against the table's range.
TEST(Assembly, OutOfRangeKeysNameTheOpcodeAndField) {
  for (const OpcodeSpec& op : isa_table()) {
    for_each_field(op, [&](const FieldSpec& f, unsigned) {
      if (f.format == FieldFormat::kSemaphores || f.format == FieldFormat::kEnum) return;
      for (const std::int64_t bad : {f.max + 1, f.min - 1}) {
        if (bad < 0 && !f.is_signed()) continue;  // a '-' is a bad number, not out of range
        std::string line = op.mnemonic;
        for (const FieldSpec& g : op.fields) {
          if (&g == &f || g.required) {
            line += std::string(" ") + g.name + "=" + std::to_string(&g == &f ? bad : g.min);
          }
        }
        if (&f == &header_fields().front()) line += " unit=" + std::to_string(bad);
        EXPECT_EQ(parse_error(".layer 0 a b 0\n" + line),
                  "line 2: " + std::string(op.mnemonic) + ": " + f.name + " = " +
                      std::to_string(bad) + " out of range " + std::to_string(f.min) + ".." +
                      std::to_string(f.max))
            << line;
      }
    });
  }
}

TEST(Encoding, LayoutIsLittleEndianBitFieldsAfterTheHeader) {
  Instruction d;
  d.op = Opcode::kDmaStore;
  d.instance = 0;
  d.wait = 0x0102;
  d.signal = 0x8000000000000004;
  d.dma.hbm_addr = 0xba987654321a;
  d.dma.ub_row = 0x89abcdef;
  d.dma.elems = 0x1122;
  d.dma.pack = 0x7788;
  const EncodedInstruction e = encode(d);
  auto bytes = [&](std::size_t from, std::size_t n) {
    return std::vector<int>(e.begin() + std::ptrdiff_t(from), e.begin() + std::ptrdiff_t(from + n));
  };
  EXPECT_EQ(e[0], 4);                                    // opcode
  EXPECT_EQ(e[1], 0);                                    // flags
  EXPECT_EQ(bytes(2, 2), (std::vector<int>{0, 0}));      // unit instance, 16 bits
  EXPECT_EQ(bytes(4, 8), (std::vector<int>{2, 1, 0, 0, 0, 0, 0, 0}));  // wait, low byte first
  EXPECT_EQ(bytes(12, 8), (std::vector<int>{4, 0, 0, 0, 0, 0, 0, 0x80}));  // signal
  EXPECT_EQ(bytes(20, 6), (std::vector<int>{0x1a, 0x32, 0x54, 0x76, 0x98, 0xba}));  // hbm, 48
  EXPECT_EQ(bytes(26, 4), (std::vector<int>{0xef, 0xcd, 0xab, 0x89}));  // ub, 32 bits
  EXPECT_EQ(bytes(30, 2), (std::vector<int>{0x22, 0x11}));              // elems
  EXPECT_EQ(bytes(32, 2), (std::vector<int>{0x88, 0x77}));              // pack
  EXPECT_EQ(e[34], 1);                                  // segs default 1
  EXPECT_EQ(e[40], 1);                                  // groups default 1 (after seg_stride 32)
  EXPECT_EQ(e[46], 1);                                  // ub_stride default 1 (after group_stride)
  EXPECT_EQ(bytes(48, 16), std::vector<int>(16, 0));    // past the last field

  // ACTIVATE: acc 32 | rows 32 | cols 16 | ub 32 | func 8 | multiplier 32 | shift 8 |
  // zero_point 8 from byte 20: func at byte 34, multiplier 35-38, shift 39, zero_point 40.
  Instruction a;
  a.op = Opcode::kActivate;
  a.instance = 3;
  a.func = Activation::kRelu;
  a.multiplier = -2;
  a.shift = 7;
  a.zero_point = -1;
  const EncodedInstruction ea = encode(a);
  EXPECT_EQ(ea[2], 3);
  EXPECT_EQ(ea[34], 1);
  EXPECT_EQ(ea[35], 0xfe);
  EXPECT_EQ(ea[38], 0xff);
  EXPECT_EQ(ea[39], 7);
  EXPECT_EQ(ea[40], 0xff);

  Instruction m = matmul(1, 2, 3);
  m.flags = kFlagAccumulate;
  EXPECT_EQ(encode(m)[1], kFlagAccumulate);
}

TEST(Encoding, MalformedBytesAreRejected) {
  EncodedInstruction e{};
  e[0] = 0xee;
  EXPECT_EQ(isa_error([&] { decode(e); }), "unknown opcode byte 0xee");
  e = encode(matmul(0, 1, 0));
  e[kInstructionBytes - 1] = 0x80;  // past the last MATMUL field
  EXPECT_EQ(isa_error([&] { decode(e); }), "matmul: reserved bits set");
  e = encode(matmul(0, 1, 0));
  e[2] = 16;
  EXPECT_EQ(isa_error([&] { decode(e); }), "matmul: unit = 16 out of range 0..15");
  Instruction a;
  a.op = Opcode::kActivate;
  e = encode(a);
  e[34] = 7;
  EXPECT_EQ(isa_error([&] { decode(e); }), "activate: func = 7 out of range 0..6");
  e = encode(Instruction{});
  e[1] = 1;
  EXPECT_EQ(isa_error([&] { decode(e); }), "nop: flags 0x1 not valid");
}

TEST(Encoding, EqualityComparesOnlyTheOpcodesFields) {
  Instruction a = matmul(4, 8, 16), b = a;
  b.dst_row = 99;  // a POOL field
  b.func = Activation::kRelu;
  b.dma.pack = 3;
  EXPECT_EQ(a, b);
  b.ub_stride = 2;
  EXPECT_NE(a, b);
  b = a;
  b.signal = std::uint64_t(1) << 63;
  EXPECT_NE(a, b);
  b = a;
  b.instance = 1;
  EXPECT_NE(a, b);
}

TEST(Encoding, MnemonicsAndUnits) {
  const char* names[] = {"nop",    "halt",     "layer", "dma.load", "dma.store", "load.weights",
                         "matmul", "activate", "pool",  "add",      "vop",       "signal.core",
                         "acc.load"};
  const Unit units[] = {Unit::kSequencer, Unit::kSequencer, Unit::kSequencer, Unit::kDma,
                        Unit::kDma,       Unit::kWeightLoad, Unit::kMatmul,   Unit::kVector,
                        Unit::kVector,    Unit::kVector,     Unit::kVector,
                        Unit::kSequencer, Unit::kVector};
  ASSERT_EQ(isa_table().size(), std::size(names));
  for (std::size_t i = 0; i < std::size(names); ++i) {
    EXPECT_STREQ(mnemonic(Opcode(i)), names[i]);
    EXPECT_EQ(unit_of(Opcode(i)), units[i]);
  }
  EXPECT_STREQ(to_string(Unit::kWeightLoad), "weight_load");
  EXPECT_STREQ(to_string(Unit::kVector), "vector");
}

// ISA.md's opcode and field tables are isa_markdown() pasted between its markers; regenerate
// them with `tpusim isa` after changing the table.
TEST(Encoding, IsaMdFieldTablesMatchTheTable) {
  std::ifstream in(tpu::test_paths::source_dir() + "/sim/isa/ISA.md");
  ASSERT_TRUE(in) << "sim/isa/ISA.md";
  std::stringstream text;
  text << in.rdbuf();
  const std::string md = text.str();
  const std::string begin = "<!-- isa-table begin: generated by `tpusim isa` -->\n";
  const std::string end = "<!-- isa-table end -->";
  const std::size_t b = md.find(begin), e = md.find(end);
  ASSERT_NE(b, std::string::npos);
  ASSERT_NE(e, std::string::npos);
  EXPECT_EQ(md.substr(b + begin.size(), e - b - begin.size()), isa_markdown());
}

TEST(Assembly, ParsesTheExampleProgram) {
  const Program p = parse_assembly(kExample);
  EXPECT_EQ(p.dtype, DataType::kInt8);
  EXPECT_EQ(p.array_rows, 8u);
  EXPECT_EQ(p.array_cols, 8u);
  EXPECT_EQ(p.hbm_bytes, 192u);
  ASSERT_EQ(p.semaphore_names.size(), kNumSemaphores);
  EXPECT_EQ(p.semaphore_names[1], "w_ready");
  ASSERT_EQ(p.layers.size(), 1u);
  EXPECT_EQ(p.layers[0].name, "fc1");
  EXPECT_EQ(p.layers[0].kind, "matmul");
  EXPECT_EQ(p.layers[0].macs, 512u);
  ASSERT_EQ(p.instructions.size(), 10u);

  const Instruction& w = p.instructions[1];
  EXPECT_EQ(w.op, Opcode::kDmaLoad);
  EXPECT_EQ(w.dma.hbm_addr, 0x40u);
  EXPECT_EQ(w.dma.ub_row, 8u);
  EXPECT_EQ(w.dma.groups, 8u);
  EXPECT_EQ(w.dma.group_stride, 8u);
  EXPECT_EQ(w.dma.segs, 1u);       // default
  EXPECT_EQ(w.dma.ub_stride, 1u);  // default
  EXPECT_EQ(w.signal, 1u << 1);

  const Instruction& m = p.instructions[4];
  Instruction expected = matmul(0, 8, 0);
  expected.wait = 1u << 0;
  expected.signal = 1u << 2;
  EXPECT_EQ(m, expected);
  EXPECT_EQ(m.ub_stride, 1u);
  EXPECT_EQ(m.flags, 0u);
  EXPECT_EQ(m.wait, 1u << 0);
  EXPECT_EQ(m.signal, 1u << 2);

  const Instruction& a = p.instructions[5];
  EXPECT_EQ(a.func, Activation::kRelu);
  EXPECT_EQ(a.multiplier, 3);
  EXPECT_EQ(a.shift, 4);
  EXPECT_EQ(a.zero_point, -2);

  const Instruction& n = p.instructions[8];
  EXPECT_EQ(n.op, Opcode::kNop);
  EXPECT_EQ(n.wait, (1u << 5) | (1u << 4));
  EXPECT_EQ(n.signal, 1u << 15);
  EXPECT_EQ(p.instructions[9].op, Opcode::kHalt);
}

TEST(Assembly, OptionalKeysTakeTheirDefaults) {
  const Program p = parse_assembly(
      "activate acc=1 rows=2 cols=3 ub=4\n"
      "matmul ub=0 rows=1 acc=0 accumulate\n"
      "dma.load hbm=0x10 ub=0 elems=4 pack=4\n");
  const Instruction& a = p.instructions[0];
  EXPECT_EQ(a.func, Activation::kNone);
  EXPECT_EQ(a.multiplier, 1);
  EXPECT_EQ(a.shift, 0);
  EXPECT_EQ(a.zero_point, 0);
  EXPECT_EQ(p.instructions[1].flags, kFlagAccumulate);
  EXPECT_EQ(p.instructions[1].ub_stride, 1u);
  const DmaFields& d = p.instructions[2].dma;
  EXPECT_EQ(d.segs, 1u);
  EXPECT_EQ(d.seg_stride, 0u);
  EXPECT_EQ(d.groups, 1u);
  EXPECT_EQ(d.group_stride, 0u);
  EXPECT_EQ(d.ub_stride, 1u);
}

TEST(Assembly, ProgramRoundTripsThroughText) {
  std::mt19937_64 rng(99);
  Program p;
  p.dtype = DataType::kBf16;
  p.array_rows = 16;
  p.array_cols = 32;
  p.hbm_bytes = 1 << 20;
  p.semaphore_names.assign(kNumSemaphores, "");
  p.semaphore_names[3] = "ready";
  p.semaphore_names[15] = "done.all";
  p.layers.push_back({"conv 1", "conv2d", 123456789, {}, {}, {}});
  p.layers.push_back({"", "odd\"kind\\#;", 0, {}, {}, {}});
  for (const OpcodeSpec& op : isa_table()) {
    for (int n = 0; n < 20; ++n) {
      Instruction i = random_instruction(op, rng);
      if (op.op == Opcode::kLayer) i.layer = std::uint16_t(n % 2);
      p.instructions.push_back(i);
    }
  }
  const std::string text = to_assembly(p);
  expect_programs_equal(parse_assembly(text), p, false);
  EXPECT_EQ(to_assembly(parse_assembly(text)), text);
}

TEST(Assembly, CanonicalTextIsStable) {
  const std::string once = to_assembly(parse_assembly(kExample));
  EXPECT_EQ(to_assembly(parse_assembly(once)), once);
  // Every key is spelled out, defaults included, in table order.
  EXPECT_NE(once.find("  matmul ub=0 stride=1 rows=8 acc=0 wait=x_ready signal=acc_ready\n"),
            std::string::npos);
  EXPECT_NE(once.find("  dma.load hbm=0x40 ub=8 elems=8 pack=8 segs=1 seg_stride=0 groups=8 "
                      "group_stride=8 ub_stride=1 signal=w_ready\n"),
            std::string::npos);
  EXPECT_NE(once.find("  nop wait=s4,s5 signal=s15\n"), std::string::npos);
  EXPECT_NE(once.find(".sem 2 acc_ready\n"), std::string::npos);
}

TEST(Assembly, SingleInstructionUsesProgramSemaphoreNames) {
  Program names;
  names.semaphore_names = {"a", "", "c"};
  Instruction m = matmul(1, 2, 3);
  m.flags = kFlagAccumulate;
  m.wait = 0b101;
  m.signal = 0b10;
  EXPECT_EQ(to_assembly(m, &names),
            "matmul ub=1 stride=1 rows=2 acc=3 accumulate wait=a,c signal=s1");
  EXPECT_EQ(to_assembly(m), "matmul ub=1 stride=1 rows=2 acc=3 accumulate wait=s0,s2 signal=s1");
  m.instance = 2;
  EXPECT_EQ(to_assembly(m),
            "matmul ub=1 stride=1 rows=2 acc=3 accumulate unit=2 wait=s0,s2 signal=s1");
  m.instance = 16;
  EXPECT_EQ(isa_error([&] { to_assembly(m); }), "matmul: unit = 16 out of range 0..15");
}

TEST(Assembly, ErrorsNameTheLineAndTheProblem) {
  EXPECT_EQ(parse_error("nop\n\n  matmull ub=0 rows=1 acc=0\n"),
            "line 3: unknown mnemonic 'matmull' (did you mean 'matmul'?)");
  EXPECT_EQ(parse_error("matmul ub=0 row=1 acc=0"),
            "line 1: matmul has no key 'row' (did you mean 'rows'?) "
            "(keys: ub, stride, rows, acc, accumulate, unit, wait, signal)");
  EXPECT_EQ(parse_error("# x\nload.weights ub=0 rows=1"),
            "line 2: load.weights: missing required key 'cols'");
  EXPECT_EQ(parse_error("matmul ub=12z rows=1 acc=0"), "line 1: bad number '12z' for matmul ub");
  EXPECT_EQ(parse_error("matmul ub=-1 rows=1 acc=0"), "line 1: bad number '-1' for matmul ub");
  EXPECT_EQ(parse_error("matmul ub=0x100000000 rows=1 acc=0"),
            "line 1: matmul: ub = 4294967296 out of range 0..4294967295");
  EXPECT_EQ(parse_error("activate acc=0 rows=1 cols=1 ub=0 zero_point=128"),
            "line 1: activate: zero_point = 128 out of range -128..127");
  EXPECT_EQ(parse_error("matmul ub=0 rows=1 acc=0 unit=16"),
            "line 1: matmul: unit = 16 out of range 0..15");
  EXPECT_EQ(parse_error(".sem 0 ready\nnop wait=redy"),
            "line 2: unknown semaphore 'redy' (did you mean 'ready'?) "
            "(declare it with .sem N redy, or use s0..s63)");
  EXPECT_NE(parse_error("nop wait=s64").find("line 1: unknown semaphore 's64'"), std::string::npos);
  EXPECT_EQ(parse_error("matmul ub=0 rows=1 rows=2 acc=0"),
            "line 1: matmul: key 'rows' given twice");
  EXPECT_EQ(parse_error("nop wait=s1 wait=s2"), "line 1: nop: key 'wait' given twice");
  EXPECT_EQ(parse_error("nop wait=s1,s1"), "line 1: wait: semaphore 's1' listed twice");
  EXPECT_EQ(parse_error("activate acc=0 rows=1 cols=1 ub=0 func=swish"),
            "line 1: bad value 'swish' for activate func (expected none, relu, relu6, sigmoid, "
            "tanh, gelu or silu)");
  EXPECT_EQ(parse_error("pool ub=0 dst=0 in_h=1 in_w=1 kernel_h=1 kernel_w=1 stride=1 cols=1 "
                        "accumulate")
                .substr(0, 29),
            "line 1: pool has no key 'accu");
  EXPECT_EQ(parse_error(".dtype int4"), "line 1: unknown data type 'int4' (expected int8 or bf16)");
  EXPECT_EQ(parse_error(".dtype int8\n.dtype bf16"), "line 2: .dtype given twice");
  EXPECT_EQ(parse_error(".arary 8 8"),
            "line 1: unknown directive '.arary' (did you mean '.array'?)");
  EXPECT_EQ(parse_error(".array 8"), "line 1: .array expects: .array ROWS COLS");
  EXPECT_EQ(parse_error(".layer 1 a b 0"),
            "line 1: .layer 1: expected index 0 (layers are declared in order)");
  EXPECT_EQ(parse_error("layer id=0"), "line 1: layer id=0 but only 0 layers declared with .layer");
  EXPECT_EQ(parse_error(".sem 0 s3"),
            "line 1: .sem name 's3' must be an identifier other than s0..s63");
  EXPECT_EQ(parse_error(".sem 0 a\n.sem 1 a"), "line 2: .sem name 'a' already names semaphore 0");
  EXPECT_EQ(parse_error(".layer 0 \"open 1 2"), "line 1: unterminated string");
}

TEST(Assembly, UnitInstanceAndHighSemaphores) {
  const Program p = parse_assembly("matmul ub=0 rows=1 acc=0 unit=5 wait=s63 signal=s40,s0\n");
  const Instruction& m = p.instructions[0];
  EXPECT_EQ(m.instance, 5u);
  EXPECT_EQ(m.wait, std::uint64_t(1) << 63);
  EXPECT_EQ(m.signal, (std::uint64_t(1) << 40) | 1u);
  EXPECT_EQ(to_assembly(m), "matmul ub=0 stride=1 rows=1 acc=0 unit=5 wait=s63 signal=s0,s40");
  EXPECT_EQ(to_assembly(matmul(0, 1, 0)), "matmul ub=0 stride=1 rows=1 acc=0");  // unit=0 omitted
}

TEST(Assembly, CommentsAndBlankLinesAreIgnored) {
  const Program p = parse_assembly("\n   # only a comment\n; another\nhalt ; done\nnop# tight\n");
  ASSERT_EQ(p.instructions.size(), 2u);
  EXPECT_EQ(p.instructions[0].op, Opcode::kHalt);
  EXPECT_EQ(p.instructions[1].op, Opcode::kNop);
}

Program full_program() {
  Program p = parse_assembly(kExample);
  p.layers[0].output = {0x80, 8, 8, 8, 1, 0};
  for (int i = 0; i < 64; ++i) p.layers[0].expected_int8.push_back(std::int8_t(i * 7 - 100));
  p.layers.push_back({"fc2", "matmul", 7, {0x100, 3, 2, 16, 2, 64}, {}, {1.5f, -0.0f, 3e38f}});
  p.hbm_image.push_back({"x", 0, std::vector<std::uint8_t>(64, 0x5a)});
  p.hbm_image.push_back({"w", 0x40, {1, 2, 3}});
  return p;
}

TEST(ProgramContainer, SerializeRoundTripsEverything) {
  const Program p = full_program();
  const std::vector<std::uint8_t> bytes = serialize(p);
  EXPECT_EQ(std::string(bytes.begin(), bytes.begin() + 8), std::string("TPUPROG\0", 8));
  const Program q = deserialize(bytes);
  expect_programs_equal(q, p, true);
  EXPECT_EQ(serialize(q), bytes);
}

TEST(ProgramContainer, CorruptInputGivesOneLineErrors) {
  const std::vector<std::uint8_t> good = serialize(full_program());
  EXPECT_EQ(isa_error([] { deserialize({'E', 'L', 'F'}); }), "not a tpusim program");
  std::vector<std::uint8_t> bad = good;
  bad[0] = 'X';
  EXPECT_EQ(isa_error([&] { deserialize(bad); }), "not a tpusim program");
  bad = good;
  bad[8] = 8;
  EXPECT_EQ(isa_error([&] { deserialize(bad); }),
            "program format version 8, this build reads 7; recompile the program");
  bad[8] = 6;  // a program before acc.load and activate raw
  EXPECT_EQ(isa_error([&] { deserialize(bad); }),
            "program format version 6, this build reads 7; recompile the program");
  // Every strict prefix past the magic is truncated somewhere; none may crash or succeed.
  for (std::size_t n = 8; n < good.size(); ++n) {
    const std::vector<std::uint8_t> prefix(good.begin(), good.begin() + std::ptrdiff_t(n));
    EXPECT_EQ(isa_error([&] { deserialize(prefix); }), "truncated at byte " + std::to_string(n));
  }
  bad = good;
  bad.push_back(0);
  EXPECT_EQ(isa_error([&] { deserialize(bad); }), "1 unexpected bytes after the program");
  // Byte 33 = 8 magic + 4 version + 1 dtype + 8 array + 8 hbm_bytes + 4 count: the first
  // instruction's opcode.
  bad = good;
  bad[33] = 0xee;
  EXPECT_EQ(isa_error([&] { deserialize(bad); }), "instruction 0: unknown opcode byte 0xee");
}

// A hand-made or damaged program is refused when loaded, not when checked after a long run.
TEST(ProgramContainer, OutputViewsMustLieInsideTheProgramsHbm) {
  Program p = full_program();
  p.layers[0].output.base = p.hbm_bytes - 8;  // 8 rows of 8 bytes from 8 bytes before the end
  EXPECT_EQ(isa_error([&] { deserialize(serialize(p)); }),
            "layer 0 'fc1': output view ends past the program's " +
                std::to_string(p.hbm_bytes) + " bytes of HBM");
  p.layers[0].output.base = 0;
  p.layers[0].output.stride1 = ~std::uint64_t(0) / 4;  // the end overflows 64 bits
  EXPECT_NE(isa_error([&] { deserialize(serialize(p)); }).find("output view ends past"),
            std::string::npos);
  p = full_program();
  p.layers[0].expected_int8.pop_back();
  EXPECT_EQ(isa_error([&] { deserialize(serialize(p)); }),
            "layer 0 'fc1': 63 expected values but the output view has 64 elements");
}

// A damaged file's megabyte-long word is not echoed whole.
TEST(Assembly, ErrorsCutHugeWords) {
  const std::string e = isa_error([] { parse_assembly(std::string(1000000, 'x') + "\n"); });
  EXPECT_EQ(e.rfind("line 1: unknown mnemonic 'xxx", 0), 0u) << e.substr(0, 100);
  EXPECT_LE(e.size(), 210u);
}

// One formula for every sliding window: conv and pooling shapes, the ISA's pooling grid.
TEST(Windows, OutputsFollowTheSlidingWindowFormula) {
  EXPECT_EQ(window_outputs(224, 7, 2, 3), 112u);    // (224 + 2*3 - 7) / 2 + 1: ResNet's stem
  EXPECT_EQ(window_outputs(112, 3, 2, 1), 56u);     // (112 + 2 - 3) / 2 + 1 = 56 (floor)
  EXPECT_EQ(window_outputs(10, 3, 1, 0, 2), 6u);    // span 2*(3-1)+1 = 5: 10 - 5 + 1
  EXPECT_EQ(window_outputs(10, 3, 3, 0, 2), 2u);    // (10 - 5) / 3 + 1
  EXPECT_EQ(window_outputs(2, 3, 1), 0u);           // fits nowhere
  EXPECT_EQ(window_outputs(2, 3, 1, 1), 2u);        // padded to 4
  Instruction pool;
  pool.in_h = 7;
  pool.in_w = 6;
  pool.kernel_h = pool.kernel_w = 2;
  pool.stride = 2;
  EXPECT_EQ(pool_out_h(pool), 3u);  // (7 - 2) / 2 + 1
  EXPECT_EQ(pool_out_w(pool), 3u);  // (6 - 2) / 2 + 1
}

}  // namespace
}  // namespace tpu
