#pragma once
// One MXU's weight FIFO (mxu.weight_fifo_tiles entries): the timing state shared by the DMA
// unit, which fills entries in `dma.load weights fifo=i` program order, and MXU i's weight
// loader, which reads them in `load.weights fifo unit=i` program order (sim/README.md, "Weight
// FIFO"). The entries' bytes live in MachineState::weight_fifos[i].
#include <cstdint>
#include <vector>

#include <systemc>

#include "sim/clock.h"

namespace tpu {

struct WeightFifo {
  explicit WeightFifo(std::uint32_t depth) : depth(depth) {}
  const std::uint32_t depth;
  // Completion cycle of fill i (`dma.load weights` number i), appended as each completes.
  std::vector<Cycle> filled;
  // Completion cycle of read i (`load.weights fifo` number i, which frees entry i), appended
  // at its start (its completion, e + K_t, is known then).
  std::vector<Cycle> freed;
  sc_core::sc_event changed;  // a fill completed or a read started
};

}  // namespace tpu
