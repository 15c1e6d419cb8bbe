#include "sim/sequencer.h"

#include <algorithm>
#include <stdexcept>
#include <utility>

#include "sim/tpu_core.h"

namespace tpu {

std::string to_string(UnitId unit) {
  std::string name = to_string(unit.kind);
  if (unit.instance != 0) name += "." + std::to_string(unit.instance);
  return name;
}

Semaphores::Semaphores(const Program& program) : names_(program.semaphore_names) {}

bool Semaphores::try_acquire(std::uint64_t mask) {
  for (std::uint32_t i = 0; i < kNumSemaphores; ++i) {
    if ((mask >> i & 1) && count_[i] == 0) return false;
  }
  for (std::uint32_t i = 0; i < kNumSemaphores; ++i) {
    if (mask >> i & 1) --count_[i];
  }
  return true;
}

void Semaphores::signal(std::uint64_t mask) {
  if (mask == 0) return;
  for (std::uint32_t i = 0; i < kNumSemaphores; ++i) {
    if (mask >> i & 1) ++count_[i];
  }
  changed_.notify();
}

std::string Semaphores::name(std::uint32_t i) const {
  if (i < names_.size() && !names_[i].empty()) return names_[i];
  return "s" + std::to_string(i);
}

std::string Semaphores::cause(std::uint64_t mask) const {
  for (std::uint32_t i = 0; i < kNumSemaphores; ++i) {
    if ((mask >> i & 1) && count_[i] == 0) return "sem:" + name(i);
  }
  return "";
}

std::string Semaphores::zero_names(std::uint64_t mask) const {
  std::string out;
  for (std::uint32_t i = 0; i < kNumSemaphores; ++i) {
    if ((mask >> i & 1) && count_[i] == 0) out += (out.empty() ? "sem:" : " sem:") + name(i);
  }
  return out;
}

void StartTracker::satisfied(const std::string& cause, Cycle at) {
  if (at >= latest_) {
    latest_ = at;
    cause_ = cause;
  }
}

std::string StartTracker::cause(Cycle start) const {
  if (start <= ready_) return "";
  if (start > latest_ || cause_.empty()) return "ub_port";
  return cause_;
}

Sequencer::Sequencer(sc_core::sc_module_name name, const Config& config, const Program& program,
                     const Clock& clock, const Probe& probe, std::size_t core)
    : sc_module(name),
      config_(config),
      program_(program),
      clock_(clock),
      probe_(probe),
      core_(core),
      begin_(core_stream(program, core).first),
      end_(core_stream(program, core).second),
      remote_sems_(core_signalled_semaphores(program, core)),
      sems_(program),
      mxus_(config.core.mxus),
      pc_(begin_) {
  layers_.resize(program.layers.size());
  entered_.resize(program.layers.size(), false);
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    layers_[i].name = program.layers[i].name;
    layers_[i].kind = program.layers[i].kind;
    layers_[i].macs = program.layers[i].macs;
    layers_[i].mxus.resize(config.core.mxus);
  }
  SC_THREAD(issue);
  SC_METHOD(fire_timed);
  sensitive << timed_event_;
  dont_initialize();
}

Issued Sequencer::tag(const Instruction& inst, std::size_t pc, Cycle now) {
  Issued is;
  is.inst = inst;
  is.pc = pc;
  is.layer = layer_;
  is.issued = now;
  const std::size_t mxu = inst.instance;
  if (inst.op == Opcode::kLoadWeights) {
    is.tile = loads_issued_[mxu]++;
    is.buffer = config_.mxu.double_buffer_weights ? int(is.tile % 2) : 0;
    is.buffer_users = matmuls_on_buffer_[mxu][std::size_t(is.buffer)];
  } else if (inst.op == Opcode::kMatmul) {
    is.tile = loads_issued_[mxu] - 1;  // the program was checked to load a tile first
    is.buffer = config_.mxu.double_buffer_weights ? int(is.tile % 2) : 0;
    ++matmuls_on_buffer_[mxu][std::size_t(is.buffer)];
  }
  return is;
}

bool Sequencer::queue_full(UnitId unit, Cycle now) const {
  const UnitQueue& q = queues_[index(unit)];
  const std::size_t taken_now = q.taken_cycle == now ? q.taken_in_cycle : 0;
  return q.entries.size() + taken_now >= config_.sequencer.queue_depth;
}

