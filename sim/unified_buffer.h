#pragma once
// Unified buffer: on-chip SRAM of rows (Config::ub_row_elems() elements each), with
// `ub.read_ports` row reads and `ub.write_ports` DMA row writes per cycle, one more row write
// per cycle on the vector unit's own write port, and `ub.banks` banks (row r in bank
// r % banks) each serving one access per cycle.
//
// Timing contract. Units ask for a burst: `count` accesses of one kind to rows
// first_row, first_row + stride, ..., starting no earlier than cycle `earliest`, either in
// consecutive cycles (the MXU, whose array cannot pause) or spread around conflicts (buffered
// readers and writers: the DMA engine and the vector unit). Requests made during cycle t are arbitrated together at t + 1/2 cycle in fixed
// priority (MXU input stream, weight loader, vector unit, DMA; then request order), so the
// outcome never depends on the order SystemC happens to run processes within a cycle. Later
// requests cannot move an earlier grant. Several MXUs' (or DMA engines') requests of one client
// kind go in instance order.
//
// Exact rules as implemented:
// - A request made at time T is arbitrated at the first instant c + 1/2 strictly after T, so
//   one made at a whole-cycle instant t (the normal case) is arbitrated at t + 1/2 and one made
//   at or after t + 1/2 joins the arbitration of cycle t + 1. Its start is >= that cycle.
// - Within one arbitration, requests are granted in UbClient order, then in instance (MXU)
//   order, then in request order.
// - Access j (0 <= j < count) is to row first_row + j * stride, bank
//   (first_row + j * stride) % ub.banks. It needs one of its cycle's ports of its kind and its
//   bank, which serves one access per cycle whether read or write. The kinds: reads (any
//   client, ub.read_ports), the vector unit's writes (its own port, one per cycle: the
//   activation pipeline's path back into the buffer, a whole row per cycle, beside the host
//   interface's in TPU v1, Jouppi et al., ISCA 2017, figure 1) and the DMA's writes
//   (ub.write_ports). The vector unit never makes more than one write per cycle (one
//   instruction at a time, spread), so its port only orders it against nobody: it waits
//   only for banks.
// - Contiguous bursts: access j happens in cycle s + j for the earliest start s that fits
//   them all. Spread bursts (contiguous = false): access 0 takes the first cycle >=
//   max(earliest, t) that fits it, access j the first cycle after access j - 1 that fits it;
//   start/end are the first access and one past the last, `cycles` holds each one.
// - req.granted/start/end are set, req.on_grant runs and req.done is notified (immediately) at
//   the arbitration instant; reads()/writes() count granted row accesses. A burst of count 0 is
//   granted at max(earliest, t) and reserves nothing.
// - Data: a burst's data moves in its on_grant, all its rows at once, at the arbitration
//   instant, whatever cycles its accesses take. Grants run in the order above, so bursts
//   granted in one arbitration move data in a fixed order (a read granted before a write of
//   the same row sees the old contents) and the outcome of a racing program never depends on
//   the order SystemC runs processes. Timing-only runs set no on_grant.
// - A row outside the buffer raises SimError from request().
#include <array>
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include <systemc>

#include "sim/clock.h"
#include "sim/config/config.h"
#include "sim/cycles.h"
#include "sim/observer.h"

namespace tpu {

enum class UbClient : std::uint8_t { kMatmul = 0, kWeightLoad = 1, kVector = 2, kDma = 3 };

struct UbRequest {
  UbClient client = UbClient::kDma;
  std::uint8_t instance = 0;  // which MXU or DMA engine
  bool write = false;
  std::uint64_t first_row = 0;
  std::uint64_t stride = 1;
  std::uint32_t count = 1;
  Cycle earliest = 0;
  // true: the accesses take consecutive cycles (the MXU's input stream and weight shifts).
  // false: a buffered reader or writer (DMA engine, vector unit); each access takes the
  // earliest cycle after the previous one with a free port and bank, so a conflict costs that
  // access a cycle instead of moving the whole burst.
  bool contiguous = true;
  // Spread bursts only: record the cycle of every access in `cycles` (for access_cycle()).
  bool record_cycles = false;
  // Filled by the arbiter:
  bool granted = false;
  Cycle start = 0;            // cycle of the first access
  Cycle end = 0;              // one past the cycle of the last access
  std::vector<Cycle> cycles;  // record_cycles: the cycle of every access
  // Moves the burst's data (reads copy rows out, writes copy rows in); may be empty.
  std::function<void()> on_grant;
  sc_core::sc_event done;     // notified at the arbitration instant (t + 1/2)

