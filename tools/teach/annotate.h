#pragma once
// Assembly with a comment under each instruction saying what it does in the machine's terms:
// its layer, what it moves or computes (rows, addresses, the weight tile and buffer), and for
// each semaphore it waits on, the instruction whose signal lets it through (the k-th wait on a
// semaphore takes its k-th signal in program order: semaphores count, so that is the pairing
// when signals arrive in program order). SystemC-free.
#include <string>

#include "sim/config/config.h"
#include "sim/isa/program.h"

namespace tpu {

// One line per instruction ("pc N  <assembly>"), each followed by its "# ..." comment.
std::string annotated_assembly(const Program& program, const Config& config);

}  // namespace tpu