std::string Sequencer::wait_semaphores(std::uint64_t mask, std::string& waiting) {
  if (sems_.try_acquire(mask)) return "";
  const Cycle from = clock_.now();
  std::string cause;
  bool remote = false;  // some wait was on a semaphore another core signals
  do {
    cause = sems_.cause(mask);
    waiting = sems_.zero_names(mask);
    // Only a stream another core signals pays for the second lookup.
    remote = remote || ((mask & remote_sems_) && sems_.cause(mask & remote_sems_) == cause);
    wait(sems_.changed());
  } while (!sems_.try_acquire(mask));
  waiting.clear();
  if (remote) sync_wait_ += clock_.now() - from;
  return cause;
}

void Sequencer::signal_at(std::uint64_t mask, Cycle cycle) {
  at(cycle, [this, mask] { sems_.signal(mask); });
}

Cycle Sequencer::acquire_in_sequencer(const Issued& is, Cycle now) {
  const std::string cause = wait_semaphores(is.inst.wait, sequencer_waiting_);
  const Cycle at = clock_.now();
  if (!cause.empty()) charge_stall(is.pc, is.layer, cause, at - now);
  return at;
}

void Sequencer::issue() {
  try {
    const std::uint32_t width = config_.sequencer.issue_width;
    const auto& insts = program_.instructions;
    const std::size_t progress_step = std::max<std::size_t>(1, (end_ - begin_) / 100);
    Cycle now = 0;
    for (;;) {
      for (std::uint32_t slots = width; slots > 0; --slots, ++pc_) {
        const Instruction inst = insts[pc_];
        const UnitId unit(unit_of(inst.op), inst.instance);
        if (inst.op == Opcode::kLayer) {
          layer_ = inst.layer;
          if (!entered_[std::size_t(layer_)]) {
            entered_[std::size_t(layer_)] = true;
            layer_order_.push_back(std::size_t(layer_));
          }
          ++units_[std::size_t(Unit::kSequencer)].instructions;
          if (const Cycle start = config_.sequencer.op_start_cycles) {
            // The op's start cost: the rest of this cycle's slots and `start` more cycles pass
            // before the layer's first instruction issues. Charged to the sequencer's totals,
            // not the layer, whose activity opens at its first instruction's start.
            now += start;
            wait_until(now);
            charge_stall(pc_ + 1, -1, "op_start", start);
            slots = 1;
          }
          continue;
        }
        if (unit.kind == Unit::kSequencer) {
          const Issued is = tag(inst, pc_, now);
          const Cycle at = acquire_in_sequencer(is, now);
          if (at != now) {
            now = at;
            slots = width;
          }
          ++units_[std::size_t(Unit::kSequencer)].instructions;
          if (LayerStats* l = layer(is.layer)) {
            ++l->units[std::size_t(Unit::kSequencer)].instructions;
          }
          if (inst.op == Opcode::kSignalCore) {
            const Cycle arrive = now + config_.chip.interconnect_latency_cycles;
            if (remote_ && inst.core != core_) {
              remote_(inst.core, inst.signal, arrive);
            } else {
              signal_at(inst.signal, arrive);
            }
          } else {
            sems_.signal(inst.signal);
          }
          if (inst.op == Opcode::kHalt) {
            halt_cycle_ = now;
            while (outstanding_ > 0) {
              sequencer_waiting_ = "completion of every issued instruction";
              wait(all_done_);
            }
            sequencer_waiting_.clear();
            halted_ = true;
            partition_layer_cycles(layers_, layer_order_, total_cycles());
            return;
          }
          continue;
        }
        if (queue_full(unit, now)) {
          const Cycle from = now;
          sequencer_waiting_ = std::string("a free entry in the ") + to_string(unit) + " queue";
          // Entries taken this cycle free their slots next cycle; otherwise wait for a take.
          do {
            if (queue(unit).entries.size() >= config_.sequencer.queue_depth) {
              wait(taken_);
            }
            wait_until(clock_.now() + 1);
          } while (queue_full(unit, clock_.now()));
          sequencer_waiting_.clear();
          now = clock_.now();
          charge_stall(pc_, layer_, "queue", now - from);
          slots = width;
        }
        if (progress_ && (pc_ - begin_) % progress_step == 0) progress_(pc_ - begin_, end_ - begin_);
        UnitQueue& q = queue(unit);
        q.entries.push_back(tag(inst, pc_, now));
        if (probe_.on()) report(InstructionEvent::Kind::kIssued, unit.kind, q.entries.back(), now);
        ++outstanding_;
        q.pushed.notify();
      }
      ++now;
      wait_until(now);
    }
  } catch (...) {
    fail(std::current_exception());
  }
}

Sequencer::Dispatch Sequencer::next(UnitId unit, const MachineState& state) {
  Cycle ready = 0;
  Dispatch d{take(unit, ready), StartTracker(ready)};
  acquire(unit, d.is, d.tracker);
  check(state, d.is);
  return d;
}

