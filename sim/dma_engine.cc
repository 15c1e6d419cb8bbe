#include "sim/dma_engine.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <stdexcept>
#include <string>

#include "sim/tpu_core.h"

namespace tpu {

DmaEngine::DmaEngine(sc_core::sc_module_name name, const Config& config, const Clock& clock,
                     UnifiedBuffer& ub, MachineState* state, const Probe& probe,
                     std::uint8_t instance)
    : sc_module(name),
      hbm_socket("hbm_socket"),
      instance_(instance),
      config_(config),
      clock_(clock),
      ub_(ub),
      state_(state),
      probe_(probe),
      max_outstanding_(std::max<std::uint32_t>(config.hbm.max_outstanding, 1)),
      pool_(std::make_unique<Payload[]>(max_outstanding_)),
      staging_(std::size_t(max_outstanding_) * config.hbm.burst_bytes),
      burst_of_(max_outstanding_, 0),
      sent_at_(max_outstanding_, 0) {
  if (!state_) throw SimError("dma engine needs the machine state (sizes at least)");
  hbm_socket.register_nb_transport_bw(this, &DmaEngine::nb_transport_bw);
  for (std::size_t i = max_outstanding_; i > 0; --i) free_.push_back(i - 1);
}

std::vector<DmaEngine::Burst> DmaEngine::split(const DmaFields& d) const {
  const std::uint64_t eb = state_->elem_bytes;
  const std::uint64_t burst = config_.hbm.burst_bytes;
  const std::uint64_t len = std::uint64_t(d.elems) * eb;
  std::vector<Burst> bursts;
  for (std::uint32_t g = 0; g < d.groups; ++g) {
    for (std::uint32_t seg = 0; seg < d.segs; ++seg) {
      const std::uint64_t base =
          d.hbm_addr + std::uint64_t(g) * d.group_stride + std::uint64_t(seg) * d.seg_stride;
      const std::uint64_t first_elem = std::uint64_t(seg) * d.elems;
      for (std::uint64_t off = 0; off < len;) {
        const std::uint64_t addr = base + off;
        const std::uint64_t n = std::min(len - off, (addr / burst + 1) * burst - addr);
        const std::uint64_t last_k = (first_elem + (off + n - 1) / eb) / d.pack;
        bursts.push_back(Burst{addr, std::uint32_t(n), g, last_k, g, first_elem * eb + off});
        off += n;
      }
    }
  }
  return bursts;
}

namespace {

// Items numbered 0, 1, 2, ... in order, of which only a sliding window is kept: added at the
// back, dropped from the front. A vector with a moving front: indexing is one addition (a
// deque's costs a few divisions, and the gather indexes on every piece).
template <typename T>
class Window {
 public:
  std::uint64_t first() const { return first_; }  // number of the front item
  std::uint64_t end() const { return first_ + (items_.size() - head_); }  // one past the back
  bool empty() const { return head_ == items_.size(); }
  T& operator[](std::uint64_t n) { return items_[head_ + std::size_t(n - first_)]; }
  T& front() { return items_[head_]; }
  T& emplace_back() { return items_.emplace_back(); }  // invalidates references
  void pop_front() {
    ++head_;
    ++first_;
    if (head_ >= 64 && 2 * head_ >= items_.size()) {  // amortised: moves at most head_ items
      items_.erase(items_.begin(), items_.begin() + std::ptrdiff_t(head_));
      head_ = 0;
    }
  }

 private:
  std::vector<T> items_;
  std::size_t head_ = 0;  // index of the front item in items_
  std::uint64_t first_ = 0;
};

// The pieces of a load in gather order, coalesced into one request per burst (see the header's
// contract). Streams: it generates pieces only until the request asked for is closed (no later
// piece can join it), and it keeps only the requests and rows not yet retired.
class Gather {
 public:
  struct Piece {
    std::uint64_t addr = 0;
    std::uint32_t bytes = 0;
    std::uint64_t offset = 0;  // byte position in the group's packed stream
    std::uint64_t q0 = 0, q1 = 0;  // its rows, numbered group * rows_per_group + k
  };
  struct Request {
    std::uint64_t burst = 0;  // address / burst_bytes
    std::uint64_t lo = 0, hi = 0;  // bytes [lo, hi): the hull of its pieces
    std::uint64_t last_group = 0;
    // Its pieces: nearly every request has one, kept inline so that it allocates nothing.
    Piece first;
    std::uint32_t piece_count = 0;
    std::vector<Piece> more;
    void add(const Piece& p) {
      if (piece_count++ == 0) {
        first = p;
      } else {
        more.push_back(p);
      }
    }
    template <typename F>
    void for_each_piece(F&& f) const {
      if (piece_count > 0) f(first);
      for (const Piece& p : more) f(p);
    }
    bool handled = false;
  };
  struct Row {
    std::uint32_t pending = 0;  // pieces generated and not yet arrived
    bool generated = false;     // its last byte's piece has been generated
    bool written = false;
    std::vector<std::uint8_t> data;  // functional runs: its packed bytes
  };

