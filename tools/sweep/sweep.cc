#include "tools/sweep/sweep.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

#include "sim/config/user_input.h"
#include "tools/compiler/frontend.h"
#include "tools/report/report.h"
#include "tools/run/child.h"
#include "tools/run/output_file.h"
#include "tools/run/run.h"

namespace tpu {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

[[noreturn]] void fail(const std::string& source, const std::string& what) {
  throw std::runtime_error(source + ": " + what);
}

std::uint64_t fnv1a(const std::string& bytes, std::uint64_t h = 1469598103934665603ull) {
  for (unsigned char b : bytes) h = (h ^ b) * 1099511628211ull;
  return h;
}

std::string read_or_fail(const std::string& path, const std::string& what) {
  std::string why;
  std::optional<std::string> text = read_file(path, kMaxTextInputBytes, &why);
  if (!text) fail(path, "cannot open " + what + " (" + why + ")");
  return std::move(*text);
}

// The value combinations: product (first axis outermost) or zip (position by position).
std::vector<std::vector<json>> combine(const std::string& source,
                                       const std::vector<std::pair<std::string, json>>& axes,
                                       const std::string& how) {
  std::vector<std::vector<json>> points;
  if (axes.empty()) return {{}};
  if (how == "zip") {
    const std::size_t n = axes[0].second.size();
    for (const auto& [name, values] : axes) {
      if (values.size() != n) {
        fail(source, "combine \"zip\" needs axes of equal length: '" + axes[0].first + "' has " +
                         std::to_string(n) + " values, '" + name + "' " +
                         std::to_string(values.size()));
      }
    }
    for (std::size_t i = 0; i < n; ++i) {
      std::vector<json> p;
      for (const auto& axis : axes) p.push_back(axis.second[i]);
      points.push_back(std::move(p));
    }
    return points;
  }
  points.push_back({});
  for (const auto& axis : axes) {
    std::vector<std::vector<json>> next;
    for (const std::vector<json>& p : points) {
      for (const json& v : axis.second) {
        next.push_back(p);
        next.back().push_back(v);
      }
    }
    points = std::move(next);
  }
  return points;
}

std::string axes_text(const std::vector<std::pair<std::string, json>>& axes) {
  std::string text;
  for (const auto& [k, v] : axes) text += (text.empty() ? "" : ", ") + k + "=" + v.dump();
  return text;
}

std::string csv_value(const json& v) {
  if (v.is_null()) return "";
  if (v.is_string()) return csv_field(v.get<std::string>());
  return csv_field(v.dump());
}

// The report totals a summary row carries, in column order.
const std::vector<std::string>& total_columns() {
  static const std::vector<std::string> columns = {"cycles",    "latency_us", "tops",
                                                   "utilization", "hbm_bytes", "energy_uj",
                                                   "power_w"};
  return columns;
}

json totals_of(const json& report) {
  const json& t = report.at("total");
  return {{"cycles", t.at("cycles")},
          {"latency_us", t.at("latency_us")},
          {"tops", t.at("tops")},
          {"utilization", t.at("utilization")},
          {"hbm_bytes", t.at("hbm_read_bytes").get<double>() + t.at("hbm_write_bytes").get<double>()},
          {"energy_uj", t.at("energy").at("total_uj")},
          {"power_w", t.at("energy").at("power_w")}};
}

// Whole lines of a results file; a torn last line (a kill mid-write) is dropped, and with
// `repair` cut off the file so appends start on a fresh line.
std::vector<json> read_results(const std::string& path, bool repair) {
  std::vector<json> lines;
  std::string why;
  std::optional<std::string> text = read_file(path, std::uint64_t(1) << 32, &why);
  if (!text) return lines;
  const std::size_t whole = text->rfind('\n') == std::string::npos ? 0 : text->rfind('\n') + 1;
  if (repair && whole < text->size() && truncate(path.c_str(), off_t(whole)) != 0)
    fail(path, std::string("cannot repair the torn last line (") + std::strerror(errno) + ")");
  std::istringstream in(text->substr(0, whole));
  std::size_t number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    if (line.empty()) continue;
    try {
      lines.push_back(json::parse(line));
    } catch (const json::exception&) {
      fail(path, "line " + std::to_string(number) + " is not a result line");
    }
  }
  return lines;
}

