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
  if (inst.op == Opcode::kActivate) {
    held.first_row = inst.ub_row;
    held.rows = inst.rows;
  } else if (inst.op == Opcode::kAdd || inst.op == Opcode::kVop) {
    held.first_row = inst.dst_row;
    held.rows = inst.rows;
  } else {
    held.first_row = inst.dst_row;
    held.rows = std::uint64_t(pool_out_h(inst)) * pool_out_w(inst);
  }
  held.row_bytes = std::size_t(inst.cols) * state_.elem_bytes;
  // The data path writes the machine at once: take its output out and put the old rows back.
  const std::vector<std::uint8_t> old = read_rows(held);
  if (inst.op == Opcode::kActivate) {
    exec_activate(state_, inst);
  } else if (inst.op == Opcode::kAdd) {
    exec_add(state_, inst);
  } else if (inst.op == Opcode::kVop) {
    exec_vop(state_, inst);
  } else {
    exec_pool(state_, inst);
  }
  held.bytes = read_rows(held);
  write_rows(held, old);
  return held;
}

std::vector<std::uint8_t> VectorUnit::read_rows(const Held& rows) const {
  std::vector<std::uint8_t> bytes(rows.rows * rows.row_bytes);
  for (std::uint64_t i = 0; i < rows.rows; ++i) {
    std::memcpy(bytes.data() + i * rows.row_bytes, state_.ub_row(rows.first_row + i),
                rows.row_bytes);
  }
  return bytes;
}

void VectorUnit::write_rows(const Held& rows, const std::vector<std::uint8_t>& bytes) {
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

void VectorUnit::count(const Issued& is, std::uint64_t elems, std::uint64_t acc_read_bytes) {
  seq_.add_vector_work(is.layer, acc_read_bytes, elems);
}

void VectorUnit::run() {
  try {
    const std::uint64_t lanes = config_.vector.lanes;
    for (;;) {
      Sequencer::Dispatch d = seq_.next(Unit::kVector, state_);
      const Issued& is = d.is;
      const Instruction& inst = *is.inst;
      StartTracker& tracker = d.tracker;
      const Cycle v = seq_.clock().now();
      seq_.started(Unit::kVector, is, tracker, v);
      Cycle done = v;
      Held held;
      std::function<void()> read, write;  // the data moves at the UB grants
      if (functional_) {
        read = [&] { held = compute_held(inst); };
        write = [&] { write_rows(held, held.bytes); };
      }
      if (inst.op == Opcode::kActivate) {
        if (read) read();  // ACTIVATE reads the accumulators at its start
        const VectorWork w =
            vector_work(activation_ops(inst.func), inst.rows, inst.cols, config_.vector);
        done = burst(true, inst.ub_row, inst.rows, v + w.latency + w.cycles() - w.rows, write)
                   .end;
        seq_.add_traffic(is.layer, 0, 0, 0, w.rows);
        count(is, std::uint64_t(w.rows) * inst.cols, std::uint64_t(w.rows) * inst.cols * 4);  // sums in
      } else if (inst.op == Opcode::kVop) {
        // Like ADD: reads of a, then of b (mul) or the parameters (norms), then the writes,
        // which follow every read.
        const VectorWork w = vector_work(vop_ops(inst), inst.rows, inst.cols, config_.vector);
        const std::uint32_t b_rows = vop_b_rows(inst.kind, inst.rows);
        Span r = burst(false, inst.ub_row, inst.rows, v, b_rows ? nullptr : read);
        if (b_rows) r.end = std::max(r.end, burst(false, inst.src_row, b_rows, v, read).end);
        done = burst(true, inst.dst_row, inst.rows, r.end + w.latency + w.cycles() - w.rows,
                     write)
                   .end;
        seq_.add_traffic(is.layer, 0, 0, w.rows + b_rows, w.rows);
        count(is, std::uint64_t(w.rows) * inst.cols);
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
        count(is, std::uint64_t(w.rows) * inst.cols);
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
        count(is, out * window * inst.cols);  // every window element through the comparators
      }
      seq_.complete(Unit::kVector, is, v, done, done - v);
      seq_.wait_until(done);
    }
  } catch (...) {
    seq_.fail(std::current_exception());
  }
}

}  // namespace tpu
