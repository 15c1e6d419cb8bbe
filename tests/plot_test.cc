// `tpusim plot` (tools/plot/plot.h): the series, points and roofs built from a sweep summary
// and a run report, checked by hand without gnuplot; the script gnuplot is given; and, where
// gnuplot is installed, the image it draws.
#include "tools/plot/plot.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/config/config.h"
#include "tests/cli_helpers.h"

namespace tpu {
namespace {

using nlohmann::json;
using test_shell::fresh_dir;
using test_shell::slurp;
using test_shell::tpusim;

// A zipped sweep (array.cols follows array.rows) over two models; one item failed.
const char* const kZipped =
    "item,point,array.cols,array.rows,model,status,error,cycles,latency_us,tops,utilization,"
    "hbm_bytes,energy_uj\n"
    "0,0,32,32,../models/a.json,ok,,4000,4.0,0.5,0.25,1000,12.5\n"
    "1,0,32,32,../models/b.json,ok,,3000,3.0,0.6,0.3,900,10\n"
    "2,1,64,64,../models/a.json,ok,,2000,2.0,1.0,0.125,1000,8\n"
    "3,1,64,64,../models/b.json,failed,\"no HALT, deadlock\",,,,,,\n"
    "4,2,16,16,../models/a.json,ok,,8000,8.0,0.25,0.5,1000,20\n";

std::string write_summary(const std::string& text) {
  const std::string dir = fresh_dir("sweep");
  std::ofstream(dir + "/summary.csv") << text;
  return dir;
}

SweepPlotOptions axes(const std::string& x, const std::string& y, const std::string& by = "model") {
  SweepPlotOptions o;
  o.x = x;
  o.y = y;
  o.by = by;
  return o;
}

using Points = std::vector<std::pair<double, double>>;

TEST(PlotSweep, OneLinePerModelWithPointsInXOrderAndFailedItemsNoted) {
  const SweepTable table = read_sweep_summary(write_summary(kZipped));
  std::vector<std::string> notes;
  const Plot plot = sweep_plot(table, axes("array.rows", "cycles"), &notes);
  // array.cols moves with array.rows (zip), so it splits nothing: one line per model.
  ASSERT_EQ(plot.series.size(), 2u);
  EXPECT_EQ(plot.series[0].title, "a.json");
  EXPECT_EQ(plot.series[0].points, (Points{{16, 8000}, {32, 4000}, {64, 2000}}));
  EXPECT_EQ(plot.series[1].title, "b.json");
  EXPECT_EQ(plot.series[1].points, (Points{{32, 3000}}));
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("line 5"), std::string::npos) << notes[0];
  EXPECT_NE(notes[0].find("no HALT, deadlock"), std::string::npos) << notes[0];
  EXPECT_EQ(plot.x_label, "array.rows");
  EXPECT_EQ(plot.y_label, "cycles");
  EXPECT_EQ(plot.x_ticks, (std::vector<double>{16, 32, 64}));
}

TEST(PlotSweep, AnyNumericColumnOfTheHeaderCanBeDrawnWithItsUnit) {
  // energy_uj is not one of the columns the sweep runner writes today: taken from the header.
  const Plot plot =
      sweep_plot(read_sweep_summary(write_summary(kZipped)), axes("array.rows", "energy_uj"),
                 nullptr);
  EXPECT_EQ(plot.y_label, "energy_uj (microjoules)");
  EXPECT_EQ(plot.series[0].points, (Points{{16, 20}, {32, 12.5}, {64, 8}}));
}

TEST(PlotSweep, ByAnAxisSplitsFurtherByWhateverElseVaries) {
  // A product sweep: array.rows x hbm.preset, one model.
  const std::string csv =
      "item,point,array.rows,hbm.preset,model,status,error,cycles\n"
      "0,0,64,hbm2,m.json,ok,,100\n"
      "1,1,64,ideal,m.json,ok,,80\n"
      "2,2,128,hbm2,m.json,ok,,60\n"
      "3,3,128,ideal,m.json,ok,,40\n"
      "4,0,64,hbm2,n.json,ok,,300\n";
  const SweepTable table = read_sweep_summary(write_summary(csv) + "/summary.csv");
  const Plot by_preset = sweep_plot(table, axes("array.rows", "cycles", "hbm.preset"), nullptr);
  // Two presets and two models: a line per (preset, model) that has points.
  ASSERT_EQ(by_preset.series.size(), 3u);
  EXPECT_EQ(by_preset.series[0].title, "hbm.preset=hbm2, m.json");
  EXPECT_EQ(by_preset.series[0].points, (Points{{64, 100}, {128, 60}}));
  EXPECT_EQ(by_preset.series[1].title, "hbm.preset=ideal, m.json");
  EXPECT_EQ(by_preset.series[1].points, (Points{{64, 80}, {128, 40}}));
  EXPECT_EQ(by_preset.series[2].title, "hbm.preset=hbm2, n.json");
  // A colour per preset, a shape per model.
  EXPECT_EQ(by_preset.series[0].color, by_preset.series[2].color);
  EXPECT_NE(by_preset.series[0].color, by_preset.series[1].color);
  EXPECT_EQ(by_preset.series[0].shape, by_preset.series[1].shape);
  EXPECT_NE(by_preset.series[0].shape, by_preset.series[2].shape);

  // Names on the x axis: categories in order of appearance, ticked by name.
  const Plot by_name = sweep_plot(table, axes("hbm.preset", "cycles", "array.rows"), nullptr);
  EXPECT_EQ(by_name.x_categories, (std::vector<std::string>{"hbm2", "ideal"}));
  EXPECT_EQ(by_name.series[0].title, "array.rows=64, m.json");
  EXPECT_EQ(by_name.series[0].points, (Points{{0, 100}, {1, 80}}));
}

TEST(PlotSweep, LogScalesLeaveOutNonPositivePointsAndSaySo) {
  const std::string csv =
      "item,point,array.rows,model,status,error,cycles,utilization\n"
      "0,0,32,m.json,ok,,100,0\n"
      "1,1,64,m.json,ok,,50,0.5\n";
  std::vector<std::string> notes;
  SweepPlotOptions o = axes("array.rows", "utilization");
  o.log_y = true;
  const Plot plot = sweep_plot(read_sweep_summary(write_summary(csv)), o, &notes);
  EXPECT_EQ(plot.series[0].points, (Points{{64, 0.5}}));
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("1 point(s) not positive"), std::string::npos) << notes[0];
}

