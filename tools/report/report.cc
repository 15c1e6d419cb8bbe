#include "tools/report/report.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <iterator>
#include <limits>
#include <map>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "sim/dram/dram_spec.h"

namespace tpu {
namespace {

using nlohmann::json;

// Energy by component, in pJ (report.h gives the formulas).
struct Energy {
  double mac = 0, ub = 0, acc = 0, vector = 0, hbm = 0, static_ = 0;
  double total() const { return mac + ub + acc + vector + hbm + static_; }
};

// The figures one row of the report shows: a layer, or the whole run.
struct Row {
  std::string name;
  std::string kind;
  std::uint64_t macs = 0;
  Cycle cycles = 0;
  Cycle compute_cycles = 0;
  Cycle overlap_cycles = 0;
  Cycle active_cycles = 0;  // what the time shares divide: a layer's activity, the run's cycles
  double utilization = 0;
  double mapping_efficiency = 0;
  double latency_us = 0;
  double hbm_gbs = 0;
  std::uint64_t hbm_read_bytes = 0;
  std::uint64_t hbm_write_bytes = 0;
  std::uint64_t ub_reads = 0;
  std::uint64_t ub_writes = 0;
  std::uint64_t weight_tiles = 0;
  std::uint64_t used_pes = 0;
  std::uint64_t array_macs = 0;
  std::uint64_t acc_read_bytes = 0;
  std::uint64_t acc_write_bytes = 0;
  std::uint64_t vector_elems = 0;
  std::uint64_t dram_activates = 0;  // the total row only: DRAM counts no layers
  Energy energy;
  double power_w = 0;
  double core_power_w = 0;  // without the off-chip memory: comparable to a die's power
  double tops_per_w = 0;
  double matmul_share = 0, vector_share = 0, waiting_share = 0;  // report.h
  std::array<UnitStats, kNumUnits> units{};
  std::vector<MxuStats> mxus;
  std::vector<double> mxu_utilization;  // per MXU: its array_macs / (cycles * rows * cols)
  // The MXU's stalls by cause: what the report calls the row's stall cycles.
  const StallMap& stalls() const { return units[std::size_t(Unit::kMatmul)].stalls; }
};

double ratio(double num, double den) { return den > 0 ? num / den : 0; }

// Fills the figures derived from the counters already in `row`.
void derive(const Config& config, DataType dtype, Row& row) {
  const double pes = double(config.array.rows) * config.array.cols;
  row.utilization = ratio(double(row.macs), double(row.cycles) * pes * config.chip_mxus());
  row.mxu_utilization.clear();
  for (const MxuStats& m : row.mxus) {  // MXU i of every core
    row.mxu_utilization.push_back(
        ratio(double(m.array_macs), double(row.cycles) * pes * config.chip.cores));
  }
  row.mapping_efficiency = ratio(double(row.used_pes), double(row.weight_tiles) * pes);
  const double mxu_cycles = double(row.active_cycles) * config.chip_mxus();
  Cycle waiting = 0;
  for (const auto& [cause, cycles] : row.stalls()) waiting += cycles;
  row.matmul_share =
      ratio(double(row.units[std::size_t(Unit::kMatmul)].busy_cycles), mxu_cycles);
  row.vector_share = ratio(double(row.units[std::size_t(Unit::kVector)].busy_cycles),
                           double(row.active_cycles) * config.chip.cores);
  row.waiting_share = ratio(double(waiting), mxu_cycles);
  row.latency_us = double(row.cycles) / config.clock_mhz;
  // GB/s = bytes per ns.
  row.hbm_gbs = ratio(double(row.hbm_read_bytes + row.hbm_write_bytes),
                      double(row.cycles) * config.period_ns());

  const EnergyConfig& e = config.energy;
  const double ub_row_bytes = double(config.ub_row_elems()) * element_bytes(dtype);
  row.energy.mac =
      double(row.array_macs) * (dtype == DataType::kInt8 ? e.mac_int8_pj : e.mac_bf16_pj);
  row.energy.ub = double(row.ub_reads + row.ub_writes) * ub_row_bytes * e.ub_pj_per_byte;
  row.energy.acc = double(row.acc_read_bytes + row.acc_write_bytes) * e.acc_pj_per_byte;
  row.energy.vector = double(row.vector_elems) * e.vector_pj_per_elem;
  row.energy.hbm = double(row.hbm_read_bytes + row.hbm_write_bytes) * e.hbm_pj_per_byte +
                   double(row.dram_activates) * e.dram_activate_pj;
  row.energy.static_ = e.static_w * row.latency_us * 1e6;  // W x us = uJ = 1e6 pJ
  // uJ / us = W; 2 ops per useful MAC per pJ = TOPS/W.
  row.power_w = ratio(row.energy.total() * 1e-6, row.latency_us);
  row.core_power_w = ratio((row.energy.total() - row.energy.hbm) * 1e-6, row.latency_us);
  row.tops_per_w = ratio(2.0 * double(row.macs), row.energy.total());
}

std::vector<Row> layer_rows(const Config& config, const RunResult& run) {
  std::vector<Row> rows;
  for (std::size_t i = 0; i < run.layers.size(); ++i) {
    const LayerStats& s = run.layers[i];
    Row row;
    row.name = s.name;
    row.kind = s.kind;
    row.macs = s.macs;
    row.cycles = s.cycles;
    row.compute_cycles = s.compute_cycles();
    row.overlap_cycles = s.overlap_cycles;
    row.active_cycles = s.active_cycles();
    row.hbm_read_bytes = s.hbm_read_bytes;
    row.hbm_write_bytes = s.hbm_write_bytes;
    row.ub_reads = s.ub_reads;
    row.ub_writes = s.ub_writes;
    row.weight_tiles = s.weight_tiles;
    row.used_pes = s.used_pes;
    row.array_macs = s.array_macs;
    row.acc_read_bytes = s.acc_read_bytes;
    row.acc_write_bytes = s.acc_write_bytes;
    row.vector_elems = s.vector_elems;
    row.units = s.units;
    row.mxus = s.mxus;
    derive(config, run.dtype, row);
    rows.push_back(std::move(row));
  }
  return rows;
}

Row total_row(const Config& config, const RunResult& run, const std::vector<Row>& layers) {
  Row total;
  total.name = "total";
  total.cycles = run.total_cycles;
  total.active_cycles = run.total_cycles;
  bool compute_seen = false;
  Cycle compute_first = std::numeric_limits<Cycle>::max();
  Cycle compute_last = 0;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    total.macs += layers[i].macs;
    total.overlap_cycles += layers[i].overlap_cycles;
    total.ub_reads += layers[i].ub_reads;
    total.ub_writes += layers[i].ub_writes;
    total.weight_tiles += layers[i].weight_tiles;
    total.used_pes += layers[i].used_pes;
    total.array_macs += layers[i].array_macs;
    total.acc_read_bytes += layers[i].acc_read_bytes;
    total.acc_write_bytes += layers[i].acc_write_bytes;
    total.vector_elems += layers[i].vector_elems;
    const LayerStats& s = run.layers[i];
    if (s.compute_seen) {
      compute_seen = true;
      compute_first = std::min(compute_first, s.compute_first);
      compute_last = std::max(compute_last, s.compute_last);
    }
  }
  total.compute_cycles = compute_seen ? compute_last - compute_first + 1 : 0;
  total.hbm_read_bytes = run.hbm.read_bytes;
  total.hbm_write_bytes = run.hbm.write_bytes;
  total.dram_activates = run.hbm.total().activates;
  total.units = run.units;
  total.mxus = run.mxus;
  derive(config, run.dtype, total);
  return total;
}

json units_json(const std::array<UnitStats, kNumUnits>& units) {
  json out = json::object();
  for (std::size_t u = 0; u < kNumUnits; ++u) {
    out[to_string(Unit(u))] = {{"busy_cycles", units[u].busy_cycles},
                          {"instructions", units[u].instructions},
                          {"stalls", units[u].stalls}};
  }
  return out;
}

json mxus_json(const Row& row) {
  json out = json::array();
  for (std::size_t i = 0; i < row.mxus.size(); ++i) {
    const MxuStats& m = row.mxus[i];
    out.push_back({{"busy_cycles", m.matmul.busy_cycles},
                   {"weight_load_busy_cycles", m.weight_load.busy_cycles},
                   {"array_macs", m.array_macs},
                   {"utilization", row.mxu_utilization[i]}});
  }
  return out;
}

double uj(double pj) { return pj * 1e-6; }

json energy_json(const Row& row) {
  return {{"mac_uj", uj(row.energy.mac)},
          {"ub_uj", uj(row.energy.ub)},
          {"acc_uj", uj(row.energy.acc)},
          {"vector_uj", uj(row.energy.vector)},
          {"hbm_uj", uj(row.energy.hbm)},
          {"static_uj", uj(row.energy.static_)},
          {"total_uj", uj(row.energy.total())},
          {"power_w", row.power_w},
          {"core_power_w", row.core_power_w},
          {"tops_per_w", row.tops_per_w}};
}

json row_json(const Row& row) {
  return {{"name", row.name},
          {"kind", row.kind},
          {"macs", row.macs},
          {"cycles", row.cycles},
          {"compute_cycles", row.compute_cycles},
          {"overlap_cycles", row.overlap_cycles},
          {"active_cycles", row.active_cycles},
          {"stall_cycles", row.stalls()},
          {"utilization", row.utilization},
          {"matmul_share", row.matmul_share},
          {"vector_share", row.vector_share},
          {"waiting_share", row.waiting_share},
          {"mapping_efficiency", row.mapping_efficiency},
          {"weight_tiles", row.weight_tiles},
          {"used_pes", row.used_pes},
          {"hbm_read_bytes", row.hbm_read_bytes},
          {"hbm_write_bytes", row.hbm_write_bytes},
          {"achieved_hbm_gbs", row.hbm_gbs},
          {"ub_reads", row.ub_reads},
          {"ub_writes", row.ub_writes},
          {"array_macs", row.array_macs},
          {"acc_read_bytes", row.acc_read_bytes},
          {"acc_write_bytes", row.acc_write_bytes},
          {"vector_elems", row.vector_elems},
          {"latency_us", row.latency_us},
          {"energy", energy_json(row)},
          {"units", units_json(row.units)},
          {"mxus", mxus_json(row)}};
}

double tops(const Row& total) {
  return ratio(2.0 * double(total.macs), total.latency_us * 1e-6) / 1e12;
}

// Cycles no schedule can beat: every MAC on a PE of some MXU, every HBM byte at peak bandwidth.
double roofline_cycles(const Config& config, const Row& total) {
  const double compute =
      std::ceil(ratio(double(total.macs),
                      double(config.array.rows) * config.array.cols * config.chip_mxus()));
  const double peak = config.hbm_peak_bytes_per_cycle();
  const double memory =
      std::isinf(peak) ? 0 : double(total.hbm_read_bytes + total.hbm_write_bytes) / peak;
  return std::max(compute, memory);
}

json finite_or_null(double v) { return std::isinf(v) ? json(nullptr) : json(v); }

// Core c's MXU utilisation over the whole run: its array MACs / (run cycles * its PEs).
double core_utilization(const Config& config, const RunResult& run, const CoreStats& core) {
  return ratio(double(core.array_macs()), double(run.total_cycles) * config.array.rows *
                                              config.array.cols * config.core.mxus);
}

json cores_json(const Config& config, const RunResult& run) {
  json cores = json::array();
  for (std::size_t c = 0; c < run.cores.size(); ++c) {
    const CoreStats& core = run.cores[c];
    cores.push_back({{"core", c},
                     {"cycles", core.total_cycles},
                     {"array_macs", core.array_macs()},
                     {"utilization", core_utilization(config, run, core)},
                     {"sync_wait_cycles", core.sync_wait_cycles},
                     {"interconnect_read_bytes", core.interconnect_read_bytes},
                     {"interconnect_write_bytes", core.interconnect_write_bytes}});
  }
  return cores;
}

// The memory over the whole run, as documented in report.h.
struct MemoryFigures {
  double peak_gbs = 0;  // infinite for ideal
  double achieved_gbs = 0;
  double avg_latency_ns = 0;
  double p99_latency_ns = 0;
  bool dram = false;  // per-channel DRAM counters present; the fields below are meaningful
  HbmChannelStats total;
  double row_hit_rate = 0;
  double refresh_fraction = 0;
};

MemoryFigures memory_figures(const Config& config, const RunResult& run) {
  const HbmStats& hbm = run.hbm;
  MemoryFigures m;
  m.peak_gbs = peak_gbs(config);
  m.achieved_gbs = ratio(double(hbm.read_bytes + hbm.write_bytes), run.simulated_ns);
  m.avg_latency_ns = ratio(hbm.total_latency_ns, double(hbm.requests));
  m.p99_latency_ns = hbm.latency_percentile_ns(0.99);
  m.dram = !hbm.channels.empty();
  m.total = hbm.total();
  m.row_hit_rate = ratio(double(m.total.row_hits), double(m.total.accesses));
  m.refresh_fraction = ratio(m.total.refresh_ns, double(hbm.pseudo_channels) * run.simulated_ns);
  return m;
}

json hbm_json(const Config& config, const RunResult& run, const MemoryFigures& m) {
  const HbmStats& hbm = run.hbm;
  json out = {{"preset", config.hbm.preset},
              {"peak_gbs", finite_or_null(m.peak_gbs)},
              {"requests", hbm.requests},
              {"read_bytes", hbm.read_bytes},
              {"write_bytes", hbm.write_bytes},
              {"achieved_gbs", m.achieved_gbs},
              {"avg_latency_ns", m.avg_latency_ns},
              {"p99_latency_ns", m.p99_latency_ns},
              {"max_latency_ns", hbm.max_latency_ns}};
  if (!m.dram) return out;
  out["pseudo_channels"] = hbm.pseudo_channels;
  out["accesses"] = m.total.accesses;
  out["row_hits"] = m.total.row_hits;
  out["row_misses"] = m.total.row_misses;
  out["row_conflicts"] = m.total.row_conflicts;
  out["activates"] = m.total.activates;
  out["refreshes"] = m.total.refreshes;
  out["row_hit_rate"] = m.row_hit_rate;
  out["refresh_ns"] = m.total.refresh_ns;
  out["refresh_fraction"] = m.refresh_fraction;
  const double pcs_per_channel = double(hbm.pseudo_channels) / double(hbm.channels.size());
  json channels = json::array();
  for (std::size_t i = 0; i < hbm.channels.size(); ++i) {
    const HbmChannelStats& c = hbm.channels[i];
    channels.push_back(
        {{"channel", i},
         {"read_bytes", c.read_bytes},
         {"write_bytes", c.write_bytes},
         {"achieved_gbs", ratio(double(c.read_bytes + c.write_bytes), run.simulated_ns)},
         {"accesses", c.accesses},
         {"row_hits", c.row_hits},
         {"row_hit_rate", ratio(double(c.row_hits), double(c.accesses))},
         {"row_misses", c.row_misses},
         {"row_conflicts", c.row_conflicts},
         {"activates", c.activates},
         {"refreshes", c.refreshes},
         {"refresh_fraction", ratio(c.refresh_ns, pcs_per_channel * run.simulated_ns)},
         {"avg_latency_ns", ratio(c.access_latency_ns, double(c.accesses))}});
  }
  out["channels"] = std::move(channels);
  return out;
}

}  // namespace

