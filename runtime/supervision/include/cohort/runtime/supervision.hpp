// Supervision: OTP's supervisor semantics, as plain decisions that the
// supervising actors carry out.
//
// A supervisor starts its children in order and watches them. When a child
// exits, its restart type decides whether it is restarted at all:
//   permanent  always restarted;
//   transient  restarted only after an abnormal exit (a crash);
//   temporary  never restarted.
// The strategy decides which children are restarted with it:
//   one_for_one         only the child that exited;
//   one_for_all         all children: the others are stopped (in reverse start
//                       order), then all are started again in start order;
//   rest_for_one        the child and every child started after it;
//   simple_one_for_one  like one_for_one, for dynamic children made from one
//                       template (entity actors, worker pools).
// Restart intensity: at most max_restarts restarts within `period` (a sliding
// window). One more and the supervisor gives up: it stops all its children
// (reverse start order) and exits with an error, which escalates to its
// parent; for a service's root this marks the service down.
// Backoff (optional, as Akka's restartWithBackoff): the n-th consecutive
// restart of a child waits min * 2^(n-1), capped at max, stretched by up to
// random_factor; the count resets once the child has run for reset_after.
// Shutdown: a child is sent an exit and ends after the message it is
// handling; an actor cannot be preempted in a handler, so a stop takes as
// long as that handler (the watchdog reports handlers that run too long, and
// blocking methods run on threads of their own).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "cohort/transport/result.hpp"

namespace cohort {

enum class restart_strategy { one_for_one, one_for_all, rest_for_one, simple_one_for_one };
enum class restart_type { permanent, transient, temporary };

[[nodiscard]] std::string_view to_string(restart_strategy s) noexcept;
[[nodiscard]] std::string_view to_string(restart_type t) noexcept;
[[nodiscard]] std::optional<restart_strategy> parse_restart_strategy(std::string_view s) noexcept;
[[nodiscard]] std::optional<restart_type> parse_restart_type(std::string_view s) noexcept;

/// At most max_restarts restarts within period. Default: 3 in 5 s (OTP's is 1 in 5 s;
/// ours allows a short burst, as a worker pool sees several crashes from one bad input).
struct restart_intensity {
  std::size_t max_restarts = 3;
  std::chrono::milliseconds period{5000};
};

/// Delay between restarts of the same child. Disabled when max is 0. Default: disabled.
struct backoff_policy {
  std::chrono::milliseconds min{0};
  std::chrono::milliseconds max{0};
  double random_factor = 0.2;
  std::chrono::milliseconds reset_after{30000};
  [[nodiscard]] bool enabled() const noexcept { return max.count() > 0; }
};

/// How one supervisor treats its children.
struct supervision_policy {
  restart_strategy strategy = restart_strategy::one_for_one;
  restart_intensity intensity;
  backoff_policy backoff;
};

/// One child as the supervisor starts it.
struct child_spec {
  std::string id;
  restart_type restart = restart_type::permanent;
};

/// Checks a whole supervisor spec before anything starts. Errors carry the
/// codes "invalid_strategy", "invalid_intensity", "invalid_backoff",
/// "duplicate_child_id", "invalid_child_id".
[[nodiscard]] result<bool> validate(const supervision_policy& policy, const std::vector<child_spec>& children);

/// Sliding window of restart times: may one more restart happen now?
class restart_window {
 public:
  explicit restart_window(restart_intensity limits) : limits_(limits) {}
  /// Records a restart at `now`; false when it exceeds the intensity (give up).
  [[nodiscard]] bool admit(std::chrono::steady_clock::time_point now);
  [[nodiscard]] std::size_t recent() const noexcept { return times_.size(); }

 private:
  restart_intensity limits_;
  std::deque<std::chrono::steady_clock::time_point> times_;
};

/// What a supervisor does about one child's exit.
struct restart_decision {
  bool give_up = false;            ///< intensity exceeded: stop everything and fail
  std::vector<std::size_t> stop;   ///< children to stop first, in this (reverse start) order
  std::vector<std::size_t> start;  ///< children to (re)start, in start order
  std::chrono::milliseconds delay{0};  ///< backoff before starting
};

/// Decides restarts for a fixed set of children (indices in start order).
/// Not thread-safe: owned by one supervising actor.
class supervision_plan {
 public:
  supervision_plan(supervision_policy policy, std::vector<child_spec> children, std::uint64_t seed = 42);

  /// Child `index` exited (`abnormal`: crashed). `running[i]` says which
  /// children are currently running.
  [[nodiscard]] restart_decision on_exit(std::size_t index, bool abnormal, const std::vector<bool>& running,
                                         std::chrono::steady_clock::time_point now);
  /// Child `index` (re)started at `now` (for the backoff reset).
  void started(std::size_t index, std::chrono::steady_clock::time_point now);
  /// The backoff delay for the next restart of `index`.
  [[nodiscard]] std::chrono::milliseconds backoff_delay(std::size_t index, std::chrono::steady_clock::time_point now);

  [[nodiscard]] const supervision_policy& policy() const noexcept { return policy_; }
  [[nodiscard]] const std::vector<child_spec>& children() const noexcept { return children_; }

 private:
  supervision_policy policy_;
  std::vector<child_spec> children_;
  restart_window window_;
  std::vector<std::uint32_t> consecutive_;
  std::vector<std::chrono::steady_clock::time_point> started_at_;
  std::mt19937_64 rng_;
};

}  // namespace cohort
