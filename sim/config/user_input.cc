#include "sim/config/user_input.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace tpu {

std::optional<std::string> read_file(const std::string& path, std::uint64_t max_bytes,
                                     std::string* why) {
  auto fail = [&](const std::string& reason) {
    if (why) *why = reason;
    return std::nullopt;
  };
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return fail(std::strerror(errno));
  if (!S_ISREG(st.st_mode)) {
    return fail(std::string("not a regular file: ") +
                (S_ISDIR(st.st_mode) ? "a directory" : S_ISFIFO(st.st_mode) ? "a FIFO" : "a device"));
  }
  if (std::uint64_t(st.st_size) > max_bytes) {
    return fail("too large: " + std::to_string(st.st_size) + " bytes, at most " +
                std::to_string(max_bytes) + " allowed");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  std::string content = text.str();
  if (content.compare(0, 3, "\xEF\xBB\xBF") == 0) content.erase(0, 3);
  return content;
}

std::string excerpt(const std::string& text, std::size_t max_chars) {
  if (text.size() <= max_chars) return text;
  std::size_t cut = max_chars - 3;
  // Never split a UTF-8 sequence: back up over continuation bytes.
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return text.substr(0, cut) + "...";
}

std::vector<CsvRecord> parse_csv(const std::string& text, const std::string& source) {
  std::vector<CsvRecord> records;
  CsvRecord record;
  std::string field;
  std::size_t line = 1, quote_line = 0;
  bool quoted = false;
  bool has_quotes = false;  // the current field had a quoted part
  std::size_t kept = 0;     // the field's length after its last quoted character
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
  auto end_field = [&] {
    while (field.size() > kept && blank(field.back())) field.pop_back();
    record.fields.push_back(std::move(field));
    field.clear();
    has_quotes = false;
    kept = 0;
  };
  auto end_record = [&] {
    const bool blank_line = record.fields.empty() && field.empty() && !has_quotes;
    end_field();
    if (!blank_line) records.push_back(std::move(record));
    record = CsvRecord{};
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (record.fields.empty() && field.empty() && !has_quotes) record.line = line;
    if (c == '\n') ++line;
    if (quoted) {
      if (c != '"') {
        field += c;
      } else if (i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else {
        quoted = false;
        kept = field.size();
      }
      continue;
    }
    if (c == '"') {
      quoted = has_quotes = true;
      quote_line = line;
    } else if (c == ',') {
      end_field();
    } else if (c == '\n') {
      end_record();
    } else if (!(blank(c) && field.empty() && !has_quotes)) {  // leading blanks are dropped
      field += c;
    }
  }
  if (quoted) {
    throw CsvSyntaxError(source + ":" + std::to_string(quote_line) +
                         ": quoted field not closed (a '\"' is missing)");
  }
  if (!field.empty() || has_quotes || !record.fields.empty()) end_record();
  return records;
}

namespace {

using nlohmann::json;

// An nlohmann::json exception's message without its "[json.exception.parse_error.101] " tag.
std::string json_error_text(const std::string& what) {
  if (!what.empty() && what[0] == '[') {
    const std::size_t close = what.find("] ");
    if (close != std::string::npos) return what.substr(close + 2);
  }
  return what;
}

// Builds the document like nlohmann's own parser, and enforces parse_json's rules as it goes.
class StrictSax : public json::json_sax_t {
 public:
  explicit StrictSax(const std::string& text) : text_(text) {}
  json take() { return std::move(root_); }

  bool null() override { return add(nullptr); }
  bool boolean(bool v) override { return add(v); }
  bool number_integer(json::number_integer_t v) override { return add(v); }
  bool number_unsigned(json::number_unsigned_t v) override { return add(v); }
  bool number_float(json::number_float_t v, const json::string_t&) override { return add(v); }
  bool string(json::string_t& v) override { return add(std::move(v)); }
  bool binary(json::binary_t& v) override { return add(json::binary(std::move(v))); }
  bool start_object(std::size_t) override {
    open(json::object());
    keys_.emplace_back();
    return true;
  }
  bool key(json::string_t& k) override {
    keys_.back() = k;
    if (open_.back()->contains(k)) throw JsonSyntaxError("duplicate key '" + path() + "'");
    return true;
  }
  bool end_object() override {
    keys_.pop_back();
    open_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override {
    open(json::array());
    return true;
  }
  bool end_array() override {
    open_.pop_back();
    return true;
  }
  bool parse_error(std::size_t position, const std::string& token,
                   const json::exception& e) override {
    // Syntax errors carry their line and column; a number overflow (out_of_range.406) carries
    // neither, so name its line and key here.
    if (e.id != 406) throw JsonSyntaxError(excerpt_message(json_error_text(e.what())));
    const std::size_t end = std::min(position, text_.size());
    const auto line = 1 + std::count(text_.begin(), text_.begin() + std::ptrdiff_t(end), '\n');
    throw JsonNumberOverflow("line " + std::to_string(line) +
                          (keys_.empty() ? std::string() : ", key '" + path() + "'") +
                          ": number " + excerpt(token) + " is out of range of a double");
  }

 private:
  // nlohmann's syntax messages quote the last token read ("last read: '...'"): keep it short.
  static std::string excerpt_message(const std::string& message) {
    const std::size_t quote = message.find("last read: '");
    if (quote == std::string::npos) return message;
    const std::size_t begin = quote + 12, close = message.rfind('\'');
    if (close <= begin) return message;
    return message.substr(0, begin) + excerpt(message.substr(begin, close - begin)) +
           message.substr(close);
  }
  bool add(json value) {
    place(std::move(value));
    return true;
  }
  json* place(json value) {
    if (open_.empty()) {
      root_ = std::move(value);
      return &root_;
    }
    json& parent = *open_.back();
    if (parent.is_array()) {
      parent.push_back(std::move(value));
      return &parent.back();
    }
    return &(parent[keys_.back()] = std::move(value));
  }
  void open(json container) {
    if (open_.size() >= kMaxJsonDepth) {
      throw JsonSyntaxError("nesting deeper than " + std::to_string(kMaxJsonDepth) + " levels" +
                            (keys_.empty() ? std::string() : " under key '" + path() + "'"));
    }
    open_.push_back(place(std::move(container)));
  }
  // The dotted keys leading to the current value, cut for messages.
  std::string path() const {
    std::string dotted;
    for (const std::string& k : keys_) dotted += (dotted.empty() ? "" : ".") + k;
    return excerpt(dotted);
  }

  const std::string& text_;
  json root_;
  std::vector<json*> open_;         // open objects and arrays, innermost last
  std::vector<std::string> keys_;   // the current key of each open object
};

}  // namespace

nlohmann::json parse_json(const std::string& text) {
  StrictSax sax(text);
  json::sax_parse(text, &sax);
  return sax.take();
}

namespace {

// Three rolling rows (i - 2, i - 1, i): memory grows with b only, however long a is.
std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> before(b.size() + 1), prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        cur[j] = std::min(cur[j], before[j - 2] + 1);
      }
    }
    before.swap(prev);
    prev.swap(cur);
  }
  return prev[b.size()];
}

}  // namespace

std::string nearest(const std::string& word, const std::vector<std::string>& candidates,
                    std::size_t max_distance) {
  std::string best;
  std::size_t best_distance = 0;
  for (const std::string& candidate : candidates) {
    // The length difference is a lower bound: skip candidates that cannot win.
    const std::size_t lower = std::max(word.size(), candidate.size()) -
                              std::min(word.size(), candidate.size());
    if (lower > max_distance || (!best.empty() && lower >= best_distance)) continue;
    const std::size_t d = edit_distance(word, candidate);
    if (d <= max_distance && (best.empty() || d < best_distance)) {
      best_distance = d;
      best = candidate;
    }
  }
  return best;
}

}  // namespace tpu
