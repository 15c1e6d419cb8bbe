#pragma once
// The on-chip interconnect of a chip with several cores: each core's DMA engine reaches the
// shared HBM through it (TLM-2.0 base protocol on both sides). A one-core chip has none: its
// DMA engine is bound straight to the HBM channel.
//
// Timing contract, exactly as implemented (L = chip.interconnect_latency_cycles core cycles,
// B = chip.interconnect_gbs bytes per ns):
// - A BEGIN_REQ from a core arriving at T is accepted at once (TLM_UPDATED, END_REQ): the
//   interconnect queues without limit; each DMA engine bounds its own requests in flight.
// - Requests cross one shared port in order of arrival, requests arriving at the same instant
//   in core order (L >= 1, so all of them have arrived before the first is sent): request i
//   goes to the HBM at s_i = max(T_i + L, port_free); port_free = s_i + bytes_i / B (reads and
//   writes alike, as the HBM's simple model charges its bus). Sending waits for the HBM's
//   END_REQ (its back-pressure holds back every later request).
// - A response the HBM gives at R reaches the core at R + L (BEGIN_RESP with that annotated
//   delay); the core's DMA engine completes it on the backward call.
// - Stats: per core, the bytes it read and wrote through the interconnect.
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>

#include "sim/clock.h"
#include "sim/config/config.h"
#include "sim/sticky_extension.h"

namespace tpu {

struct InterconnectTraffic {
  std::uint64_t read_bytes = 0;
  std::uint64_t write_bytes = 0;
};

class Interconnect : public sc_core::sc_module {
 public:
  SC_HAS_PROCESS(Interconnect);
  using CoreSocket = tlm_utils::simple_target_socket_tagged<Interconnect>;
  // One target socket per core (index = core), one initiator socket to the HBM.
  std::vector<std::unique_ptr<CoreSocket>> core_sockets;
  tlm_utils::simple_initiator_socket<Interconnect> hbm_socket;

  Interconnect(sc_core::sc_module_name name, const Config& config, const Clock& clock,
               std::size_t cores);
  const std::vector<InterconnectTraffic>& traffic() const { return traffic_; }

 private:
  using Payload = tlm::tlm_generic_payload;
  // The core a request came from, on its payload, so a response finds its core.
  struct SourceCore : StickyExtension<SourceCore> {
    std::size_t core = 0;
  };
  struct Pending {
    Payload* trans;
    sc_core::sc_time arrival;
    std::size_t core;
  };
  tlm::tlm_sync_enum nb_transport_fw(int core, Payload& trans, tlm::tlm_phase& phase,
                                     sc_core::sc_time& delay);
  tlm::tlm_sync_enum nb_transport_bw(Payload& trans, tlm::tlm_phase& phase,
                                     sc_core::sc_time& delay);
  void forward();  // SC_THREAD: sends the queued requests to the HBM in order
  // Passes the HBM's response to `trans`, ready `delay` from now, back to its core.
  void respond(Payload& trans, const sc_core::sc_time& delay);

  sc_core::sc_time latency_;
  double ps_per_byte_;
  sc_core::sc_time port_free_;
  std::deque<Pending> pending_;  // by (arrival, core)
  sc_core::sc_event queued_;
  Payload* awaiting_end_req_ = nullptr;
  sc_core::sc_event end_req_;
  std::vector<InterconnectTraffic> traffic_;
};

}  // namespace tpu
