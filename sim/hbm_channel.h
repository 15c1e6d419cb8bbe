#pragma once
// HBM channel: the off-chip memory behind a TLM-2.0 target socket (base protocol,
// nb_transport_fw/bw with BEGIN_REQ/END_REQ/BEGIN_RESP/END_RESP). Any memory model that speaks
// this socket can replace it. The timing model inside is chosen by `hbm.preset`:
//   ideal  - every request is answered in the cycle it arrives; unlimited bandwidth.
//   simple - one data bus at `hbm.bandwidth_gbs`, served in arrival order, plus a fixed
//            `hbm.latency_ns`: start = max(arrival, bus_free); bus_free = start + bytes / bw;
//            response at bus_free + latency. At most `hbm.max_outstanding` requests are held;
//            beyond that END_REQ is withheld (back-pressure).
//   hbm2, hbm2e, hbm3, ddr3 - a DRAM device (sim/dram/): banks, rows, refresh, an FR-FCFS
//            controller per pseudo-channel, on the device's own clock (tCK of the preset).
//            At most `hbm.max_outstanding` requests are held, and a request is accepted only
//            when the per-pseudo-channel queues (`hbm.queue_depth`) have room for its bursts.
//
// Timing contract, exactly as implemented (times in ns, SystemC resolution 1 ps):
// - A BEGIN_REQ arriving at T (now + annotated delay) is accepted at once when fewer than the
//   limit (`simple`: hbm.max_outstanding; `ideal`: none) are held, i.e. accepted and not yet
//   answered; the target returns TLM_UPDATED with END_REQ. Otherwise it returns TLM_ACCEPTED
//   and holds the request (the base protocol lets the initiator send no other BEGIN_REQ until
//   END_REQ); when a held request is answered, the waiting one is accepted at that instant and
//   END_REQ goes back on nb_transport_bw. The acceptance time A is its arrival for timing.
// - ideal: the response is ready at A. simple: in acceptance order,
//   start = max(A, bus_free); bus_free = start + bytes / hbm.bandwidth_gbs (bytes per ns,
//   rounded to 1 ps); ready = bus_free + hbm.latency_ns. Reads and writes share the bus.
//   DRAM: the request joins the controller at the first DRAM clock edge at or after A;
//   ready is the edge at which the data of its last burst is done (dram_controller.h), so
//   requests complete out of order. The controller is stepped only at edges where it may
//   issue a command, and not at all while nothing is queued.
// - At `ready` the data moves (a read copies storage into the payload, a write copies the
//   payload into storage; nothing when storage or the data pointer is null) and the request
//   stops counting against the limit. A request whose bytes fall outside the storage (or
//   outside hbm.capacity_bytes when timing-only) gets TLM_ADDRESS_ERROR_RESPONSE, one with
//   byte enables TLM_BYTE_ENABLE_ERROR_RESPONSE; both still take their bus time.
// - BEGIN_RESP goes back at `ready`, one response at a time as the base protocol requires: a
//   later response waits until the initiator ends the previous one (TLM_COMPLETED on the
//   backward call, or END_RESP). A request ready at the instant it arrives, with no response in
//   progress, completes on the forward call itself (TLM_COMPLETED): the ideal fast path.
// - Stats: requests counts accepted requests; read/write bytes count answered ones without
//   error; latency is BEGIN_RESP time minus arrival T, so it includes back-pressure. DRAM
//   presets add per-channel counters (row hits, misses, conflicts, refreshes) from the
//   controller.
#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <utility>
#include <vector>

#include <systemc>
#include <tlm>
#include <tlm_utils/simple_target_socket.h>

#include "sim/config/config.h"
#include "sim/dram/address_mapping.h"
#include "sim/dram/dram_controller.h"
#include "sim/stats.h"

namespace tpu {

// The timing model behind the channel's socket: when the response to an accepted request is
// ready. Models answer in acceptance order or not, as they like; the channel keeps the
// protocol.
class HbmTiming {
 public:
  virtual ~HbmTiming() = default;
  virtual sc_core::sc_time ready_at(const sc_core::sc_time& accepted, std::uint64_t bytes,
                                    bool write) = 0;
  // Requests held at once before END_REQ is withheld (0 = unlimited).
  virtual std::uint32_t max_outstanding() const = 0;
};

class HbmChannel : public sc_core::sc_module {
 public:
  tlm_utils::simple_target_socket<HbmChannel> socket;

  // `storage` is the HBM contents (nullptr for timing-only runs: data is not moved).
  HbmChannel(sc_core::sc_module_name name, const Config& config,
             std::vector<std::uint8_t>* storage);

  // Counters so far; for DRAM presets the per-channel ones are refreshed from the controller.
  const HbmStats& stats() const;
  // DRAM presets: replays the refreshes an idle device has done until now, so refresh
  // counters cover the whole run (the controller is not stepped while idle).
  void settle_refresh();
  // The DRAM preset being modelled (nullptr for ideal and simple).
  const dram::DramSpec* dram_spec() const { return dram_spec_.get(); }

