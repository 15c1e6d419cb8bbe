#include "sim/dram/dram_controller.h"

#include <algorithm>
#include <cassert>
#include <string>

#include "sim/sim_error.h"

namespace tpu::dram {

const char* to_string(Command c) {
  switch (c) {
    case Command::kActivate:
      return "ACT";
    case Command::kPrecharge:
      return "PRE";
    case Command::kRead:
      return "RD";
    case Command::kWrite:
      return "WR";
    case Command::kRefresh:
      return "REF";
  }
  return "?";
}

DramController::DramController(const DramSpec& spec, const AddressMapping& mapping,
                               std::uint32_t queue_depth)
    : spec_(spec),
      mapping_(mapping),
      queue_depth_(std::max<std::uint32_t>(queue_depth, 1)),
      t_(spec.timing),
      burst_(spec.burst_cycles()),
      burst_shift_(0),
      pcs_(spec.pseudo_channel_count()),
      due_(spec.pseudo_channel_count(), kNever),
      queue_sizes_(queue_depth_ + 1, 0),
      scratch_counts_(spec.pseudo_channel_count(), 0) {
  if (spec.banks() > 0x10000) {
    throw SimError("dram controller: " + std::to_string(spec.banks()) +
                   " banks per pseudo-channel (allowed at most 65536)");
  }
  while ((std::uint64_t(1) << burst_shift_) < spec.burst_bytes()) ++burst_shift_;
  queue_sizes_[0] = std::uint32_t(pcs_.size());
  for (std::uint64_t i = 0; i < (std::uint64_t(1) << kLowBits); ++i) {
    low_bursts_.push_back(decode_slow(i));
  }
  // The data bus allows one burst at a time whatever the device's tCCD says.
  t_.ccd_s = std::max<std::uint32_t>(t_.ccd_s, std::uint32_t(burst_));
  t_.ccd_l = std::max(t_.ccd_l, t_.ccd_s);
  for (PseudoChannel& pc : pcs_) {
    pc.banks.resize(spec.banks());
    pc.groups.resize(spec.org.bank_groups);
    pc.next_refresh = t_.refi;
    pc.queue.reserve(queue_depth_);
  }
}

const std::vector<DramController::Burst>& DramController::map_bursts(std::uint64_t addr,
                                                                    std::uint64_t bytes) const {
  if (addr == mapped_addr_ && bytes == mapped_bytes_) return mapped_;
  const std::uint64_t first = addr >> burst_shift_, last = (addr + bytes - 1) >> burst_shift_;
  mapped_.clear();
  for (std::uint64_t b = first; b <= last; ++b) mapped_.push_back(decode(b));
  mapped_addr_ = addr;
  mapped_bytes_ = bytes;
  return mapped_;
}

bool DramController::can_accept(std::uint64_t addr, std::uint64_t bytes) const {
  const std::uint64_t bursts = ((addr + bytes - 1) >> burst_shift_) - (addr >> burst_shift_) + 1;
  const std::uint64_t per_pc = ((bursts - 1) >> mapping_.spread_bits()) + 1;  // at most
  const bool fits_anywhere = longest_queue_ + per_pc <= queue_depth_;
  if (fits_anywhere && !every_cycle_) return true;
  std::vector<std::uint32_t>& touched = scratch_touched_;
  touched.clear();
  for (const Burst& a : map_bursts(addr, bytes)) {
    if (scratch_counts_[a.pc]++ == 0) touched.push_back(a.pc);
  }
  bool ok = true;
  for (std::uint32_t pc : touched) {
    const std::size_t held = pcs_[pc].queue.size();
    if (held != 0 && held + scratch_counts_[pc] > queue_depth_) ok = false;
    scratch_counts_[pc] = 0;
  }
  if (fits_anywhere && !ok) throw SimError("dram controller: longest queue shorter than a queue");
  return ok;
}

void DramController::enqueue(std::uint64_t tag, std::uint64_t addr, std::uint64_t bytes,
                             bool write, DramCycle arrival) {
  const std::uint64_t burst = spec_.burst_bytes();
  const std::uint64_t first = addr >> burst_shift_, last = (addr + bytes - 1) >> burst_shift_;
  std::uint32_t id;
  if (free_requests_.empty()) {
    id = std::uint32_t(requests_.size());
    requests_.emplace_back();
  } else {
    id = free_requests_.back();
    free_requests_.pop_back();
  }
  requests_[id] = {tag, std::uint32_t(last - first + 1), 0};
  // The bursts can_accept() mapped, if it had to; else each is mapped here, once.
  const bool mapped = addr == mapped_addr_ && bytes == mapped_bytes_;
  for (std::uint64_t b = first; b <= last; ++b) {
    const Burst a = mapped ? mapped_[b - first] : decode(b);
    PseudoChannel& pc = pcs_[a.pc];
    const bool idle = pc.queue.empty();
    if (idle) catch_up_pc(a.pc, arrival);
    const std::uint64_t lo = std::max(addr, b * burst);
    const std::uint64_t hi = std::min(addr + bytes, (b + 1) * burst);
    const Access access{id,
                        std::uint32_t(hi - lo),
                        std::uint16_t(a.bank),
                        std::uint16_t(a.bank_group),
                        write,
                        Outcome::kHit,
                        a.row,
                        arrival};
    push_access(pc, access);
    Bank& bank = pc.banks[a.bank];
    const bool hit = bank.open_row == a.row;
    if (hit) {
      ++bank.queued_hits;
    } else {
      ++pc.non_hits;
    }
    // A busy PC is already stepped where its older accesses may issue; the newcomer adds the
    // first cycle its own next command could (constraints only grow until a step issues a
    // command, and that step's scan sees it). An idle or refreshing PC steps at the arrival.
    // earliest() only where it may lower row_floor (a row command) or the next step.
    DramCycle ready = arrival;
    const bool sooner = !idle && !pc.refreshing && pc.next_event > arrival;
    if (!hit || sooner) {
      const DramCycle e = earliest(pc, access);
      if (!hit) pc.row_floor = std::min(pc.row_floor, e);
      if (sooner) ready = std::max(arrival, e);
    }
    set_next_event(a.pc, std::min(pc.next_event, ready));
  }
}

void DramController::step(DramCycle now, std::vector<Completion>& done) {
  if (every_cycle_) check_queue_sizes();
  for (std::uint32_t i = 0; i < due_.size(); ++i) {
    if (due_[i] <= now || (every_cycle_ && due_[i] != kNever)) step_pc(i, now, done);
  }
}

DramCycle DramController::next_event() const {
  return *std::min_element(due_.begin(), due_.end());
}

void DramController::catch_up(DramCycle now) {
  for (std::uint32_t i = 0; i < pcs_.size(); ++i) {
    if (pcs_[i].queue.empty()) catch_up_pc(i, now);
  }
}

DramCycle DramController::act_ready(const PseudoChannel& pc, const Access& a) const {
  DramCycle ready = std::max({pc.banks[a.bank].next_act, pc.groups[a.bank_group].next_act,
                              pc.next_act, pc.row_bus});
  if (pc.acts_count == 4) ready = std::max(ready, pc.acts[pc.acts_head] + t_.faw);
  return ready;
}

DramCycle DramController::earliest(const PseudoChannel& pc, const Access& a) const {
  const Bank& b = pc.banks[a.bank];
  if (b.open_row == a.row) {
    return column_ready(pc, a, std::max(pc.next_rd, pc.column_bus),
                        std::max(pc.next_wr, pc.column_bus));
  }
  if (b.open_row == Bank::kClosed) return act_ready(pc, a);
  return std::max(b.next_pre, pc.row_bus);
}

DramCycle DramController::column_ready(const PseudoChannel& pc, const Access& a,
                                       DramCycle pc_rd, DramCycle pc_wr) const {
  const Bank& b = pc.banks[a.bank];
  const BankGroup& g = pc.groups[a.bank_group];
  return a.write ? std::max({b.next_wr, g.next_wr, pc_wr})
                 : std::max({b.next_rd, g.next_rd, pc_rd});
}

void DramController::step_pc(std::uint32_t index, DramCycle now, std::vector<Completion>& done) {
  PseudoChannel& pc = pcs_[index];
  if (!pc.refreshing && pc.next_refresh <= now) pc.refreshing = true;
  if (pc.refreshing) {
    set_next_event(index, step_refresh(index, now));
    return;
  }

  // FR-FCFS: the oldest ready column command, and the oldest ready row command. Once either is
  // found the PC steps again next cycle, so later accesses of that kind need no look, and the
  // scan stops when nothing more can issue this cycle. Row candidates are looked at only
  // from row_floor on.
  const bool dual = spec_.org.dual_command_bus;
  const DramCycle pc_rd = std::max(pc.next_rd, pc.column_bus);
  const DramCycle pc_wr = std::max(pc.next_wr, pc.column_bus);
  const DramCycle column_floor = std::min(pc_rd, pc_wr);  // no column command is ready earlier
  if (every_cycle_) check_counts(pc);
  const bool rows = pc.non_hits != 0 && (pc.row_floor <= now || every_cycle_);
  int column_pick = -1, row_pick = -1;
  Command row_command = Command::kActivate;
  DramCycle next = pc.next_refresh;  // hits and refresh
  DramCycle row_next = kNever;       // the row candidates looked at
  bool rows_seen = true;             // the scan looked at every row candidate
  auto consider = [now](DramCycle ready, int i, int& pick, DramCycle& bound) {
    if (ready <= now) {
      pick = i;
    } else {
      bound = std::min(bound, ready);
    }
  };
  // The scan reads nothing it writes: its bounds and arrays are loaded once.
  const Access* queue = pc.queue.begin();
  const int queued = int(pc.queue.size());
  const Bank* banks = pc.banks.data();
  for (int i = 0; i < queued; ++i) {
    const Access& a = queue[i];
    const Bank& b = banks[a.bank];
    if (b.open_row == a.row) {
      // Every hit is ready at column_floor or later, and next > now: once next is down to
      // column_floor no later hit can issue now or lower next.
      if (column_pick >= 0 || next <= column_floor) {
        if (!rows) break;  // nothing left to find
        continue;
      }
      consider(column_ready(pc, a, pc_rd, pc_wr), i, column_pick, next);
      if (!rows && (column_pick >= 0 || next <= column_floor)) break;
      if (column_pick >= 0 && (row_pick >= 0 || !dual)) {
        rows_seen = false;
        break;
      }
    } else if (rows && row_pick < 0) {
      if (b.open_row == Bank::kClosed) {
        consider(act_ready(pc, a), i, row_pick, row_next);
        row_command = Command::kActivate;
      } else {
        // A row with queued hits is not closed: no candidate until its last hit issues.
        if (b.queued_hits != 0) continue;
        consider(std::max(b.next_pre, pc.row_bus), i, row_pick, row_next);
        row_command = Command::kPrecharge;
      }
      if (row_pick >= 0 && column_pick >= 0) break;
    }
  }
  if (rows && rows_seen && row_pick < 0) pc.row_floor = row_next;
  // With one command bus a ready row command loses to the column command; it may issue
  // next cycle.
  const bool row_ready = row_pick >= 0;
  if (!dual && column_pick >= 0 && row_pick >= 0) row_pick = -1;
  // No access is looked at before it arrives: every caller enqueues at the cycle a request
  // arrives (HbmChannel: the first DRAM cycle at or after the BEGIN_REQ, which every initiator
  // sends without a delay), and steps never go back. A delayed BEGIN_REQ would break this.
  if (row_pick >= 0) {
    Access& a = pc.queue[row_pick];
    assert(a.arrival <= now);
    if (row_command == Command::kActivate) {
      activate(index, a.bank, a.row, now);
      if (a.outcome == Outcome::kHit) a.outcome = Outcome::kMiss;
    } else {
      precharge(index, a.bank, now);
      a.outcome = Outcome::kConflict;
    }
    next = now + 1;
  }
  if (column_pick >= 0) {
    const Access a = pc.queue[column_pick];
    assert(a.arrival <= now);
    erase_access(pc, std::size_t(column_pick));
    column(index, a, now, done);
    // The bank's last hit lets its conflicting accesses precharge.
    const Bank& b = pc.banks[a.bank];
    if (b.queued_hits == 0 && pc.non_hits != 0) {
      pc.row_floor = std::min(pc.row_floor, std::max(b.next_pre, pc.row_bus));
    }
    if (row_ready || !rows_seen) {
      next = now + 1;  // a row command is ready, or the scan stopped before the row candidates
    } else {
      // Every hit is ready at the new column floor or later; row candidates from row_floor
      // (a column command delays none of them).
      next = std::min(next, std::min(std::max(pc.next_rd, pc.column_bus),
                                     std::max(pc.next_wr, pc.column_bus)));
    }
  }
  // Row commands are not ready before row_floor; after an issue the next step is not before
  // the next cycle.
  if (pc.non_hits != 0) next = std::min(next, pc.row_floor);
  if (row_pick >= 0 || column_pick >= 0) next = std::max(next, now + 1);
  set_next_event(index, next);
}

void DramController::check_counts(const PseudoChannel& pc) const {
  std::uint32_t non_hits = 0;
  std::vector<std::uint32_t> hits(pc.banks.size(), 0);
  for (const Access& a : pc.queue) {
    if (pc.banks[a.bank].open_row == a.row) {
      ++hits[a.bank];
    } else {
      ++non_hits;
    }
  }
  bool ok = non_hits == pc.non_hits;
  for (std::size_t b = 0; b < hits.size(); ++b) ok = ok && hits[b] == pc.banks[b].queued_hits;
  if (!ok) throw SimError("dram controller: queued hit counts out of step with the queue");
}

void DramController::check_queue_sizes() const {
  std::vector<std::uint32_t> sizes(queue_sizes_.size(), 0);
  std::size_t longest = 0;
  for (const PseudoChannel& pc : pcs_) {
    if (pc.queue.size() >= sizes.size()) sizes.resize(pc.queue.size() + 1, 0);
    ++sizes[pc.queue.size()];
    longest = std::max(longest, pc.queue.size());
  }
  if (sizes != queue_sizes_ || longest != longest_queue_) {
    throw SimError("dram controller: queue size counts out of step with the queues");
  }
}

DramCycle DramController::step_refresh(std::uint32_t index, DramCycle now) {
  PseudoChannel& pc = pcs_[index];
  if (pc.row_bus > now) return pc.row_bus;
  DramCycle next = kNever;
  for (std::uint32_t i = 0; i < pc.banks.size(); ++i) {
    const Bank& b = pc.banks[i];
    if (b.open_row == Bank::kClosed) continue;
    if (b.next_pre <= now) {
      precharge(index, i, now);
      return now + 1;
    }
    next = std::min(next, b.next_pre);
  }
  if (next != kNever) return next;
  DramCycle ready = 0;
  for (const Bank& b : pc.banks) ready = std::max(ready, b.next_act);
  if (ready > now) return ready;
  refresh(index, now);
  return now + 1;
}

void DramController::catch_up_pc(std::uint32_t index, DramCycle now) {
  PseudoChannel& pc = pcs_[index];
  while (pc.refreshing || pc.next_refresh < now) {
    DramCycle bus = std::max(pc.row_bus, pc.next_refresh);
    for (std::uint32_t i = 0; i < pc.banks.size(); ++i) {
      Bank& b = pc.banks[i];
      if (b.open_row == Bank::kClosed) continue;
      const DramCycle p = std::max(bus, b.next_pre);
      if (p >= now) {
        pc.refreshing = true;
        return;
      }
      precharge(index, i, p);
      bus = p + 1;
    }
    DramCycle ref = bus;
    for (const Bank& b : pc.banks) ref = std::max(ref, b.next_act);
    if (ref >= now) {
      pc.refreshing = true;
      return;
    }
    refresh(index, ref);
  }
}

void DramController::activate(std::uint32_t index, std::uint32_t bank, std::uint64_t row,
                              DramCycle t) {
  PseudoChannel& pc = pcs_[index];
  Bank& b = pc.banks[bank];
  BankGroup& g = pc.groups[bank / spec_.org.banks_per_group];
  b.open_row = row;
  pc.row_floor = 0;  // the bank's accesses to other rows now need a PRE: look again
  for (const Access& a : pc.queue) {
    if (a.bank == bank && a.row == row) {
      --pc.non_hits;
      ++b.queued_hits;
    }
  }
  b.next_rd = std::max(b.next_rd, t + t_.rcd);
  b.next_wr = std::max(b.next_wr, t + t_.rcd);
  b.next_pre = std::max(b.next_pre, t + t_.ras);
  b.next_act = std::max(b.next_act, t + t_.rc);
  g.next_act = std::max(g.next_act, t + t_.rrd_l);
  pc.next_act = std::max(pc.next_act, t + t_.rrd_s);
  if (pc.acts_count < 4) {
    pc.acts[(pc.acts_head + pc.acts_count++) % 4] = t;
  } else {
    pc.acts[pc.acts_head] = t;
    pc.acts_head = (pc.acts_head + 1) % 4;
  }
  pc.row_bus = t + 1;
  if (!spec_.org.dual_command_bus) pc.column_bus = t + 1;
  ++pc.stats.activates;
  record(Command::kActivate, t, index, bank, row);
}

void DramController::precharge(std::uint32_t index, std::uint32_t bank, DramCycle t) {
  PseudoChannel& pc = pcs_[index];
  Bank& b = pc.banks[bank];
  const std::uint64_t row = b.open_row;
  b.open_row = Bank::kClosed;
  pc.row_floor = 0;  // the bank's accesses now need an ACT: look again
  pc.non_hits += b.queued_hits;
  b.queued_hits = 0;
  b.next_act = std::max(b.next_act, t + t_.rp);
  pc.row_bus = t + 1;
  if (!spec_.org.dual_command_bus) pc.column_bus = t + 1;
  record(Command::kPrecharge, t, index, bank, row);
}

void DramController::refresh(std::uint32_t index, DramCycle t) {
  PseudoChannel& pc = pcs_[index];
  for (Bank& b : pc.banks) b.next_act = std::max(b.next_act, t + t_.rfc);
  pc.next_refresh += t_.refi;
  pc.refreshing = false;
  pc.row_bus = t + 1;
  if (!spec_.org.dual_command_bus) pc.column_bus = t + 1;
  ++pc.stats.refreshes;
  pc.stats.refresh_cycles += t_.rfc;
  record(Command::kRefresh, t, index, 0, 0);
}

void DramController::column(std::uint32_t index, const Access& a, DramCycle t,
                            std::vector<Completion>& done) {
  PseudoChannel& pc = pcs_[index];
  Bank& b = pc.banks[a.bank];
  BankGroup& g = pc.groups[a.bank_group];
  --b.queued_hits;
  DramCycle data_done;
  if (a.write) {
    data_done = t + t_.cwl + burst_;
    b.next_pre = std::max(b.next_pre, data_done + t_.wr);
    g.next_wr = std::max(g.next_wr, t + t_.ccd_l);
    pc.next_wr = std::max(pc.next_wr, t + t_.ccd_s);
    g.next_rd = std::max(g.next_rd, data_done + t_.wtr_l);
    pc.next_rd = std::max(pc.next_rd, data_done + t_.wtr_s);
    ++pc.stats.writes;
    pc.stats.write_bytes += a.bytes;
  } else {
    data_done = t + t_.cl + burst_;
    b.next_pre = std::max(b.next_pre, t + t_.rtp);
    g.next_rd = std::max(g.next_rd, t + t_.ccd_l);
    pc.next_rd = std::max(pc.next_rd, t + t_.ccd_s);
    // Read data must leave the bus before write data enters it.
    const DramCycle turnaround = t_.cl + burst_ + 2;
    pc.next_wr = std::max(pc.next_wr, t + (turnaround > t_.cwl ? turnaround - t_.cwl : 0));
    ++pc.stats.reads;
    pc.stats.read_bytes += a.bytes;
  }
  pc.column_bus = t + 1;
  if (!spec_.org.dual_command_bus) pc.row_bus = t + 1;
  switch (a.outcome) {
    case Outcome::kHit:
      ++pc.stats.row_hits;
      break;
    case Outcome::kMiss:
      ++pc.stats.row_misses;
      break;
    case Outcome::kConflict:
      ++pc.stats.row_conflicts;
      break;
  }
  pc.stats.access_latency_cycles += data_done - a.arrival;
  record(a.write ? Command::kWrite : Command::kRead, t, index, a.bank, a.row);

  Request& r = requests_[a.request];
  r.done = std::max(r.done, data_done);
  if (--r.remaining == 0) {
    done.push_back({r.tag, r.done});
    free_requests_.push_back(a.request);
  }
}

void DramController::record(Command c, DramCycle t, std::uint32_t pc, std::uint32_t bank,
                            std::uint64_t row) {
  if (trace_) trace_->push_back({c, t, pc, bank, row});
}

}  // namespace tpu::dram
