#include "sim/matrix_unit.h"

#include <cstring>
#include <string>

namespace tpu {

MatrixUnit::MatrixUnit(sc_core::sc_module_name name, std::uint8_t instance, const Config& config,
                       Sequencer& sequencer, UnifiedBuffer& ub, MachineState& state,
                       WeightFifo& fifo, bool functional, Fidelity fidelity)
    : sc_module(name),
      instance_(instance),
      loader_(Unit::kWeightLoad, instance),
      matmul_(Unit::kMatmul, instance),
      config_(config),
      seq_(sequencer),
      ub_(ub),
      state_(state),
      fifo_(fifo),
      functional_(functional),
      wavefront_(config.mxu.double_buffer_weights) {
  SC_THREAD(weight_loader);
  SC_THREAD(matmul);
  // Timing-only runs have no data for the array to carry: they are always `fast`.
  if (functional && fidelity == Fidelity::kPe) {
    array_ = std::make_unique<SystolicArray>(
        config.array.rows, config.array.cols, state.dtype,
        wavefront_ ? SystolicArray::WeightFeed::kDiagonal : SystolicArray::WeightFeed::kRows);
    SC_METHOD(step_array);
    sensitive << array_wake_;
    dont_initialize();
  } else if (functional) {
    SC_METHOD(commit_sums);
    sensitive << commit_queue_;
    dont_initialize();
  }
}

Cycle MatrixUnit::wait_buffer_free(const Issued& is) {
  const std::size_t b = std::size_t(is.buffer);
  const std::uint64_t need = is.buffer_users;
  if (need == 0) return 0;
  while (buffer_released_[b] < need) {
    seq_.set_waiting(loader_,
                     "weight_buffer (" + std::to_string(need - buffer_released_[b]) +
                         " earlier matmul(s) on buffer " + std::to_string(b) + " to release it)");
    wait(buffer_released_event_);
  }
  seq_.set_waiting(loader_, "");
  // Releases arrive in time order; the need-th one freed the buffer. Later loads of this
  // buffer need at least as many, so earlier entries can go.
  std::deque<Cycle>& at = released_at_[b];
  const Cycle freed = at[need - 1 - released_base_[b]];
  while (released_base_[b] + 1 < need) {
    at.pop_front();
    ++released_base_[b];
  }
  return freed;
}

void MatrixUnit::release_buffer(int buffer, Cycle at) {
  const std::size_t b = std::size_t(buffer);
  ++buffer_released_[b];
  released_at_[b].push_back(at);
  buffer_released_event_.notify();
}

void MatrixUnit::weight_loader() {
  try {
    for (;;) {
      Sequencer::Dispatch d = seq_.next(loader_, state_);
      const Issued& is = d.is;
      const Instruction& inst = is.inst;
      StartTracker& tracker = d.tracker;
      // A release may be known before its cycle (fast mode records it at the stream's start).
      const Cycle freed = wait_buffer_free(is);
      if (freed > seq_.clock().now()) seq_.wait_until(freed);
      tracker.satisfied("weight_buffer", freed);

      const std::size_t b = std::size_t(is.buffer);
      // A transposed tile stages N_t rows, all read before its first weight row leaves the
      // transpose unit.
      const bool transpose = inst.flags & kFlagTranspose;
      const std::uint32_t staged = transpose ? inst.cols : inst.rows;
      Cycle e = 0;
      if (inst.flags & kFlagFifo) {
        // Read number i takes FIFO entry i once its fill (dma.load weights number i) completed.
        const std::uint64_t i = fifo_reads_++;
        while (!fifo_.filled.has(i)) {
          seq_.set_waiting(loader_, "weights (weight FIFO fill " + std::to_string(i) +
                                                  " to complete)");
          wait(fifo_.changed);
        }
        seq_.set_waiting(loader_, "");
        const Cycle filled = fifo_.filled.take(i);
        if (filled > seq_.clock().now()) seq_.wait_until(filled);
        tracker.satisfied("weights", filled);
        e = seq_.clock().now();
        if (functional_) exec_load_weights(state_, inst, tiles_[b]);
        // Completes (and frees the entry) at e + K_t (transposed: e + N_t + K_t).
        fifo_.freed.push(e + (transpose ? staged : 0) + inst.rows);
        fifo_.changed.notify();
      } else {
        UbRequest req;
        req.client = UbClient::kWeightLoad;
        req.instance = instance_;
        req.first_row = inst.ub_row;
        req.count = staged;
        req.earliest = seq_.clock().now();
        if (functional_) req.on_grant = [&] { exec_load_weights(state_, inst, tiles_[b]); };
        ub_.request(req);
        seq_.set_waiting(loader_, "ub_port");
        wait(req.done);
        seq_.set_waiting(loader_, "");
        e = req.start;
      }
      // The loader reads one UB row per cycle, e .. e + K_t - 1, and is free at e + K_t.
      // The load completes then too, in both feeds: its UB reads are done. Diagonal feed: the
      // tile's last weight still reaches PE (K_t - 1, N_t - 1) only in e + K_t + N_t - 2, but
      // only the tile's own MATMULs can see the PE weights, and they trail the wave: a MATMUL
      // may start its stream from e + 1 (its inputs trail the weights by one cycle in every
      // PE). Row feed (single buffering): row K_t - 1 is written in e + K_t - 1; the MATMUL
      // starts at e + K_t.
      // Transposed: the staged rows are read e .. e + N_t - 1, then the tile's rows leave the
      // transpose unit from w = e + N_t as an untransposed load's would from e.
      const Cycle read_end = e + staged;
      const Cycle start = e;
      if (transpose) e += staged;
      const Cycle free = e + inst.rows;
      const Cycle ready = wavefront_ ? e + 1 : free;
      seq_.started(Unit::kWeightLoad, is, tracker, start);
      seq_.wait_until(start);

      shapes_[b] = Shape{inst.rows, inst.cols};
      // A FIFO load holds no UB port: no MATMUL's UB wait is a wait for it.
      load_ready_.push_back(LoadReady{ready, (inst.flags & kFlagFifo) ? 0 : read_end});
      load_granted_.notify();
      if (array_) {
        array_->load_weights(is.buffer, tiles_[b], e);
        arm_array();
      }
      seq_.add_compute(is.layer, start, start);
      seq_.add_weight_tile(is.layer, std::uint64_t(inst.rows) * inst.cols / inst.ub_stride);
      seq_.add_traffic(is.layer, 0, 0, (inst.flags & kFlagFifo) ? 0 : staged, 0);
      seq_.complete(Unit::kWeightLoad, is, start, free, free - start);
      seq_.wait_until(free);
    }
  } catch (...) {
    seq_.fail(std::current_exception());
  }
}

void MatrixUnit::matmul() {
  try {
    const Cycle r = config_.array.rows;
    for (;;) {
      Sequencer::Dispatch d = seq_.next(matmul_, state_);
      const Issued& is = d.is;
      const Instruction& inst = is.inst;
      StartTracker& tracker = d.tracker;

      const auto waiting_for_tile = [&] {
        seq_.set_waiting(matmul_, "weights (tile " + std::to_string(is.tile) +
                                            (wavefront_ ? " load started)" : " loaded)"));
      };
      while (load_ready_base_ + load_ready_.size() <= is.tile) {
        waiting_for_tile();
        wait(load_granted_);
      }
      // MATMULs use tiles in program order: older loads are of no further interest.
      while (load_ready_base_ < is.tile) {
        load_ready_.pop_front();
        ++load_ready_base_;
      }
      const LoadReady tile = load_ready_.front();
      if (tile.ready > seq_.clock().now()) {
        waiting_for_tile();
        seq_.wait_until(tile.ready);
      }
      tracker.satisfied("weights", tile.ready);

      const std::uint32_t m_rows = inst.rows;
      const std::size_t b = std::size_t(is.buffer);
      const Shape shape = shapes_[b];
      // The inputs are read at the grant: the pe model's x (m_rows x K_t elements), or the
      // fast model's sums, which wait in pending_ until they land.
      std::vector<std::uint8_t> x;
      TileSums sums;
      if (functional_ && !spare_sums_.empty()) {
        sums = std::move(spare_sums_.back());
        spare_sums_.pop_back();
      }
      UbRequest req;
      req.client = UbClient::kMatmul;
      req.instance = instance_;
      req.first_row = inst.ub_row;
      req.stride = inst.ub_stride;
      req.count = m_rows;
      req.earliest = seq_.clock().now();
      if (array_) {
        req.on_grant = [&] {
          const std::size_t row_bytes = std::size_t(shape.k) * state_.elem_bytes;
          x.resize(std::size_t(m_rows) * row_bytes);
          for (std::uint32_t m = 0; m < m_rows; ++m) {
            std::memcpy(x.data() + m * row_bytes,
                        state_.ub_row(inst.ub_row + std::uint64_t(m) * inst.ub_stride),
                        row_bytes);
          }
        };
      } else if (functional_) {
        req.on_grant = [&] { matmul_compute(state_, inst, tiles_[b], sums); };
      }
      ub_.request(req);
      seq_.set_waiting(matmul_, "ub_port");
      wait(req.done);
      seq_.set_waiting(matmul_, "");
      const Cycle s = req.start;
      // A stream that asked for the UB while its own tile's load was still reading it, and
      // was granted no later than that read ended, waited for its weights to be read: charge
      // the stall to "weights", as when the load was the last constraint.
      if (req.earliest < tile.read_end && s > req.earliest && s <= tile.read_end) {
        tracker.satisfied("weights", s);
      }
      seq_.started(Unit::kMatmul, is, tracker, s);
      seq_.wait_until(s);

      const Cycle last = s + m_rows + shape.n + r - 2;
      seq_.add_compute(is.layer, s, last);
      seq_.add_traffic(is.layer, 0, 0, m_rows, 0);
      // Every streamed row passes all K_t x N_t loaded PEs and lands N_t 32-bit sums, which an
      // accumulating MATMUL first reads.
      const std::uint64_t sum_bytes = std::uint64_t(m_rows) * shape.n * 4;
      seq_.add_array_work(is.layer, instance_, std::uint64_t(m_rows) * shape.k * shape.n,
                          (inst.flags & kFlagAccumulate) ? sum_bytes : 0, sum_bytes);
      if (array_) {
        std::uint64_t id;
        if (state_.dtype == DataType::kInt8) {
          id = array_->add_stream(is.buffer, m_rows, shape.k, shape.n,
                                  std::vector<std::int8_t>(x.begin(), x.end()), s);
        } else {
          std::vector<std::uint16_t> x16(x.size() / 2);
          std::memcpy(x16.data(), x.data(), x.size());
          id = array_->add_stream(is.buffer, m_rows, shape.k, shape.n, x16, s);
        }
        pe_streams_.emplace(id, PeStream{is, s});
        arm_array();
      } else {
        if (functional_) {
          pending_.push_back(PendingSums{inst, last, std::move(sums)});
          const Clock& clock = seq_.clock();
          commit_queue_.notify(clock.at(last) + clock.period() * 0.75 - sc_core::sc_time_stamp());
        }
        if (wavefront_) {
          // The last input (m = M - 1) passes PE (0, 0) in s + M - 1, and every PE (j, n)
          // j + n cycles later, exactly as a load's weights travel: the buffer is free from
          // s + M, known now, so no timed event is needed.
          release_buffer(is.buffer, s + m_rows);
        }
        seq_.at(last + 1, [this, is, s, last] { matmul_finished(is, s, last); });
      }
      seq_.wait_until(s + m_rows);
    }
  } catch (...) {
    seq_.fail(std::current_exception());
  }
}

void MatrixUnit::commit_sums() {
  try {
    const Cycle now = seq_.clock().now();
    std::size_t landed = 0;  // every tile up to the last one whose result landed by now
    for (std::size_t i = 0; i < pending_.size(); ++i) {
      if (pending_[i].last <= now) landed = i + 1;
    }
    for (; landed > 0; --landed) {
      matmul_commit(state_, pending_.front().inst, pending_.front().sums);
      spare_sums_.push_back(std::move(pending_.front().sums));
      pending_.pop_front();
    }
  } catch (...) {
    seq_.fail(std::current_exception());
  }
}

void MatrixUnit::matmul_finished(const Issued& is, Cycle start, Cycle last) {
  if (!wavefront_) release_buffer(is.buffer, last + 1);
  seq_.complete(Unit::kMatmul, is, start, last + 1, is.inst.rows);
}

void MatrixUnit::arm_array() {
  if (const auto next = array_->next_cycle()) {
    const Clock& clock = seq_.clock();
    const sc_core::sc_time at = clock.at(*next) + clock.period() * 0.75;
    const sc_core::sc_time now = sc_core::sc_time_stamp();
    array_wake_.notify(at > now ? at - now : sc_core::SC_ZERO_TIME);
  }
}

void MatrixUnit::step_array() {
  try {
    const Cycle t = seq_.clock().now();
    array_->step(t);
    const std::uint64_t cols = state_.array_cols;
    // A step's outputs come from one stream or two (a drain overlapping the next fill).
    std::uint64_t stream_id = ~std::uint64_t(0);
    const Issued* stream = nullptr;
    const bool observed = seq_.probe().on();
    landed_.clear();
    for (const SystolicArray::Output& o : array_->outputs()) {
      if (o.stream != stream_id) {
        stream_id = o.stream;
        stream = &pe_streams_.at(o.stream).is;
      }
      const Instruction& inst = stream->inst;
      const bool accumulate = inst.flags & kFlagAccumulate;
      const std::uint64_t acc_row = inst.acc_row + std::uint64_t(o.m);
      const std::uint64_t at = acc_row * cols + o.n;
      if (observed) landed_.push_back(AccumulatorWrite{stream->pc, acc_row, accumulate, o});
      if (state_.dtype == DataType::kInt8) {
        std::int32_t& a = state_.acc_i32[at];
        // Accumulators wrap modulo 2^32 like 32-bit hardware registers.
        a = accumulate ? std::int32_t(std::uint32_t(a) + std::uint32_t(o.i32)) : o.i32;
      } else {
        float& a = state_.acc_f32[at];
        a = accumulate ? a + o.f32 : o.f32;
      }
    }
    if (observed) seq_.probe().array_step(t, *array_, landed_);
    if (wavefront_) {
      for (const SystolicArray::Released& rel : array_->released()) {
        const int buffer = pe_streams_.at(rel.stream).is.buffer;
        seq_.at(rel.from, [this, buffer, rel] { release_buffer(buffer, rel.from); });
      }
    }
    for (const SystolicArray::Finished& f : array_->finished()) {
      const PeStream stream = pe_streams_.at(f.stream);
      pe_streams_.erase(f.stream);
      seq_.at(f.last + 1, [this, stream, f] { matmul_finished(stream.is, stream.start, f.last); });
    }
    arm_array();
  } catch (...) {
    seq_.fail(std::current_exception());
  }
}

}  // namespace tpu