 private:
  using Payload = tlm::tlm_generic_payload;

  tlm::tlm_sync_enum nb_transport_fw(Payload& trans, tlm::tlm_phase& phase,
                                     sc_core::sc_time& delay);
  bool can_accept(const Payload& trans) const;
  // Accepts `trans` into the DRAM controller's queue (DRAM presets).
  void accept_dram(Payload& trans, const sc_core::sc_time& arrival, const sc_core::sc_time& now);
  // An accepted request and its arrival (latency is counted from it).
  struct Held {
    Payload* trans;
    sc_core::sc_time arrival;
  };
  // A request whose response is ready at `at`. Responses are answered in (at, seq) order, so
  // requests ready at one instant go in the order they were scheduled.
  struct Ready {
    sc_core::sc_time at;
    std::uint64_t seq;
    Held held;
    struct Later {  // heap order: the top is the earliest, first scheduled
      bool operator()(const Ready& a, const Ready& b) const {
        return a.at != b.at ? a.at > b.at : a.seq > b.seq;
      }
    };
  };

  // Counts `trans` against the limit until its response is ready at `ready`.
  void hold(Payload& trans, const sc_core::sc_time& arrival, const sc_core::sc_time& ready);
  // Queues `h` for on_ready() at `ready` (now, if that has passed); `now` is sc_time_stamp().
  void schedule(const Held& h, const sc_core::sc_time& ready, const sc_core::sc_time& now);
  void accept_waiting();  // accepts the held-back BEGIN_REQ if it fits now
  void on_ready();  // SC_METHOD on ready_event_
  void step_dram();  // SC_METHOD on step_event_: one controller step at a DRAM clock edge
  dram::DramCycle dram_cycle_at_or_after(const sc_core::sc_time& t) const;
  sc_core::sc_time dram_time(dram::DramCycle c) const;
  // The two conversions go through doubles and SystemC's library (a few percent of a
  // DRAM-bound run); a stream asks about the same few instants and cycles again and again, so
  // the last answers are kept, direct-mapped by value. Exact: a hit returns what was computed.
  static constexpr std::size_t kConversions = 64;
  mutable std::array<std::pair<std::uint64_t, dram::DramCycle>, kConversions> cycle_of_time_;
  mutable std::array<std::pair<dram::DramCycle, sc_core::sc_time>, kConversions> time_of_cycle_;
  void execute(Payload& trans);
  void send_responses(const sc_core::sc_time& now);  // now: sc_time_stamp()
  void finish_response(const Held& h, const sc_core::sc_time& now);

  mutable HbmStats stats_;  // per-channel DRAM counters are copied in by stats()
  std::vector<std::uint8_t>* storage_;
  std::uint64_t capacity_;
  std::uint32_t max_outstanding_;  // 0 = unlimited
  std::unique_ptr<HbmTiming> timing_;  // ideal and simple
  std::unique_ptr<dram::DramSpec> dram_spec_;  // DRAM presets
  std::unique_ptr<dram::AddressMapping> mapping_;
  std::unique_ptr<dram::DramController> dram_;
  std::vector<dram::Completion> completions_;  // scratch for step_dram()
  sc_core::sc_event step_event_;
  // Notifies `event` for `at` (now, if that has passed) unless it is already due at or before
  // then (SystemC would keep that one anyway): a stream asks for the same step and response
  // instants once per request. `due` is the pending instant (kNotDue: none); the event's
  // method resets it when it runs.
  static constexpr std::uint64_t kNotDue = ~std::uint64_t(0);
  static void notify_at(sc_core::sc_event& event, std::uint64_t& due, const sc_core::sc_time& at,
                        const sc_core::sc_time& now);
  std::uint64_t step_due_ = kNotDue;   // step_event_'s pending instant (sc_time value)
  std::uint64_t ready_due_ = kNotDue;  // ready_event_'s
  std::uint32_t held_ = 0;
  Payload* waiting_ = nullptr;  // BEGIN_REQ not yet accepted (back-pressure)
  sc_core::sc_time waiting_since_;
  // Requests in the DRAM controller, by the tag it knows them by, and the free tags.
  std::vector<Held> in_dram_;
  std::vector<std::uint32_t> free_tags_;
  // Response time known, not yet reached. Most are scheduled in time order (a stream's
  // completions) and queue in ready_in_order_ at O(1); the others wait in the heap
  // ready_out_of_order_. The next to answer is the earlier of the two fronts.
  std::deque<Ready> ready_in_order_;
  std::vector<Ready> ready_out_of_order_;
  const Ready* earliest_ready() const;  // nullptr when none
  void pop_ready(const Ready* earliest);  // removes what earliest_ready() returned
  std::uint64_t ready_seq_ = 0;
  sc_core::sc_event ready_event_;  // at the earliest ready
  std::deque<Held> responses_;     // ready, BEGIN_RESP not yet sent
  Payload* responding_ = nullptr;  // BEGIN_RESP sent, END_RESP not yet received
};

}  // namespace tpu
