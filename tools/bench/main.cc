// tpusim_bench: the benchmark suite (tools/bench/suite.h; README.md, "Benchmark").
//
//   tpusim_bench [--cases A,B | --all] [--repeat R] [--list]
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include <systemc>

#include "sim/tpu_core.h"
#include "tools/bench/suite.h"

int sc_main(int argc, char* argv[]) {
  try {
    const tpu::BenchArgs args = tpu::parse_bench_args(std::vector<std::string>(argv + 1, argv + argc));
    const std::vector<tpu::BenchCase> cases = tpu::bench_cases(TPUSIM_SOURCE_DIR);
    if (args.list) {
      for (const tpu::BenchCase& c : cases)
        std::printf("%-21s %s%s\n", c.name.c_str(), c.quick ? "" : "(--all) ",
                    c.description.c_str());
      return 0;
    }
    return tpu::run_bench(tpu::select_cases(cases, args), args.repeat) ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tpusim_bench: %s\n", e.what());
    return 1;
  }
}

int main(int argc, char* argv[]) { return tpu::run_sc_main(argc, argv); }
