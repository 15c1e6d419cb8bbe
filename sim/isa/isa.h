#pragma once
// The tpusim instruction set: TPU-style CISC instructions, each kInstructionBytes wide. The
// opcodes and their fields are declared once, in the table of sim/isa/isa_table.cc, which
// drives encoding, decoding, equality, the assembler and the field tables of sim/isa/ISA.md.
// Every instruction carries a unit instance (which unit of its kind runs it), a wait mask and
// a signal mask over kNumSemaphores counting semaphores: its unit waits until every semaphore
// in `wait` is non-zero and decrements each when it starts; it increments each semaphore in
// `signal` when it completes.
#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace tpu {

constexpr std::size_t kInstructionBytes = 128;
constexpr std::uint32_t kNumSemaphores = 64;     // one bit each in a 64-bit mask
constexpr std::uint32_t kMaxUnitInstances = 16;  // instance indices 0..15 per unit kind

enum class Opcode : std::uint8_t {
  kNop = 0,          // sync only: waits and signals, no work (sequencer)
  kHalt = 1,         // end of program: waits for every unit to drain (sequencer)
  kLayer = 2,        // tags the following instructions with layer index `layer` (sequencer)
  kDmaLoad = 3,      // HBM -> unified buffer, strided gather (DMA engine)
  kDmaStore = 4,     // unified buffer -> HBM, strided scatter (DMA engine)
  kLoadWeights = 5,  // unified buffer rows -> MXU weight registers (weight loader)
  kMatmul = 6,       // unified buffer rows through the MXU into accumulators (matrix unit)
  kActivate = 7,     // accumulators -> requantise + activation -> unified buffer (vector unit)
  kPool = 8,         // unified buffer -> max or average pooling -> unified buffer (vector unit)
  kAdd = 9,          // two UB row ranges -> element-wise add -> unified buffer (vector unit)
  kVop = 10,         // UB rows -> fp32 map, mul, softmax or norm -> unified buffer (vector unit)
  kSignalCore = 11,  // signals semaphores of another core over the interconnect (sequencer)
  kAccLoad = 12,     // raw 32-bit words in UB rows -> accumulators, set or added (vector unit)
};

// The kind of execution unit an instruction is queued to (Instruction::instance says which
// one of that kind).
enum class Unit : std::uint8_t { kSequencer, kDma, kWeightLoad, kMatmul, kVector };
constexpr std::size_t kNumUnits = 5;
Unit unit_of(Opcode op);
const char* to_string(Unit u);

// The activations ACTIVATE, ADD and VOP apply; their fp32 definitions are in semantics.h
// (activation_fp32) and their vector-unit costs in sim/vector_cost.h. Beyond relu, int8 programs
// compute them in fp32 between a dequantise and a requantise (sim/isa/ISA.md, "Semantics").
enum class Activation : std::uint8_t {
  kNone = 0,
  kRelu = 1,
  kRelu6 = 2,
  kSigmoid = 3,
  kTanh = 4,
  kGelu = 5,  // tanh approximation
  kSilu = 6,
};
constexpr std::uint8_t kNumActivations = 7;
const char* to_string(Activation func);  // "none", "relu", ..., as in assembly and model JSON

// What a VOP computes per row, before its activation.
enum class VopKind : std::uint8_t {
  kMap = 0,      // y = x (the activation alone)
  kMul = 1,      // y = a * b, element-wise
  kSoftmax = 2,  // y = softmax of the row (columns [0, cols)), optionally causally masked
  kLayerNorm = 3,  // y = (x - mean) / sqrt(variance + eps) * gamma + beta over the row
  kRmsNorm = 4,    // y = x / sqrt(mean of x^2 + eps) * gamma over the row
};
const char* to_string(VopKind kind);  // "map", "mul", ..., as in assembly
// The row ops (softmax and the norms) reduce over a whole row, which may span several UB rows.
inline bool vop_reduces(VopKind kind) {
  return kind == VopKind::kSoftmax || kind == VopKind::kLayerNorm || kind == VopKind::kRmsNorm;
}

