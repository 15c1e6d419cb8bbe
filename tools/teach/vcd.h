#pragma once
// `tpusim explain --vcd FILE`: waveforms of a small `pe` run through SystemC's own tracing
// (sc_trace into a VCD file, viewable in GTKWave). Signals (in SystemC's top scope):
//   pe_<k>_<n>_w, _x, _p   PE (k, n)'s weight (the buffer its input meets, else the one loaded
//                          last), the activation passing and the psum passed down: integers in
//                          int8 runs, reals in bf16 runs; _xv is 1 while an activation of a
//                          stream passes (x and p are 0 otherwise);
//   <unit>_waiting         1 while the unit holds an instruction it cannot start yet;
//   <unit>_busy            instructions of the unit started and not completed (a MATMUL stays
//                          busy until its last result lands, while the next one may stream);
//   <unit>_pc              the last instruction the unit started.
// PE registers change at c + 3/4 of cycle c, when the array steps; unit signals in the cycle of
// the event, at its start or at the UB grant half a cycle in that decided it. Times in ps.
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <systemc>

#include "sim/clock.h"
#include "sim/config/config.h"
#include "sim/isa/program.h"
#include "sim/observer.h"
#include "tools/teach/explain.h"

namespace tpu {

class VcdWriter : public sc_core::sc_module, public Observer {
 public:
  // Opens `path` (SystemC adds ".vcd" unless the name ends in it) and declares every signal:
  // construct before the simulation starts.
  VcdWriter(const std::string& path, const Config& config, const Program& program);
  // Writes the rest of the file: call after the simulation.
  void close();

  void instruction(const InstructionEvent& e) override;
  void array_step(Cycle t, const SystolicArray& array,
                  const std::vector<AccumulatorWrite>& landed) override;

 private:
  struct UnitSignals {
    bool waiting = false;
    int busy = 0;
    int pc = -1;
  };
  void apply(const InstructionEvent& e);
  void apply_due();  // SC_METHOD: unit events whose cycle has begun

  const Clock clock_;
  const bool int8_;
  PeViewer viewer_;
  sc_core::sc_trace_file* file_ = nullptr;
  // Traced storage, sized once (sc_trace keeps the addresses).
  std::vector<int> wi_, xi_, pi_;
  std::vector<double> wf_, xf_, pf_;
  std::unique_ptr<bool[]> xv_;
  std::array<UnitSignals, kNumUnits> units_{};
  std::multimap<Cycle, InstructionEvent> due_;  // reported ahead of their cycle
  sc_core::sc_event_queue wake_;
};

}  // namespace tpu
