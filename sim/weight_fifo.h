#pragma once
// One MXU's weight FIFO (mxu.weight_fifo_tiles entries): the timing state shared by the DMA
// unit, which fills entries in `dma.load weights fifo=i` program order, and MXU i's weight
// loader, which reads them in `load.weights fifo unit=i` program order (sim/README.md, "Weight
// FIFO"). The entries' bytes live in MachineState::weight_fifos[i].
#include <cstdint>
#include <deque>
#include <stdexcept>

#include <systemc>

#include "sim/clock.h"

namespace tpu {

// Cycles numbered 0, 1, 2, ... in the order they are pushed, each taken once, in number order,
// and then dropped: a run has millions of weight tiles, and its memory stays flat.
class CycleQueue {
 public:
  void push(Cycle c) { cycles_.push_back(c); }
  // Whether cycle number i has been pushed.
  bool has(std::uint64_t i) const { return i < taken_ + cycles_.size(); }
  // Cycle number i, which must be the next one not yet taken, and has(i).
  Cycle take(std::uint64_t i) {
    if (i != taken_ || cycles_.empty()) throw std::logic_error("CycleQueue: taken out of order");
    const Cycle c = cycles_.front();
    cycles_.pop_front();
    ++taken_;
    return c;
  }

 private:
  std::deque<Cycle> cycles_;
  std::uint64_t taken_ = 0;  // the number of the front cycle
};

struct WeightFifo {
  explicit WeightFifo(std::uint32_t depth) : depth(depth) {}
  const std::uint32_t depth;
  // Completion cycle of fill i (`dma.load weights` number i), pushed as each completes and
  // taken by read i.
  CycleQueue filled;
  // Completion cycle of read i (`load.weights fifo` number i, which frees entry i), pushed at
  // its start (its completion, e + K_t, is known then) and taken by fill i + depth.
  CycleQueue freed;
  sc_core::sc_event changed;  // a fill completed or a read started
};

}  // namespace tpu
