// The versioned binary program container (layout in sim/isa/ISA.md, "Program file"). All
// integers little endian; strings are a u32 length then the bytes.
#include "sim/isa/program.h"

#include <cstring>

namespace tpu {
namespace {

constexpr char kMagic[8] = {'T', 'P', 'U', 'P', 'R', 'O', 'G', '\0'};

class Writer {
 public:
  void u8(std::uint8_t v) { out_.push_back(v); }
  void u32(std::uint32_t v) { le(v, 4); }
  void u64(std::uint64_t v) { le(v, 8); }
  void f32(float f) {
    std::uint32_t bits;
    std::memcpy(&bits, &f, sizeof bits);
    u32(bits);
  }
  void bytes(const std::uint8_t* p, std::size_t n) { out_.insert(out_.end(), p, p + n); }
  void str(const std::string& s) {
    u32(std::uint32_t(s.size()));
    bytes(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
  }
  std::vector<std::uint8_t> take() { return std::move(out_); }

 private:
  void le(std::uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out_.push_back(std::uint8_t(v >> (8 * i)));
  }
  std::vector<std::uint8_t> out_;
};

class Reader {
 public:
  explicit Reader(const std::vector<std::uint8_t>& in) : in_(in) {}

  std::uint8_t u8() { return std::uint8_t(le(1)); }
  std::uint32_t u32() { return std::uint32_t(le(4)); }
  std::uint64_t u64() { return le(8); }
  float f32() {
    const std::uint32_t bits = u32();
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
  }
  const std::uint8_t* bytes(std::uint64_t n) {
    need(n);
    const std::uint8_t* p = in_.data() + pos_;
    pos_ += n;
    return p;
  }
  std::string str() {
    const std::uint32_t n = u32();
    return std::string(reinterpret_cast<const char*>(bytes(n)), n);
  }
  // A count of items of at least `item_bytes` each: rejects counts the input cannot hold
  // before anything is allocated for them.
  std::uint64_t count(std::uint64_t n, std::uint64_t item_bytes) {
    if (item_bytes != 0 && n > (in_.size() - pos_) / item_bytes) truncated();
    return n;
  }
  std::size_t pos() const { return pos_; }
  std::size_t size() const { return in_.size(); }