// Three significant digits with an SI suffix: 512, 1.50k, 118M.
std::string human_count(double v) {
  static const char* const kSuffixes[] = {"", "k", "M", "G", "T", "P", "E"};
  std::size_t i = 0;
  while (std::fabs(v) >= 999.5 && i + 1 < std::size(kSuffixes)) {
    v /= 1000;
    ++i;
  }
  if (i == 0) return format("%.0f", v);
  const char* fmt = std::fabs(v) < 9.995 ? "%.2f" : std::fabs(v) < 99.95 ? "%.1f" : "%.0f";
  return format(fmt, v) + kSuffixes[i];
}

namespace {

// Three significant digits in pJ, nJ, uJ, mJ or J: 812 pJ, 5.21 mJ.
std::string human_energy(double pj) {
  static const char* const kUnits[] = {"pJ", "nJ", "uJ", "mJ", "J"};
  std::size_t i = 0;
  while (std::fabs(pj) >= 999.5 && i + 1 < std::size(kUnits)) {
    pj /= 1000;
    ++i;
  }
  const char* fmt = std::fabs(pj) < 9.995 ? "%.2f" : std::fabs(pj) < 99.95 ? "%.1f" : "%.0f";
  return format(fmt, pj) + " " + kUnits[i];
}

std::string top_stall(const StallMap& stalls) {
  auto best = stalls.end();
  for (auto it = stalls.begin(); it != stalls.end(); ++it) {
    if (it->second > 0 && (best == stalls.end() || it->second > best->second)) best = it;
  }
  if (best == stalls.end()) return "-";
  return best->first + " " + std::to_string(best->second);
}

// The memory for the header: what the preset models and its peak.
std::string memory_description(const Config& config) {
  const HbmConfig& hbm = config.hbm;
  if (const dram::DramSpec* spec = dram::find_dram_spec(hbm.preset)) {
    const std::uint32_t channels = hbm.channels != 0 ? hbm.channels : spec->org.channels;
    std::string text = hbm.preset + " (" + std::to_string(channels) +
                       (channels == 1 ? " channel" : " channels");
    if (spec->org.pseudo_channels > 1) {
      text += " x " + std::to_string(spec->org.pseudo_channels) + " pseudo-channels";
    }
    return text + ", " + format("%.4g", peak_gbs(config)) + " GB/s peak)";
  }
  if (hbm.preset == "simple") {
    return "simple (" + format("%.4g", hbm.bandwidth_gbs) + " GB/s peak, " +
           format("%.4g", hbm.latency_ns) + " ns latency)";
  }
  return hbm.preset + " (unlimited bandwidth, no latency)";
}

}  // namespace

