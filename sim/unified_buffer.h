#pragma once
// Unified buffer: on-chip SRAM of rows (Config::ub_row_elems() elements each), with
// `ub.read_ports` row reads and `ub.write_ports` row writes per cycle, and `ub.banks` banks
// (row r in bank r % banks) each serving one access per cycle.
//
// Timing contract. Units ask for a burst: `count` accesses of one kind to rows
// first_row, first_row + stride, ... in consecutive cycles, starting no earlier than cycle
// `earliest`. Requests made during cycle t are arbitrated together at t + 1/2 cycle in fixed
// priority (MXU input stream, weight loader, vector unit, DMA; then request order), so the
// outcome never depends on the order SystemC happens to run processes within a cycle. Each
// burst is granted the earliest start s >= earliest at which every one of its cycles has a
// free port of its kind and a free bank; later requests cannot move an earlier grant.
#include <cstdint>
#include <deque>
#include <vector>

#include <systemc>

#include "sim/config/config.h"
#include "sim/cycles.h"

namespace tpu {

enum class UbClient : std::uint8_t { kMatmul = 0, kWeightLoad = 1, kVector = 2, kDma = 3 };

struct UbRequest {
  UbClient client = UbClient::kDma;
  bool write = false;
  std::uint64_t first_row = 0;
  std::uint64_t stride = 1;
  std::uint32_t count = 1;
  Cycle earliest = 0;
  // Filled by the arbiter:
  bool granted = false;
  Cycle start = 0;         // first access cycle; accesses at start .. start + count - 1
  sc_core::sc_event done;  // notified at the arbitration instant (t + 1/2)
};

class UnifiedBuffer : public sc_core::sc_module {
 public:
  UnifiedBuffer(sc_core::sc_module_name name, const Config& config, DataType dtype);

  // Queue a burst for arbitration at the end of the current cycle; the caller keeps `req`
  // alive and waits on req.done (or polls req.granted after that instant).
  void request(UbRequest& req);

  std::uint64_t rows() const { return rows_; }
  std::uint64_t reads() const { return reads_; }
  std::uint64_t writes() const { return writes_; }

 private:
  void arbitrate();
  bool fits(const UbRequest& r, Cycle s) const;
  void reserve(const UbRequest& r, Cycle s);

  struct Slot {
    std::uint16_t reads = 0, writes = 0;
    std::vector<bool> bank_busy;
  };
  Slot& slot(Cycle c);

  const Config& config_;
  std::uint64_t rows_;
  std::vector<UbRequest*> pending_;
  sc_core::sc_event arbitrate_event_;
  std::deque<Slot> calendar_;  // calendar_[i] is cycle base_ + i
  Cycle base_ = 0;
  std::uint64_t reads_ = 0, writes_ = 0;
};

}  // namespace tpu
