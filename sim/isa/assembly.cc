// Assembly text <-> Program. Syntax and the key table of every opcode: sim/isa/ISA.md,
// "Assembly". The key tables below are the single source of both the parser and the printer,
// so the canonical text lists every key of an instruction in table order.
#include <algorithm>
#include <cctype>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "sim/config/user_input.h"
#include "sim/isa/program.h"

namespace tpu {
namespace {

enum class Format { kUnsigned, kSigned, kHex, kActivation };

struct KeySpec {
  const char* key;
  unsigned width;
  Format format;
  bool required;
  std::int64_t fallback;  // value when an optional key is omitted
  std::int64_t (*get)(const Instruction&);
  void (*set)(Instruction&, std::int64_t);
};

#define TPU_FIELD(expr, type)                                                \
  [](const Instruction& i) -> std::int64_t { return std::int64_t(i.expr); }, \
      [](Instruction& i, std::int64_t v) { i.expr = type(v); }

const KeySpec kLayerKeys[] = {
    {"id", 16, Format::kUnsigned, true, 0, TPU_FIELD(layer, std::uint16_t)},
};
const KeySpec kDmaKeys[] = {
    {"hbm", 40, Format::kHex, true, 0, TPU_FIELD(dma.hbm_addr, std::uint64_t)},
    {"ub", 24, Format::kUnsigned, true, 0, TPU_FIELD(dma.ub_row, std::uint32_t)},
    {"elems", 16, Format::kUnsigned, true, 0, TPU_FIELD(dma.elems, std::uint16_t)},
    {"pack", 16, Format::kUnsigned, true, 0, TPU_FIELD(dma.pack, std::uint16_t)},
    {"segs", 16, Format::kUnsigned, false, 1, TPU_FIELD(dma.segs, std::uint16_t)},
    {"seg_stride", 32, Format::kUnsigned, false, 0, TPU_FIELD(dma.seg_stride, std::uint32_t)},
    {"groups", 16, Format::kUnsigned, false, 1, TPU_FIELD(dma.groups, std::uint16_t)},
    {"group_stride", 32, Format::kUnsigned, false, 0, TPU_FIELD(dma.group_stride, std::uint32_t)},
    {"ub_stride", 16, Format::kUnsigned, false, 1, TPU_FIELD(dma.ub_stride, std::uint16_t)},
};
const KeySpec kLoadWeightsKeys[] = {
    {"ub", 24, Format::kUnsigned, true, 0, TPU_FIELD(ub_row, std::uint32_t)},
    {"rows", 24, Format::kUnsigned, true, 0, TPU_FIELD(rows, std::uint32_t)},
    {"cols", 16, Format::kUnsigned, true, 0, TPU_FIELD(cols, std::uint16_t)},
};
const KeySpec kMatmulKeys[] = {
    {"ub", 24, Format::kUnsigned, true, 0, TPU_FIELD(ub_row, std::uint32_t)},
    {"stride", 16, Format::kUnsigned, false, 1, TPU_FIELD(ub_stride, std::uint16_t)},
    {"rows", 24, Format::kUnsigned, true, 0, TPU_FIELD(rows, std::uint32_t)},
    {"acc", 24, Format::kUnsigned, true, 0, TPU_FIELD(acc_row, std::uint32_t)},
};
const KeySpec kActivateKeys[] = {
    {"acc", 24, Format::kUnsigned, true, 0, TPU_FIELD(acc_row, std::uint32_t)},
    {"rows", 24, Format::kUnsigned, true, 0, TPU_FIELD(rows, std::uint32_t)},
    {"cols", 16, Format::kUnsigned, true, 0, TPU_FIELD(cols, std::uint16_t)},
    {"ub", 24, Format::kUnsigned, true, 0, TPU_FIELD(ub_row, std::uint32_t)},
    {"func", 8, Format::kActivation, false, 0, TPU_FIELD(func, Activation)},
    {"multiplier", 32, Format::kSigned, false, 1, TPU_FIELD(multiplier, std::int32_t)},
    {"shift", 8, Format::kUnsigned, false, 0, TPU_FIELD(shift, std::uint8_t)},
    {"zero_point", 8, Format::kSigned, false, 0, TPU_FIELD(zero_point, std::int8_t)},
};
const KeySpec kPoolKeys[] = {
    {"ub", 24, Format::kUnsigned, true, 0, TPU_FIELD(ub_row, std::uint32_t)},
    {"dst", 24, Format::kUnsigned, true, 0, TPU_FIELD(dst_row, std::uint32_t)},
    {"in_h", 16, Format::kUnsigned, true, 0, TPU_FIELD(in_h, std::uint16_t)},
    {"in_w", 16, Format::kUnsigned, true, 0, TPU_FIELD(in_w, std::uint16_t)},
    {"kernel", 8, Format::kUnsigned, true, 0, TPU_FIELD(kernel, std::uint8_t)},
    {"stride", 8, Format::kUnsigned, true, 0, TPU_FIELD(stride, std::uint8_t)},
    {"cols", 16, Format::kUnsigned, true, 0, TPU_FIELD(cols, std::uint16_t)},
};

#undef TPU_FIELD

struct OpSpec {
  Opcode op;
  const KeySpec* keys;
  std::size_t n_keys;
  const char* flag;  // bare word setting kFlagAccumulate, or nullptr
};

template <std::size_t N>
constexpr OpSpec spec(Opcode op, const KeySpec (&keys)[N], const char* flag = nullptr) {
  return {op, keys, N, flag};
}

const OpSpec kOps[] = {
    {Opcode::kNop, nullptr, 0, nullptr},
    {Opcode::kHalt, nullptr, 0, nullptr},
    spec(Opcode::kLayer, kLayerKeys),
    spec(Opcode::kDmaLoad, kDmaKeys),
    spec(Opcode::kDmaStore, kDmaKeys),
    spec(Opcode::kLoadWeights, kLoadWeightsKeys),
    spec(Opcode::kMatmul, kMatmulKeys, "accumulate"),
    spec(Opcode::kActivate, kActivateKeys),
    spec(Opcode::kPool, kPoolKeys),
};

const OpSpec& op_spec(Opcode op) {
  for (const OpSpec& s : kOps) {
    if (s.op == op) return s;
  }
  throw IsaError("unknown opcode " + std::to_string(int(op)));
}

const char* const kActivationNames[] = {"none", "relu", "relu6"};
const char* const kDirectives[] = {".dtype", ".array", ".hbm", ".sem", ".layer"};

// " (did you mean 'x'?)" for the closest candidate within two edits, else "".
std::string suggestion(const std::string& word, const std::vector<std::string>& candidates) {
  const std::string best = nearest(word, candidates, 2);
  return best.empty() ? "" : " (did you mean '" + best + "'?)";
}

bool is_identifier(const std::string& s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.';
  });
}