std::string format(const char* fmt, ...) {
  va_list args, again;
  va_start(args, fmt);
  va_copy(again, args);
  const int n = std::vsnprintf(nullptr, 0, fmt, args);
  va_end(args);
  std::string text(std::size_t(std::max(n, 0)), '\0');
  if (n > 0) std::vsnprintf(text.data(), text.size() + 1, fmt, again);
  va_end(again);
  return text;
}

std::string csv_field(const std::string& text) {
  // parse_csv drops blanks outside quotes.
  const auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
  const bool blank_ends = !text.empty() && (blank(text.front()) || blank(text.back()));
  if (text.find_first_of(",\"\n") == std::string::npos && !blank_ends) return text;
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  return quoted + "\"";
}

double peak_gbs(const Config& config) {
  return config.hbm_peak_bytes_per_cycle() * config.clock_mhz / 1000.0;
}

double peak_tops(const Config& config) {
  return 2.0 * config.array.rows * config.array.cols * config.chip_mxus() * config.clock_mhz / 1e6;
}

namespace {

std::string csv_number(double v) { return format("%.9g", v); }

std::string check_summary(const CheckResult* check, const RunInfo& info) {
  if (check == nullptr) return info.timing_only ? "check: skipped (timing only)" : "check: not run";
  std::string text;
  if (check->passed) {
    text = "check: PASS (" + std::to_string(check->compared) + " output values compared)";
  } else {
    text = "check: FAIL (" + std::to_string(check->mismatches) + " of " +
           std::to_string(check->compared) + " output values wrong)";
  }
  for (const std::string& line : check->first_mismatches) text += "\n  " + line;
  return text;
}

}  // namespace