 private:
  [[noreturn]] void truncated() const {
    throw IsaError("truncated at byte " + std::to_string(in_.size()));
  }
  void need(std::uint64_t n) const {
    if (n > in_.size() - pos_) truncated();
  }
  std::uint64_t le(int n) {
    const std::uint8_t* p = bytes(std::uint64_t(n));
    std::uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= std::uint64_t(p[i]) << (8 * i);
    return v;
  }
  const std::vector<std::uint8_t>& in_;
  std::size_t pos_ = 0;
};

void write_view(Writer& w, const TensorView& v) {
  w.u64(v.base);
  w.u32(v.count0);
  w.u32(v.count1);
  w.u64(v.stride1);
  w.u32(v.count2);
  w.u64(v.stride2);
}

TensorView read_view(Reader& r) {
  TensorView v;
  v.base = r.u64();
  v.count0 = r.u32();
  v.count1 = r.u32();
  v.stride1 = r.u64();
  v.count2 = r.u32();
  v.stride2 = r.u64();
  return v;
}

}  // namespace

std::optional<std::uint64_t> view_end(const TensorView& v, DataType dtype) {
  if (v.elements() == 0) return 0;
  std::uint64_t last2, last1, row, end;
  if (__builtin_mul_overflow(std::uint64_t(v.count2 - 1), v.stride2, &last2) ||
      __builtin_mul_overflow(std::uint64_t(v.count1 - 1), v.stride1, &last1) ||
      __builtin_mul_overflow(std::uint64_t(v.count0), element_bytes(dtype), &row) ||
      __builtin_add_overflow(v.base, last2, &end) || __builtin_add_overflow(end, last1, &end) ||
      __builtin_add_overflow(end, row, &end)) {
    return std::nullopt;
  }
  return end;
}

std::size_t program_cores(const Program& program) {
  return std::max<std::size_t>(1, program.core_begin.size());
}

std::pair<std::size_t, std::size_t> core_stream(const Program& p, std::size_t core) {
  if (p.core_begin.empty()) return {0, p.instructions.size()};
  const std::size_t end =
      core + 1 < p.core_begin.size() ? p.core_begin[core + 1] : p.instructions.size();
  return {p.core_begin[core], end};
}

void check_core_begin(const Program& p) {
  for (std::size_t c = 0; c < p.core_begin.size(); ++c) {
    const std::size_t first = c == 0 ? 0 : p.core_begin[c - 1] + 1;
    if (p.core_begin[c] < first || p.core_begin[c] >= p.instructions.size() ||
        (c == 0 && p.core_begin[c] != 0)) {
      throw IsaError("core " + std::to_string(c) + "'s stream starts at instruction " +
                     std::to_string(p.core_begin[c]) + ": streams must start at 0, each after " +
                     "the previous one, within the " + std::to_string(p.instructions.size()) +
                     " instructions");
    }
  }
}

std::uint64_t core_signalled_semaphores(const Program& p, std::size_t core) {
  std::uint64_t mask = 0;
  for (std::size_t pc = 0; pc < p.instructions.size(); ++pc) {
    if (p.instructions.op(pc) != Opcode::kSignalCore) continue;  // decode only these
    const Instruction inst = p.instructions[pc];
    if (inst.core == core) mask |= inst.signal;
  }
  return mask;
}

std::vector<std::uint8_t> serialize(const Program& p) {
  Writer w;
  w.bytes(reinterpret_cast<const std::uint8_t*>(kMagic), sizeof kMagic);
  w.u32(Program::kFormatVersion);
  w.u8(p.dtype == DataType::kInt8 ? 0 : 1);
  w.u32(p.array_rows);
  w.u32(p.array_cols);
  w.u64(p.hbm_bytes);
  w.u32(std::uint32_t(p.instructions.size()));
  for (const Instruction& inst : p.instructions) {
    const EncodedInstruction e = encode(inst);
    w.bytes(e.data(), e.size());
  }
  w.u32(std::uint32_t(p.core_begin.size()));
  for (std::size_t b : p.core_begin) w.u64(b);
  w.u32(std::uint32_t(p.layers.size()));
  for (const LayerInfo& l : p.layers) {
    w.str(l.name);
    w.str(l.kind);
    w.u64(l.macs);
    write_view(w, l.output);
    w.u64(l.expected_int8.size());
    w.bytes(reinterpret_cast<const std::uint8_t*>(l.expected_int8.data()), l.expected_int8.size());
    w.u64(l.expected_fp32.size());
    for (float f : l.expected_fp32) w.f32(f);
  }
  w.u32(std::uint32_t(p.semaphore_names.size()));
  for (const std::string& s : p.semaphore_names) w.str(s);
  w.u32(std::uint32_t(p.hbm_image.size()));
  for (const HbmSegment& seg : p.hbm_image) {
    w.str(seg.name);
    w.u64(seg.address);
    w.u64(seg.bytes.size());
    w.bytes(seg.bytes.data(), seg.bytes.size());
  }
  return w.take();
}

bool is_serialized_program(const std::vector<std::uint8_t>& bytes) {
  return bytes.size() >= sizeof kMagic && std::memcmp(bytes.data(), kMagic, sizeof kMagic) == 0;
}

Program deserialize(const std::vector<std::uint8_t>& bytes) {
  if (!is_serialized_program(bytes)) {
    throw IsaError("not a tpusim program");
  }
  Reader r(bytes);
  r.bytes(sizeof kMagic);
  const std::uint32_t version = r.u32();
  if (version != Program::kFormatVersion) {
    throw IsaError("program format version " + std::to_string(version) + ", this build reads " +
                   std::to_string(Program::kFormatVersion) + "; recompile the program");
  }
  Program p;
  const std::uint8_t dtype = r.u8();
  if (dtype > 1) throw IsaError("program data type code " + std::to_string(dtype) + " not valid");
  p.dtype = dtype == 0 ? DataType::kInt8 : DataType::kBf16;
  p.array_rows = r.u32();
  p.array_cols = r.u32();
  p.hbm_bytes = r.u64();
  const std::uint64_t n_inst = r.count(r.u32(), kInstructionBytes);
  if (n_inst > kMaxInstructions) {
    throw IsaError(std::to_string(n_inst) + " instructions, more than the " +
                   std::to_string(kMaxInstructions) + " allowed");
  }
  p.instructions.reserve(n_inst);
  for (std::uint64_t i = 0; i < n_inst; ++i) {
    EncodedInstruction e;
    std::memcpy(e.data(), r.bytes(kInstructionBytes), kInstructionBytes);
    try {
      p.instructions.push_back(decode(e));
    } catch (const IsaError& err) {
      throw IsaError("instruction " + std::to_string(i) + ": " + err.what());
    }
  }
  const std::uint64_t n_cores = r.count(r.u32(), 8);
  for (std::uint64_t i = 0; i < n_cores; ++i) p.core_begin.push_back(std::size_t(r.u64()));
  check_core_begin(p);
  const std::uint64_t n_layers = r.count(r.u32(), 1);
  for (std::uint64_t i = 0; i < n_layers; ++i) {
    LayerInfo l;
    l.name = r.str();
    l.kind = r.str();
    l.macs = r.u64();
    l.output = read_view(r);
    const std::uint64_t n8 = r.count(r.u64(), 1);
    const auto* p8 = reinterpret_cast<const std::int8_t*>(r.bytes(n8));
    l.expected_int8.assign(p8, p8 + n8);
    const std::uint64_t n32 = r.count(r.u64(), 4);
    l.expected_fp32.resize(n32);
    for (float& f : l.expected_fp32) f = r.f32();
    p.layers.push_back(std::move(l));
  }
  for (std::size_t i = 0; i < p.layers.size(); ++i) {
    const LayerInfo& l = p.layers[i];
    const std::uint64_t expected =
        p.dtype == DataType::kInt8 ? l.expected_int8.size() : l.expected_fp32.size();
    if (expected == 0) continue;
    const std::string where = "layer " + std::to_string(i) + " '" + l.name + "': ";
    if (expected != l.output.elements()) {
      throw IsaError(where + std::to_string(expected) + " expected values but the output view has " +
                     std::to_string(l.output.elements()) + " elements");
    }
    const std::optional<std::uint64_t> end = view_end(l.output, p.dtype);
    if (!end || *end > p.hbm_bytes) {
      throw IsaError(where + "output view ends past the program's " + std::to_string(p.hbm_bytes) +
                     " bytes of HBM");
    }
  }
  const std::uint64_t n_sems = r.count(r.u32(), 4);
  for (std::uint64_t i = 0; i < n_sems; ++i) p.semaphore_names.push_back(r.str());
  const std::uint64_t n_segs = r.count(r.u32(), 1);
  for (std::uint64_t i = 0; i < n_segs; ++i) {
    HbmSegment seg;
    seg.name = r.str();
    seg.address = r.u64();
    const std::uint64_t n = r.count(r.u64(), 1);
    const std::uint8_t* data = r.bytes(n);
    seg.bytes.assign(data, data + n);
    p.hbm_image.push_back(std::move(seg));
  }
  if (r.pos() != r.size()) {
    throw IsaError(std::to_string(r.size() - r.pos()) + " unexpected bytes after the program");
  }
  return p;
}

}  // namespace tpu
