// The top modules: a TPU core wired from its blocks, the chip of chip.cores cores sharing the
// HBM, and simulate(), the entry point.
#include "sim/tpu_core.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <systemc>

#include "sim/clock.h"
#include "sim/dma_engine.h"
#include "sim/hbm_channel.h"
#include "sim/hbm_mux.h"
#include "sim/interconnect.h"
#include "sim/isa/semantics.h"
#include "sim/matrix_unit.h"
#include "sim/sequencer.h"
#include "sim/unified_buffer.h"
#include "sim/vector_unit.h"
#include "sim/weight_fifo.h"

namespace tpu {
namespace {

// The DMA front end of engine `instance`: executes its queue in order, one transfer at a time.
class DmaUnit : public sc_core::sc_module {
 public:
  SC_HAS_PROCESS(DmaUnit);
  DmaUnit(sc_core::sc_module_name name, std::uint8_t instance, Sequencer& sequencer,
          DmaEngine& engine, const MachineState& state, std::deque<WeightFifo>& fifos)
      : sc_module(name),
        id_(Unit::kDma, instance),
        seq_(sequencer),
        engine_(engine),
        state_(state),
        fifos_(fifos),
        fills_(fifos.size(), 0) {
    SC_THREAD(run);
  }

 private:
  void run() {
    try {
      for (;;) {
        Sequencer::Dispatch d = seq_.next(id_, state_);
        const Issued& is = d.is;
        StartTracker& tracker = d.tracker;
        const bool to_fifo =
            is.inst.op == Opcode::kDmaLoad && (is.inst.flags & kFlagWeights);
        WeightFifo* fifo = to_fifo ? &fifos_[is.inst.dma.fifo] : nullptr;
        if (fifo) {
          // Fill number f of this FIFO (every fill of a FIFO is on one engine, validate())
          // needs entry f % depth free: its read number f - depth has completed.
          const std::uint64_t f = fills_[is.inst.dma.fifo]++;
          if (f >= fifo->depth) {
            const std::uint64_t read = f - fifo->depth;
            while (!fifo->freed.has(read)) {
              seq_.set_waiting(id_, "weight_fifo (entry of load.weights fifo " +
                                        std::to_string(read) + " of MXU " +
                                        std::to_string(is.inst.dma.fifo) + " to be read)");
              wait(fifo->changed);
            }
            seq_.set_waiting(id_, "");
            const Cycle free = fifo->freed.take(read);
            if (free > seq_.clock().now()) seq_.wait_until(free);
            tracker.satisfied("weight_fifo", free);
          }
        }
        const Cycle start = seq_.clock().now();
        seq_.started(Unit::kDma, is, tracker, start);
        seq_.set_waiting(id_, "hbm");
        const DmaEngine::Result r = engine_.transfer(is.inst, start);
        seq_.set_waiting(id_, "");
        const bool load = is.inst.op == Opcode::kDmaLoad;
        seq_.add_traffic(is.layer, r.hbm_read_bytes, r.hbm_write_bytes,
                         load ? 0 : r.ub_accesses, load ? r.ub_accesses : 0);
        seq_.complete(Unit::kDma, is, start, r.done, r.done - start);
        seq_.wait_until(r.done);
        if (fifo) {
          fifo->filled.push(r.done);
          fifo->changed.notify();
        }
      }
    } catch (...) {
      seq_.fail(std::current_exception());
    }
  }

  const UnitId id_;
  Sequencer& seq_;
  DmaEngine& engine_;
  const MachineState& state_;
  std::deque<WeightFifo>& fifos_;
  std::vector<std::uint64_t> fills_;  // per FIFO: `dma.load weights` started so far
};

// One core running stream `core` of the program; the chip binds its memory side (bind_memory).
// `instant_end` is the chip's, for the core's HBM port with several DMA engines; null with one
// engine or when the memory is order-free (hbm_mux.h).
struct TpuCore : sc_core::sc_module {
  TpuCore(sc_core::sc_module_name name, const Config& config, const Program& program,
          MachineState& state, const SimOptions& options, const Probe& probe, std::size_t core,
          InstantEnd* instant_end)
      : sc_module(name),
        clock(config.period_ns()),
        sequencer("sequencer", config, program, clock, probe, core),
        ub("ub", config, program.dtype, probe),
        weight_fifos(make_fifos(config)),
        hbm_mux(config.core.dma_engines > 1 ? std::make_unique<HbmMux>("hbm_port", instant_end)
                                            : nullptr),
        dmas(make_dmas(config, state, probe)),
        dma_units(make_dma_units(state)),
        mxus(make_mxus(config, state, options)),
        vector("vector", config, sequencer, ub, state, !options.timing_only) {
    // One engine talks to the memory directly; several share the core's port through the mux.
    if (hbm_mux) {
      for (auto& dma : dmas) dma->hbm_socket.bind(hbm_mux->engines);
    }
  }

