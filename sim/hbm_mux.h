#pragma once
// The core's HBM port when it has several DMA engines (core.dma_engines > 1): one TLM-2.0
// base-protocol connection to the memory, shared by the engines. It adds no time, and the
// order in which the memory takes requests does not depend on the order SystemC runs the
// engines' threads:
// - A BEGIN_REQ is taken at once (TLM_ACCEPTED) and held until the end of its instant, when
//   nothing else is left to run at that time (InstantEnd). Then the instant's requests go to
//   the memory in engine order, lowest instance first, at that same time.
// - A request the memory holds back (END_REQ withheld; the base protocol lets a connection
//   have only one) holds back every later one; they go on in order as END_REQs come back.
// - The engine hears what the memory answered: END_REQ, or BEGIN_RESP (which ends the request
//   phase too, IEEE 1666-2011 15.2.4). Responses go back to the engine that sent the request.
// - Order-free memory (no InstantEnd: `ideal` HBM bound straight to the port, which answers
//   every request on arrival whatever the order): a BEGIN_REQ goes straight on to the memory
//   and the engine gets its answer on the forward call, as if bound directly; the end of the
//   instant is not waited for. Same-instant requests then reach the memory in process order,
//   which changes no time; only data racing between engines at one instant could see it.
// One engine is bound to the memory directly: no mux, no end-of-instant step.
#include <cstddef>
#include <deque>
#include <vector>

#include <systemc>
#include <tlm>
#include <tlm_utils/multi_passthrough_target_socket.h>
#include <tlm_utils/simple_initiator_socket.h>

#include "sim/sticky_extension.h"

namespace tpu {

class HbmMux;

// The end of an instant, for every HBM port of a chip: one process that runs when nothing
// else is left to run at the current time (re-arming itself a delta later while something
// is), then lets each port that asked send what the instant brought, in port order. One for
// all ports, so that no two such processes wait for each other.
class InstantEnd : public sc_core::sc_module {
 public:
  SC_HAS_PROCESS(InstantEnd);
  explicit InstantEnd(sc_core::sc_module_name name);
  void add(HbmMux& port) { ports_.push_back(&port); }
  void request();  // the current instant brought a request to some port

 private:
  void at_end();  // SC_METHOD on again_
  std::vector<HbmMux*> ports_;
  sc_core::sc_event again_;
  bool armed_ = false;
};

class HbmMux : public sc_core::sc_module {
 public:
  tlm_utils::multi_passthrough_target_socket<HbmMux> engines;  // bound once per engine
  tlm_utils::simple_initiator_socket<HbmMux> memory;

  // `instant_end` null: order-free memory (above).
  HbmMux(sc_core::sc_module_name name, InstantEnd* instant_end);

  // At the end of the instant: its requests join the waiting ones in engine order and go on.
  void send_arrived();

 private:
  using Payload = tlm::tlm_generic_payload;
  struct Request {
    int engine;
    Payload* trans;
    sc_core::sc_time delay;  // annotated by the engine
  };

  tlm::tlm_sync_enum nb_transport_fw(int engine, Payload& trans, tlm::tlm_phase& phase,
                                     sc_core::sc_time& delay);
  tlm::tlm_sync_enum nb_transport_bw(Payload& trans, tlm::tlm_phase& phase,
                                     sc_core::sc_time& delay);
  // The engine of a request sent to the memory, kept on the payload (no lookup per request);
  // at_memory until the memory's side of its response has ended.
  struct Owner : StickyExtension<Owner> {
    int engine = 0;
    bool at_memory = false;
  };
  void claim(Payload& trans, int engine);
  bool release(Payload& trans);  // false if it was not at the memory

  static bool before(const Request& a, const Request& b);  // sooner, then lower engine
  void send_waiting();  // while the memory accepts, the waiting requests, oldest first
  void send(Request r);  // to the memory; the caller checked nothing is blocked or waiting
  // Order-free memory: sends the engine's BEGIN_REQ on and returns the memory's answer to it.
  tlm::tlm_sync_enum pass(int engine, Payload& trans, tlm::tlm_phase& phase,
                          sc_core::sc_time& delay);
  // Passes the memory's BEGIN_RESP to `engine`; true if the engine completed it.
  bool respond(int engine, Payload& trans, sc_core::sc_time& delay);

  InstantEnd* instant_end_;  // null: order-free memory
  std::vector<Request> arrived_;       // BEGIN_REQs of the current instant
  std::deque<Request> waiting_;        // to send, in order
  const Payload* blocked_ = nullptr;   // sent, END_REQ not yet back
};

}  // namespace tpu
