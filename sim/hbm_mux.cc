#include "sim/hbm_mux.h"

#include <string>

#include "sim/tpu_core.h"

namespace tpu {

HbmMux::HbmMux(sc_core::sc_module_name name)
    : sc_module(name), engines("engines"), memory("memory") {
  engines.register_nb_transport_fw(this, &HbmMux::nb_transport_fw);
  memory.register_nb_transport_bw(this, &HbmMux::nb_transport_bw);
}

tlm::tlm_sync_enum HbmMux::send(int engine, Payload& trans, tlm::tlm_phase& phase,
                                sc_core::sc_time& delay) {
  owner_[&trans] = engine;
  const tlm::tlm_sync_enum status = memory->nb_transport_fw(trans, phase, delay);
  if (status == tlm::TLM_ACCEPTED) {
    blocked_ = &trans;
  } else if (status == tlm::TLM_COMPLETED) {
    owner_.erase(&trans);
  }
  return status;
}

tlm::tlm_sync_enum HbmMux::nb_transport_fw(int engine, Payload& trans, tlm::tlm_phase& phase,
                                           sc_core::sc_time& delay) {
  if (phase == tlm::BEGIN_REQ) {
    if (blocked_ || !waiting_.empty()) {
      waiting_.emplace_back(engine, &trans);
      return tlm::TLM_ACCEPTED;
    }
    return send(engine, trans, phase, delay);
  }
  if (phase == tlm::END_RESP) {
    owner_.erase(&trans);
    return memory->nb_transport_fw(trans, phase, delay);
  }
  throw SimError("hbm port: unexpected phase " + std::string(phase.get_name()) +
                 " on the forward path");
}

tlm::tlm_sync_enum HbmMux::nb_transport_bw(Payload& trans, tlm::tlm_phase& phase,
                                           sc_core::sc_time& delay) {
  const auto it = owner_.find(&trans);
  if (it == owner_.end()) throw SimError("hbm port: a response for no request in flight");
  const int engine = it->second;
  if (phase == tlm::END_REQ) {
    if (&trans == blocked_) blocked_ = nullptr;
    engines[engine]->nb_transport_bw(trans, phase, delay);
    send_waiting();
    return tlm::TLM_ACCEPTED;
  }
  const tlm::tlm_sync_enum status = engines[engine]->nb_transport_bw(trans, phase, delay);
  if (status == tlm::TLM_COMPLETED || (status == tlm::TLM_UPDATED && phase == tlm::END_RESP)) {
    owner_.erase(&trans);
  }
  return status;
}

void HbmMux::send_waiting() {
  while (!blocked_ && !waiting_.empty()) {
    const auto [engine, trans] = waiting_.front();
    waiting_.pop_front();
    tlm::tlm_phase phase = tlm::BEGIN_REQ;
    sc_core::sc_time delay = sc_core::SC_ZERO_TIME;
    const tlm::tlm_sync_enum status = send(engine, *trans, phase, delay);
    if (status == tlm::TLM_ACCEPTED) continue;  // blocked again: END_REQ comes later
    // The engine holds TLM_ACCEPTED for this request: tell it what the memory answered.
    if (status == tlm::TLM_COMPLETED) phase = tlm::BEGIN_RESP;
    engines[engine]->nb_transport_bw(*trans, phase, delay);
  }
}

}  // namespace tpu
