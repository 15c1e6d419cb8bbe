#include "sim/config/user_input.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

namespace tpu {

std::optional<std::string> read_file(const std::string& path, std::string* why) {
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
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string json_error_text(const std::string& what) {
  if (!what.empty() && what[0] == '[') {
    const std::size_t close = what.find("] ");
    if (close != std::string::npos) return what.substr(close + 2);
  }
  return what;
}

nlohmann::json parse_json(const std::string& text) {
  using nlohmann::json;
  std::vector<std::set<std::string>> keys;  // per open object
  std::vector<std::string> path;            // keys leading to the current value
  const json::parser_callback_t check = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      keys.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      keys.pop_back();
    } else if (event == json::parse_event_t::key) {
      path.resize(keys.size() - 1);
      path.push_back(parsed.get<std::string>());
      if (!keys.back().insert(path.back()).second) {
        std::string dotted;
        for (const std::string& k : path) dotted += (dotted.empty() ? "" : ".") + k;
        throw JsonSyntaxError("duplicate key '" + dotted + "'");
      }
    }
    return true;
  };
  try {
    return json::parse(text, check);
  } catch (const json::parse_error& e) {
    throw JsonSyntaxError(json_error_text(e.what()));
  } catch (const json::out_of_range& e) {  // a number beyond double, e.g. 1e999
    throw JsonSyntaxError(json_error_text(e.what()));
  }
}

namespace {

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

}  // namespace

std::string nearest(const std::string& word, const std::vector<std::string>& candidates,
                    std::size_t max_distance) {
  std::string best;
  std::size_t best_distance = 0;
  for (const std::string& candidate : candidates) {
    const std::size_t d = edit_distance(word, candidate);
    if (d <= max_distance && (best.empty() || d < best_distance)) {
      best_distance = d;
      best = candidate;
    }
  }
  return best;
}

}  // namespace tpu
