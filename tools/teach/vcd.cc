#include "tools/teach/vcd.h"

#include <stdexcept>

namespace tpu {

VcdWriter::VcdWriter(const std::string& path, const Config& config, const Program& program)
    : sc_module("tpu_vcd"),
      clock_(config.period_ns()),
      int8_(program.dtype == DataType::kInt8),
      viewer_(config, program) {
  std::string base = path;
  if (base.size() > 4 && base.compare(base.size() - 4, 4, ".vcd") == 0) {
    base.resize(base.size() - 4);
  }
  file_ = sc_core::sc_create_vcd_trace_file(base.c_str());
  if (!file_) throw std::runtime_error(path + ": cannot write file");
  file_->set_time_unit(1, sc_core::SC_PS);
  const std::size_t pes = std::size_t(config.array.rows) * config.array.cols;
  wi_.assign(int8_ ? pes : 0, 0);
  xi_.assign(int8_ ? pes : 0, 0);
  pi_.assign(int8_ ? pes : 0, 0);
  wf_.assign(int8_ ? 0 : pes, 0.0);
  xf_.assign(int8_ ? 0 : pes, 0.0);
  pf_.assign(int8_ ? 0 : pes, 0.0);
  xv_ = std::make_unique<bool[]>(pes);
  for (std::uint32_t k = 0; k < config.array.rows; ++k) {
    for (std::uint32_t n = 0; n < config.array.cols; ++n) {
      const std::size_t i = std::size_t(k) * config.array.cols + n;
      const std::string pe = "pe_" + std::to_string(k) + "_" + std::to_string(n) + "_";
      if (int8_) {
        sc_core::sc_trace(file_, wi_[i], pe + "w");
        sc_core::sc_trace(file_, xi_[i], pe + "x");
        sc_core::sc_trace(file_, pi_[i], pe + "p");
      } else {
        sc_core::sc_trace(file_, wf_[i], pe + "w");
        sc_core::sc_trace(file_, xf_[i], pe + "x");
        sc_core::sc_trace(file_, pf_[i], pe + "p");
      }
      sc_core::sc_trace(file_, xv_[i], pe + "xv");
    }
  }
  for (std::size_t u = 0; u < kNumUnits; ++u) {
    const std::string unit = to_string(Unit(u));
    sc_core::sc_trace(file_, units_[u].waiting, unit + "_waiting");
    sc_core::sc_trace(file_, units_[u].busy, unit + "_busy", 8);
    sc_core::sc_trace(file_, units_[u].pc, unit + "_pc");
  }
  SC_HAS_PROCESS(VcdWriter);
  SC_METHOD(apply_due);
  sensitive << wake_;
  dont_initialize();
}

void VcdWriter::close() {
  if (file_) sc_core::sc_close_vcd_trace_file(file_);
  file_ = nullptr;
}

void VcdWriter::instruction(const InstructionEvent& e) {
  viewer_.instruction(e);
  // Waits are told when they end; the unit's waiting signal follows take and start instead.
  if (e.kind == InstructionEvent::Kind::kIssued || e.kind == InstructionEvent::Kind::kWaited ||
      e.unit == Unit::kSequencer) {
    return;
  }
  if (e.cycle <= clock_.now()) {
    apply(e);
  } else {
    due_.emplace(e.cycle, e);
    wake_.notify(clock_.until(e.cycle));
  }
}

void VcdWriter::apply(const InstructionEvent& e) {
  UnitSignals& u = units_[std::size_t(e.unit)];
  switch (e.kind) {
    case InstructionEvent::Kind::kTaken:
      u.waiting = true;
      break;
    case InstructionEvent::Kind::kStarted:
      u.waiting = false;
      ++u.busy;
      u.pc = int(e.pc);
      break;
    case InstructionEvent::Kind::kFinished:
      --u.busy;
      break;
    default:
      break;
  }
}

void VcdWriter::apply_due() {
  const Cycle now = clock_.now();
  while (!due_.empty() && due_.begin()->first <= now) {
    apply(due_.begin()->second);
    due_.erase(due_.begin());
  }
}

void VcdWriter::array_step(Cycle t, const SystolicArray& array,
                           const std::vector<AccumulatorWrite>& landed) {
  const ArrayCycle c = viewer_.view(t, array, landed);
  for (std::size_t i = 0; i < c.pes.size(); ++i) {
    const PeView& v = c.pes[i];
    const double x = v.has_input ? v.input : 0, p = v.has_psum ? v.psum : 0;
    if (int8_) {
      wi_[i] = int(v.weight);
      xi_[i] = int(x);
      pi_[i] = int(p);
    } else {
      wf_[i] = v.weight;
      xf_[i] = x;
      pf_[i] = p;
    }
    xv_[i] = v.has_input;
  }
}

}  // namespace tpu
