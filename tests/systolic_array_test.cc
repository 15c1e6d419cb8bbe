// The `pe` systolic array against the reference tile multiply (matmul_tile), and the cycles at
// which its results land.
#include "sim/systolic_array.h"

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <random>
#include <stdexcept>
#include <tuple>

#include "sim/isa/semantics.h"

namespace tpu {
namespace {

struct Tile {
  std::uint32_t m, k, n;
  WeightTile w;
  std::vector<std::int8_t> x8;
  std::vector<std::uint16_t> x16;
};

Tile random_tile(DataType dtype, std::uint32_t m, std::uint32_t k, std::uint32_t n,
                 std::mt19937& rng) {
  Tile t{m, k, n, {}, {}, {}};
  t.w.rows = k;
  t.w.cols = n;
  std::uniform_int_distribution<int> i8(-128, 127);
  std::uniform_real_distribution<float> real(-4.0f, 4.0f);
  if (dtype == DataType::kInt8) {
    for (std::uint32_t i = 0; i < k * n; ++i) t.w.int8.push_back(std::int8_t(i8(rng)));
    for (std::uint32_t i = 0; i < m * k; ++i) t.x8.push_back(std::int8_t(i8(rng)));
  } else {
    for (std::uint32_t i = 0; i < k * n; ++i) t.w.bf16.push_back(fp32_to_bf16(real(rng)));
    for (std::uint32_t i = 0; i < m * k; ++i) t.x16.push_back(fp32_to_bf16(real(rng)));
  }
  widen_for_dot(t.w);
  return t;
}

// Reference: matmul_tile on a machine whose UB rows 0 .. M-1 hold X; returns acc rows 0 .. M-1
// (array_cols words each) as raw bytes.
std::vector<std::uint8_t> reference(DataType dtype, std::uint32_t rows, std::uint32_t cols,
                                    const Tile& t) {
  Config config;
  config.array.rows = rows;
  config.array.cols = cols;
  config.ub.capacity_bytes = 1 << 16;
  config.acc.capacity_bytes = 1 << 16;
  Program program;
  program.dtype = dtype;
  program.array_rows = rows;
  program.array_cols = cols;
  MachineState s(config, program);
  for (std::uint32_t m = 0; m < t.m; ++m) {
    if (dtype == DataType::kInt8) {
      std::memcpy(s.ub_row(m), t.x8.data() + m * t.k, t.k);
    } else {
      std::memcpy(s.ub_row(m), t.x16.data() + m * t.k, t.k * 2);
    }
  }
  Instruction inst;
  inst.op = Opcode::kMatmul;
  inst.rows = t.m;
  inst.ub_row = 0;
  inst.ub_stride = 1;
  inst.acc_row = 0;
  matmul_tile(s, inst, t.w);
  const std::size_t words = std::size_t(t.m) * cols;
  std::vector<std::uint8_t> out(words * 4);
  if (dtype == DataType::kInt8) {
    std::memcpy(out.data(), s.acc_i32.data(), out.size());
  } else {
    std::memcpy(out.data(), s.acc_f32.data(), out.size());
  }
  return out;
}

struct Landed {
  std::vector<std::uint8_t> acc;  // M x cols words, raw bytes
  Cycle first = ~Cycle(0), last = 0, finished_at = 0, released_from = 0;
  std::uint64_t count = 0;
};

std::uint64_t add(SystolicArray& a, int buffer, const Tile& t, Cycle start) {
  return t.x8.empty() ? a.add_stream(buffer, t.m, t.k, t.n, t.x16, start)
                      : a.add_stream(buffer, t.m, t.k, t.n, t.x8, start);
}

// Steps the array until idle, collecting each stream's results into its own accumulators.
std::map<std::uint64_t, Landed> run(SystolicArray& a, const std::map<std::uint64_t, Tile*>& tiles,
                                    DataType dtype) {
  std::map<std::uint64_t, Landed> got;
  for (const auto& [id, t] : tiles) got[id].acc.assign(std::size_t(t->m) * a.cols() * 4, 0);
  while (auto c = a.next_cycle()) {
    a.step(*c);
    for (const SystolicArray::Output& o : a.outputs()) {
      Landed& l = got.at(o.stream);
      const std::size_t at = (std::size_t(o.m) * a.cols() + o.n) * 4;
      if (dtype == DataType::kInt8) {
        std::memcpy(&l.acc[at], &o.i32, 4);
      } else {
        std::memcpy(&l.acc[at], &o.f32, 4);
      }
      l.first = std::min(l.first, *c);
      l.last = std::max(l.last, *c);
      ++l.count;
    }
    for (const SystolicArray::Finished& f : a.finished()) got.at(f.stream).finished_at = f.last;
    for (const SystolicArray::Released& r : a.released()) got.at(r.stream).released_from = r.from;
  }
  return got;
}

class SystolicArrayTest : public ::testing::TestWithParam<DataType> {};

// One tile: loaded from cycle 0 (row j written in cycle j), streamed from s = K_t.
// Y[m][n] lands in s + m + n + R, so the first result (m = n = 0) lands in s + R and the last
// (m = M-1, n = N_t-1) in L = s + M + N_t + R - 2.
TEST_P(SystolicArrayTest, MatchesReferenceAndLandsOnTime) {
  const DataType dtype = GetParam();
  std::mt19937 rng(7);
  const std::tuple<std::uint32_t, std::uint32_t, std::uint32_t, std::uint32_t, std::uint32_t>
      shapes[] = {// R, C, M, K_t, N_t
                  {4, 4, 1, 4, 4},   {4, 4, 5, 4, 4},   {8, 8, 9, 3, 5},
                  {8, 6, 3, 8, 1},   {5, 12, 7, 2, 12}, {16, 16, 20, 16, 16},
                  {16, 4, 2, 11, 3}, {3, 9, 1, 1, 9}};
  for (const auto& [r, c, m, k, n] : shapes) {
    SCOPED_TRACE(::testing::Message() << r << "x" << c << " M=" << m << " K=" << k << " N=" << n);
    Tile t = random_tile(dtype, m, k, n, rng);
    SystolicArray a(r, c, dtype);
    a.load_weights(0, t.w, 0);
    const Cycle s = k;
    const std::uint64_t id = add(a, 0, t, s);
    auto got = run(a, {{id, &t}}, dtype);
    const Landed& l = got.at(id);
    EXPECT_EQ(l.acc, reference(dtype, r, c, t));
    EXPECT_EQ(l.count, std::uint64_t(m) * n);
    EXPECT_EQ(l.first, s + r);
    EXPECT_EQ(l.last, s + m + n + r - 2);
    EXPECT_EQ(l.finished_at, l.last);
  }
}

// Tile A in buffer 0 (loaded 0 .. K_a-1) streams from s1 = K_a while tile B is written into
// buffer 1 during s1 .. s1 + K_b - 1; stream 2 starts at s2 = s1 + M_1 (the previous stream has left
// the left edge, and K_b <= M_1 so B is loaded). Both streams are in the array together, each
// input meeting its own buffer: L_1 = s1 + M_1 + N_a + R - 2, L_2 = s2 + M_2 + N_b + R - 2.
TEST_P(SystolicArrayTest, BackToBackStreamsUseTheirOwnBuffers) {
  const DataType dtype = GetParam();
  std::mt19937 rng(11);
  const std::uint32_t r = 8, c = 8;
  Tile ta = random_tile(dtype, 10, 8, 8, rng);
  Tile tb = random_tile(dtype, 6, 5, 3, rng);
  SystolicArray a(r, c, dtype);
  a.load_weights(0, ta.w, 0);
  const Cycle s1 = 8, s2 = s1 + 10;
  a.load_weights(1, tb.w, s1);
  const std::uint64_t ia = add(a, 0, ta, s1);
  const std::uint64_t ib = add(a, 1, tb, s2);
  auto got = run(a, {{ia, &ta}, {ib, &tb}}, dtype);
  EXPECT_EQ(got.at(ia).acc, reference(dtype, r, c, ta));
  EXPECT_EQ(got.at(ib).acc, reference(dtype, r, c, tb));
  EXPECT_EQ(got.at(ia).finished_at, s1 + 10 + 8 + r - 2);
  EXPECT_EQ(got.at(ib).finished_at, s2 + 6 + 3 + r - 2);
}

// A later, narrower stream can finish before an earlier, wider one (M_2 + N_2 < N_1); stale
// registers from idle gaps must not leak into a later stream.
TEST_P(SystolicArrayTest, OutOfOrderFinishAndIdleGaps) {
  const DataType dtype = GetParam();
  std::mt19937 rng(5);
  const std::uint32_t r = 6, c = 10;
  Tile t1 = random_tile(dtype, 2, 6, 10, rng);
  Tile t2 = random_tile(dtype, 1, 6, 1, rng);
  Tile t3 = random_tile(dtype, 3, 4, 7, rng);
  SystolicArray a(r, c, dtype);
  a.load_weights(0, t1.w, 0);
  const std::uint64_t i1 = add(a, 0, t1, 6);
  a.load_weights(1, t2.w, 6);
  const std::uint64_t i2 = add(a, 1, t2, 12);
  auto got = run(a, {{i1, &t1}, {i2, &t2}}, dtype);
  // L_1 = 6 + 2 + 10 + 6 - 2 = 22; L_2 = 12 + 1 + 1 + 6 - 2 = 18.
  EXPECT_EQ(got.at(i1).finished_at, 22u);
  EXPECT_EQ(got.at(i2).finished_at, 18u);
  EXPECT_EQ(got.at(i1).acc, reference(dtype, r, c, t1));
  EXPECT_EQ(got.at(i2).acc, reference(dtype, r, c, t2));
  // After an idle gap: load at 100 .. 103, stream from 104, L = 104 + 3 + 7 + 6 - 2 = 118.
  a.load_weights(0, t3.w, 100);
  const std::uint64_t i3 = add(a, 0, t3, 104);
  auto got3 = run(a, {{i3, &t3}}, dtype);
  EXPECT_EQ(got3.at(i3).acc, reference(dtype, r, c, t3));
  EXPECT_EQ(got3.at(i3).finished_at, 118u);
}

// The wavefront rule with diagonal weight loads: stream A (M rows, buffer 0, loaded from
// cycle 0) starts at s = 1, right behind its weights (input row 0 meets PE (k, n) in
// 1 + k + n, one cycle after the weight written in 0 + k + n). Its last input uses PE (j, n)
// in s + M - 1 + j + n, and a load from e writes PE (j, n) in e + j + n: the same skew, so
// tile B may be loaded into the same buffer from e = s + M (released there), whatever R, C,
// K_a, N_a, K_b or N_b. B's stream starts right behind its weights, at e + 1, while A's last
// inputs and B's first inputs share the array (A's in the PEs below and right of B's
// wave). One cycle earlier, e = s + M - 1, PE (0, 0) would lose A's weight in the cycle A's
// last input uses it: the array throws. Shapes include M = 1, M < K_a, M < K_a + N_a - 1,
// and a narrower and a wider tile B.
TEST_P(SystolicArrayTest, ReloadFollowsTheWavefront) {
  const DataType dtype = GetParam();
  std::mt19937 rng(3);
  struct Shape {
    std::uint32_t r, c, m, ka, na, mb, kb, nb;
  };
  const Shape shapes[] = {{8, 8, 4, 8, 8, 5, 8, 8},   {8, 8, 1, 8, 3, 2, 2, 8},
                          {8, 8, 3, 6, 8, 1, 8, 2},   {5, 12, 7, 2, 12, 3, 5, 1},
                          {16, 4, 2, 11, 3, 4, 16, 4}, {3, 9, 1, 1, 9, 1, 3, 9},
                          {8, 8, 20, 8, 8, 20, 8, 8}};
  for (const Shape& sh : shapes) {
    SCOPED_TRACE(::testing::Message() << sh.r << "x" << sh.c << " M=" << sh.m << " K_a="
                                      << sh.ka << " N_a=" << sh.na << " K_b=" << sh.kb
                                      << " N_b=" << sh.nb);
    Tile ta = random_tile(dtype, sh.m, sh.ka, sh.na, rng);
    Tile tb = random_tile(dtype, sh.mb, sh.kb, sh.nb, rng);
    const Cycle s = 1, e = s + sh.m;
    {
      SystolicArray a(sh.r, sh.c, dtype);
      a.load_weights(0, ta.w, 0);
      const std::uint64_t ia = add(a, 0, ta, s);
      a.load_weights(0, tb.w, e);
      const std::uint64_t ib = add(a, 0, tb, e + 1);
      auto got = run(a, {{ia, &ta}, {ib, &tb}}, dtype);
      EXPECT_EQ(got.at(ia).released_from, e);
      EXPECT_EQ(got.at(ib).released_from, e + 1 + sh.mb);
      EXPECT_EQ(got.at(ia).acc, reference(dtype, sh.r, sh.c, ta));
      EXPECT_EQ(got.at(ib).acc, reference(dtype, sh.r, sh.c, tb));
      // L = s + M + N_t + R - 2 for each stream.
      EXPECT_EQ(got.at(ia).finished_at, s + sh.m + sh.na + sh.r - 2);
      EXPECT_EQ(got.at(ib).finished_at, e + 1 + sh.mb + sh.nb + sh.r - 2);
    }
    SystolicArray a(sh.r, sh.c, dtype);
    a.load_weights(0, ta.w, 0);
    const std::uint64_t ia = add(a, 0, ta, s);
    a.load_weights(0, tb.w, e - 1);
    EXPECT_THROW(run(a, {{ia, &ta}}, dtype), std::logic_error);
  }
}

// Several streams on one tile: the reload waits for the last of them. Tile A (8 x 8 array,
// K_a = 5, N_a = 7) loaded from 0 streams M_1 = 6 rows from s_1 = 1 (released 7), then
// M_2 = 2 rows from s_2 = 7 (released 9); tile C sits in buffer 1 (loaded from 3, streamed
// from 9 .. 11, released 12); tile B reloads buffer 0 from e = s_2 + M_2 = 9 and streams from
// 12 (the left edge is free again). Loading B from 8 (after stream 1's release but one cycle
// before stream 2's) throws.
TEST_P(SystolicArrayTest, ReloadWaitsForTheLastStreamOfItsTile) {
  const DataType dtype = GetParam();
  std::mt19937 rng(17);
  const std::uint32_t r = 8, c = 8;
  Tile a1 = random_tile(dtype, 6, 5, 7, rng);
  Tile a2 = random_tile(dtype, 2, 5, 7, rng);
  a2.w = a1.w;  // the same tile
  Tile tc = random_tile(dtype, 3, 8, 2, rng);
  Tile tb = random_tile(dtype, 4, 3, 8, rng);
  for (const Cycle e : {Cycle(9), Cycle(8)}) {
    SCOPED_TRACE(::testing::Message() << "B loaded from " << e);
    SystolicArray a(r, c, dtype);
    a.load_weights(0, a1.w, 0);
    const std::uint64_t i1 = add(a, 0, a1, 1);
    a.load_weights(1, tc.w, 3);
    const std::uint64_t i2 = add(a, 0, a2, 7);
    a.load_weights(0, tb.w, e);
    const std::uint64_t ic = add(a, 1, tc, 9);
    const std::uint64_t ib = add(a, 0, tb, 12);
    if (e == 8) {
      EXPECT_THROW(run(a, {{i1, &a1}, {i2, &a2}, {ic, &tc}, {ib, &tb}}, dtype),
                   std::logic_error);
      continue;
    }
    auto got = run(a, {{i1, &a1}, {i2, &a2}, {ic, &tc}, {ib, &tb}}, dtype);
    EXPECT_EQ(got.at(i1).released_from, 7u);
    EXPECT_EQ(got.at(i2).released_from, 9u);
    EXPECT_EQ(got.at(ic).released_from, 12u);
    EXPECT_EQ(got.at(i1).acc, reference(dtype, r, c, a1));
    EXPECT_EQ(got.at(i2).acc, reference(dtype, r, c, a2));
    EXPECT_EQ(got.at(ic).acc, reference(dtype, r, c, tc));
    EXPECT_EQ(got.at(ib).acc, reference(dtype, r, c, tb));
  }
}

// Weights lead inputs: a stream may start one cycle after its tile's load started, not in
// the same cycle (its first input would meet PE (0, 0) together with the weight).
TEST_P(SystolicArrayTest, StreamMustTrailItsWeights) {
  const DataType dtype = GetParam();
  std::mt19937 rng(23);
  Tile t = random_tile(dtype, 3, 4, 4, rng);
  SystolicArray a(4, 4, dtype);
  a.load_weights(1, t.w, 5);
  EXPECT_THROW(add(a, 1, t, 5), std::logic_error);
  const std::uint64_t id = add(a, 1, t, 6);
  auto got = run(a, {{id, &t}}, dtype);
  EXPECT_EQ(got.at(id).acc, reference(dtype, 4, 4, t));
  EXPECT_EQ(got.at(id).finished_at, 6u + 3 + 4 + 4 - 2);
}

// Row feed (single buffering): PE row j is written in e + j, all columns at once; a stream
// of an earlier tile that still has to use a column < N_t of a row makes the write throw.
// Stream A (M = 3, N_a = 4) on an 8 x 8 array from s = 8 uses row j for the last time in
// s + M - 1 + j + N_a - 1 = 13 + j: a reload from 14 is safe, from 13 throws.
TEST_P(SystolicArrayTest, RowFeedReloadChecksEveryRow) {
  const DataType dtype = GetParam();
  std::mt19937 rng(29);
  Tile ta = random_tile(dtype, 3, 8, 4, rng);
  Tile tb = random_tile(dtype, 2, 6, 8, rng);
  for (const Cycle e : {Cycle(14), Cycle(13)}) {
    SystolicArray a(8, 8, dtype, SystolicArray::WeightFeed::kRows);
    a.load_weights(0, ta.w, 0);
    const std::uint64_t ia = add(a, 0, ta, 8);
    a.load_weights(0, tb.w, e);
    if (e == 13) {
      EXPECT_THROW(run(a, {{ia, &ta}}, dtype), std::logic_error);
      continue;
    }
    const std::uint64_t ib = add(a, 0, tb, e + 6);
    auto got = run(a, {{ia, &ta}, {ib, &tb}}, dtype);
    EXPECT_EQ(got.at(ia).acc, reference(dtype, 8, 8, ta));
    EXPECT_EQ(got.at(ib).acc, reference(dtype, 8, 8, tb));
  }
}

INSTANTIATE_TEST_SUITE_P(Types, SystolicArrayTest,
                         ::testing::Values(DataType::kInt8, DataType::kBf16),
                         [](const auto& info) { return std::string(to_string(info.param)); });

}  // namespace
}  // namespace tpu
