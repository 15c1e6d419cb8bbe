#pragma once
// HBM channel: the off-chip memory behind a TLM-2.0 target socket (base protocol,
// nb_transport_fw/bw with BEGIN_REQ/END_REQ/BEGIN_RESP/END_RESP). Any memory model that speaks
// this socket can replace it. The timing model inside is chosen by `hbm.preset`:
//   ideal  - every request is answered in the cycle it arrives; unlimited bandwidth.
//   simple - one data bus at `hbm.bandwidth_gbs`, served in arrival order, plus a fixed
//            `hbm.latency_ns`: start = max(arrival, bus_free); bus_free = start + bytes / bw;
//            response at bus_free + latency. At most `hbm.max_outstanding` requests are held;
//            beyond that END_REQ is withheld (back-pressure).
// (TIMING CONTRACT: the implementation documents the exact rule here.)
#include <cstdint>
#include <vector>

#include <systemc>
#include <tlm>
#include <tlm_utils/simple_target_socket.h>

#include "sim/config/config.h"
#include "sim/stats.h"

namespace tpu {

class HbmChannel : public sc_core::sc_module {
 public:
  tlm_utils::simple_target_socket<HbmChannel> socket;

  // `storage` is the HBM contents (nullptr for timing-only runs: data is not moved).
  HbmChannel(sc_core::sc_module_name name, const Config& config,
             std::vector<std::uint8_t>* storage);

  const HbmStats& stats() const { return stats_; }

 private:
  HbmStats stats_;
  // implementation members are the implementer's
};

}  // namespace tpu
