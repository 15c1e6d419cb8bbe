#pragma once
// The core's HBM port when it has several DMA engines (core.dma_engines > 1): one TLM-2.0
// base-protocol connection to the memory, shared by the engines. It adds no time: a request
// goes to the memory in the call that brings it, unless the memory still withholds END_REQ
// for an earlier one (back-pressure, which the base protocol lets a connection have only one
// of); then it waits, and requests go on in arrival order as END_REQs come back. Responses go
// back to the engine that sent the request. Requests of several engines in one cycle reach
// the memory in the order SystemC runs the engines; with `ideal` memory every request is
// answered on arrival, so that order changes nothing. One engine is bound to the memory
// directly.
#include <deque>
#include <map>
#include <utility>

#include <systemc>
#include <tlm>
#include <tlm_utils/multi_passthrough_target_socket.h>
#include <tlm_utils/simple_initiator_socket.h>

namespace tpu {

class HbmMux : public sc_core::sc_module {
 public:
  tlm_utils::multi_passthrough_target_socket<HbmMux> engines;  // bound once per engine
  tlm_utils::simple_initiator_socket<HbmMux> memory;

  explicit HbmMux(sc_core::sc_module_name name);

 private:
  using Payload = tlm::tlm_generic_payload;

  tlm::tlm_sync_enum nb_transport_fw(int engine, Payload& trans, tlm::tlm_phase& phase,
                                     sc_core::sc_time& delay);
  tlm::tlm_sync_enum nb_transport_bw(Payload& trans, tlm::tlm_phase& phase,
                                     sc_core::sc_time& delay);
  // Sends BEGIN_REQ of `trans` to the memory on behalf of `engine`.
  tlm::tlm_sync_enum send(int engine, Payload& trans, tlm::tlm_phase& phase,
                          sc_core::sc_time& delay);
  void send_waiting();  // while the memory accepts, the requests that waited, oldest first

  std::map<const Payload*, int> owner_;           // sent to the memory, not yet completed
  std::deque<std::pair<int, Payload*>> waiting_;  // BEGIN_REQ not yet sent to the memory
  const Payload* blocked_ = nullptr;              // sent, END_REQ not yet back
};

}  // namespace tpu
