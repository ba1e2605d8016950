// process_host: runs each service of a node in a child process of its own and
// supervises those processes (one_for_one, with each service's restart
// intensity and backoff), so that a segfault or abort in one service leaves
// the others serving. A child is `cohort run --config FILE --isolated-child
// SERVICE --runtime-dir DIR`, listening on ipc://DIR/SERVICE.sock; a restarted
// child binds the same path and the parent's connection picks it up again.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <sys/types.h>

#include "cohort/runtime/status.hpp"
#include "cohort/runtime/node_config.hpp"
#include "cohort/runtime/supervision.hpp"

namespace cohort::detail {

class process_host {
 public:
  /// `on_exit(service)` runs (on the host's thread) whenever a child dies, so
  /// that the node can fail the requests that were in flight to it.
  process_host(const node_config& cfg, std::string binary, std::string runtime_dir,
               std::function<void(const std::string&)> on_exit);
  ~process_host();

  /// Starts every child and the supervising thread.
  void start();
  /// SIGTERM to every child, SIGKILL after the drain timeout; reaps them all.
  void stop();

  /// The ipc endpoint of a service's child.
  [[nodiscard]] std::string endpoint_of(const std::string& service) const;
  /// True when the service's child is running and has said it is ready.
  [[nodiscard]] bool ready(const std::string& service, std::string* why_not = nullptr) const;
  [[nodiscard]] std::vector<service_status> status() const;

  /// Operator control: "stop", "start" or "restart" a service's process.
  result<bool> command(const std::string& service, const std::string& cmd);

 private:
  struct child;
  struct loop;
  void spawn(child& c);
  void reap(child& c, int status);
  void read_output(child& c);
  void restart_later(child& c, std::chrono::milliseconds delay);
  void wait_for_exits();
  void schedule_status_poll(std::chrono::milliseconds delay);
  void poll_status();

  node_config cfg_;
  std::string binary_, runtime_dir_;
  std::function<void(const std::string&)> on_exit_;
  std::unique_ptr<loop> loop_;  // before children_: their sockets and timers belong to it
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<child>> children_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace cohort::detail