  Cycle access_cycle(std::uint32_t j) const { return contiguous ? start + j : cycles[j]; }
};

class UnifiedBuffer : public sc_core::sc_module {
 public:
  // Every grant is reported to `probe` (MemoryEvent kUbRead/kUbWrite).
  UnifiedBuffer(sc_core::sc_module_name name, const Config& config, DataType dtype,
                const Probe& probe);

  // Queue a burst for arbitration at the end of the current cycle; the caller keeps `req`
  // alive and waits on req.done (or polls req.granted after that instant).
  void request(UbRequest& req);

  std::uint64_t rows() const { return rows_; }
  std::uint64_t reads() const { return reads_; }
  std::uint64_t writes() const { return writes_; }

 private:
  // Port kinds, each with its own count per cycle (see the contract above).
  enum Port : std::size_t { kRead = 0, kDmaWrite = 1, kVectorWrite = 2, kPorts = 3 };
  static Port port_of(const UbRequest& r) {
    return !r.write ? kRead : r.client == UbClient::kVector ? kVectorWrite : kDmaWrite;
  }

  void arbitrate();
  // Index of the first access of `r` started at `s` that finds no free port or bank (r.count
  // when the burst fits); `port_full` tells which.
  std::uint32_t first_conflict(const UbRequest& r, Cycle s, bool& port_full) const;
  void reserve(const UbRequest& r, Cycle s);
  // Takes a port of kind `port` and `bank` in reserved cycle `c`.
  void take(Port port, Cycle c, std::uint64_t bank);
  // The first cycle >= c whose ports of kind `port` are not all taken.
  Cycle first_port_free(Port port, Cycle c);
  // Marks `r` granted (start/end already set), moves its data and wakes its owner.
  void grant(UbRequest& r);
  // Places the accesses of a !contiguous request one by one from cycle `from`.
  void place_spread(UbRequest& r, Cycle from);
  // Drops calendar cycles before `c` and makes room for cycles up to `end` (exclusive).
  void advance_to(Cycle c);
  void extend_to(Cycle end);
  std::size_t slot_index(Cycle c) const { return (head_ + (c - base_)) & (capacity_ - 1); }

  const Config& config_;
  const Probe& probe_;
  Clock clock_;
  std::uint64_t rows_;
  std::uint32_t banks_, bank_words_;
  std::array<std::uint32_t, kPorts> ports_;  // ports of each kind per cycle
  // Requests waiting for arbitration, each with the instant it will be arbitrated at.
  std::vector<std::pair<UbRequest*, sc_core::sc_time>> pending_;
  std::vector<UbRequest*> batch_;  // arbitrate()'s requests of this instant, in grant order
  sc_core::sc_event arbitrate_event_;
  // Reservation calendar: a ring of per-cycle slots for cycles base_ .. base_ + used_ - 1.
  // Cycle c uses port_used_[p][i] (ports of kind p taken) and bank bits
  // bank_busy_[i * bank_words_ .. (i + 1) * bank_words_ - 1], i = slot_index(c).
  Cycle base_ = 0;
  std::size_t head_ = 0, used_ = 0, capacity_ = 0;  // capacity_ is a power of two
  std::array<std::vector<std::uint32_t>, kPorts> port_used_;
  std::vector<std::uint64_t> bank_busy_;
  // Skip lists over full ports, so a spread burst behind a long reservation (the DMA's 1024
  // reads behind a store's) jumps it in a few steps instead of cycle by cycle: for a cycle c
  // whose ports of kind p are all taken, full_until_[p][i] is a cycle > c such that every
  // cycle in [c, it) is full too; i = slot_index(c). Ports are never released before their
  // cycle is dropped, so the claim stays true (an entry is read only while its cycle is full,
  // so dropped slots need no reset); lookups compress paths.
  std::array<std::vector<Cycle>, kPorts> full_until_;
  std::uint64_t reads_ = 0, writes_ = 0;
};

}  // namespace tpu
