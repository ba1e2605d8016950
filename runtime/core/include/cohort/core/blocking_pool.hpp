// blocking_pool: the threads a service's blocking workers run on, kept
// across restarts.
//
// A service that declares a blocking method needs its workers on threads of
// their own, so that their waits never hold a scheduler thread another
// service needs. CAF 0.17's `detached` gives that, but starts a thread per
// actor and ends it with the actor: every restart of such a worker started
// and joined a thread (a restart p50 of ~90 us against ~15 us on the shared
// scheduler, and a crash loop that churned threads). Here the workers are
// ordinary event-based actors that this pool runs, the way CAF's private
// thread runs a detached one: a woken worker is handed to an idle thread of
// the pool, and a replacement takes the thread its predecessor left.
//
// No worker ever waits for a thread: when none is idle the pool starts one
// (as detached actors would), so a blocked handler costs only its own
// thread. Threads beyond `keep` (the service's worker count) end after a
// minute idle. The actor system counts the pool's threads as detached
// threads, so it is not torn down under a running one.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <caf/fwd.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/stateful_actor.hpp>

namespace cohort::detail {

class blocking_pool {
 public:
  /// `keep`: the threads kept when idle (the service's worker count); the
  /// others end after `idle_limit` without work.
  blocking_pool(caf::actor_system& system, std::string service, std::size_t keep,
                std::chrono::milliseconds idle_limit = std::chrono::seconds(60));
  /// Stops the pool (see stop()); from a pool thread, only asks it to stop.
  ~blocking_pool();
  blocking_pool(const blocking_pool&) = delete;
  blocking_pool& operator=(const blocking_pool&) = delete;

  /// What `scheduled_actor::launch` does for a scheduled actor, with the
  /// actor handed to this pool instead of the scheduler. For actors whose
  /// class overrides `launch` to call this.
  void launch(caf::scheduled_actor* self, bool lazy, bool hide);
  /// What `scheduled_actor::enqueue` does, with a woken actor handed to this
  /// pool instead of the sender's scheduler thread.
  void enqueue(caf::scheduled_actor* self, caf::mailbox_element_ptr message);

  /// Runs what is queued, then ends every thread and waits for them. Call it
  /// once the pool's actors are done (the node's shutdown does).
  void stop();

  [[nodiscard]] std::size_t threads() const;          ///< running now
  [[nodiscard]] std::uint64_t threads_started() const;  ///< ever

  struct shared;  ///< what the threads share with the pool (they may outlive it)

 private:
  std::shared_ptr<shared> s_;
};

/// A stateful event-based actor that runs on `pool` instead of the
/// scheduler; subclasses give its behavior (make_behavior).
template <class State>
class pooled_actor : public caf::stateful_actor<State> {
 public:
  pooled_actor(caf::actor_config& cfg, std::shared_ptr<blocking_pool> pool)
      : caf::stateful_actor<State>(cfg), pool_(std::move(pool)) {}

  void launch(caf::execution_unit*, bool lazy, bool hide) override { pool_->launch(this, lazy, hide); }
  void enqueue(caf::mailbox_element_ptr message, caf::execution_unit*) override {
    pool_->enqueue(this, std::move(message));
  }
  using caf::stateful_actor<State>::enqueue;

 private:
  std::shared_ptr<blocking_pool> pool_;  ///< held until the actor is destroyed: outlives every enqueue
};

}  // namespace cohort::detail
