#include "sim/hbm_channel.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "sim/tpu_core.h"

namespace tpu {

namespace {

class IdealTiming : public HbmTiming {
 public:
  sc_core::sc_time ready_at(const sc_core::sc_time& accepted, std::uint64_t, bool) override {
    return accepted;
  }
  std::uint32_t max_outstanding() const override { return 0; }
};

// One data bus at a peak bandwidth, first come first served, plus a fixed access latency.
class SimpleBusTiming : public HbmTiming {
 public:
  explicit SimpleBusTiming(const HbmConfig& c)
      : bytes_per_ns_(c.bandwidth_gbs),
        latency_(c.latency_ns, sc_core::SC_NS),
        max_outstanding_(c.max_outstanding) {}

  sc_core::sc_time ready_at(const sc_core::sc_time& accepted, std::uint64_t bytes,
                            bool) override {
    const sc_core::sc_time start = std::max(accepted, bus_free_);
    bus_free_ = start + sc_core::sc_time(double(bytes) / bytes_per_ns_, sc_core::SC_NS);
    return bus_free_ + latency_;
  }
  std::uint32_t max_outstanding() const override { return max_outstanding_; }

 private:
  double bytes_per_ns_;
  sc_core::sc_time latency_;
  std::uint32_t max_outstanding_;
  sc_core::sc_time bus_free_ = sc_core::SC_ZERO_TIME;
};

std::unique_ptr<HbmTiming> make_timing(const HbmConfig& c) {
  if (c.preset == "ideal") return std::make_unique<IdealTiming>();
  if (c.preset == "simple") return std::make_unique<SimpleBusTiming>(c);
  return nullptr;
}

// The preset's device with `hbm.channels` of its channels.
std::unique_ptr<dram::DramSpec> make_dram_spec(const HbmConfig& c) {
  const dram::DramSpec* preset = dram::find_dram_spec(c.preset);
  if (!preset) {
    throw SimError("hbm.preset '" + c.preset +
                   "' has no timing model (expected ideal, simple, hbm2, hbm2e, hbm3 or ddr3)");
  }
  auto spec = std::make_unique<dram::DramSpec>(*preset);
  if (c.channels != 0) spec->org.channels = c.channels;
  return spec;
}

}  // namespace

HbmChannel::HbmChannel(sc_core::sc_module_name name, const Config& config,
                       std::vector<std::uint8_t>* storage)
    : sc_module(name),
      socket("socket"),
      storage_(storage),
      capacity_(storage ? storage->size() : config.hbm.capacity_bytes),
      timing_(make_timing(config.hbm)) {
  if (timing_) {
    max_outstanding_ = timing_->max_outstanding();
  } else {
    max_outstanding_ = config.hbm.max_outstanding;
    dram_spec_ = make_dram_spec(config.hbm);
    try {
      mapping_ = std::make_unique<dram::AddressMapping>(*dram_spec_, config.hbm.address_mapping);
    } catch (const std::invalid_argument& e) {
      throw SimError(std::string("hbm.address_mapping: ") + e.what());
    }
    dram_ = std::make_unique<dram::DramController>(*dram_spec_, *mapping_,
                                                   config.hbm.queue_depth);
    cycle_of_time_.fill({~std::uint64_t(0), 0});  // no instant has that value
    time_of_cycle_.fill({dram::kNever, sc_core::SC_ZERO_TIME});
    stats_.channels.resize(dram_spec_->org.channels);
    stats_.pseudo_channels = dram_spec_->pseudo_channel_count();
  }
  socket.register_nb_transport_fw(this, &HbmChannel::nb_transport_fw);
  SC_HAS_PROCESS(HbmChannel);
  SC_METHOD(on_ready);
  sensitive << ready_event_;
  dont_initialize();
  if (dram_) {
    SC_METHOD(step_dram);
    sensitive << step_event_;
    dont_initialize();
  }
}

const HbmStats& HbmChannel::stats() const {
  if (!dram_) return stats_;
  const double tck = dram_spec_->timing.tck_ns;
  const std::uint32_t pcs_per_channel = dram_spec_->org.pseudo_channels;
  for (std::uint32_t ch = 0; ch < stats_.channels.size(); ++ch) {
    HbmChannelStats& c = stats_.channels[ch];
    c = HbmChannelStats{};
    for (std::uint32_t p = 0; p < pcs_per_channel; ++p) {
      const dram::PseudoChannelStats& s = dram_->stats(ch * pcs_per_channel + p);
      c.read_bytes += s.read_bytes;
      c.write_bytes += s.write_bytes;
      c.accesses += s.reads + s.writes;
      c.row_hits += s.row_hits;
      c.row_misses += s.row_misses;
      c.row_conflicts += s.row_conflicts;
      c.activates += s.activates;
      c.refreshes += s.refreshes;
      c.refresh_ns += double(s.refresh_cycles) * tck;
      c.access_latency_ns += double(s.access_latency_cycles) * tck;
    }
  }
  return stats_;
}

void HbmChannel::settle_refresh() {
  if (dram_) dram_->catch_up(dram_cycle_at_or_after(sc_core::sc_time_stamp()));
}

dram::DramCycle HbmChannel::dram_cycle_at_or_after(const sc_core::sc_time& t) const {
  std::pair<std::uint64_t, dram::DramCycle>& memo = cycle_of_time_[t.value() % kConversions];
  if (memo.first != t.value()) {
    memo = {t.value(), dram::DramCycle(std::ceil(t.to_seconds() * 1e9 /
                                                  dram_spec_->timing.tck_ns - 1e-3))};
  }
  return memo.second;
}

sc_core::sc_time HbmChannel::dram_time(dram::DramCycle c) const {
  std::pair<dram::DramCycle, sc_core::sc_time>& memo = time_of_cycle_[c % kConversions];
  if (memo.first != c) {
    memo = {c, sc_core::sc_time(double(c) * dram_spec_->timing.tck_ns, sc_core::SC_NS)};
  }
  return memo.second;
}

bool HbmChannel::can_accept(const Payload& trans) const {
  if (max_outstanding_ != 0 && held_ >= max_outstanding_) return false;
  const std::uint64_t len = trans.get_data_length();
  return !dram_ || len == 0 || dram_->can_accept(trans.get_address(), len);
}

void HbmChannel::accept_dram(Payload& trans, const sc_core::sc_time& arrival,
                             const sc_core::sc_time& now) {
  const std::uint64_t len = trans.get_data_length();
  if (len == 0) {
    hold(trans, arrival, now);
    return;
  }
  ++held_;
  std::uint32_t tag;
  if (free_tags_.empty()) {
    tag = std::uint32_t(in_dram_.size());
    in_dram_.emplace_back();
  } else {
    tag = free_tags_.back();
    free_tags_.pop_back();
  }
  in_dram_[tag] = {&trans, arrival};
  const dram::DramCycle cycle = dram_cycle_at_or_after(std::max(arrival, now));
  dram_->enqueue(tag, trans.get_address(), len, trans.is_write(), cycle);
  notify_at(step_event_, step_due_, dram_time(cycle), now);
}

void HbmChannel::notify_at(sc_core::sc_event& event, std::uint64_t& due,
                           const sc_core::sc_time& at, const sc_core::sc_time& now) {
  const sc_core::sc_time when = std::max(at, now);
  if (due <= when.value()) return;
  due = when.value();
  event.notify(when - now);
}

tlm::tlm_sync_enum HbmChannel::nb_transport_fw(Payload& trans, tlm::tlm_phase& phase,
                                               sc_core::sc_time& delay) {
  if (phase == tlm::BEGIN_REQ) {
    const sc_core::sc_time now = sc_core::sc_time_stamp();
    const sc_core::sc_time arrival = now + delay;
    if (waiting_) throw SimError("hbm channel: BEGIN_REQ before END_REQ of the previous one");
    if (!can_accept(trans)) {
      waiting_ = &trans;
      waiting_since_ = arrival;
      return tlm::TLM_ACCEPTED;
    }
    ++stats_.requests;
    if (dram_) {
      accept_dram(trans, arrival, now);
      phase = tlm::END_REQ;
      return tlm::TLM_UPDATED;
    }
    const sc_core::sc_time ready =
        timing_->ready_at(arrival, trans.get_data_length(), trans.is_write());
    if (ready <= now && !responding_ && responses_.empty()) {
      execute(trans);  // zero latency: the whole transaction ends on this call
      return tlm::TLM_COMPLETED;
    }
    hold(trans, arrival, ready);
    phase = tlm::END_REQ;
    return tlm::TLM_UPDATED;
  }
  if (phase == tlm::END_RESP) {
    if (&trans != responding_) throw SimError("hbm channel: END_RESP for no open response");
    responding_ = nullptr;
    send_responses(sc_core::sc_time_stamp());
    return tlm::TLM_COMPLETED;
  }
  throw SimError("hbm channel: unexpected phase " + std::string(phase.get_name()) +
                 " on the forward path");
}

void HbmChannel::hold(Payload& trans, const sc_core::sc_time& arrival,
                      const sc_core::sc_time& ready) {
  ++held_;
  schedule({&trans, arrival}, ready, sc_core::sc_time_stamp());
}

void HbmChannel::schedule(const Held& h, const sc_core::sc_time& ready,
                          const sc_core::sc_time& now) {
  const Ready r{std::max(ready, now), ready_seq_++, h};
  if (ready_in_order_.empty() || ready_in_order_.back().at <= r.at) {
    ready_in_order_.push_back(r);  // (at, seq) still ascending: seq grows
  } else {
    ready_out_of_order_.push_back(r);
    std::push_heap(ready_out_of_order_.begin(), ready_out_of_order_.end(), Ready::Later());
  }
  notify_at(ready_event_, ready_due_, ready, now);
}

void HbmChannel::on_ready() {
  const sc_core::sc_time now = sc_core::sc_time_stamp();
  ready_due_ = kNotDue;
  for (const Ready* r = earliest_ready(); r && r->at <= now; r = earliest_ready()) {
    const Held h = r->held;
    pop_ready(r);
    execute(*h.trans);
    --held_;
    responses_.push_back(h);
  }
  if (const Ready* r = earliest_ready()) notify_at(ready_event_, ready_due_, r->at, now);
  send_responses(now);
  accept_waiting();
}

const HbmChannel::Ready* HbmChannel::earliest_ready() const {
  if (ready_out_of_order_.empty()) {
    return ready_in_order_.empty() ? nullptr : &ready_in_order_.front();
  }
  const Ready& heap_top = ready_out_of_order_.front();
  if (ready_in_order_.empty() || Ready::Later()(ready_in_order_.front(), heap_top)) {
    return &heap_top;
  }
  return &ready_in_order_.front();
}

void HbmChannel::pop_ready(const Ready* earliest) {
  if (!ready_out_of_order_.empty() && earliest == &ready_out_of_order_.front()) {
    std::pop_heap(ready_out_of_order_.begin(), ready_out_of_order_.end(), Ready::Later());
    ready_out_of_order_.pop_back();
  } else {
    ready_in_order_.pop_front();
  }
}

void HbmChannel::accept_waiting() {
  if (!waiting_ || !can_accept(*waiting_)) return;
  Payload& trans = *waiting_;
  waiting_ = nullptr;
  const sc_core::sc_time now = sc_core::sc_time_stamp();
  ++stats_.requests;
  if (dram_) {
    accept_dram(trans, waiting_since_, now);  // timed from now; latency counted from its arrival
  } else {
    hold(trans, waiting_since_,
         timing_->ready_at(now, trans.get_data_length(), trans.is_write()));
  }
  // The request is held before END_REQ goes back, so the initiator may send its next one
  // from inside this call.
  tlm::tlm_phase phase = tlm::END_REQ;
  sc_core::sc_time delay = sc_core::SC_ZERO_TIME;
  socket->nb_transport_bw(trans, phase, delay);
}

void HbmChannel::step_dram() {
  const sc_core::sc_time now = sc_core::sc_time_stamp();
  step_due_ = kNotDue;
  completions_.clear();
  dram_->step(dram_cycle_at_or_after(now), completions_);
  for (const dram::Completion& c : completions_) {
    free_tags_.push_back(std::uint32_t(c.tag));
    schedule(in_dram_[c.tag], dram_time(c.done), now);
  }
  accept_waiting();
  const dram::DramCycle next = dram_->next_event();
  if (next != dram::kNever) notify_at(step_event_, step_due_, dram_time(next), now);
}

void HbmChannel::execute(Payload& trans) {
  const std::uint64_t addr = trans.get_address();
  const std::uint64_t len = trans.get_data_length();
  if (trans.get_byte_enable_ptr()) {
    trans.set_response_status(tlm::TLM_BYTE_ENABLE_ERROR_RESPONSE);
    return;
  }
  if (addr > capacity_ || len > capacity_ - addr) {
    trans.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
    return;
  }
  unsigned char* data = trans.get_data_ptr();
  if (storage_ && data) {
    if (trans.is_write()) {
      std::memcpy(storage_->data() + addr, data, len);
    } else {
      std::memcpy(data, storage_->data() + addr, len);
    }
  }
  (trans.is_write() ? stats_.write_bytes : stats_.read_bytes) += len;
  trans.set_response_status(tlm::TLM_OK_RESPONSE);
}

void HbmChannel::send_responses(const sc_core::sc_time& now) {
  while (!responding_ && !responses_.empty()) {
    const Held h = responses_.front();
    responses_.pop_front();
    finish_response(h, now);
    Payload* trans = h.trans;
    tlm::tlm_phase phase = tlm::BEGIN_RESP;
    sc_core::sc_time delay = sc_core::SC_ZERO_TIME;
    responding_ = trans;
    const tlm::tlm_sync_enum status = socket->nb_transport_bw(*trans, phase, delay);
    if (status == tlm::TLM_COMPLETED || (status == tlm::TLM_UPDATED && phase == tlm::END_RESP)) {
      responding_ = nullptr;
    }
  }
}

void HbmChannel::finish_response(const Held& h, const sc_core::sc_time& now) {
  static const sc_core::sc_time kNs(1, sc_core::SC_NS);  // built once: sc_time(double) is slow
  const double latency_ns = (now - h.arrival) / kNs;
  stats_.total_latency_ns += latency_ns;
  stats_.max_latency_ns = std::max(stats_.max_latency_ns, latency_ns);
  stats_.record_latency(latency_ns);
}

}  // namespace tpu
