#include "tools/plot/plot.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>

#include "sim/config/config.h"
#include "sim/config/user_input.h"
#include "tools/report/report.h"
#include "tools/run/child.h"
#include "tools/run/output_file.h"

namespace tpu {
namespace {

// Sweep summaries and reports are tool output and can outgrow the limit on hand-written input.
constexpr std::uint64_t kMaxPlotInputBytes = std::uint64_t(1) << 30;

// Up to this many distinct x values are each given a tick.
constexpr std::size_t kMaxExactTicks = 12;

[[noreturn]] void fail(const std::string& source, const std::string& what) {
  throw std::runtime_error(source + ": " + what);
}

std::string joined(const std::vector<std::string>& items) {
  std::string text;
  for (const std::string& s : items) text += (text.empty() ? "" : ", ") + s;
  return text;
}

std::optional<double> number(const std::string& text) {
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text.c_str(), &end);
  if (*end != '\0' || errno == ERANGE || !std::isfinite(v)) return std::nullopt;
  return v;
}

// An axis label: the column as the user names it, with its unit when it has one.
std::string column_label(const std::string& column) {
  static const std::map<std::string, std::string> kKnown = {
      {"cycles", "cycles"},
      {"latency_us", "latency_us (microseconds)"},
      {"tops", "tops (tera-operations per second)"},
      {"utilization", "utilization (MACs per PE-cycle)"},
      {"hbm_bytes", "hbm_bytes (HBM bytes read + written)"}};
  if (auto it = kKnown.find(column); it != kKnown.end()) return it->second;
  static const std::pair<const char*, const char*> kSuffixes[] = {
      {"_us", "microseconds"}, {"_ns", "nanoseconds"}, {"_uj", "microjoules"},
      {"_nj", "nanojoules"},   {"_pj", "picojoules"},  {"_mw", "milliwatts"},
      {"_w", "watts"},         {"_bytes", "bytes"},    {"_gbs", "GB/s"},
      {"_mhz", "MHz"}};
  for (const auto& [suffix, unit] : kSuffixes) {
    const std::string s = suffix;
    if (column.size() > s.size() && column.compare(column.size() - s.size(), s.size(), s) == 0)
      return column + " (" + unit + ")";
  }
  return column;
}

// gnuplot single-quoted string: only the quote itself is special, written twice.
std::string quoted(const std::string& text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

std::string extension_of(const std::string& output) {
  std::string ext = std::filesystem::path(output).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) {
    return char(std::tolower(c));
  });
  return ext;
}

// One key column's part of a series title: a model by its file name, else column=value.
std::string series_part(const std::string& column, const std::string& value) {
  if (column == "model") return std::filesystem::path(value).filename().string();
  return column + "=" + value;
}

// Places a label beside each point on log-log axes spanning `x_range` by `y_range`: a point on
// top of a labelled one joins that label ("conv3 +2"); the others are labelled right of the
// point or else left of it, where the label covers none placed before; the rest stay
// unlabelled and are counted in the result.
// Sizes are estimates for the 8-point label font: a character about 1/140 of the plot's width,
// a line about 1/45 of its height.
std::size_t place_labels(PlotSeries& series, const std::vector<std::string>& names,
                         std::pair<double, double> x_range, std::pair<double, double> y_range) {
  const double decades_x = std::log10(x_range.second / x_range.first);
  const double decades_y = std::log10(y_range.second / y_range.first);
  const double char_w = decades_x / 140, line_h = decades_y / 45;
  struct Box {
    double x0, x1, y0, y1;
  };
  std::vector<Box> placed;
  auto free = [&](const Box& b) {
    for (const Box& o : placed)
      if (b.x0 < o.x1 && o.x0 < b.x1 && b.y0 < o.y1 && o.y0 < b.y1) return false;
    return true;
  };
  const std::size_t n = series.points.size();
  series.labels.assign(n, "");
  series.left_labels.assign(n, "");
  std::vector<std::size_t> joined(n, 0);
  std::vector<std::size_t> owner;  // the labelled point of each placed box
  std::size_t unlabelled = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double x = std::log10(series.points[i].first);
    const double y = std::log10(series.points[i].second);
    const double w = double(names[i].size() + 3) * char_w;  // room for " +N"
    const Box right{x + char_w, x + char_w + w, y, y + line_h};
    const Box left{x - char_w - w, x - char_w, y, y + line_h};
    auto same = std::find_if(owner.begin(), owner.end(), [&](std::size_t a) {
      return std::fabs(x - std::log10(series.points[a].first)) < char_w &&
             std::fabs(y - std::log10(series.points[a].second)) < line_h / 2;
    });
    if (same != owner.end()) {
      ++joined[*same];
    } else if (free(right)) {
      placed.push_back(right);
      owner.push_back(i);
      series.labels[i] = names[i];
    } else if (free(left)) {
      placed.push_back(left);
      owner.push_back(i);
      series.left_labels[i] = names[i];
    } else {
      ++unlabelled;
    }
  }
  for (std::size_t a : owner) {
    if (joined[a] == 0) continue;
    std::string& label = series.labels[a].empty() ? series.left_labels[a] : series.labels[a];
    label += " +" + std::to_string(joined[a]);
  }
  return unlabelled;
}

