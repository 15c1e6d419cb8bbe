#pragma once
// The `pe` model of the MXU: an R x C weight-stationary systolic array with every PE register
// explicit, stepped one cycle at a time. SystemC-free; the matrix unit steps it.
//
// Registers of PE (k, n):
//   weight[b]  two weight registers (buffers 0 and 1): one computes while the other loads;
//   input      the activation moving right, with the weight buffer it must meet and the id of
//              the stream it belongs to (0 = bubble);
//   psum       the partial sum moving down.
// int8 programs multiply in int32 (int32 psums); bf16 programs multiply exactly in fp32 and
// add in fp32, summing k = 0 .. R-1 in order from +0.0f, so results are bit-identical to
// matmul_tile() (rows beyond K_t add x = 0 times w = 0, which leaves a sum unchanged).
//
// Timing (cycle t is one call of step(t)):
//   - weight tile loaded from cycle e, diagonal feed (the default; double buffering): weight
//     (j, n) reaches PE (j, n) in cycle e + j + n, the same skew as the inputs: W[j][n] for
//     j < K_t and n < N_t, zero elsewhere (the zeros ride the same wave), so the last PE is
//     written in e + R + C - 2 and the tile's last weight in e + K_t + N_t - 2. Row feed
//     (single buffering, the un-overlapped baseline): PE row j, all columns at once, in
//     cycle e + j. The weight written in cycle t is the one that cycle's multiply uses.
//   - stream starting in cycle s: PE row k receives X[m][k] in cycle s + m + k at its left edge
//     (column 0); inputs move one column right per cycle, so PE (k, n) multiplies it in cycle
//     s + m + k + n; psums move one row down per cycle. The bottom row's psum computed in cycle
//     s + m + (R - 1) + n lands in the accumulators (is emitted by step) in the next cycle:
//     Y[m][n] lands in s + m + n + R; the last one (m = M - 1, n = N_t - 1) in
//     L = s + M + N_t + R - 2.
//   - weights lead inputs: a stream's first input meets PE (k, n) in s + k + n, after its
//     tile's weight (e + k + n, or e + k) iff s >= e + 1; add_stream throws std::logic_error
//     otherwise.
//   - a stream uses PE (j, n) of its buffer for the last time in s + M - 1 + j + n, and a
//     diagonal load from e writes it in e + j + n: the same skew, so once the last input has
//     passed PE (0, 0) (cycle s + M - 1) the buffer may be reloaded from the next cycle on,
//     e >= s + M, whatever R, N_t or either tile's K_t (released()). step() throws
//     std::logic_error if a load writes a PE (j, n) that a stream of an earlier tile on that
//     buffer has still to use (every row j, columns n < N_t of that stream).
#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

#include "sim/config/config.h"
#include "sim/cycles.h"
#include "sim/isa/semantics.h"

namespace tpu {

class SystolicArray {
 public:
  // How a weight load travels into the array (see the timing above).
  enum class WeightFeed { kDiagonal, kRows };

  SystolicArray(std::uint32_t rows, std::uint32_t cols, DataType dtype,
                WeightFeed feed = WeightFeed::kDiagonal);

  std::uint32_t rows() const { return rows_; }
  std::uint32_t cols() const { return cols_; }

  // Writes `tile` into weight buffer `buffer` from cycle `start`: PE (j, n) in start + j + n
  // (diagonal) or start + j (rows). Streams added later on that buffer multiply by it; loads
  // must start in increasing cycles.
  void load_weights(int buffer, const WeightTile& tile, Cycle start);

  // Registers a stream of m_rows input vectors of k_rows elements (row-major, int8 values or
  // bf16 bit patterns, matching the array's type) against the n_cols-wide tile in `buffer`;
  // row m enters in cycle start + m, start > the start of the buffer's last load. Streams must
  // not overlap in time on the left edge.
  // Returns the stream id used in outputs (ids increase from 1).
  std::uint64_t add_stream(int buffer, std::uint32_t m_rows, std::uint32_t k_rows,
                           std::uint32_t n_cols, const std::vector<std::int8_t>& x, Cycle start);
  std::uint64_t add_stream(int buffer, std::uint32_t m_rows, std::uint32_t k_rows,
                           std::uint32_t n_cols, const std::vector<std::uint16_t>& x,
                           Cycle start);

  struct Output {
    std::uint64_t stream;
    std::uint32_t m, n;
    std::int32_t i32;  // int8 arrays
    float f32;         // bf16 arrays
  };
  struct Finished {
    std::uint64_t stream;
    Cycle last;  // L: the cycle its last result landed
  };
  struct Released {
    std::uint64_t stream;
    Cycle from;  // a diagonal load of the stream's buffer may start in this cycle
  };

