#include "sim/dma_engine.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <stdexcept>
#include <string>

#include "sim/tpu_core.h"

namespace tpu {

DmaEngine::DmaEngine(sc_core::sc_module_name name, const Config& config, const Clock& clock,
                     UnifiedBuffer& ub, MachineState* state)
    : sc_module(name),
      hbm_socket("hbm_socket"),
      config_(config),
      clock_(clock),
      ub_(ub),
      state_(state),
      max_outstanding_(std::max<std::uint32_t>(config.hbm.max_outstanding, 1)),
      pool_(std::make_unique<Payload[]>(max_outstanding_)),
      staging_(std::size_t(max_outstanding_) * config.hbm.burst_bytes),
      burst_of_(max_outstanding_, 0) {
  if (!state_) throw SimError("dma engine needs the machine state (sizes at least)");
  hbm_socket.register_nb_transport_bw(this, &DmaEngine::nb_transport_bw);
  for (std::size_t i = max_outstanding_; i > 0; --i) free_.push_back(i - 1);
}

std::vector<DmaEngine::Burst> DmaEngine::split(const DmaFields& d) const {
  const std::uint64_t eb = state_->elem_bytes;
  const std::uint64_t burst = config_.hbm.burst_bytes;
  const std::uint64_t len = std::uint64_t(d.elems) * eb;
  std::vector<Burst> bursts;
  for (std::uint32_t g = 0; g < d.groups; ++g) {
    const std::uint64_t group_row = d.ub_row + std::uint64_t(g) * d.ub_stride;
    for (std::uint32_t seg = 0; seg < d.segs; ++seg) {
      const std::uint64_t base =
          d.hbm_addr + std::uint64_t(g) * d.group_stride + std::uint64_t(seg) * d.seg_stride;
      const std::uint64_t first_elem = std::uint64_t(seg) * d.elems;
      for (std::uint64_t off = 0; off < len;) {
        const std::uint64_t addr = base + off;
        const std::uint64_t n = std::min(len - off, (addr / burst + 1) * burst - addr);
        const std::uint64_t first_k = (first_elem + off / eb) / d.pack;
        const std::uint64_t last_k = (first_elem + (off + n - 1) / eb) / d.pack;
        bursts.push_back(Burst{addr, std::uint32_t(n), group_row + first_k, group_row + last_k,
                               g, last_k, first_elem * eb + off});
        off += n;
      }
    }
  }
  return bursts;
}

DmaEngine::Result DmaEngine::transfer(const Instruction& inst, Cycle start) {
  const bool load = inst.op == Opcode::kDmaLoad;
  if (!load && inst.op != Opcode::kDmaStore) {
    throw SimError(std::string("dma engine cannot execute ") + mnemonic(inst.op));
  }
  const DmaFields& d = inst.dma;
  try {
    check_bounds(*state_, inst);
  } catch (const std::out_of_range& e) {
    throw SimError(e.what());
  }
  const bool has_data = !state_->ub.empty();
  sc_core::wait(clock_.until(start));

  const std::vector<Burst> bursts = split(d);
  Result res;
  for (const Burst& b : bursts) (load ? res.hbm_read_bytes : res.hbm_write_bytes) += b.bytes;
  res.done = start + 1;

  if (load) {
    // Requests stay alive until granted; granted ones leave from the front.
    std::deque<UbRequest> writes;
    auto retire_granted = [&] {
      while (!writes.empty() && writes.front().granted) {
        res.done = std::max(res.done, writes.front().end);
        writes.pop_front();
      }
    };
    run_requests(bursts, std::vector<Cycle>(bursts.size(), start), false, nullptr, 0, start,
                 [&](std::size_t i, Cycle r, const std::uint8_t* data) {
                   retire_granted();
                   const Burst& b = bursts[i];
                   UbRequest& w = writes.emplace_back();
                   w.client = UbClient::kDma;
                   w.write = true;
                   w.contiguous = false;
                   w.first_row = b.first_row;
                   w.count = std::uint32_t(b.last_row - b.first_row + 1);
                   w.earliest = r;
                   if (has_data) {
                     // The payload slot may carry the next request before the grant.
                     w.on_grant = [this, &d, b, bytes = std::vector<std::uint8_t>(
                                                      data, data + b.bytes)] {
                       dma_write_ub(*state_, d, b.group, b.offset, bytes.data(), bytes.size());
                     };
                   }
                   ub_.request(w);
                   res.ub_accesses += w.count;
                 });
    if (!writes.empty() && !writes.back().granted) sc_core::wait(writes.back().done);
    retire_granted();
  } else {
    const std::uint64_t rows_per_group = ceil_div(std::uint64_t(d.segs) * d.elems, d.pack);
    const bool one_burst = d.groups == 1 || rows_per_group == 1 || d.ub_stride == rows_per_group;
    // The packed stream of every group (see dma_read_ub), read from the UB at the grants.
    const std::uint64_t group_bytes = std::uint64_t(d.segs) * d.elems * state_->elem_bytes;
    std::vector<std::uint8_t> stream(has_data ? d.groups * group_bytes : 0);
    std::deque<UbRequest> reads;
    for (std::uint32_t g = 0; g < (one_burst ? 1u : d.groups); ++g) {
      UbRequest& r = reads.emplace_back();
      r.client = UbClient::kDma;
      r.write = false;
      r.contiguous = false;
      r.record_cycles = true;  // each write burst waits for the rows it carries
      r.first_row = d.ub_row + std::uint64_t(g) * d.ub_stride;
      r.stride = one_burst && rows_per_group == 1 ? d.ub_stride : 1;
      r.count = std::uint32_t(one_burst ? d.groups * rows_per_group : rows_per_group);
      r.earliest = start;
      if (has_data) {
        r.on_grant = [this, &d, &stream, group_bytes, g, one_burst] {
          for (std::uint32_t k = g; k < (one_burst ? d.groups : g + 1u); ++k) {
            dma_read_ub(*state_, d, k, 0, stream.data() + k * group_bytes, group_bytes);
          }
        };
      }
      ub_.request(r);
      res.ub_accesses += r.count;
    }
    sc_core::wait(reads.back().done);
    std::vector<Cycle> ready(bursts.size());
    for (std::size_t i = 0; i < bursts.size(); ++i) {
      const Burst& b = bursts[i];
      const Cycle read =
          one_burst ? reads[0].access_cycle(std::uint32_t(b.group * rows_per_group + b.last_in_group))
                    : reads[b.group].access_cycle(std::uint32_t(b.last_in_group));
      ready[i] = read + 1;
    }
    Cycle last_response = start;
    run_requests(bursts, ready, true, stream.data(), group_bytes, start,
                 [&](std::size_t, Cycle r, const std::uint8_t*) {
                   last_response = std::max(last_response, r);
                 });
    if (!bursts.empty()) res.done = last_response + 1;
  }
  sc_core::wait(clock_.until(res.done));
  return res;
}

template <typename OnResponse>
void DmaEngine::run_requests(const std::vector<Burst>& bursts, const std::vector<Cycle>& ready,
                             bool write, const std::uint8_t* stream, std::uint64_t group_bytes,
                             Cycle start, OnResponse on_response) {
  const bool has_data = !state_->ub.empty();
  const std::size_t n = bursts.size();
  std::size_t next = 0, in_flight = 0, handled = 0;
  Cycle earliest = start;  // one request per cycle
  Cycle cycle = wait_for_boundary();
  std::vector<Response> now_due;
  for (;;) {
    // Responses seen at this boundary, in burst order.
    const sc_core::sc_time now = sc_core::sc_time_stamp();
    now_due.clear();
    for (auto it = responses_.begin(); it != responses_.end();) {
      if (it->at <= now) {
        now_due.push_back(*it);
        it = responses_.erase(it);
      } else {
        ++it;
      }
    }
    std::sort(now_due.begin(), now_due.end(), [&](const Response& a, const Response& b) {
      return burst_of_[a.trans - pool_.get()] < burst_of_[b.trans - pool_.get()];
    });
    for (const Response& r : now_due) {
      const std::size_t slot = std::size_t(r.trans - pool_.get());
      const std::size_t i = burst_of_[slot];
      if (!r.trans->is_response_ok()) {
        throw SimError(std::string(write ? "dma.store" : "dma.load") + ": hbm burst of " +
                       std::to_string(bursts[i].bytes) + " bytes at address " +
                       std::to_string(bursts[i].addr) + " failed: " +
                       r.trans->get_response_string());
      }
      free_.push_back(slot);
      --in_flight;
      ++handled;
      on_response(i, cycle, r.trans->get_data_ptr());
    }
    if (handled == n) return;

    const bool can_send = next < n && in_flight < max_outstanding_ && !awaiting_end_req_;
    if (can_send && cycle >= std::max(earliest, ready[next])) {
      const Burst& b = bursts[next];
      const std::size_t slot = free_.back();
      free_.pop_back();
      Payload& p = pool_[slot];
      unsigned char* data =
          has_data ? staging_.data() + slot * std::size_t(config_.hbm.burst_bytes) : nullptr;
      if (data && write) std::memcpy(data, stream + b.group * group_bytes + b.offset, b.bytes);
      p.set_command(write ? tlm::TLM_WRITE_COMMAND : tlm::TLM_READ_COMMAND);
      p.set_address(b.addr);
      p.set_data_ptr(data);
      p.set_data_length(b.bytes);
      p.set_streaming_width(b.bytes);
      p.set_byte_enable_ptr(nullptr);
      p.set_dmi_allowed(false);
      p.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
      burst_of_[slot] = next;
      ++next;
      ++in_flight;
      earliest = cycle + 1;
      tlm::tlm_phase phase = tlm::BEGIN_REQ;
      sc_core::sc_time delay = sc_core::SC_ZERO_TIME;
      awaiting_end_req_ = &p;  // before the call: END_REQ may come back inside it
      const tlm::tlm_sync_enum status = hbm_socket->nb_transport_fw(p, phase, delay);
      if (status == tlm::TLM_COMPLETED) {
        awaiting_end_req_ = nullptr;
        responses_.push_back({&p, now + delay});
      } else if (status == tlm::TLM_UPDATED) {
        awaiting_end_req_ = nullptr;
        if (phase == tlm::BEGIN_RESP) {
          responses_.push_back({&p, now + delay});
          phase = tlm::END_RESP;
          hbm_socket->nb_transport_fw(p, phase, delay);
        }
      }
      continue;  // a request answered on the forward call is handled in this cycle
    }

    // Sleep until the next cycle something can happen: a send becomes possible, a response
    // or END_REQ arrives (wake_), or an already announced response falls due.
    Cycle wake_at = 0;
    bool timed = false;
    if (can_send) {
      wake_at = std::max(earliest, ready[next]);
      timed = true;
    }
    for (const Response& r : responses_) {
      const Cycle c = clock_.ceil_cycle(r.at);
      if (!timed || c < wake_at) wake_at = c;
      timed = true;
    }
    if (timed) {
      sc_core::wait(clock_.until(wake_at), wake_);
    } else {
      sc_core::wait(wake_);
    }
    cycle = wait_for_boundary();
  }
}

Cycle DmaEngine::wait_for_boundary() {
  const Cycle c = clock_.ceil_cycle(sc_core::sc_time_stamp());
  const sc_core::sc_time until = clock_.until(c);
  if (until != sc_core::SC_ZERO_TIME) sc_core::wait(until);
  return c;
}

tlm::tlm_sync_enum DmaEngine::nb_transport_bw(Payload& trans, tlm::tlm_phase& phase,
                                              sc_core::sc_time& delay) {
  if (phase == tlm::END_REQ || phase == tlm::BEGIN_RESP) {
    if (&trans == awaiting_end_req_) awaiting_end_req_ = nullptr;
    if (phase == tlm::BEGIN_RESP) responses_.push_back({&trans, sc_core::sc_time_stamp() + delay});
    wake_.notify(delay);
    return phase == tlm::END_REQ ? tlm::TLM_ACCEPTED : tlm::TLM_COMPLETED;
  }
  throw SimError("dma engine: unexpected phase " + std::string(phase.get_name()) +
                 " on the backward path");
}

}  // namespace tpu
