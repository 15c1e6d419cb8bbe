#pragma once
// Plain typed counters a simulation produces. Derived figures (utilisation, bandwidth, TOPS)
// are computed at report time from these and the config. SystemC-free.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "sim/config/config.h"
#include "sim/cycles.h"
#include "sim/isa/isa.h"

namespace tpu {

// Why a unit could not start the instruction at the head of its queue. A stall interval is
// charged to the constraint that was satisfied last (the binding one).
//   "sem:<name>"    waiting on a semaphore (named in the program, else "s<N>")
//   "ub_port"       unified-buffer ports or banks taken by another unit
//   "weight_buffer" MXU weight registers still in use by an earlier tile
//   "weights"       a MATMUL waiting for its weight tile to finish loading, or a
//                   `load.weights fifo` waiting for its FIFO entry's transfer to complete
//   "weight_fifo"   a `dma.load weights` waiting for a free weight FIFO entry
//   "queue"         the sequencer could not issue (another unit's queue full)
//   "op_start"      the sequencer paused after a layer marker (sequencer.op_start_cycles)
using StallMap = std::map<std::string, Cycle>;
// The causes above with every semaphore as "sem": the fixed stall columns of the CSV report,
// so runs that stall for different reasons still line up. A new cause must be added here.
inline constexpr const char* kStallCauses[] = {"sem",         "ub_port", "weight_buffer", "weights",
                                               "weight_fifo", "queue",   "op_start"};

struct UnitStats {
  Cycle busy_cycles = 0;
  StallMap stalls;
  std::uint64_t instructions = 0;
  UnitStats& operator+=(const UnitStats& o) {
    busy_cycles += o.busy_cycles;
    for (const auto& [cause, cycles] : o.stalls) stalls[cause] += cycles;
    instructions += o.instructions;
    return *this;
  }
};

// One matrix unit (core.mxus of them, indexed by unit instance): its weight loader, its
// matmul front end and the MACs its MATMULs performed (rows streamed x K_t x N_t). The
// per-kind UnitStats of the weight_load and matmul units are the sums over these.
struct MxuStats {
  UnitStats weight_load;
  UnitStats matmul;
  std::uint64_t array_macs = 0;
  MxuStats& operator+=(const MxuStats& o) {
    weight_load += o.weight_load;
    matmul += o.matmul;
    array_macs += o.array_macs;
    return *this;
  }
};

struct LayerStats {
  std::string name;
  std::string kind;
  std::uint64_t macs = 0;
  bool started = false;      // any instruction of the layer started (views start none)
  Cycle first_cycle = 0;     // first cycle any of the layer's instructions started
  Cycle last_cycle = 0;      // last cycle any of them was busy (inclusive)
  // Its share of its core's run and the part of its own work that ran before that share
  // opened, under earlier layers' shares (partition_layer_cycles below).
  Cycle cycles = 0;
  Cycle overlap_cycles = 0;
  bool compute_seen = false;
  Cycle compute_first = 0;   // first MXU activity: a weight row shifted in or an input row
  Cycle compute_last = 0;    // last result of the layer entering the accumulators
  std::array<UnitStats, kNumUnits> units{};  // indexed by Unit, summed over instances
  std::vector<MxuStats> mxus;                // indexed by MXU (core.mxus entries)
  std::uint64_t weight_tiles = 0;
  std::uint64_t used_pes = 0;        // sum over weight tiles of K_t * N_t / blocks
  std::uint64_t hbm_read_bytes = 0;
  std::uint64_t hbm_write_bytes = 0;
  std::uint64_t ub_reads = 0;        // row accesses
  std::uint64_t ub_writes = 0;
  // Work the units did, which the energy model charges (tools/report/report.h):
  std::uint64_t array_macs = 0;       // per MATMUL: rows streamed x K_t x N_t of its tile
  std::uint64_t acc_read_bytes = 0;   // MATMUL with accumulate (read-modify-write), ACTIVATE
  std::uint64_t acc_write_bytes = 0;  // MATMUL results, 4 bytes each
  std::uint64_t vector_elems = 0;     // elements through the vector unit (VectorUnit::count)
  // Its activity: first instruction start to last busy cycle, overlap_cycles included.
  Cycle active_cycles() const { return started ? last_cycle - first_cycle + 1 : 0; }
  Cycle compute_cycles() const {
    return compute_seen ? compute_last - compute_first + 1 : 0;
  }
  // Adds another core's share of the same layer: spans widen, counters (cycles too) add.
  LayerStats& operator+=(const LayerStats& o) {
    cycles += o.cycles;
    overlap_cycles += o.overlap_cycles;
    if (o.started) {
      first_cycle = started ? std::min(first_cycle, o.first_cycle) : o.first_cycle;
      last_cycle = started ? std::max(last_cycle, o.last_cycle) : o.last_cycle;
      started = true;
    }
    if (o.compute_seen) {
      compute_first = compute_seen ? std::min(compute_first, o.compute_first) : o.compute_first;
      compute_last = compute_seen ? std::max(compute_last, o.compute_last) : o.compute_last;
      compute_seen = true;
    }
    for (std::size_t u = 0; u < kNumUnits; ++u) units[u] += o.units[u];
    for (std::size_t m = 0; m < mxus.size() && m < o.mxus.size(); ++m) mxus[m] += o.mxus[m];
    weight_tiles += o.weight_tiles;
    used_pes += o.used_pes;
    hbm_read_bytes += o.hbm_read_bytes;
    hbm_write_bytes += o.hbm_write_bytes;
    ub_reads += o.ub_reads;
    ub_writes += o.ub_writes;
    array_macs += o.array_macs;
    acc_read_bytes += o.acc_read_bytes;
    acc_write_bytes += o.acc_write_bytes;
    vector_elems += o.vector_elems;
    return *this;
  }
};

// Divides one core's run, cycles [0, total), among the layers of its instruction stream, so
// that every cycle belongs to exactly one layer and their `cycles` sum to `total`. `order`
// lists the stream's layers in program order of their first instructions (their first LAYER
// markers). A layer owns the cycles from the end of the layers before it (the latest last
// busy cycle + 1 among them; 0 for the first) to its own end, or none when it ended earlier
// (a branch of a graph) or started no instruction; the last layer owns the cycles to `total`.
// Its overlap_cycles are those of its activity [first_cycle, last_cycle] before its share
// began: work issued ahead, such as weight fills on a second DMA engine, under the layers
// before it.
inline void partition_layer_cycles(std::vector<LayerStats>& layers,
                                   const std::vector<std::size_t>& order, Cycle total) {
  Cycle end = 0;  // where the next layer's share opens
  for (std::size_t i : order) {
    LayerStats& l = layers[i];
    const Cycle begin = end;
    if (l.started) {
      // An instruction that completes in its start cycle marks that cycle busy, which may be
      // the cycle `total` (its completion) excludes.
      const Cycle own_end = std::min(l.last_cycle + 1, total);
      end = std::max(end, own_end);
      l.overlap_cycles = std::min(begin, own_end) - std::min(begin, l.first_cycle);
    }
    l.cycles = end - begin;
  }
  if (!order.empty()) layers[order.back()].cycles += total - end;
}

// One memory channel of a DRAM preset (both pseudo-channels of an HBM channel). Column
// accesses are bursts; a request larger than a burst makes several.
struct HbmChannelStats {
  std::uint64_t read_bytes = 0;    // requested bytes served by this channel
  std::uint64_t write_bytes = 0;
  std::uint64_t accesses = 0;
  std::uint64_t row_hits = 0;       // the row was open: RD/WR only
  std::uint64_t row_misses = 0;     // the bank was closed: ACT first
  std::uint64_t row_conflicts = 0;  // another row was open: PRE and ACT first
  std::uint64_t activates = 0;
  std::uint64_t refreshes = 0;
  double refresh_ns = 0;            // tRFC per REF, summed over the pseudo-channels
  double access_latency_ns = 0;     // summed over accesses: arrival to data done
};

struct HbmStats {
  static constexpr std::size_t kLatencyBuckets = 4096;  // 1 ns each; the last collects the rest

