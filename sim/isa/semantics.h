#pragma once
// What each instruction does to the machine's data, independent of time. The SystemC units
// call these for their data path (the MXU's `pe` model computes matmuls its own way and must
// agree bit for bit with matmul_tile()); interpret() runs a whole program sequentially with no
// timing, which is how the compiler is tested without SystemC.
#include <cstdint>
#include <deque>
#include <vector>

#include "sim/config/config.h"
#include "sim/isa/program.h"

namespace tpu {

// bf16 <-> fp32, round to nearest even (NaN stays NaN).
std::uint16_t fp32_to_bf16(float f);
float bf16_to_fp32(std::uint16_t b);

// The tile of weights last loaded into one of the MXU's weight buffers.
struct WeightTile {
  std::uint32_t rows = 0;  // K_t
  std::uint32_t cols = 0;  // N_t
  // rows x cols elements, row-major (k, then n): `int8` for int8 programs, `bf16` bit patterns
  // for bf16 programs; the other vector is empty.
  std::vector<std::int8_t> int8;
  std::vector<std::uint16_t> bf16;
  // int8 programs: the tile transposed (N_t rows of K_t) and widened for int8_dot.h, made once
  // at the load for every MATMUL of the tile.
  std::vector<std::int16_t> int16_nk;
};
// Makes `int16_nk` from `int8` (clears it for a bf16 tile): exec_load_weights does it, and so
// must anything else that builds a tile for matmul_compute.
void widen_for_dot(WeightTile& tile);

// Data state of one core plus its HBM. Sizes come from the config and the program.
struct MachineState {
  // allocate=false keeps only the sizes (timing-only runs): the vectors stay empty.
  // Throws std::invalid_argument when the program was compiled for another array shape and
  // std::out_of_range when its HBM footprint exceeds the config's HBM or an image segment
  // lies outside the footprint.
  // with_hbm=false leaves `hbm` empty: another core's state holds the chip's shared HBM.
  MachineState(const Config& config, const Program& program, bool allocate = true,
               bool with_hbm = true);

  DataType dtype;
  std::uint32_t array_rows, array_cols, row_elems, elem_bytes;
  std::uint64_t ub_rows, acc_rows;
  std::uint64_t hbm_bytes;            // Program::hbm_bytes (kept when allocate=false)
  std::vector<std::uint8_t> hbm;      // Program::hbm_bytes, initialised from the image
  std::vector<std::uint8_t> ub;       // ub_rows * row_elems * elem_bytes
  std::vector<std::int32_t> acc_i32;  // acc_rows * array_cols (int8 programs)
  std::vector<float> acc_f32;         // acc_rows * array_cols (bf16 programs)
  std::uint32_t mxus;  // core.mxus
  // Each MXU's weight FIFO (mxu.weight_fifo_tiles entries, 0 = none), indexed by MXU: the
  // entries filled by `dma.load weights fifo=i` and not yet read by `load.weights fifo unit=i`,
  // oldest first. Each entry is
  // array_rows rows of row_elems elements, laid out like UB rows (so a transfer packs into it
  // exactly as into UB rows from row 0). Not bounded here: the hardware's bound is timing.
  std::uint32_t weight_fifo_tiles = 0;
  std::vector<std::deque<std::vector<std::uint8_t>>> weight_fifos;
  std::uint64_t fifo_entry_bytes() const {
    return std::uint64_t(array_rows) * row_elems * elem_bytes;
  }