// "s0".."s15" are the built-in semaphore names; a declared name may not look like one.
bool is_builtin_semaphore(const std::string& s) {
  return s.size() >= 2 && s[0] == 's' && std::all_of(s.begin() + 1, s.end(), [](char c) {
           return std::isdigit(static_cast<unsigned char>(c));
         });
}

std::string quote(const std::string& s) {
  const bool plain = !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isgraph(static_cast<unsigned char>(c)) && c != '"' && c != '#' && c != ';' &&
           c != '\\';
  });
  if (plain) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string format_value(const KeySpec& k, std::int64_t v) {
  switch (k.format) {
    case Format::kHex:
      return hex(std::uint64_t(v));
    case Format::kActivation:
      return kActivationNames[v];
    case Format::kUnsigned:
    case Format::kSigned:
      break;
  }
  return std::to_string(v);
}

std::string semaphore_name(unsigned i, const Program* names) {
  if (names && i < names->semaphore_names.size() && !names->semaphore_names[i].empty()) {
    return names->semaphore_names[i];
  }
  return "s" + std::to_string(i);
}

std::string format_mask(std::uint16_t mask, const Program* names) {
  std::string out;
  for (unsigned i = 0; i < kNumSemaphores; ++i) {
    if (mask & (1u << i)) out += (out.empty() ? "" : ",") + semaphore_name(i, names);
  }
  return out;
}

// One source line split into words; quoted words keep their spaces, comments are dropped.
struct Line {
  int number;
  std::vector<std::string> words;
};

class Parser {
 public:
  explicit Parser(const std::string& text) : text_(text) {
    program_.semaphore_names.assign(kNumSemaphores, "");
  }

  Program run() {
    std::istringstream in(text_);
    std::string raw;
    int number = 0;
    while (std::getline(in, raw)) {
      ++number;
      line_ = number;
      const std::vector<std::string> words = split(raw);
      if (words.empty()) continue;
      if (words[0][0] == '.') {
        directive(words);
      } else {
        program_.instructions.push_back(instruction(words));
      }
    }
    return std::move(program_);
  }