std::string error_of(const SweepTable& table, const SweepPlotOptions& o) {
  try {
    sweep_plot(table, o, nullptr);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST(PlotSweep, ErrorsNameTheFileTheColumnAndTheAllowedOnes) {
  const SweepTable table = read_sweep_summary(write_summary(kZipped));
  const std::string bad_y = error_of(table, axes("array.rows", "cycels"));
  EXPECT_NE(bad_y.find("summary.csv: --y cycels: no such column; allowed: array.cols, "
                       "array.rows, cycles, latency_us, tops, utilization, hbm_bytes, energy_uj"),
            std::string::npos)
      << bad_y;
  // model is a column, but holds names: not a --y.
  const std::string names = error_of(table, axes("array.rows", "model"));
  EXPECT_NE(names.find("--y model: no such plottable column"), std::string::npos) << names;
  const std::string bad_by = error_of(table, axes("array.rows", "cycles", "array.rows"));
  EXPECT_NE(bad_by.find("--by array.rows: no such plottable column; allowed: array.cols, model"),
            std::string::npos)
      << bad_by;
  EXPECT_NE(error_of(table, axes("status", "cycles")).find("--x status"), std::string::npos);
  const SweepTable failed = read_sweep_summary(write_summary(
      "item,point,array.rows,model,status,error,cycles\n0,0,32,m.json,failed,boom,\n"));
  EXPECT_NE(error_of(failed, axes("array.rows", "cycles")).find("no successful items"),
            std::string::npos);
}

TEST(PlotSweep, NotASummaryIsRefusedNamingTheFile) {
  const std::string dir = write_summary("a,b\n1,2\n");
  try {
    read_sweep_summary(dir);
    FAIL() << "accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find(dir + "/summary.csv: no column 'model'"),
              std::string::npos)
        << e.what();
  }
}

// A report for a 4x4 array at 100 MHz with 10 GB/s memory: peak 2 * 16 * 100e6 ops/s = 0.0032
// TOPS, bandwidth roof 10 GB/s, so the ridge is at 0.0032e12 / 10e9 = 0.32 ops per byte.
json small_report(const std::string& preset) {
  json hbm = {{"preset", preset}};
  if (preset == "simple") hbm["bandwidth_gbs"] = 10;
  const Config config = parse_config(
      {{"clock_mhz", 100}, {"array", {{"rows", 4}, {"cols", 4}}}, {"hbm", hbm}}, "small.json");
  return {{"model", {{"name", "tiny"}, {"dtype", "int8"}}},
          {"config", to_json(config)},
          // conv1: 2 * 1000 ops / 500 bytes = 4 ops per byte; 2000 ops in 100 cycles = 1 us:
          // 0.002 TOPS. fc1: 2 * 100 / 1000 = 0.2 ops per byte; 200 ops in 10 cycles (0.1 us):
          // 0.002 TOPS. pool1 has no MACs.
          {"layers",
           {{{"name", "conv1"}, {"macs", 1000}, {"cycles", 100}, {"hbm_read_bytes", 400},
             {"hbm_write_bytes", 100}},
            {{"name", "pool1"}, {"macs", 0}, {"cycles", 20}, {"hbm_read_bytes", 64},
             {"hbm_write_bytes", 0}},
            {{"name", "fc1"}, {"macs", 100}, {"cycles", 10}, {"hbm_read_bytes", 1000},
             {"hbm_write_bytes", 0}}}}};
}

void expect_points(const Points& got, const Points& want) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i].first, want[i].first, 1e-12 * want[i].first) << i;
    EXPECT_NEAR(got[i].second, want[i].second, 1e-12 * want[i].second) << i;
  }
}

