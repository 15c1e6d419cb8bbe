#include "sim/config/config.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <type_traits>
#include <variant>

#include <nlohmann/json.hpp>

#include "embedded_defaults.h"
#include "sim/config/config_keys.h"
#include "sim/config/user_input.h"
#include "sim/dram/address_mapping.h"
#include "sim/dram/dram_spec.h"

namespace tpu {
namespace {

using nlohmann::json;

// Every numeric key is bounded: generous for any real design, small enough that simulated time
// (64-bit picoseconds) cannot overflow and host memory stays within a workstation's.
constexpr double kMaxArrayDim = 4096;
constexpr double kMaxBurstBytes = 1 << 20;
constexpr double kMinClockMhz = 1;  // 2^64 ps then still hold 1.8e13 cycles
constexpr double kMaxClockMhz = 100000;
constexpr double kMaxOnChipBytes = 1 << 30;  // functional runs hold the UB and accumulators whole
constexpr double kMaxHbmBytes = double(1ull << 40);
constexpr double kMaxPorts = 1024;
constexpr double kMaxDepth = 65536;  // banks, lanes, queue entries, requests in flight
constexpr double kMaxPipelineCycles = 65535;
constexpr double kMaxOpStartCycles = 1e7;  // 10 ms at 1 GHz, far above any launch cost
constexpr double kMinBandwidthGbs = 0.001;  // a 1 MiB burst then takes 1 s
constexpr double kMaxBandwidthGbs = 1e6;
constexpr double kMaxLatencyNs = 1e6;
constexpr double kMaxChannels = 1024;
// Energy figures: 0 switches a component off; the bounds are far above any real device (a
// DRAM activation is a few nJ, a chip a few hundred watts) and keep every sum finite.
constexpr double kMaxEventPj = 1e6;
constexpr double kMaxStaticW = 1e6;

std::vector<ConfigKey> make_keys() {
  using F = ConfigField;
  std::vector<ConfigKey> k;
  k.push_back({"name", "", "Design-point name, printed in every report.",
               [](Config& c) -> F { return &c.name; }});
  k.push_back({"description", "", "Free text: what the design point approximates.",
               [](Config& c) -> F { return &c.description; }});
  k.push_back({"clock_mhz", "MHz", "Core clock; every cycle count converts to time with it. At least 1 MHz, so simulated "
               "time (64-bit picoseconds) holds 1.8e13 cycles.",
               [](Config& c) -> F { return &c.clock_mhz; }, kMinClockMhz, kMaxClockMhz});
  k.push_back({"chip.cores", "cores",
               "Cores on the chip, each with its own sequencer, unified buffer, MXUs, vector "
               "unit and DMA; they share the HBM through the interconnect.",
               [](Config& c) -> F { return &c.chip.cores; }, 1, 16});
  k.push_back({"chip.interconnect_gbs", "GB/s",
               "Bandwidth of the on-chip interconnect's shared port to the HBM, crossed by every "
               "HBM request of every core when chip.cores > 1.",
               [](Config& c) -> F { return &c.chip.interconnect_gbs; }, kMinBandwidthGbs,
               kMaxBandwidthGbs});
  k.push_back({"chip.interconnect_latency_cycles", "cycles",
               "Cycles to cross the interconnect each way (request to the HBM, response back) "
               "and for a signal.core to reach another core, when chip.cores > 1; at least 1, "
               "so requests arriving together are ordered by core.",
               [](Config& c) -> F { return &c.chip.interconnect_latency_cycles; }, 1,
               kMaxPipelineCycles});
  k.push_back({"core.mxus", "MXUs",
               "Matrix units in the core, each with its own array, weight registers, "
               "weight-load unit and weight FIFO; they share the accumulator memory and the "
               "unified buffer's read ports (at most 4 per ub.read_ports).",
               [](Config& c) -> F { return &c.core.mxus; }, 1, 16});
  k.push_back({"core.dma_engines", "engines",
               "DMA engines in the core, each running its own queue of transfers one at a "
               "time (dma.load/dma.store unit=i); they share the unified buffer's ports and "
               "the core's HBM port.",
               [](Config& c) -> F { return &c.core.dma_engines; }, 1, 16});
  k.push_back({"array.rows", "PEs",
               "R: PEs down a column, the reduction (K) depth of one weight tile.",
               [](Config& c) -> F { return &c.array.rows; }, 1, kMaxArrayDim});
  k.push_back({"array.cols", "PEs",
               "C: PEs across a row, the output columns (N) of one weight tile.",
               [](Config& c) -> F { return &c.array.cols; }, 1, kMaxArrayDim});
  k.push_back({"mxu.double_buffer_weights", "",
               "Two weight registers per PE: the next tile shifts in while the current one "
               "computes. Off: load, stream and drain one tile before the next load starts.",
               [](Config& c) -> F { return &c.mxu.double_buffer_weights; }});
  k.push_back({"mxu.weight_fifo_tiles", "tiles",
               "Weight FIFO depth: DMA loads fill it from HBM and LOAD_WEIGHTS reads it, "
               "bypassing the unified buffer. 0 = no FIFO (weights staged in the UB), else >= 2.",
               [](Config& c) -> F { return &c.mxu.weight_fifo_tiles; }, 0, 65535});
  k.push_back({"ub.capacity_bytes", "bytes",
               "Unified buffer size; it must hold at least one bf16 row of "
               "max(array.rows, array.cols) elements. At most 1 GiB: functional runs hold it whole.",
               [](Config& c) -> F { return &c.ub.capacity_bytes; }, 1, kMaxOnChipBytes});
  k.push_back({"ub.banks", "", "Banks; row r lives in bank r % banks, one access per bank a cycle.",
               [](Config& c) -> F { return &c.ub.banks; }, 1, kMaxDepth});
  k.push_back({"ub.read_ports", "rows/cycle", "Row reads the unified buffer serves per cycle.",
               [](Config& c) -> F { return &c.ub.read_ports; }, 1, kMaxPorts});
  k.push_back({"ub.write_ports", "rows/cycle", "DMA row writes the unified buffer serves per cycle (the vector unit has its own port).",
               [](Config& c) -> F { return &c.ub.write_ports; }, 1, kMaxPorts});
  k.push_back({"acc.capacity_bytes", "bytes",
               "Accumulator storage: rows of array.cols 32-bit words; at least one row, at most 1 GiB.",
               [](Config& c) -> F { return &c.acc.capacity_bytes; }, 1, kMaxOnChipBytes});
  k.push_back({"vector.lanes", "elements/cycle", "Elements the vector unit processes per cycle.",
               [](Config& c) -> F { return &c.vector.lanes; }, 1, kMaxDepth});
  k.push_back({"vector.activate_latency", "cycles", "Pipeline depth of requantise + activation.",
               [](Config& c) -> F { return &c.vector.activate_latency; }, 0,
               kMaxPipelineCycles});
  k.push_back({"vector.pool_latency", "cycles", "Pipeline depth of the pooling comparator tree.",
               [](Config& c) -> F { return &c.vector.pool_latency; }, 0,
               kMaxPipelineCycles});
  k.push_back({"vector.alu_latency", "cycles",
               "fp32 add, multiply or compare: cycles from operands to result.",
               [](Config& c) -> F { return &c.vector.alu_latency; }, 0, kMaxPipelineCycles});
  k.push_back({"vector.alu_cycles", "cycles/group",
               "fp32 add, multiply or compare: lane cycles per vector.lanes elements.",
               [](Config& c) -> F { return &c.vector.alu_cycles; }, 1, kMaxPipelineCycles});
  k.push_back({"vector.exp_latency", "cycles",
               "fp32 exponential e^x: cycles from operands to result.",
               [](Config& c) -> F { return &c.vector.exp_latency; }, 0, kMaxPipelineCycles});
  k.push_back({"vector.exp_cycles", "cycles/group",
               "fp32 exponential e^x: lane cycles per vector.lanes elements.",
               [](Config& c) -> F { return &c.vector.exp_cycles; }, 1, kMaxPipelineCycles});
  k.push_back({"vector.reciprocal_latency", "cycles",
               "fp32 reciprocal (division): cycles from operands to result.",
               [](Config& c) -> F { return &c.vector.reciprocal_latency; }, 0, kMaxPipelineCycles});
  k.push_back({"vector.reciprocal_cycles", "cycles/group",
               "fp32 reciprocal (division): lane cycles per vector.lanes elements.",
               [](Config& c) -> F { return &c.vector.reciprocal_cycles; }, 1, kMaxPipelineCycles});
  k.push_back({"vector.rsqrt_latency", "cycles",
               "fp32 reciprocal square root: cycles from operands to result.",
               [](Config& c) -> F { return &c.vector.rsqrt_latency; }, 0, kMaxPipelineCycles});
  k.push_back({"vector.rsqrt_cycles", "cycles/group",
               "fp32 reciprocal square root: lane cycles per vector.lanes elements.",
               [](Config& c) -> F { return &c.vector.rsqrt_cycles; }, 1, kMaxPipelineCycles});
  k.push_back({"vector.reduce_max_latency", "cycles",
               "Cross-lane maximum of a group: cycles from operands to result.",
               [](Config& c) -> F { return &c.vector.reduce_max_latency; }, 0, kMaxPipelineCycles});
  k.push_back({"vector.reduce_max_cycles", "cycles/group",
               "Cross-lane maximum of a group: lane cycles per vector.lanes elements.",
               [](Config& c) -> F { return &c.vector.reduce_max_cycles; }, 1, kMaxPipelineCycles});
  k.push_back({"vector.reduce_sum_latency", "cycles",
               "Cross-lane sum of a group: cycles from operands to result.",
               [](Config& c) -> F { return &c.vector.reduce_sum_latency; }, 0, kMaxPipelineCycles});
  k.push_back({"vector.reduce_sum_cycles", "cycles/group",
               "Cross-lane sum of a group: lane cycles per vector.lanes elements.",
               [](Config& c) -> F { return &c.vector.reduce_sum_cycles; }, 1, kMaxPipelineCycles});
  k.push_back({"hbm.preset", "",
               "Memory timing model: ideal (no latency, unlimited bandwidth), simple "
               "(one bus at the peak bandwidth plus a fixed latency), or a DRAM device: "
               "hbm2, hbm2e, hbm3 (one stack), ddr3 (two DDR3-2133 channels).",
               [](Config& c) -> F { return &c.hbm.preset; }});
  k.back().choices = {"ideal", "simple", "hbm2", "hbm2e", "hbm3", "ddr3"};
  k.push_back({"hbm.bandwidth_gbs", "GB/s", "Peak bandwidth of the simple model (bytes per ns); at least 1 MB/s, so a transfer's "
               "time cannot overflow simulated time.",
               [](Config& c) -> F { return &c.hbm.bandwidth_gbs; }, kMinBandwidthGbs,
               kMaxBandwidthGbs});
  k.push_back({"hbm.latency_ns", "ns",
               "Simple model: fixed access latency added after a burst's transfer time.",
               [](Config& c) -> F { return &c.hbm.latency_ns; }, 0, kMaxLatencyNs});
  k.push_back({"hbm.burst_bytes", "bytes",
               "The DMA splits transfers into aligned bursts of this size, one request each.",
               [](Config& c) -> F { return &c.hbm.burst_bytes; }, 1, kMaxBurstBytes});
  k.back().power_of_two = true;
  k.push_back({"hbm.max_outstanding", "requests",
               "Requests in flight before the channel back-pressures the DMA.",
               [](Config& c) -> F { return &c.hbm.max_outstanding; }, 1, kMaxDepth});
  k.push_back({"hbm.capacity_bytes", "bytes",
               "Addressable HBM; a program's footprint must fit. At least one burst.",
               [](Config& c) -> F { return &c.hbm.capacity_bytes; }, 1, kMaxHbmBytes});
  k.push_back({"hbm.channels", "channels",
               "DRAM presets: channels modelled (0 = the preset's full count).",
               [](Config& c) -> F { return &c.hbm.channels; }, 0, kMaxChannels});
  k.push_back({"hbm.queue_depth", "accesses",
               "DRAM presets: column accesses queued per pseudo-channel before back-pressure.",
               [](Config& c) -> F { return &c.hbm.queue_depth; }, 1, kMaxDepth});
  k.push_back({"hbm.address_mapping", "",
               "DRAM presets: address bits to row, bank, bank group, pseudo-channel, channel "
               "and column, most significant first (see configs/README.md).",
               [](Config& c) -> F { return &c.hbm.address_mapping; }});
  k.push_back({"sequencer.issue_width", "instructions/cycle",
               "Instructions the sequencer issues per cycle, in program order.",
               [](Config& c) -> F { return &c.sequencer.issue_width; }, 1, kMaxPorts});
  k.push_back({"sequencer.queue_depth", "instructions", "Entries in each unit's instruction queue.",
               [](Config& c) -> F { return &c.sequencer.queue_depth; }, 1, kMaxDepth});
  k.push_back({"sequencer.op_start_cycles", "cycles",
               "Cycles issue pauses after each layer marker before the layer's first "
               "instruction: a device op's fixed start cost (0 = none).",
               [](Config& c) -> F { return &c.sequencer.op_start_cycles; }, 0, kMaxOpStartCycles});
  k.push_back({"energy.mac_int8_pj", "pJ",
               "One int8 multiply-accumulate in the array, the PE's register traffic included.",
               [](Config& c) -> F { return &c.energy.mac_int8_pj; }, 0, kMaxEventPj});
  k.push_back({"energy.mac_bf16_pj", "pJ",
               "One bf16 multiply with fp32 accumulate in the array, the PE's register traffic "
               "included.",
               [](Config& c) -> F { return &c.energy.mac_bf16_pj; }, 0, kMaxEventPj});
  k.push_back({"energy.ub_pj_per_byte", "pJ/byte",
               "Unified buffer: per byte of a row read or written (whole rows).",
               [](Config& c) -> F { return &c.energy.ub_pj_per_byte; }, 0, kMaxEventPj});
  k.push_back({"energy.acc_pj_per_byte", "pJ/byte", "Accumulators: per byte read or written.",
               [](Config& c) -> F { return &c.energy.acc_pj_per_byte; }, 0, kMaxEventPj});
  k.push_back({"energy.vector_pj_per_elem", "pJ/element",
               "One element through the vector unit (activation, pooling or add).",
               [](Config& c) -> F { return &c.energy.vector_pj_per_elem; }, 0, kMaxEventPj});
  k.push_back({"energy.hbm_pj_per_byte", "pJ/byte",
               "Off-chip memory: per byte read or written, I/O included.",
               [](Config& c) -> F { return &c.energy.hbm_pj_per_byte; }, 0, kMaxEventPj});
  k.push_back({"energy.dram_activate_pj", "pJ",
               "DRAM presets: per row activation, on top of the per-byte energy.",
               [](Config& c) -> F { return &c.energy.dram_activate_pj; }, 0, kMaxEventPj});
  k.push_back({"energy.static_w", "W",
               "Static power of the whole core at clock_mhz (leakage and clock), charged for "
               "the run's whole latency.",
               [](Config& c) -> F { return &c.energy.static_w; }, 0, kMaxStaticW});
  k.push_back({"compiler.parallelism", "",
               "How the compiler spreads a graph over chip.cores: auto (by its estimate), "
               "single (core 0 alone), data (the samples split over the cores), model_n "
               "(every GEMM node's output columns split over the cores), model_k (every "
               "dense or matmul node's K split over the cores, partial sums reduced) or "
               "pipeline (the nodes cut into one stage per core, micro-batches streaming "
               "through them).",
               [](Config& c) -> F { return &c.compiler.parallelism; }});
  k.back().choices = {"auto", "single", "data", "model_n", "model_k", "pipeline"};
  k.push_back({"compiler.micro_batches", "micro-batches",
               "With compiler.parallelism = pipeline: how many micro-batches the samples are cut "
               "into (at most the fewest samples of a graph input); 0 = the compiler's choice "
               "by its estimate (1 to 4 x chip.cores).",
               [](Config& c) -> F { return &c.compiler.micro_batches; }, 0, 4096});
  return k;
}

std::string format_number(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.15g", v);
  return buf;
}

const ConfigKey* find_key(const std::string& path) {
  for (const ConfigKey& key : config_keys()) {
    if (path == key.path) return &key;
  }
  return nullptr;
}

bool is_group(const std::string& path) {
  if (path.empty()) return true;
  const std::string prefix = path + ".";
  for (const ConfigKey& key : config_keys()) {
    if (std::string(key.path).compare(0, prefix.size(), prefix) == 0) return true;
  }
  return false;
}

// Every valid key and group, for "did you mean".
std::vector<std::string> valid_paths() {
  std::vector<std::string> paths;
  for (const ConfigKey& key : config_keys()) {
    std::string path = key.path;
    paths.push_back(path);
    std::size_t dot = path.find('.');
    if (dot != std::string::npos &&
        std::find(paths.begin(), paths.end(), path.substr(0, dot)) == paths.end()) {
      paths.push_back(path.substr(0, dot));
    }
  }
  return paths;
}

// "" when no key is within half the path's length in edits: a suggestion further off is noise,
// and the bound keeps a huge misspelt key cheap.
std::string nearest_path(const std::string& path) {
  return nearest(path, valid_paths(), std::max<std::size_t>(2, path.size() / 2));
}

std::string describe_value(const json& value) {
  return std::string(value.type_name()) + " " + excerpt(value.dump());
}

// Writes JSON values into a Config through the key table; every error names `source_`.
class Parser {
 public:
  Parser(Config& config, std::string source) : config_(config), source_(std::move(source)) {}

