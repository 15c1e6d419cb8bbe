#pragma once
// Files tpusim writes (reports, traces, programs, waveforms) never appear half written: a
// regular file is written to a temporary file beside it, flushed to disk and renamed into
// place, so a crash, a full disk or an interrupt leaves either the old file or the whole new
// one. Devices and FIFOs (/dev/stdout, a pipe) are written directly, with every error checked.
#include <string>
#include <string_view>

namespace tpu {

// Throws a one-line error ("out.json: cannot write file (No space left on device)").
void write_output_file(const std::string& path, std::string_view bytes);

// Refuses, before any work, an output path that could not be written: a missing directory, a
// directory, no permission. One-line error naming `flag` and the path.
void check_output_path(const std::string& flag, const std::string& path);

// A file that another library writes by name while the run goes on (SystemC's VCD writer):
// it is written at staging_path(), a fresh name in the temporary directory, and commit() moves
// the contents to the output through write_output_file(). The staging file is removed by
// commit(), by the destructor (a failed run) and by an interrupt.
class StagedOutput {
 public:
  // `suffix` ends the staging name, e.g. ".vcd", which SystemC appends to the name it is given.
  StagedOutput(std::string output, const std::string& suffix);
  ~StagedOutput();
  StagedOutput(const StagedOutput&) = delete;
  StagedOutput& operator=(const StagedOutput&) = delete;

  const std::string& staging_path() const { return staging_; }
  void commit();

 private:
  std::string output_, staging_;
  int slot_ = -1;
};

// SIGINT and SIGTERM stop the process at once: the temporary and partial files of this module
// are removed, "tpusim: interrupted (SIGINT)" is printed and the exit status is 128 + signal
// (130, 143).
void install_interrupt_handlers();

}  // namespace tpu