// A tick label: up to three significant digits with an SI prefix (20k, 1.5M, 0.5).
std::string tick_label(double v) {
  static const std::pair<double, const char*> kPrefixes[] = {
      {1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "k"}};
  for (const auto& [scale, prefix] : kPrefixes)
    if (std::fabs(v) >= scale) return format("%.3g", v / scale) + prefix;
  return format("%.3g", v);
}

// Ticks for a log axis over [lo, hi]: gnuplot labels only powers of ten, which leaves a range
// within one decade unlabelled. 1-2-5 steps (every digit within a decade, only powers of ten
// beyond four); empty (gnuplot's own) when fewer than two fall inside.
std::string log_ticks(double lo, double hi) {
  if (!(lo > 0) || !(hi > lo)) return "";
  const double decades = std::log10(hi / lo);
  const std::vector<int> steps = decades < 1   ? std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8, 9}
                                 : decades < 4 ? std::vector<int>{1, 2, 5}
                                               : std::vector<int>{1};
  std::string ticks;
  int n = 0;
  for (int e = int(std::floor(std::log10(lo))); e <= int(std::ceil(std::log10(hi))); ++e) {
    for (int m : steps) {
      const double v = m * std::pow(10.0, e);
      if (v < lo || v > hi) continue;
      ticks += (n++ ? ", " : "") + quoted(tick_label(v)) + " " + format("%.10g", v);
    }
  }
  return n >= 2 ? "(" + ticks + ")" : "";
}

}  // namespace

SweepTable read_sweep_summary(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const std::string file =
      fs::is_directory(path, ec) ? (fs::path(path) / "summary.csv").string() : path;
  std::string why;
  std::optional<std::string> text = read_file(file, kMaxPlotInputBytes, &why);
  if (!text) fail(file, "cannot open file (" + why + ")");
  std::vector<CsvRecord> lines = parse_csv(*text, file);
  if (lines.empty()) fail(file, "empty file; expected a sweep summary (tpusim sweep --out DIR)");
  SweepTable table;
  table.source = file;
  table.header = std::move(lines[0].fields);
  for (const char* required : {"model", "status"}) {
    if (std::find(table.header.begin(), table.header.end(), required) == table.header.end())
      fail(file, std::string("no column '") + required +
                     "': not a sweep summary (tpusim sweep --out DIR writes DIR/summary.csv)");
  }
  for (std::size_t i = 1; i < lines.size(); ++i) {
    if (lines[i].fields.size() != table.header.size())
      fail(file, "line " + std::to_string(lines[i].line) + " has " +
                     std::to_string(lines[i].fields.size()) + " fields, the header " +
                     std::to_string(table.header.size()));
    table.rows.push_back(std::move(lines[i]));
  }
  return table;
}