  // Binds the core's memory side (its one DMA engine, or the mux of several) to `memory`: the
  // HBM, or the chip's interconnect.
  template <typename Target>
  void bind_memory(Target& memory) {
    if (hbm_mux) {
      hbm_mux->memory.bind(memory);
    } else {
      dmas[0]->hbm_socket.bind(memory);
    }
  }

  // One engine keeps the module names it always had ("dma", "dma_unit").
  static std::string numbered(const char* name, std::size_t i, std::size_t n) {
    return n == 1 ? name : name + std::to_string(i);
  }
  std::vector<std::unique_ptr<DmaEngine>> make_dmas(const Config& config, MachineState& state,
                                                    const Probe& probe) {
    std::vector<std::unique_ptr<DmaEngine>> engines;
    for (std::uint32_t i = 0; i < config.core.dma_engines; ++i) {
      engines.push_back(std::make_unique<DmaEngine>(
          numbered("dma", i, config.core.dma_engines).c_str(), config, clock, ub, &state, probe,
          std::uint8_t(i)));
    }
    return engines;
  }
  std::vector<std::unique_ptr<DmaUnit>> make_dma_units(const MachineState& state) {
    std::vector<std::unique_ptr<DmaUnit>> units;
    for (std::size_t i = 0; i < dmas.size(); ++i) {
      units.push_back(std::make_unique<DmaUnit>(numbered("dma_unit", i, dmas.size()).c_str(),
                                                std::uint8_t(i), sequencer, *dmas[i], state,
                                                weight_fifos));
    }
    return units;
  }
  static std::deque<WeightFifo> make_fifos(const Config& config) {
    std::deque<WeightFifo> fifos;
    for (std::uint32_t i = 0; i < config.core.mxus; ++i) {
      fifos.emplace_back(config.mxu.weight_fifo_tiles);
    }
    return fifos;
  }
  std::vector<std::unique_ptr<MatrixUnit>> make_mxus(const Config& config, MachineState& state,
                                                     const SimOptions& options) {
    std::vector<std::unique_ptr<MatrixUnit>> units;
    for (std::uint32_t i = 0; i < config.core.mxus; ++i) {
      units.push_back(std::make_unique<MatrixUnit>(
          numbered("mxu", i, config.core.mxus).c_str(), std::uint8_t(i), config, sequencer, ub,
          state, weight_fifos[i], !options.timing_only, options.fidelity));
    }
    return units;
  }

  Clock clock;
  Sequencer sequencer;
  UnifiedBuffer ub;
  std::deque<WeightFifo> weight_fifos;  // one per MXU
  std::unique_ptr<HbmMux> hbm_mux;      // several DMA engines share the memory through it
  std::vector<std::unique_ptr<DmaEngine>> dmas;
  std::vector<std::unique_ptr<DmaUnit>> dma_units;
  std::vector<std::unique_ptr<MatrixUnit>> mxus;
  VectorUnit vector;
};

// The chip: the HBM and one core per stream of the program (states[c] is core c's data; core
// 0's holds the HBM). Several cores reach the HBM through the interconnect and signal each
// other's semaphores; a one-core chip binds its DMA engine straight to the HBM.
struct Chip : sc_core::sc_module {
  Chip(sc_core::sc_module_name name, const Config& config, const Program& program,
       std::vector<std::unique_ptr<MachineState>>& states, const SimOptions& options,
       const Probe& probe)
      : sc_module(name),
        clock(config.period_ns()),
        hbm("hbm", config, options.timing_only ? nullptr : &states[0]->hbm) {
    // The HBM ports order same-instant requests unless the memory's answers cannot depend on
    // it: `ideal` HBM bound straight to the ports (an interconnect serialises what it passes).
    if (config.core.dma_engines > 1 && (config.hbm.preset != "ideal" || config.chip.cores > 1)) {
      instant_end = std::make_unique<InstantEnd>("instant_end");
    }
    if (config.chip.cores > 1) {
      interconnect = std::make_unique<Interconnect>("interconnect", config, clock, states.size());
      interconnect->hbm_socket.bind(hbm.socket);
    }
    for (std::size_t c = 0; c < states.size(); ++c) {
      const std::string core = "core" + std::to_string(c);
      cores.push_back(std::make_unique<TpuCore>(core.c_str(), config, program, *states[c],
                                                options, probe, c, instant_end.get()));
      if (interconnect) {
        cores[c]->bind_memory(*interconnect->core_sockets[c]);
      } else {
        cores[c]->bind_memory(hbm.socket);
      }
      cores[c]->sequencer.set_remote_signal([this](std::size_t target, std::uint64_t mask,
                                                   Cycle at) {
        cores[target]->sequencer.signal_at(mask, at);
      });
    }
    cores[0]->sequencer.set_progress(options.progress);
  }

