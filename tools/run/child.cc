#include "tools/run/child.h"

#include <poll.h>
#include <spawn.h>
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

extern char** environ;

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

std::string last_line(const std::string& text) {
  const std::size_t end = text.find_last_not_of("\n\r \t");
  if (end == std::string::npos) return "";
  const std::size_t newline = text.rfind('\n', end);
  const std::size_t begin = newline == std::string::npos ? 0 : newline + 1;
  return text.substr(begin, end + 1 - begin);
}

std::optional<ProgramOutcome> run_program(const std::vector<std::string>& argv) {
  int out_pipe[2], err_pipe[2];
  if (pipe(out_pipe) != 0) {
    throw std::runtime_error(std::string("cannot create a pipe (") + std::strerror(errno) + ")");
  }
  if (pipe(err_pipe) != 0) {
    const int error = errno;
    close(out_pipe[0]);
    close(out_pipe[1]);
    throw std::runtime_error(std::string("cannot create a pipe (") + std::strerror(error) + ")");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
  for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]})
    posix_spawn_file_actions_addclose(&actions, fd);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int error = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (error != 0) {
    close(out_pipe[0]);
    close(err_pipe[0]);
    if (error == ENOENT) return std::nullopt;
    throw std::runtime_error(argv[0] + ": cannot run (" + std::strerror(error) + ")");
  }
  ProgramOutcome result;
  // Both pipes at once: a program filling one while we wait on the other would block.
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  for (int open_pipes = 2; open_pipes > 0;) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(std::string("poll failed (") + std::strerror(errno) + ")");
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buffer[4096];
      const ssize_t n = read(fds[i].fd, buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n > 0) {
        sinks[i]->append(buffer, std::size_t(n));
        continue;
      }
      close(fds[i].fd);
      fds[i].fd = -1;
      --open_pipes;
    }
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

}  // namespace tpu
