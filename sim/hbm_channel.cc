#include "sim/hbm_channel.h"

#include <algorithm>
#include <cstring>
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
  throw SimError("hbm.preset '" + c.preset + "' has no timing model (expected ideal or simple)");
}

}  // namespace

HbmChannel::HbmChannel(sc_core::sc_module_name name, const Config& config,
                       std::vector<std::uint8_t>* storage)
    : sc_module(name),
      socket("socket"),
      storage_(storage),
      capacity_(storage ? storage->size() : config.hbm.capacity_bytes),
      timing_(make_timing(config.hbm)),
      ready_queue_("ready_queue") {
  socket.register_nb_transport_fw(this, &HbmChannel::nb_transport_fw);
  SC_HAS_PROCESS(HbmChannel);
  SC_METHOD(on_ready);
  sensitive << ready_queue_.get_event();
  dont_initialize();
}

tlm::tlm_sync_enum HbmChannel::nb_transport_fw(Payload& trans, tlm::tlm_phase& phase,
                                               sc_core::sc_time& delay) {
  if (phase == tlm::BEGIN_REQ) {
    const sc_core::sc_time now = sc_core::sc_time_stamp();
    const sc_core::sc_time arrival = now + delay;
    const std::uint32_t limit = timing_->max_outstanding();
    if (limit != 0 && held_ >= limit) {
      if (waiting_) throw SimError("hbm channel: BEGIN_REQ before END_REQ of the previous one");
      waiting_ = &trans;
      waiting_since_ = arrival;
      return tlm::TLM_ACCEPTED;
    }
    ++stats_.requests;
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
    send_responses();
    return tlm::TLM_COMPLETED;
  }
  throw SimError("hbm channel: unexpected phase " + std::string(phase.get_name()) +
                 " on the forward path");
}

void HbmChannel::hold(Payload& trans, const sc_core::sc_time& arrival,
                      const sc_core::sc_time& ready) {
  const sc_core::sc_time now = sc_core::sc_time_stamp();
  ++held_;
  arrival_[&trans] = arrival;
  ready_queue_.notify(trans, ready > now ? ready - now : sc_core::SC_ZERO_TIME);
}

void HbmChannel::on_ready() {
  while (Payload* trans = ready_queue_.get_next_transaction()) {
    execute(*trans);
    --held_;
    responses_.push_back(trans);
  }
  send_responses();
  const std::uint32_t limit = timing_->max_outstanding();
  if (waiting_ && (limit == 0 || held_ < limit)) {
    Payload& trans = *waiting_;
    waiting_ = nullptr;
    const sc_core::sc_time now = sc_core::sc_time_stamp();
    ++stats_.requests;
    hold(trans, waiting_since_, timing_->ready_at(now, trans.get_data_length(), trans.is_write()));
    // The request is held before END_REQ goes back, so the initiator may send its next one
    // from inside this call.
    tlm::tlm_phase phase = tlm::END_REQ;
    sc_core::sc_time delay = sc_core::SC_ZERO_TIME;
    socket->nb_transport_bw(trans, phase, delay);
  }
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

void HbmChannel::send_responses() {
  while (!responding_ && !responses_.empty()) {
    Payload* trans = responses_.front();
    responses_.pop_front();
    finish_response(*trans);
    tlm::tlm_phase phase = tlm::BEGIN_RESP;
    sc_core::sc_time delay = sc_core::SC_ZERO_TIME;
    responding_ = trans;
    const tlm::tlm_sync_enum status = socket->nb_transport_bw(*trans, phase, delay);
    if (status == tlm::TLM_COMPLETED || (status == tlm::TLM_UPDATED && phase == tlm::END_RESP)) {
      responding_ = nullptr;
    }
  }
}

void HbmChannel::finish_response(Payload& trans) {
  const auto it = arrival_.find(&trans);
  const double latency_ns =
      (sc_core::sc_time_stamp() - it->second) / sc_core::sc_time(1, sc_core::SC_NS);
  arrival_.erase(it);
  stats_.total_latency_ns += latency_ns;
  stats_.max_latency_ns = std::max(stats_.max_latency_ns, latency_ns);
}

}  // namespace tpu
