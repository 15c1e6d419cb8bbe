#include "sim/unified_buffer.h"

#include <algorithm>
#include <array>
#include <string>

#include "sim/tpu_core.h"

namespace tpu {

namespace {

constexpr std::size_t kInitialCalendarCycles = 64;

const char* client_name(UbClient c) {
  switch (c) {
    case UbClient::kMatmul: return "matmul";
    case UbClient::kWeightLoad: return "weight load";
    case UbClient::kVector: return "vector";
    case UbClient::kDma: return "dma";
  }
  return "?";
}

}  // namespace

UnifiedBuffer::UnifiedBuffer(sc_core::sc_module_name name, const Config& config, DataType dtype,
                             const Probe& probe)
    : sc_module(name),
      config_(config),
      probe_(probe),
      clock_(config.period_ns()),
      rows_(config.ub_rows(dtype)),
      banks_(std::max<std::uint32_t>(config.ub.banks, 1)),
      bank_words_(std::uint32_t(ceil_div(banks_, 64))),
      ports_{config.ub.read_ports, config.ub.write_ports, 1} {
  SC_HAS_PROCESS(UnifiedBuffer);
  SC_METHOD(arbitrate);
  sensitive << arbitrate_event_;
  dont_initialize();
}

void UnifiedBuffer::request(UbRequest& req) {
  if (req.count > 0) {
    const std::uint64_t span = std::uint64_t(req.count - 1);
    const bool fits = req.first_row < rows_ &&
                      (span == 0 || req.stride <= (rows_ - 1 - req.first_row) / span);
    if (!fits) {
      throw SimError(std::string("unified buffer ") + (req.write ? "write" : "read") + " by " +
                     client_name(req.client) + " of " + std::to_string(req.count) +
                     " rows from row " + std::to_string(req.first_row) + " stride " +
                     std::to_string(req.stride) + " exceeds its " + std::to_string(rows_) +
                     " rows");
    }
  }
  req.granted = false;
  const sc_core::sc_time now = sc_core::sc_time_stamp();
  sc_core::sc_time at = clock_.at(clock_.now()) + clock_.period() / 2.0;
  if (at <= now) at += clock_.period();
  pending_.emplace_back(&req, at);
  arbitrate_event_.notify(at - now);  // an earlier pending notification wins
}

void UnifiedBuffer::arbitrate() {
  const sc_core::sc_time now = sc_core::sc_time_stamp();
  const Cycle cycle = clock_.now();
  advance_to(cycle);

  // The requests due now move to batch_ (the others keep their order in pending_); both
  // vectors keep their storage, so an arbitration allocates nothing.
  batch_.clear();
  auto kept = pending_.begin();
  for (const auto& p : pending_) {
    if (p.second <= now) {
      batch_.push_back(p.first);
    } else {
      *kept++ = p;
    }
  }
  pending_.erase(kept, pending_.end());
  // Stable insertion sort by client, then instance: an instant has a few requests.
  for (std::size_t i = 1; i < batch_.size(); ++i) {
    UbRequest* const r = batch_[i];
    std::size_t j = i;
    for (; j > 0 && std::pair(r->client, r->instance) <
                        std::pair(batch_[j - 1]->client, batch_[j - 1]->instance);
         --j) {
      batch_[j] = batch_[j - 1];
    }
    batch_[j] = r;
  }

  for (UbRequest* r : batch_) {
    Cycle s = std::max(r->earliest, cycle);
    if (!r->contiguous) {
      place_spread(*r, s);
      grant(*r);
      continue;
    }
    for (;;) {
      bool port_full = false;
      const std::uint32_t j = first_conflict(*r, s, port_full);
      if (j == r->count) break;
      // A full port blocks cycle s + j for any row, so no start that still uses that cycle
      // can fit; a busy bank only rules out this alignment.
      s = port_full ? s + j + 1 : s + 1;
    }
    reserve(*r, s);
    r->start = s;
    r->end = s + r->count;
    grant(*r);
  }

  if (!pending_.empty()) {
    sc_core::sc_time next = pending_.front().second;
    for (const auto& p : pending_) next = std::min(next, p.second);
    arbitrate_event_.notify(next - now);
  }
}

void UnifiedBuffer::grant(UbRequest& r) {
  r.granted = true;
  (r.write ? writes_ : reads_) += r.count;
  if (probe_.on()) {
    // UbClient and Unit name the same units.
    static constexpr Unit kUnitOf[] = {Unit::kMatmul, Unit::kWeightLoad, Unit::kVector,
                                       Unit::kDma};
    probe_.memory(MemoryEvent{r.write ? MemoryEvent::Kind::kUbWrite : MemoryEvent::Kind::kUbRead,
                              kUnitOf[std::size_t(r.client)], r.instance, r.first_row, r.count,
                              r.start, r.end});
  }
  if (r.on_grant) r.on_grant();
  r.done.notify();
}

std::uint32_t UnifiedBuffer::first_conflict(const UbRequest& r, Cycle s, bool& port_full) const {
  const Port port = port_of(r);
  const std::uint32_t ports = ports_[port];
  const std::vector<std::uint32_t>& used = port_used_[port];
  const Cycle end = base_ + used_;
  const std::uint64_t step = r.stride % banks_;
  std::uint64_t bank = r.first_row % banks_;
  for (std::uint32_t j = 0; j < r.count; ++j) {
    const Cycle c = s + j;
    if (c >= end) return r.count;  // nothing reserved from here on
    const std::size_t i = slot_index(c);
    if (used[i] >= ports) {
      port_full = true;
      return j;
    }
    if (bank_busy_[i * bank_words_ + bank / 64] >> (bank % 64) & 1) {
      port_full = false;
      return j;
    }
    bank += step;
    if (bank >= banks_) bank -= banks_;
  }
  return r.count;
}

void UnifiedBuffer::reserve(const UbRequest& r, Cycle s) {
  if (r.count == 0) return;
  extend_to(s + r.count);
  // take() for every access, with the calendar's fields in locals: the stores below are of
  // the same integer types as those members, so the compiler would reload them each access.
  const Port port = port_of(r);
  const std::uint32_t ports = ports_[port];
  std::uint32_t* const used = port_used_[port].data();
  Cycle* const until = full_until_[port].data();
  std::uint64_t* const banks = bank_busy_.data();
  const std::size_t mask = capacity_ - 1, words = bank_words_;
  const std::uint64_t nbanks = banks_, step = r.stride % nbanks;
  std::uint64_t bank = r.first_row % nbanks;
  std::size_t i = slot_index(s);
  for (std::uint32_t j = 0; j < r.count; ++j) {
    if (++used[i] == ports) until[i] = s + j + 1;
    banks[i * words + bank / 64] |= std::uint64_t(1) << (bank % 64);
    i = (i + 1) & mask;
    bank += step;
    if (bank >= nbanks) bank -= nbanks;
  }
}

void UnifiedBuffer::take(Port port, Cycle c, std::uint64_t bank) {
  const std::size_t i = slot_index(c);
  if (++port_used_[port][i] == ports_[port]) full_until_[port][i] = c + 1;
  bank_busy_[i * bank_words_ + bank / 64] |= std::uint64_t(1) << (bank % 64);
}

Cycle UnifiedBuffer::first_port_free(Port port, Cycle c) {
  const std::uint32_t ports = ports_[port];
  const std::vector<std::uint32_t>& used = port_used_[port];
  std::vector<Cycle>& until = full_until_[port];
  const Cycle end = base_ + used_;
  Cycle free = c;
  while (free < end && used[slot_index(free)] >= ports) free = until[slot_index(free)];
  while (c < free) {  // path compression: every full cycle on the way points at `free`
    const std::size_t i = slot_index(c);
    c = until[i];
    until[i] = free;
  }
  return free;
}

void UnifiedBuffer::place_spread(UbRequest& r, Cycle from) {
  const std::uint64_t step = r.stride % banks_;
  std::uint64_t bank = r.first_row % banks_;
  if (r.record_cycles) r.cycles.resize(r.count);
  const Port port = port_of(r);
  Cycle c = from;
  r.start = from;
  for (std::uint32_t j = 0; j < r.count; ++j, ++c) {
    for (;; ++c) {
      c = first_port_free(port, c);
      extend_to(c + 1);  // may reallocate the calendar: index it only after this
      if (!(bank_busy_[slot_index(c) * bank_words_ + bank / 64] >> (bank % 64) & 1)) {
        take(port, c, bank);
        break;
      }
    }
    if (j == 0) r.start = c;
    if (r.record_cycles) r.cycles[j] = c;
    bank += step;
    if (bank >= banks_) bank -= banks_;
  }
  r.end = c;  // one past the last access (from, when there is none)
}

void UnifiedBuffer::advance_to(Cycle c) {
  if (c <= base_) return;
  const std::size_t drop = std::size_t(std::min<Cycle>(c - base_, used_));
  // Slots past the used range are kept zero so extend_to can hand them out as they are. The
  // dropped slots are at most two runs of the ring: clear each run at once.
  for (std::size_t k = 0; k < drop;) {
    const std::size_t i = (head_ + k) & (capacity_ - 1);
    const std::size_t run = std::min(drop - k, capacity_ - i);
    for (std::vector<std::uint32_t>& used : port_used_) {
      std::fill_n(used.begin() + std::ptrdiff_t(i), run, 0);
    }
    std::fill_n(bank_busy_.begin() + std::ptrdiff_t(i * bank_words_), run * bank_words_, 0);
    k += run;
  }
  if (drop > 0) head_ = (head_ + drop) & (capacity_ - 1);
  used_ -= drop;
  base_ = c;
}

void UnifiedBuffer::extend_to(Cycle end) {
  if (end <= base_ + used_) return;
  const std::size_t needed = std::size_t(end - base_);
  if (needed > capacity_) {
    std::size_t capacity = std::max(capacity_, kInitialCalendarCycles);
    while (capacity < needed) capacity *= 2;
    std::array<std::vector<std::uint32_t>, kPorts> used;
    std::array<std::vector<Cycle>, kPorts> until;
    for (std::size_t p = 0; p < kPorts; ++p) {
      used[p].assign(capacity, 0);
      until[p].assign(capacity, 0);
    }
    std::vector<std::uint64_t> banks(capacity * bank_words_, 0);
    for (std::size_t k = 0; k < used_; ++k) {
      const std::size_t i = (head_ + k) & (capacity_ - 1);
      for (std::size_t p = 0; p < kPorts; ++p) {
        used[p][k] = port_used_[p][i];
        until[p][k] = full_until_[p][i];
      }
      std::copy_n(bank_busy_.begin() + std::ptrdiff_t(i * bank_words_), bank_words_,
                  banks.begin() + std::ptrdiff_t(k * bank_words_));
    }
    port_used_ = std::move(used);
    full_until_ = std::move(until);
    bank_busy_ = std::move(banks);
    capacity_ = capacity;
    head_ = 0;
  }
  used_ = needed;
}

}  // namespace tpu
