#pragma once
// Input users hand the tools (config, model and program files), shared so every front end
// reports an unreadable file, a JSON syntax error and a misspelt name the same way.
#include <cstddef>
#include <limits>
#include <optional>
#include <string>
#include <stdexcept>
#include <vector>

#include <nlohmann/json.hpp>

namespace tpu {

// The whole file, or nothing when it cannot be read; `why` then says why ("No such file or
// directory", "not a regular file: a directory", ...). Only regular files are read, so a FIFO
// never blocks and a directory is never taken for an empty file.
std::optional<std::string> read_file(const std::string& path, std::string* why = nullptr);

// An nlohmann::json exception's message without its "[json.exception.parse_error.101] " tag.
std::string json_error_text(const std::string& what);

// Raised by parse_json: one line, without nlohmann's tag.
class JsonSyntaxError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Parses JSON input strictly: besides syntax errors, a key given twice in one object is an
// error ("duplicate key 'hbm.preset'", the dotted path of object keys), where nlohmann would
// keep the last value and a typo'd override would pass unseen.
nlohmann::json parse_json(const std::string& text);

// The candidate closest to `word` in edit distance (insertions, deletions, substitutions and
// swaps of adjacent characters, so "hmb" is one edit from "hbm"), or "" when none is within
// `max_distance` edits.
std::string nearest(const std::string& word, const std::vector<std::string>& candidates,
                    std::size_t max_distance = std::numeric_limits<std::size_t>::max());

}  // namespace tpu
