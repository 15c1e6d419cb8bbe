#pragma once
// The run report: per-layer and total figures derived from a run's counters and the config, as
// JSON, an aligned terminal table and CSV. Every figure is computed here, at report time:
//   layer cycles        LayerStats::cycles: the layer's share of the run. The layers partition
//                       it: every cycle belongs to one layer, so on one core they sum to the
//                       total (on several, each core's layers to its cycles). In program order
//                       of their first instructions (a graph's branches as the compiler
//                       emitted them), a layer owns the cycles from the end of the layers before
//                       it (0 for the first) to its own last busy cycle, none if it ended
//                       earlier (a branch that finished under another); the last layer owns the
//                       cycles to the run's end (sim/stats.h, partition_layer_cycles)
//   overlap_cycles      the layer's active cycles before its share began: work issued ahead,
//                       such as weight fills on another DMA engine, that ran under the layers
//                       before it (the total row: the layers' sum)
//   active_cycles       LayerStats::active_cycles(): first instruction start to last busy cycle
//                       (the run's cycles for the total). Its counters (MACs, busy, stall and
//                       bytes) come from this activity, so a layer's per-cycle figures over its
//                       share (utilization, achieved_hbm_gbs, power) count work that ran under
//                       earlier shares when overlap_cycles > 0
//   utilization         macs / (cycles * rows * cols * core.mxus * chip.cores)
//   mxus                per MXU (core.mxus entries, MXU i of every core summed): busy_cycles
//                       (its matmul unit's), weight_load_busy_cycles, array_macs (its MATMULs'
//                       rows x K_t x N_t) and utilization = array_macs / (cycles * rows * cols
//                       * chip.cores); the table adds a column of the lowest and highest when
//                       the chip has several MXUs
//   matmul_share        MXU busy cycles / (active_cycles * core.mxus * chip.cores): the share
//                       of the layer's active time multiplying (of the run's, for the total)
//   waiting_share       MXU stall cycles, all causes / (active_cycles * core.mxus * chip.cores):
//                       the share of time the MXU had an instruction it could not start
//                       (waiting for weights, inputs, free accumulators or ports; stall_cycles
//                       says which); the rest of its time, 1 - matmul_share - waiting_share, it
//                       had none (vector work, DMA alone)
//   vector_share        vector units' busy cycles / (active_cycles * chip.cores); it overlaps the
//                       MXU's time, so the three shares need not sum to 1
//   mapping_efficiency  used_pes / (weight_tiles * rows * cols), 0 without weight tiles
//   latency_us          cycles / clock_mhz
//   stall_cycles        the MXU's stalls by cause (LayerStats::units[Unit::kMatmul].stalls)
//   total cycles        RunResult::total_cycles; total macs = sum of layer macs
//   tops                2 * macs / total latency in seconds / 1e12 (TOPS for int8, TFLOPS for bf16)
//   achieved_hbm_gbs    (HBM bytes read + written) / total latency in ns
//   roofline_cycles     max(ceil(macs / (rows * cols * core.mxus * chip.cores)), HBM bytes /
//                       peak bytes per cycle)
//   hbm_peak_gbs        Config::hbm_peak_bytes_per_cycle() * clock_mhz / 1000 (null for ideal)
//   array_macs, acc_read_bytes, acc_write_bytes, vector_elems   the units' work counters
//                       (sim/stats.h LayerStats): MACs the array performed, accumulator bytes
//                       read and written, elements through the vector unit
// Energy, per layer and in total ("energy" object of each row; the config's energy.* keys,
// configs/README.md), each component in uJ:
//   mac_uj              array_macs * energy.mac_int8_pj (or mac_bf16_pj for a bf16 program)
//   ub_uj               (ub_reads + ub_writes) rows * max(rows, cols) * element bytes
//                       * energy.ub_pj_per_byte (an access moves a whole UB row)
//   acc_uj              (acc_read_bytes + acc_write_bytes) * energy.acc_pj_per_byte
//   vector_uj           vector_elems * energy.vector_pj_per_elem
//   hbm_uj              (hbm_read_bytes + hbm_write_bytes) * energy.hbm_pj_per_byte; the total
//                       adds the DRAM activates * energy.dram_activate_pj (DRAM counts no layers)
//   static_uj           energy.static_w * latency_us (the layers' cycles partition the run, so
//                       on one core their static energies sum to the total's)
//   total_uj            the sum of the six
//   power_w             total_uj / latency_us; core_power_w the same without hbm_uj (on-chip)
//   tops_per_w          2 * macs / total energy in pJ (useful MACs, as tops)
// The CSV carries them as energy_<component>_uj, energy_uj, power_w, core_power_w, tops_per_w,
// and the time shares as matmul_share, waiting_share, vector_share.
// chip.cores > 1 adds a top-level "cores" array (and a line per core under the table), one
// entry per core that ran a stream (RunResult::cores):
//   cycles              its start to its HALT retiring
//   array_macs, utilization   its MATMULs' MACs, / (total cycles * rows * cols * core.mxus)
//   sync_wait_cycles    its units and issue waiting on semaphores other cores signal
//   interconnect_read_bytes, interconnect_write_bytes   its HBM traffic through the interconnect
// The top-level "hbm" object describes the memory over the whole run:
//   preset, peak_gbs    as above (peak_gbs null for ideal)
//   requests, read_bytes, write_bytes   requests accepted, bytes answered without error
//   achieved_gbs        (read_bytes + write_bytes) / simulated_ns
//   avg_latency_ns      request latency (arrival to response, back-pressure included), averaged
//   p99_latency_ns      HbmStats::latency_percentile_ns(0.99): 1 ns resolution, <= max
//   max_latency_ns
// DRAM presets add the controller's counters; ideal and simple have no rows, banks or refresh,
// so these keys are absent there rather than 0 (a 0 % row-hit rate would read as a bad pattern):
//   pseudo_channels     pseudo-channels modelled
//   accesses, row_hits, row_misses, row_conflicts, activates, refreshes   summed over channels
//   row_hit_rate        row_hits / accesses (one access per burst)
//   refresh_ns          tRFC time summed over the pseudo-channels
//   refresh_fraction    refresh_ns / (pseudo_channels * simulated_ns): share of bank time lost
//   channels            per channel: channel, read_bytes, write_bytes, achieved_gbs (its bytes /
//                       simulated_ns), accesses, row_hits, row_hit_rate, row_misses,
//                       row_conflicts, activates, refreshes, refresh_fraction (over its own
//                       pseudo-channels), avg_latency_ns (per burst access: arrival at the
//                       controller to its data done, so below the request latency)
#include <nlohmann/json.hpp>
#include <string>