Issued Sequencer::take(UnitId unit, Cycle& ready) {
  UnitQueue& q = queue(unit);
  q.has_current = false;
  q.waiting.clear();
  while (q.entries.empty()) wait(q.pushed);
  q.current = q.entries.front();
  q.entries.pop_front();
  q.has_current = true;
  const Cycle now = clock_.now();
  if (q.taken_cycle != now) {
    q.taken_cycle = now;
    q.taken_in_cycle = 0;
  }
  ++q.taken_in_cycle;
  taken_.notify();
  ready = std::max(q.current.issued, now);
  if (probe_.on()) report(InstructionEvent::Kind::kTaken, unit.kind, q.current, ready);
  return q.current;
}

void Sequencer::acquire(UnitId unit, const Issued& is, StartTracker& tracker) {
  const std::string cause = wait_semaphores(is.inst.wait, queue(unit).waiting);
  if (!cause.empty()) tracker.satisfied(cause, clock_.now());
}

void Sequencer::set_waiting(UnitId unit, std::string what) {
  queue(unit).waiting = std::move(what);
}

template <typename F>
void Sequencer::count(std::array<UnitStats, kNumUnits>& units, std::vector<MxuStats>& mxus,
                      Unit unit, const Issued& is, F&& f) {
  f(units[std::size_t(unit)]);
  if (unit == Unit::kWeightLoad) f(mxus[is.inst.instance].weight_load);
  if (unit == Unit::kMatmul) f(mxus[is.inst.instance].matmul);
}

void Sequencer::charge_stall(std::size_t pc, int layer_index, const std::string& cause,
                             Cycle cycles) {
  if (cycles == 0) return;
  const std::size_t u = std::size_t(Unit::kSequencer);
  units_[u].stalls[cause] += cycles;
  if (LayerStats* l = layer(layer_index)) l->units[u].stalls[cause] += cycles;
  if (probe_.on()) {
    const Cycle now = clock_.now();
    probe_.instruction(InstructionEvent{InstructionEvent::Kind::kWaited, Unit::kSequencer, 0,
                                        pc, layer_index, now, now - cycles, cause});
  }
}

void Sequencer::report(InstructionEvent::Kind kind, Unit unit, const Issued& is,
                       Cycle cycle) const {
  probe_.instruction(
      InstructionEvent{kind, unit, is.inst.instance, is.pc, is.layer, cycle, 0, ""});
}

void Sequencer::started(Unit unit, const Issued& is, const StartTracker& tracker, Cycle start) {
  LayerStats* l = layer(is.layer);
  if (l) {
    // Every instruction starts before it completes, so the layer's activity opens here.
    if (!l->started) {
      l->started = true;
      l->first_cycle = start;
    }
    l->first_cycle = std::min(l->first_cycle, start);
  }
  const std::string cause = tracker.cause(start);
  if (probe_.on()) {
    if (!cause.empty()) {
      probe_.instruction(InstructionEvent{InstructionEvent::Kind::kWaited, unit,
                                          is.inst.instance, is.pc, is.layer, start,
                                          tracker.ready(), cause});
    }
    report(InstructionEvent::Kind::kStarted, unit, is, start);
  }
  if (cause.empty()) return;
  count(units_, mxus_, unit, is,
        [&](UnitStats& u) { u.stalls[cause] += start - tracker.ready(); });
  // A layer is charged only the part of a stall inside its own activity: an instruction issued
  // ahead may wait before any instruction of its layer started, time that is not the layer's.
  const Cycle from = l ? std::max(tracker.ready(), l->first_cycle) : tracker.ready();
  if (l && start > from) {
    count(l->units, l->mxus, unit, is, [&](UnitStats& u) { u.stalls[cause] += start - from; });
  }
}

void Sequencer::complete(Unit unit, const Issued& is, Cycle start, Cycle done, Cycle busy) {
  if (done > clock_.now()) {
    at(done, [this, unit, is, start, done, busy] { complete(unit, is, start, done, busy); });
    return;
  }
  sems_.signal(is.inst.signal);
  last_completion_ = std::max(last_completion_, done);
  const auto add = [busy](UnitStats& u) {
    u.busy_cycles += busy;
    ++u.instructions;
  };
  count(units_, mxus_, unit, is, add);
  if (LayerStats* l = layer(is.layer)) {
    count(l->units, l->mxus, unit, is, add);
    l->last_cycle = std::max(l->last_cycle, done > start ? done - 1 : start);
  }
  if (probe_.on()) report(InstructionEvent::Kind::kFinished, unit, is, done);
  if (--outstanding_ == 0) all_done_.notify();
}

