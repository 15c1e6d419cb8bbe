#include "sim/hbm_mux.h"

#include <string>
#include <utility>

#include "sim/tpu_core.h"

namespace tpu {

InstantEnd::InstantEnd(sc_core::sc_module_name name) : sc_module(name) {
  SC_METHOD(at_end);
  sensitive << again_;
  dont_initialize();
}

void InstantEnd::request() {
  if (armed_) return;
  armed_ = true;
  again_.notify(sc_core::SC_ZERO_TIME);
}

void InstantEnd::at_end() {
  if (sc_core::sc_pending_activity_at_current_time()) {
    again_.notify(sc_core::SC_ZERO_TIME);
    return;
  }
  armed_ = false;  // what the ports' sends bring at this instant asks again
  for (HbmMux* port : ports_) port->send_arrived();
}

HbmMux::HbmMux(sc_core::sc_module_name name, InstantEnd* instant_end)
    : sc_module(name), engines("engines"), memory("memory"), instant_end_(instant_end) {
  engines.register_nb_transport_fw(this, &HbmMux::nb_transport_fw);
  memory.register_nb_transport_bw(this, &HbmMux::nb_transport_bw);
  if (instant_end_) instant_end_->add(*this);
}

tlm::tlm_sync_enum HbmMux::nb_transport_fw(int engine, Payload& trans, tlm::tlm_phase& phase,
                                           sc_core::sc_time& delay) {
  if (phase == tlm::BEGIN_REQ) {
    if (instant_end_) {
      if (arrived_.empty()) instant_end_->request();
      arrived_.push_back({engine, &trans, delay});
    } else if (!blocked_ && waiting_.empty()) {
      return pass(engine, trans, phase, delay);
    } else {
      waiting_.push_back({engine, &trans, delay});  // behind the one the memory holds back
    }
    return tlm::TLM_ACCEPTED;
  }
  if (phase == tlm::END_RESP) {
    // The memory waits for END_RESP only if it answered with BEGIN_RESP and not TLM_COMPLETED.
    if (!release(trans)) return tlm::TLM_COMPLETED;
    return memory->nb_transport_fw(trans, phase, delay);
  }
  throw SimError("hbm port: unexpected phase " + std::string(phase.get_name()) +
                 " on the forward path");
}

void HbmMux::send_arrived() {
  // Usually one request, never many: an insertion sort allocates nothing.
  for (std::size_t i = 1; i < arrived_.size(); ++i) {
    for (std::size_t j = i; j > 0 && before(arrived_[j], arrived_[j - 1]); --j) {
      std::swap(arrived_[j], arrived_[j - 1]);
    }
  }
  for (const Request& r : arrived_) {
    if (blocked_ || !waiting_.empty()) {
      waiting_.push_back(r);
    } else {
      send(r);
    }
  }
  arrived_.clear();
}

bool HbmMux::before(const Request& a, const Request& b) {
  return a.delay != b.delay ? a.delay < b.delay : a.engine < b.engine;
}

void HbmMux::send_waiting() {
  while (!blocked_ && !waiting_.empty()) {
    const Request r = waiting_.front();
    waiting_.pop_front();
    send(r);
  }
}

void HbmMux::send(Request r) {
  Payload& trans = *r.trans;
  claim(trans, r.engine);
  tlm::tlm_phase phase = tlm::BEGIN_REQ;
  const tlm::tlm_sync_enum status = memory->nb_transport_fw(trans, phase, r.delay);
  if (status == tlm::TLM_ACCEPTED) {
    blocked_ = &trans;  // END_REQ comes on the backward path
  } else if (status == tlm::TLM_COMPLETED) {
    release(trans);
    respond(r.engine, trans, r.delay);
  } else if (phase == tlm::END_REQ) {
    engines[r.engine]->nb_transport_bw(trans, phase, r.delay);
  } else if (respond(r.engine, trans, r.delay)) {  // BEGIN_RESP on the return path
    release(trans);
    phase = tlm::END_RESP;
    memory->nb_transport_fw(trans, phase, r.delay);
  }
}

tlm::tlm_sync_enum HbmMux::pass(int engine, Payload& trans, tlm::tlm_phase& phase,
                                sc_core::sc_time& delay) {
  claim(trans, engine);
  const tlm::tlm_sync_enum status = memory->nb_transport_fw(trans, phase, delay);
  if (status == tlm::TLM_ACCEPTED) {
    blocked_ = &trans;  // END_REQ comes on the backward path
  } else if (status == tlm::TLM_COMPLETED) {
    release(trans);
  }  // BEGIN_RESP on the return path: at the memory until the engine's END_RESP passes
  return status;
}

void HbmMux::claim(Payload& trans, int engine) {
  Owner& owner = sticky_extension<Owner>(trans);
  owner.engine = engine;
  owner.at_memory = true;
}

bool HbmMux::release(Payload& trans) {
  Owner* owner = trans.get_extension<Owner>();
  if (!owner || !owner->at_memory) return false;
  owner->at_memory = false;
  return true;
}

bool HbmMux::respond(int engine, Payload& trans, sc_core::sc_time& delay) {
  tlm::tlm_phase phase = tlm::BEGIN_RESP;
  const tlm::tlm_sync_enum status = engines[engine]->nb_transport_bw(trans, phase, delay);
  return status == tlm::TLM_COMPLETED || (status == tlm::TLM_UPDATED && phase == tlm::END_RESP);
}

tlm::tlm_sync_enum HbmMux::nb_transport_bw(Payload& trans, tlm::tlm_phase& phase,
                                           sc_core::sc_time& delay) {
  const Owner* owner = trans.get_extension<Owner>();
  if (!owner || !owner->at_memory) throw SimError("hbm port: a response for no request in flight");
  const int engine = owner->engine;
  if (&trans == blocked_) blocked_ = nullptr;  // BEGIN_RESP ends the request phase too
  if (phase == tlm::END_REQ) {
    engines[engine]->nb_transport_bw(trans, phase, delay);
    send_waiting();
    return tlm::TLM_ACCEPTED;
  }
  if (phase != tlm::BEGIN_RESP) {
    throw SimError("hbm port: unexpected phase " + std::string(phase.get_name()) +
                   " on the backward path");
  }
  const bool completed = respond(engine, trans, delay);
  if (completed) release(trans);
  send_waiting();  // if this BEGIN_RESP ended the request phase of the blocking request
  return completed ? tlm::TLM_COMPLETED : tlm::TLM_ACCEPTED;
}

}  // namespace tpu