// MATMUL flag: add into the accumulators instead of overwriting (K-split accumulation).
constexpr std::uint8_t kFlagAccumulate = 0x01;
// POOL flag: average instead of maximum.
constexpr std::uint8_t kFlagAverage = 0x02;
// DMA_LOAD flag: the destination is the weight FIFO of MXU `dma.fifo` (its next entry, rows
// packed as they would be into UB rows from row 0), not the unified buffer; `ub` must be 0.
constexpr std::uint8_t kFlagWeights = 0x04;
// LOAD_WEIGHTS flag: read the K_t rows from the oldest entry of its own MXU's weight FIFO (the
// instruction's unit instance), not UB rows; `ub` must be 0.
constexpr std::uint8_t kFlagFifo = 0x08;
// LOAD_WEIGHTS flag: the staged tile is N_t rows of K_t elements (cols rows from `ub` or the
// FIFO entry), loaded transposed through the MXU's transpose unit: W[k][n] = row n, element k.
constexpr std::uint8_t kFlagTranspose = 0x20;
// VOP flag (softmax): causal mask, row i of the instruction keeps columns
// j <= mask_row + i + mask_offset; masked elements are 0 and take no part in the max and sum.
constexpr std::uint8_t kFlagCausal = 0x10;
// ACTIVATE flag: add a per-column bias to the accumulators before the requantiser: `cols`
// 32-bit words (int32 for int8, fp32 for bf16: the accumulators' type) from word `bias` of the
// unified buffer, which the vector unit reads as one little-endian byte string (row r at byte
// r * row_bytes), so a bias need not start a UB row.
constexpr std::uint8_t kFlagBias = 0x40;
// ACTIVATE flag: write the raw 32-bit accumulator words (after the bias, if any) instead of
// requantised elements: row m's `cols` words, little endian, from the start of UB row
// ub_row + m * raw_rows_per_acc_row(); the requantiser and activation are ignored. With
// ACC_LOAD it moves exact partial sums between cores (a K split's reduction).
constexpr std::uint8_t kFlagRaw = 0x80;

// Strided copy between HBM (bytes) and the unified buffer (rows of Config::ub_row_elems()).
// Gather (load): for g in [0, groups): the segs x elems elements read from
//   hbm_addr + g * group_stride + s * seg_stride  (s in [0, segs), each seg `elems` contiguous
//   elements) are packed, in order, `pack` elements per UB row, into the rows starting at
//   ub_row + g * ub_stride. Every row written holds its data then zeros to the end of the row
//   (so a group's last row is zero-filled past its data).
// Scatter (store) is the exact inverse: it reads the first `pack` elements of each row.
struct DmaFields {
  std::uint64_t hbm_addr = 0;      // bytes
  std::uint32_t ub_row = 0;
  std::uint16_t elems = 0;         // elements per contiguous segment
  std::uint16_t segs = 1;          // segments per group
  std::uint32_t seg_stride = 0;    // bytes between segments
  std::uint16_t groups = 1;        // groups
  std::uint32_t group_stride = 0;  // bytes between groups in HBM
  std::uint16_t ub_stride = 1;     // UB rows between groups
  std::uint16_t pack = 0;          // elements per UB row (<= Config::ub_row_elems())
  std::uint8_t fifo = 0;           // load with kFlagWeights: the MXU whose weight FIFO it fills
};

// The union of every opcode's fields; which of them an opcode has (and their widths) is the
// table's business. Fields an opcode does not list are not part of the instruction: they are
// not encoded and not compared.
struct Instruction {
  Opcode op = Opcode::kNop;
  std::uint8_t flags = 0;
  std::uint8_t instance = 0;  // which unit of kind unit_of(op), < kMaxUnitInstances
  std::uint64_t wait = 0;     // semaphore bit mask
  std::uint64_t signal = 0;   // semaphore bit mask