  std::uint64_t read_bytes = 0;
  std::uint64_t write_bytes = 0;
  std::uint64_t requests = 0;
  double total_latency_ns = 0;   // summed request latency, for the average
  double max_latency_ns = 0;
  // Requests per latency bucket [i, i + 1) ns, grown on demand (for percentiles).
  std::vector<std::uint64_t> latency_histogram;
  // DRAM presets only: per channel, and the pseudo-channel count refresh_ns is summed over.
  std::vector<HbmChannelStats> channels;
  std::uint32_t pseudo_channels = 0;

  void record_latency(double ns) {
    const std::size_t bucket =
        ns <= 0 ? 0 : std::min<std::size_t>(std::size_t(ns), kLatencyBuckets - 1);
    if (latency_histogram.size() <= bucket) latency_histogram.resize(bucket + 1, 0);
    ++latency_histogram[bucket];
  }
  // Latency below which a fraction q of the requests fall, to 1 ns (upper bucket edge, at
  // most the maximum).
  double latency_percentile_ns(double q) const {
    std::uint64_t total = 0;
    for (std::uint64_t n : latency_histogram) total += n;
    if (total == 0) return 0;
    const double target = q * double(total);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < latency_histogram.size(); ++i) {
      seen += latency_histogram[i];
      if (double(seen) >= target) return std::min(double(i + 1), max_latency_ns);
    }
    return max_latency_ns;
  }
  HbmChannelStats total() const {
    HbmChannelStats t;
    for (const HbmChannelStats& c : channels) {
      t.read_bytes += c.read_bytes;
      t.write_bytes += c.write_bytes;
      t.accesses += c.accesses;
      t.row_hits += c.row_hits;
      t.row_misses += c.row_misses;
      t.row_conflicts += c.row_conflicts;
      t.activates += c.activates;
      t.refreshes += c.refreshes;
      t.refresh_ns += c.refresh_ns;
      t.access_latency_ns += c.access_latency_ns;
    }
    return t;
  }
};