 private:
  [[noreturn]] void error(const std::string& what) const {
    throw IsaError("line " + std::to_string(line_) + ": " + what);
  }

  std::vector<std::string> split(const std::string& raw) const {
    std::vector<std::string> words;
    std::size_t i = 0;
    while (i < raw.size()) {
      const char c = raw[i];
      if (c == '#' || c == ';') break;
      if (std::isspace(static_cast<unsigned char>(c))) {
        ++i;
        continue;
      }
      std::string word;
      if (c == '"') {
        ++i;
        bool closed = false;
        while (i < raw.size()) {
          const char q = raw[i++];
          if (q == '"') {
            closed = true;
            break;
          }
          if (q == '\\' && i < raw.size()) {
            const char e = raw[i++];
            word += e == 'n' ? '\n' : e;
          } else {
            word += q;
          }
        }
        if (!closed) error("unterminated string");
      } else {
        while (i < raw.size() && !std::isspace(static_cast<unsigned char>(raw[i])) &&
               raw[i] != '#' && raw[i] != ';') {
          word += raw[i++];
        }
      }
      words.push_back(word);
    }
    return words;
  }

  // Decimal or 0x hex, with a leading '-' only where `allow_negative`.
  std::int64_t number(const std::string& what, const std::string& s, bool allow_negative) const {
    std::size_t i = 0;
    bool negative = false;
    if (allow_negative && !s.empty() && s[0] == '-') {
      negative = true;
      i = 1;
    }
    unsigned base = 10;
    if (s.compare(i, 2, "0x") == 0 || s.compare(i, 2, "0X") == 0) {
      base = 16;
      i += 2;
    }
    if (i == s.size()) error("bad number '" + s + "' for " + what);
    std::uint64_t v = 0;
    for (; i < s.size(); ++i) {
      const char c = static_cast<char>(std::tolower(static_cast<unsigned char>(s[i])));
      unsigned d;
      if (c >= '0' && c <= '9') {
        d = unsigned(c - '0');
      } else if (base == 16 && c >= 'a' && c <= 'f') {
        d = unsigned(c - 'a' + 10);
      } else {
        error("bad number '" + s + "' for " + what);
      }
      if (v > ((std::uint64_t(1) << 62) - d) / base)
        error("number '" + s + "' too large for " + what);
      v = v * base + d;
    }
    return negative ? -std::int64_t(v) : std::int64_t(v);
  }

  std::int64_t field_value(const char* mnemonic, const KeySpec& k, const std::string& text) const {
    const std::string what = std::string(mnemonic) + " " + k.key;
    if (k.format == Format::kActivation) {
      for (std::size_t i = 0; i < std::size(kActivationNames); ++i) {
        if (text == kActivationNames[i]) return std::int64_t(i);
      }
      error("bad value '" + text + "' for " + what + " (expected none, relu or relu6)");
    }
    const bool is_signed = k.format == Format::kSigned;
    const std::int64_t v = number(what, text, is_signed);
    const std::int64_t lo = is_signed ? -(std::int64_t(1) << (k.width - 1)) : 0;
    const std::int64_t hi =
        is_signed ? (std::int64_t(1) << (k.width - 1)) - 1 : (std::int64_t(1) << k.width) - 1;
    if (v < lo || v > hi) {
      error(what + "=" + text + " out of range (" + std::to_string(k.width) +
            " bits: " + std::to_string(lo) + ".." + std::to_string(hi) + ")");
    }
    return v;
  }