  // Applies `value` at dotted `path` ("" is the document root).
  void apply(const std::string& path, const json& value) {
    if (const ConfigKey* key = find_key(path)) {
      assign(*key, value);
      return;
    }
    if (!is_group(path)) {
      const std::string suggestion = nearest_path(path);
      fail("unknown key '" + excerpt(path) + "'" +
           (suggestion.empty() ? "" : " (did you mean '" + suggestion + "'?)"));
    }
    if (!value.is_object()) {
      fail(path.empty() ? "expected a JSON object at the top level, got " + describe_value(value)
                        : "key '" + path + "' expects an object, got " + describe_value(value));
    }
    for (const auto& item : value.items()) {
      apply(path.empty() ? item.key() : path + "." + item.key(), item.value());
    }
  }

 private:
  [[noreturn]] void fail(const std::string& message) const {
    throw ConfigError(source_ + ": " + message);
  }

  [[noreturn]] void type_error(const ConfigKey& key, const json& value) const {
    fail("key '" + std::string(key.path) + "' expects " +
         (std::string(key.type_name()) == "unsigned integer" ? "an " : "a ") + key.type_name() +
         ", got " + describe_value(value));
  }

  void check_range(const ConfigKey& key, double v, const json& value) const {
    bool ok = std::isfinite(v) && v >= key.min && v <= key.max;
    if (ok && key.power_of_two) {
      auto u = static_cast<std::uint64_t>(v);
      ok = u != 0 && (u & (u - 1)) == 0;
    }
    if (!ok) {
      fail(std::string(key.path) + " = " + excerpt(value.dump()) + " is out of range (allowed " +
           key.allowed() + ")");
    }
  }

