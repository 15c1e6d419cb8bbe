#pragma once
// The table of every config key: dotted path, unit, meaning and allowed values. The parser,
// to_json() and the key documentation all read this one table; the default of each key is the
// initialiser of its field in config.h, read through `field` from a default-constructed Config.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <variant>
#include <vector>

#include "sim/config/config.h"

namespace tpu {

// The field a key is stored in; the alternative also gives the key's JSON type.
using ConfigField = std::variant<bool*, std::uint32_t*, std::uint64_t*, double*, std::string*>;

struct ConfigKey {
  const char* path;         // dotted, e.g. "array.rows"
  const char* unit;         // "" when unitless
  const char* description;  // one sentence
  ConfigField (*field)(Config&);
  // Numeric keys: value in [min, max]. Every numeric key has a finite max (a value the field's
  // type holds), so no value can overflow simulated time or host memory.
  double min = 0;
  double max = 0;
  bool power_of_two = false;
  // String keys: the allowed values; empty means any string.
  std::vector<std::string> choices = {};

  // "boolean", "unsigned integer", "number" or "string".
  const char* type_name() const;
  // Human description of the allowed values, e.g. "1..4096", "a power of two, 1..1048576", "ideal, simple".
  std::string allowed() const;
  nlohmann::json default_value() const;
};

// Every key, in document order (the order to_json() writes them).
const std::vector<ConfigKey>& config_keys();

}  // namespace tpu
