#include "tools/teach/annotate.h"

#include <cstdio>
#include <deque>
#include <map>

#include "sim/cycles.h"

namespace tpu {
namespace {

std::string rows(std::uint64_t first, std::uint64_t count, std::uint64_t stride = 1) {
  std::string r = "rows " + std::to_string(first) + ".." +
                  std::to_string(first + (count ? count - 1 : 0) * stride);
  return stride == 1 ? r : r + " (every " + std::to_string(stride) + ")";
}

// The UB rows a DMA transfer writes or reads (ISA.md, "dma.load"): group g packs its segments
// `pack` elements a row into rows ub_row + g * ub_stride + j, j < ceil(segs * elems / pack).
std::string dma_rows(const DmaFields& d) {
  const std::uint64_t per_group =
      ceil_div(std::uint64_t(d.segs) * d.elems, d.pack ? d.pack : 1);
  std::string r = rows(d.ub_row, (d.groups - 1) * std::uint64_t(d.ub_stride) + per_group);
  if (d.groups > 1 && d.ub_stride != per_group) {
    r += " (" + std::to_string(per_group) + " of every " + std::to_string(d.ub_stride) + ")";
  }
  return r;
}

std::string hex(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

// What `inst` moves or computes; `tile` numbers LOAD_WEIGHTS in program order, and a MATMUL
// multiplies by the last one.
std::string what(const Instruction& inst, const Program& program, const Config& config,
                 std::uint64_t tile, std::uint64_t fifo_entry) {
  const int buffer = config.mxu.double_buffer_weights ? int(tile % 2) : 0;
  const DmaFields& d = inst.dma;
  const std::string gather = std::to_string(d.groups) + " group(s) of " + std::to_string(d.segs) +
                             " segment(s) of " + std::to_string(d.elems) + " elements";
  switch (inst.op) {
    case Opcode::kLayer: {
      const LayerInfo& l = program.layers.at(inst.layer);
      return "layer " + std::to_string(inst.layer) + " '" + l.name + "' (" + l.kind + ", " +
             std::to_string(l.macs) + " MACs): the instructions below belong to it";
    }
    case Opcode::kDmaLoad:
      if (inst.flags & kFlagWeights) {
        return "HBM " + hex(d.hbm_addr) + " -> weight FIFO entry " + std::to_string(fifo_entry) +
               ": " + gather;
      }
      return "HBM " + hex(d.hbm_addr) + " -> UB " + dma_rows(d) + ": " + gather;
    case Opcode::kDmaStore:
      return "UB " + dma_rows(d) + " -> HBM " + hex(d.hbm_addr) + ": " + gather;
    case Opcode::kLoadWeights:
      return "weight tile " + std::to_string(tile) + " (K_t = " + std::to_string(inst.rows) +
             " x N_t = " + std::to_string(inst.cols) + ") from " +
             ((inst.flags & kFlagFifo) ? "weight FIFO entry " + std::to_string(fifo_entry)
                                       : "UB " + rows(inst.ub_row, inst.rows)) +
             " into weight buffer " + std::to_string(buffer);
    case Opcode::kMatmul:
      return std::to_string(inst.rows) + " input rows (UB " +
             rows(inst.ub_row, inst.rows, inst.ub_stride) + ") through weight tile " +
             std::to_string(tile) + " -> accumulator " + rows(inst.acc_row, inst.rows) +
             ((inst.flags & kFlagAccumulate) ? ", added (split K)" : ", overwritten");
    case Opcode::kActivate:
      return "accumulator " + rows(inst.acc_row, inst.rows) + ", " + std::to_string(inst.cols) +
             ((inst.flags & kFlagRaw) ? " columns, raw 32-bit words -> UB from row " +
                                            std::to_string(inst.ub_row)
                                      : " columns, requantised and activated -> UB " +
                                            rows(inst.ub_row, inst.rows));
    case Opcode::kAccLoad:
      return "raw 32-bit words from UB row " + std::to_string(inst.ub_row) + " -> accumulator " +
             rows(inst.acc_row, inst.rows) + ((inst.flags & kFlagAccumulate) ? ", added" : ", set");
    case Opcode::kPool:
      return std::string((inst.flags & kFlagAverage) ? "average" : "max") + " pool " +
             std::to_string(inst.kernel_h) + "x" + std::to_string(inst.kernel_w) + " over UB " +
             rows(inst.ub_row, std::uint64_t(inst.in_h) * inst.in_w) + " -> UB " +
             rows(inst.dst_row, std::uint64_t(pool_out_h(inst)) * pool_out_w(inst));
    case Opcode::kAdd:
      return "UB " + rows(inst.ub_row, inst.rows) + " + UB " + rows(inst.src_row, inst.rows) +
             " -> UB " + rows(inst.dst_row, inst.rows);
    case Opcode::kVop:
      return "UB " + rows(inst.ub_row, inst.rows) +
             (inst.kind == VopKind::kMul ? " x UB " + rows(inst.src_row, inst.rows)
              : inst.kind == VopKind::kMap
                  ? ""
                  : ", " + std::string(to_string(inst.kind)) + " of each row") +
             (inst.kind == VopKind::kLayerNorm || inst.kind == VopKind::kRmsNorm
                  ? " (parameters UB " +
                        rows(inst.src_row, vop_b_rows(inst)) + ")"
                  : "") +
             (vop_chunks(inst) > 1 ? ", each row over " + std::to_string(vop_chunks(inst)) +
                                         " UB rows (chunks " +
                                         std::to_string(inst.chunk_stride_a) +
                                         " rows apart in a, " +
                                         std::to_string(inst.chunk_stride_dst) + " in dst)"
                                   : "") +
             (inst.func != Activation::kNone ? std::string(", then ") + to_string(inst.func)
                                             : "") +
             " -> UB " + rows(inst.dst_row, inst.rows);
    case Opcode::kNop:
      return "synchronises only";
    case Opcode::kSignalCore:
      return "signals semaphores of core " + std::to_string(inst.core) +
             " across the interconnect";
    case Opcode::kHalt:
      return "ends the program once every unit has finished";
  }
  return "";
}

}  // namespace

std::string annotated_assembly(const Program& program, const Config& config) {
  const auto& insts = program.instructions;
  // Pair the k-th wait on each semaphore with its k-th signal, in program order.
  std::map<unsigned, std::deque<std::size_t>> signals;
  for (std::size_t pc = 0; pc < insts.size(); ++pc) {
    for (unsigned s = 0; s < kNumSemaphores; ++s) {
      if (insts.signal(pc) >> s & 1) signals[s].push_back(pc);
    }
  }
  std::string out;
  std::uint64_t tiles = 0, fills = 0, reads = 0;
  for (std::size_t pc = 0; pc < insts.size(); ++pc) {
    const Instruction& inst = insts[pc];
    std::uint64_t fifo_entry = 0;
    if (inst.op == Opcode::kLoadWeights) {
      ++tiles;
      if (inst.flags & kFlagFifo) fifo_entry = reads++;
    }
    if (inst.op == Opcode::kDmaLoad && (inst.flags & kFlagWeights)) fifo_entry = fills++;
    out += "pc " + std::to_string(pc) + "  " + to_assembly(inst, &program) + "\n      # " +
           what(inst, program, config, tiles ? tiles - 1 : 0, fifo_entry);
    for (unsigned s = 0; s < kNumSemaphores; ++s) {
      if (!(inst.wait >> s & 1)) continue;
      out += "; waits on " + semaphore_name(s, &program) + ": ";
      std::deque<std::size_t>& from = signals[s];
      if (from.empty()) {
        out += "never signalled (deadlock)";
        continue;
      }
      out += "signalled by pc " + std::to_string(from.front()) + " (" +
             mnemonic(insts[from.front()].op) + ")";
      from.pop_front();
    }
    out += "\n";
  }
  return out;
}

}  // namespace tpu
