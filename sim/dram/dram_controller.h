#pragma once
// DRAM controller: per pseudo-channel bank state and command scheduling. SystemC-free; time
// is counted in DRAM command-clock cycles (DramCycle), advanced by whoever calls step().
//
// Timing contract (t = the cycle a command issues; burst = DramSpec::burst_cycles()):
// - A request (address, bytes) splits into column accesses, one per burst it touches, each
//   routed by the address mapping to a pseudo-channel (PC), bank group, bank, row and column.
//   It completes when its last access's data is done: RD at t + CL + burst, WR at
//   t + CWL + burst (the write data is in the device).
// - Each PC has a bounded queue of accesses (`queue_depth`). A request is accepted only if
//   every PC it touches has room for its accesses, or holds nothing at all (so a request
//   bigger than a queue still goes through); otherwise the caller must hold it (back-pressure).
//   An access leaves the queue when its column command issues.
// - Per cycle and PC at most one row command (ACT, PRE, REF) and one column command (RD, WR);
//   with a single command bus (DDR3) one command in all, a column command first.
// - Open-row policy, FR-FCFS: the oldest access whose row is open and whose column command is
//   legal now issues first; then the oldest access that needs its bank opened (ACT) or closed
//   (PRE) and may do so now. A row with queued hits is never closed for a conflicting access.
// - Constraints, as earliest cycles:
//     ACT after ACT same bank tRC, same bank group tRRD_L, same PC tRRD_S; at most four ACTs
//         in any tFAW window of a PC; after PRE of the bank tRP; after REF tRFC.
//     RD/WR after ACT of the bank tRCD.
//     RD after RD / WR after WR: same bank group max(tCCD_L, tCCD_S), else tCCD_S, where
//         tCCD_S is at least burst (the data bus).
//     WR after RD (any bank of the PC): CL + burst + 2 - CWL (data bus turnaround: one cycle
//         of write preamble and one of bus turnaround).
//     RD after WR: CWL + burst + tWTR_L same bank group, CWL + burst + tWTR_S otherwise.
//     PRE after ACT tRAS, after RD tRTP, after WR CWL + burst + tWR (all same bank).
// - Refresh: every PC refreshes all its banks every tREFI, all PCs at the same instants
//   (cycle k * tREFI, k >= 1) so a stream stalls once per interval, not once per PC. When a
//   refresh is due the PC issues no more ACT, RD or WR; it precharges its open banks (legal
//   times as above, one per cycle) and issues REF once every bank may be activated; its banks
//   then stay blocked for tRFC. A PC with nothing queued is not stepped: its refreshes are
//   replayed at their due times when work next arrives (catch_up).
// - Stepping: a PC is stepped only at cycles where a command may issue: bounds from its last
//   scan, the column floor after a column command, each newcomer's own earliest command (worked
//   out only where it could come before the PC's next step or lower row_floor), the row
//   candidates' row_floor and the refresh due time (every constraint only grows until a
//   command issues). A step in between would issue nothing, so the commands are those of
//   stepping every cycle (set_step_every_cycle, the reference the tests compare against).
// - Row-buffer outcome of an access, decided when its column command issues: a hit when no
//   command was issued on its behalf, a miss when an ACT was (bank closed), a conflict when a
//   PRE was (another row open).
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "sim/dram/address_mapping.h"
#include "sim/dram/dram_spec.h"