  Gather(const DmaFields& d, std::uint64_t eb, std::uint64_t burst, bool has_data)
      : d_(d),
        burst_(burst),
        has_data_(has_data),
        len_(std::uint64_t(d.elems) * eb),
        stream_(std::uint64_t(d.segs) * d.elems * eb),
        row_data_(std::uint64_t(d.pack) * eb),
        rows_per_group_(dma_rows_per_group(d)) {}

  // Makes request i (numbered in order of first use) complete; false when there are fewer.
  bool has(std::size_t i) {
    while (i >= reqs_.end() || !closed(reqs_[i])) {
      if (!generate()) break;
    }
    return i < reqs_.end();
  }
  // References stay valid until the next has() or retire().
  Request& request(std::size_t i) { return reqs_[i]; }
  Row& row(std::uint64_t q) { return rows_[q]; }
  std::uint64_t ub_row(std::uint64_t q) const {
    return d_.ub_row + (q / rows_per_group_) * d_.ub_stride + q % rows_per_group_;
  }
  std::uint32_t group_of(std::uint64_t q) const { return std::uint32_t(q / rows_per_group_); }
  std::uint64_t stream_offset(std::uint64_t q) const { return (q % rows_per_group_) * row_data_; }
  std::uint64_t row_data_bytes() const { return row_data_; }
  // Drops handled requests and written rows from the front.
  void retire() {
    while (!reqs_.empty() && reqs_.front().handled) reqs_.pop_front();
    while (!rows_.empty() && rows_.front().written) rows_.pop_front();
  }

 private:
  std::uint64_t addr(std::uint64_t g, std::uint64_t s, std::uint64_t off) const {
    return d_.hbm_addr + g * d_.group_stride + s * d_.seg_stride + off;
  }
  // No later piece can start below this address (strides are unsigned).
  std::uint64_t horizon() const {
    std::uint64_t h = addr(g_, s_, off_);
    if (s_ + 1 < d_.segs) h = std::min(h, addr(g_, s_ + 1, 0));
    if (g_ + 1 < d_.groups) h = std::min(h, addr(g_ + 1, 0, 0));
    return h;
  }
  bool closed(const Request& r) const {
    return done_ || r.last_group + 2 <= g_ || (r.burst + 1) * burst_ <= horizon();
  }
  using Index = std::vector<std::pair<std::uint64_t, std::size_t>>;  // (burst, request), sorted
  static const std::size_t* find(const Index& index, std::uint64_t b) {
    const auto it = std::lower_bound(index.begin(), index.end(),
                                     std::make_pair(b, std::size_t(0)));
    return it != index.end() && it->first == b ? &it->second : nullptr;
  }
  static void insert(Index& index, std::uint64_t b, std::size_t id) {
    index.insert(std::lower_bound(index.begin(), index.end(), std::make_pair(b, std::size_t(0))),
                 {b, id});
  }
  bool generate() {
    if (done_) return false;
    Piece p;
    p.addr = addr(g_, s_, off_);
    p.bytes = std::uint32_t(std::min(len_ - off_, (p.addr / burst_ + 1) * burst_ - p.addr));
    p.offset = s_ * len_ + off_;
    p.q0 = g_ * rows_per_group_ + p.offset / row_data_;
    p.q1 = g_ * rows_per_group_ + (p.offset + p.bytes - 1) / row_data_;
    while (rows_.end() <= p.q1) {
      const std::uint64_t q = rows_.end();
      Row& r = rows_.emplace_back();
      if (has_data_) {
        const std::uint64_t k = q % rows_per_group_;
        r.data.assign(std::min(row_data_, stream_ - k * row_data_), 0);
      }
    }
    for (std::uint64_t q = p.q0; q <= p.q1; ++q) {
      Row& r = row(q);
      ++r.pending;
      const std::uint64_t k = q % rows_per_group_;
      if (p.offset + p.bytes >= std::min((k + 1) * row_data_, stream_)) r.generated = true;
    }
    // The current group's bursts so far, and the previous group's: the only ones a piece joins.
    if (g_ != cur_group_) {
      if (cur_group_ + 1 == g_) {
        prev_.swap(cur_);  // keeps both capacities: no allocation per group
      } else {
        prev_.clear();
      }
      cur_.clear();
      cur_group_ = g_;
    }
    const std::uint64_t b = p.addr / burst_;
    std::size_t id = 0;
    if (const std::size_t* in_cur = find(cur_, b)) {
      id = *in_cur;
    } else if (const std::size_t* in_prev = find(prev_, b)) {
      id = *in_prev;
      insert(cur_, b, id);
    } else {
      id = reqs_.end();
      Request& r = reqs_.emplace_back();
      r.burst = b;
      r.lo = p.addr;
      r.hi = p.addr + p.bytes;
      insert(cur_, b, id);
    }
    if (id < reqs_.first()) throw SimError("dma engine: a piece joined a retired burst request");
    Request& r = request(id);
    r.lo = std::min(r.lo, p.addr);
    r.hi = std::max(r.hi, p.addr + p.bytes);
    r.last_group = g_;
    r.add(p);

    off_ += p.bytes;
    if (off_ == len_) {
      off_ = 0;
      if (++s_ == d_.segs) {
        s_ = 0;
        if (++g_ == d_.groups) done_ = true;
      }
    }
    return true;
  }