  // An unsigned key accepts integers and integral floats (e.g. 1.6e7); the range check
  // rejects negatives with the allowed range rather than a type error.
  std::uint64_t unsigned_value(const ConfigKey& key, const json& value) const {
    if (value.is_number_integer()) {  // stored signed or unsigned
      const double v = value.is_number_unsigned() ? double(value.get<std::uint64_t>())
                                                  : double(value.get<std::int64_t>());
      // Negative values fail here: every unsigned key has min >= 0.
      check_range(key, v, value);
      return value.get<std::uint64_t>();
    }
    if (value.is_number_float() && std::isfinite(value.get<double>()) &&
        std::floor(value.get<double>()) == value.get<double>()) {
      double v = value.get<double>();
      check_range(key, v, value);
      return static_cast<std::uint64_t>(v);
    }
    type_error(key, value);
  }

  void assign(const ConfigKey& key, const json& value) {
    std::visit(
        [&](auto* field) {
          using T = std::remove_pointer_t<decltype(field)>;
          if constexpr (std::is_same_v<T, bool>) {
            if (!value.is_boolean()) type_error(key, value);
            *field = value.get<bool>();
          } else if constexpr (std::is_same_v<T, std::string>) {
            if (!value.is_string()) type_error(key, value);
            auto s = value.get<std::string>();
            if (!key.choices.empty() &&
                std::find(key.choices.begin(), key.choices.end(), s) == key.choices.end()) {
              fail(std::string(key.path) + " = " + excerpt(value.dump()) +
                   " is not allowed (allowed: " + key.allowed() + ")");
            }
            *field = s;
          } else if constexpr (std::is_same_v<T, double>) {
            if (!value.is_number()) type_error(key, value);
            check_range(key, value.get<double>(), value);
            *field = value.get<double>();
          } else {
            *field = static_cast<T>(unsigned_value(key, value));
          }
        },
        key.field(config_));
  }