  Clock clock;
  HbmChannel hbm;
  std::unique_ptr<InstantEnd> instant_end;     // ordered HBM ports only (see above)
  std::unique_ptr<Interconnect> interconnect;  // chip.cores > 1 only
  std::vector<std::unique_ptr<TpuCore>> cores;
};

// validate() for one core's stream.
void validate_stream(const Config& config, const Program& program, std::size_t core) {
  const std::string of_core =
      program_cores(program) > 1 ? " of core " + std::to_string(core) : "";
  bool halt = false;
  const std::uint64_t depth = config.mxu.weight_fifo_tiles;
  // Per MXU: a tile loaded yet, weight FIFO fills and reads so far (program order).
  std::vector<bool> loaded(config.core.mxus, false);
  std::vector<std::uint64_t> fills(config.core.mxus, 0), reads(config.core.mxus, 0);
  std::vector<std::uint8_t> filler(config.core.mxus, 0);  // the DMA engine filling each FIFO
  const InstructionList& insts = program.instructions;
  const auto [begin, end] = core_stream(program, core);
  for (std::size_t pc = begin; pc < end && !halt; ++pc) {
    // Reads the record's opcode, flags and instance; only the checks of other fields decode.
    const Opcode op = insts.op(pc);
    const std::uint8_t instance = insts.instance(pc);
    const auto where = [&] {
      return "instruction " + std::to_string(pc) + " '" + to_assembly(insts[pc], &program) + "'";
    };
    // core.mxus weight-load and matmul units (one per MXU), core.dma_engines DMA units, one
    // unit of every other kind.
    const Unit kind = unit_of(op);
    const bool mxu = kind == Unit::kWeightLoad || kind == Unit::kMatmul;
    const std::uint32_t units = mxu                    ? config.core.mxus
                                : kind == Unit::kDma ? config.core.dma_engines
                                                     : 1;
    if (instance >= units) {
      const std::string key = mxu                    ? ", core.mxus = " + std::to_string(units)
                              : kind == Unit::kDma ? ", core.dma_engines = " + std::to_string(units)
                                                   : "";
      throw SimError(where() + ": unit instance " + std::to_string(instance) +
                     ", but the core has " +
                     (units == 1 ? "one " + std::string(to_string(kind)) + " unit (instance 0" +
                                       key + ")"
                                 : std::to_string(units) + " " + to_string(kind) +
                                       " units (instances 0.." + std::to_string(units - 1) +
                                       key + ")"));
    }
    switch (op) {
      case Opcode::kHalt:
        halt = true;
        break;
      case Opcode::kDmaLoad:
        if (insts.flags(pc) & kFlagWeights) {
          const std::uint32_t f = insts[pc].dma.fifo;
          if (f >= config.core.mxus) {
            throw SimError(where() + ": weight FIFO " + std::to_string(f) + ", but the core has " +
                           std::to_string(config.core.mxus) + " (one per MXU, core.mxus)");
          }
          if (depth < 2) {
            throw SimError(where() + ": the config '" + config.name +
                           "' has no weight FIFO (mxu.weight_fifo_tiles = " +
                           std::to_string(depth) + ")");
          }
          // Fill f waits for read f - depth: a read later in program order could deadlock.
          if (fills[f] >= depth + reads[f]) {
            throw SimError(where() + ": weight FIFO fill " + std::to_string(fills[f]) +
                           " waits for 'load.weights fifo' " + std::to_string(fills[f] - depth) +
                           ", which must come before it (at most mxu.weight_fifo_tiles = " +
                           std::to_string(depth) + " fills ahead)");
          }
          // The FIFO fills in order: one engine's queue keeps its fills in program order.
          if (fills[f] == 0) {
            filler[f] = instance;
          } else if (filler[f] != instance) {
            throw SimError(where() + ": weight FIFO " + std::to_string(f) + " is filled by DMA " +
                           "engine " + std::to_string(filler[f]) + " before; every fill of a " +
                           "FIFO must be on one engine (unit=" + std::to_string(filler[f]) + ")");
          }
          ++fills[f];
        }
        break;
      case Opcode::kLoadWeights:
        loaded[instance] = true;
        if (insts.flags(pc) & kFlagFifo) {
          if (depth < 2) {
            throw SimError(where() + ": the config '" + config.name +
                           "' has no weight FIFO (mxu.weight_fifo_tiles = " +
                           std::to_string(depth) + ")");
          }
          if (reads[instance] >= fills[instance]) {
            throw SimError(where() + ": weight FIFO read " + std::to_string(reads[instance]) +
                           " has no 'dma.load weights' before it");
          }
          ++reads[instance];
        }
        break;
      case Opcode::kMatmul:
        if (!loaded[instance]) throw SimError(where() + ": no LOAD_WEIGHTS before it");
        break;
      case Opcode::kSignalCore:
        if (const std::uint8_t target = insts[pc].core; target >= program_cores(program)) {
          throw SimError(where() + ": core " + std::to_string(target) +
                         " has no instruction stream (the program has " +
                         std::to_string(program_cores(program)) + ")");
        }
        break;
      case Opcode::kLayer:
        if (const std::uint16_t layer = insts[pc].layer; layer >= program.layers.size()) {
          throw SimError(where() + ": layer " + std::to_string(layer) +
                         " not declared (the program has " +
                         std::to_string(program.layers.size()) + ")");
        }
        break;
      default:
        break;
    }
  }
  if (!halt) throw SimError("program" + of_core + " has no HALT");
}

// Rejects programs the chip cannot start: another array shape, more streams than cores, a
// stream without HALT, a unit instance the core lacks, a MATMUL with no tile loaded before
// it, a LAYER naming no layer, a signal.core to a core without a stream.
void validate(const Config& config, const Program& program) {
  if ((program.array_rows != 0 || program.array_cols != 0) &&
      (program.array_rows != config.array.rows || program.array_cols != config.array.cols)) {
    throw SimError("program was compiled for a " + std::to_string(program.array_rows) + "x" +
                   std::to_string(program.array_cols) + " array, the config '" + config.name +
                   "' has " + std::to_string(config.array.rows) + "x" +
                   std::to_string(config.array.cols));
  }
  const std::size_t streams = program_cores(program);
  if (streams > config.chip.cores) {
    throw SimError("program has " + std::to_string(streams) + " core streams, the config '" +
                   config.name + "' has chip.cores = " + std::to_string(config.chip.cores));
  }
  for (std::size_t core = 0; core < streams; ++core) {
    validate_stream(config, program, core);
  }
}

// SimOptions::trace: the InstructionTrace of every unit instruction, in completion order.
class InstructionRecorder : public Observer {
 public:
  explicit InstructionRecorder(std::size_t instructions) : begun_(instructions) {}
  void instruction(const InstructionEvent& e) override {
    InstructionTrace& t = begun_[e.pc];
    switch (e.kind) {
      case InstructionEvent::Kind::kIssued:
        t = InstructionTrace{e.pc, e.unit, e.instance, e.layer, e.cycle, 0, 0};
        break;
      case InstructionEvent::Kind::kStarted:
        t.start = e.cycle;
        break;
      case InstructionEvent::Kind::kFinished:
        t.done = e.cycle;
        trace_.push_back(t);
        break;
      default:
        break;
    }
  }
  std::vector<InstructionTrace> take() { return std::move(trace_); }