  // kLayer
  std::uint16_t layer = 0;
  // kSignalCore: the core whose semaphores `signal` increments (not this core's)
  std::uint8_t core = 0;
  // kDmaLoad / kDmaStore
  DmaFields dma;
  // kLoadWeights: `rows` (<= R) UB rows from ub_row, `cols` (<= C) elements each (transpose:
  //               `cols` rows of `rows` elements); ub_stride
  //               holds `blocks`: the tile is block-diagonal in that many blocks (zeros
  //               elsewhere), so only rows * cols / blocks of its PEs do useful work.
  // kMatmul: `rows` input vectors from ub_row, ub_row + ub_stride, ...; each feeds the K rows
  //          of the loaded weight tile; results for columns [0, N) land in acc rows
  //          acc_row .. acc_row + rows - 1.
  // kActivate: acc rows acc_row .. + rows - 1, columns [0, cols), written to UB rows ub_row ..
  //            (with kFlagBias, src_row holds the bias's first UB word)
  // kAccLoad: acc rows acc_row .. + rows - 1, columns [0, cols), set (or with kFlagAccumulate
  //           added) from the raw words of UB rows ub_row .. laid out as kFlagRaw writes them
  std::uint32_t ub_row = 0;
  std::uint16_t ub_stride = 1;
  std::uint32_t rows = 0;
  std::uint16_t cols = 0;
  std::uint32_t acc_row = 0;
  // kActivate, int8: v = acc * multiplier (64-bit); if shift > 0, v = (v + 2^(shift-1)) >> shift
  // (round half up); v += zero_point; clamp to [-128, 127] (ReLU: floor at zero_point).
  // bf16 programs round the fp32 accumulator to bf16 and ignore the requantiser.
  // kAdd: the same with v = a * multiplier + b * multiplier_b; kPool average: v = window sum
  // * multiplier, shifted, clamped (no zero point, no activation).
  Activation func = Activation::kNone;
  std::int32_t multiplier = 1;
  std::int32_t multiplier_b = 1;
  std::uint8_t shift = 0;
  std::int8_t zero_point = 0;
  // The fp32 path (int8 ACTIVATE with an activation beyond relu, every int8 VOP): x =
  // float(q) * scale_a (and float(b) * scale_b), y = f(x) in fp32, q = clamp(round(y *
  // scale_out)). fp32 bit patterns; ACTIVATE's scale_a applies to the int32 accumulator.
  std::uint32_t scale_a = 0x3f800000;  // 1.0f
  std::uint32_t scale_b = 0x3f800000;
  std::uint32_t scale_out = 0x3f800000;
  // kVop: `kind` over rows x cols of UB rows ub_row.. (and vop_b_rows() rows from src_row)
  // into dst_row..; the causal mask (kFlagCausal) numbers the first row mask_row; the norms
  // add eps (fp32 bits) to the variance or mean square. A row op's row of `cols` elements may
  // span vop_chunks() UB rows of chunk_cols elements (the last holds the rest): chunk k of row
  // m is UB row ub_row + k * chunk_stride_a + m (dst_row + k * chunk_stride_dst + m), and the
  // parameters' chunk k rows src_row + k (gamma) and src_row + chunks + k (beta).
  VopKind kind = VopKind::kMap;
  std::uint32_t mask_row = 0;
  std::int32_t mask_offset = 0;
  std::uint32_t eps = 0x3727c5ac;  // 1e-5f
  std::uint16_t chunk_cols = 0;    // 0: one UB row per row
  std::uint32_t chunk_stride_a = 0;
  std::uint32_t chunk_stride_dst = 0;
  // kPool: max (or average) pool over an in_h x in_w grid of UB rows (pixel-major, `cols`
  // channels each) starting at ub_row; out rows written from dst_row, kernel_h x kernel_w
  // window, stride `stride`.
  // kAdd: rows x cols elements of UB rows ub_row.. (a) and src_row.. (b) into dst_row..
  std::uint32_t dst_row = 0;
  std::uint32_t src_row = 0;
  std::uint16_t in_h = 0;
  std::uint16_t in_w = 0;
  std::uint16_t kernel_h = 0;
  std::uint16_t kernel_w = 0;
  std::uint8_t stride = 0;