Plot sweep_plot(const SweepTable& table, const SweepPlotOptions& options,
                std::vector<std::string>* notes) {
  const std::vector<std::string>& header = table.header;
  auto index_of = [&](const std::string& name) {
    return std::size_t(std::find(header.begin(), header.end(), name) - header.begin());
  };
  const std::size_t status = index_of("status");
  const std::size_t model = index_of("model");
  const std::size_t error = index_of("error");
  // Columns that tell points apart (the axes, between "point" and "model", and the model) and
  // the columns that can be drawn: those plus every column after "error" (the totals).
  const std::size_t first_axis = header.size() > 1 && header[1] == "point" ? 2 : 0;
  std::vector<std::string> keys(header.begin() + long(first_axis), header.begin() + long(model) + 1);
  std::vector<std::string> drawable = keys;
  if (error < header.size())
    drawable.insert(drawable.end(), header.begin() + long(error) + 1, header.end());

  std::vector<const std::vector<std::string>*> ok;
  for (const CsvRecord& record : table.rows) {
    const std::vector<std::string>& row = record.fields;
    if (row[status] == "ok") {
      ok.push_back(&row);
    } else if (notes) {
      std::string axes;
      for (std::size_t k = first_axis; k < model; ++k)
        axes += (axes.empty() ? "" : ", ") + header[k] + "=" + row[k];
      notes->push_back(table.source + ": skipping line " + std::to_string(record.line) + " (" +
                       row[model] + (axes.empty() ? "" : ", " + axes) + "): " + row[status] +
                       (error < header.size() && !row[error].empty() ? ": " + row[error] : ""));
    }
  }
  auto numeric = [&](std::size_t column) {
    for (const auto* row : ok)
      if (!number((*row)[column])) return false;
    return !ok.empty();
  };
  std::vector<std::string> numeric_columns;
  for (const std::string& c : drawable)
    if (numeric(index_of(c))) numeric_columns.push_back(c);

  auto check_column = [&](const char* flag, const std::string& name,
                          const std::vector<std::string>& allowed) {
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end())
      fail(table.source, std::string(flag) + " " + name + ": no such " +
                             (std::find(header.begin(), header.end(), name) != header.end()
                                  ? "plottable column"
                                  : "column") +
                             "; allowed: " + joined(allowed));
  };
  check_column("--x", options.x, drawable);
  std::vector<std::string> by_allowed;
  for (const std::string& k : keys)
    if (k != options.x) by_allowed.push_back(k);
  check_column("--by", options.by, by_allowed);
  // Which columns hold numbers is known from the successful items only.
  if (ok.empty()) fail(table.source, "no successful items to plot");
  check_column("--y", options.y, numeric_columns);

  Plot plot;
  plot.x_label = column_label(options.x);
  plot.y_label = column_label(options.y);
  plot.title = options.y + " against " + options.x + " (" + table.source + ")";
  plot.log_x = options.log_x;
  plot.log_y = options.log_y;
  const std::size_t x = index_of(options.x), y = index_of(options.y);
  const bool x_numeric = numeric(x);
  if (!x_numeric) {
    if (options.log_x)
      fail(table.source, "--log-x: column " + options.x + " holds names, not numbers");
    for (const auto* row : ok)
      if (std::find(plot.x_categories.begin(), plot.x_categories.end(), (*row)[x]) ==
          plot.x_categories.end())
        plot.x_categories.push_back((*row)[x]);
  }

  // A series is the --by value plus every other key column that still varies between rows of
  // one x value, so no line joins points that differ in something besides x (a column zipped
  // with x, such as array.cols with array.rows, does not split).
  std::vector<std::size_t> split = {index_of(options.by)};
  auto key_of = [&](const std::vector<std::string>& row) {
    std::vector<std::string> key;
    for (std::size_t c : split) key.push_back(row[c]);
    return key;
  };
  for (const std::string& k : keys) {
    const std::size_t c = index_of(k);
    if (c == x || c == split[0]) continue;
    std::map<std::pair<std::string, std::vector<std::string>>, std::string> seen;
    for (const auto* row : ok) {
      auto [it, added] = seen.emplace(std::make_pair((*row)[x], key_of(*row)), (*row)[c]);
      if (!added && it->second != (*row)[c]) {
        split.push_back(c);
        break;
      }
    }
  }
  std::map<std::vector<std::string>, std::size_t> series_of;  // key values -> index
  std::map<std::string, int> colors;                          // --by value -> colour
  std::map<std::vector<std::string>, int> shapes;             // the other values -> shape
  for (const auto* row : ok) {
    const std::vector<std::string> key = key_of(*row);
    auto [it, added] = series_of.emplace(key, plot.series.size());
    if (added) {
      PlotSeries s;
      for (std::size_t i = 0; i < split.size(); ++i)
        s.title += (i ? ", " : "") + series_part(header[split[i]], key[i]);
      s.color = colors.emplace(key[0], int(colors.size())).first->second;
      s.shape = shapes.emplace(std::vector<std::string>(key.begin() + 1, key.end()),
                               int(shapes.size()))
                    .first->second;
      plot.series.push_back(std::move(s));
    }
    const double xv =
        x_numeric ? *number((*row)[x])
                  : double(std::find(plot.x_categories.begin(), plot.x_categories.end(),
                                     (*row)[x]) - plot.x_categories.begin());
    plot.series[it->second].points.emplace_back(xv, *number((*row)[y]));
  }
  for (PlotSeries& s : plot.series) std::sort(s.points.begin(), s.points.end());
  // A sweep axis has few values: tick exactly those.
  if (x_numeric) {
    std::set<double> xs;
    for (const PlotSeries& s : plot.series)
      for (const auto& p : s.points) xs.insert(p.first);
    if (xs.size() <= kMaxExactTicks) plot.x_ticks.assign(xs.begin(), xs.end());
  }
  // Log axes cannot show zero or negative values: say which points are left out.
  for (PlotSeries& s : plot.series) {
    auto bad = [&](const std::pair<double, double>& p) {
      return (options.log_x && p.first <= 0) || (options.log_y && p.second <= 0);
    };
    const auto n = std::count_if(s.points.begin(), s.points.end(), bad);
    if (n > 0 && notes)
      notes->push_back(table.source + ": " + s.title + ": " + std::to_string(n) +
                       " point(s) not positive, left off the log scale");
    s.points.erase(std::remove_if(s.points.begin(), s.points.end(), bad), s.points.end());
  }
  return plot;
}