TEST(PlotRoofline, LayersAndRoofsFromHandArithmetic) {
  std::vector<std::string> notes;
  const Plot plot = roofline_plot(small_report("simple"), "r.json", &notes);
  EXPECT_TRUE(plot.log_x && plot.log_y);
  ASSERT_EQ(plot.series.size(), 3u);
  const PlotSeries& compute = plot.series[0];
  const PlotSeries& bandwidth = plot.series[1];
  const PlotSeries& layers = plot.series[2];
  expect_points(layers.points, {{4, 0.002}, {0.2, 0.002}});
  EXPECT_EQ(layers.labels[0] + layers.left_labels[0], "conv1");
  EXPECT_EQ(layers.labels[1] + layers.left_labels[1], "fc1");
  // x spans the intensities / 4 .. * 4 and the ridge / 4 .. * 4: 0.05 .. 16.
  expect_points(bandwidth.points, {{0.05, 0.05 * 10 / 1000}, {0.32, 0.0032}});
  expect_points(compute.points, {{0.32, 0.0032}, {16, 0.0032}});
  EXPECT_EQ(compute.title, "compute roof 0.0032 TOPS");
  EXPECT_EQ(bandwidth.title, "bandwidth roof 10 GB/s");
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_EQ(notes[0], "r.json: layer pool1 not plotted: no MACs");
}

TEST(PlotRoofline, IdealMemoryHasNoBandwidthRoof) {
  const Plot plot = roofline_plot(small_report("ideal"), "r.json", nullptr);
  ASSERT_EQ(plot.series.size(), 2u);
  EXPECT_NE(plot.series[0].title.find("no bandwidth roof"), std::string::npos);
  // Intensities 0.2 and 4: the roof spans 0.05 .. 16.
  expect_points(plot.series[0].points, {{0.05, 0.0032}, {16, 0.0032}});
}

TEST(PlotRoofline, LayersOnTopOfEachOtherShareALabel) {
  json report = small_report("simple");
  json twin = report["layers"][0];
  twin["name"] = "conv2";
  report["layers"].push_back(twin);
  const PlotSeries layers = roofline_plot(report, "r.json", nullptr).series[2];
  ASSERT_EQ(layers.points.size(), 3u);
  EXPECT_EQ(layers.labels[0], "conv1 +1");
  EXPECT_EQ(layers.labels[2] + layers.left_labels[2], "");
}

TEST(PlotRoofline, NotAReportIsRefused) {
  EXPECT_THROW(roofline_plot(json{{"layers", json::array()}}, "x.json", nullptr),
               std::runtime_error);
}

TEST(PlotScript, TerminalFromTheExtensionAndTheDataInline) {
  Plot plot;
  plot.title = "t";
  plot.x_label = "array.rows";
  plot.y_label = "cycles";
  PlotSeries s;
  s.title = "it's";
  s.points = {{32, 4000}, {64, 2000}};
  plot.series = {s};
  const std::string svg = gnuplot_script(plot, "out.svg");
  EXPECT_NE(svg.find("set terminal svg "), std::string::npos) << svg;
  EXPECT_NE(svg.find("set output 'out.svg'"), std::string::npos);
  EXPECT_NE(svg.find("$s0 << EOD\n# it's\n32 4000\n64 2000\nEOD\n"), std::string::npos) << svg;
  EXPECT_NE(svg.find("title 'it''s'"), std::string::npos) << svg;
  EXPECT_NE(gnuplot_script(plot, "OUT.PNG").find("set terminal pngcairo "), std::string::npos);
  EXPECT_THROW(gnuplot_script(plot, "out.pdf"), std::invalid_argument);
}

