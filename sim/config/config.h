#pragma once
// Architecture configuration: parsed once from JSON into these typed structs, validated across
// fields, then passed by const reference. Blocks never see JSON.
//
// Every key, its unit, default and meaning is documented in configs/README.md; the defaults
// below are the single source of those defaults (configs/default.json spells out the same
// values). The parser's table of keys, units and allowed ranges is sim/config/config_keys.h.
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace tpu {

enum class DataType { kInt8, kBf16 };

// Bytes per element of the activations and weights of a program in this type.
constexpr std::uint32_t element_bytes(DataType t) { return t == DataType::kInt8 ? 1 : 2; }
const char* to_string(DataType t);
// "int8" or "bf16"; nothing for any other name.
std::optional<DataType> parse_data_type(const std::string& name);

struct ArrayConfig {
  std::uint32_t rows = 128;  // R: PEs down a column = reduction (K) depth of one weight tile
  std::uint32_t cols = 128;  // C: PEs across a row = output columns (N) of one weight tile
};

// What one core holds. Each of its `mxus` matrix units owns its R x C array, its weight
// registers (double-buffered per mxu.double_buffer_weights), its weight-load unit and its own
// weight FIFO (mxu.weight_fifo_tiles deep); the accumulator memory (acc.capacity_bytes, rows
// addressed globally) is one, written by every MXU and read by the vector unit; every MXU
// reads its inputs through the unified buffer's read ports. Each of its `dma_engines` DMA
// engines runs its own queue of transfers, one at a time; they share the unified buffer's
// ports and the HBM behind one port of the core.
struct CoreConfig {
  std::uint32_t mxus = 1;
  std::uint32_t dma_engines = 3;
};

// The chip: `cores` cores, each a whole core as above (sequencer, UB, MXUs, vector unit, DMA),
// sharing the HBM through an on-chip interconnect. With one core the DMA reaches the HBM
// directly and the interconnect does not exist (sim/interconnect.h).
struct ChipConfig {
  std::uint32_t cores = 1;
  // Every HBM request of every core crosses the interconnect's one shared port at this rate
  // (GB/s = bytes per ns), in arrival order.
  double interconnect_gbs = 1200.0;
  // Cycles a request takes to cross to the memory, and a response back; a `signal.core`
  // reaches the other core's semaphores after this many cycles.
  std::uint32_t interconnect_latency_cycles = 20;
};
// A UB read port streams one input row per cycle, all an MXU takes while it streams; an MXU
// streams for M of the max(M, K_t) cycles of a tile and not during its R + N_t - 1 cycles of
// drain, so one port can keep a few MXUs partly busy. Beyond this many per read port each
// could stream at most a quarter of the time: the config is rejected as unfed.
constexpr std::uint32_t kMxusPerUbReadPort = 4;

struct MxuConfig {
  // Two weight registers per PE: the next tile shifts in while the current one computes.
  // Off: each tile loads, streams and drains before the next tile's load starts.
  bool double_buffer_weights = true;
  // Weight FIFO between the DMA and the matrix unit (TPU v1: 4 tiles deep): `dma.load weights`
  // fills it straight from HBM and `load.weights fifo` reads it, bypassing the unified buffer.
  // 0 = no FIFO (weights staged through the UB); otherwise at least 2 tiles.
  std::uint32_t weight_fifo_tiles = 4;
};

struct UnifiedBufferConfig {
  std::uint64_t capacity_bytes = 16ull << 20;
  std::uint32_t banks = 32;       // row r lives in bank r % banks; a bank serves one access a cycle
  std::uint32_t read_ports = 2;   // row reads per cycle
  std::uint32_t write_ports = 1;  // row writes per cycle
};

struct AccumulatorConfig {
  std::uint64_t capacity_bytes = 4ull << 20;  // rows of `array.cols` 32-bit words
};

struct VectorConfig {
  std::uint32_t lanes = 128;             // elements processed per cycle
  std::uint32_t activate_latency = 4;    // pipeline depth of requantise + activation, cycles
  std::uint32_t pool_latency = 2;        // pipeline depth of the pooling comparator tree, cycles
  // The fp32 operation classes of VOP and of ACTIVATE's activations beyond relu
  // (sim/isa/vector_cost.h): each has a latency (cycles from operands to result) and an issue
  // cost (cycles the lanes are busy per group of `lanes` elements).
  std::uint32_t alu_latency = 2, alu_cycles = 1;           // add, subtract, multiply, compare
  std::uint32_t exp_latency = 8, exp_cycles = 2;           // e^x
  std::uint32_t reciprocal_latency = 6, reciprocal_cycles = 2;  // 1 / x (division)
  std::uint32_t rsqrt_latency = 6, rsqrt_cycles = 2;       // 1 / sqrt(x)
  // Cross-lane reductions of one group to one value, folded into a running per-row result.
  std::uint32_t reduce_max_latency = 7, reduce_max_cycles = 1;
  std::uint32_t reduce_sum_latency = 7, reduce_sum_cycles = 1;
};

struct HbmConfig {
  // "ideal": no latency, unlimited bandwidth. "simple": peak bandwidth + fixed latency.
  // "hbm2", "hbm2e", "hbm3", "ddr3": a DRAM timing model of that device (sim/dram/dram_spec.h).
  std::string preset = "hbm2";
  double bandwidth_gbs = 600.0;     // peak bytes per ns (GB/s) of the simple model
  double latency_ns = 120.0;        // request to first data
  std::uint32_t burst_bytes = 256;  // DMA splits transfers into aligned bursts of this size
  std::uint32_t max_outstanding = 128;  // requests in flight before the channel back-pressures
  std::uint64_t capacity_bytes = 8ull << 30;
  // DRAM presets only.
  std::uint32_t channels = 0;       // channels modelled; 0 = the preset's full count
  std::uint32_t queue_depth = 32;   // column accesses queued per pseudo-channel
  std::string address_mapping = "ro_ba_co_bg_pc_ch";  // fields, most significant first
};

struct SequencerConfig {
  std::uint32_t issue_width = 1;   // instructions issued per cycle
  std::uint32_t queue_depth = 16;  // entries in each unit's instruction queue
  // Cycles issue pauses after each `layer` marker: a device op's fixed start cost (fitted on
  // tpu_v4, configs/README.md).
  std::uint32_t op_start_cycles = 0;
};

// Energy per event and static power, charged at report time to the counts the units record
// (tools/report/report.h). Defaults and their published sources: configs/README.md.
struct EnergyConfig {
  double mac_int8_pj = 0.3;         // one int8 MAC in the array, PE registers included
  double mac_bf16_pj = 2.0;         // one bf16 multiply with fp32 accumulate
  double ub_pj_per_byte = 12.5;     // unified buffer, per byte of a row read or written
  double acc_pj_per_byte = 2.5;     // accumulators, per byte read or written
  double vector_pj_per_elem = 3.2;  // one element through the vector unit
  double hbm_pj_per_byte = 31.2;    // off-chip memory, per byte read or written, I/O included
  double dram_activate_pj = 0;      // DRAM presets: per row activation, beyond the bytes
  double static_w = 0;              // leakage and clock of the whole core at clock_mhz
};

// What the compiler does with the config (tools/compiler/README.md, "Several cores").
struct CompilerConfig {
  // How a graph spreads over chip.cores: "auto" (by the compiler's estimate), "single" (core 0
  // alone) or "data" (the samples split over the cores).
  std::string parallelism = "auto";
  // A pipeline's micro-batches; 0: chosen by the compiler's estimate.
  std::uint32_t micro_batches = 0;
};

struct Config {
  std::string name = "default";
  std::string description;
  std::string source;  // file the config came from, or "<embedded default>"
  double clock_mhz = 940.0;
  ChipConfig chip;
  CoreConfig core;
  ArrayConfig array;
  MxuConfig mxu;
  UnifiedBufferConfig ub;
  AccumulatorConfig acc;
  VectorConfig vector;
  HbmConfig hbm;
  SequencerConfig sequencer;
  EnergyConfig energy;
  CompilerConfig compiler;

  // Derived figures.
  double period_ns() const { return 1000.0 / clock_mhz; }
  std::uint32_t chip_mxus() const { return chip.cores * core.mxus; }  // every core's MXUs
  // Elements in one unified-buffer row: one MXU input vector or one output row.
  std::uint32_t ub_row_elems() const { return array.rows > array.cols ? array.rows : array.cols; }
  std::uint64_t ub_rows(DataType t) const {
    return ub.capacity_bytes / (std::uint64_t(ub_row_elems()) * element_bytes(t));
  }
  std::uint64_t acc_rows() const { return acc.capacity_bytes / (std::uint64_t(array.cols) * 4); }
  // Peak HBM bytes per core cycle (infinite for the ideal preset; for a DRAM preset every data
  // bus of the modelled channels busy every DRAM cycle).
  double hbm_peak_bytes_per_cycle() const;
};

// Raised for any bad configuration; what() is one line naming file, key path and the problem.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Parses a config. `overrides` are "dotted.key=value" strings applied after the file
// (e.g. "array.rows=64"); the value is parsed as JSON when it can be, else as a string.
// Unknown keys, wrong types and cross-field violations raise ConfigError.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});
Config parse_config(const nlohmann::json& doc, const std::string& source,
                    const std::vector<std::string>& overrides = {});
// The built-in default (same content as configs/default.json).
Config default_config(const std::vector<std::string>& overrides = {});

// The effective, default-filled config, for every output to record.
nlohmann::json to_json(const Config& config);

}  // namespace tpu