  std::uint16_t semaphore_mask(const std::string& key, const std::string& list) const {
    std::uint16_t mask = 0;
    std::size_t start = 0;
    while (true) {
      const std::size_t comma = list.find(',', start);
      const std::string name =
          list.substr(start, comma == std::string::npos ? comma : comma - start);
      const unsigned bit = semaphore(name);
      if (mask & (1u << bit)) error(key + ": semaphore '" + name + "' listed twice");
      mask = std::uint16_t(mask | (1u << bit));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    return mask;
  }

  unsigned semaphore(const std::string& name) const {
    for (unsigned i = 0; i < kNumSemaphores; ++i) {
      if (program_.semaphore_names[i] == name && !name.empty()) return i;
    }
    if (is_builtin_semaphore(name)) {
      const std::int64_t i = number("semaphore", name.substr(1), false);
      if (i < std::int64_t(kNumSemaphores)) return unsigned(i);
    }
    std::vector<std::string> known;
    for (const std::string& n : program_.semaphore_names) {
      if (!n.empty()) known.push_back(n);
    }
    error("unknown semaphore '" + name + "'" + suggestion(name, known) +
          " (declare it with .sem N " + (name.empty() ? "name" : name) + ", or use s0..s15)");
  }

  Instruction instruction(const std::vector<std::string>& words) {
    const OpSpec* op = nullptr;
    for (const OpSpec& s : kOps) {
      if (words[0] == mnemonic(s.op)) op = &s;
    }
    if (!op) {
      std::vector<std::string> names;
      for (const OpSpec& s : kOps) names.push_back(mnemonic(s.op));
      error("unknown mnemonic '" + words[0] + "'" + suggestion(words[0], names));
    }
    const char* name = mnemonic(op->op);
    Instruction inst;
    inst.op = op->op;
    std::vector<bool> seen(op->n_keys, false);
    bool seen_wait = false, seen_signal = false, seen_flag = false;
    for (std::size_t w = 1; w < words.size(); ++w) {
      const std::string& word = words[w];
      const std::size_t eq = word.find('=');
      const std::string key = word.substr(0, eq);
      if (eq == std::string::npos) {
        if (!op->flag || key != op->flag) unknown_key(*op, key);
        if (seen_flag) error(std::string(name) + ": key '" + key + "' given twice");
        seen_flag = true;
        inst.flags |= kFlagAccumulate;
        continue;
      }
      const std::string value = word.substr(eq + 1);
      if (key == "wait" || key == "signal") {
        bool& seen_sem = key == "wait" ? seen_wait : seen_signal;
        if (seen_sem) error(std::string(name) + ": key '" + key + "' given twice");
        seen_sem = true;
        (key == "wait" ? inst.wait : inst.signal) = semaphore_mask(key, value);
        continue;
      }
      std::size_t k = 0;
      while (k < op->n_keys && key != op->keys[k].key) ++k;
      if (k == op->n_keys) unknown_key(*op, key);
      if (seen[k]) error(std::string(name) + ": key '" + key + "' given twice");
      seen[k] = true;
      op->keys[k].set(inst, field_value(name, op->keys[k], value));
    }
    for (std::size_t k = 0; k < op->n_keys; ++k) {
      if (seen[k]) continue;
      if (op->keys[k].required) {
        error(std::string(name) + ": missing required key '" + op->keys[k].key + "'");
      }
      op->keys[k].set(inst, op->keys[k].fallback);
    }
    if (op->op == Opcode::kLayer && inst.layer >= program_.layers.size()) {
      error("layer id=" + std::to_string(inst.layer) + " but only " +
            std::to_string(program_.layers.size()) + " layers declared with .layer");
    }
    return inst;
  }

  [[noreturn]] void unknown_key(const OpSpec& op, const std::string& key) const {
    std::vector<std::string> keys;
    for (std::size_t k = 0; k < op.n_keys; ++k) keys.push_back(op.keys[k].key);
    if (op.flag) keys.push_back(op.flag);
    keys.push_back("wait");
    keys.push_back("signal");
    std::string list;
    for (const std::string& k : keys) list += (list.empty() ? "" : ", ") + k;
    error(std::string(mnemonic(op.op)) + " has no key '" + key + "'" + suggestion(key, keys) +
          " (keys: " + list + ")");
  }

  void expect_args(const std::vector<std::string>& words, std::size_t n, const char* usage) const {
    if (words.size() != n + 1) error(words[0] + " expects: " + words[0] + " " + usage);
  }

  void once(const std::string& directive) {
    if (std::find(seen_directives_.begin(), seen_directives_.end(), directive) !=
        seen_directives_.end()) {
      error(directive + " given twice");
    }
    seen_directives_.push_back(directive);
  }

  void directive(const std::vector<std::string>& words) {
    const std::string& d = words[0];
    if (d == ".dtype") {
      expect_args(words, 1, "int8|bf16");
      once(d);
      const std::optional<DataType> dtype = parse_data_type(words[1]);
      if (!dtype) error("unknown data type '" + words[1] + "' (expected int8 or bf16)");
      program_.dtype = *dtype;
    } else if (d == ".array") {
      expect_args(words, 2, "ROWS COLS");
      once(d);
      program_.array_rows = std::uint32_t(bounded(".array rows", words[1], 0xffffffffu));
      program_.array_cols = std::uint32_t(bounded(".array cols", words[2], 0xffffffffu));
    } else if (d == ".hbm") {
      expect_args(words, 1, "BYTES");
      once(d);
      program_.hbm_bytes = std::uint64_t(number(".hbm bytes", words[1], false));
    } else if (d == ".sem") {
      expect_args(words, 2, "INDEX NAME");
      const auto i = std::size_t(bounded(".sem index", words[1], kNumSemaphores - 1));
      const std::string& name = words[2];
      if (!is_identifier(name) || is_builtin_semaphore(name)) {
        error(".sem name '" + name + "' must be an identifier other than s0..s15");
      }
      if (!program_.semaphore_names[i].empty()) {
        error(".sem " + std::to_string(i) + " already named '" + program_.semaphore_names[i] + "'");
      }
      for (std::size_t j = 0; j < kNumSemaphores; ++j) {
        if (program_.semaphore_names[j] == name) {
          error(".sem name '" + name + "' already names semaphore " + std::to_string(j));
        }
      }
      program_.semaphore_names[i] = name;
    } else if (d == ".layer") {
      expect_args(words, 4, "INDEX NAME KIND MACS");
      const std::int64_t i = number(".layer index", words[1], false);
      if (i != std::int64_t(program_.layers.size())) {
        error(".layer " + words[1] + ": expected index " + std::to_string(program_.layers.size()) +
              " (layers are declared in order)");
      }
      LayerInfo l;
      l.name = words[2];
      l.kind = words[3];
      l.macs = std::uint64_t(number(".layer macs", words[4], false));
      program_.layers.push_back(std::move(l));
    } else {
      std::vector<std::string> names(std::begin(kDirectives), std::end(kDirectives));
      error("unknown directive '" + d + "'" + suggestion(d, names));
    }
  }

  std::int64_t bounded(const std::string& what, const std::string& text, std::uint64_t hi) const {
    const std::int64_t v = number(what, text, false);
    if (std::uint64_t(v) > hi) {
      error(what + " " + text + " out of range (0.." + std::to_string(hi) + ")");
    }
    return v;
  }

  const std::string& text_;
  Program program_;
  int line_ = 0;
  std::vector<std::string> seen_directives_;
};

}  // namespace

