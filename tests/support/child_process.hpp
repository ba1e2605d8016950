// child_process: a real process for integration tests, with its stdout and
// stderr captured; killed and reaped at scope exit so no test leaks one.
#pragma once

#include <chrono>
#include <csignal>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <tuple>
#include <unistd.h>

namespace cohort::test {

class child_process {
 public:
  explicit child_process(std::vector<std::string> argv) {
    int out[2], err[2];
    if (::pipe(out) != 0 || ::pipe(err) != 0) throw std::runtime_error("pipe failed");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      ::dup2(err[1], 2);
      ::close(out[0]), ::close(err[0]), ::close(out[1]), ::close(err[1]);
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    ::close(out[1]), ::close(err[1]);
    out_ = out[0];
    err_ = err[0];
    // Readable once the child exits: waited for with poll(), not polled.
    // (The syscall itself: glibc 2.36's <sys/pidfd.h> lacks extern "C".)
    exited_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
  }

  ~child_process() {
    if (!exit_code_) {
      ::kill(pid_, SIGKILL);
      int status;
      ::waitpid(pid_, &status, 0);
    }
    ::close(out_);
    ::close(err_);
    if (exited_ >= 0) ::close(exited_);
  }

  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  /// Reads stdout lines until one contains `needle` or `limit` passes.
  std::optional<std::string> wait_for_line(const std::string& needle,
                                           std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    auto until = std::chrono::steady_clock::now() + limit;
    for (;;) {
      auto nl = stdout_.find('\n', scanned_);
      while (nl != std::string::npos) {
        std::string line = stdout_.substr(scanned_, nl - scanned_);
        scanned_ = nl + 1;
        if (line.find(needle) != std::string::npos) return line;
        nl = stdout_.find('\n', scanned_);
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
      if (left.count() <= 0 || !read_some(out_, stdout_, left)) return std::nullopt;
    }
  }

  /// The endpoint from the node's "listening on ..." line.
  std::optional<std::string> endpoint() {
    auto line = wait_for_line("listening on ");
    if (!line) return std::nullopt;
    return line->substr(line->find("listening on ") + 13);
  }

  void signal(int sig) { ::kill(pid_, sig); }
  [[nodiscard]] pid_t pid() const noexcept { return pid_; }

  /// Resident memory of the process in KiB (0 if it cannot be read).
  [[nodiscard]] long rss_kib() const {
    std::ifstream status("/proc/" + std::to_string(pid_) + "/status");
    std::string line;
    while (std::getline(status, line))
      if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    return 0;
  }

  /// Waits for the exit; the exit code, 128+signal, or nullopt after `limit`.
  /// Output is read meanwhile, so a child that writes a lot cannot block on
  /// a full pipe while we wait for it.
  std::optional<int> wait(std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    if (exit_code_) return exit_code_;
    auto until = std::chrono::steady_clock::now() + limit;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
      pollfd p[3] = {{exited_, POLLIN, 0}, {out_, POLLIN, 0}, {err_, POLLIN, 0}};
      if (::poll(p, 3, static_cast<int>(std::max<std::int64_t>(0, left.count()))) < 0 && errno != EINTR) break;
      if (p[1].revents) read_some(out_, stdout_, std::chrono::milliseconds(0));
      if (p[2].revents) read_some(err_, stderr_, std::chrono::milliseconds(0));
      int status = 0;
      if ((p[0].revents || exited_ < 0) && ::waitpid(pid_, &status, WNOHANG) == pid_) {
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        drain();
        return exit_code_;
      }
      if (left.count() <= 0) return std::nullopt;
      if (exited_ < 0) ::poll(nullptr, 0, 5);  // no pidfd (old kernel): fall back to a short wait
    }
    return std::nullopt;
  }

  /// Everything printed so far (read at exit).
  const std::string& out() const { return stdout_; }
  const std::string& err() const { return stderr_; }

 private:
  static bool read_some(int fd, std::string& into, std::chrono::milliseconds limit) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(limit.count())) <= 0) return false;
    char buf[4096];
    auto n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return false;
    into.append(buf, static_cast<std::size_t>(n));
    return true;
  }

  void drain() {
    while (read_some(out_, stdout_, std::chrono::milliseconds(50))) {}
    while (read_some(err_, stderr_, std::chrono::milliseconds(50))) {}
  }

  pid_t pid_ = -1;
  int out_ = -1, err_ = -1, exited_ = -1;
  std::string stdout_, stderr_;
  std::size_t scanned_ = 0;
  std::optional<int> exit_code_;
};

/// Runs a command to its end (within `limit`, else the test fails):
/// (exit code, stdout, stderr).
inline std::tuple<int, std::string, std::string> run_command(std::vector<std::string> argv,
                                                            std::chrono::milliseconds limit = std::chrono::seconds(30)) {
  child_process p(std::move(argv));
  auto code = p.wait(limit);
  if (!code) throw std::runtime_error("command did not end within " + std::to_string(limit.count()) + " ms");
  return {*code, p.out(), p.err()};
}

}  // namespace cohort::test