// One instruction executed by a unit (SimOptions::trace): issued, started (first busy cycle,
// after any stall) and completed (first cycle after its last busy cycle).
struct InstructionTrace {
  std::size_t pc = 0;  // index into Program::instructions
  Unit unit = Unit::kSequencer;
  std::uint8_t instance = 0;  // which unit of its kind
  int layer = -1;      // -1 before the first LAYER
  Cycle issued = 0;
  Cycle start = 0;
  Cycle done = 0;
};

// One core of the chip (one entry per instruction stream of the program).
struct CoreStats {
  Cycle total_cycles = 0;                    // its start to its HALT retiring
  std::array<UnitStats, kNumUnits> units{};  // summed over instances
  std::vector<MxuStats> mxus;                // per MXU
  Cycle sync_wait_cycles = 0;  // its units and issue waiting on semaphores other cores signal
  std::uint64_t interconnect_read_bytes = 0;  // HBM bytes through the interconnect (0 on a
  std::uint64_t interconnect_write_bytes = 0;  // one-core chip, which has none)
  std::uint64_t array_macs() const {
    std::uint64_t macs = 0;
    for (const MxuStats& m : mxus) macs += m.array_macs;
    return macs;
  }
};

struct RunResult {
  Cycle total_cycles = 0;            // program start to the last core's HALT retiring
  DataType dtype = DataType::kInt8;  // the program's: sizes UB rows and prices MACs
  double simulated_ns = 0;
  std::vector<LayerStats> layers;    // indexed like Program::layers, summed over cores
  std::array<UnitStats, kNumUnits> units{};  // summed over instances and cores
  std::vector<MxuStats> mxus;                // per MXU (core.mxus entries), summed over cores
  std::vector<CoreStats> cores;              // per core that ran a stream
  HbmStats hbm;
  std::vector<std::uint8_t> hbm_final;  // final HBM contents (functional runs only)
  std::vector<InstructionTrace> trace;  // in completion order (SimOptions::trace only)
};

}  // namespace tpu
