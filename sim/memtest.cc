#include "sim/memtest.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <exception>
#include <memory>

#include <systemc>
#include <tlm>
#include <tlm_utils/peq_with_get.h>
#include <tlm_utils/simple_initiator_socket.h>

#include "sim/hbm_channel.h"
#include "sim/tpu_core.h"

namespace tpu {

namespace {

using Payload = tlm::tlm_generic_payload;

// splitmix64: a small, fully specified generator, so a seed gives the same traffic everywhere.
class Random {
 public:
  explicit Random(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }

 private:
  std::uint64_t state_;
};

void validate(const MemtestOptions& o, std::uint64_t capacity) {
  auto fail = [](const std::string& m) { throw SimError("memtest: " + m); };
  if (o.pattern != "stream" && o.pattern != "random" && o.pattern != "strided") {
    fail("pattern '" + o.pattern + "' (expected stream, random or strided)");
  }
  if (o.request_bytes == 0 || o.request_bytes > capacity) {
    fail("request_bytes = " + std::to_string(o.request_bytes) + " (allowed 1.." +
         std::to_string(capacity) + ", hbm.capacity_bytes)");
  }
  if (o.bytes == 0) fail("bytes = 0 (allowed >= 1)");
  if (o.outstanding == 0) fail("outstanding = 0 (allowed >= 1)");
  if (!(o.read_fraction >= 0 && o.read_fraction <= 1)) {
    fail("read_fraction = " + std::to_string(o.read_fraction) + " (allowed 0..1)");
  }
  if (o.pattern == "strided" && o.stride == 0) fail("stride = 0 (allowed >= 1)");
}

HbmChannelStats minus(const HbmChannelStats& a, const HbmChannelStats& b) {
  HbmChannelStats d;
  d.read_bytes = a.read_bytes - b.read_bytes;
  d.write_bytes = a.write_bytes - b.write_bytes;
  d.accesses = a.accesses - b.accesses;
  d.row_hits = a.row_hits - b.row_hits;
  d.row_misses = a.row_misses - b.row_misses;
  d.row_conflicts = a.row_conflicts - b.row_conflicts;
  d.activates = a.activates - b.activates;
  d.refreshes = a.refreshes - b.refreshes;
  d.refresh_ns = a.refresh_ns - b.refresh_ns;
  d.access_latency_ns = a.access_latency_ns - b.access_latency_ns;
  return d;
}

double ratio(double a, double b) { return b > 0 ? a / b : 0; }

// Sends each run's requests through its socket and measures them; stops the simulation after
// the last run.
class TrafficGenerator : public sc_core::sc_module {
 public:
  tlm_utils::simple_initiator_socket<TrafficGenerator> socket;

  TrafficGenerator(sc_core::sc_module_name name, const Config& config, HbmChannel& channel,
                   const std::vector<MemtestOptions>& runs)
      : sc_module(name),
        socket("socket"),
        config_(config),
        channel_(channel),
        runs_(runs),
        delayed_("delayed") {
    std::uint32_t slots = 1;
    for (const MemtestOptions& o : runs_) slots = std::max(slots, o.outstanding);
    payloads_.reset(new Payload[slots]);
    sent_at_.resize(slots);
    for (std::uint32_t i = slots; i-- > 0;) free_.push_back(i);
    socket.register_nb_transport_bw(this, &TrafficGenerator::nb_transport_bw);
    SC_HAS_PROCESS(TrafficGenerator);
    SC_THREAD(run);
    SC_METHOD(complete_delayed);
    sensitive << delayed_.get_event();
    dont_initialize();
  }

  std::vector<MemtestResult> results;
  std::exception_ptr error;

 private:
  void run() {
    try {
      for (const MemtestOptions& o : runs_) results.push_back(measure(o));
    } catch (...) {
      error = std::current_exception();
    }
    sc_core::sc_stop();
  }

