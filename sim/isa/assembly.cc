// Assembly text <-> Program. Syntax: sim/isa/ISA.md, "Assembly". Keys, defaults and ranges come
// from the ISA table (isa_table.cc), which drives both the parser and the printer, so the
// canonical text lists every key of an instruction in table order.
#include <algorithm>
#include <cctype>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "sim/config/user_input.h"
#include "sim/isa/isa_table.h"
#include "sim/isa/program.h"

namespace tpu {
namespace {

// Where a parsed word goes: a field of the opcode or of the header, in canonical print order
// (the opcode's fields, then the header's).
std::vector<const FieldSpec*> keyed_fields(const OpcodeSpec& op) {
  std::vector<const FieldSpec*> fields;
  for (const FieldSpec& f : op.fields) fields.push_back(&f);
  for (const FieldSpec& f : header_fields()) fields.push_back(&f);
  return fields;
}

const OpcodeSpec* find_mnemonic(const std::string& word) {
  for (const OpcodeSpec& s : isa_table()) {
    if (word == s.mnemonic) return &s;
  }
  return nullptr;
}

const char* const kDirectives[] = {".dtype", ".array", ".hbm", ".sem", ".layer", ".core"};

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

// "s0".."s63" are the built-in semaphore names; a declared name may not look like one.
const std::string kBuiltinSemaphores = "s0..s" + std::to_string(kNumSemaphores - 1);

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

}  // namespace

std::string semaphore_name(unsigned i, const Program* names) {
  if (names && i < names->semaphore_names.size() && !names->semaphore_names[i].empty()) {
    return names->semaphore_names[i];
  }
  return "s" + std::to_string(i);
}

namespace {

std::string format_mask(std::uint64_t mask, const Program* names) {
  std::string out;
  for (unsigned i = 0; i < kNumSemaphores; ++i) {
    if (mask >> i & 1) out += (out.empty() ? "" : ",") + semaphore_name(i, names);
  }
  return out;
}

std::string format_value(const FieldSpec& f, std::int64_t v, const Program* names) {
  switch (f.format) {
    case FieldFormat::kHex:
      return hex(std::uint64_t(v));
    case FieldFormat::kEnum:
      return f.names[v];
    case FieldFormat::kSemaphores:
      return format_mask(std::uint64_t(v), names);
    case FieldFormat::kUnsigned:
    case FieldFormat::kSigned:
      break;
  }
  return std::to_string(v);
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
        if (program_.instructions.size() >= kMaxInstructions) {
          error("more than " + std::to_string(kMaxInstructions) + " instructions");
        }
        program_.instructions.push_back(instruction(words));
      }
    }
    if (program_.core_begin.size() == 1) program_.core_begin.clear();  // one stream: plain form
    check_core_begin(program_);
    return std::move(program_);
  }

 private:
  [[noreturn]] void error(const std::string& what) const {
    // A message quotes the line's words, which a damaged file may make megabytes long.
    throw IsaError("line " + std::to_string(line_) + ": " + excerpt(what, 200));
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

  std::int64_t field_value(const OpcodeSpec& op, const FieldSpec& f,
                           const std::string& text) const {
    const std::string what = std::string(op.mnemonic) + " " + f.name;
    if (f.format == FieldFormat::kSemaphores) return std::int64_t(semaphore_mask(f.name, text));
    if (f.format == FieldFormat::kEnum) {
      std::string names;
      for (std::int64_t v = 0; v <= f.max; ++v) {
        if (text == f.names[v]) return v;
        names += (v == 0 ? "" : v == f.max ? " or " : ", ") + std::string(f.names[v]);
      }
      error("bad value '" + text + "' for " + what + " (expected " + names + ")");
    }
    const std::int64_t v = number(what, text, f.is_signed());
    try {
      check_field(op, f, v);
    } catch (const IsaError& e) {
      error(e.what());
    }
    return v;
  }

  std::uint64_t semaphore_mask(const std::string& key, const std::string& list) const {
    std::uint64_t mask = 0;
    std::size_t start = 0;
    while (true) {
      const std::size_t comma = list.find(',', start);
      const std::string name =
          list.substr(start, comma == std::string::npos ? comma : comma - start);
      const std::uint64_t bit = std::uint64_t(1) << semaphore(name);
      if (mask & bit) error(key + ": semaphore '" + name + "' listed twice");
      mask |= bit;
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
          " (declare it with .sem N " + (name.empty() ? "name" : name) + ", or use " +
          kBuiltinSemaphores + ")");
  }

  Instruction instruction(const std::vector<std::string>& words) {
    const OpcodeSpec* op = find_mnemonic(words[0]);
    if (!op) {
      std::vector<std::string> names;
      for (const OpcodeSpec& s : isa_table()) names.push_back(s.mnemonic);
      error("unknown mnemonic '" + words[0] + "'" + suggestion(words[0], names));
    }
    const std::string name = op->mnemonic;
    const std::vector<const FieldSpec*> fields = keyed_fields(*op);
    Instruction inst;
    inst.op = op->op;
    std::vector<bool> seen(fields.size(), false);
    for (std::size_t w = 1; w < words.size(); ++w) {
      const std::string& word = words[w];
      const std::size_t eq = word.find('=');
      const std::string key = word.substr(0, eq);
      if (eq == std::string::npos) {
        const auto flag = std::find_if(op->flags.begin(), op->flags.end(),
                                       [&](const FlagSpec& f) { return key == f.word; });
        if (flag == op->flags.end()) unknown_key(*op, key);
        if (inst.flags & flag->bit) error(name + ": key '" + key + "' given twice");
        inst.flags |= flag->bit;
        continue;
      }
      std::size_t k = 0;
      while (k < fields.size() && key != fields[k]->name) ++k;
      if (k == fields.size()) unknown_key(*op, key);
      if (seen[k]) error(name + ": key '" + key + "' given twice");
      seen[k] = true;
      fields[k]->set(inst, field_value(*op, *fields[k], word.substr(eq + 1)));
    }
    for (std::size_t k = 0; k < fields.size(); ++k) {
      if (seen[k]) continue;
      if (fields[k]->required) error(name + ": missing required key '" + fields[k]->name + "'");
      fields[k]->set(inst, fields[k]->fallback);
    }
    if (op->op == Opcode::kLayer && inst.layer >= program_.layers.size()) {
      error("layer id=" + std::to_string(inst.layer) + " but only " +
            std::to_string(program_.layers.size()) + " layers declared with .layer");
    }
    return inst;
  }

  [[noreturn]] void unknown_key(const OpcodeSpec& op, const std::string& key) const {
    std::vector<std::string> keys;
    for (const FieldSpec& f : op.fields) keys.push_back(f.name);
    for (const FlagSpec& f : op.flags) keys.push_back(f.word);
    for (const FieldSpec& f : header_fields()) keys.push_back(f.name);
    std::string list;
    for (const std::string& k : keys) list += (list.empty() ? "" : ", ") + k;
    error(std::string(op.mnemonic) + " has no key '" + key + "'" + suggestion(key, keys) +
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
        error(".sem name '" + name + "' must be an identifier other than " + kBuiltinSemaphores);
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
    } else if (d == ".core") {
      expect_args(words, 1, "INDEX");
      // Instructions before the first .core are core 0's.
      if (program_.core_begin.empty() && !program_.instructions.empty()) {
        program_.core_begin.push_back(0);
      }
      const std::size_t next = program_.core_begin.size();
      const auto c = std::size_t(bounded(".core index", words[1], kMaxUnitInstances - 1));
      if (c != next) {
        error(".core " + words[1] + ": expected core " + std::to_string(next) +
              " (each core's stream follows the previous core's)");
      }
      if (c > 0 && program_.core_begin.back() == program_.instructions.size()) {
        error(".core " + words[1] + ": core " + std::to_string(c - 1) + " has no instructions");
      }
      program_.core_begin.push_back(program_.instructions.size());
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
  const OpcodeSpec& op = opcode_spec(inst.op);
  std::string out = op.mnemonic;
  auto print = [&](const FieldSpec& f) {
    const std::int64_t v = f.get(inst);
    if (f.print_default || v != f.fallback) {
      out += std::string(" ") + f.name + "=" + format_value(f, v, names);
    }
  };
  for (const FieldSpec& f : op.fields) print(f);
  for (const FlagSpec& f : op.flags) {
    if (inst.flags & f.bit) out += std::string(" ") + f.word;
  }
  for (const FieldSpec& f : header_fields()) print(f);
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
  std::size_t core = 0;
  for (std::size_t pc = 0; pc < p.instructions.size(); ++pc) {
    if (core < p.core_begin.size() && p.core_begin[core] == pc) {
      out += ".core " + std::to_string(core++) + "\n";
    }
    const Instruction& inst = p.instructions[pc];
    out += (inst.op == Opcode::kLayer ? "" : "  ") + to_assembly(inst, &p) + "\n";
  }
  return out;
}

Program parse_assembly(const std::string& text) { return Parser(text).run(); }

}  // namespace tpu
