#include "tools/run/scaling_table.h"

#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/config/config.h"
#include "tools/compiler/frontend.h"
#include "tools/report/report.h"
#include "tools/run/child.h"
#include "tools/run/run.h"

namespace tpu {
namespace {

struct Point {
  std::size_t model = 0, config = 0;
  bool ideal = false;
  std::uint32_t cores = 1, mxus = 1;
  std::uint64_t cycles = 0;
  double utilization = 0;
  std::string error;  // the run's one-line error, when it failed
};

}  // namespace

std::string scaling_table(const ScalingTableOptions& options) {
  std::vector<Graph> models;
  for (const std::string& m : options.models) models.push_back(load_model(m));
  // Every point's config, loaded (and so validated) here, before any simulation.
  std::vector<Config> configs;
  std::vector<Point> points;
  for (const bool ideal : {false, true}) {
    for (const std::uint32_t cores : options.cores) {
      for (const std::uint32_t mxus : options.mxus) {
        std::vector<std::string> set = {"chip.cores=" + std::to_string(cores),
                                        "core.mxus=" + std::to_string(mxus)};
        if (ideal) set.push_back("hbm.preset=ideal");
        configs.push_back(load_config(options.config, set));
        for (std::size_t m = 0; m < models.size(); ++m) {
          points.push_back({m, configs.size() - 1, ideal, cores, mxus, 0, 0, ""});
        }
      }
    }
  }

  run_in_children(
      points.size(), options.jobs,
      [&](std::size_t i) {
        const Point& p = points[i];
        RunOptions run_options;
        run_options.timing_only = true;
        const Run run = run_model(configs[p.config], models[p.model], options.models[p.model],
                                  run_options);
        const nlohmann::json t = run.report_json()["total"];
        return nlohmann::json({t["cycles"], t["utilization"]}).dump();
      },
      [&](std::size_t i, const ChildOutcome& out) {
        Point& p = points[i];
        if (!out.ok) {
          p.error = out.error;
          return;
        }
        const nlohmann::json figures = nlohmann::json::parse(out.output);
        p.cycles = figures[0].get<std::uint64_t>();
        p.utilization = figures[1].get<double>();
      });

  std::ostringstream table;
  table << "| model | memory | cores | MXUs per core | cycles | speed-up | MXU util % |\n"
        << "|---|---|--:|--:|--:|--:|--:|\n";
  for (std::size_t m = 0; m < models.size(); ++m) {
    for (const bool ideal : {false, true}) {
      // The baseline: one core of one MXU on the same memory, when the table has it.
      std::uint64_t base = 0;
      for (const Point& p : points) {
        if (p.model == m && p.ideal == ideal && p.cores == 1 && p.mxus == 1 && p.error.empty()) {
          base = p.cycles;
        }
      }
      for (const Point& p : points) {
        if (p.model != m || p.ideal != ideal) continue;
        const Config& c = configs[p.config];
        const double gbs = c.hbm_peak_bytes_per_cycle() / c.period_ns();
        const std::string memory = ideal ? "ideal" : c.hbm.preset + format(" %.0f GB/s", gbs);
        table << "| " << models[m].name << " | " << memory << " | " << p.cores << " | "
              << p.mxus << " | ";
        if (!p.error.empty()) {
          table << "error: " << p.error << " | | |\n";
          continue;
        }
        table << p.cycles << " | "
              << (base > 0 ? format("%.2f", double(base) / double(p.cycles)) : std::string("-"))
              << " | " << format("%.1f", 100 * p.utilization) << " |\n";
      }
    }
  }
  return table.str();
}

}  // namespace tpu
