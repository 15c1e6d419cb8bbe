#pragma once
// `tpusim plot`: figures of a sweep's summary.csv and a run's JSON report, drawn by gnuplot.
// Making a figure is split in two: building a Plot (the series, their points and labels, the
// axes) from the input, which is plain data and tested without gnuplot, and rendering it, which
// writes a gnuplot script with the data inline and runs Debian's `gnuplot` (gnuplot-nox) on it.
//   sweep     one line per model (or per value of the --by axis) of a metric against an axis;
//             lines are split further by any other axis or model that varies, so every line
//             is a function of x; failed items are skipped with a note
//   roofline  per layer, operational intensity (2 * macs / HBM bytes, ops per byte) against
//             attained throughput (2 * macs / layer latency, TOPS), under the compute roof
//             (2 * rows * cols * clock_mhz / 1e6 TOPS) and the bandwidth roof (intensity *
//             peak GB/s / 1000 TOPS; none for the ideal memory), both from the report's config
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/config/user_input.h"

namespace tpu {

struct PlotSeries {
  enum class Style { kLinesPoints, kLabelledPoints, kLine };
  std::string title;
  Style style = Style::kLinesPoints;
  // kLinesPoints: series with the same colour share the --by value; the same shape (point and
  // dash pattern), the other values that split lines. -1: by position.
  int color = -1, shape = -1;
  std::vector<std::pair<double, double>> points;  // (x, y), in drawing order
  // kLabelledPoints: one per point, right and left of it; "" for none.
  std::vector<std::string> labels, left_labels;
};

struct Plot {
  std::string title, x_label, y_label;
  bool log_x = false, log_y = false;
  // Axis ranges (low, high); equal means chosen by gnuplot from the data, with a margin.
  std::pair<double, double> x_range{0, 0}, y_range{0, 0};
  std::string key = "outside right top";  // gnuplot's `set key` placement
  std::vector<double> x_ticks;  // ticks at exactly these x values; none: gnuplot's choice
  // A categorical x axis (an axis of strings such as hbm.preset): point x values are indices
  // into these names, which label the ticks.
  std::vector<std::string> x_categories;
  std::vector<PlotSeries> series;
};

// A sweep's summary.csv (tools/sweep/sweep.h): its header and rows of fields.
struct SweepTable {
  std::string source;  // the file, for messages
  std::vector<std::string> header;
  std::vector<CsvRecord> rows;  // each with its line, for messages
};

// `path` is a sweep output directory or its summary.csv. Errors name the file.
SweepTable read_sweep_summary(const std::string& path);

struct SweepPlotOptions {
  std::string x, y;
  std::string by = "model";
  bool log_x = false, log_y = false;
};

// Errors name the file and the column and list the allowed columns. Each skipped (failed or
// unplottable) row adds a note.
Plot sweep_plot(const SweepTable& table, const SweepPlotOptions& options,
                std::vector<std::string>* notes);

// A `tpusim run --json` report. Errors name the file.
nlohmann::json read_run_report(const std::string& path);

// `report` is `tpusim run --json` output read from `source`. Layers that cannot be placed on
// the log-log axes (no MACs, no HBM traffic, no cycles) add a note.
Plot roofline_plot(const nlohmann::json& report, const std::string& source,
                   std::vector<std::string>* notes);

// The gnuplot script that draws `plot` into `output`, the terminal chosen by its extension
// (.svg or .png); the data is inline, so the script stands alone.
std::string gnuplot_script(const Plot& plot, const std::string& output);

// Refuses an output whose extension is not .svg or .png (one line naming it and the choices).
void check_plot_format(const std::string& output);

// Runs gnuplot on the script for `output` and moves the image into place atomically
// (tools/run/output_file.h). Throws a one-line error when gnuplot is missing or fails (ending
// with the last line gnuplot printed to stderr, its reason); on success its warnings go to
// stderr.
void render_plot(const Plot& plot, const std::string& output);

}  // namespace tpu