nlohmann::json read_run_report(const std::string& path) {
  std::string why;
  std::optional<std::string> text = read_file(path, kMaxPlotInputBytes, &why);
  if (!text) fail(path, "cannot open file (" + why + ")");
  try {
    return parse_json(*text);
  } catch (const JsonSyntaxError& e) {
    fail(path, e.what());
  }
}

Plot roofline_plot(const nlohmann::json& report, const std::string& source,
                   std::vector<std::string>* notes) {
  if (!report.is_object() || !report.contains("config") || !report.contains("layers"))
    fail(source, "not a run report (tpusim run --json F writes one): no 'config' or 'layers'");
  const Config config = parse_config(report.at("config"), source + ": config", {});
  const double roof_tops = peak_tops(config);
  const double roof_gbs = peak_gbs(config);  // infinite for ideal

  Plot plot;
  plot.log_x = plot.log_y = true;
  plot.key = "inside bottom right box opaque";
  const std::string dtype = report.contains("model") ? report["model"].value("dtype", "") : "";
  const std::string ops = dtype == "bf16" ? "FLOP" : "op";
  plot.x_label = "operational intensity (" + ops + "s per HBM byte)";
  plot.y_label = "attained throughput (" + std::string(dtype == "bf16" ? "TFLOPS" : "TOPS") + ")";
  const std::string model =
      report.contains("model") ? report["model"].value("name", "") : std::string();
  plot.title = "roofline of " + (model.empty() ? source : model) + ": " +
               std::to_string(config.array.rows) + "x" + std::to_string(config.array.cols) +
               " array at " + format("%g", config.clock_mhz) + " MHz, " + config.hbm.preset;

  PlotSeries layers;
  layers.title = "layers";
  layers.style = PlotSeries::Style::kLabelledPoints;
  std::vector<std::string> names;
  for (const nlohmann::json& l : report.at("layers")) {
    const std::string name = l.value("name", "?");
    const double macs = l.value("macs", 0.0);
    const double cycles = l.value("cycles", 0.0);
    const double bytes = l.value("hbm_read_bytes", 0.0) + l.value("hbm_write_bytes", 0.0);
    if (macs <= 0 || cycles <= 0 || bytes <= 0) {
      if (notes)
        notes->push_back(source + ": layer " + name + " not plotted: " +
                         (macs <= 0 ? "no MACs" : cycles <= 0 ? "no cycles" : "no HBM traffic"));
      continue;
    }
    const double intensity = 2.0 * macs / bytes;
    const double tops = 2.0 * macs / (cycles / config.clock_mhz * 1e-6) / 1e12;
    layers.points.emplace_back(intensity, tops);
    names.push_back(name);
  }
  if (layers.points.empty()) fail(source, "no layer has MACs, cycles and HBM traffic to plot");

  auto note_crowding = [&](std::size_t unlabelled) {
    if (unlabelled > 0 && notes)
      notes->push_back(source + ": " + std::to_string(unlabelled) +
                       " layer(s) drawn without a label, crowded out by their neighbours'");
  };
  // The roofs span the layers' intensities with a factor of 4 of margin, and the ridge point.
  double lo = layers.points[0].first, hi = lo;
  for (const auto& p : layers.points) {
    lo = std::min(lo, p.first);
    hi = std::max(hi, p.first);
  }
  lo /= 4;
  hi *= 4;
  double bottom = layers.points[0].second;
  for (const auto& p : layers.points) bottom = std::min(bottom, p.second);
  plot.y_range = {bottom / 3, roof_tops * 3};
  PlotSeries compute;
  compute.title = "compute roof " + format("%.4g", roof_tops) + " TOPS";
  compute.style = PlotSeries::Style::kLine;
  if (std::isinf(roof_gbs)) {
    compute.title += " (ideal memory: no bandwidth roof)";
    compute.points = {{lo, roof_tops}, {hi, roof_tops}};
    plot.x_range = {lo, hi};
    note_crowding(place_labels(layers, names, plot.x_range, plot.y_range));
    plot.series = {compute, layers};
    return plot;
  }
  // The roof is min(roof_tops, intensity * roof_gbs / 1000): bytes/ns * ops/byte = Gops/s.
  const double ridge = roof_tops * 1000.0 / roof_gbs;
  lo = std::min(lo, ridge / 4);
  hi = std::max(hi, ridge * 4);
  PlotSeries bandwidth;
  bandwidth.title = "bandwidth roof " + format("%.4g", roof_gbs) + " GB/s";
  bandwidth.style = PlotSeries::Style::kLine;
  bandwidth.points = {{lo, lo * roof_gbs / 1000.0}, {ridge, roof_tops}};
  compute.points = {{ridge, roof_tops}, {hi, roof_tops}};
  plot.x_range = {lo, hi};
  note_crowding(place_labels(layers, names, plot.x_range, plot.y_range));
  plot.series = {compute, bandwidth, layers};
  return plot;
}