void write_summary(const std::string& out_dir, std::vector<json> results) {
  std::sort(results.begin(), results.end(), [](const json& a, const json& b) {
    return a.at("item").get<std::size_t>() < b.at("item").get<std::size_t>();
  });
  std::string csv = "item,point";
  std::vector<std::string> axis_names;
  if (!results.empty())
    for (const json& a : results[0].at("axes")) axis_names.push_back(a.at(0).get<std::string>());
  for (const std::string& a : axis_names) csv += "," + csv_field(a);
  csv += ",model,status,error";
  for (const std::string& c : total_columns()) csv += "," + c;
  csv += "\n";
  for (const json& r : results) {
    csv += std::to_string(r.at("item").get<std::size_t>()) + "," +
           std::to_string(r.at("point").get<std::size_t>());
    for (const json& a : r.at("axes")) csv += "," + csv_value(a.at(1));
    csv += "," + csv_value(r.at("model")) + "," + csv_value(r.at("status")) + "," +
           csv_value(r.value("error", json()));
    for (const std::string& c : total_columns())
      csv += "," + (r.contains("totals") ? csv_value(r["totals"].at(c)) : std::string());
    csv += "\n";
  }
  write_output_file((fs::path(out_dir) / "summary.csv").string(), csv);
}

}  // namespace

Sweep load_sweep(const std::string& path) {
  const json doc = [&] {
    try {
      return parse_json(read_or_fail(path, "sweep file"));
    } catch (const JsonSyntaxError& e) {
      fail(path, std::string("malformed JSON: ") + e.what());
    }
  }();
  if (!doc.is_object()) fail(path, "a sweep file is a JSON object");
  const std::vector<std::string> known = {"base", "models", "axes", "combine", "timing_only"};
  for (const auto& [key, value] : doc.items()) {
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      const std::string near = nearest(key, known, 3);
      fail(path, "unknown key '" + excerpt(key, 60) + "'" +
                     (near.empty() ? " (allowed: base, models, axes, combine, timing_only)"
                                   : " (did you mean '" + near + "'?)"));
    }
  }
  const fs::path dir = fs::path(path).parent_path();
  auto resolve = [&](const std::string& p) { return (dir / p).lexically_normal().string(); };

  Sweep sweep;
  sweep.path = path;
  if (doc.contains("timing_only")) {
    if (!doc["timing_only"].is_boolean()) fail(path, "'timing_only' expects true or false");
    sweep.timing_only = doc["timing_only"].get<bool>();
  }
  std::string base;
  if (doc.contains("base")) {
    if (!doc["base"].is_string()) fail(path, "'base' expects a config file path (a string)");
    base = resolve(doc["base"].get<std::string>());
  }
  if (!doc.contains("models") || !doc["models"].is_array() || doc["models"].empty())
    fail(path, "'models' expects a non-empty list of model file paths");
  std::vector<std::string> models;
  for (const json& m : doc["models"]) {
    if (!m.is_string()) fail(path, "'models' expects model file paths (strings)");
    models.push_back(m.get<std::string>());
  }
  std::string how = "product";
  if (doc.contains("combine")) {
    if (!doc["combine"].is_string() ||
        (doc["combine"] != "product" && doc["combine"] != "zip"))
      fail(path, "'combine' expects \"product\" or \"zip\"");
    how = doc["combine"].get<std::string>();
  }
  std::vector<std::pair<std::string, json>> axes;
  if (doc.contains("axes")) {
    if (!doc["axes"].is_object()) fail(path, "'axes' expects an object of dotted config keys");
    // Axes combine in the order of their dotted keys (JSON objects carry no order).
    for (const auto& [key, values] : doc["axes"].items()) {
      if (!values.is_array() || values.empty())
        fail(path, "axis '" + key + "' expects a non-empty list of values");
      axes.emplace_back(key, values);
    }
  }
  for (const auto& a : axes) sweep.axis_names.push_back(a.first);

  // Every model parses and every point's config loads, before anything runs.
  std::vector<std::string> model_hashes;
  for (const std::string& m : models) {
    const std::string file = resolve(m);
    (void)load_model(file);
    model_hashes.push_back(std::to_string(fnv1a(read_or_fail(file, "model"))));
  }
  const std::vector<std::vector<json>> points = combine(path, axes, how);
  for (std::size_t p = 0; p < points.size(); ++p) {
    std::vector<std::string> overrides;
    std::vector<std::pair<std::string, json>> point_axes;
    for (std::size_t a = 0; a < axes.size(); ++a) {
      overrides.push_back(axes[a].first + "=" + points[p][a].dump());
      point_axes.emplace_back(axes[a].first, points[p][a]);
    }
    Config config;
    try {
      config = base.empty() ? default_config(overrides) : load_config(base, overrides);
    } catch (const std::exception& e) {
      fail(path, "point " + std::to_string(p) + " (" + axes_text(point_axes) + "): " + e.what());
    }
    const std::string config_text = to_json(config).dump();
    for (std::size_t m = 0; m < models.size(); ++m) {
      SweepItem item;
      item.index = p * models.size() + m;
      item.point = p;
      item.axes = point_axes;
      item.model = models[m];
      item.model_path = resolve(models[m]);
      item.config = config;
      char key[17];
      std::snprintf(key, sizeof key, "%016llx",
                    static_cast<unsigned long long>(fnv1a(
                        config_text + "\n" + model_hashes[m] + "\n" +
                        (sweep.timing_only ? "timing_only" : "functional"))));
      item.key = key;
      sweep.items.push_back(std::move(item));
    }
  }
  return sweep;
}