std::string to_assembly(const Instruction& inst, const Program* names) {
  encode(inst);  // rejects values the text could not carry back
  const OpSpec& op = op_spec(inst.op);
  std::string out = mnemonic(inst.op);
  for (std::size_t k = 0; k < op.n_keys; ++k) {
    const KeySpec& key = op.keys[k];
    out += std::string(" ") + key.key + "=" + format_value(key, key.get(inst));
  }
  if (op.flag && (inst.flags & kFlagAccumulate)) out += std::string(" ") + op.flag;
  if (inst.wait) out += " wait=" + format_mask(inst.wait, names);
  if (inst.signal) out += " signal=" + format_mask(inst.signal, names);
  return out;
}

std::string to_assembly(const Program& p) {
  std::string out = "# tpusim program (canonical form)\n";
  out += std::string(".dtype ") + to_string(p.dtype) + "\n";
  out += ".array " + std::to_string(p.array_rows) + " " + std::to_string(p.array_cols) + "\n";
  out += ".hbm " + std::to_string(p.hbm_bytes) + "\n";
  for (std::size_t i = 0; i < p.semaphore_names.size(); ++i) {
    const std::string& name = p.semaphore_names[i];
    if (name.empty()) continue;
    if (i >= kNumSemaphores || !is_identifier(name) || is_builtin_semaphore(name)) {
      throw IsaError("semaphore " + std::to_string(i) + " name '" + name +
                     "' cannot be written as assembly");
    }
    out += ".sem " + std::to_string(i) + " " + name + "\n";
  }
  for (std::size_t i = 0; i < p.layers.size(); ++i) {
    const LayerInfo& l = p.layers[i];
    out += ".layer " + std::to_string(i) + " " + quote(l.name) + " " + quote(l.kind) + " " +
           std::to_string(l.macs) + "\n";
  }
  for (const Instruction& inst : p.instructions) {
    out += (inst.op == Opcode::kLayer ? "" : "  ") + to_assembly(inst, &p) + "\n";
  }
  return out;
}

Program parse_assembly(const std::string& text) { return Parser(text).run(); }

}  // namespace tpu