namespace tpu::dram {

using DramCycle = std::uint64_t;
constexpr DramCycle kNever = std::numeric_limits<DramCycle>::max();

enum class Command : std::uint8_t { kActivate, kPrecharge, kRead, kWrite, kRefresh };
const char* to_string(Command c);

// One issued command, for tests and traces.
struct CommandRecord {
  Command command;
  DramCycle cycle;
  std::uint32_t pseudo_channel;  // flat: channel * pseudo_channels + pc
  std::uint32_t bank;            // flat within the PC: bank_group * banks_per_group + bank
  std::uint64_t row;
};

struct Completion {
  std::uint64_t tag;  // the caller's tag given to enqueue()
  DramCycle done;     // cycle the last data beat is done (the response time)
};

struct PseudoChannelStats {
  std::uint64_t reads = 0;  // column accesses
  std::uint64_t writes = 0;
  std::uint64_t read_bytes = 0;  // requested bytes the accesses carried (at most a burst each)
  std::uint64_t write_bytes = 0;
  std::uint64_t row_hits = 0;
  std::uint64_t row_misses = 0;
  std::uint64_t row_conflicts = 0;
  std::uint64_t activates = 0;
  std::uint64_t refreshes = 0;
  DramCycle refresh_cycles = 0;        // tRFC per REF: cycles the banks were blocked
  DramCycle access_latency_cycles = 0;  // summed over accesses: data done - arrival
};

class DramController {
 public:
  // `mapping` must outlive the controller.
  DramController(const DramSpec& spec, const AddressMapping& mapping, std::uint32_t queue_depth);

  // O(1) while every queue has room for as many of the request's bursts as the mapping may
  // send to one pseudo-channel; otherwise maps its bursts (kept for the retries under
  // back-pressure and for enqueue()).
  bool can_accept(std::uint64_t addr, std::uint64_t bytes) const;
  // Queues a request arriving at cycle `arrival`: not before the last step's cycle, and no
  // later step may come before it (its accesses are candidates from the next step on; debug
  // builds assert that none issues before its arrival).
  // Precondition: can_accept(addr, bytes) and bytes > 0.
  void enqueue(std::uint64_t tag, std::uint64_t addr, std::uint64_t bytes, bool write,
               DramCycle arrival);
  // Issues the commands the scheduler picks at cycle `now` (non-decreasing across calls) and
  // appends to `done` every request whose last column access issued.
  void step(DramCycle now, std::vector<Completion>& done);
  // Earliest cycle at which step() could issue something (kNever when nothing is queued).
  DramCycle next_event() const;
  // Replays due refreshes of every PC with nothing queued, up to (not including) `now`.
  void catch_up(DramCycle now);

  const PseudoChannelStats& stats(std::uint32_t pc) const { return pcs_[pc].stats; }
  // Records every issued command into `trace` (nullptr: off).
  void set_trace(std::vector<CommandRecord>* trace) { trace_ = trace; }
  // The reference the event-driven stepping is tested against: every step() steps each
  // pseudo-channel holding work, as if any cycle could issue. Commands come out identical
  // either way (a PC is skipped only at cycles where it could issue nothing).
  // It also looks at every row candidate at every step, checks the queued hit counts and
  // queue size counts against the queues, and can_accept() counts every request's bursts
  // (SimError where the counts disagree).
  void set_step_every_cycle(bool on) { every_cycle_ = on; }

 private:
  enum class Outcome : std::uint8_t { kHit, kMiss, kConflict };
  // 32 bytes: the queue's size() divides by a power of two and copies move half lines.
  struct Access {
    std::uint32_t request;
    std::uint32_t bytes;  // of the request, inside this burst
    std::uint16_t bank;   // the constructor checks the counts fit
    std::uint16_t bank_group;
    bool write;
    Outcome outcome;
    std::uint64_t row;
    DramCycle arrival;
  };
  // A PC's queue in arrival order. FR-FCFS mostly issues the oldest access, so the queue
  // starts at `head_` and removing the front moves nothing; the storage is compacted when it
  // is full and the dead prefix is at least as long as what is queued (amortised at most one
  // move per access; a short queue would otherwise move its few accesses every few pushes).
  class AccessQueue {
   public:
    void reserve(std::size_t n) { v_.reserve(2 * n); }
    bool empty() const { return head_ == v_.size(); }
    std::size_t size() const { return v_.size() - head_; }
    Access& operator[](std::size_t i) { return v_[head_ + i]; }
    const Access& operator[](std::size_t i) const { return v_[head_ + i]; }
    const Access* begin() const { return v_.data() + head_; }
    const Access* end() const { return v_.data() + v_.size(); }
    void push_back(const Access& a) {
      if (v_.size() == v_.capacity() && head_ != 0 && head_ >= size()) {
        v_.erase(v_.begin(), v_.begin() + std::ptrdiff_t(head_));
        head_ = 0;
      }
      v_.push_back(a);
    }
    void erase(std::size_t i) {
      if (i == 0) {
        if (++head_ == v_.size()) clear();
      } else {
        v_.erase(v_.begin() + std::ptrdiff_t(head_ + i));
      }
    }