  // Advances the array by cycle t. Cycles must follow each other while anything is in flight;
  // after a gap (nothing in flight) the registers restart empty.
  void step(Cycle t);
  // Results that landed in the cycle of the last step, streams that completed in it, and
  // streams whose last input passed PE (0, 0) in it.
  const std::vector<Output>& outputs() const { return outputs_; }
  const std::vector<Finished>& finished() const { return finished_; }
  const std::vector<Released>& released() const { return released_; }

  // PE (k, n)'s registers after the last step, for observers (sim/observer.h): its weight in
  // buffer b, the input it multiplied in that cycle (stream 0: a bubble), the buffer that input
  // met, and the psum it passed down. Values are exact: int32 for int8 arrays, fp32 for bf16.
  double weight(int b, std::uint32_t k, std::uint32_t n) const {
    const std::size_t at = std::size_t(k) * cols_ + n;
    return dtype_ == DataType::kInt8 ? double(wi_[b][at]) : double(wf_[b][at]);
  }
  double input(std::uint32_t k, std::uint32_t n) const {
    const std::size_t at = std::size_t(k) * cols_ + n;
    return dtype_ == DataType::kInt8 ? double(xi_[at]) : double(xf_[at]);
  }
  std::uint64_t input_stream(std::uint32_t k, std::uint32_t n) const {
    return xid_[std::size_t(k) * cols_ + n];
  }
  int input_buffer(std::uint32_t k, std::uint32_t n) const {
    return xbuf_[std::size_t(k) * cols_ + n];
  }
  double psum(std::uint32_t k, std::uint32_t n) const {
    const std::size_t at = std::size_t(k) * cols_ + n;
    return dtype_ == DataType::kInt8 ? double(pi_[at]) : double(pf_[at]);
  }

  // The next cycle that must be stepped: the next one while data or a weight load is in
  // flight, else the start of the earliest registered stream or load; none when idle.
  std::optional<Cycle> next_cycle() const;

 private:
  struct Stream {
    std::uint64_t id;
    int buffer;
    std::uint64_t load;  // id of the weight load it multiplies by
    std::uint32_t m_rows, k_rows, n_cols;
    Cycle start;
    std::vector<std::int32_t> xi;  // m_rows x k_rows
    std::vector<float> xf;
    std::uint64_t emitted = 0;
    bool done = false;
  };
  struct Load {
    std::uint64_t id;
    int buffer;
    std::uint32_t k_rows, n_cols;
    Cycle start;
    std::vector<std::int32_t> wi;  // k_rows x n_cols
    std::vector<float> wf;
  };

  Stream& new_stream(int buffer, std::uint32_t m_rows, std::uint32_t k_rows,
                     std::uint32_t n_cols, Cycle start);
  void flush();
  void write_weights(Cycle t);
  void check_pe_unused(const Load& l, std::size_t j, std::size_t n, Cycle t) const;
  void emit(Cycle t);
  void find_released(Cycle t);
  template <typename T>
  void compute(Cycle t, std::vector<T>& x, const std::vector<T>& w0, const std::vector<T>& w1,
               std::vector<T>& p, const std::vector<T> Stream::*xs);

  const std::uint32_t rows_, cols_;
  const DataType dtype_;
  const WeightFeed feed_;
  const Cycle load_span_;  // cycles a load writes PEs: R + C - 1 (diagonal) or R (rows)
  // Row-major R x C register files. The int32 set serves int8 arrays, the float set bf16.
  std::vector<std::int32_t> wi_[2], xi_, pi_;
  std::vector<float> wf_[2], xf_, pf_;
  std::vector<std::int32_t> xbuf_;  // weight buffer each input meets (0/1)
  std::vector<std::uint64_t> xid_;  // stream of each input, 0 = bubble
  std::deque<Stream> streams_;      // live streams, ids front_id_ .. in order
  std::uint64_t front_id_ = 1, next_id_ = 1;
  std::deque<Load> loads_;  // in start order; each writes for load_span_ cycles, so loads overlap
  std::uint64_t loads_added_ = 0;
  std::uint64_t last_load_[2] = {0, 0};  // id of the latest load of each buffer (ids from 1)
  Cycle last_load_start_[2] = {0, 0};
  std::optional<Cycle> last_step_;
  std::vector<Output> outputs_;
  std::vector<Finished> finished_;
  std::vector<Released> released_;
};

}  // namespace tpu