  std::uint8_t* ub_row(std::uint64_t row) { return ub.data() + row * row_elems * elem_bytes; }
  const std::uint8_t* ub_row(std::uint64_t row) const {
    return ub.data() + row * row_elems * elem_bytes;
  }
};

// Each raises SimError-compatible std::out_of_range with a one-line message naming the
// instruction field when an address falls outside HBM, the UB or the accumulators.
// UB rows one group of a DMA transfer fills: ceil(segs * elems / pack).
std::uint64_t dma_rows_per_group(const DmaFields& d);

void exec_dma_load(MachineState& s, const DmaFields& d);
void exec_dma_store(MachineState& s, const DmaFields& d);
// One piece of a DMA transfer, for engines that move a transfer burst by burst. A group's
// segments form one stream of segs * elems * eb bytes, packed into its UB rows as
// exec_dma_load describes; `offset` is a byte position in that stream (it need not fall on an
// element boundary). dma_write_ub writes `len` stream bytes into the UB, zeroing the padding
// of every row it touches (past `pack` elements, and past the data in the group's last row);
// dma_read_ub reads them back. Ranges are not checked: check_bounds() the instruction first.
void dma_write_ub(MachineState& s, const DmaFields& d, std::uint32_t group, std::uint64_t offset,
                  const std::uint8_t* bytes, std::uint64_t len);
void dma_read_ub(const MachineState& s, const DmaFields& d, std::uint32_t group,
                 std::uint64_t offset, std::uint8_t* bytes, std::uint64_t len);
// `dma.load weights`: a new entry (zero-filled) at the back of FIFO d.fifo, filled from HBM.
void exec_dma_load_fifo(MachineState& s, const DmaFields& d);
// dma_write_ub for a FIFO entry (`entry` is fifo_entry_bytes() long; d.ub_row is 0).
void dma_write_fifo(const MachineState& s, std::uint8_t* entry, const DmaFields& d,
                    std::uint32_t group, std::uint64_t offset, const std::uint8_t* bytes,
                    std::uint64_t len);
// LOAD_WEIGHTS: the tile from UB rows, or, with the `fifo` flag, from the oldest entry of its
// MXU's FIFO, which it removes (std::out_of_range when the FIFO is empty).
WeightTile exec_load_weights(MachineState& s, const Instruction& inst);
// The same, reusing `tile`'s storage (no allocation once it has grown to the array size).
void exec_load_weights(MachineState& s, const Instruction& inst, WeightTile& tile);
// Reference-speed tile multiply: acc[acc_row + m][n] (+)= sum_k x[m][k] * w[k][n], summing k
// in increasing order from zero per tile (fp32 for bf16), exactly as the systolic array does.
// matmul_tile = matmul_compute (reads the UB inputs) then matmul_commit (writes the
// accumulators), for a unit that reads and writes at different times.
void matmul_tile(MachineState& s, const Instruction& inst, const WeightTile& w);
// The sums of one MATMUL before they enter the accumulators: rows x cols, row-major.
struct TileSums {
  std::uint32_t rows = 0, cols = 0;
  std::vector<std::int32_t> i32;  // int8 programs
  std::vector<float> f32;         // bf16 programs
};
void matmul_compute(const MachineState& s, const Instruction& inst, const WeightTile& w,
                    TileSums& sums);
// Overwrites the accumulators with `sums`, or adds them with the accumulate flag (int32 wraps).
void matmul_commit(MachineState& s, const Instruction& inst, const TileSums& sums);
void exec_activate(MachineState& s, const Instruction& inst);
void exec_acc_load(MachineState& s, const Instruction& inst);
void exec_pool(MachineState& s, const Instruction& inst);
void exec_add(MachineState& s, const Instruction& inst);
void exec_vop(MachineState& s, const Instruction& inst);

// The fp32 definitions of the vector unit (sim/isa/ISA.md, "Semantics"): float operations in
// this order, std::exp the only library call, so any implementation repeating them agrees bit
// for bit. NaN passes through relu and relu6.
float activation_fp32(float x, Activation func);
// The int8 end of the fp32 path: round(y * scale_out) half away from zero, plus zero_point,
// clamped to [-128, 127]; NaN gives zero_point.
std::int8_t requantise_fp32(float y, float scale_out, std::int8_t zero_point);
// Softmax of one row of n values in place over its first `kept` columns (a causal mask keeps a
// prefix; kept >= n keeps all): the maximum m and the sum s of e^(x - m) over them, each taken
// in increasing column order; they become e^(x - m) * (1 / s), the others 0 (all 0 when
// kept == 0).
void softmax_fp32(float* x, std::uint32_t n, std::uint32_t kept);
// Layer norm of one row in place: mean = (sum of x in increasing column order) * (1 / n),
// var = (sum of (x - mean)^2, likewise) * (1 / n), r = 1 / sqrt(var + eps), then
// x = (x - mean) * r * gamma + beta. beta == nullptr: RMS norm, r = 1 / sqrt((sum of x^2) *
// (1 / n) + eps), x = x * r * gamma.
void norm_fp32(float* x, std::uint32_t n, const float* gamma, const float* beta, float eps);

// Checks every address an instruction touches against the machine's sizes; throws
// std::out_of_range naming the field. Timing-only runs call this instead of executing.
void check_bounds(const MachineState& s, const Instruction& inst);

// Runs the program in order with no timing (semaphores ignored: program order is a valid
// serialisation of any correctly synchronised program). Returns the final state. Several
// cores run their streams in turn, each on its own UB and accumulators and the one HBM: a core
// runs until it waits on a semaphore another core's signal.core has not yet signalled, then the
// next core runs (a cross-core deadlock raises std::runtime_error). The state returned is core
// 0's, holding the HBM.
MachineState interpret(const Config& config, const Program& program);

}  // namespace tpu