  const DmaFields& d_;
  const std::uint64_t burst_;
  const bool has_data_;
  const std::uint64_t len_, stream_, row_data_, rows_per_group_;
  std::uint64_t g_ = 0, s_ = 0, off_ = 0;  // the next piece
  bool done_ = false;
  std::uint64_t cur_group_ = ~std::uint64_t(0);
  Index cur_, prev_;
  Window<Request> reqs_;
  Window<Row> rows_;
};

}  // namespace

DmaEngine::Result DmaEngine::transfer(const Instruction& inst, Cycle start) {
  const bool load = inst.op == Opcode::kDmaLoad;
  if (!load && inst.op != Opcode::kDmaStore) {
    throw SimError(std::string("dma engine cannot execute ") + mnemonic(inst.op));
  }
  const DmaFields& d = inst.dma;
  try {
    check_bounds(*state_, inst);
  } catch (const std::out_of_range& e) {
    throw SimError(e.what());
  }
  const bool has_data = !state_->ub.empty();
  sc_core::wait(clock_.until(start));

  Result res;
  res.done = start + 1;

  // `dma.load weights`: rows go to a new weight FIFO entry on the FIFO's own write port, one
  // row per cycle (no UB access); the entry's bytes are written as the responses arrive.
  const bool fifo = load && (inst.flags & kFlagWeights);
  std::uint8_t* entry = nullptr;
  if (fifo && has_data) {
    entry = state_->weight_fifos[d.fifo].emplace_back(state_->fifo_entry_bytes(), 0).data();
  }
  Cycle fifo_port_free = start;  // first cycle the FIFO's write port is free

  if (load) {
    Gather gather(d, state_->elem_bytes, config_.hbm.burst_bytes, has_data);
    // Requests stay alive until granted; granted ones leave from the front.
    std::deque<UbRequest> writes;
    auto retire_granted = [&] {
      while (!writes.empty() && writes.front().granted) {
        res.done = std::max(res.done, writes.front().end);
        writes.pop_front();
      }
    };
    struct Source {
      Gather& g;
      Cycle start;
      std::uint64_t& bytes;
      bool has(std::size_t i) { return g.has(i); }
      std::uint64_t addr(std::size_t i) { return g.request(i).lo; }
      std::uint32_t size(std::size_t i) {
        return std::uint32_t(g.request(i).hi - g.request(i).lo);
      }
      Cycle ready(std::size_t) const { return start; }
      const std::uint8_t* data(std::size_t) const { return nullptr; }
      void sent(std::size_t i) { bytes += size(i); }
    } source{gather, start, res.hbm_read_bytes};
    std::vector<std::uint64_t> completed;
    run_requests(source, false, start, [&](std::size_t i, Cycle r, const std::uint8_t* data) {
      retire_granted();
      Gather::Request& rq = gather.request(i);
      completed.clear();
      rq.for_each_piece([&](const Gather::Piece& p) {
        for (std::uint64_t q = p.q0; q <= p.q1; ++q) {
          Gather::Row& row = gather.row(q);
          if (data) {
            const std::uint64_t row0 = gather.stream_offset(q);
            const std::uint64_t from = std::max(p.offset, row0);
            const std::uint64_t to = std::min(p.offset + p.bytes, row0 + row.data.size());
            std::memcpy(row.data.data() + (from - row0), data + (p.addr - rq.lo) + (from - p.offset),
                        to - from);
          }
          if (--row.pending == 0 && row.generated) completed.push_back(q);
        }
      });
      rq.handled = true;
      rq.more = {};
      std::sort(completed.begin(), completed.end());
      if (fifo) {
        // One row per cycle on the FIFO's write port, from the response cycle, in row order.
        for (const std::uint64_t q : completed) {
          const Cycle w = std::max(r, fifo_port_free);
          fifo_port_free = w + 1;
          res.done = std::max(res.done, w + 1);
          Gather::Row& row = gather.row(q);
          if (entry) {
            dma_write_fifo(*state_, entry, d, gather.group_of(q), gather.stream_offset(q),
                           row.data.data(), row.data.size());
          }
          row.written = true;
        }
        gather.retire();
        return;
      }
      // Rows completed by this response: one spread write burst per run of consecutive UB rows.
      for (std::size_t a = 0; a < completed.size();) {
        std::size_t e = a + 1;
        while (e < completed.size() &&
               gather.ub_row(completed[e]) == gather.ub_row(completed[e - 1]) + 1) {
          ++e;
        }
        UbRequest& w = writes.emplace_back();
        w.client = UbClient::kDma;
        w.instance = instance_;
        w.write = true;
        w.contiguous = false;
        w.first_row = gather.ub_row(completed[a]);
        w.count = std::uint32_t(e - a);
        w.earliest = r;
        if (has_data) {
          std::vector<std::pair<std::uint64_t, std::vector<std::uint8_t>>> rows;
          for (std::size_t j = a; j < e; ++j) {
            rows.emplace_back(completed[j], std::move(gather.row(completed[j]).data));
          }
          w.on_grant = [this, &d, &gather, rows = std::move(rows)] {
            for (const auto& [q, bytes] : rows) {
              dma_write_ub(*state_, d, gather.group_of(q), gather.stream_offset(q), bytes.data(),
                           bytes.size());
            }
          };
        }
        for (std::size_t j = a; j < e; ++j) gather.row(completed[j]).written = true;
        ub_.request(w);
        res.ub_accesses += w.count;
        a = e;
      }
      gather.retire();
    });
    if (!writes.empty() && !writes.back().granted) sc_core::wait(writes.back().done);
    retire_granted();
  } else {
    // Pieces split at bursts, then back-to-back pieces within one burst merged into one write.
    std::vector<Burst> bursts;
    for (const Burst& b : split(d)) {
      if (!bursts.empty()) {
        Burst& last = bursts.back();
        const std::uint64_t burst = config_.hbm.burst_bytes;
        if (last.addr + last.bytes == b.addr && last.addr / burst == b.addr / burst) {
          last.bytes += b.bytes;
          last.group = b.group;
          last.last_in_group = b.last_in_group;
          continue;
        }
      }
      bursts.push_back(b);
    }
    for (const Burst& b : bursts) res.hbm_write_bytes += b.bytes;
    const std::uint64_t rows_per_group = dma_rows_per_group(d);
    const bool one_burst = d.groups == 1 || rows_per_group == 1 || d.ub_stride == rows_per_group;
    // The packed stream of every group (see dma_read_ub), read from the UB at the grants.
    const std::uint64_t group_bytes = std::uint64_t(d.segs) * d.elems * state_->elem_bytes;
    std::vector<std::uint8_t> stream(has_data ? d.groups * group_bytes : 0);
    std::deque<UbRequest> reads;
    for (std::uint32_t g = 0; g < (one_burst ? 1u : d.groups); ++g) {
      UbRequest& r = reads.emplace_back();
      r.client = UbClient::kDma;
      r.instance = instance_;
      r.write = false;
      r.contiguous = false;
      r.record_cycles = true;  // each write burst waits for the rows it carries
      r.first_row = d.ub_row + std::uint64_t(g) * d.ub_stride;
      r.stride = one_burst && rows_per_group == 1 ? d.ub_stride : 1;
      r.count = std::uint32_t(one_burst ? d.groups * rows_per_group : rows_per_group);
      r.earliest = start;
      if (has_data) {
        r.on_grant = [this, &d, &stream, group_bytes, g, one_burst] {
          for (std::uint32_t k = g; k < (one_burst ? d.groups : g + 1u); ++k) {
            dma_read_ub(*state_, d, k, 0, stream.data() + k * group_bytes, group_bytes);
          }
        };
      }
      ub_.request(r);
      res.ub_accesses += r.count;
    }
    sc_core::wait(reads.back().done);
    std::vector<Cycle> ready(bursts.size());
    for (std::size_t i = 0; i < bursts.size(); ++i) {
      const Burst& b = bursts[i];
      const Cycle read =
          one_burst ? reads[0].access_cycle(std::uint32_t(b.group * rows_per_group + b.last_in_group))
                    : reads[b.group].access_cycle(std::uint32_t(b.last_in_group));
      ready[i] = read + 1;
    }
    struct Source {
      const std::vector<Burst>& bursts;
      const std::vector<Cycle>& ready_;
      const std::uint8_t* stream;
      std::uint64_t group_bytes;
      bool has(std::size_t i) const { return i < bursts.size(); }
      std::uint64_t addr(std::size_t i) const { return bursts[i].addr; }
      std::uint32_t size(std::size_t i) const { return bursts[i].bytes; }
      Cycle ready(std::size_t i) const { return ready_[i]; }
      // Consecutive pieces are consecutive in the packed streams, so a merged write is too.
      const std::uint8_t* data(std::size_t i) const {
        return stream ? stream + std::uint64_t(bursts[i].first_group) * group_bytes +
                            bursts[i].offset
                      : nullptr;
      }
      void sent(std::size_t) {}
    } source{bursts, ready, has_data ? stream.data() : nullptr, group_bytes};
    Cycle last_response = start;
    run_requests(source, true, start, [&](std::size_t, Cycle r, const std::uint8_t*) {
      last_response = std::max(last_response, r);
    });
    if (!bursts.empty()) res.done = last_response + 1;
  }
  sc_core::wait(clock_.until(res.done));
  return res;
}

template <typename Source, typename OnResponse>
void DmaEngine::run_requests(Source& source, bool write, Cycle start, OnResponse on_response) {
  const bool has_data = !state_->ub.empty();
  std::size_t next = 0, in_flight = 0;
  Cycle earliest = start;  // one request per cycle
  Cycle cycle = wait_for_boundary();
  std::vector<Response> now_due;
  for (;;) {
    // Responses seen at this boundary, in request order.
    const sc_core::sc_time now = sc_core::sc_time_stamp();
    now_due.clear();
    for (auto it = responses_.begin(); it != responses_.end();) {
      if (it->at <= now) {
        now_due.push_back(*it);
        it = responses_.erase(it);
      } else {
        ++it;
      }
    }
    std::sort(now_due.begin(), now_due.end(), [&](const Response& a, const Response& b) {
      return burst_of_[a.trans - pool_.get()] < burst_of_[b.trans - pool_.get()];
    });
    for (const Response& r : now_due) {
      const std::size_t slot = std::size_t(r.trans - pool_.get());
      const std::size_t i = burst_of_[slot];
      if (!r.trans->is_response_ok()) {
        throw SimError(std::string(write ? "dma.store" : "dma.load") + ": hbm burst of " +
                       std::to_string(r.trans->get_data_length()) + " bytes at address " +
                       std::to_string(r.trans->get_address()) + " failed: " +
                       r.trans->get_response_string());
      }
      free_.push_back(slot);
      --in_flight;
      if (probe_.on()) {
        const auto kind = write ? MemoryEvent::Kind::kHbmWrite : MemoryEvent::Kind::kHbmRead;
        probe_.memory(MemoryEvent{kind, Unit::kDma, instance_, r.trans->get_address(),
                                  r.trans->get_data_length(), sent_at_[slot], cycle});
      }
      on_response(i, cycle, r.trans->get_data_ptr());
    }
    const bool more = source.has(next);
    if (!more && in_flight == 0) return;

    const bool can_send = more && in_flight < max_outstanding_ && !awaiting_end_req_;
    if (can_send && cycle >= std::max(earliest, source.ready(next))) {
      const std::uint32_t bytes = source.size(next);
      const std::size_t slot = free_.back();
      free_.pop_back();
      Payload& p = pool_[slot];
      unsigned char* data =
          has_data ? staging_.data() + slot * std::size_t(config_.hbm.burst_bytes) : nullptr;
      if (data && write) std::memcpy(data, source.data(next), bytes);
      p.set_command(write ? tlm::TLM_WRITE_COMMAND : tlm::TLM_READ_COMMAND);
      p.set_address(source.addr(next));
      p.set_data_ptr(data);
      p.set_data_length(bytes);
      p.set_streaming_width(bytes);
      p.set_byte_enable_ptr(nullptr);
      p.set_dmi_allowed(false);
      p.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
      source.sent(next);
      burst_of_[slot] = next;
      sent_at_[slot] = cycle;
      ++next;
      ++in_flight;
      earliest = cycle + 1;
      tlm::tlm_phase phase = tlm::BEGIN_REQ;
      sc_core::sc_time delay = sc_core::SC_ZERO_TIME;
      awaiting_end_req_ = &p;  // before the call: END_REQ may come back inside it
      next_send_ = earliest;
      const tlm::tlm_sync_enum status = hbm_socket->nb_transport_fw(p, phase, delay);
      if (status == tlm::TLM_COMPLETED) {
        awaiting_end_req_ = nullptr;
        responses_.push_back({&p, now + delay});
      } else if (status == tlm::TLM_UPDATED) {
        awaiting_end_req_ = nullptr;
        if (phase == tlm::BEGIN_RESP) {
          responses_.push_back({&p, now + delay});
          phase = tlm::END_RESP;
          hbm_socket->nb_transport_fw(p, phase, delay);
        }
      }
      continue;  // a request answered on the forward call is handled in this cycle
    }

    // Sleep until the next cycle something can happen: a send becomes possible, a response
    // or END_REQ arrives (wake_), or an already announced response falls due.
    Cycle wake_at = 0;
    bool timed = false;
    if (can_send) {
      wake_at = std::max(earliest, source.ready(next));
      timed = true;
    }
    for (const Response& r : responses_) {
      const Cycle c = clock_.ceil_cycle(r.at);
      if (!timed || c < wake_at) wake_at = c;
      timed = true;
    }
    // wake_ fires only while the memory owes an answer; a plain timed wait is cheaper (no
    // dynamic sensitivity to set up and tear down), and with `ideal` memory, which answers
    // on the forward call, it is the wait of every cycle a transfer sends in.
    const bool answer_owed = in_flight > responses_.size();
    if (timed && answer_owed) {
      sc_core::wait(clock_.until(wake_at), wake_);
    } else if (timed) {
      sc_core::wait(clock_.until(wake_at));
    } else {
      sc_core::wait(wake_);
    }
    cycle = wait_for_boundary();
  }
}

Cycle DmaEngine::wait_for_boundary() {
  const Cycle c = clock_.ceil_cycle(sc_core::sc_time_stamp());
  const sc_core::sc_time until = clock_.until(c);
  if (until != sc_core::SC_ZERO_TIME) sc_core::wait(until);
  return c;
}

tlm::tlm_sync_enum DmaEngine::nb_transport_bw(Payload& trans, tlm::tlm_phase& phase,
                                              sc_core::sc_time& delay) {
  if (phase == tlm::END_REQ || phase == tlm::BEGIN_RESP) {
    if (&trans == awaiting_end_req_) awaiting_end_req_ = nullptr;
    const sc_core::sc_time at = sc_core::sc_time_stamp() + delay;
    // run_requests sees it at the first cycle boundary at or after `at`: wake there, not at
    // `at` and then again at the boundary. An END_REQ alone lets the next request go, which
    // is never before next_send_: wake then, not first at the END_REQ's own boundary.
    Cycle wake = clock_.ceil_cycle(at);
    if (phase == tlm::BEGIN_RESP) {
      responses_.push_back({&trans, at});
    } else {
      wake = std::max(wake, next_send_);
    }
    wake_.notify(clock_.until(wake));
    return phase == tlm::END_REQ ? tlm::TLM_ACCEPTED : tlm::TLM_COMPLETED;
  }
  throw SimError("dma engine: unexpected phase " + std::string(phase.get_name()) +
                 " on the backward path");
}

}  // namespace tpu
