#pragma once
// Input users hand the tools (config, model and program files), shared so every front end
// reports an unreadable file, a JSON syntax error and a misspelt name the same way.
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <stdexcept>
#include <vector>

#include <nlohmann/json.hpp>

namespace tpu {

// Limits on what users hand the tools, so a small or hostile file cannot exhaust the host:
// configs and models are hand-written text far below 16 MiB; JSON nests a handful of levels.
constexpr std::uint64_t kMaxTextInputBytes = 16ull << 20;
constexpr std::size_t kMaxJsonDepth = 64;

// The whole file, or nothing when it cannot be read; `why` then says why ("No such file or
// directory", "not a regular file: a directory", "too large: ..."). Only regular files of at
// most `max_bytes` are read, so a FIFO never blocks, a directory is never taken for an empty
// file and a huge file is refused before it is read. A leading UTF-8 byte order mark (some
// Windows editors write one) is dropped, so every format accepts it alike.
std::optional<std::string> read_file(const std::string& path, std::uint64_t max_bytes,
                                     std::string* why = nullptr);

// `text` for an error message: at most about `max_chars` characters, longer text cut with
// "...", so a message never echoes a huge value.
std::string excerpt(const std::string& text, std::size_t max_chars = 60);

// Raised by parse_csv: one line naming the source and the line.
class CsvSyntaxError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One record of a CSV file and the line it starts on (from 1), for messages.
struct CsvRecord {
  std::size_t line = 0;
  std::vector<std::string> fields;
};

// The records of CSV text, as csv_field (tools/report/report.h) writes them: RFC 4180 fields,
// a field in double quotes holding commas, newlines and doubled quotes. Blanks around a field
// outside its quotes (hand-written "M, N, K"), a CR before each newline and blank lines are
// dropped. An unterminated quoted field is a CsvSyntaxError naming `source` and its line.
std::vector<CsvRecord> parse_csv(const std::string& text, const std::string& source);

// Raised by parse_json: one line, without nlohmann's tag.
class JsonSyntaxError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// A number beyond a double's range (1e999): well-formed JSON that cannot be represented.
class JsonNumberOverflow : public JsonSyntaxError {
 public:
  using JsonSyntaxError::JsonSyntaxError;
};

// Parses JSON input strictly: besides syntax errors ("line 2, column 20: ..."), a key given
// twice in one object ("duplicate key 'hbm.preset'", the dotted path of object keys, where
// nlohmann would keep the last value and a typo'd override would pass unseen), nesting deeper
// than kMaxJsonDepth and a number too large for a double ("line 3, key 'hbm.latency_ns':
// number 1e999 is out of range") are errors.
nlohmann::json parse_json(const std::string& text);

// The candidate closest to `word` in edit distance (insertions, deletions, substitutions and
// swaps of adjacent characters, so "hmb" is one edit from "hbm"), or "" when none is within
// `max_distance` edits.
std::string nearest(const std::string& word, const std::vector<std::string>& candidates,
                    std::size_t max_distance = std::numeric_limits<std::size_t>::max());

}  // namespace tpu
