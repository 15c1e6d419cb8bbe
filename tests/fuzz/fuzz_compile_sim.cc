// Fuzz target: compile and simulate small fuzzed models (model JSON, or a SCALE-Sim CSV when the
// input does not start with '{') in timing-only mode on a 16x16 array with ideal memory.
// A model that parses and is small enough must compile or raise CompileError; a program that
// compiles must run to HALT within the cycle cap. The simulation runs in a child process, since
// SystemC elaborates once per process; its crash, SimError or timeout is a finding, reported by
// aborting here so libFuzzer keeps the input.
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

#include <systemc>

#include "sim/tpu_core.h"
#include "tools/compiler/frontend.h"
#include "tools/compiler/lowering.h"

namespace {

// Bounds that keep one simulation to milliseconds; larger models only exercise the front end.
constexpr std::uint64_t kMaxMacs = 1u << 22;
constexpr std::uint64_t kMaxTensorElements = 1u << 16;
constexpr std::size_t kMaxNodes = 32;
// Far above what any model within the bounds takes, so reaching it means a hang.
constexpr std::uint64_t kCycleCap = 20'000'000;
constexpr int kTimeoutSeconds = 30;

const tpu::Config& small_config() {
  static const tpu::Config config = tpu::default_config(
      {"array.rows=16", "array.cols=16", "vector.lanes=16", "ub.capacity_bytes=262144",
       "acc.capacity_bytes=65536", "hbm.preset=ideal", "hbm.latency_ns=0"});
  return config;
}

// What the child's sc_main simulates.
const tpu::Program* child_program = nullptr;

bool small_enough(const tpu::Graph& graph) {
  if (graph.nodes.size() > kMaxNodes) return false;
  std::uint64_t macs = 0;
  for (const tpu::Node& n : graph.nodes) {
    macs += n.macs();
    if (macs > kMaxMacs) return false;
  }
  for (const tpu::Tensor& t : graph.tensors) {
    if (t.elements() > kMaxTensorElements) return false;
  }
  return true;
}

// The child's stderr, shown only when it fails: under ASan, every SystemC run warns that it
// ignores a no-return call on a thread stack of SystemC's own.
int child_log() {
  static std::FILE* const file = std::tmpfile();
  if (file == nullptr) {
    std::perror("fuzz_compile_sim: tmpfile");
    std::abort();
  }
  return fileno(file);
}

[[noreturn]] void fail(const std::string& why, int log) {
  char buffer[4096];
  lseek(log, 0, SEEK_SET);
  for (ssize_t n; (n = read(log, buffer, sizeof buffer)) > 0;) {
    if (write(STDERR_FILENO, buffer, std::size_t(n)) != n) break;
  }
  std::fprintf(stderr, "fuzz_compile_sim: %s\n", why.c_str());
  std::abort();
}

// Runs the simulation in a child and aborts unless it exits 0 within the timeout.
void simulate_in_child(const tpu::Program& program) {
  const int log = child_log();
  if (ftruncate(log, 0) != 0 || lseek(log, 0, SEEK_SET) != 0) fail("cannot reset the log", log);
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) fail("fork failed", log);
  if (pid == 0) {
    dup2(log, STDERR_FILENO);
    child_program = &program;
    char name[] = "fuzz_compile_sim";
    char* argv[] = {name, nullptr};
    std::_Exit(tpu::run_sc_main(1, argv));
  }
  const std::time_t deadline = std::time(nullptr) + kTimeoutSeconds;
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::time(nullptr) > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      fail("simulation still running after " + std::to_string(kTimeoutSeconds) + " s", log);
    }
    usleep(200);
  }
  if (WIFSIGNALED(status)) {
    fail(std::string("simulation killed: ") + strsignal(WTERMSIG(status)), log);
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) fail("simulation failed", log);
}

}  // namespace

// Sanitizer builds only: this process never simulates (its children do), so LeakSanitizer may
// scan its stacks, where libFuzzer keeps allocations (tpu_core.cc turns the scan off).
extern "C" const char* __lsan_default_options() { return "use_stacks=1"; }

// The child enters SystemC as every executable does, through run_sc_main.
int sc_main(int, char*[]) {
  tpu::SimOptions options;
  options.timing_only = true;
  options.max_cycles = kCycleCap;
  try {
    tpu::simulate(small_config(), *child_program, options);
  } catch (const tpu::SimError& e) {
    std::fprintf(stderr, "fuzz_compile_sim: a compiled program failed: %s\n", e.what());
    return 1;
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  tpu::Program program;
  try {
    const tpu::Graph graph = size > 0 && data[0] == '{'
                                 ? tpu::parse_model_json(text, "fuzz.json")
                                 : tpu::parse_scalesim_csv(text, "fuzz.csv");
    if (!small_enough(graph)) return 0;
    tpu::CompileOptions options;
    options.timing_only = true;
    program = tpu::compile(graph, small_config(), options);
  } catch (const tpu::CompileError&) {
    return 0;
  }
  simulate_in_child(program);
  return 0;
}
