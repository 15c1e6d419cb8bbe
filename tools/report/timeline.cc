#include "tools/report/timeline.h"

namespace tpu {

nlohmann::json timeline_json(const Config& config, const Program& program, const RunResult& run) {
  nlohmann::json events = nlohmann::json::array();
  for (std::size_t u = 0; u < kNumUnits; ++u) {
    events.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", 0}, {"tid", u},
                      {"args", {{"name", to_string(Unit(u))}}}});
  }
  // Trace timestamps are microseconds; a cycle is period_ns / 1000 of one.
  const double us_per_cycle = config.period_ns() / 1000.0;
  for (const InstructionTrace& t : run.trace) {
    const Instruction& inst = program.instructions[t.pc];
    const std::string layer =
        t.layer >= 0 && std::size_t(t.layer) < program.layers.size()
            ? program.layers[std::size_t(t.layer)].name
            : "";
    events.push_back({{"name", mnemonic(inst.op)},
                      {"cat", layer},
                      {"ph", "X"},
                      {"pid", 0},
                      {"tid", std::size_t(t.unit)},
                      {"ts", double(t.start) * us_per_cycle},
                      {"dur", double(t.done - t.start) * us_per_cycle},
                      {"args",
                       {{"pc", t.pc},
                        {"layer", layer},
                        {"issued_cycle", t.issued},
                        {"start_cycle", t.start},
                        {"done_cycle", t.done},
                        {"asm", to_assembly(inst, &program)}}}});
  }
  return {{"traceEvents", events}, {"displayTimeUnit", "ns"}};
}

}  // namespace tpu
