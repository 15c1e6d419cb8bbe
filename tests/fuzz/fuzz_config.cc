// Fuzz target: a config JSON with --set overrides, through the functions `tpusim --config FILE
// --set KEY=VALUE` uses. Input: override lines, a blank line, then the JSON; without a blank
// line the whole input is the JSON. A bad config must raise ConfigError, nothing else.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/config/config.h"
#include "sim/config/user_input.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> overrides;
  std::string text = input;
  if (const std::size_t blank = input.find("\n\n"); blank != std::string::npos) {
    text = input.substr(blank + 2);
    for (std::size_t begin = 0; begin <= blank;) {
      const std::size_t end = input.find('\n', begin);
      overrides.push_back(input.substr(begin, end - begin));
      begin = end + 1;
    }
  }
  // load_config() after reading the file.
  nlohmann::json doc;
  try {
    doc = tpu::parse_json(text);
  } catch (const tpu::JsonSyntaxError&) {
    return 0;
  }
  tpu::Config config;
  try {
    config = tpu::parse_config(doc, "fuzz.json", overrides);
  } catch (const tpu::ConfigError&) {
    return 0;
  }
  // Every report records the effective config; it must load back as the same config.
  const nlohmann::json effective = tpu::to_json(config);
  if (tpu::to_json(tpu::parse_config(effective, "effective config")) != effective) std::abort();
  return 0;
}