void Sequencer::at(Cycle cycle, std::function<void()> action) {
  if (clock_.at(cycle) <= sc_core::sc_time_stamp()) {
    action();
    return;
  }
  timed_.push_back(Timed{cycle, timed_seq_++, std::move(action)});
  std::push_heap(timed_.begin(), timed_.end(), std::greater<Timed>());
  timed_event_.notify(clock_.until(cycle));
}

void Sequencer::fire_timed() {
  const sc_core::sc_time now = sc_core::sc_time_stamp();
  while (!timed_.empty() && clock_.at(timed_.front().at) <= now) {
    std::pop_heap(timed_.begin(), timed_.end(), std::greater<Timed>());
    std::function<void()> action = std::move(timed_.back().action);
    timed_.pop_back();
    action();
  }
  if (!timed_.empty()) timed_event_.notify(clock_.until(timed_.front().at));
}

void Sequencer::wait_until(Cycle c) {
  const sc_core::sc_time t = clock_.at(c), now = sc_core::sc_time_stamp();
  if (t > now) wait(t - now);
}

void Sequencer::check(const MachineState& state, const Issued& is) const {
  try {
    check_bounds(state, is.inst);
  } catch (const std::out_of_range& e) {
    throw SimError("instruction " + std::to_string(is.pc) + " '" +
                   to_assembly(is.inst, &program_) + "': " + e.what());
  }
}

void Sequencer::fail(std::exception_ptr error) {
  if (!error_) error_ = error;
  sc_core::sc_stop();
}

void Sequencer::add_compute(int layer_index, Cycle first, Cycle last) {
  LayerStats* l = layer(layer_index);
  if (!l) return;
  if (!l->compute_seen) {
    l->compute_seen = true;
    l->compute_first = first;
    l->compute_last = last;
  } else {
    l->compute_first = std::min(l->compute_first, first);
    l->compute_last = std::max(l->compute_last, last);
  }
}

void Sequencer::add_weight_tile(int layer_index, std::uint64_t pes) {
  if (LayerStats* l = layer(layer_index)) {
    ++l->weight_tiles;
    l->used_pes += pes;
  }
}

void Sequencer::add_traffic(int layer_index, std::uint64_t hbm_read, std::uint64_t hbm_write,
                            std::uint64_t ub_reads, std::uint64_t ub_writes) {
  if (LayerStats* l = layer(layer_index)) {
    l->hbm_read_bytes += hbm_read;
    l->hbm_write_bytes += hbm_write;
    l->ub_reads += ub_reads;
    l->ub_writes += ub_writes;
  }
}

void Sequencer::add_array_work(int layer_index, std::uint32_t mxu, std::uint64_t macs,
                               std::uint64_t acc_read_bytes, std::uint64_t acc_write_bytes) {
  mxus_[mxu].array_macs += macs;
  if (LayerStats* l = layer(layer_index)) {
    l->array_macs += macs;
    l->mxus[mxu].array_macs += macs;
    l->acc_read_bytes += acc_read_bytes;
    l->acc_write_bytes += acc_write_bytes;
  }
}

void Sequencer::add_vector_work(int layer_index, std::uint64_t acc_read_bytes,
                                std::uint64_t elems) {
  if (LayerStats* l = layer(layer_index)) {
    l->acc_read_bytes += acc_read_bytes;
    l->vector_elems += elems;
  }
}

std::string Sequencer::deadlock_report() const {
  std::string out = "deadlock at cycle " + std::to_string(clock_.now()) + ":";
  bool first = true;
  const auto add = [&](const std::string& part) {
    out += (first ? " " : "; ") + part;
    first = false;
  };
  if (!halted_ && pc_ < end_) {
    add(std::string("sequencer at '") + to_assembly(program_.instructions[pc_], &program_) +
        "' waits on " + (sequencer_waiting_.empty() ? "nothing" : sequencer_waiting_));
  }
  for (std::size_t u = 0; u < queues_.size(); ++u) {
    const UnitQueue& q = queues_[u];
    if (!q.has_current && q.entries.empty()) continue;
    const Issued& head = q.has_current ? q.current : q.entries.front();
    const UnitId id(Unit(u / kMaxUnitInstances), std::uint8_t(u % kMaxUnitInstances));
    add(to_string(id) + " at '" + to_assembly(head.inst, &program_) +
        "' waits on " + (q.waiting.empty() ? "its unit" : q.waiting) +
        (q.entries.empty() ? "" : " (" + std::to_string(q.entries.size()) + " queued)"));
  }
  return out;
}

Cycle Sequencer::total_cycles() const { return std::max(last_completion_, halt_cycle_ + 1); }

}  // namespace tpu