std::size_t run_sweep(const Sweep& sweep, const SweepRunOptions& options) {
  if (options.shards == 0 || options.shard >= options.shards)
    throw std::invalid_argument("--shard I/N needs 0 <= I < N");
  std::error_code ec;
  fs::create_directories(options.out_dir, ec);
  if (!fs::is_directory(options.out_dir))
    fail(options.out_dir, "cannot create the output directory (" + ec.message() + ")");
  const std::string results_path = (fs::path(options.out_dir) / "results.jsonl").string();
  std::set<std::string> done;
  if (fs::exists(results_path) && fs::file_size(results_path, ec) > 0) {
    if (!options.resume)
      fail(results_path, "already holds results: --resume continues it, or choose another --out");
    for (const json& r : read_results(results_path, true)) done.insert(r.value("key", ""));
  }
  std::vector<const SweepItem*> todo;
  for (const SweepItem& item : sweep.items)
    if (item.index % options.shards == options.shard && !done.count(item.key))
      todo.push_back(&item);

  const int fd = open(results_path.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0666);
  if (fd < 0) fail(results_path, std::string("cannot open (") + std::strerror(errno) + ")");
  SweepProgress progress;
  progress.total = todo.size();
  const auto t0 = std::chrono::steady_clock::now();
  const bool timing_only = sweep.timing_only;
  run_in_children(
      todo.size(), options.jobs,
      [&](std::size_t i) {
        RunOptions o;
        o.timing_only = timing_only;
        const SweepItem& item = *todo[i];
        const Run run = run_model(item.config, load_model(item.model_path), item.model, o);
        return totals_of(run.report_json()).dump();
      },
      [&](std::size_t i, const ChildOutcome& out) {
        const SweepItem& item = *todo[i];
        json axes = json::array();
        for (const auto& [k, v] : item.axes) axes.push_back({k, v});
        json line = {{"key", item.key}, {"item", item.index}, {"point", item.point},
                     {"model", item.model}, {"axes", axes}};
        if (out.ok) {
          line["status"] = "ok";
          line["totals"] = json::parse(out.output);
        } else {
          line["status"] = "failed";
          line["error"] = out.error;
          ++progress.failed;
        }
        // One write of one whole line: a kill leaves the file ending on a line boundary, or a
        // torn tail that --resume cuts off.
        const std::string text = line.dump() + "\n";
        if (write(fd, text.data(), text.size()) != ssize_t(text.size()))
          fail(results_path, std::string("cannot append (") + std::strerror(errno) + ")");
        ++progress.done;
        progress.seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (options.progress) options.progress(progress);
      });
  if (close(fd) != 0) fail(results_path, std::string("cannot close (") + std::strerror(errno) + ")");
  write_summary(options.out_dir, read_results(results_path, false));
  return progress.failed;
}

void merge_sweeps(const std::vector<std::string>& dirs, const std::string& out_dir) {
  std::map<std::size_t, json> by_item;
  for (const std::string& dir : dirs) {
    const std::string path = (fs::path(dir) / "results.jsonl").string();
    if (!fs::is_regular_file(path)) fail(dir, "no results.jsonl here: not a sweep output directory");
    for (json& r : read_results(path, false)) by_item.emplace(r.at("item").get<std::size_t>(), r);
  }
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  std::string text;
  std::vector<json> results;
  for (auto& [item, r] : by_item) {
    text += r.dump() + "\n";
    results.push_back(r);
  }
  write_output_file((fs::path(out_dir) / "results.jsonl").string(), text);
  write_summary(out_dir, results);
}

}  // namespace tpu