#include "sim/config/config.h"
#include "sim/isa/program.h"
#include "sim/stats.h"
#include "tools/report/check.h"

namespace tpu {

struct RunInfo {
  std::string model;              // model name
  std::string model_source;       // path of the model file, or "<embedded default>"
  std::string fidelity = "fast";  // "fast" or "pe"
  bool timing_only = false;
  double host_seconds = 0;  // wall time of the simulation itself
  // The host process's peak resident memory when the simulation ended (compile included; in a
  // process that runs several models, the peak so far).
  double host_peak_mib = 0;
  // Wall time of compiling the model (data and reference outputs included unless timing-only);
  // 0 when a compiled program was given. Not in the reports, which describe the simulation.
  double compile_seconds = 0;
};

// Version of the report's JSON layout; bumped when a field changes meaning or disappears.
constexpr int kReportVersion = 1;

// `check` may be nullptr (timing-only runs, or not checked); the "check" object is then absent.
nlohmann::json report_json(const Config& config, const Program& program, const RunResult& run,
                           const CheckResult* check, const RunInfo& info);

// Aligned text: a header (config, array, clock, memory, fidelity), one row per layer, a total
// row and a footer with throughput, the memory figures above and the check result.
std::string report_table(const Config& config, const Program& program, const RunResult& run,
                         const CheckResult* check, const RunInfo& info);

// Header row, one row per layer and, with include_total, a last row named "total". The
// columns are the same for every run: the MXU's stall cycles are stall_<cause> for every cause
// of kStallCauses (sim/stats.h), whether it happened or not, all semaphore waits summed in
// stall_sem (the JSON report has them per semaphore).
std::string report_csv(const Config& config, const RunResult& run,
                       bool include_total = true);

// A CSV field: quoted (with doubled quotes) when it holds a comma, quote or newline, or begins
// or ends with a blank, so parse_csv (sim/config/user_input.h) reads back the same text.
std::string csv_field(const std::string& text);

// The config's roofs: peak memory bandwidth in GB/s (infinite for the ideal preset) and peak
// throughput in TOPS (2 ops per MAC on every PE of every MXU).
double peak_gbs(const Config& config);
double peak_tops(const Config& config);

// printf into a std::string, for figures in reports, plots and benchmark tables.
std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// "1.50 MiB"-style binary units for byte counts.
std::string human_bytes(double bytes);
// Three significant digits with an SI suffix: 512, 1.50k, 118M.
std::string human_count(double v);

}  // namespace tpu
