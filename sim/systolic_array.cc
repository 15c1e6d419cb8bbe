#include "sim/systolic_array.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

namespace tpu {

SystolicArray::SystolicArray(std::uint32_t rows, std::uint32_t cols, DataType dtype,
                             WeightFeed feed)
    : rows_(rows),
      cols_(cols),
      dtype_(dtype),
      feed_(feed),
      load_span_(feed == WeightFeed::kDiagonal ? rows + cols - 1 : rows) {
  const std::size_t n = std::size_t(rows) * cols;
  if (dtype == DataType::kInt8) {
    wi_[0].assign(n, 0);
    wi_[1].assign(n, 0);
    xi_.assign(n, 0);
    pi_.assign(n, 0);
  } else {
    wf_[0].assign(n, 0.0f);
    wf_[1].assign(n, 0.0f);
    xf_.assign(n, 0.0f);
    pf_.assign(n, 0.0f);
  }
  xbuf_.assign(n, 0);
  xid_.assign(n, 0);
}

void SystolicArray::load_weights(int buffer, const WeightTile& tile, Cycle start) {
  if (tile.rows == 0 || tile.rows > rows_ || tile.cols == 0 || tile.cols > cols_) {
    throw std::invalid_argument("weight tile does not fit the array");
  }
  if (!loads_.empty() && start <= loads_.back().start) {
    throw std::logic_error("systolic array: weight loads must start in increasing cycles");
  }
  Load load{++loads_added_, buffer, tile.rows, tile.cols, start, {}, {}};
  last_load_[buffer] = load.id;
  last_load_start_[buffer] = start;
  if (dtype_ == DataType::kInt8) {
    load.wi.assign(tile.int8.begin(), tile.int8.end());
  } else {
    load.wf.resize(tile.bf16.size());
    std::transform(tile.bf16.begin(), tile.bf16.end(), load.wf.begin(), bf16_to_fp32);
  }
  loads_.push_back(std::move(load));
}

SystolicArray::Stream& SystolicArray::new_stream(int buffer, std::uint32_t m_rows,
                                                 std::uint32_t k_rows, std::uint32_t n_cols,
                                                 Cycle start) {
  if (m_rows == 0 || k_rows == 0 || k_rows > rows_ || n_cols == 0 || n_cols > cols_) {
    throw std::invalid_argument("stream does not fit the array");
  }
  // Input row 0 meets PE (k, n) in start + k + n; the load's weight reaches it in
  // e + k + n (diagonal) or e + k (rows), so the weights lead every input iff start > e.
  if (last_load_[buffer] != 0 && start <= last_load_start_[buffer]) {
    throw std::logic_error("systolic array: stream starting in cycle " + std::to_string(start) +
                           " does not follow the weights of buffer " + std::to_string(buffer) +
                           " loaded from cycle " + std::to_string(last_load_start_[buffer]));
  }
  streams_.push_back(
      Stream{next_id_++, buffer, last_load_[buffer], m_rows, k_rows, n_cols, start, {}, {}});
  return streams_.back();
}

std::uint64_t SystolicArray::add_stream(int buffer, std::uint32_t m_rows, std::uint32_t k_rows,
                                        std::uint32_t n_cols, const std::vector<std::int8_t>& x,
                                        Cycle start) {
  Stream& s = new_stream(buffer, m_rows, k_rows, n_cols, start);
  s.xi.assign(x.begin(), x.begin() + std::ptrdiff_t(std::size_t(m_rows) * k_rows));
  return s.id;
}

std::uint64_t SystolicArray::add_stream(int buffer, std::uint32_t m_rows, std::uint32_t k_rows,
                                        std::uint32_t n_cols, const std::vector<std::uint16_t>& x,
                                        Cycle start) {
  Stream& s = new_stream(buffer, m_rows, k_rows, n_cols, start);
  s.xf.resize(std::size_t(m_rows) * k_rows);
  std::transform(x.begin(), x.begin() + std::ptrdiff_t(s.xf.size()), s.xf.begin(),
                 bf16_to_fp32);
  return s.id;
}

std::optional<Cycle> SystolicArray::next_cycle() const {
  std::optional<Cycle> next;
  const auto consider = [&next](Cycle c) {
    if (!next || c < *next) next = c;
  };
  const Cycle t0 = last_step_ ? *last_step_ + 1 : 0;
  for (const Stream& s : streams_) {
    if (!s.done) consider(std::max(s.start, t0));
  }
  for (const Load& l : loads_) {
    if (l.start + load_span_ > t0) consider(std::max(l.start, t0));  // PEs still to write
  }
  return next;
}

void SystolicArray::flush() {
  std::fill(xi_.begin(), xi_.end(), 0);
  std::fill(pi_.begin(), pi_.end(), 0);
  std::fill(xf_.begin(), xf_.end(), 0.0f);
  std::fill(pf_.begin(), pf_.end(), 0.0f);
  std::fill(xbuf_.begin(), xbuf_.end(), 0);
  std::fill(xid_.begin(), xid_.end(), 0);
}

void SystolicArray::write_weights(Cycle t) {
  while (!loads_.empty() && loads_.front().start + load_span_ <= t) loads_.pop_front();
  const std::size_t r = rows_, c = cols_;
  for (const Load& l : loads_) {
    if (l.start > t) break;
    const std::size_t d = std::size_t(t - l.start);
    // The PEs this load writes in cycle t: the anti-diagonal j + n = d (diagonal feed), or the
    // whole of row d (row feed).
    std::size_t j0 = d, j1 = d + 1;  // rows
    if (feed_ == WeightFeed::kDiagonal) {
      j0 = d >= c ? d - (c - 1) : 0;
      j1 = std::min(r, d + 1);
    }
    for (std::size_t j = j0; j < j1 && j < r; ++j) {
      std::size_t n0 = 0, n1 = c;
      if (feed_ == WeightFeed::kDiagonal) {
        n0 = d - j;
        n1 = n0 + 1;
      }
      for (std::size_t n = n0; n < n1; ++n) {
        check_pe_unused(l, j, n, t);
        const bool w = j < l.k_rows && n < l.n_cols;
        const std::size_t at = j * c + n, from = j * l.n_cols + n;
        if (dtype_ == DataType::kInt8) {
          wi_[l.buffer][at] = w ? l.wi[from] : 0;
        } else {
          wf_[l.buffer][at] = w ? l.wf[from] : 0.0f;
        }
      }
    }
  }
}

// PE (j, n), written in cycle t, must have no further use by a stream of an earlier load of
// that buffer. Stream s uses it for the last time in s + M - 1 + j + n (its last input; the
// weight written in cycle t is the one that cycle's multiply uses), for every row j (rows
// >= K_t count as used: its psums pass through them) and every column n < N_t (the columns
// that carry its results).
void SystolicArray::check_pe_unused(const Load& l, std::size_t j, std::size_t n,
                                    Cycle t) const {
  for (const Stream& s : streams_) {
    if (s.buffer != l.buffer || s.load >= l.id || n >= s.n_cols) continue;
    if (s.start + s.m_rows - 1 + j + n >= t) {
      throw std::logic_error("systolic array: weight (" + std::to_string(j) + ", " +
                             std::to_string(n) + ") of buffer " + std::to_string(l.buffer) +
                             " overwritten in cycle " + std::to_string(t) +
                             " before its last use by stream " + std::to_string(s.id));
    }
  }
}

void SystolicArray::emit(Cycle t) {
  const std::size_t bottom = std::size_t(rows_ - 1) * cols_;
  for (std::uint32_t n = 0; n < cols_; ++n) {
    const std::uint64_t id = xid_[bottom + n];
    if (id < front_id_) continue;  // bubble, or a stream already retired
    Stream& s = streams_[id - front_id_];
    if (n >= s.n_cols) continue;
    const auto m = std::uint32_t(t - s.start - rows_ - n);
    Output out{id, m, n, 0, 0.0f};
    if (dtype_ == DataType::kInt8) {
      out.i32 = pi_[bottom + n];
    } else {
      out.f32 = pf_[bottom + n];
    }
    outputs_.push_back(out);
    if (++s.emitted == std::uint64_t(s.m_rows) * s.n_cols) {
      s.done = true;
      finished_.push_back(Finished{id, t});
    }
  }
  while (!streams_.empty() && streams_.front().done) {
    streams_.pop_front();
    ++front_id_;
  }
}

// PE (0, 0) after this cycle's multiply: a stream's last input (m = M - 1) has used it for the
// last time. Every PE (j, n) is used for the last time j + n cycles later, which is when a
// diagonal load starting in the next cycle writes it, one cycle later still.
void SystolicArray::find_released(Cycle t) {
  const std::uint64_t id = xid_[0];
  if (id < front_id_) return;
  const Stream& s = streams_[id - front_id_];
  if (t - s.start == s.m_rows - 1) released_.push_back({id, t + 1});
}

template <typename T>
void SystolicArray::compute(Cycle t, std::vector<T>& xv, const std::vector<T>& w0v,
                            const std::vector<T>& w1v, std::vector<T>& pv,
                            const std::vector<T> Stream::*xs) {
  const std::size_t r = rows_, c = cols_;
  T* x = xv.data();
  std::int32_t* buf = xbuf_.data();
  std::uint64_t* id = xid_.data();
  // Inputs move one PE to the right; the left column takes this cycle's skewed feed.
  for (std::size_t k = 0; k < r; ++k) {
    const std::size_t row = k * c;
    std::memmove(x + row + 1, x + row, (c - 1) * sizeof(T));
    std::memmove(buf + row + 1, buf + row, (c - 1) * sizeof(std::int32_t));
    std::memmove(id + row + 1, id + row, (c - 1) * sizeof(std::uint64_t));
    x[row] = T(0);
    buf[row] = 0;
    id[row] = 0;
    for (const Stream& s : streams_) {
      if (t < s.start + k || t >= s.start + k + s.m_rows) continue;
      const std::size_t m = std::size_t(t - s.start - k);
      if (k < s.k_rows) x[row] = (s.*xs)[m * s.k_rows + k];
      buf[row] = s.buffer;
      id[row] = s.id;
      break;
    }
  }
  // Psums move one PE down: bottom-up so each row reads the row above before it is replaced.
  const T* __restrict w0 = w0v.data();
  const T* __restrict w1 = w1v.data();
  T* __restrict p = pv.data();
  const T* __restrict xr = x;
  const std::int32_t* __restrict br = buf;
  for (std::size_t k = r; k-- > 1;) {
    const std::size_t row = k * c, up = row - c;
    for (std::size_t n = 0; n < c; ++n) {
      const T w = br[row + n] ? w1[row + n] : w0[row + n];
      p[row + n] = p[up + n] + xr[row + n] * w;
    }
  }
  for (std::size_t n = 0; n < c; ++n) {
    const T w = br[n] ? w1[n] : w0[n];
    p[n] = T(0) + xr[n] * w;
  }
}

void SystolicArray::step(Cycle t) {
  outputs_.clear();
  finished_.clear();
  released_.clear();
  if (last_step_ && t <= *last_step_) throw std::logic_error("systolic array stepped backwards");
  if (last_step_ && t != *last_step_ + 1) flush();
  last_step_ = t;
  write_weights(t);
  emit(t);
  if (dtype_ == DataType::kInt8) {
    compute(t, xi_, wi_[0], wi_[1], pi_, &Stream::xi);
  } else {
    compute(t, xf_, wf_[0], wf_[1], pf_, &Stream::xf);
  }
  find_released(t);
}

}  // namespace tpu
