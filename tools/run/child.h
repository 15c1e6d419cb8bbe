#pragma once
// Running work in a forked child process. SystemC elaborates once per process, so every
// simulation after a process's first needs its own child; the sweep runner also uses children
// to run points in parallel and to survive a point that crashes. And running another program
// (gnuplot, sbatch) to its end.
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

namespace tpu {

struct ChildOutcome {
  bool ok = false;       // work() returned normally
  std::string output;    // what work() returned (when ok)
  std::string error;     // when not ok, one line: work()'s exception, or how the child ended
  double max_rss_mib = 0;  // the child's peak resident memory
};

// One child running `work`. For several children at once, poll() their fd()s and call
// read_available() when one is readable; finish() once it returns true.
class ChildProcess {
 public:
  explicit ChildProcess(const std::function<std::string()>& work);
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&&) = delete;
  ChildProcess(const ChildProcess&) = delete;
  ~ChildProcess();  // a child still running is killed and reaped

  int fd() const { return fd_; }
  pid_t pid() const { return pid_; }
  // Reads what the child has written so far; true once it has closed its end.
  bool read_available();
  // Reads to the end, waits for the child and says how it ended.
  ChildOutcome finish();
  void kill();

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  std::string data_;
};

// Runs `work` in a child and waits for it; with timeout_seconds > 0 the child is killed when
// it takes longer (the outcome's error says so).
ChildOutcome run_in_child(const std::function<std::string()>& work, double timeout_seconds = 0);

// Runs work(i) for i in [0, count) in child processes, at most `jobs` at once, and calls
// done(i, outcome) in this process as each one ends (in completion order).
void run_in_children(std::size_t count, unsigned jobs,
                     const std::function<std::string(std::size_t)>& work,
                     const std::function<void(std::size_t, const ChildOutcome&)>& done);

// A program run to its end: how it ended and what it printed.
struct ProgramOutcome {
  int status = -1;  // exit status, or -1 when a signal killed it
  std::string out, err;
};

// The last non-blank line of a program's output: in its stderr, a failing program's own
// reason, for a one-line error.
std::string last_line(const std::string& text);

// Runs argv (argv[0] found on PATH, with this process's environment and stdin), collects its
// stdout and stderr and waits for it; nullopt when there is no such program. Other failures to
// start it throw a one-line error.
std::optional<ProgramOutcome> run_program(const std::vector<std::string>& argv);

}  // namespace tpu
