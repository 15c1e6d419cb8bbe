#include "sim/vector_unit.h"

#include <algorithm>

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

VectorUnit::Span VectorUnit::burst(bool write, std::uint64_t first_row, std::uint32_t count,
                                   Cycle earliest) {
  UbRequest req;
  req.client = UbClient::kVector;
  req.write = write;
  req.contiguous = false;
  req.first_row = first_row;
  req.count = count;
  req.earliest = earliest;
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
      const Instruction& inst = *is.inst;
      StartTracker& tracker = d.tracker;
      const Cycle v = seq_.clock().now();
      seq_.started(Unit::kVector, is, tracker, v);
      Cycle done = v;
      if (inst.op == Opcode::kActivate) {
        if (functional_) exec_activate(state_, inst);
        const std::uint64_t m = inst.rows, c = ceil_div(inst.cols, lanes);
        done = burst(true, inst.ub_row, inst.rows,
                     v + config_.vector.activate_latency + m * (c - 1))
                   .end;
        seq_.add_traffic(is.layer, 0, 0, 0, m);
      } else if (inst.op == Opcode::kAdd) {
        if (functional_) exec_add(state_, inst);
        // Reads of a, then of b (requested once a's are granted), then the writes, which
        // follow every read.
        const std::uint64_t m = inst.rows, c = ceil_div(inst.cols, lanes);
        const Span a = burst(false, inst.ub_row, inst.rows, v);
        const Span b = burst(false, inst.src_row, inst.rows, v);
        const Cycle read = std::max(a.end, b.end);
        done = burst(true, inst.dst_row, inst.rows,
                     read + config_.vector.activate_latency + m * (c - 1))
                   .end;
        seq_.add_traffic(is.layer, 0, 0, 2 * m, m);
      } else {
        if (functional_) exec_pool(state_, inst);
        const std::uint64_t window = std::uint64_t(inst.kernel_h) * inst.kernel_w;
        const std::uint64_t c = ceil_div(inst.cols, lanes);
        const std::uint64_t in = std::uint64_t(inst.in_h) * inst.in_w;
        const std::uint64_t out = std::uint64_t(pool_out_h(inst)) * pool_out_w(inst);
        const Span r = burst(false, inst.ub_row, std::uint32_t(in), v);
        const Cycle compared = std::max(r.end, r.start + std::max(in, out * window * c));
        done = burst(true, inst.dst_row, std::uint32_t(out), compared + config_.vector.pool_latency)
                   .end;
        seq_.add_traffic(is.layer, 0, 0, in, out);
      }
      seq_.complete(Unit::kVector, is, v, done, done - v);
      seq_.wait_until(done);
    }
  } catch (...) {
    seq_.fail(std::current_exception());
  }
}

}  // namespace tpu
