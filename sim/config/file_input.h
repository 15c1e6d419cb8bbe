#pragma once
// Reading the files users hand the tools (configs, models, programs), shared so every front end
// reports an unreadable file and a JSON syntax error the same way.
#include <optional>
#include <string>

namespace tpu {

// The whole file, or nothing when it cannot be opened.
std::optional<std::string> read_file(const std::string& path);

// An nlohmann::json exception's message without its "[json.exception.parse_error.101] " tag.
std::string json_error_text(const std::string& what);

}  // namespace tpu