std::string human_bytes(double bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  std::size_t i = 0;
  while (bytes >= 1024 && i + 1 < std::size(kUnits)) {
    bytes /= 1024;
    ++i;
  }
  if (i == 0) return format("%.0f", bytes) + " B";
  const char* fmt = bytes < 9.995 ? "%.2f" : bytes < 99.95 ? "%.1f" : "%.0f";
  return format(fmt, bytes) + " " + kUnits[i];
}

nlohmann::json report_json(const Config& config, const Program& program, const RunResult& run,
                           const CheckResult* check, const RunInfo& info) {
  const std::vector<Row> layers = layer_rows(config, run);
  const Row total = total_row(config, run, layers);

  json layer_list = json::array();
  for (const Row& row : layers) layer_list.push_back(row_json(row));

  json total_json = row_json(total);
  total_json.erase("name");
  total_json.erase("kind");
  total_json["tops"] = tops(total);
  total_json["roofline_cycles"] = roofline_cycles(config, total);
  total_json["simulated_ns"] = run.simulated_ns;
  total_json["hbm_requests"] = run.hbm.requests;
  total_json["avg_hbm_latency_ns"] = ratio(run.hbm.total_latency_ns, double(run.hbm.requests));
  total_json["max_hbm_latency_ns"] = run.hbm.max_latency_ns;
  const MemoryFigures memory = memory_figures(config, run);
  total_json["hbm_peak_gbs"] = finite_or_null(memory.peak_gbs);

  json out = {
      {"tpusim_version", kReportVersion},
      {"model",
       {{"name", info.model},
        {"source", info.model_source},
        {"dtype", to_string(program.dtype)},
        {"instructions", program.instructions.size()},
        {"layers", program.layers.size()}}},
      {"config", to_json(config)},
      {"run",
       {{"config_source", config.source},
        {"fidelity", info.fidelity},
        {"timing_only", info.timing_only},
        {"host_seconds", info.host_seconds},
        {"host_peak_mib", info.host_peak_mib},
        {"simulated_cycles_per_second", ratio(double(run.total_cycles), info.host_seconds)},
        {"layers_per_second", ratio(double(layers.size()), info.host_seconds)}}},
      {"layers", layer_list},
      {"total", total_json},
      {"hbm", hbm_json(config, run, memory)},
  };
  if (config.chip.cores > 1) out["cores"] = cores_json(config, run);
  if (check != nullptr) {
    out["check"] = {{"passed", check->passed},
                    {"compared", check->compared},
                    {"mismatches", check->mismatches},
                    {"first_mismatches", check->first_mismatches}};
  }
  return out;
}

