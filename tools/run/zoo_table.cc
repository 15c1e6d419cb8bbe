#include "tools/run/zoo_table.h"

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

std::string percent(double share) { return format("%.1f", 100 * share); }

std::string latency(double us) {
  return us < 1000 ? format("%.1f us", us) : format("%.2f ms", us / 1000);
}

// A table cell: no pipes, and no leading "<model path>: " (the row names the model).
std::string cell(std::string text, const std::string& model_path) {
  if (text.rfind(model_path + ": ", 0) == 0) text.erase(0, model_path.size() + 2);
  for (std::size_t at = 0; (at = text.find('|', at)) != std::string::npos; at += 2) {
    text.replace(at, 1, "\\|");
  }
  return text;
}

constexpr std::size_t kFigures = 7;  // the cells after MACs

struct Pair {
  std::size_t model = 0, config = 0;
  double macs = 0;
  std::vector<std::string> figures;  // kFigures cells, or a message and empty cells
};

std::vector<std::string> message(const std::string& text) {
  std::vector<std::string> cells(kFigures);
  cells[0] = text;
  return cells;
}

}  // namespace

std::string zoo_table(const ZooTableOptions& options) {
  std::vector<Graph> models;
  std::vector<Config> configs;
  for (const std::string& m : options.models) models.push_back(load_model(m));
  for (const std::string& c : options.configs) configs.push_back(load_config(c));

  std::vector<Pair> pairs;
  std::vector<std::size_t> to_run;  // indices into pairs
  for (std::size_t m = 0; m < models.size(); ++m) {
    double macs = 0;
    for (const Node& n : models[m].nodes) macs += double(n.macs());
    for (std::size_t c = 0; c < configs.size(); ++c) {
      const Config& config = configs[c];
      const double bound =
          macs / (double(config.array.rows) * config.array.cols * config.core.mxus);
      pairs.push_back({m, c, macs, {}});
      if (bound > options.max_bound_cycles) {
        pairs.back().figures = message("skipped: " + human_count(bound) +
                                       " array-bound cycles (limit " +
                                       human_count(options.max_bound_cycles) + ")");
      } else {
        to_run.push_back(pairs.size() - 1);
      }
    }
  }

  run_in_children(
      to_run.size(), options.jobs,
      [&](std::size_t i) {
        const Pair& p = pairs[to_run[i]];
        RunOptions run_options;
        run_options.timing_only = true;
        const Run run = run_model(configs[p.config], models[p.model],
                                  options.models[p.model], run_options);
        const nlohmann::json t = run.report_json()["total"];
        const nlohmann::json figures = {std::to_string(t["cycles"].get<std::uint64_t>()),
                                        latency(t["latency_us"].get<double>()),
                                        percent(t["utilization"].get<double>()),
                                        percent(t["matmul_share"].get<double>()),
                                        percent(t["waiting_share"].get<double>()),
                                        percent(t["vector_share"].get<double>()),
                                        std::to_string(int(run.info.host_seconds + 0.5))};
        return figures.dump();
      },
      [&](std::size_t i, const ChildOutcome& out) {
        Pair& p = pairs[to_run[i]];
        p.figures = out.ok ? nlohmann::json::parse(out.output).get<std::vector<std::string>>()
                           : message("error: " + cell(out.error, options.models[p.model]));
      });

  std::ostringstream table;
  table << "| model | config | MACs | cycles | latency | util % | MXU multiplying % | "
           "MXU waiting % | vector busy % | host s |\n"
        << "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n";
  for (const Pair& p : pairs) {
    table << "| " << models[p.model].name << " | " << configs[p.config].name << " | "
          << human_count(p.macs);
    for (const std::string& f : p.figures) table << " | " << f;
    table << " |\n";
  }
  return table.str();
}

}  // namespace tpu