   private:
    void clear() {
      v_.clear();
      head_ = 0;
    }
    std::vector<Access> v_;
    std::size_t head_ = 0;
  };
  struct Bank {
    static constexpr std::uint64_t kClosed = std::numeric_limits<std::uint64_t>::max();
    std::uint64_t open_row = kClosed;
    std::uint32_t queued_hits = 0;  // queued accesses to the open row
    DramCycle next_act = 0, next_pre = 0, next_rd = 0, next_wr = 0;
  };
  struct BankGroup {
    DramCycle next_act = 0, next_rd = 0, next_wr = 0;
  };
  struct PseudoChannel {
    std::vector<Bank> banks;
    std::vector<BankGroup> groups;
    DramCycle next_act = 0, next_rd = 0, next_wr = 0;
    DramCycle row_bus = 0, column_bus = 0;  // earliest cycle each command bus is free
    std::array<DramCycle, 4> acts{};        // the last four ACTs, oldest at acts_head
    std::uint32_t acts_count = 0, acts_head = 0;
    DramCycle next_refresh = 0;
    bool refreshing = false;  // a refresh is due: draining to REF
    AccessQueue queue;
    std::uint32_t non_hits = 0;  // queued accesses whose row is not open (need ACT or PRE)
    // No row command (ACT or PRE for a queued access) can issue before this cycle. Set by a
    // scan that looked at every row candidate, lowered by what may add one (an arrival, a
    // bank's last hit issuing), 0 (look again) when a bank opens or closes.
    DramCycle row_floor = 0;
    DramCycle next_event = kNever;
    PseudoChannelStats stats;
  };
  struct Request {
    std::uint64_t tag;
    std::uint32_t remaining;  // accesses whose column command has not issued
    DramCycle done;
  };

  // A burst's place: its PC (flat), bank (flat within the PC), bank group and row.
  struct Burst {
    std::uint64_t row;
    std::uint32_t pc;
    std::uint32_t bank;
    std::uint32_t bank_group;
  };
  // The mapping is a bit permutation and the flat numbers concatenate power-of-two fields, so
  // a burst's place is the OR of the places of its index's low kLowBits and of the rest.
  // Consecutive bursts share the rest: decode() maps it once per 2^kLowBits bursts and takes
  // the low part from a table.
  static constexpr unsigned kLowBits = 8;
  Burst decode_slow(std::uint64_t burst_index) const {
    const DramAddress a = mapping_.map(burst_index << burst_shift_);
    return {a.row, a.channel * spec_.org.pseudo_channels + a.pseudo_channel,
            a.bank_group * spec_.org.banks_per_group + a.bank, a.bank_group};
  }
  Burst decode(std::uint64_t burst_index) const {
    const std::uint64_t high = burst_index >> kLowBits;
    if (high != decoded_high_index_) {
      decoded_high_index_ = high;
      decoded_high_ = decode_slow(high << kLowBits);
    }
    const Burst& l = low_bursts_[burst_index & ((1u << kLowBits) - 1)];
    const Burst& h = decoded_high_;
    return {h.row | l.row, h.pc | l.pc, h.bank | l.bank, h.bank_group | l.bank_group};
  }
  std::vector<Burst> low_bursts_;  // decode_slow(i) for i < 2^kLowBits
  mutable std::uint64_t decoded_high_index_ = ~std::uint64_t(0);  // none yet
  mutable Burst decoded_high_{};
  // Every queue change goes through these two, which keep queue_sizes_ and longest_queue_.
  void push_access(PseudoChannel& pc, const Access& a) {
    const std::size_t n = pc.queue.size();
    if (n + 1 == queue_sizes_.size()) queue_sizes_.push_back(0);  // a request bigger than a queue
    --queue_sizes_[n];
    ++queue_sizes_[n + 1];
    longest_queue_ = std::max(longest_queue_, n + 1);
    pc.queue.push_back(a);
  }
  void erase_access(PseudoChannel& pc, std::size_t i) {
    const std::size_t n = pc.queue.size();
    --queue_sizes_[n];
    ++queue_sizes_[n - 1];
    if (queue_sizes_[longest_queue_] == 0) --longest_queue_;  // the last longest was n
    pc.queue.erase(i);
  }