  MemtestResult measure(const MemtestOptions& o) {
    const auto wall_start = std::chrono::steady_clock::now();
    const HbmStats before = channel_.stats();
    const sc_core::sc_time start = sc_core::sc_time_stamp();
    latencies_.clear();
    latencies_.reserve(ceil_div(o.bytes, o.request_bytes));
    bytes_ = 0;
    last_response_ = start;

    const std::uint64_t capacity = config_.hbm.capacity_bytes;
    const std::uint64_t slots = capacity / o.request_bytes;
    const std::uint64_t span = slots * o.request_bytes;
    const std::uint64_t n = ceil_div(o.bytes, o.request_bytes);
    Random random(o.seed);
    const bool stream = o.pattern == "stream", random_addresses = o.pattern == "random";
    for (std::uint64_t i = 0; i < n; ++i) {
      while (in_flight_ >= o.outstanding) wait_for_response();
      std::uint64_t addr;
      if (stream) {
        addr = (i % slots) * o.request_bytes;
      } else if (random_addresses) {
        addr = (random.next() % slots) * o.request_bytes;
      } else {
        addr = (i * o.stride) % span;
        addr -= addr % o.request_bytes;
      }
      const bool write = o.read_fraction < 1 && random.uniform() >= o.read_fraction;
      send(addr, o.request_bytes, write);
    }
    while (in_flight_ > 0) wait_for_response();
    channel_.settle_refresh();

    MemtestResult r;
    r.preset = config_.hbm.preset;
    const double peak_per_cycle = config_.hbm_peak_bytes_per_cycle();
    r.peak_gbs = std::isinf(peak_per_cycle) ? 0 : peak_per_cycle / config_.period_ns();
    r.requests = n;
    r.bytes = bytes_;
    r.simulated_ns = (last_response_ - start).to_seconds() * 1e9;
    r.achieved_gbs = ratio(double(bytes_), r.simulated_ns);
    r.efficiency = ratio(r.achieved_gbs, r.peak_gbs);
    double sum = 0;
    for (double l : latencies_) sum += l;
    r.avg_latency_ns = ratio(sum, double(latencies_.size()));
    if (!latencies_.empty()) {
      const std::size_t k =
          std::min(latencies_.size() - 1, std::size_t(std::ceil(0.99 * latencies_.size())) - 1);
      std::nth_element(latencies_.begin(), latencies_.begin() + k, latencies_.end());
      r.p99_latency_ns = latencies_[k];
    }
    const HbmStats& after = channel_.stats();
    if (const dram::DramSpec* spec = channel_.dram_spec()) {
      const double pcs = spec->org.pseudo_channels;
      for (std::uint32_t c = 0; c < after.channels.size(); ++c) {
        const HbmChannelStats d = minus(after.channels[c], before.channels[c]);
        MemtestChannelResult ch;
        ch.channel = c;
        ch.bytes = d.read_bytes + d.write_bytes;
        ch.achieved_gbs = ratio(double(ch.bytes), r.simulated_ns);
        ch.row_hit_rate = ratio(double(d.row_hits), double(d.accesses));
        ch.avg_latency_ns = ratio(d.access_latency_ns, double(d.accesses));
        ch.refresh_fraction = ratio(d.refresh_ns, pcs * r.simulated_ns);
        r.channels.push_back(ch);
      }
      const HbmChannelStats total = minus(after.total(), before.total());
      r.row_hit_rate = ratio(double(total.row_hits), double(total.accesses));
      r.refresh_fraction =
          ratio(total.refresh_ns, double(after.pseudo_channels) * r.simulated_ns);
    }
    r.wall_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
    return r;
  }

  void wait_for_response() {
    awaiting_response_ = true;
    sc_core::wait(response_event_);
  }

  void send(std::uint64_t addr, std::uint32_t bytes, bool write) {
    const std::uint32_t slot = free_.back();
    free_.pop_back();
    Payload& p = payloads_[slot];
    p.set_command(write ? tlm::TLM_WRITE_COMMAND : tlm::TLM_READ_COMMAND);
    p.set_address(addr);
    p.set_data_ptr(nullptr);
    p.set_data_length(bytes);
    p.set_streaming_width(bytes);
    p.set_byte_enable_ptr(nullptr);
    p.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
    sent_at_[slot] = sc_core::sc_time_stamp();
    ++in_flight_;
    tlm::tlm_phase phase = tlm::BEGIN_REQ;
    sc_core::sc_time delay = sc_core::SC_ZERO_TIME;
    const tlm::tlm_sync_enum status = socket->nb_transport_fw(p, phase, delay);
    if (status == tlm::TLM_COMPLETED) {
      respond(p, delay);
    } else if (status == tlm::TLM_ACCEPTED) {
      unaccepted_ = &p;
      while (unaccepted_) sc_core::wait(end_req_event_);
    }
  }

