// Data-path semantics of each instruction and the time-free interpreter, checked against
// expectations written out by hand or computed by naive loops.
#include "sim/isa/semantics.h"
#include "sim/isa/vector_cost.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/test_paths.h"

namespace tpu {
namespace {

// A 4 x 4 array: UB rows of 4 elements, 64 UB rows, 16 accumulator rows.
Config small_config(DataType t = DataType::kInt8) {
  Config c;
  c.array.rows = 4;
  c.array.cols = 4;
  c.ub.capacity_bytes = 64 * 4 * element_bytes(t);
  c.acc.capacity_bytes = 16 * 4 * 4;
  return c;
}

Program empty_program(DataType t, std::uint64_t hbm_bytes) {
  Program p;
  p.dtype = t;
  p.hbm_bytes = hbm_bytes;
  return p;
}

float from_bits(std::uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

std::string out_of_range_message(const MachineState& s, const Instruction& inst) {
  try {
    check_bounds(s, inst);
  } catch (const std::out_of_range& e) {
    return e.what();
  }
  return "";
}

int ub8(MachineState& s, std::uint64_t row, std::uint32_t col) {
  return std::int8_t(s.ub_row(row)[col]);
}

TEST(Bf16Convert, ConversionRoundsToNearestEven) {
  EXPECT_EQ(fp32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(fp32_to_bf16(-2.0f), 0xc000);
  EXPECT_EQ(fp32_to_bf16(from_bits(0x3f808000)), 0x3f80);  // tie, 0x3f80 is even: down
  EXPECT_EQ(fp32_to_bf16(from_bits(0x3f818000)), 0x3f82);  // tie, 0x3f81 is odd: up
  EXPECT_EQ(fp32_to_bf16(from_bits(0x3f808001)), 0x3f81);  // just above the tie
  EXPECT_EQ(fp32_to_bf16(from_bits(0x3f807fff)), 0x3f80);  // just below the tie
  EXPECT_EQ(fp32_to_bf16(from_bits(0x7f7fffff)), 0x7f80);  // max float rounds to infinity
  EXPECT_EQ(fp32_to_bf16(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_EQ(fp32_to_bf16(-0.0f), 0x8000);
  // A NaN whose payload lives only in the low bits must not round to infinity.
  const std::uint16_t nan = fp32_to_bf16(from_bits(0x7f800001));
  EXPECT_TRUE(std::isnan(bf16_to_fp32(nan)));
  EXPECT_TRUE(std::isnan(bf16_to_fp32(fp32_to_bf16(-std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_EQ(bf16_to_fp32(0x3fc0), 1.5f);
  EXPECT_EQ(bf16_to_fp32(0xbf80), -1.0f);
}

TEST(MachineStateInit, SizesComeFromConfigAndProgram) {
  const Config c = small_config(DataType::kBf16);
  Program p = empty_program(DataType::kBf16, 100);
  p.hbm_image.push_back({"a", 96, {1, 2, 3, 4}});
  const MachineState s(c, p);
  EXPECT_EQ(s.row_elems, 4u);
  EXPECT_EQ(s.elem_bytes, 2u);
  EXPECT_EQ(s.ub_rows, 64u);
  EXPECT_EQ(s.acc_rows, 16u);
  EXPECT_EQ(s.ub.size(), 64u * 4 * 2);
  EXPECT_EQ(s.acc_f32.size(), 16u * 4);
  EXPECT_TRUE(s.acc_i32.empty());
  ASSERT_EQ(s.hbm.size(), 100u);
  EXPECT_EQ(s.hbm[95], 0);
  EXPECT_EQ(s.hbm[99], 4);

  const MachineState timing_only(c, p, false);
  EXPECT_EQ(timing_only.hbm_bytes, 100u);
  EXPECT_EQ(timing_only.ub_rows, 64u);
  EXPECT_TRUE(timing_only.hbm.empty() && timing_only.ub.empty() && timing_only.acc_f32.empty());

  p.hbm_image.push_back({"late", 98, {1, 2, 3}});
  EXPECT_THROW((MachineState{c, p}), std::out_of_range);
  p.hbm_image.pop_back();
  p.array_rows = 8;
  p.array_cols = 8;
  EXPECT_THROW((MachineState{c, p}), std::invalid_argument);
}

// HBM bytes 0..255 hold their own address; the UB starts filled with 0xee.
MachineState dma_state(DataType t) {
  MachineState s(small_config(t), empty_program(t, 256));
  for (int i = 0; i < 256; ++i) s.hbm[std::size_t(i)] = std::uint8_t(i);
  std::fill(s.ub.begin(), s.ub.end(), 0xee);
  return s;
}

TEST(DmaSemantics, LoadGathersSegmentsAndGroupsIntoPackedRows) {
  MachineState s = dma_state(DataType::kInt8);
  DmaFields d;
  d.hbm_addr = 2;
  d.elems = 3;
  d.segs = 2;
  d.seg_stride = 10;
  d.groups = 2;
  d.group_stride = 40;
  d.ub_row = 1;
  d.ub_stride = 3;
  d.pack = 4;
  exec_dma_load(s, d);
  // Group 0 reads {2,3,4} and {12,13,14}; group 1 reads {42,43,44} and {52,53,54}; 4 per row,
  // each group's last row zero-filled; rows 0, 3 and 6 untouched.
  const std::vector<std::vector<int>> expected = {
      {0xee, 0xee, 0xee, 0xee}, {2, 3, 4, 12},  {13, 14, 0, 0},          {0xee, 0xee, 0xee, 0xee},
      {42, 43, 44, 52},         {53, 54, 0, 0}, {0xee, 0xee, 0xee, 0xee}};
  for (std::size_t r = 0; r < expected.size(); ++r) {
    EXPECT_EQ(std::vector<int>(s.ub_row(r), s.ub_row(r) + 4), expected[r]) << "row " << r;
  }

  // pack < row elements: every written row holds `pack` elements then zeros.
  d.groups = 1;
  d.pack = 2;
  d.ub_row = 10;
  exec_dma_load(s, d);
  EXPECT_EQ(std::vector<int>(s.ub_row(10), s.ub_row(10) + 4), (std::vector<int>{2, 3, 0, 0}));
  EXPECT_EQ(std::vector<int>(s.ub_row(11), s.ub_row(11) + 4), (std::vector<int>{4, 12, 0, 0}));
  EXPECT_EQ(std::vector<int>(s.ub_row(12), s.ub_row(12) + 4), (std::vector<int>{13, 14, 0, 0}));
  EXPECT_EQ(s.ub_row(13)[0], 0xee);
}

// A `dma.load weights` fills a FIFO entry exactly as it would fill UB rows from row 0, and
// `load.weights fifo` reads the oldest entry and removes it; the UB is untouched.
TEST(DmaSemantics, WeightFifoEntriesAreFilledAndReadInOrder) {
  Program p = empty_program(DataType::kInt8, 64);
  MachineState s(small_config(), p);
  for (std::uint32_t i = 0; i < 64; ++i) s.hbm[i] = std::uint8_t(i + 1);
  DmaFields d;
  d.elems = 6;  // 3 rows of 2 elements (the rest of each 4-element row zero)
  d.pack = 2;
  exec_dma_load_fifo(s, d);
  d.hbm_addr = 32;
  exec_dma_load_fifo(s, d);
  ASSERT_EQ(s.weight_fifos[0].size(), 2u);
  Instruction lw;
  lw.op = Opcode::kLoadWeights;
  lw.flags = kFlagFifo;
  lw.rows = 3;
  lw.cols = 2;
  const WeightTile first = exec_load_weights(s, lw);
  EXPECT_EQ(first.int8, (std::vector<std::int8_t>{1, 2, 3, 4, 5, 6}));
  lw.cols = 3;  // the column past the packed data is zero
  const WeightTile second = exec_load_weights(s, lw);
  EXPECT_EQ(second.int8, (std::vector<std::int8_t>{33, 34, 0, 35, 36, 0, 37, 38, 0}));
  EXPECT_TRUE(s.weight_fifos[0].empty());
  EXPECT_TRUE(std::all_of(s.ub.begin(), s.ub.end(), [](std::uint8_t b) { return b == 0; }));
  EXPECT_THROW(exec_load_weights(s, lw), std::out_of_range);
  // No FIFO in the config: both flags are rejected, in one line.
  Config none = small_config();
  none.mxu.weight_fifo_tiles = 0;
  const MachineState n(none, p);
  EXPECT_EQ(out_of_range_message(n, lw),
            "load.weights fifo: the config has no weight FIFO (mxu.weight_fifo_tiles = 0)");
  Instruction fill;
  fill.op = Opcode::kDmaLoad;
  fill.flags = kFlagWeights;
  fill.dma = d;
  EXPECT_EQ(out_of_range_message(n, fill),
            "dma.load weights: the config has no weight FIFO (mxu.weight_fifo_tiles = 0)");
  fill.dma.ub_row = 1;
  EXPECT_NE(out_of_range_message(s, fill).find("dma.load weights: ub 1 not in [0, 0]"),
            std::string::npos);
}

// `load.weights transpose` reads N_t staged rows of K_t elements: W[k][n] = row n, element k,
// from the UB or a FIFO entry; the rows it needs are N_t, not K_t.
TEST(DmaSemantics, TransposedLoadTurnsStagedRowsIntoColumns) {
  Program p = empty_program(DataType::kInt8, 64);
  MachineState s(small_config(), p);
  // Staged N_t = 3 rows of K_t = 2: rows 10 .. 12 hold (1 2), (3 4), (5 6).
  for (std::uint32_t n = 0; n < 3; ++n) {
    s.ub_row(10 + n)[0] = std::uint8_t(2 * n + 1);
    s.ub_row(10 + n)[1] = std::uint8_t(2 * n + 2);
  }
  Instruction lw;
  lw.op = Opcode::kLoadWeights;
  lw.flags = kFlagTranspose;
  lw.ub_row = 10;
  lw.rows = 2;  // K_t
  lw.cols = 3;  // N_t
  EXPECT_EQ(exec_load_weights(s, lw).int8, (std::vector<std::int8_t>{1, 3, 5, 2, 4, 6}));
  // Through the FIFO: the entry's first N_t rows.
  for (std::uint32_t i = 0; i < 64; ++i) s.hbm[i] = std::uint8_t(i + 1);
  DmaFields d;
  d.elems = 6;  // 3 rows of 2
  d.pack = 2;
  exec_dma_load_fifo(s, d);
  lw.flags = kFlagTranspose | kFlagFifo;
  lw.ub_row = 0;
  EXPECT_EQ(exec_load_weights(s, lw).int8, (std::vector<std::int8_t>{1, 3, 5, 2, 4, 6}));
  // N_t = 3 staged rows from UB row 62 run past the 64 rows; K_t = 2 would not.
  lw.flags = kFlagTranspose;
  lw.ub_row = 62;
  EXPECT_NE(out_of_range_message(s, lw).find("load.weights"), std::string::npos);
}

TEST(DmaSemantics, StoreIsTheExactInverseOfLoad) {
  MachineState s = dma_state(DataType::kInt8);
  DmaFields d;
  d.hbm_addr = 5;
  d.elems = 5;
  d.segs = 3;
  d.seg_stride = 16;
  d.groups = 3;
  d.group_stride = 64;
  d.ub_row = 0;
  d.ub_stride = 6;
  d.pack = 3;
  exec_dma_load(s, d);
  const std::vector<std::uint8_t> original = s.hbm;
  std::fill(s.hbm.begin(), s.hbm.end(), 0);
  exec_dma_store(s, d);
  std::vector<bool> touched(256, false);  // 5 + 64 g + 16 seg + [0, 5) for g, seg in [0, 3)
  for (int g = 0; g < 3; ++g) {
    for (int seg = 0; seg < 3; ++seg) {
      for (int e = 0; e < 5; ++e) touched[std::size_t(5 + 64 * g + 16 * seg + e)] = true;
    }
  }
  for (std::size_t a = 0; a < 256; ++a) {
    EXPECT_EQ(s.hbm[a], touched[a] ? original[a] : 0) << "byte " << a;
  }
}

TEST(DmaSemantics, Bf16ElementsAreTwoBytes) {
  MachineState s = dma_state(DataType::kBf16);
  DmaFields d;
  d.hbm_addr = 8;
  d.elems = 3;
  d.pack = 2;
  exec_dma_load(s, d);
  // Elements (8,9) (10,11) | (12,13) then zeros.
  EXPECT_EQ(std::vector<int>(s.ub_row(0), s.ub_row(0) + 8),
            (std::vector<int>{8, 9, 10, 11, 0, 0, 0, 0}));
  EXPECT_EQ(std::vector<int>(s.ub_row(1), s.ub_row(1) + 8),
            (std::vector<int>{12, 13, 0, 0, 0, 0, 0, 0}));
  d.hbm_addr = 100;
  exec_dma_store(s, d);
  EXPECT_EQ(std::vector<int>(s.hbm.begin() + 100, s.hbm.begin() + 107),
            (std::vector<int>{8, 9, 10, 11, 12, 13, 106}));
}

// Fills UB rows [first, first + n) of an int8 machine with random values.
void random_rows(MachineState& s, std::uint64_t first, std::uint64_t n, std::mt19937& rng) {
  for (std::uint64_t r = first; r < first + n; ++r) {
    for (std::uint32_t c = 0; c < s.row_elems; ++c) s.ub_row(r)[c] = std::uint8_t(rng());
  }
}

TEST(MatmulTile, Int8TileMatchesNaiveTripleLoopIncludingAccumulate) {
  std::mt19937 rng(7);
  MachineState s(small_config(), empty_program(DataType::kInt8, 0));
  random_rows(s, 0, 64, rng);
  Instruction lw;
  lw.op = Opcode::kLoadWeights;
  lw.ub_row = 40;
  lw.rows = 3;  // K_t
  lw.cols = 2;  // N_t
  const WeightTile w = exec_load_weights(s, lw);
  ASSERT_EQ(w.int8.size(), 6u);
  EXPECT_EQ(w.int8[1 * 2 + 1], ub8(s, 41, 1));

  Instruction mm;
  mm.op = Opcode::kMatmul;
  mm.ub_row = 3;
  mm.ub_stride = 2;
  mm.rows = 5;
  mm.acc_row = 9;
  std::fill(s.acc_i32.begin(), s.acc_i32.end(), 1000);
  matmul_tile(s, mm, w);
  auto naive = [&](std::uint32_t m, std::uint32_t n) {
    std::int32_t sum = 0;
    for (std::uint32_t k = 0; k < 3; ++k) sum += ub8(s, 3 + 2 * m, k) * ub8(s, 40 + k, n);
    return sum;
  };
  for (std::uint32_t m = 0; m < 5; ++m) {
    for (std::uint32_t n = 0; n < 4; ++n) {
      // Columns n >= N_t keep their old value.
      EXPECT_EQ(s.acc_i32[(9 + m) * 4 + n], n < 2 ? naive(m, n) : 1000) << m << "," << n;
    }
  }
  mm.flags = kFlagAccumulate;
  matmul_tile(s, mm, w);
  for (std::uint32_t m = 0; m < 5; ++m) {
    for (std::uint32_t n = 0; n < 2; ++n) EXPECT_EQ(s.acc_i32[(9 + m) * 4 + n], 2 * naive(m, n));
  }
  EXPECT_EQ(s.acc_i32[8 * 4], 1000);  // the row before acc_row is untouched
}

TEST(MatmulTile, Bf16SumsProductsInFp32InIncreasingK) {
  MachineState s(small_config(DataType::kBf16), empty_program(DataType::kBf16, 0));
  auto put = [&](std::uint64_t row, std::uint32_t col, float v) {
    const std::uint16_t b = fp32_to_bf16(v);
    std::memcpy(s.ub_row(row) + 2 * col, &b, 2);
  };
  // x = [2^24, 1, 1, -2^24] against w = 1: (((2^24 + 1) + 1) - 2^24) in fp32 is 0 because
  // 2^24 + 1 rounds back to 2^24; a reordered or wider sum would give 2.
  const float big = 16777216.0f;
  put(0, 0, big);
  put(0, 1, 1.0f);
  put(0, 2, 1.0f);
  put(0, 3, -big);
  for (std::uint32_t k = 0; k < 4; ++k) put(10 + k, 0, 1.0f);
  for (std::uint32_t k = 0; k < 4; ++k) put(10 + k, 1, k == 1 ? 0.5f : 0.0f);
  Instruction lw;
  lw.op = Opcode::kLoadWeights;
  lw.ub_row = 10;
  lw.rows = 4;
  lw.cols = 2;
  const WeightTile w = exec_load_weights(s, lw);
  Instruction mm;
  mm.op = Opcode::kMatmul;
  mm.rows = 1;
  mm.acc_row = 2;
  s.acc_f32[2 * 4 + 0] = 3.0f;
  matmul_tile(s, mm, w);
  EXPECT_EQ(s.acc_f32[2 * 4 + 0], 0.0f);
  EXPECT_EQ(s.acc_f32[2 * 4 + 1], 0.5f);
  mm.flags = kFlagAccumulate;
  s.acc_f32[2 * 4 + 0] = 3.0f;
  matmul_tile(s, mm, w);
  EXPECT_EQ(s.acc_f32[2 * 4 + 0], 3.0f);
  EXPECT_EQ(s.acc_f32[2 * 4 + 1], 1.0f);
}

// activate raw writes the accumulator words (after the bias) to UB rows, an accumulator row
// of 4 int32 words taking 4 UB rows of 4 bytes; acc.load sets or adds them back, int32 wrapping
// modulo 2^32 as the MXU's accumulation does, so a sum of partials is exact in any order.
TEST(ActivateSemantics, RawWordsRoundTripThroughAccLoadAndAddExactly) {
  MachineState s(small_config(), empty_program(DataType::kInt8, 0));
  const std::int32_t row0[] = {5, -5, 2147483647, -2147483647 - 1};
  const std::int32_t row1[] = {1, 2, 3, 4};
  std::copy(row0, row0 + 4, s.acc_i32.begin());
  std::copy(row1, row1 + 4, s.acc_i32.begin() + 4);
  // The bias words 10, 20, 30, 40 at UB word 4 (UB row 4).
  const std::int32_t bias[] = {10, 20, 30, 40};
  std::memcpy(s.ub.data() + 16, bias, 16);
  Instruction raw;
  raw.op = Opcode::kActivate;
  raw.flags = kFlagRaw | kFlagBias;
  raw.src_row = 4;
  raw.acc_row = 0;
  raw.rows = 2;
  raw.cols = 4;
  raw.ub_row = 8;
  raw.multiplier = 3;  // ignored
  exec_activate(s, raw);
  std::int32_t words[8];
  std::memcpy(words, s.ub_row(8), 16);       // acc row 0: UB rows 8..11
  std::memcpy(words + 4, s.ub_row(12), 16);  // acc row 1: UB rows 12..15
  const std::int32_t expected[] = {15, 15, -2147483647 - 1 + 29, -2147483647 - 1 + 40,
                                   11, 22, 33, 44};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(words[i], expected[i]) << i;

  Instruction load;
  load.op = Opcode::kAccLoad;
  load.ub_row = 8;
  load.rows = 2;
  load.cols = 4;
  load.acc_row = 4;
  exec_acc_load(s, load);
  EXPECT_EQ(s.acc_i32[4 * 4 + 0], 15);
  EXPECT_EQ(s.acc_i32[4 * 4 + 3], expected[3]);
  EXPECT_EQ(s.acc_i32[5 * 4 + 2], 33);
  load.flags = kFlagAccumulate;
  exec_acc_load(s, load);
  EXPECT_EQ(s.acc_i32[4 * 4 + 0], 30);
  EXPECT_EQ(s.acc_i32[4 * 4 + 2], std::int32_t(2u * std::uint32_t(expected[2])));  // wraps
  EXPECT_EQ(s.acc_i32[5 * 4 + 1], 44);
  // Bounds: an accumulator row's words take 4 UB rows, so 16 rows from row 60 overrun 64.
  load.ub_row = 60;
  EXPECT_NE(out_of_range_message(s, load), "");
  raw.ub_row = 57;
  EXPECT_NE(out_of_range_message(s, raw), "");
}

// bf16: the raw words are fp32 bits, and acc.load accumulate is one fp32 addition.
TEST(ActivateSemantics, Bf16RawWordsAreFp32AndAccLoadAddsInFp32) {
  MachineState s(small_config(DataType::kBf16), empty_program(DataType::kBf16, 0));
  s.acc_f32[0] = 1.0f;
  s.acc_f32[1] = 1e8f;
  Instruction raw;
  raw.op = Opcode::kActivate;
  raw.flags = kFlagRaw;
  raw.rows = 1;
  raw.cols = 2;
  raw.ub_row = 4;  // UB rows of 8 bytes: the 2 words fill row 4
  exec_activate(s, raw);
  s.acc_f32[4 * 4 + 0] = 0.5f;
  s.acc_f32[4 * 4 + 1] = 1.0f;
  Instruction load;
  load.op = Opcode::kAccLoad;
  load.flags = kFlagAccumulate;
  load.ub_row = 4;
  load.rows = 1;
  load.cols = 2;
  load.acc_row = 4;
  exec_acc_load(s, load);
  EXPECT_EQ(s.acc_f32[4 * 4 + 0], 1.5f);
  EXPECT_EQ(s.acc_f32[4 * 4 + 1], 1e8f + 1.0f);  // rounded as one fp32 addition: 1e8
}

TEST(ActivateSemantics, Int8RequantisesWithRoundHalfUpThenClamps) {
  MachineState s(small_config(), empty_program(DataType::kInt8, 0));
  // acc row 0: with multiplier 3, shift 2 (divide by 4), zero point 0:
  //   5*3=15 -> (15+2)>>2 = 4 (3.75); -5*3=-15 -> (-15+2)>>2 = -4 (-3.75);
  //   2*3=6 -> (6+2)>>2 = 2 (1.5 rounds up); -2*3=-6 -> (-6+2)>>2 = -1 (-1.5 rounds up).
  const std::int32_t row0[] = {5, -5, 2, -2};
  // acc row 1: clamps: 1000*3/4=750 -> 127; -1000*3/4 = -750 -> -128; 42*3=126 -> 32 (31.5);
  // -42*3/4=-31.5 -> -31.
  const std::int32_t row1[] = {1000, -1000, 42, -42};
  std::copy(row0, row0 + 4, s.acc_i32.begin());
  std::copy(row1, row1 + 4, s.acc_i32.begin() + 4);
  std::fill(s.ub.begin(), s.ub.end(), 0x55);
  Instruction a;
  a.op = Opcode::kActivate;
  a.acc_row = 0;
  a.rows = 2;
  a.cols = 4;
  a.ub_row = 20;
  a.multiplier = 3;
  a.shift = 2;
  exec_activate(s, a);
  const int expected[2][4] = {{4, -4, 2, -1}, {127, -128, 32, -31}};
  for (int m = 0; m < 2; ++m) {
    for (int n = 0; n < 4; ++n) EXPECT_EQ(ub8(s, 20 + m, n), expected[m][n]) << m << "," << n;
  }

  // Zero point 10 and ReLU (floor at the zero point), 3 columns: column 3 stays untouched.
  //   row 0: -4+10=6 -> 10, 2+10=12; row 1: 750+10 -> 127, -750+10 -> 10, 32+10=42.
  a.zero_point = 10;
  a.func = Activation::kRelu;
  a.cols = 3;
  a.multiplier = 3;
  s.acc_i32[0] = -50;  // -150 -> (-148)>>2 = -37, +10 = -27, relu -> 10
  exec_activate(s, a);
  EXPECT_EQ(ub8(s, 20, 0), 10);
  EXPECT_EQ(ub8(s, 20, 1), 10);
  EXPECT_EQ(ub8(s, 20, 2), 12);
  EXPECT_EQ(ub8(s, 20, 3), -1);  // unchanged from the first activate
  EXPECT_EQ(ub8(s, 21, 0), 127);
  EXPECT_EQ(ub8(s, 21, 1), 10);
  EXPECT_EQ(ub8(s, 21, 2), 42);    // 32 + 10
  EXPECT_EQ(ub8(s, 22, 0), 0x55);  // rows past `rows` untouched

  // shift 0: no rounding term; large products do not overflow before the clamp.
  a.shift = 0;
  a.zero_point = 0;
  a.func = Activation::kNone;
  a.multiplier = 2147483647;
  s.acc_i32[0] = -2147483647 - 1;
  s.acc_i32[1] = 0;
  s.acc_i32[2] = -1;
  exec_activate(s, a);
  EXPECT_EQ(ub8(s, 20, 0), -128);
  EXPECT_EQ(ub8(s, 20, 1), 0);
  EXPECT_EQ(ub8(s, 20, 2), -128);
}

TEST(ActivateSemantics, Bf16RoundsTheAccumulatorAndAppliesRelu) {
  MachineState s(small_config(DataType::kBf16), empty_program(DataType::kBf16, 0));
  const float acc[] = {-3.0f, 1.00390625f, 7.5f, 1.01171875f};  // 1 + 2^-8, 1 + 3 * 2^-8
  std::copy(acc, acc + 4, s.acc_f32.begin());
  Instruction a;
  a.op = Opcode::kActivate;
  a.rows = 1;
  a.cols = 4;
  a.ub_row = 5;
  auto out = [&](std::uint32_t n) {
    std::uint16_t b;
    std::memcpy(&b, s.ub_row(5) + 2 * n, 2);
    return b;
  };
  exec_activate(s, a);
  EXPECT_EQ(out(0), fp32_to_bf16(-3.0f));
  EXPECT_EQ(out(1), 0x3f80);  // 1 + 2^-8 is a tie: even mantissa 1.0
  EXPECT_EQ(out(3), 0x3f82);  // 1 + 3 * 2^-8 is a tie: up to 1 + 2^-6 (0x3f82)
  a.func = Activation::kRelu;
  exec_activate(s, a);
  EXPECT_EQ(out(0), 0x0000);
  EXPECT_EQ(out(2), fp32_to_bf16(7.5f));
  a.func = Activation::kRelu6;
  exec_activate(s, a);
  EXPECT_EQ(out(2), fp32_to_bf16(6.0f));
  // scale_in multiplies the accumulator first (a scaled matmul): 7.5 * 0.25 = 1.875.
  a.func = Activation::kNone;
  a.scale_a = 0x3e800000;  // 0.25f
  exec_activate(s, a);
  EXPECT_EQ(out(2), fp32_to_bf16(1.875f));
  EXPECT_EQ(out(0), fp32_to_bf16(-0.75f));
}

TEST(ActivateSemantics, BiasWordsAddToTheAccumulatorsFirst) {
  // int8: UB rows of 4 bytes, so the 3 bias words from word 9 (byte 36) start at UB row 9 and
  // span rows 9..11. acc + bias, then the requantiser (multiplier 1, shift 1):
  // (10 + 6 + 1) >> 1 = 8; (-3 + 40 + 1) >> 1 = 19; INT32_MAX + 1 wraps to INT32_MIN -> -128.
  MachineState s(small_config(), empty_program(DataType::kInt8, 0));
  const std::int32_t acc[] = {10, -3, 2147483647};
  const std::int32_t bias[] = {6, 40, 1};
  std::copy(acc, acc + 3, s.acc_i32.begin());
  std::memcpy(s.ub.data() + 36, bias, sizeof bias);
  Instruction a;
  a.op = Opcode::kActivate;
  a.rows = 1;
  a.cols = 3;
  a.ub_row = 30;
  a.shift = 1;
  a.flags = kFlagBias;
  a.src_row = 9;
  exec_activate(s, a);
  EXPECT_EQ(ub8(s, 30, 0), 8);
  EXPECT_EQ(ub8(s, 30, 1), 19);
  EXPECT_EQ(ub8(s, 30, 2), -128);
  EXPECT_EQ(activate_bias_rows(a, 4), (std::pair<std::uint64_t, std::uint64_t>{9, 12}));
  // The fp32 path dequantises the biased sum: (10 + 6) * 0.25 = 4, sigmoid(4) * 100 = 98.2.
  a.func = Activation::kSigmoid;
  a.scale_a = 0x3e800000;       // 0.25f
  a.scale_out = 0x42c80000;     // 100.0f
  exec_activate(s, a);
  EXPECT_EQ(ub8(s, 30, 0), 98);
  // Words past the UB are an error naming the field.
  a.src_row = 64 * 4 / 4 - 2;
  EXPECT_NE(out_of_range_message(s, a).find("bias rows"), std::string::npos);

  // bf16: fp32 words; (acc + bias) * scale_in: (1.5 + 2.25) * 2 = 7.5, (-1 + 0.5) * 2 = -1.
  MachineState b(small_config(DataType::kBf16), empty_program(DataType::kBf16, 0));
  b.acc_f32[0] = 1.5f;
  b.acc_f32[1] = -1.0f;
  const float fbias[] = {2.25f, 0.5f};
  std::memcpy(b.ub.data() + 8, fbias, sizeof fbias);  // word 2: UB row 0, bytes 8..15
  Instruction f;
  f.op = Opcode::kActivate;
  f.rows = 1;
  f.cols = 2;
  f.ub_row = 4;
  f.flags = kFlagBias;
  f.src_row = 2;
  f.scale_a = 0x40000000;  // 2.0f
  exec_activate(b, f);
  std::uint16_t out[2];
  std::memcpy(out, b.ub_row(4), 4);
  EXPECT_EQ(out[0], fp32_to_bf16(7.5f));
  EXPECT_EQ(out[1], fp32_to_bf16(-1.0f));
}

TEST(PoolSemantics, MaxOverWindowsWithStrideComparesSigned) {
  MachineState s(small_config(), empty_program(DataType::kInt8, 0));
  // 4 x 4 grid, 2 channels: channel 0 = 10 * y + x - 20 (negative at the top), channel 1 its
  // negation.
  for (int y = 0; y < 4; ++y) {
    for (int x = 0; x < 4; ++x) {
      s.ub_row(std::uint64_t(y * 4 + x))[0] = std::uint8_t(std::int8_t(10 * y + x - 20));
      s.ub_row(std::uint64_t(y * 4 + x))[1] = std::uint8_t(std::int8_t(-(10 * y + x - 20)));
    }
  }
  Instruction p;
  p.op = Opcode::kPool;
  p.ub_row = 0;
  p.dst_row = 30;
  p.in_h = 4;
  p.in_w = 4;
  p.kernel_h = p.kernel_w = 2;
  p.stride = 2;
  p.cols = 2;
  exec_pool(s, p);
  // Window maxima of channel 0 are at the window's bottom-right (y0+1, x0+1); of channel 1 at
  // its top-left (y0, x0).
  const int ch0[] = {-9, -7, 11, 13};  // 10*1+1-20, 10*1+3-20, 10*3+1-20, 10*3+3-20
  const int ch1[] = {20, 18, 0, -2};   // -(10*0+0-20), -(0+2-20), -(20+0-20), -(20+2-20)
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(ub8(s, 30 + i, 0), ch0[i]) << i;
    EXPECT_EQ(ub8(s, 30 + i, 1), ch1[i]) << i;
  }
  // 3 x 3 windows, stride 1, written over the input itself (inputs are read first):
  // OH = OW = (4 - 3) / 1 + 1 = 2.
  p.kernel_h = p.kernel_w = 3;
  p.stride = 1;
  p.dst_row = 0;
  p.cols = 1;
  exec_pool(s, p);
  const int ch0_k3[] = {2, 3, 12, 13};  // bottom-right of each window: 10*(y+2)+(x+2)-20
  for (int i = 0; i < 4; ++i) EXPECT_EQ(ub8(s, std::uint64_t(i), 0), ch0_k3[i]) << i;
  EXPECT_EQ(ub8(s, 0, 1), 20);  // channel 1 not in `cols`: untouched
}

// Average pooling over a non-square 3 x 5 window of a 3 x 7 grid (stride 2: OH = 1, OW = 2),
// against a plain loop: int8 requantises the int32 window sum, bf16 scales the fp32 sum in
// row-major window order by 1 / (kh * kw).
TEST(PoolSemantics, AverageOverNonSquareWindows) {
  std::mt19937 rng(5);
  for (DataType t : {DataType::kInt8, DataType::kBf16}) {
    MachineState s(small_config(t), empty_program(t, 0));
    const std::uint32_t h = 3, w = 7, kh = 3, kw = 5, stride = 2, cols = 3, ow = 2;
    std::vector<float> in(h * w * cols);
    for (std::uint32_t i = 0; i < in.size(); ++i) {
      const int v = int(rng() % 256) - 128;
      if (t == DataType::kInt8) {
        s.ub_row(i / cols)[i % cols] = std::uint8_t(std::int8_t(v));
        in[i] = float(v);
      } else {
        const std::uint16_t b = fp32_to_bf16(float(v) / 8.0f + 0.0625f);
        std::memcpy(s.ub_row(i / cols) + 2 * (i % cols), &b, 2);
        in[i] = bf16_to_fp32(b);
      }
    }
    Instruction p;
    p.op = Opcode::kPool;
    p.flags = kFlagAverage;
    p.dst_row = 40;
    p.in_h = h;
    p.in_w = w;
    p.kernel_h = kh;
    p.kernel_w = kw;
    p.stride = stride;
    p.cols = cols;
    p.multiplier = 1093;  // ~ 2^14 / 15
    p.shift = 14;
    exec_pool(s, p);
    for (std::uint32_t x = 0; x < ow; ++x) {
      for (std::uint32_t c = 0; c < cols; ++c) {
        std::int64_t isum = 0;
        float fsum = 0.0f;
        for (std::uint32_t i = 0; i < kh; ++i) {
          for (std::uint32_t j = 0; j < kw; ++j) {
            const float v = in[(i * w + x * stride + j) * cols + c];
            isum += std::int64_t(v);
            fsum += v;
          }
        }
        if (t == DataType::kInt8) {
          const std::int64_t q = (isum * 1093 + (1 << 13)) >> 14;
          EXPECT_EQ(ub8(s, 40 + x, c), std::clamp<std::int64_t>(q, -128, 127));
        } else {
          std::uint16_t got;
          std::memcpy(&got, s.ub_row(40 + x) + 2 * c, 2);
          EXPECT_EQ(got, fp32_to_bf16(fsum * (1.0f / 15.0f))) << x << " " << c;
        }
      }
    }
  }
}

// ADD against a plain loop: int8 requantises a * ma + b * mb per input; bf16 rounds the fp32
// sum to bf16 and then applies the activation. The output overlaps input b.
TEST(AddSemantics, ElementWiseWithPerInputRequantisation) {
  std::mt19937 rng(11);
  for (DataType t : {DataType::kInt8, DataType::kBf16}) {
    for (Activation func : {Activation::kNone, Activation::kRelu, Activation::kRelu6}) {
      if (t == DataType::kInt8 && func == Activation::kRelu6) continue;
      MachineState s(small_config(t), empty_program(t, 0));
      const std::uint32_t rows = 5, cols = 3;
      std::vector<float> a(rows * cols), b(rows * cols);
      for (std::uint32_t m = 0; m < rows; ++m) {
        for (std::uint32_t n = 0; n < cols; ++n) {
          const int va = int(rng() % 256) - 128, vb = int(rng() % 256) - 128;
          if (t == DataType::kInt8) {
            s.ub_row(m)[n] = std::uint8_t(std::int8_t(va));
            s.ub_row(10 + m)[n] = std::uint8_t(std::int8_t(vb));
            a[m * cols + n] = float(va);
            b[m * cols + n] = float(vb);
          } else {
            const std::uint16_t ba = fp32_to_bf16(float(va) / 16.0f);
            const std::uint16_t bb = fp32_to_bf16(float(vb) * 1.001f);
            std::memcpy(s.ub_row(m) + 2 * n, &ba, 2);
            std::memcpy(s.ub_row(10 + m) + 2 * n, &bb, 2);
            a[m * cols + n] = bf16_to_fp32(ba);
            b[m * cols + n] = bf16_to_fp32(bb);
          }
        }
      }
      Instruction add;
      add.op = Opcode::kAdd;
      add.ub_row = 0;
      add.src_row = 10;
      add.dst_row = 11;  // overlaps b: every input is read before any output is written
      add.rows = rows;
      add.cols = cols;
      add.func = func;
      add.multiplier = 3000;
      add.multiplier_b = -1500;
      add.shift = 12;
      add.zero_point = -5;
      exec_add(s, add);
      for (std::uint32_t m = 0; m < rows; ++m) {
        for (std::uint32_t n = 0; n < cols; ++n) {
          const float va = a[m * cols + n], vb = b[m * cols + n];
          if (t == DataType::kInt8) {
            std::int64_t v = std::int64_t(va) * 3000 + std::int64_t(vb) * -1500;
            v = ((v + (1 << 11)) >> 12) - 5;
            const std::int64_t lo = func == Activation::kRelu ? -5 : -128;
            v = std::max(lo, std::min<std::int64_t>(127, v));
            EXPECT_EQ(ub8(s, 11 + m, n), v) << m << " " << n;
          } else {
            float r = bf16_to_fp32(fp32_to_bf16(va + vb));
            if (func != Activation::kNone) r = std::max(r, 0.0f);
            if (func == Activation::kRelu6) r = std::min(r, 6.0f);
            std::uint16_t got;
            std::memcpy(&got, s.ub_row(11 + m) + 2 * n, 2);
            EXPECT_EQ(got, fp32_to_bf16(r)) << m << " " << n;
          }
        }
      }
    }
  }
}

TEST(AddSemantics, ChecksItsRowsAndRequantiser) {
  const MachineState s(small_config(), empty_program(DataType::kInt8, 0), false);
  Instruction add;
  add.op = Opcode::kAdd;
  add.rows = 4;
  add.cols = 4;
  add.src_row = 61;
  EXPECT_EQ(out_of_range_message(s, add),
            "add: ub_b rows [61, 65) outside the unified buffer of 64 rows");
  add.src_row = 0;
  add.cols = 5;
  EXPECT_EQ(out_of_range_message(s, add),
            "add: cols 5 not in [1, 4] (elements <= UB row elements)");
  add.cols = 4;
  add.func = Activation::kRelu6;
  EXPECT_EQ(out_of_range_message(s, add),
            "add: func relu6 needs a bf16 program (int8 carries no output scale)");
}

TEST(CheckBounds, RejectsEveryOutOfRangeFieldWithOneLine) {
  const MachineState s(small_config(), empty_program(DataType::kInt8, 256), false);
  Instruction d;
  d.op = Opcode::kDmaLoad;
  d.dma.hbm_addr = 250;
  d.dma.elems = 4;
  d.dma.pack = 4;
  EXPECT_EQ(out_of_range_message(s, d), "");  // [250, 254) fits
  d.dma.groups = 2;
  d.dma.group_stride = 3;
  EXPECT_EQ(out_of_range_message(s, d),
            "dma.load: hbm range [0xfa, 0x101) outside HBM of 256 bytes");
  d.op = Opcode::kDmaStore;
  d.dma.hbm_addr = 0;
  d.dma.ub_row = 63;
  EXPECT_EQ(out_of_range_message(s, d),
            "dma.store: ub rows [63, 65) outside the unified buffer of 64 rows");
  d.dma.ub_row = 0;
  d.dma.pack = 5;
  EXPECT_EQ(out_of_range_message(s, d), "dma.store: pack 5 not in [1, 4] (elements per UB row)");
  d.dma.pack = 2;
  EXPECT_EQ(
      out_of_range_message(s, d),
      "dma.store: ub_stride 1 < 2 rows per group: groups would overlap in the unified buffer");

  Instruction lw;
  lw.op = Opcode::kLoadWeights;
  lw.rows = 5;
  lw.cols = 4;
  EXPECT_EQ(out_of_range_message(s, lw),
            "load.weights: rows 5 not in [1, 4] (weight rows K <= array rows)");

  Instruction mm;
  mm.op = Opcode::kMatmul;
  mm.rows = 4;
  mm.ub_row = 60;
  mm.ub_stride = 2;
  EXPECT_EQ(out_of_range_message(s, mm),
            "matmul: ub rows [60, 67) outside the unified buffer of 64 rows");
  mm.ub_row = 0;
  mm.acc_row = 13;
  EXPECT_EQ(out_of_range_message(s, mm),
            "matmul: acc rows [13, 17) outside the accumulators of 16 rows");

  Instruction a;
  a.op = Opcode::kActivate;
  a.rows = 1;
  a.cols = 4;
  a.func = Activation::kRelu6;  // int8 computes it on the fp32 path
  EXPECT_EQ(out_of_range_message(s, a), "");
  a.func = Activation::kRelu;
  a.shift = 63;
  EXPECT_EQ(out_of_range_message(s, a),
            "activate: shift 63 not in [0, 62] (requantiser right shift)");

  Instruction p;
  p.op = Opcode::kPool;
  p.in_h = 2;
  p.in_w = 8;
  p.kernel_h = 3;
  p.kernel_w = 2;
  p.stride = 1;
  p.cols = 1;
  EXPECT_EQ(out_of_range_message(s, p),
            "pool: in_h 2 not in [3, 65535] (input height >= kernel_h)");
  p.in_h = 3;
  p.flags = kFlagAverage;
  p.shift = 63;
  EXPECT_EQ(out_of_range_message(s, p),
            "pool: shift 63 not in [0, 62] (requantiser right shift)");
  p.shift = 0;
  p.flags = 0;
  p.in_h = 8;
  p.ub_row = 1;  // 64 input rows from row 1
  EXPECT_EQ(out_of_range_message(s, p),
            "pool: ub rows [1, 65) outside the unified buffer of 64 rows");

  // The exec_* functions check too, before touching anything.
  MachineState live(small_config(), empty_program(DataType::kInt8, 16));
  d.op = Opcode::kDmaLoad;
  d.dma = DmaFields{};
  d.dma.hbm_addr = 10;
  d.dma.elems = 8;
  d.dma.pack = 4;
  EXPECT_THROW(exec_dma_load(live, d.dma), std::out_of_range);
  EXPECT_THROW(matmul_tile(live, mm, WeightTile{}), std::out_of_range);
}

// Y = relu(requant(X W)) for X 3 x 4 and W 4 x 3 on the 4 x 4 array, through HBM.
const char* const kProgram = R"(
.dtype int8
.array 4 4
.hbm 64
.sem 0 loaded
.sem 1 done
.layer 0 fc matmul 36
layer id=0
  dma.load hbm=0x0 ub=0 elems=4 pack=4 groups=3 group_stride=4   # X rows -> UB 0..2
  dma.load hbm=0x10 ub=8 elems=3 pack=4 groups=4 group_stride=3 signal=loaded  # W 4x3 -> UB 8..11
  load.weights ub=8 rows=4 cols=3 wait=loaded
  matmul ub=0 rows=3 acc=2
  activate acc=2 rows=3 cols=3 ub=16 func=relu multiplier=5 shift=3 zero_point=-3 signal=done
  dma.store hbm=0x20 ub=16 elems=3 pack=4 groups=3 group_stride=5 wait=done
halt
  dma.store hbm=0x0 ub=16 elems=4 pack=4  # after halt: never runs
)";

TEST(Interpret, SmallProgramMatchesNaiveReference) {
  Program p = parse_assembly(kProgram);
  std::mt19937 rng(3);
  std::vector<std::int8_t> x(12), w(12);
  for (auto& v : x) v = std::int8_t(rng());
  for (auto& v : w) v = std::int8_t(rng());
  p.hbm_image.push_back({"x", 0x0, std::vector<std::uint8_t>(x.begin(), x.end())});
  p.hbm_image.push_back({"w", 0x10, std::vector<std::uint8_t>(w.begin(), w.end())});
  const MachineState s = interpret(small_config(), p);
  for (int m = 0; m < 3; ++m) {
    for (int n = 0; n < 3; ++n) {
      std::int64_t acc = 0;
      for (int k = 0; k < 4; ++k) acc += x[std::size_t(m * 4 + k)] * w[std::size_t(k * 3 + n)];
      std::int64_t v = ((acc * 5 + 4) >> 3) - 3;
      v = std::max<std::int64_t>(-3, std::min<std::int64_t>(127, v));
      EXPECT_EQ(std::int8_t(s.hbm[std::size_t(0x20 + m * 5 + n)]), v) << m << "," << n;
    }
    EXPECT_EQ(s.hbm[std::size_t(0x20 + m * 5 + 3)], 0) << "gap byte";
  }
  // The store after HALT did not run: X is intact.
  EXPECT_EQ(std::int8_t(s.hbm[0]), x[0]);
}

// The example of ISA.md runs and computes Y = relu((X W * 3 + 8) >> 4).
TEST(Interpret, IsaDocumentationExampleComputesItsComment) {
  std::ifstream in(tpu::test_paths::source_dir() + "/sim/isa/ISA.md");
  ASSERT_TRUE(in) << "cannot read ISA.md";
  const std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::size_t begin = doc.find("```asm\n");
  ASSERT_NE(begin, std::string::npos);
  const std::size_t end = doc.find("```", begin + 7);
  Program p = parse_assembly(doc.substr(begin + 7, end - begin - 7));
  std::mt19937 rng(11);
  std::vector<std::uint8_t> image(128);
  for (auto& b : image) b = std::uint8_t(rng());
  p.hbm_image.push_back({"x_w", 0, image});
  Config c = small_config();
  c.array.rows = c.array.cols = 8;
  c.acc.capacity_bytes = 8 * 8 * 4;
  const MachineState s = interpret(c, p);
  for (int m = 0; m < 8; ++m) {
    for (int n = 0; n < 8; ++n) {
      std::int64_t acc = 0;
      for (int k = 0; k < 8; ++k) {
        acc += std::int8_t(image[std::size_t(m * 8 + k)]) *
               std::int8_t(image[std::size_t(64 + k * 8 + n)]);
      }
      const std::int64_t v =
          std::min<std::int64_t>(127, std::max<std::int64_t>(0, (acc * 3 + 8) >> 4));
      EXPECT_EQ(std::int8_t(s.hbm[std::size_t(0x80 + m * 8 + n)]), v) << m << "," << n;
    }
  }
}

TEST(Interpret, OutOfRangeInstructionStopsTheRun) {
  Program p = parse_assembly(".hbm 8\ndma.load hbm=0x4 ub=0 elems=8 pack=4\nhalt\n");
  try {
    interpret(small_config(), p);
    FAIL() << "no error";
  } catch (const std::out_of_range& e) {
    EXPECT_STREQ(e.what(), "dma.load: hbm range [0x4, 0xc) outside HBM of 8 bytes");
  }
}

}  // namespace
}  // namespace tpu

namespace tpu {
namespace {

// The fp32 definitions against the mathematical functions they stand for (evaluated in double
// here), and exactly where the arithmetic makes them exact.
TEST(VectorSemantics, ActivationsAgreeWithTheirMathematicalValues) {
  EXPECT_EQ(activation_fp32(0.0f, Activation::kSigmoid), 0.5f);  // 1 / (1 + 1)
  EXPECT_EQ(activation_fp32(0.0f, Activation::kTanh), 0.0f);     // 1 - 2 / 2
  EXPECT_EQ(activation_fp32(0.0f, Activation::kGelu), 0.0f);
  EXPECT_EQ(activation_fp32(0.0f, Activation::kSilu), 0.0f);
  EXPECT_NEAR(activation_fp32(2.0f, Activation::kSigmoid), 1 / (1 + std::exp(-2.0)), 1e-7);
  EXPECT_NEAR(activation_fp32(0.5f, Activation::kTanh), std::tanh(0.5), 1e-7);
  EXPECT_NEAR(activation_fp32(-1.0f, Activation::kSilu), -1 / (1 + std::exp(1.0)), 1e-7);
  // GELU's tanh approximation at 1: 0.5 (1 + tanh(sqrt(2 / pi) (1 + 0.044715))).
  EXPECT_NEAR(activation_fp32(1.0f, Activation::kGelu),
              0.5 * (1 + std::tanh(std::sqrt(2 / M_PI) * 1.044715)), 1e-6);
  // Saturation where e^x overflows or vanishes.
  EXPECT_EQ(activation_fp32(50.0f, Activation::kTanh), 1.0f);
  EXPECT_EQ(activation_fp32(-50.0f, Activation::kTanh), -1.0f);
  EXPECT_EQ(activation_fp32(-100.0f, Activation::kSigmoid), 0.0f);
  EXPECT_EQ(activation_fp32(100.0f, Activation::kSilu), 100.0f);
  EXPECT_EQ(activation_fp32(7.0f, Activation::kRelu6), 6.0f);
  EXPECT_EQ(activation_fp32(-1.0f, Activation::kRelu6), 0.0f);
  EXPECT_TRUE(std::isnan(activation_fp32(NAN, Activation::kRelu6)));
}

TEST(VectorSemantics, Int8FpPathRoundsHalvesAwayFromZeroAndClamps) {
  EXPECT_EQ(requantise_fp32(2.5f, 1.0f, 0), 3);
  EXPECT_EQ(requantise_fp32(-2.5f, 1.0f, 0), -3);
  EXPECT_EQ(requantise_fp32(0.3f, 10.0f, 0), 3);
  EXPECT_EQ(requantise_fp32(1.0f, 1.0f, 5), 6);
  EXPECT_EQ(requantise_fp32(200.0f, 1.0f, 0), 127);
  EXPECT_EQ(requantise_fp32(-1e30f, 1.0f, 0), -128);
  EXPECT_EQ(requantise_fp32(NAN, 1.0f, -4), -4);
}

std::uint32_t bits(float f) {
  std::uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}

Instruction vop(VopKind kind, std::uint32_t rows, std::uint32_t cols) {
  Instruction v;
  v.op = Opcode::kVop;
  v.kind = kind;
  v.ub_row = 0;
  v.src_row = 10;
  v.dst_row = 20;
  v.rows = rows;
  v.cols = cols;
  return v;
}

// Hand values: sigmoid(0) = 0.5 and sigmoid(64 / 64) = 0.7310586 times 100; 10 * 0.5 x
// -3 * 0.25 = -3.75, times 4 = -15; 1.5 x 1.5 = 2.25, times 2 = 4.5, rounded away to 5;
// softmax of equal values is 1 / (kept columns), times 100.
TEST(VopSemantics, Int8MapMulAndSoftmaxByHand) {
  MachineState s(small_config(), empty_program(DataType::kInt8, 0));
  Instruction map = vop(VopKind::kMap, 1, 2);
  map.func = Activation::kSigmoid;
  s.ub_row(0)[1] = 64;
  map.scale_a = bits(1 / 64.0f);
  map.scale_out = bits(100.0f);
  exec_vop(s, map);
  EXPECT_EQ(ub8(s, 20, 0), 50);
  EXPECT_EQ(ub8(s, 20, 1), 73);

  Instruction mul = vop(VopKind::kMul, 2, 1);
  s.ub_row(0)[0] = 10;
  s.ub_row(10)[0] = std::uint8_t(std::int8_t(-3));
  s.ub_row(1)[0] = 3;
  s.ub_row(11)[0] = 3;
  mul.scale_a = bits(0.5f);
  mul.scale_b = bits(0.25f);
  mul.scale_out = bits(4.0f);
  exec_vop(s, mul);
  EXPECT_EQ(ub8(s, 20, 0), -15);
  mul.scale_b = bits(0.5f);
  mul.scale_out = bits(2.0f);
  exec_vop(s, mul);
  EXPECT_EQ(ub8(s, 21, 0), 5);

  for (std::uint32_t m = 0; m < 3; ++m) std::fill(s.ub_row(m), s.ub_row(m) + 4, 9);
  Instruction soft = vop(VopKind::kSoftmax, 3, 4);
  soft.scale_out = bits(100.0f);
  exec_vop(s, soft);
  for (std::uint32_t n = 0; n < 4; ++n) EXPECT_EQ(ub8(s, 22, n), 25);
  // Causal from mask row 1: row m keeps columns j <= 1 + m.
  soft.flags = kFlagCausal;
  soft.mask_row = 1;
  exec_vop(s, soft);
  const int want[3][4] = {{50, 50, 0, 0}, {33, 33, 33, 0}, {25, 25, 25, 25}};
  for (std::uint32_t m = 0; m < 3; ++m) {
    for (std::uint32_t n = 0; n < 4; ++n) EXPECT_EQ(ub8(s, 20 + m, n), want[m][n]) << m << n;
  }
  // Offset -1: row 0 keeps column 0 alone; -2 masks row 0 whole, which stays 0.
  soft.mask_offset = -1;
  exec_vop(s, soft);
  for (std::uint32_t n = 0; n < 4; ++n) EXPECT_EQ(ub8(s, 20, n), n == 0 ? 100 : 0);
  soft.mask_offset = -2;
  exec_vop(s, soft);
  for (std::uint32_t n = 0; n < 4; ++n) EXPECT_EQ(ub8(s, 20, n), 0);
  for (std::uint32_t n = 0; n < 4; ++n) EXPECT_EQ(ub8(s, 21, n), n == 0 ? 100 : 0);
}

// bf16 computes in fp32 and rounds the result once; the scales are ignored.
TEST(VopSemantics, Bf16RoundsTheFp32ResultOnce) {
  MachineState s(small_config(DataType::kBf16), empty_program(DataType::kBf16, 0));
  const auto put = [&](std::uint64_t row, std::uint32_t n, float v) {
    const std::uint16_t b = fp32_to_bf16(v);
    std::memcpy(s.ub_row(row) + 2 * n, &b, 2);
  };
  const auto get = [&](std::uint64_t row, std::uint32_t n) {
    std::uint16_t b;
    std::memcpy(&b, s.ub_row(row) + 2 * n, 2);
    return b;
  };
  put(0, 0, 1.5f);
  put(10, 0, 1.5f);
  put(0, 1, 3.0f);
  put(10, 1, 1.0f / 3);
  Instruction mul = vop(VopKind::kMul, 1, 2);
  mul.scale_out = bits(100.0f);
  exec_vop(s, mul);
  EXPECT_EQ(get(20, 0), fp32_to_bf16(2.25f));
  EXPECT_EQ(get(20, 1), fp32_to_bf16(3.0f * bf16_to_fp32(fp32_to_bf16(1.0f / 3))));
  put(0, 0, 0.0f);
  put(0, 1, 0.0f);
  Instruction soft = vop(VopKind::kSoftmax, 1, 2);
  soft.func = Activation::kSigmoid;
  exec_vop(s, soft);
  EXPECT_EQ(get(20, 0), fp32_to_bf16(1.0f / (1.0f + std::exp(-0.5f))));
}

// int8 ACTIVATE beyond relu: x = acc * scale_in, requantised by scale_out. gelu(1) =
// 0.841192 and gelu(-1) = -0.158808, times 100: 84 and -16 (100 * 0.01f rounds to 1.0f);
// relu6(7) = 6, times 10: 60. The integer multiplier and shift play no part.
TEST(ActivateSemantics, Int8ActivationsBeyondReluTakeTheFp32Path) {
  MachineState s(small_config(), empty_program(DataType::kInt8, 0));
  s.acc_i32[0] = 100;
  s.acc_i32[1] = -100;
  s.acc_i32[4] = 700;
  Instruction a;
  a.op = Opcode::kActivate;
  a.rows = 1;
  a.cols = 2;
  a.ub_row = 5;
  a.func = Activation::kGelu;
  a.multiplier = 12345;
  a.shift = 3;
  a.scale_a = bits(0.01f);
  a.scale_out = bits(100.0f);
  exec_activate(s, a);
  EXPECT_EQ(ub8(s, 5, 0), 84);
  EXPECT_EQ(ub8(s, 5, 1), -16);
  a.acc_row = 1;
  a.cols = 1;
  a.func = Activation::kRelu6;
  a.scale_out = bits(10.0f);
  exec_activate(s, a);
  EXPECT_EQ(ub8(s, 5, 0), 60);
}

// Layer norm of 1, 2, 3, 4: mean 2.5, variance (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25,
// r = 1 / sqrt(1.25 + 1e-5) = 0.894424; gamma 64 / 64 = 1, beta 32 / 64 = 0.5:
// (-1.5, -0.5, 0.5, 1.5) * r + 0.5 = -0.8416, 0.0528, 0.9472, 1.8416, times 50: -42, 3, 47, 92.
// RMS norm of 3, 4: mean square 12.5, r = 0.282843, gamma 1: 0.8485, 1.1314, times 100: 85, 113
// -> clamped 113 stays (<= 127).
TEST(VopSemantics, Int8NormsByHand) {
  MachineState s(small_config(), empty_program(DataType::kInt8, 0));
  for (std::uint32_t n = 0; n < 4; ++n) {
    s.ub_row(0)[n] = std::uint8_t(n + 1);
    s.ub_row(10)[n] = 64;  // gamma
    s.ub_row(11)[n] = 32;  // beta
  }
  Instruction ln = vop(VopKind::kLayerNorm, 1, 4);
  ln.scale_b = bits(1 / 64.0f);
  ln.scale_out = bits(50.0f);
  exec_vop(s, ln);
  const int want[4] = {-42, 3, 47, 92};
  for (std::uint32_t n = 0; n < 4; ++n) EXPECT_EQ(ub8(s, 20, n), want[n]) << n;
  s.ub_row(1)[0] = 3;
  s.ub_row(1)[1] = 4;
  Instruction rms = vop(VopKind::kRmsNorm, 1, 2);
  rms.ub_row = 1;
  rms.scale_b = bits(1 / 64.0f);
  rms.scale_out = bits(100.0f);
  exec_vop(s, rms);
  EXPECT_EQ(ub8(s, 20, 0), 85);
  EXPECT_EQ(ub8(s, 20, 1), 113);
  // eps joins the mean square: 1 / sqrt(12.5 + 12.5) = 0.2, so 3 and 4 become 60 and 80.
  rms.eps = bits(12.5f);
  exec_vop(s, rms);
  EXPECT_EQ(ub8(s, 20, 0), 60);
  EXPECT_EQ(ub8(s, 20, 1), 80);
}

TEST(VopSemantics, ChecksItsRows) {
  const MachineState s(small_config(), empty_program(DataType::kInt8, 0), false);
  Instruction v = vop(VopKind::kMap, 4, 5);
  EXPECT_EQ(out_of_range_message(s, v), "vop: cols 5 not in [1, 4] (elements <= UB row elements)");
  v.cols = 4;
  v.src_row = 62;  // b is read only by mul
  EXPECT_EQ(out_of_range_message(s, v), "");
  v.kind = VopKind::kMul;
  EXPECT_EQ(out_of_range_message(s, v),
            "vop: ub_b rows [62, 66) outside the unified buffer of 64 rows");
  v.kind = VopKind::kLayerNorm;  // gamma and beta: 2 rows whatever `rows`
  v.src_row = 63;
  EXPECT_EQ(out_of_range_message(s, v),
            "vop: ub_b rows [63, 65) outside the unified buffer of 64 rows");
  v.kind = VopKind::kRmsNorm;
  EXPECT_EQ(out_of_range_message(s, v), "");
  v.kind = VopKind::kSoftmax;
  v.dst_row = 61;
  EXPECT_EQ(out_of_range_message(s, v),
            "vop: dst rows [61, 65) outside the unified buffer of 64 rows");
}

// A row op over rows longer than a UB row (4 elements here): 2 rows of 10 in chunks of 4, 4, 2,
// a's chunks 2 rows apart, dst's 3. All inputs 9: softmax gives 100 / 10 = 10 everywhere;
// causal from mask row 4 (columns counted across chunks), row 0 keeps columns 0..4 (100 / 5 =
// 20) and row 1 keeps 0..5 (100 / 6 = 16.7 -> 17). Rows between dst's chunks and the last
// chunk's elements past the row stay untouched (7).
TEST(VopSemantics, Int8SoftmaxAcrossChunksByHand) {
  MachineState s(small_config(), empty_program(DataType::kInt8, 0));
  for (std::uint64_t r = 0; r < 6; ++r) std::fill(s.ub_row(r), s.ub_row(r) + 4, 9);
  for (std::uint64_t r = 20; r < 28; ++r) std::fill(s.ub_row(r), s.ub_row(r) + 4, 7);
  Instruction soft = vop(VopKind::kSoftmax, 2, 10);
  soft.chunk_cols = 4;
  soft.chunk_stride_a = 2;
  soft.chunk_stride_dst = 3;
  soft.scale_out = bits(100.0f);
  const auto at = [&](std::uint32_t m, std::uint32_t n) {
    return ub8(s, 20 + (n / 4) * 3 + m, n % 4);
  };
  exec_vop(s, soft);
  for (std::uint32_t m = 0; m < 2; ++m) {
    for (std::uint32_t n = 0; n < 10; ++n) EXPECT_EQ(at(m, n), 10) << m << " " << n;
  }
  soft.flags = kFlagCausal;
  soft.mask_row = 4;
  exec_vop(s, soft);
  for (std::uint32_t n = 0; n < 10; ++n) {
    EXPECT_EQ(at(0, n), n <= 4 ? 20 : 0) << n;
    EXPECT_EQ(at(1, n), n <= 5 ? 17 : 0) << n;
  }
  for (std::uint32_t n = 0; n < 4; ++n) {
    EXPECT_EQ(ub8(s, 22, n), 7);
    EXPECT_EQ(ub8(s, 25, n), 7);
  }
  for (std::uint64_t r : {26, 27}) {
    EXPECT_EQ(ub8(s, r, 2), 7);
    EXPECT_EQ(ub8(s, r, 3), 7);
  }
}

// Chunks change where elements live, not the arithmetic: a bf16 layer norm (and RMS norm) of
// 10 elements in chunks of 4 equals norm_fp32 over the flat row, rounded once, bit for bit.
TEST(VopSemantics, Bf16NormsAcrossChunksMatchTheFlatRow) {
  MachineState s(small_config(DataType::kBf16), empty_program(DataType::kBf16, 0));
  std::vector<float> x(10), gamma(10), beta(10);
  const auto put = [&](std::uint64_t row, std::uint32_t n, float v) {
    const std::uint16_t b = fp32_to_bf16(v);
    std::memcpy(s.ub_row(row) + 2 * n, &b, 2);
    return bf16_to_fp32(b);
  };
  for (std::uint32_t n = 0; n < 10; ++n) {
    x[n] = put(n / 4 * 2, n % 4, 0.37f * float(n) - 1.3f);      // a: chunks 2 rows apart
    gamma[n] = put(10 + n / 4, n % 4, 1.0f + 0.11f * float(n));  // gamma: rows 10..12
    beta[n] = put(13 + n / 4, n % 4, 0.05f * float(n) - 0.2f);   // beta: rows 13..15
  }
  for (VopKind kind : {VopKind::kLayerNorm, VopKind::kRmsNorm}) {
    SCOPED_TRACE(to_string(kind));
    Instruction norm = vop(kind, 1, 10);
    norm.chunk_cols = 4;
    norm.chunk_stride_a = 2;
    norm.chunk_stride_dst = 1;
    exec_vop(s, norm);
    std::vector<float> want = x;
    float eps;
    std::memcpy(&eps, &norm.eps, sizeof eps);
    norm_fp32(want.data(), 10, gamma.data(), kind == VopKind::kLayerNorm ? beta.data() : nullptr,
              eps);
    for (std::uint32_t n = 0; n < 10; ++n) {
      std::uint16_t got;
      std::memcpy(&got, s.ub_row(20 + n / 4) + 2 * (n % 4), 2);
      EXPECT_EQ(got, fp32_to_bf16(want[n])) << n;
    }
  }
}

TEST(VopSemantics, ChecksItsChunks) {
  const MachineState s(small_config(), empty_program(DataType::kInt8, 0), false);
  Instruction v = vop(VopKind::kSoftmax, 2, 10);
  v.chunk_cols = 4;
  v.chunk_stride_a = 2;
  v.chunk_stride_dst = 1;
  EXPECT_EQ(out_of_range_message(s, v),
            "vop: chunk_stride_dst 1 not in [2, 4294967295] (UB rows between chunks >= rows)");
  v.chunk_stride_dst = 20;  // chunks at 20, 40, 60: rows [20, 62)
  EXPECT_EQ(out_of_range_message(s, v), "");
  v.chunk_stride_dst = 21;  // rows [20, 64)
  EXPECT_EQ(out_of_range_message(s, v), "");
  v.chunk_stride_dst = 22;
  EXPECT_EQ(out_of_range_message(s, v),
            "vop: dst rows [20, 66) outside the unified buffer of 64 rows");
  v.chunk_stride_dst = 2;
  v.kind = VopKind::kLayerNorm;  // gamma and beta: 3 rows each from ub_b
  v.src_row = 59;
  EXPECT_EQ(out_of_range_message(s, v),
            "vop: ub_b rows [59, 65) outside the unified buffer of 64 rows");
  v.chunk_cols = 5;
  EXPECT_EQ(out_of_range_message(s, v),
            "vop: chunk_cols 5 not in [1, 4] (elements per UB row <= UB row elements)");
  v.chunk_cols = 4;
  v.kind = VopKind::kMul;
  EXPECT_EQ(out_of_range_message(s, v),
            "vop: chunk_cols needs a row op (softmax, layernorm, rmsnorm), not mul");
}

// Work and latency from the operation table (sim/README.md, "Vector unit"), with 4 lanes,
// activate_latency 4, alu 2 / 1, exp 8 / 2, reciprocal 6 / 2, reduce_max and reduce_sum 3 / 1
// (latency / cycles per group).
VectorConfig cost_config() {
  VectorConfig c;
  c.lanes = 4;
  c.activate_latency = 4;
  c.alu_latency = 2;
  c.alu_cycles = 1;
  c.exp_latency = 8;
  c.exp_cycles = 2;
  c.reciprocal_latency = 6;
  c.reciprocal_cycles = 2;
  c.reduce_max_latency = 3;
  c.reduce_max_cycles = 1;
  c.reduce_sum_latency = 3;
  c.reduce_sum_cycles = 1;
  c.rsqrt_latency = 6;
  c.rsqrt_cycles = 2;
  return c;
}

TEST(VectorCost, WorkAndLatencyFromTheOperationTable) {
  // relu: the requantise pass alone, c = ceil(8 / 4) = 2 cycles per row.
  VectorWork w = vector_work(activation_ops(Activation::kRelu), 4, 8, cost_config());
  EXPECT_EQ(w.cycles(), 8u);
  EXPECT_EQ(w.latency, 4u);
  // gelu: per group 1 + 11 alu x 1 + exp 2 + reciprocal 2 = 16, 2 groups a row, 4 rows = 128;
  // latency 4 + 11 x 2 + 8 + 6 = 40.
  w = vector_work(activation_ops(Activation::kGelu), 4, 8, cost_config());
  EXPECT_EQ(w.cycles(), 128u);
  EXPECT_EQ(w.latency, 40u);
  // sigmoid and silu: 1 + 1 + 2 + 2 = 6 per group; latency 4 + 2 + 8 + 6 = 20. tanh: 3 alu.
  EXPECT_EQ(vector_work(activation_ops(Activation::kSilu), 1, 4, cost_config()).cycles(), 6u);
  EXPECT_EQ(vector_work(activation_ops(Activation::kSigmoid), 1, 4, cost_config()).latency, 20u);
  EXPECT_EQ(vector_work(activation_ops(Activation::kTanh), 1, 4, cost_config()).cycles(), 8u);
  // Causal softmax of 9 columns, c = 3: per group 1 + max 1 + alu 3 + exp 2 + sum 1 = 8, plus
  // one reciprocal (2) per row: 26; latency 4 + 3 + 3 x 2 + 8 + 3 + 6 = 30. Without the mask
  // one alu fewer per group: 23, latency 28.
  Instruction soft;
  soft.op = Opcode::kVop;
  soft.kind = VopKind::kSoftmax;
  soft.flags = kFlagCausal;
  w = vector_work(vop_ops(soft), 1, 9, cost_config());
  EXPECT_EQ(w.cycles(), 26u);
  EXPECT_EQ(w.latency, 30u);
  soft.flags = 0;
  w = vector_work(vop_ops(soft), 1, 9, cost_config());
  EXPECT_EQ(w.cycles(), 23u);
  EXPECT_EQ(w.latency, 28u);
  // Layer norm of 9 columns, c = 3: per group 1 + sum 2 + alu 5 = 8, per row alu 3 + rsqrt 2:
  // 3 * 8 + 5 = 29; latency 4 + 2 * 3 + 5 * 2 + 3 * 2 + 6 = 32. RMS norm: per group 1 + sum 1 +
  // alu 3 = 5, per row alu 2 + rsqrt 2: 3 * 5 + 4 = 19; latency 4 + 3 + 3 * 2 + 2 * 2 + 6 = 23.
  Instruction norm = soft;
  norm.kind = VopKind::kLayerNorm;
  w = vector_work(vop_ops(norm), 1, 9, cost_config());
  EXPECT_EQ(w.cycles(), 29u);
  EXPECT_EQ(w.latency, 32u);
  norm.kind = VopKind::kRmsNorm;
  w = vector_work(vop_ops(norm), 1, 9, cost_config());
  EXPECT_EQ(w.cycles(), 19u);
  EXPECT_EQ(w.latency, 23u);
  // mul with a tanh: alu 1 + 3, exp, reciprocal: 1 + 4 + 2 + 2 = 9 per group.
  Instruction mul = soft;
  mul.kind = VopKind::kMul;
  mul.func = Activation::kTanh;
  EXPECT_EQ(vector_work(vop_ops(mul), 2, 5, cost_config()).cycles(), 2u * 2 * 9);
  // Softmax of 10 columns in chunks of 5: groups never span two UB rows, so 2 + 2 = 4 groups
  // where one row would take ceil(10 / 4) = 3: 4 * 7 + 2 = 30 per row; the latency is one
  // row's chain, 28, either way.
  w = vector_work(vop_ops(soft), 2, 10, cost_config(), 5);
  EXPECT_EQ(w.groups_per_row, 4u);
  EXPECT_EQ(w.cycles(), 2u * 30);
  EXPECT_EQ(w.latency, 28u);
  EXPECT_EQ(vector_work(vop_ops(soft), 2, 10, cost_config()).groups_per_row, 3u);
}

}  // namespace
}  // namespace tpu
