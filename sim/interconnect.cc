#include "sim/interconnect.h"

#include <cmath>
#include <iterator>
#include <string>

#include "sim/tpu_core.h"

namespace tpu {

Interconnect::Interconnect(sc_core::sc_module_name name, const Config& config,
                           const Clock& clock, std::size_t cores)
    : sc_module(name),
      hbm_socket("hbm_socket"),
      latency_(clock.at(config.chip.interconnect_latency_cycles)),
      ps_per_byte_(1000.0 / config.chip.interconnect_gbs),
      traffic_(cores) {
  for (std::size_t c = 0; c < cores; ++c) {
    const std::string socket = "core" + std::to_string(c);
    core_sockets.push_back(std::make_unique<CoreSocket>(socket.c_str()));
    core_sockets.back()->register_nb_transport_fw(this, &Interconnect::nb_transport_fw, int(c));
  }
  hbm_socket.register_nb_transport_bw(this, &Interconnect::nb_transport_bw);
  SC_THREAD(forward);
}

tlm::tlm_sync_enum Interconnect::nb_transport_fw(int core, Payload& trans, tlm::tlm_phase& phase,
                                                 sc_core::sc_time& delay) {
  if (phase != tlm::BEGIN_REQ) {
    throw SimError("interconnect: unexpected phase " + std::string(phase.get_name()) +
                   " from core " + std::to_string(core));
  }
  const std::size_t c = std::size_t(core);
  sticky_extension<SourceCore>(trans).core = c;
  const std::uint64_t bytes = trans.get_data_length();
  (trans.is_write() ? traffic_[c].write_bytes : traffic_[c].read_bytes) += bytes;
  const sc_core::sc_time arrival = sc_core::sc_time_stamp() + delay;
  // Arrivals never go back in time: only same-instant ones from higher cores are passed.
  auto at = pending_.end();
  while (at != pending_.begin() && std::prev(at)->arrival == arrival && std::prev(at)->core > c) {
    --at;
  }
  pending_.insert(at, {&trans, arrival, c});
  queued_.notify(sc_core::SC_ZERO_TIME);
  phase = tlm::END_REQ;
  return tlm::TLM_UPDATED;
}

void Interconnect::forward() {
  for (;;) {
    while (pending_.empty()) wait(queued_);
    const sc_core::sc_time now = sc_core::sc_time_stamp();
    const sc_core::sc_time ready = pending_.front().arrival + latency_;
    const sc_core::sc_time send = ready > port_free_ ? ready : port_free_;
    if (send > now) {
      wait(send - now);
      continue;  // a same-instant request of a lower core may have arrived meanwhile
    }
    const Pending next = pending_.front();
    pending_.pop_front();
    port_free_ = now + sc_core::sc_time(std::round(double(next.trans->get_data_length()) *
                                                   ps_per_byte_),
                                        sc_core::SC_PS);
    tlm::tlm_phase phase = tlm::BEGIN_REQ;
    sc_core::sc_time delay = sc_core::SC_ZERO_TIME;
    awaiting_end_req_ = next.trans;  // before the call: END_REQ may come back inside it
    const tlm::tlm_sync_enum status = hbm_socket->nb_transport_fw(*next.trans, phase, delay);
    if (status == tlm::TLM_COMPLETED) {
      awaiting_end_req_ = nullptr;
      respond(*next.trans, delay);
    } else if (status == tlm::TLM_UPDATED) {
      awaiting_end_req_ = nullptr;
      if (phase == tlm::BEGIN_RESP) {
        respond(*next.trans, delay);
        phase = tlm::END_RESP;
        hbm_socket->nb_transport_fw(*next.trans, phase, delay);
      }
    }
    while (awaiting_end_req_) wait(end_req_);
  }
}

tlm::tlm_sync_enum Interconnect::nb_transport_bw(Payload& trans, tlm::tlm_phase& phase,
                                                 sc_core::sc_time& delay) {
  if (phase != tlm::END_REQ && phase != tlm::BEGIN_RESP) {
    throw SimError("interconnect: unexpected phase " + std::string(phase.get_name()) +
                   " from the HBM");
  }
  if (&trans == awaiting_end_req_) {
    awaiting_end_req_ = nullptr;
    end_req_.notify(delay);
  }
  if (phase == tlm::END_REQ) return tlm::TLM_ACCEPTED;
  respond(trans, delay);
  return tlm::TLM_COMPLETED;
}

void Interconnect::respond(Payload& trans, const sc_core::sc_time& delay) {
  const std::size_t core = trans.get_extension<SourceCore>()->core;
  tlm::tlm_phase phase = tlm::BEGIN_RESP;
  sc_core::sc_time at = delay + latency_;
  if ((*core_sockets[core])->nb_transport_bw(trans, phase, at) != tlm::TLM_COMPLETED) {
    throw SimError("interconnect: core " + std::to_string(core) +
                   " must complete a response on the backward call");
  }
}

}  // namespace tpu