  tlm::tlm_sync_enum nb_transport_bw(Payload& p, tlm::tlm_phase& phase,
                                     sc_core::sc_time& delay) {
    if (&p == unaccepted_) {  // END_REQ, or BEGIN_RESP which implies it
      unaccepted_ = nullptr;
      if (delay == sc_core::SC_ZERO_TIME) {
        end_req_event_.notify();
      } else {
        end_req_event_.notify(delay);
      }
    }
    if (phase == tlm::BEGIN_RESP) {
      respond(p, delay);
      return tlm::TLM_COMPLETED;
    }
    return tlm::TLM_ACCEPTED;
  }

  // A response annotated with a delay completes once the delay has passed; one without, now
  // (not a delta later, so the generator may send again at once).
  void respond(Payload& p, const sc_core::sc_time& delay) {
    if (delay == sc_core::SC_ZERO_TIME) {
      complete(p);
    } else {
      delayed_.notify(p, delay);
    }
  }

  void complete_delayed() {
    while (Payload* p = delayed_.get_next_transaction()) complete(*p);
  }

  void complete(Payload& p) {
    if (p.get_response_status() != tlm::TLM_OK_RESPONSE) {
      throw SimError("memtest: " + p.get_response_string() + " at address " +
                     std::to_string(p.get_address()));
    }
    const std::uint32_t slot = std::uint32_t(&p - payloads_.get());
    const sc_core::sc_time now = sc_core::sc_time_stamp();
    latencies_.push_back((now - sent_at_[slot]).to_seconds() * 1e9);
    bytes_ += p.get_data_length();
    last_response_ = std::max(last_response_, now);
    --in_flight_;
    free_.push_back(slot);
    if (awaiting_response_) {  // a notification nobody waits for would cost as much
      awaiting_response_ = false;
      response_event_.notify();
    }
  }

  const Config& config_;
  HbmChannel& channel_;
  std::vector<MemtestOptions> runs_;
  std::unique_ptr<Payload[]> payloads_;
  std::vector<sc_core::sc_time> sent_at_;
  std::vector<std::uint32_t> free_;
  std::uint32_t in_flight_ = 0;
  Payload* unaccepted_ = nullptr;  // sent, END_REQ not yet received
  tlm_utils::peq_with_get<Payload> delayed_;  // responses that come with a delay
  sc_core::sc_event end_req_event_;
  sc_core::sc_event response_event_;
  bool awaiting_response_ = false;  // run() waits on response_event_
  std::vector<double> latencies_;
  std::uint64_t bytes_ = 0;
  sc_core::sc_time last_response_;
};

struct MemtestBench : sc_core::sc_module {
  MemtestBench(sc_core::sc_module_name name, const Config& c,
               const std::vector<MemtestOptions>& runs)
      : sc_module(name), config(c), channel("hbm", config, nullptr),
        generator("generator", config, channel, runs) {
    generator.socket.bind(channel.socket);
  }
  Config config;
  HbmChannel channel;
  TrafficGenerator generator;
};

}  // namespace

std::vector<MemtestResult> run_memtest_sweep(const Config& config,
                                             const std::vector<MemtestOptions>& runs) {
  sc_core::sc_report_handler::set_actions(sc_core::SC_INFO, sc_core::SC_DO_NOTHING);
  Config effective = config;
  for (const MemtestOptions& o : runs) {
    validate(o, config.hbm.capacity_bytes);
    effective.hbm.max_outstanding = std::max(effective.hbm.max_outstanding, o.outstanding);
  }
  std::unique_ptr<MemtestBench> bench;
  try {
    bench = std::make_unique<MemtestBench>("memtest", effective, runs);
    sc_core::sc_start();
  } catch (...) {
    throw as_sim_error(std::current_exception());
  }
  if (bench->generator.error) std::rethrow_exception(bench->generator.error);
  return bench->generator.results;
}

MemtestResult run_memtest(const Config& config, const MemtestOptions& options) {
  return run_memtest_sweep(config, {options}).front();
}

}  // namespace tpu
