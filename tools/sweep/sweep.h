#pragma once
// Architecture sweeps: a sweep file names a base config, models and axes over config keys; each
// (point, model) item runs in its own child process (tools/run/child.h), and each finished item
// is appended at once as one line of results.jsonl, so a sweep killed at any instant resumes
// where it stopped. File format and output layout: configs/README.md, "Sweeps".
#include <cstddef>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/config/config.h"

namespace tpu {

struct SweepItem {
  std::size_t index = 0;  // position in the whole sweep: point * models + model
  std::size_t point = 0;
  std::vector<std::pair<std::string, nlohmann::json>> axes;  // dotted key -> value, in file order
  std::string model_path;  // as resolved against the sweep file's directory
  std::string model;       // as written in the sweep file
  Config config;           // the point's effective config
  std::string key;         // hash of effective config, model file and options: what --resume matches
};

struct Sweep {
  std::string path;
  std::vector<std::string> axis_names;
  bool timing_only = true;
  std::vector<SweepItem> items;
};

// Reads and validates a sweep file and every point's config (unknown keys, values out of range,
// unreadable models) before anything runs; one-line errors naming the file.
Sweep load_sweep(const std::string& path);

struct SweepProgress {
  std::size_t done = 0, failed = 0, total = 0;  // this run's items (after shard and resume)
  double seconds = 0;
};

struct SweepRunOptions {
  std::string out_dir;
  unsigned jobs = 1;
  unsigned shard = 0, shards = 1;  // run the items with index % shards == shard
  bool resume = false;             // skip items whose key results.jsonl already holds
  std::function<void(const SweepProgress&)> progress;
};

// Runs the sweep into out_dir/results.jsonl and writes out_dir/summary.csv; returns how many
// items failed (recorded with their error, the others still run).
std::size_t run_sweep(const Sweep& sweep, const SweepRunOptions& options);

// Joins the results of shards (their out dirs) into out_dir, laid out like an unsharded run.
void merge_sweeps(const std::vector<std::string>& dirs, const std::string& out_dir);

}  // namespace tpu