  DramCycle act_ready(const PseudoChannel& pc, const Access& a) const;
  // pc_rd / pc_wr: the PC-wide earliest read / write cycle (its own and the column bus's).
  DramCycle column_ready(const PseudoChannel& pc, const Access& a, DramCycle pc_rd,
                         DramCycle pc_wr) const;
  // The first cycle `a`'s next command could issue in the PC's present state: a lower bound
  // until the PC issues a command, as every constraint only grows.
  DramCycle earliest(const PseudoChannel& pc, const Access& a) const;
  void check_counts(const PseudoChannel& pc) const;
  void check_queue_sizes() const;
  void step_pc(std::uint32_t index, DramCycle now, std::vector<Completion>& done);
  // Refresh drain at `now`: issues a PRE or the REF when legal; returns the next cycle it
  // could act.
  DramCycle step_refresh(std::uint32_t index, DramCycle now);
  void catch_up_pc(std::uint32_t index, DramCycle now);
  void activate(std::uint32_t index, std::uint32_t bank, std::uint64_t row, DramCycle t);
  void precharge(std::uint32_t index, std::uint32_t bank, DramCycle t);
  void refresh(std::uint32_t index, DramCycle t);
  void column(std::uint32_t index, const Access& a, DramCycle t, std::vector<Completion>& done);
  void record(Command c, DramCycle t, std::uint32_t pc, std::uint32_t bank, std::uint64_t row);

  DramSpec spec_;
  const AddressMapping& mapping_;
  std::uint32_t queue_depth_;
  Timing t_;  // with tCCD_S >= burst and tCCD_L >= tCCD_S applied
  DramCycle burst_;
  unsigned burst_shift_;  // log2 of the burst's bytes (a power of two: AddressMapping checks)
  std::vector<PseudoChannel> pcs_;
  // Per PC: its next_event while it holds work, kNever while its queue is empty. step() and
  // next_event() scan this small array instead of touching every PC's state each step.
  std::vector<DramCycle> due_;
  void set_next_event(std::uint32_t index, DramCycle next) {
    pcs_[index].next_event = next;
    due_[index] = pcs_[index].queue.empty() ? kNever : next;
  }
  std::vector<Request> requests_;
  std::vector<std::uint32_t> free_requests_;
  // queue_sizes_[n]: how many PCs hold n accesses; longest_queue_: the largest such n. A
  // request fits in every queue while longest_queue_ + k <= queue_depth_, where k is the most
  // of its bursts the mapping may send to one PC (AddressMapping::spread_bits).
  std::vector<std::uint32_t> queue_sizes_;
  std::size_t longest_queue_ = 0;
  // The bursts of the last request can_accept() had to map, for its retries under
  // back-pressure and the enqueue() that follows (0 bytes: none).
  const std::vector<Burst>& map_bursts(std::uint64_t addr, std::uint64_t bytes) const;
  mutable std::uint64_t mapped_addr_ = 0, mapped_bytes_ = 0;
  mutable std::vector<Burst> mapped_;
  mutable std::vector<std::uint32_t> scratch_counts_;  // per PC, for can_accept
  mutable std::vector<std::uint32_t> scratch_touched_;  // PCs can_accept counted in
  std::vector<CommandRecord>* trace_ = nullptr;
  bool every_cycle_ = false;
};

}  // namespace tpu::dram
