#include "tools/run/child.h"

#include <poll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

namespace tpu {
namespace {

// The child's first byte says whether the rest is work()'s result or its error message.
constexpr char kResult = 'R';
constexpr char kError = 'E';

void write_all(int fd, const std::string& data) {
  const char* p = data.data();
  std::size_t left = data.size();
  while (left > 0) {
    const ssize_t n = write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    p += n;
    left -= std::size_t(n);
  }
}

}  // namespace

ChildProcess::ChildProcess(const std::function<std::string()>& work) {
  int fds[2];
  if (pipe(fds) != 0)
    throw std::runtime_error(std::string("cannot create a pipe: ") + std::strerror(errno));
  std::fflush(nullptr);  // buffered output must not be written twice
  pid_ = fork();
  if (pid_ < 0) {
    close(fds[0]);
    close(fds[1]);
    throw std::runtime_error(std::string("cannot start a process: ") + std::strerror(errno));
  }
  if (pid_ == 0) {
    close(fds[0]);
    // The parent decides what an interrupt means; the child just stops.
    std::signal(SIGINT, SIG_DFL);
    std::signal(SIGTERM, SIG_DFL);
    std::string message;
    try {
      message = kResult + work();
    } catch (const std::exception& e) {
      message = kError + std::string(e.what());
    }
    write_all(fds[1], message);
    std::fflush(nullptr);
    _exit(0);  // no atexit handlers: they belong to the parent's state
  }
  close(fds[1]);
  fd_ = fds[0];
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(other.pid_), fd_(other.fd_), data_(std::move(other.data_)) {
  other.pid_ = -1;
  other.fd_ = -1;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0) {
    kill();
    finish();
  }
  if (fd_ >= 0) close(fd_);
}

bool ChildProcess::read_available() {
  if (fd_ < 0) return true;
  char buf[65536];
  const ssize_t n = read(fd_, buf, sizeof buf);
  if (n < 0) return errno != EINTR && errno != EAGAIN;
  if (n == 0) return true;
  data_.append(buf, std::size_t(n));
  return false;
}

void ChildProcess::kill() {
  if (pid_ > 0) ::kill(pid_, SIGKILL);
}

ChildOutcome ChildProcess::finish() {
  while (!read_available()) {}
  if (fd_ >= 0) {
    close(fd_);
    fd_ = -1;
  }
  ChildOutcome out;
  int status = 0;
  rusage usage{};
  while (wait4(pid_, &status, 0, &usage) < 0 && errno == EINTR) {}
  pid_ = -1;
  out.max_rss_mib = usage.ru_maxrss / 1024.0;  // KiB on Linux
  if (WIFSIGNALED(status)) {
    out.error = std::string("the simulation process was killed by signal ") +
                std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")";
  } else if (data_.empty() || (data_[0] != kResult && data_[0] != kError)) {
    out.error = "the simulation process exited with status " +
                std::to_string(WEXITSTATUS(status)) + " without a result";
  } else {
    out.ok = data_[0] == kResult;
    (out.ok ? out.output : out.error) = data_.substr(1);
  }
  data_.clear();
  return out;
}

ChildOutcome run_in_child(const std::function<std::string()>& work, double timeout_seconds) {
  ChildProcess child(work);
  if (timeout_seconds > 0) {
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::duration<double>(timeout_seconds);
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        child.kill();
        ChildOutcome out = child.finish();
        out.ok = false;
        out.output.clear();
        char text[64];
        std::snprintf(text, sizeof text, "timed out after %g s", timeout_seconds);
        out.error = text;
        return out;
      }
      pollfd p{child.fd(), POLLIN, 0};
      if (poll(&p, 1, int(left.count())) > 0 && child.read_available()) break;
    }
  }
  return child.finish();
}

void run_in_children(std::size_t count, unsigned jobs,
                     const std::function<std::string(std::size_t)>& work,
                     const std::function<void(std::size_t, const ChildOutcome&)>& done) {
  struct Running {
    std::size_t index;
    std::unique_ptr<ChildProcess> child;
  };
  std::vector<Running> running;
  std::size_t next = 0;
  while (next < count || !running.empty()) {
    while (running.size() < std::max(jobs, 1u) && next < count) {
      const std::size_t i = next++;
      running.push_back({i, std::make_unique<ChildProcess>([&work, i] { return work(i); })});
    }
    std::vector<pollfd> fds;
    for (const Running& r : running) fds.push_back({r.child->fd(), POLLIN, 0});
    if (poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(std::string("poll: ") + std::strerror(errno));
    }
    for (std::size_t k = running.size(); k-- > 0;) {
      if (fds[k].revents == 0 || !running[k].child->read_available()) continue;
      const ChildOutcome out = running[k].child->finish();
      const std::size_t index = running[k].index;
      running.erase(running.begin() + std::ptrdiff_t(k));
      done(index, out);
    }
  }
}

}  // namespace tpu
