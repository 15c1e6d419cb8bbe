#pragma once
// DMA engine: strided copies between HBM (through a TLM-2.0 initiator socket) and the unified
// buffer, split into bursts.
//
// Timing contract, exactly as implemented (cycle c starts at c * period):
// - Pieces: every contiguous segment (elems x element bytes at its HBM address) is split at
//   multiples of hbm.burst_bytes, in gather order (group, segment, address). A piece's UB rows
//   are the rows its first and last byte pack into (pack elements per row from the group's
//   first row) and every row between.
// - Load requests (coalescing): a piece joins the request of its burst (address /
//   hbm.burst_bytes) if a piece of the same group or of the previous group opened or joined
//   one, else it opens request i = the next number (order of first use). A request reads the
//   hull [lowest, highest) byte of its pieces. Exact (one request per distinct burst) when the
//   groups touching a burst are consecutive (all compiler patterns: addresses are monotone in
//   group, segment and offset). Pieces are generated lazily, only until the next request to
//   send is closed (no later piece starts below its burst's end, or two groups have passed
//   it): memory is about two groups' pieces plus the requests in flight.
// - Store requests: the pieces, except that consecutive pieces back to back in HBM within one
//   burst merge into one write (overlapping or gapped pieces stay separate).
// - Requests: request i is sent (BEGIN_REQ, zero annotated delay) at the start of cycle
//   q_i = the earliest cycle >= max(q_{i-1} + 1, ready_i) at which fewer than
//   hbm.max_outstanding requests are in flight and the previous request was accepted (END_REQ,
//   seen at the first cycle boundary at or after it; back-pressure). q_0 >= start.
//   A request is in flight from its cycle until its response cycle r_i = the first cycle
//   boundary at or after the response time (BEGIN_RESP or completion on the forward call);
//   a request may go out in the cycle a response frees its slot.
// - Load (ready_i = start): each UB row is written once, when the last piece holding its bytes
//   arrives: the rows response i completes, in row order, become one spread UB write burst
//   (client kDma) per run of consecutive rows, requested in cycle r_i with earliest = r_i; each
//   row write takes the first cycle after the previous one with a free port and bank. The load
//   completes at the latest end (one past the last write) over its rows.
// - Store: the UB rows (group by group, in order) are requested in cycle `start` with
//   earliest = start as one spread read burst when they are evenly spaced (one group, one row
//   per group, or groups back to back), else one burst per group in group order; row k is read
//   in that burst's access_cycle(k). ready_i = 1 + the read cycle of the last row write i
//   reads. The store completes at max_i(r_i) + 1.
// - Load with the `weights` flag (weight FIFO): the same requests, but each row a response
//   completes is written into the FIFO entry on the FIFO's own write port, one row per cycle:
//   row writes take cycles max(r_i, previous row write + 1), in row order within a response;
//   no UB access. The load completes one past the last row write. The entry (pushed onto
//   MachineState::weight_fifo at `start` in functional runs) receives each row's bytes at the
//   response that completes it; nothing can read it before the load completes.
// - A transfer with nothing to move completes at start + 1.
// - Data moves as it arrives, never at `start`: the HBM channel reads storage into a read
//   payload, or writes a write payload into storage, when it serves the request (see
//   hbm_channel.h). A load writes each row's bytes into the UB at the grant of that row's
//   write (dma_write_ub, padding zeroed), from copies taken at the responses. A store
//   reads the packed streams of its groups at the grant of the UB read burst holding them
//   (dma_read_ub), and each write request carries its burst's bytes from there. The engine
//   reaches HBM only through its socket. Timing-only runs send no data pointer and move
//   nothing. An HBM error response raises SimError.
#include <cstdint>
#include <memory>
#include <vector>

#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>

#include "sim/clock.h"
#include "sim/config/config.h"
#include "sim/isa/isa.h"
#include "sim/isa/semantics.h"
#include "sim/observer.h"
#include "sim/unified_buffer.h"

namespace tpu {

class DmaEngine : public sc_core::sc_module {
 public:
  tlm_utils::simple_initiator_socket<DmaEngine> hbm_socket;

  // `state` holds the UB data, or only the sizes in timing-only runs
  // (MachineState(config, program, false): then nothing is copied). It must not be null.
  // HBM is whatever the channel behind hbm_socket holds (in the core, state->hbm). Every HBM
  // request is reported to `probe` at its response (MemoryEvent kHbmRead/kHbmWrite).
  // `instance` is the engine's number in the core (core.dma_engines): its UB requests and
  // memory events carry it, and the UB grants several engines' same-cycle requests in
  // instance order.
  DmaEngine(sc_core::sc_module_name name, const Config& config, const Clock& clock,
            UnifiedBuffer& ub, MachineState* state, const Probe& probe,
            std::uint8_t instance = 0);

  struct Result {
    Cycle done = 0;                   // completion cycle (first cycle after its last access)
    std::uint64_t hbm_read_bytes = 0;
    std::uint64_t hbm_write_bytes = 0;
    std::uint64_t ub_accesses = 0;
  };
  // Executes one kDmaLoad or kDmaStore whose first cycle is `start` (the current cycle).
  // Must be called from an SC_THREAD; returns at the completion cycle.
  Result transfer(const Instruction& inst, Cycle start);

 private:
  using Payload = tlm::tlm_generic_payload;

  struct Burst {
    std::uint64_t addr = 0;
    std::uint32_t bytes = 0;
    std::uint32_t group = 0;      // group and the group-relative index of its last UB row
    std::uint64_t last_in_group = 0;
    std::uint32_t first_group = 0;  // group of the first byte, and its byte position in that
    std::uint64_t offset = 0;       // group's packed stream (dma_read_ub)
  };
  struct Response {
    Payload* trans;
    sc_core::sc_time at;
  };

  // A store's pieces: every segment split at burst boundaries, in gather order.
  std::vector<Burst> split(const DmaFields& d) const;
  // Sends the requests of `source` in order (source.has(i): request i exists; addr, size,
  // ready = earliest cycle, data = a write's bytes or null; sent(i) is called as it goes out),
  // calling on_response(i, r, data) at the response cycle r of each, with the bytes a read
  // brought (valid during the call; null in timing-only runs); returns with every response
  // handled.
  template <typename Source, typename OnResponse>
  void run_requests(Source& source, bool write, Cycle start, OnResponse on_response);
  // Waits until the first cycle boundary at or after now; returns that cycle.
  Cycle wait_for_boundary();
  tlm::tlm_sync_enum nb_transport_bw(Payload& trans, tlm::tlm_phase& phase,
                                     sc_core::sc_time& delay);

  std::uint8_t instance_;
  const Config& config_;
  const Clock& clock_;
  UnifiedBuffer& ub_;
  MachineState* state_;
  const Probe& probe_;
  std::uint32_t max_outstanding_;
  // Payload pool: one per request that can be in flight, each with its slice of staging_.
  std::unique_ptr<Payload[]> pool_;
  std::vector<std::uint8_t> staging_;
  std::vector<std::size_t> burst_of_;   // burst index of each pool payload in flight
  std::vector<Cycle> sent_at_;          // and the cycle it was sent
  std::vector<std::size_t> free_;       // free pool indices
  Payload* awaiting_end_req_ = nullptr;
  Cycle next_send_ = 0;                 // the first cycle the request awaiting END_REQ's successor may go
  std::vector<Response> responses_;     // arrived, not yet handled
  sc_core::sc_event wake_;              // END_REQ or a response arrived
};

}  // namespace tpu