  // Opcode, flags and every field the table lists for the opcode (header fields included).
  bool operator==(const Instruction& o) const;
  bool operator!=(const Instruction& o) const { return !(*this == o); }
};

// A VOP's elements per UB row and UB rows per row (sim/isa/ISA.md, "vop").
inline std::uint32_t vop_chunk_cols(const Instruction& i) {
  return i.chunk_cols ? i.chunk_cols : i.cols;
}
inline std::uint32_t vop_chunks(const Instruction& i) {
  const std::uint32_t c = vop_chunk_cols(i);
  return c ? (i.cols + c - 1) / c : 1;
}
// UB rows a VOP reads from src_row: every row's b operand (mul), or the row ops' parameters,
// shared by every row: gamma (layernorm, rmsnorm), then beta (layernorm), one row per chunk.
inline std::uint32_t vop_b_rows(const Instruction& i) {
  if (i.kind == VopKind::kMul) return i.rows;
  return (i.kind == VopKind::kLayerNorm ? 2 : i.kind == VopKind::kRmsNorm ? 1 : 0) *
         vop_chunks(i);
}

// Outputs of a window sliding along one axis (convolution, pooling): `kernel` taps
// `dilation` apart, moved `stride` at a time over `in` elements with `padding` zeros on each
// side: (in + 2 padding - dilation (kernel - 1) - 1) / stride + 1, or 0 when it fits nowhere.
constexpr std::uint64_t window_outputs(std::uint64_t in, std::uint64_t kernel,
                                       std::uint64_t stride, std::uint64_t padding = 0,
                                       std::uint64_t dilation = 1) {
  const std::uint64_t span = dilation * (kernel - 1) + 1, padded = in + 2 * padding;
  return padded < span ? 0 : (padded - span) / stride + 1;
}

// UB rows [first, last) an ACTIVATE with kFlagBias reads its `cols` bias words from, with UB
// rows of row_bytes bytes.
inline std::pair<std::uint64_t, std::uint64_t> activate_bias_rows(const Instruction& i,
                                                                  std::uint64_t row_bytes) {
  const std::uint64_t first = 4 * std::uint64_t(i.src_row);
  return {first / row_bytes, (first + 4 * std::uint64_t(i.cols) + row_bytes - 1) / row_bytes};
}

// UB rows one accumulator row of `cols` raw 32-bit words takes (ACTIVATE raw, ACC_LOAD), with
// UB rows of row_bytes bytes: every accumulator row starts a UB row.
inline std::uint64_t raw_rows_per_acc_row(std::uint64_t cols, std::uint64_t row_bytes) {
  return (4 * cols + row_bytes - 1) / row_bytes;
}

// Output grid of a kPool (no padding).
inline std::uint32_t pool_out_h(const Instruction& i) {
  return std::uint32_t(window_outputs(i.in_h, i.kernel_h, i.stride));
}
inline std::uint32_t pool_out_w(const Instruction& i) {
  return std::uint32_t(window_outputs(i.in_w, i.kernel_w, i.stride));
}

using EncodedInstruction = std::array<std::uint8_t, kInstructionBytes>;

// Raised for malformed assembly or binary; what() is one line, with "line N:" for assembly.
class IsaError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Binary encoding (layout in sim/isa/ISA.md). A field outside its table range raises IsaError
// naming the opcode and the field, as does an unknown opcode or flag.
EncodedInstruction encode(const Instruction& inst);
Instruction decode(const EncodedInstruction& bytes);

const char* mnemonic(Opcode op);

// "0x" and lower-case hex digits, for addresses in messages.
std::string hex(std::uint64_t v);

}  // namespace tpu