 private:
  std::vector<InstructionTrace> begun_;  // indexed by pc
  std::vector<InstructionTrace> trace_;
};
}  // namespace

SimError as_sim_error(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const SimError& e) {
    return e;
  } catch (const sc_core::sc_report& e) {
    // SystemC wraps an exception escaping a process in report E549, whose what() adds lines
    // naming SystemC's source file and the process: keep the original message alone.
    if (std::strcmp(e.get_msg_type(), sc_core::SC_ID_SIMULATION_UNCAUGHT_EXCEPTION_) == 0) {
      return SimError(e.get_msg());
    }
    return SimError(std::string("SystemC: ") + e.get_msg_type() + ": " + e.get_msg());
  } catch (const std::exception& e) {
    return SimError(e.what());
  }
}

int run_sc_main(int argc, char* argv[]) {
  setenv("SC_COPYRIGHT_MESSAGE", "DISABLE", 1);
  return sc_core::sc_elab_and_sim(argc, argv);
}

}  // namespace tpu

// Sanitizer builds only (nothing calls it otherwise), in every entry point since each uses
// run_sc_main: after a simulation LeakSanitizer may take a SystemC thread's stack for the main
// thread's and crash on its guard page while scanning it ("Tracer caught signal 11", about half
// the runs). Heap and globals are still scanned; leaks held only by a stack variable at exit
// go unseen. Weak, so an executable that never simulates in its own process can scan stacks.
extern "C" __attribute__((weak)) const char* __lsan_default_options() { return "use_stacks=0"; }