void check_plot_format(const std::string& output) {
  const std::string ext = extension_of(output);
  if (ext != ".svg" && ext != ".png")
    throw std::invalid_argument("--out " + output +
                                ": the extension chooses the format; allowed: .svg, .png");
}

std::string gnuplot_script(const Plot& plot, const std::string& output) {
  check_plot_format(output);
  std::string s;
  // noenhanced: column and layer names are shown as written (no _ subscripts).
  if (extension_of(output) == ".svg")
    // The svg terminal draws points about twice the size pngcairo does.
    s += "set terminal svg size 900,600 dynamic noenhanced font 'Sans,12' background '#ffffff'\n"
         "set pointsize 0.6\n";
  else
    s += "set terminal pngcairo size 1200,800 noenhanced font 'Sans,12' background '#ffffff'\n";
  s += "set output " + quoted(output) + "\n";
  s += "set title " + quoted(plot.title) + "\n";
  s += "set xlabel " + quoted(plot.x_label) + "\n";
  s += "set ylabel " + quoted(plot.y_label) + "\n";
  s += "set grid\nset key " + plot.key + "\n";
  if (plot.x_range.first < plot.x_range.second)
    s += "set xrange [" + format("%.10g", plot.x_range.first) + ":" +
         format("%.10g", plot.x_range.second) + "]\n";
  else  // the data's extent plus a margin, not the next round (log: decade) numbers
    s += "set autoscale fix\nset offsets graph 0.05, graph 0.05, graph 0.05, graph 0.05\n";
  if (plot.y_range.first < plot.y_range.second)
    s += "set yrange [" + format("%.10g", plot.y_range.first) + ":" +
         format("%.10g", plot.y_range.second) + "]\n";
  if (plot.log_x) s += "set logscale x\n";
  if (plot.log_y) s += "set logscale y\n";
  // Log axes: the data's extent, or the set range, with the margin the offsets add.
  for (const bool is_x : {true, false}) {
    if (!(is_x ? plot.log_x : plot.log_y) || (is_x && !plot.x_ticks.empty())) continue;
    std::pair<double, double> range = is_x ? plot.x_range : plot.y_range;
    if (!(range.first < range.second)) {
      range = {HUGE_VAL, 0};
      for (const PlotSeries& series : plot.series)
        for (const auto& p : series.points) {
          const double v = is_x ? p.first : p.second;
          range = {std::min(range.first, v), std::max(range.second, v)};
        }
      const double margin = std::pow(range.second / range.first, 0.05);
      range = {range.first / margin, range.second * margin};
    }
    const std::string ticks = log_ticks(range.first, range.second);
    if (!ticks.empty()) s += std::string(is_x ? "set xtics " : "set ytics ") + ticks + "\n";
  }
  if (!plot.x_ticks.empty()) {
    s += "set xtics (";
    for (std::size_t i = 0; i < plot.x_ticks.size(); ++i)
      s += (i ? ", " : "") + quoted(tick_label(plot.x_ticks[i])) + " " +
           format("%.10g", plot.x_ticks[i]);
    s += ")\n";
  }
  if (!plot.x_categories.empty()) {
    s += "set xtics (";
    for (std::size_t i = 0; i < plot.x_categories.size(); ++i)
      s += (i ? ", " : "") + quoted(plot.x_categories[i]) + " " + std::to_string(i);
    s += ")\n";
  }
  // The data, one block per series: x y [label].
  for (std::size_t i = 0; i < plot.series.size(); ++i) {
    const PlotSeries& series = plot.series[i];
    s += "$s" + std::to_string(i) + " << EOD\n# " + series.title + "\n";
    for (std::size_t p = 0; p < series.points.size(); ++p) {
      s += format("%.10g", series.points[p].first) + " " +
           format("%.10g", series.points[p].second);
      if (series.style == PlotSeries::Style::kLabelledPoints) {
        for (std::string label : {series.labels[p], series.left_labels[p]}) {
          // A data field in double quotes: none inside.
          std::replace(label.begin(), label.end(), '"', '\'');
          std::replace(label.begin(), label.end(), '\n', ' ');
          s += " \"" + label + "\"";
        }
      }
      s += "\n";
    }
    s += "EOD\n";
  }
  s += "plot";
  for (std::size_t i = 0; i < plot.series.size(); ++i) {
    const PlotSeries& series = plot.series[i];
    const std::string data = " $s" + std::to_string(i);
    s += i ? ", \\\n    " : "";
    switch (series.style) {
      case PlotSeries::Style::kLinesPoints: {
        // Filled circle, square, triangles, diamond, pentagon.
        static const int kPoints[] = {7, 5, 9, 11, 13, 15};
        const int color = series.color >= 0 ? series.color : int(i);
        const int shape = series.shape >= 0 ? series.shape : 0;
        s += data + " using 1:2 with linespoints lw 2 lc " + std::to_string(color + 1) + " pt " +
             std::to_string(kPoints[shape % 6]) + " dt " + std::to_string(shape % 5 + 1) +
             " title " + quoted(series.title);
        break;
      }
      case PlotSeries::Style::kLine:
        s += data + " using 1:2 with lines lw 3 title " + quoted(series.title);
        break;
      case PlotSeries::Style::kLabelledPoints:
        s += data + " using 1:2 with points pt 7 lc rgb '#1f77b4' title " +
             quoted(series.title) + ", \\\n    " + data +
             " using 1:2:3 with labels left offset char 0.6,0.4 font ',8' tc rgb '#333333' "
             "notitle, \\\n    " + data +
             " using 1:2:4 with labels right offset char -0.6,0.4 font ',8' tc rgb '#333333' "
             "notitle";
        break;
    }
  }
  return s + "\n";
}

void render_plot(const Plot& plot, const std::string& output) {
  check_plot_format(output);
  StagedOutput image(output, extension_of(output));
  const std::string script = gnuplot_script(plot, image.staging_path());
  // The script lives in the temporary directory only while gnuplot reads it: never committed.
  StagedOutput script_file(output + ".gp", ".gp");
  write_output_file(script_file.staging_path(), script);

  const std::optional<ProgramOutcome> gnuplot =
      run_program({"gnuplot", script_file.staging_path()});
  if (!gnuplot)
    throw std::runtime_error(
        "cannot run gnuplot (not on PATH): install it, e.g. apt-get install gnuplot-nox");
  if (gnuplot->status != 0) {
    const std::string why = last_line(gnuplot->err);
    throw std::runtime_error("gnuplot failed drawing " + output + " (" +
                             (gnuplot->status < 0 ? std::string("killed by a signal")
                                                  : "exit " + std::to_string(gnuplot->status)) +
                             ")" + (why.empty() ? "" : ": " + why));
  }
  // Its warnings reach the terminal, as when it wrote there itself.
  std::fputs(gnuplot->err.c_str(), stderr);
  image.commit();
}

}  // namespace tpu
