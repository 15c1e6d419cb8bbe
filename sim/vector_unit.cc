#include "sim/vector_unit.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "sim/isa/vector_cost.h"

namespace tpu {

VectorUnit::VectorUnit(sc_core::sc_module_name name, const Config& config, Sequencer& sequencer,
                       UnifiedBuffer& ub, MachineState& state, bool functional)
    : sc_module(name),
      config_(config),
      seq_(sequencer),
      ub_(ub),
      state_(state),
      functional_(functional) {
  SC_THREAD(run);
}

VectorUnit::Held VectorUnit::compute_held(const Instruction& inst) {
  Held held;
  const std::size_t eb = state_.elem_bytes;
  if (inst.op == Opcode::kActivate && (inst.flags & kFlagRaw)) {
    const std::uint64_t row_bytes = std::uint64_t(config_.ub_row_elems()) * eb;
    held.push_back(
        {inst.ub_row, inst.rows * raw_rows_per_acc_row(inst.cols, row_bytes), row_bytes, {}});
  } else if (inst.op == Opcode::kActivate) {
    held.push_back({inst.ub_row, inst.rows, inst.cols * eb, {}});
  } else if (inst.op == Opcode::kAccLoad) {
    // Writes the accumulators only, at its read.
  } else if (inst.op == Opcode::kAdd) {
    held.push_back({inst.dst_row, inst.rows, inst.cols * eb, {}});
  } else if (inst.op == Opcode::kVop) {
    const std::uint32_t width = vop_chunk_cols(inst);
    for (std::uint32_t k = 0; k < vop_chunks(inst); ++k) {
      const std::uint32_t len = std::min(width, inst.cols - k * width);
      held.push_back({inst.dst_row + std::uint64_t(k) * inst.chunk_stride_dst, inst.rows,
                      len * eb, {}});
    }
  } else {
    held.push_back(
        {inst.dst_row, std::uint64_t(pool_out_h(inst)) * pool_out_w(inst), inst.cols * eb, {}});
  }
  // The data path writes the machine at once: take its output out and put the old rows back.
  std::vector<std::vector<std::uint8_t>> old;
  for (const Segment& seg : held) old.push_back(read_rows(seg));
  if (inst.op == Opcode::kActivate) {
    exec_activate(state_, inst);
  } else if (inst.op == Opcode::kAccLoad) {
    exec_acc_load(state_, inst);
  } else if (inst.op == Opcode::kAdd) {
    exec_add(state_, inst);
  } else if (inst.op == Opcode::kVop) {
    exec_vop(state_, inst);
  } else {
    exec_pool(state_, inst);
  }
  for (Segment& seg : held) seg.bytes = read_rows(seg);
  for (std::size_t k = 0; k < held.size(); ++k) write_rows(held[k], old[k]);
  return held;
}

std::vector<std::uint8_t> VectorUnit::read_rows(const Segment& rows) const {
  std::vector<std::uint8_t> bytes(rows.rows * rows.row_bytes);
  for (std::uint64_t i = 0; i < rows.rows; ++i) {
    std::memcpy(bytes.data() + i * rows.row_bytes, state_.ub_row(rows.first_row + i),
                rows.row_bytes);
  }
  return bytes;
}

void VectorUnit::write_rows(const Segment& rows, const std::vector<std::uint8_t>& bytes) {
  for (std::uint64_t i = 0; i < rows.rows; ++i) {
    std::memcpy(state_.ub_row(rows.first_row + i), bytes.data() + i * rows.row_bytes,
                rows.row_bytes);
  }
}

VectorUnit::Span VectorUnit::burst(bool write, std::uint64_t first_row, std::uint32_t count,
                                   Cycle earliest, std::function<void()> on_grant) {
  UbRequest req;
  req.client = UbClient::kVector;
  req.write = write;
  req.contiguous = false;
  req.first_row = first_row;
  req.count = count;
  req.earliest = earliest;
  req.on_grant = std::move(on_grant);
  ub_.request(req);
  seq_.set_waiting(Unit::kVector, "ub_port");
  wait(req.done);
  seq_.set_waiting(Unit::kVector, "");
  return {req.start, req.end};
}

void VectorUnit::run() {
  try {
    const std::uint64_t lanes = config_.vector.lanes;
    for (;;) {
      Sequencer::Dispatch d = seq_.next(Unit::kVector, state_);
      const Issued& is = d.is;
      const Instruction& inst = is.inst;
      StartTracker& tracker = d.tracker;
      const Cycle v = seq_.clock().now();
      seq_.started(Unit::kVector, is, tracker, v);
      Cycle done = v;
      Held held;
      std::function<void()> read, write;  // the data moves at the UB grants
      // Write burst k's data (a chunked VOP writes one burst per chunk, the rest one).
      auto write_chunk = [&](std::size_t k) -> std::function<void()> {
        if (!functional_) return nullptr;
        return [this, &held, k] { write_rows(held[k], held[k].bytes); };
      };
      if (functional_) {
        read = [&] { held = compute_held(inst); };
        write = write_chunk(0);
      }
      if (inst.op == Opcode::kActivate) {
        // ACTIVATE reads the accumulators at its start, and a bias first from the UB: one
        // burst of the rows its words span, after which the rows stream as without.
        Cycle start = v;
        std::uint64_t bias_rows = 0;
        if (inst.flags & kFlagBias) {
          const std::uint64_t row_bytes = std::uint64_t(config_.ub_row_elems()) * state_.elem_bytes;
          const auto [first, last] = activate_bias_rows(inst, row_bytes);
          bias_rows = last - first;
          start = burst(false, first, std::uint32_t(bias_rows), v, read).end;
        } else if (read) {
          read();
        }
        // Raw words: no activation, and each accumulator row takes raw_rows_per_acc_row UB
        // rows through the write port.
        const bool raw = inst.flags & kFlagRaw;
        const std::uint64_t written =
            raw ? inst.rows * raw_rows_per_acc_row(inst.cols, std::uint64_t(config_.ub_row_elems()) *
                                                                  state_.elem_bytes)
                : inst.rows;
        const VectorWork w = vector_work(activation_ops(raw ? Activation::kNone : inst.func),
                                         inst.rows, inst.cols, config_.vector);
        done = burst(true, inst.ub_row, std::uint32_t(written),
                     start + w.latency + w.cycles() - w.rows, write)
                   .end;
        seq_.add_traffic(is.layer, 0, 0, bias_rows, written);
        // For the energy model: the accumulator bytes read (int32 sums) and the elements.
        seq_.add_vector_work(is.layer, std::uint64_t(w.rows) * inst.cols * 4,
                             std::uint64_t(w.rows) * inst.cols);
      } else if (inst.op == Opcode::kAccLoad) {
        // Reads the raw rows; the lanes set or add each row's element groups as its rows
        // arrive (one ALU operation per group to add), and the last result reaches the
        // accumulators the pipeline latency after the later of the reads and the lanes' work.
        const std::uint64_t read_rows =
            inst.rows * raw_rows_per_acc_row(inst.cols, std::uint64_t(config_.ub_row_elems()) *
                                                            state_.elem_bytes);
        OpCounts ops;
        if (inst.flags & kFlagAccumulate) ops.per_group[std::size_t(VectorOp::kAlu)] = 1;
        const VectorWork w = vector_work(ops, inst.rows, inst.cols, config_.vector);
        const Span r = burst(false, inst.ub_row, std::uint32_t(read_rows), v, read);
        done = std::max(r.end, r.start + w.cycles()) + w.latency;
        seq_.add_traffic(is.layer, 0, 0, read_rows, 0);
        seq_.add_vector_work(is.layer, std::uint64_t(w.rows) * inst.cols * 4,
                             std::uint64_t(w.rows) * inst.cols);
      } else if (inst.op == Opcode::kVop) {
        // Like ADD: reads of a, then of b (mul) or the parameters (norms), then the writes,
        // which follow every read; a chunked row op reads and writes one burst per chunk.
        const std::uint32_t chunks = vop_chunks(inst);
        const VectorWork w =
            vector_work(vop_ops(inst), inst.rows, inst.cols, config_.vector, inst.chunk_cols);
        const std::uint32_t b_rows = vop_b_rows(inst);
        Cycle r_end = v;
        for (std::uint32_t k = 0; k < chunks; ++k) {
          const bool last = k + 1 == chunks && !b_rows;
          r_end = std::max(r_end, burst(false, inst.ub_row + std::uint64_t(k) * inst.chunk_stride_a,
                                        inst.rows, v, last ? read : nullptr)
                                      .end);
        }
        if (b_rows) r_end = std::max(r_end, burst(false, inst.src_row, b_rows, v, read).end);
        const std::uint64_t row_accesses = std::uint64_t(inst.rows) * chunks;
        const Cycle first_write = r_end + w.latency + w.cycles() - row_accesses;
        for (std::uint32_t k = 0; k < chunks; ++k) {
          done = std::max(
              done, burst(true, inst.dst_row + std::uint64_t(k) * inst.chunk_stride_dst,
                          inst.rows, first_write, write_chunk(k))
                        .end);
        }
        seq_.add_traffic(is.layer, 0, 0, row_accesses + b_rows, row_accesses);
        seq_.add_vector_work(is.layer, 0, std::uint64_t(w.rows) * inst.cols);
      } else if (inst.op == Opcode::kAdd) {
        // Reads of a, then of b (requested once a's are granted; both operands are taken at
        // that second grant), then the writes, which follow every read.
        const VectorWork w =
            vector_work(activation_ops(inst.func), inst.rows, inst.cols, config_.vector);
        const Span a = burst(false, inst.ub_row, inst.rows, v, nullptr);
        const Span b = burst(false, inst.src_row, inst.rows, v, read);
        const Cycle read_end = std::max(a.end, b.end);
        done = burst(true, inst.dst_row, inst.rows, read_end + w.latency + w.cycles() - w.rows,
                     write)
                   .end;
        seq_.add_traffic(is.layer, 0, 0, 2 * w.rows, w.rows);
        seq_.add_vector_work(is.layer, 0, std::uint64_t(w.rows) * inst.cols);
      } else {
        const std::uint64_t window = std::uint64_t(inst.kernel_h) * inst.kernel_w;
        const std::uint64_t c = ceil_div(inst.cols, lanes);
        const std::uint64_t in = std::uint64_t(inst.in_h) * inst.in_w;
        const std::uint64_t out = std::uint64_t(pool_out_h(inst)) * pool_out_w(inst);
        const Span r = burst(false, inst.ub_row, std::uint32_t(in), v, read);
        const Cycle compared = std::max(r.end, r.start + std::max(in, out * window * c));
        done = burst(true, inst.dst_row, std::uint32_t(out), compared + config_.vector.pool_latency,
                     write)
                   .end;
        seq_.add_traffic(is.layer, 0, 0, in, out);
        // Every window element goes through the comparators.
        seq_.add_vector_work(is.layer, 0, out * window * inst.cols);
      }
      seq_.complete(Unit::kVector, is, v, done, done - v);
      seq_.wait_until(done);
    }
  } catch (...) {
    seq_.fail(std::current_exception());
  }
}

}  // namespace tpu