// "min-max" of the MXUs' utilisations in percent.
std::string mxu_range(const Row& row) {
  if (row.mxu_utilization.empty()) return "-";
  const auto [lo, hi] =
      std::minmax_element(row.mxu_utilization.begin(), row.mxu_utilization.end());
  return format("%.1f", 100 * *lo) + "-" + format("%.1f", 100 * *hi);
}

std::string report_table(const Config& config, const Program& program, const RunResult& run,
                         const CheckResult* check, const RunInfo& info) {
  const std::vector<Row> layers = layer_rows(config, run);
  const Row total = total_row(config, run, layers);

  std::vector<std::string> header = {"layer",  "kind",   "MACs",      "cycles",
                                     "lat us", "util %", "map eff %", "top MXU stall",
                                     "HBM rd", "HBM wr", "energy", "W"};
  // Name, kind and stall cause read left-aligned; numbers right-aligned.
  std::vector<bool> left = {true,  true,  false, false, false, false,
                            false, true,  false, false, false, false};
  // Several MXUs: the range of their own utilisations, after the core's.
  const bool several = config.chip_mxus() > 1;
  if (several) {
    header.insert(header.begin() + 6, "MXU util %");
    left.insert(left.begin() + 6, false);
  }
  std::vector<std::vector<std::string>> cells = {header};
  auto add = [&](const Row& row) {
    cells.push_back({row.name, row.kind, human_count(double(row.macs)), std::to_string(row.cycles),
                     format("%.3f", row.latency_us), format("%.1f", 100 * row.utilization),
                     format("%.1f", 100 * row.mapping_efficiency), top_stall(row.stalls()),
                     human_bytes(double(row.hbm_read_bytes)),
                     human_bytes(double(row.hbm_write_bytes)),
                     human_energy(row.energy.total()), format("%.1f", row.power_w)});
    if (several) cells.back().insert(cells.back().begin() + 6, mxu_range(row));
  };
  for (const Row& row : layers) add(row);
  add(total);

  std::vector<std::size_t> width(header.size(), 0);
  for (const auto& line : cells) {
    for (std::size_t c = 0; c < line.size(); ++c) width[c] = std::max(width[c], line[c].size());
  }
  auto render = [&](const std::vector<std::string>& line) {
    std::string text;
    for (std::size_t c = 0; c < line.size(); ++c) {
      const std::string pad(width[c] - line[c].size(), ' ');
      if (c > 0) text += "  ";
      text += left[c] ? line[c] + pad : pad + line[c];
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    return text + "\n";
  };
  std::size_t rule_width = 0;
  for (std::size_t w : width) rule_width += w + 2;
  const std::string rule(rule_width - 2, '-');

  std::ostringstream out;
  out << "model " << info.model << " (" << to_string(program.dtype) << ", " << layers.size()
      << " layers) on config " << config.name << " (" << config.source << ")\n";
  out << "array " << config.array.rows << "x" << config.array.cols
      << (config.chip.cores > 1 ? " x " + std::to_string(config.chip.cores) + " cores" : "")
      << (config.core.mxus > 1 ? " x " + std::to_string(config.core.mxus) + " MXUs" : "")
      << " @ "
      << config.clock_mhz
      << " MHz, memory " << memory_description(config) << ", fidelity " << info.fidelity
      << (info.timing_only ? " (timing only)" : "") << "\n\n";
  out << render(cells[0]) << rule << "\n";
  for (std::size_t i = 1; i + 1 < cells.size(); ++i) out << render(cells[i]);
  out << rule << "\n" << render(cells.back()) << "\n";

  out << total.cycles << " cycles = " << format("%.3f", total.latency_us) << " us, "
      << format("%.3g", tops(total)) << " TOPS, MXU utilization "
      << format("%.1f", 100 * total.utilization) << " %";
  if (several) {
    out << " (per MXU";
    for (std::size_t i = 0; i < total.mxu_utilization.size(); ++i) {
      out << (i ? ", " : " ") << format("%.1f", 100 * total.mxu_utilization[i]);
    }
    out << " %)";
  }
  out << ", roofline "
      << format("%.0f", roofline_cycles(config, total)) << " cycles\n";
  for (std::size_t c = 0; config.chip.cores > 1 && c < run.cores.size(); ++c) {
    const CoreStats& core = run.cores[c];
    out << "core " << c << ": " << core.total_cycles << " cycles, MXU utilization "
        << format("%.1f", 100 * core_utilization(config, run, core)) << " %, sync wait "
        << core.sync_wait_cycles << " cycles, interconnect "
        << human_bytes(double(core.interconnect_read_bytes)) << " read, "
        << human_bytes(double(core.interconnect_write_bytes)) << " written\n";
  }
  out << "time: MXU multiplying " << format("%.1f", 100 * total.matmul_share)
      << " %, MXU waiting " << format("%.1f", 100 * total.waiting_share)
      << " %, vector unit busy " << format("%.1f", 100 * total.vector_share) << " %\n";
  const MemoryFigures memory = memory_figures(config, run);
  out << "HBM " << human_bytes(double(total.hbm_read_bytes)) << " read, "
      << human_bytes(double(total.hbm_write_bytes)) << " written, "
      << format("%.1f", memory.achieved_gbs) << " GB/s achieved";
  if (!std::isinf(memory.peak_gbs)) {
    out << " (" << format("%.1f", 100 * ratio(memory.achieved_gbs, memory.peak_gbs)) << " % of "
        << format("%.4g", memory.peak_gbs) << " GB/s peak)";
  }
  out << ", latency avg " << format("%.1f", memory.avg_latency_ns) << " ns, p99 "
      << format("%.0f", memory.p99_latency_ns) << " ns\n";
  if (memory.dram) {
    out << "DRAM row hits " << format("%.1f", 100 * memory.row_hit_rate) << " % ("
        << memory.total.row_misses << " misses, " << memory.total.row_conflicts
        << " conflicts), refresh " << format("%.1f", 100 * memory.refresh_fraction)
        << " % of bank time\n";
  }
  const Energy& e = total.energy;
  out << "energy " << human_energy(e.total()) << " (mac " << human_energy(e.mac) << ", ub "
      << human_energy(e.ub) << ", acc " << human_energy(e.acc) << ", vector "
      << human_energy(e.vector) << ", hbm " << human_energy(e.hbm) << ", static "
      << human_energy(e.static_) << "), average power " << format("%.3g", total.power_w)
      << " W (" << format("%.3g", total.core_power_w) << " W without HBM), "
      << format("%.3g", total.tops_per_w) << " TOPS/W\n";
  out << "host " << format("%.3f", info.host_seconds) << " s, "
      << human_count(ratio(double(run.total_cycles), info.host_seconds))
      << " simulated cycles/s, peak memory " << format("%.0f", info.host_peak_mib) << " MiB\n";
  out << check_summary(check, info) << "\n";
  return out.str();
}

std::string report_csv(const Config& config, const RunResult& run,
                       bool include_total) {
  std::vector<Row> rows = layer_rows(config, run);
  if (include_total) rows.push_back(total_row(config, run, rows));

  std::ostringstream out;
  out << "name,kind,macs,cycles,compute_cycles,overlap_cycles,active_cycles,utilization,"
         "mapping_efficiency,weight_tiles,used_pes,hbm_read_bytes,hbm_write_bytes,"
         "achieved_hbm_gbs,ub_reads,ub_writes,latency_us,array_macs,acc_read_bytes,"
         "acc_write_bytes,vector_elems,energy_mac_uj,energy_ub_uj,energy_acc_uj,"
         "energy_vector_uj,energy_hbm_uj,energy_static_uj,energy_uj,power_w,core_power_w,"
         "tops_per_w,matmul_share,waiting_share,vector_share";
  for (std::size_t u = 0; u < kNumUnits; ++u) {
    const std::string unit = to_string(Unit(u));
    out << ',' << unit << "_busy_cycles," << unit << "_stall_cycles";
  }
  for (const char* cause : kStallCauses) out << ",stall_" << cause;
  out << '\n';

  for (const Row& row : rows) {
    out << csv_field(row.name) << ',' << csv_field(row.kind) << ',' << row.macs << ',' << row.cycles
        << ',' << row.compute_cycles << ',' << row.overlap_cycles << ',' << row.active_cycles
        << ',' << csv_number(row.utilization) << ',' << csv_number(row.mapping_efficiency)
        << ',' << row.weight_tiles << ',' << row.used_pes
        << ',' << row.hbm_read_bytes << ',' << row.hbm_write_bytes << ',' << csv_number(row.hbm_gbs)
        << ',' << row.ub_reads << ',' << row.ub_writes << ',' << csv_number(row.latency_us)
        << ',' << row.array_macs << ',' << row.acc_read_bytes << ',' << row.acc_write_bytes << ','
        << row.vector_elems;
    for (double pj : {row.energy.mac, row.energy.ub, row.energy.acc, row.energy.vector,
                      row.energy.hbm, row.energy.static_, row.energy.total()}) {
      out << ',' << csv_number(uj(pj));
    }
    out << ',' << csv_number(row.power_w) << ',' << csv_number(row.core_power_w) << ','
        << csv_number(row.tops_per_w) << ',' << csv_number(row.matmul_share) << ','
        << csv_number(row.waiting_share) << ',' << csv_number(row.vector_share);
    for (const UnitStats& unit : row.units) {
      Cycle stalled = 0;
      for (const auto& [cause, cycles] : unit.stalls) stalled += cycles;
      out << ',' << unit.busy_cycles << ',' << stalled;
    }
    std::map<std::string, Cycle> by_column;
    for (const auto& [cause, cycles] : row.stalls()) {
      by_column[cause.rfind("sem:", 0) == 0 ? "sem" : cause] += cycles;
    }
    for (const char* cause : kStallCauses) {
      out << ',' << by_column[cause];
      by_column.erase(cause);
    }
    // A cause missing from kStallCauses would silently drop cycles.
    if (!by_column.empty()) throw std::logic_error("stall cause '" + by_column.begin()->first +
                                                   "' has no CSV column (sim/stats.h)");
    out << '\n';
  }
  return out.str();
}

}  // namespace tpu
