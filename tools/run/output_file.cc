#include "tools/run/output_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <stdexcept>
#include <utility>

#include "sim/config/user_input.h"

namespace tpu {
namespace {

// Paths the signal handler removes: fixed storage, because a handler may not allocate.
constexpr int kMaxPending = 8;
constexpr std::size_t kMaxPath = 4096;
char pending[kMaxPending][kMaxPath];
volatile std::sig_atomic_t pending_used[kMaxPending];

int add_pending(const std::string& path) {
  if (path.size() >= kMaxPath) return -1;
  for (int i = 0; i < kMaxPending; ++i) {
    if (pending_used[i]) continue;
    std::memcpy(pending[i], path.c_str(), path.size() + 1);
    pending_used[i] = 1;
    return i;
  }
  return -1;
}

void drop_pending(int slot) {
  if (slot >= 0) pending_used[slot] = 0;
}

[[noreturn]] void fail(const std::string& path, int error) {
  throw std::runtime_error(path + ": cannot write file (" + std::strerror(error) + ")");
}

// Writes everything to `fd`, then flushes it to the device; errno on failure, else 0.
int write_all(int fd, std::string_view bytes, bool sync) {
  const char* p = bytes.data();
  std::size_t left = bytes.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    p += n;
    left -= std::size_t(n);
  }
  if (sync && fsync(fd) != 0) return errno;
  return 0;
}

void on_interrupt(int sig) {
  for (int i = 0; i < kMaxPending; ++i)
    if (pending_used[i]) unlink(pending[i]);
  const char* text = sig == SIGINT ? "tpusim: interrupted (SIGINT)\n" : "tpusim: terminated (SIGTERM)\n";
  [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, text, std::strlen(text));
  _exit(128 + sig);
}

}  // namespace

void write_output_file(const std::string& path, std::string_view bytes) {
  struct stat st;
  if (stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    if (S_ISDIR(st.st_mode)) fail(path, EISDIR);
    // A device or FIFO is written in place: it cannot be replaced by a rename.
    const int fd = open(path.c_str(), O_WRONLY);
    if (fd < 0) fail(path, errno);
    const int error = write_all(fd, bytes, false);
    if (close(fd) != 0 && error == 0) fail(path, errno);
    if (error != 0) fail(path, error);
    return;
  }
  std::string temp = path + ".tmp.XXXXXX";
  const int fd = mkstemp(temp.data());
  if (fd < 0) fail(path, errno);
  const int slot = add_pending(temp);
  int error = write_all(fd, bytes, true);
  if (close(fd) != 0 && error == 0) error = errno;
  // mkstemp makes the file 0600; an output gets the usual permissions.
  const mode_t mask = umask(0);
  umask(mask);
  if (error == 0 && chmod(temp.c_str(), 0666 & ~mask) != 0) error = errno;
  if (error == 0 && rename(temp.c_str(), path.c_str()) != 0) error = errno;
  if (error != 0) unlink(temp.c_str());
  drop_pending(slot);
  if (error != 0) fail(path, error);
}

void check_output_path(const std::string& flag, const std::string& path) {
  if (path.empty()) return;
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (fs::is_directory(st))
    throw std::runtime_error(flag + " " + path + ": is a directory, not a file");
  if (fs::exists(st)) {
    if (access(path.c_str(), W_OK) != 0)
      throw std::runtime_error(flag + " " + path + ": cannot write file (" + std::strerror(errno) +
                               ")");
    if (!fs::is_regular_file(st)) return;  // a device or FIFO is written in place
  }
  fs::path dir = fs::path(path).parent_path();
  if (dir.empty()) dir = ".";
  if (!fs::is_directory(dir, ec))
    throw std::runtime_error(flag + " " + path + ": directory " + dir.string() + " does not exist");
  if (access(dir.c_str(), W_OK) != 0)
    throw std::runtime_error(flag + " " + path + ": cannot create a file in " + dir.string() +
                             " (" + std::strerror(errno) + ")");
}

StagedOutput::StagedOutput(std::string output, const std::string& suffix)
    : output_(std::move(output)) {
  std::error_code ec;
  std::string name = (std::filesystem::temp_directory_path(ec) / "tpusim-XXXXXX").string();
  const int fd = mkstemp(name.data());  // reserves a unique stem
  if (fd < 0) fail(output_, errno);
  close(fd);
  unlink(name.c_str());
  staging_ = name + suffix;
  slot_ = add_pending(staging_);
}

StagedOutput::~StagedOutput() {
  unlink(staging_.c_str());
  drop_pending(slot_);
}

void StagedOutput::commit() {
  std::string why;
  const std::optional<std::string> text =
      read_file(staging_, std::numeric_limits<std::uint64_t>::max(), &why);
  if (!text) throw std::runtime_error(output_ + ": cannot write file (" + why + ")");
  write_output_file(output_, *text);
}

void install_interrupt_handlers() {
  struct sigaction action {};
  action.sa_handler = on_interrupt;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

}  // namespace tpu