TEST(PlotScript, LogAxesGetReadableTicksWithinADecade) {
  Plot plot;
  plot.log_y = true;
  PlotSeries s;
  s.points = {{1, 3000}, {2, 8000}};
  plot.series = {s};
  // 3000 .. 8000 with 5 % (of the log span) margin: every digit step, 3k to 8k.
  const std::string script = gnuplot_script(plot, "o.svg");
  EXPECT_NE(script.find("set ytics ('3k' 3000, '4k' 4000, '5k' 5000, '6k' 6000, '7k' 7000, "
                        "'8k' 8000)"),
            std::string::npos)
      << script;
}

bool have_gnuplot() { return std::system("command -v gnuplot >/dev/null 2>&1") == 0; }

TEST(PlotRender, GnuplotDrawsTheSvgWithTheSeriesNames) {
  if (!have_gnuplot()) {
    const char* require = std::getenv("TPUSIM_REQUIRE_GNUPLOT");
    if (require && std::string(require) == "1") FAIL() << "gnuplot is missing";
    GTEST_SKIP() << "gnuplot is not installed (apt-get install gnuplot-nox)";
  }
  const std::string dir = write_summary(kZipped);
  const std::string out = dir + "/cycles.svg";
  render_plot(sweep_plot(read_sweep_summary(dir), axes("array.rows", "cycles"), nullptr), out);
  const std::string svg = slurp(out);
  EXPECT_NE(svg.find("<svg"), std::string::npos);
  EXPECT_NE(svg.find("a.json"), std::string::npos);
  EXPECT_NE(svg.find("b.json"), std::string::npos);
  // Nothing is left beside the output.
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"cycles.svg", "summary.csv"}));
}

TEST(PlotCli, ErrorsAreOneLineAndNoImageIsLeft) {
  const std::string dir = write_summary(kZipped);
  test_shell::Outcome o = tpusim("plot sweep " + dir + " --x array.rows --y cycels --out " +
                                 dir + "/p.svg");
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
  EXPECT_NE(o.err.find("--y cycels: no such column; allowed:"), std::string::npos) << o.err;
  o = tpusim("plot sweep " + dir + " --x array.rows --y cycles --out " + dir + "/p.pdf");
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_NE(o.err.find("allowed: .svg, .png"), std::string::npos) << o.err;
  // Without gnuplot on the PATH: said so, with the package to install.
  o = tpusim("plot sweep " + dir + " --x array.rows --y cycles --out " + dir + "/p.svg",
             "PATH=/nonexistent ");
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_NE(o.err.find("cannot run gnuplot"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("gnuplot-nox"), std::string::npos) << o.err;
  EXPECT_FALSE(std::filesystem::exists(dir + "/p.svg"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/p.pdf"));
}

// gnuplot's own reason reaches the user: a stand-in first on the PATH fails as gnuplot does,
// the source line and a caret, then the file, line and message.
TEST(PlotCli, GnuplotFailurePrintsGnuplotsErrorLine) {
  const std::string dir = write_summary(kZipped);
  const std::string bin = fresh_dir("fake_gnuplot");
  {
    std::ofstream fake(bin + "/gnuplot");
    fake << "#!/bin/sh\n"
            "echo 'set terminal svg' >&2\n"
            "echo '             ^' >&2\n"
            "echo \"\\\"$1\\\" line 1: unknown or ambiguous terminal type\" >&2\n"
            "exit 1\n";
  }
  std::filesystem::permissions(bin + "/gnuplot", std::filesystem::perms::owner_all);
  const test_shell::Outcome o =
      tpusim("plot sweep " + dir + " --x array.rows --y cycles --out " + dir + "/p.svg",
             "PATH=" + bin + ":\"$PATH\" ");
  EXPECT_EQ(o.exit_code, 1);
  // The error is the last line, after the note on the failed item.
  const std::string error = o.err.substr(std::min(o.err.find("tpusim: error: "), o.err.size()));
  EXPECT_EQ(std::count(error.begin(), error.end(), '\n'), 1) << o.err;
  EXPECT_NE(error.find("gnuplot failed drawing " + dir + "/p.svg (exit 1): \""), std::string::npos)
      << o.err;
  EXPECT_NE(error.find(".gp\" line 1: unknown or ambiguous terminal type\n"), std::string::npos)
      << o.err;
  EXPECT_FALSE(std::filesystem::exists(dir + "/p.svg"));
}

}  // namespace
}  // namespace tpu