namespace tpu {

RunResult simulate(const Config& config, const Program& program, const SimOptions& options) {
  // The sc_stop note is info noise. (The banner is printed before sc_main: the entry points
  // set SC_COPYRIGHT_MESSAGE=DISABLE to hide it.)
  sc_core::sc_report_handler::set_actions(sc_core::SC_INFO, sc_core::SC_DO_NOTHING);
  validate(config, program);
  // One state per core: its UB, accumulators and weight FIFOs; core 0's holds the HBM.
  std::vector<std::unique_ptr<MachineState>> states;
  try {
    for (std::size_t c = 0; c < program_cores(program); ++c) {
      states.push_back(
          std::make_unique<MachineState>(config, program, !options.timing_only, c == 0));
    }
  } catch (const std::exception& e) {
    throw SimError(e.what());
  }
  InstructionRecorder recorder(options.trace ? program.instructions.size() : 0);
  std::vector<Observer*> observers = options.observers;
  if (options.trace) observers.push_back(&recorder);
  const Probe probe(std::move(observers));
  std::unique_ptr<Chip> chip;
  try {
    chip = std::make_unique<Chip>("tpu", config, program, states, options, probe);
    if (options.max_cycles == 0) {
      sc_core::sc_start();
    } else {
      // sc_start(t) stops before the events at t: run through cycle max_cycles.
      sc_core::sc_start(chip->clock.at(options.max_cycles + 1), sc_core::SC_EXIT_ON_STARVATION);
    }
  } catch (...) {
    throw as_sim_error(std::current_exception());
  }
  const auto& cores = chip->cores;
  bool halted = true;
  for (const auto& core : cores) {
    if (core->sequencer.error()) throw as_sim_error(core->sequencer.error());
    halted = halted && core->sequencer.halted();
  }
  if (!halted && sc_core::sc_pending_activity()) {
    throw SimError("no HALT within the cap of " + std::to_string(options.max_cycles) + " cycles");
  }
  if (!halted) {
    if (cores.size() == 1) throw SimError(cores[0]->sequencer.deadlock_report());
    std::string report;
    for (std::size_t c = 0; c < cores.size(); ++c) {
      if (cores[c]->sequencer.halted()) continue;
      report += (report.empty() ? "core " : " | core ") + std::to_string(c) + ": " +
                cores[c]->sequencer.deadlock_report();
    }
    throw SimError(report);
  }

  RunResult result;
  result.dtype = program.dtype;
  result.layers = cores[0]->sequencer.layers();
  result.units = cores[0]->sequencer.units();
  result.mxus = cores[0]->sequencer.mxus();
  for (std::size_t c = 0; c < cores.size(); ++c) {
    const Sequencer& seq = cores[c]->sequencer;
    if (c > 0) {
      for (std::size_t l = 0; l < result.layers.size(); ++l) result.layers[l] += seq.layers()[l];
      for (std::size_t u = 0; u < kNumUnits; ++u) result.units[u] += seq.units()[u];
      for (std::size_t m = 0; m < result.mxus.size(); ++m) result.mxus[m] += seq.mxus()[m];
    }
    CoreStats core;
    core.total_cycles = seq.total_cycles();
    core.units = seq.units();
    core.mxus = seq.mxus();
    core.sync_wait_cycles = seq.sync_wait_cycles();
    if (chip->interconnect) {
      core.interconnect_read_bytes = chip->interconnect->traffic()[c].read_bytes;
      core.interconnect_write_bytes = chip->interconnect->traffic()[c].write_bytes;
    }
    result.total_cycles = std::max(result.total_cycles, core.total_cycles);
    result.cores.push_back(std::move(core));
  }
  result.simulated_ns = double(result.total_cycles) * config.period_ns();
  chip->hbm.settle_refresh();  // count the refreshes an idle device did up to the end
  result.hbm = chip->hbm.stats();
  result.trace = recorder.take();
  if (!options.timing_only) result.hbm_final = std::move(states[0]->hbm);
  return result;
}

}  // namespace tpu