  Config& config_;
  std::string source_;
};

// Value text of a --set override: JSON when it parses, else the raw text as a string. String
// keys take the raw text unless it is a quoted JSON string, so `name=123` names the config "123".
// Every config value is written out as JSON, so a string taken as it stands must be UTF-8.
json override_string(const std::string& path, const std::string& text) {
  json value = text;
  try {
    value.dump();
  } catch (const json::type_error&) {
    throw ConfigError("--set: " + path + ": the value is not valid UTF-8");
  }
  return value;
}

json override_value(const std::string& path, const std::string& text) {
  const ConfigKey* key = find_key(path);
  Config probe;
  const bool string_key = key && std::holds_alternative<std::string*>(key->field(probe));
  try {
    json value = parse_json(text);
    if (string_key && !value.is_string()) return override_string(path, text);
    return value;
  } catch (const JsonNumberOverflow&) {
    throw ConfigError("--set: " + path + ": number " + text + " is out of range of a double");
  } catch (const JsonSyntaxError&) {
    return override_string(path, text);
  }
}

// Constraints that involve more than one key.
void validate(const Config& c, const std::string& source) {
  auto fail = [&](const std::string& message) { throw ConfigError(source + ": " + message); };
  if (c.mxu.weight_fifo_tiles == 1) {
    fail("mxu.weight_fifo_tiles = 1 is out of range (allowed 0 = no weight FIFO, or 2..65535: "
         "a one-tile FIFO cannot fill while the matrix unit reads it)");
  }
  if (c.core.mxus > kMxusPerUbReadPort * c.ub.read_ports) {
    fail("core.mxus = " + std::to_string(c.core.mxus) + " is more than the unified buffer can " +
         "feed (allowed <= " + std::to_string(kMxusPerUbReadPort) + " x ub.read_ports = " +
         std::to_string(kMxusPerUbReadPort * c.ub.read_ports) + ")");
  }
  const std::uint64_t bf16_row_bytes =
      std::uint64_t(c.ub_row_elems()) * element_bytes(DataType::kBf16);
  if (c.ub.capacity_bytes < bf16_row_bytes) {
    fail("ub.capacity_bytes = " + std::to_string(c.ub.capacity_bytes) +
         " cannot hold one bf16 row of " + std::to_string(c.ub_row_elems()) +
         " elements (allowed >= " + std::to_string(bf16_row_bytes) + ")");
  }
  const std::uint64_t acc_row_bytes = std::uint64_t(c.array.cols) * 4;
  if (c.acc.capacity_bytes < acc_row_bytes) {
    fail("acc.capacity_bytes = " + std::to_string(c.acc.capacity_bytes) +
         " cannot hold one row of " + std::to_string(c.array.cols) +
         " 32-bit accumulators (allowed >= " + std::to_string(acc_row_bytes) + ")");
  }
  if (c.hbm.capacity_bytes < c.hbm.burst_bytes) {
    fail("hbm.capacity_bytes = " + std::to_string(c.hbm.capacity_bytes) +
         " is smaller than one burst (allowed >= hbm.burst_bytes = " +
         std::to_string(c.hbm.burst_bytes) + ")");
  }
  const dram::DramSpec* spec = dram::find_dram_spec(c.hbm.preset);
  const std::uint32_t channels = c.hbm.channels;
  if (spec && channels != 0 &&
      (channels > spec->org.channels || (channels & (channels - 1)) != 0)) {
    fail("hbm.channels = " + std::to_string(channels) + " does not fit preset " + spec->name +
         " (allowed 0 or a power of two <= " + std::to_string(spec->org.channels) + ")");
  }
  if (spec) {
    dram::DramSpec device = *spec;
    if (channels != 0) device.org.channels = channels;
    try {
      dram::AddressMapping check(device, c.hbm.address_mapping);
    } catch (const std::invalid_argument& e) {
      fail(std::string("hbm.address_mapping: ") + e.what());
    }
  }
}

}  // namespace

const char* ConfigKey::type_name() const {
  Config probe;
  return std::visit(
      [](auto* p) -> const char* {
        using T = std::remove_pointer_t<decltype(p)>;
        if constexpr (std::is_same_v<T, bool>) {
          return "boolean";
        } else if constexpr (std::is_same_v<T, std::string>) {
          return "string";
        } else if constexpr (std::is_same_v<T, double>) {
          return "number";
        } else {
          return "unsigned integer";
        }
      },
      field(probe));
}

std::string ConfigKey::allowed() const {
  Config probe;
  ConfigField f = field(probe);
  if (std::holds_alternative<bool*>(f)) return "true, false";
  if (std::holds_alternative<std::string*>(f)) {
    if (choices.empty()) return "any string";
    std::string text;
    for (const std::string& choice : choices) text += (text.empty() ? "" : ", ") + choice;
    return text;
  }
  const std::string range = format_number(min) + ".." + format_number(max);
  return power_of_two ? "a power of two, " + range : range;
}

nlohmann::json ConfigKey::default_value() const {
  Config defaults;
  return std::visit([](auto* p) { return json(*p); }, field(defaults));
}

const std::vector<ConfigKey>& config_keys() {
  static const std::vector<ConfigKey> keys = make_keys();
  return keys;
}

const char* to_string(DataType t) { return t == DataType::kInt8 ? "int8" : "bf16"; }

std::optional<DataType> parse_data_type(const std::string& name) {
  for (DataType t : {DataType::kInt8, DataType::kBf16}) {
    if (name == to_string(t)) return t;
  }
  return std::nullopt;
}

double Config::hbm_peak_bytes_per_cycle() const {
  if (hbm.preset == "ideal") return std::numeric_limits<double>::infinity();
  // GB/s is bytes per ns; one cycle lasts period_ns().
  if (const dram::DramSpec* spec = dram::find_dram_spec(hbm.preset)) {
    const double channels = hbm.channels != 0 ? hbm.channels : spec->org.channels;
    return spec->peak_gbs() * channels / spec->org.channels * period_ns();
  }
  return hbm.bandwidth_gbs * period_ns();
}

Config parse_config(const nlohmann::json& doc, const std::string& source,
                    const std::vector<std::string>& overrides) {
  Config config;
  config.source = source;
  Parser(config, source).apply("", doc);
  Parser from_overrides(config, "--set");
  for (const std::string& item : overrides) {
    std::size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw ConfigError("--set: expected KEY=VALUE (e.g. array.rows=64), got '" + excerpt(item) +
                        "'");
    }
    const std::string path = item.substr(0, eq);
    from_overrides.apply(path, override_value(path, item.substr(eq + 1)));
  }
  validate(config, overrides.empty() ? source : source + " with --set overrides");
  return config;
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::string why;
  const std::optional<std::string> text = read_file(path, kMaxTextInputBytes, &why);
  if (!text) throw ConfigError(path + ": cannot open config file (" + why + ")");
  json doc;
  try {
    doc = parse_json(*text);
  } catch (const JsonSyntaxError& e) {
    throw ConfigError(path + ": malformed JSON: " + e.what());
  }
  return parse_config(doc, path, overrides);
}

Config default_config(const std::vector<std::string>& overrides) {
  const std::string source = "<embedded default>";
  json doc;
  try {
    doc = parse_json(kEmbeddedConfigJson);
  } catch (const JsonSyntaxError& e) {
    throw ConfigError(source + ": malformed JSON: " + e.what());
  }
  return parse_config(doc, source, overrides);
}

nlohmann::json to_json(const Config& config) {
  Config copy = config;
  json doc = json::object();
  for (const ConfigKey& key : config_keys()) {
    std::string pointer = "/" + std::string(key.path);
    std::replace(pointer.begin(), pointer.end(), '.', '/');
    doc[json::json_pointer(pointer)] =
        std::visit([](auto* p) { return json(*p); }, key.field(copy));
  }
  return doc;
}

}  // namespace tpu
