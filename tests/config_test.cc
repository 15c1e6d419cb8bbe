// Config parsing: defaults, bundled configs, error messages for bad keys/types/values/files,
// --set overrides and the embedded default.
#include "sim/config/config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/config/config_keys.h"
#include "sim/config/user_input.h"
#include "tools/report/report.h"
#include "tests/cli_helpers.h"
#include "tests/test_paths.h"

namespace tpu {
namespace {

using nlohmann::json;

const std::string kSourceDir = tpu::test_paths::source_dir();
const std::vector<std::string> kBundled = {"default", "tpu_v1",  "tpu_v2",     "tpu_v3",
                                           "tpu_v4",  "tpu_v4_core", "tpu_v5e", "edge_32x32",
                                           "teach_8x8"};

// The ConfigError message parse_config raises for `doc`, or "" if it parses.
std::string error_of(const json& doc, const std::vector<std::string>& overrides = {}) {
  try {
    parse_config(doc, "configs/x.json", overrides);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

std::string write_temp(const std::string& name, const std::string& text) {
  const std::string path = tpu::test_shell::temp_path(name);
  std::ofstream(path) << text;
  return path;
}

TEST(Config, EmptyDocumentGivesStructDefaults) {
  const Config c = parse_config(json::object(), "empty.json");
  EXPECT_EQ(to_json(c), to_json(Config{}));
  EXPECT_EQ(c.source, "empty.json");
  EXPECT_EQ(c.array.rows, 128u);
  EXPECT_EQ(c.hbm.preset, "hbm2");
}

// A one-entry weight FIFO could not fill while the MXU reads it: 0 (none) or >= 2.
TEST(Config, WeightFifoOfOneTileIsRejected) {
  EXPECT_EQ(error_of({{"mxu", {{"weight_fifo_tiles", 1}}}}),
            "configs/x.json: mxu.weight_fifo_tiles = 1 is out of range (allowed 0 = no weight "
            "FIFO, or 2..65535: a one-tile FIFO cannot fill while the matrix unit reads it)");
  EXPECT_EQ(error_of({{"mxu", {{"weight_fifo_tiles", 0}}}}), "");
  EXPECT_EQ(error_of({{"mxu", {{"weight_fifo_tiles", 2}}}}), "");
  EXPECT_EQ(parse_config(json::object(), "x").mxu.weight_fifo_tiles, 4u);
  EXPECT_EQ(load_config(kSourceDir + "/configs/tpu_v1.json").mxu.weight_fifo_tiles, 0u);
}

TEST(Config, EmbeddedDefaultMatchesStructDefaults) {
  Config c = default_config();
  EXPECT_EQ(c.source, "<embedded default>");
  EXPECT_EQ(c.name, "default");
  EXPECT_FALSE(c.description.empty());
  // configs/default.json spells out every key; apart from its description it must agree with
  // the initialisers in config.h, so a partial config means "default.json plus changes".
  c.description.clear();
  EXPECT_EQ(to_json(c), to_json(Config{}));
}

TEST(Config, EmbeddedDefaultEqualsDefaultJsonOnDisk) {
  const Config disk = load_config(kSourceDir + "/configs/default.json");
  EXPECT_EQ(disk.source, kSourceDir + "/configs/default.json");
  EXPECT_EQ(to_json(disk), to_json(default_config()));
}

TEST(Config, EveryBundledConfigLoadsAndNamesItself) {
  for (const std::string& stem : kBundled) {
    SCOPED_TRACE(stem);
    const Config c = load_config(kSourceDir + "/configs/" + stem + ".json");
    EXPECT_EQ(c.name, stem);
    EXPECT_GT(c.description.size(), 20u);
    // Every bundled file lists every key explicitly.
    std::ifstream in(kSourceDir + "/configs/" + stem + ".json");
    const json doc = json::parse(in);
    for (const ConfigKey& key : config_keys()) {
      std::string pointer = "/" + std::string(key.path);
      std::replace(pointer.begin(), pointer.end(), '.', '/');
      EXPECT_TRUE(doc.contains(json::json_pointer(pointer))) << key.path;
    }
  }
}

TEST(Config, BundledDesignPoints) {
  const Config v1 = load_config(kSourceDir + "/configs/tpu_v1.json");
  EXPECT_EQ(v1.array.rows, 256u);
  EXPECT_EQ(v1.array.cols, 256u);
  EXPECT_DOUBLE_EQ(v1.clock_mhz, 700.0);
  EXPECT_EQ(v1.ub.capacity_bytes, 24ull << 20);
  EXPECT_EQ(v1.acc_rows(), 4096u);  // 4 MiB / (256 columns * 4 bytes)
  EXPECT_DOUBLE_EQ(v1.hbm.bandwidth_gbs, 34.0);
  EXPECT_EQ(v1.vector.lanes, 256u);

  const Config teach = load_config(kSourceDir + "/configs/teach_8x8.json");
  EXPECT_EQ(teach.array.rows, 8u);
  EXPECT_EQ(teach.hbm.preset, "ideal");
  EXPECT_EQ(teach.ub.capacity_bytes, 64u << 10);
  EXPECT_EQ(teach.vector.lanes, 8u);
  EXPECT_DOUBLE_EQ(teach.period_ns(), 10.0);

  EXPECT_EQ(load_config(kSourceDir + "/configs/edge_32x32.json").array.cols, 32u);
  EXPECT_DOUBLE_EQ(load_config(kSourceDir + "/configs/tpu_v4_core.json").clock_mhz, 1050.0);
}

TEST(Config, ToJsonRoundTrips) {
  for (const std::string& stem : kBundled) {
    SCOPED_TRACE(stem);
    const Config c = load_config(kSourceDir + "/configs/" + stem + ".json");
    EXPECT_EQ(to_json(parse_config(to_json(c), "round trip")), to_json(c));
  }
}

TEST(Config, UnknownKeyNamesFilePathAndNearestKey) {
  EXPECT_EQ(error_of({{"array", {{"rowz", 64}}}}),
            "configs/x.json: unknown key 'array.rowz' (did you mean 'array.rows'?)");
  EXPECT_EQ(error_of({{"hmb", {{"preset", "ideal"}}}}),
            "configs/x.json: unknown key 'hmb' (did you mean 'hbm'?)");
  EXPECT_EQ(error_of({{"clock_mhzz", 100}}),
            "configs/x.json: unknown key 'clock_mhzz' (did you mean 'clock_mhz'?)");
}

TEST(Config, WrongTypeNamesKeyAndExpectedType) {
  std::string e = error_of({{"array", {{"rows", "64"}}}});
  EXPECT_NE(e.find("configs/x.json: "), std::string::npos) << e;
  EXPECT_NE(e.find("'array.rows' expects an unsigned integer"), std::string::npos) << e;
  EXPECT_NE(e.find("string"), std::string::npos) << e;

  e = error_of({{"mxu", {{"double_buffer_weights", 1}}}});
  EXPECT_NE(e.find("'mxu.double_buffer_weights' expects a boolean"), std::string::npos) << e;
  e = error_of({{"array", {{"rows", 1.5}}}});
  EXPECT_NE(e.find("'array.rows' expects an unsigned integer"), std::string::npos) << e;
  e = error_of({{"hbm", {{"preset", 1}}}});
  EXPECT_NE(e.find("'hbm.preset' expects a string"), std::string::npos) << e;
  e = error_of({{"clock_mhz", "fast"}});
  EXPECT_NE(e.find("'clock_mhz' expects a number"), std::string::npos) << e;
  e = error_of({{"array", 5}});
  EXPECT_NE(e.find("'array' expects an object"), std::string::npos) << e;
  e = error_of(json::array());
  EXPECT_NE(e.find("top level"), std::string::npos) << e;
}

TEST(Config, IntegralFloatsAreAcceptedForIntegerKeys) {
  const Config c = parse_config({{"ub", {{"capacity_bytes", 1.6e7}}}}, "x");
  EXPECT_EQ(c.ub.capacity_bytes, 16000000u);
}

TEST(Config, InvalidValuesNameKeyAndAllowedRange) {
  struct Case {
    json doc;
    std::vector<std::string> expected;  // substrings of the message
  };
  const std::vector<Case> cases = {
      {{{"array", {{"rows", 0}}}}, {"array.rows = 0", "1..4096"}},
      {{{"array", {{"cols", 4097}}}}, {"array.cols = 4097", "1..4096"}},
      {{{"array", {{"cols", -1}}}}, {"array.cols = -1", "1..4096"}},
      {{{"clock_mhz", 0}}, {"clock_mhz = 0", "1..100000"}},
      {{{"clock_mhz", -5.5}}, {"clock_mhz = -5.5", "1..100000"}},
      // Slower clocks overflow simulated time (64-bit picoseconds) within a few cycles.
      {{{"clock_mhz", 1e-9}}, {"clock_mhz = 1e-09", "1..100000"}},
      {{{"hbm", {{"preset", "hbm4"}}}},
       {"hbm.preset = \"hbm4\"", "ideal, simple, hbm2, hbm2e, hbm3, ddr3"}},
      {{{"hbm", {{"bandwidth_gbs", 0}}}}, {"hbm.bandwidth_gbs = 0", "0.001..1000000"}},
      // The simple preset's extremes once overflowed simulated time into endless recursion.
      {{{"hbm", {{"bandwidth_gbs", 1e-300}}}}, {"hbm.bandwidth_gbs = 1e-300", "0.001..1000000"}},
      {{{"hbm", {{"latency_ns", 1e300}}}}, {"hbm.latency_ns = 1e+300", "0..1000000"}},
      {{{"ub", {{"capacity_bytes", 1ull << 31}}}}, {"ub.capacity_bytes = 2147483648", "1..1073741824"}},
      {{{"hbm", {{"capacity_bytes", 1ull << 41}}}}, {"hbm.capacity_bytes = 2199023255552", "1..1099511627776"}},
      {{{"sequencer", {{"issue_width", 4096}}}}, {"sequencer.issue_width = 4096", "1..1024"}},
      {{{"hbm", {{"burst_bytes", 48}}}}, {"hbm.burst_bytes = 48", "power of two"}},
      {{{"hbm", {{"burst_bytes", 0}}}}, {"hbm.burst_bytes = 0", "power of two"}},
      {{{"hbm", {{"max_outstanding", 0}}}}, {"hbm.max_outstanding = 0", "1..65536"}},
      {{{"ub", {{"read_ports", 0}}}}, {"ub.read_ports = 0", "1..1024"}},
      {{{"ub", {{"write_ports", 0}}}}, {"ub.write_ports = 0", "1..1024"}},
      {{{"ub", {{"banks", 0}}}}, {"ub.banks = 0", "1..65536"}},
      {{{"vector", {{"lanes", 0}}}}, {"vector.lanes = 0", "1..65536"}},
      {{{"sequencer", {{"queue_depth", 0}}}}, {"sequencer.queue_depth = 0", "1..65536"}},
      {{{"array", {{"rows", 4294967296ull}}}}, {"array.rows", "1..4096"}},
      // One bf16 row of max(rows, cols) = 128 elements needs 256 bytes.
      {{{"ub", {{"capacity_bytes", 255}}}}, {"ub.capacity_bytes = 255", ">= 256"}},
      // One accumulator row is 128 columns of 4 bytes.
      {{{"acc", {{"capacity_bytes", 511}}}}, {"acc.capacity_bytes = 511", ">= 512"}},
      {{{"hbm", {{"capacity_bytes", 128}}}}, {"hbm.capacity_bytes = 128", "hbm.burst_bytes"}},
      // A mapping without a channel field cannot place hbm2's 8 channels.
      {{{"hbm", {{"address_mapping", "ro_ba_co_bg_pc"}}}}, {"hbm.address_mapping", "ro_ba_co_bg_pc"}},
  };
  for (const Case& c : cases) {
    const std::string e = error_of(c.doc);
    SCOPED_TRACE(c.doc.dump());
    ASSERT_EQ(e.rfind("configs/x.json", 0), 0u) << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
    for (const std::string& part : c.expected) EXPECT_NE(e.find(part), std::string::npos) << e;
  }
  // The smallest valid sizes pass.
  EXPECT_EQ(error_of({{"ub", {{"capacity_bytes", 256}}}, {"acc", {{"capacity_bytes", 512}}}}), "");
  EXPECT_EQ(error_of({{"hbm", {{"burst_bytes", 1}}}}), "");
}

TEST(Config, OverridesParseNumbersBoolsAndStrings) {
  const Config c =
      default_config({"array.rows=64", "mxu.double_buffer_weights=false", "hbm.preset=ideal",
                      "hbm.latency_ns=12.5", "name=123", "description=\"quoted\""});
  EXPECT_EQ(c.array.rows, 64u);
  EXPECT_EQ(c.array.cols, 128u);
  EXPECT_FALSE(c.mxu.double_buffer_weights);
  EXPECT_EQ(c.hbm.preset, "ideal");
  EXPECT_DOUBLE_EQ(c.hbm.latency_ns, 12.5);
  EXPECT_EQ(c.name, "123");  // string keys take the raw text
  EXPECT_EQ(c.description, "quoted");
}

TEST(Config, OverridesApplyAfterTheFileAndInOrder) {
  const std::string path = write_temp("small.json", R"({"array": {"rows": 16, "cols": 16}})");
  const Config c = load_config(path, {"array.rows=32", "array={\"cols\": 8}", "array.rows=4"});
  EXPECT_EQ(c.array.rows, 4u);
  EXPECT_EQ(c.array.cols, 8u);
}

TEST(Config, BadOverridesNameTheSetFlag) {
  EXPECT_EQ(error_of(json::object(), {"array.rowz=64"}),
            "--set: unknown key 'array.rowz' (did you mean 'array.rows'?)");
  std::string e = error_of(json::object(), {"array.rows"});
  EXPECT_NE(e.find("--set: expected KEY=VALUE"), std::string::npos) << e;
  e = error_of(json::object(), {"=5"});
  EXPECT_NE(e.find("--set: expected KEY=VALUE"), std::string::npos) << e;
  e = error_of(json::object(), {"array.rows=many"});
  EXPECT_NE(e.find("--set: key 'array.rows' expects an unsigned integer"), std::string::npos) << e;
  e = error_of(json::object(), {"array.rows=0"});
  EXPECT_NE(e.find("--set: array.rows = 0 is out of range"), std::string::npos) << e;
  // Found by fuzzing (tests/fuzz/regressions/config): these escaped as nlohmann exceptions.
  EXPECT_EQ(error_of(json::object(), {"clock_mhz=1e999"}),
            "--set: clock_mhz: number 1e999 is out of range of a double");
  EXPECT_EQ(error_of(json::object(), {"name=\xff"}), "--set: name: the value is not valid UTF-8");
  EXPECT_EQ(error_of(json::object(), {"mxu.double_buffer_weights=fal\x9b"}),
            "--set: mxu.double_buffer_weights: the value is not valid UTF-8");
  // A cross-field violation created by an override still names the file and the overrides.
  e = error_of(json::object(), {"ub.capacity_bytes=8"});
  EXPECT_NE(e.find("configs/x.json with --set overrides: ub.capacity_bytes"), std::string::npos)
      << e;
}

TEST(Config, MissingFileNamesThePath) {
  const std::string path = kSourceDir + "/configs/no_such_config.json";
  try {
    load_config(path);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(path + ": cannot open config file", 0), 0u) << e.what();
  }
}

TEST(Config, MalformedJsonNamesFileAndPosition) {
  const std::string path = write_temp("bad.json", "{\n  \"array\": {\"rows\": 64,}\n}\n");
  try {
    load_config(path);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.rfind(path + ": malformed JSON: ", 0), 0u) << m;
    EXPECT_NE(m.find("line 2"), std::string::npos) << m;
    EXPECT_EQ(m.find("[json.exception"), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
}

TEST(Config, DerivedFigures) {
  Config c;
  c.clock_mhz = 1000;
  c.hbm.preset = "simple";
  c.hbm.bandwidth_gbs = 600;
  // 600 bytes per ns * 1 ns per cycle.
  EXPECT_DOUBLE_EQ(c.hbm_peak_bytes_per_cycle(), 600.0);
  c.clock_mhz = 500;  // 2 ns per cycle
  EXPECT_DOUBLE_EQ(c.hbm_peak_bytes_per_cycle(), 1200.0);
  c.hbm.preset = "ideal";
  EXPECT_TRUE(std::isinf(c.hbm_peak_bytes_per_cycle()));
  // hbm2: 16 pseudo-channels x 8 bytes x 2 beats per 1 ns = 256 bytes per ns, 512 per 2 ns
  // cycle; half the channels, half of that.
  c.hbm.preset = "hbm2";
  EXPECT_DOUBLE_EQ(c.hbm_peak_bytes_per_cycle(), 512.0);
  c.hbm.channels = 4;
  EXPECT_DOUBLE_EQ(c.hbm_peak_bytes_per_cycle(), 256.0);
  EXPECT_STREQ(to_string(DataType::kInt8), "int8");
  EXPECT_STREQ(to_string(DataType::kBf16), "bf16");
}

TEST(Config, KeyTableDescribesEveryKey) {
  // One leaf of the effective config per key.
  EXPECT_EQ(to_json(Config{}).flatten().size(), config_keys().size());
  for (const ConfigKey& key : config_keys()) {
    EXPECT_GT(std::string(key.description).size(), 10u) << key.path;
  }
  const ConfigKey* rows = nullptr;
  for (const ConfigKey& key : config_keys()) {
    if (std::string(key.path) == "array.rows") rows = &key;
  }
  ASSERT_NE(rows, nullptr);
  EXPECT_STREQ(rows->type_name(), "unsigned integer");
  EXPECT_EQ(rows->allowed(), "1..4096");
  EXPECT_EQ(rows->default_value(), json(128));
}

// The README's key table states each key's type and allowed values as the parser checks them.
TEST(Config, ReadmeDocumentsEveryKey) {
  std::ifstream in(kSourceDir + "/configs/README.md");
  ASSERT_TRUE(in);
  std::map<std::string, std::vector<std::string>> rows;  // key -> cells after the key
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("| `", 0) != 0) continue;
    std::vector<std::string> cells;
    std::stringstream cells_in(line.substr(1));
    for (std::string cell; std::getline(cells_in, cell, '|');) {
      cells.push_back(cell.substr(1, cell.size() - 2));  // drop the padding spaces
    }
    rows[cells[0].substr(1, cells[0].size() - 2)] = cells;  // the key without backquotes
  }
  for (const ConfigKey& key : config_keys()) {
    SCOPED_TRACE(key.path);
    ASSERT_EQ(rows.count(key.path), 1u);
    const std::vector<std::string>& cells = rows[key.path];
    ASSERT_GE(cells.size(), 5u);
    EXPECT_EQ(cells[1], key.type_name());
    if (std::string(key.type_name()) != "string" || !key.choices.empty()) {
      EXPECT_NE(cells[4].find(key.allowed()), std::string::npos) << cells[4];
    }
  }
}

// No numeric key is unbounded: extreme values must be refused at load, not overflow
// simulated time or host memory mid-run.
TEST(Config, EveryNumericKeyHasAFiniteUpperBound) {
  for (const ConfigKey& key : config_keys()) {
    const std::string type = key.type_name();
    if (type != "number" && type != "unsigned integer") continue;
    SCOPED_TRACE(key.path);
    EXPECT_TRUE(std::isfinite(key.max));
    EXPECT_LE(key.min, key.max);
    if (type == "unsigned integer") {
      EXPECT_LE(key.max, double(1ull << 40));
    }
    // The default lies inside the range.
    const double def = key.default_value().get<double>();
    EXPECT_GE(def, key.min);
    EXPECT_LE(def, key.max);
  }
}

// A key given twice is an error naming its path, not a silent "last one wins".
TEST(Config, DuplicateKeysAreErrors) {
  const std::string path = write_temp("dup.json", R"({"hbm": {"preset": "ideal", "preset": "hbm2"}})");
  try {
    load_config(path);
    ADD_FAILURE() << "no ConfigError";
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find("duplicate key 'hbm.preset'"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  // The same name in two different objects is fine.
  const Config ok = load_config(write_temp(
      "ok.json", R"({"ub": {"capacity_bytes": 1048576}, "acc": {"capacity_bytes": 65536}})"));
  EXPECT_EQ(ok.ub.capacity_bytes, 1048576u);
  EXPECT_EQ(ok.acc.capacity_bytes, 65536u);
}

TEST(Config, OnlyRegularFilesAreRead) {
  const std::string fifo = tpu::test_shell::temp_path("config.fifo");
  std::remove(fifo.c_str());
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  for (const std::string& path : {fifo, ::testing::TempDir()}) {
    try {
      load_config(path);
      ADD_FAILURE() << "no ConfigError for " << path;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("not a regular file"), std::string::npos) << e.what();
    }
  }
}

// The message of the ConfigError load_config raises for a file holding `text`.
std::string load_error(const std::string& name, const std::string& text) {
  const std::string path = write_temp(name, text);
  try {
    load_config(path);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

// Deep nesting once crashed an error path that dumped the value recursively.
TEST(ConfigInput, DeepNestingIsOneLineError) {
  const std::string deep = "{\"array\": " + std::string(100000, '[') + std::string(100000, ']') + "}";
  const std::string e = load_error("deep.json", deep);
  EXPECT_NE(e.find("malformed JSON: nesting deeper than 64 levels under key 'array'"),
            std::string::npos) << e.substr(0, 200);
  EXPECT_EQ(e.find('\n'), std::string::npos);
  // 64 levels are fine as JSON (and then an ordinary type error).
  const std::string ok = "{\"array\": " + std::string(63, '[') + std::string(63, ']') + "}";
  EXPECT_NE(load_error("ok.json", ok).find("'array' expects an object"), std::string::npos);
}

TEST(ConfigInput, NumberOverflowNamesLineAndKey) {
  const std::string e = load_error("ovf.json", "{\n  \"hbm\": {\n    \"latency_ns\": 1e999}}");
  EXPECT_NE(e.find("ovf.json: malformed JSON: line 3, key 'hbm.latency_ns': number 1e999 is out "
                   "of range of a double"),
            std::string::npos) << e;
  EXPECT_EQ(e.find("json.exception"), std::string::npos) << e;
}

// A huge misspelt key is neither echoed whole nor compared at quadratic memory.
TEST(ConfigInput, HugeValuesAreNotEchoed) {
  std::string e = load_error("key.json", "{\"" + std::string(1000000, 'k') + "\": 1}");
  EXPECT_LT(e.size(), 200u) << e.substr(0, 200);
  EXPECT_NE(e.find("unknown key 'kkkk"), std::string::npos) << e.substr(0, 200);
  e = load_error("value.json", "{\"name\": [" + std::string(100000, '1') + "]}");
  EXPECT_LT(e.size(), 200u) << e.substr(0, 200);
  EXPECT_NE(e.find("..."), std::string::npos) << e;
}

TEST(ConfigInput, FilesLargerThanTheLimitAreRefusedUnread) {
  const std::string e = load_error("big.json", std::string(kMaxTextInputBytes + 1, ' '));
  EXPECT_NE(e.find("too large: 16777217 bytes, at most 16777216 allowed"), std::string::npos) << e;
}

// Editors on Windows may start a file with a UTF-8 byte order mark.
TEST(ConfigInput, ByteOrderMarkIsAccepted) {
  const std::string path = write_temp("bom.json", "\xEF\xBB\xBF{\"array\": {\"rows\": 64}}");
  EXPECT_EQ(load_config(path).array.rows, 64u);
  std::string why;
  EXPECT_EQ(*read_file(path, kMaxTextInputBytes, &why), "{\"array\": {\"rows\": 64}}");
}

// The one CSV reader of SCALE-Sim topologies, validation data and sweep summaries.
TEST(CsvInput, QuotedFieldsHoldCommasQuotesAndNewlines) {
  const std::vector<CsvRecord> r =
      parse_csv("a,\"b, \"\"c\"\"\",\"two\nlines\"\nlast,row", "t.csv");
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].fields, (std::vector<std::string>{"a", "b, \"c\"", "two\nlines"}));
  EXPECT_EQ(r[0].line, 1u);
  // The quoted newline ends line 1 but not the record: the next one starts on line 3.
  EXPECT_EQ(r[1].fields, (std::vector<std::string>{"last", "row"}));
  EXPECT_EQ(r[1].line, 3u);
}

TEST(CsvInput, BlanksOutsideQuotesCrAndBlankLinesAreDropped) {
  const std::vector<CsvRecord> r =
      parse_csv("M, N ,\tK\r\n\r\n  \n 1,\" 2 \" , ,\r\n", "t.csv");
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].fields, (std::vector<std::string>{"M", "N", "K"}));
  EXPECT_EQ(r[1].fields, (std::vector<std::string>{"1", " 2 ", "", ""}));
  EXPECT_EQ(r[1].line, 4u);  // lines 2 and 3 are blank
  EXPECT_TRUE(parse_csv("", "t.csv").empty());
  EXPECT_TRUE(parse_csv("\n \r\n", "t.csv").empty());
}

TEST(CsvInput, UnclosedQuoteNamesFileAndLine) {
  try {
    parse_csv("a,b\nc,\"d\ne,f\n", "data.csv");
    FAIL() << "expected CsvSyntaxError";
  } catch (const CsvSyntaxError& e) {
    EXPECT_STREQ(e.what(), "data.csv:2: quoted field not closed (a '\"' is missing)");
  }
}

// csv_field quotes what parse_csv would otherwise change.
TEST(CsvInput, ReadsBackWhatCsvFieldWrites) {
  const std::vector<std::string> fields = {"plain", "a,b", "say \"hi\"", "two\nlines",
                                           " leading", "trailing\t", "", "in side"};
  std::string line;
  for (const std::string& f : fields) line += (line.empty() ? "" : ",") + csv_field(f);
  const std::vector<CsvRecord> r = parse_csv(line + "\n", "t.csv");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].fields, fields);
  EXPECT_EQ(csv_field("plain"), "plain");
  EXPECT_EQ(csv_field(" x"), "\" x\"");
}

}  // namespace
}  // namespace tpu
