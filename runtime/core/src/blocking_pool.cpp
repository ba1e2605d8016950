#include "cohort/core/blocking_pool.hpp"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <limits>
#include <mutex>
#include <system_error>
#include <thread>

#include <caf/actor_system.hpp>
#include <caf/detail/sync_request_bouncer.hpp>
#include <caf/exit_reason.hpp>
#include <caf/scheduled_actor.hpp>
#include <caf/scoped_execution_unit.hpp>

#include "cohort/log/log.hpp"
#include "cohort/log/thread_name.hpp"

namespace cohort::detail {

namespace {
thread_local const blocking_pool::shared* current_pool = nullptr;
}  // namespace

struct blocking_pool::shared {
  caf::actor_system* system = nullptr;
  std::string service;
  std::size_t keep = 0;
  std::chrono::milliseconds idle_limit{0};  ///< threads beyond `keep` end after this long without work
  mutable std::mutex m;
  std::condition_variable work;   ///< a job was queued, or stop
  std::condition_variable ended;  ///< a thread ended
  std::deque<caf::scheduled_actor*> jobs;  ///< each holds a reference to its actor
  std::size_t threads = 0;
  std::size_t idle = 0;
  std::uint64_t started = 0;
  bool stopping = false;
};

namespace {

/// Runs a woken actor until it waits for its next message or is done, as
/// CAF's private_thread runs a detached one; drops the reference the wake-up took.
void run_job(caf::scheduled_actor* job, caf::execution_unit& unit) {
  for (;;) {
    switch (job->resume(&unit, std::numeric_limits<std::size_t>::max())) {
      case caf::resumable::resume_later:
        continue;
      case caf::resumable::done:
      case caf::resumable::awaiting_message:
        caf::intrusive_ptr_release(job->ctrl());
        return;
      case caf::resumable::shutdown_execution_unit:
        return;
    }
  }
}

void thread_main(std::shared_ptr<blocking_pool::shared> s) {
  log::name_this_thread("blk-" + s->service);
  current_pool = s.get();
  auto& system = *s->system;
  system.thread_started();
  {
    // Messages this pool's actors send wake their receivers on the
    // scheduler, never on this pool.
    caf::scoped_execution_unit unit{&system};
    std::unique_lock<std::mutex> lock(s->m);
    for (;;) {
      if (!s->jobs.empty()) {
        auto* job = s->jobs.front();
        s->jobs.pop_front();
        lock.unlock();
        run_job(job, unit);
        lock.lock();
        continue;
      }
      if (s->stopping) break;
      ++s->idle;
      const bool woken = s->work.wait_for(lock, s->idle_limit, [&] { return !s->jobs.empty() || s->stopping; });
      --s->idle;
      if (!woken && s->threads > s->keep) break;
    }
    --s->threads;
    s->ended.notify_all();
  }
  system.thread_terminates();
  current_pool = nullptr;
  system.dec_detached_threads();  // last: the system may be destroyed once its count is 0
}

/// Queues a woken actor (holding a reference) and makes sure a thread takes
/// it: an idle one, or a new one. Never leaves a worker waiting for a thread.
void push(const std::shared_ptr<blocking_pool::shared>& s, caf::scheduled_actor* job) {
  std::unique_lock<std::mutex> lock(s->m);
  s->jobs.push_back(job);
  if (s->jobs.size() <= s->idle) {
    lock.unlock();
    s->work.notify_one();
    return;
  }
  ++s->threads;
  ++s->started;
  s->system->inc_detached_threads();  // before the thread exists: the system must not miss it
  lock.unlock();
  try {
    std::thread(thread_main, s).detach();
  } catch (const std::system_error& e) {
    // Out of threads (a process limit): the job stays queued for the next
    // thread of this pool that is free, instead of failing the sender.
    std::size_t others = 0;
    {
      std::lock_guard<std::mutex> guard(s->m);
      others = --s->threads;
      --s->started;
    }
    s->system->dec_detached_threads();
    log::get("service")->error("service {}: cannot start a thread for a blocking worker ({}); it waits for one of the "
                               "service's {} others",
                               s->service, e.what(), others);
  }
}

}  // namespace

blocking_pool::blocking_pool(caf::actor_system& system, std::string service, std::size_t keep,
                             std::chrono::milliseconds idle_limit)
    : s_(std::make_shared<shared>()) {
  s_->system = &system;
  s_->service = std::move(service);
  s_->keep = keep;
  s_->idle_limit = idle_limit;
}

blocking_pool::~blocking_pool() {
  if (current_pool == s_.get()) {
    // Dropped by one of its own actors: its threads end by themselves; the
    // actor system waits for them.
    {
      std::lock_guard<std::mutex> guard(s_->m);
      s_->stopping = true;
    }
    s_->work.notify_all();
    return;
  }
  stop();
}

void blocking_pool::launch(caf::scheduled_actor* self, bool lazy, bool hide) {
  // As scheduled_actor::launch (CAF 0.17.6) for an actor that is not detached.
  if (!hide) self->register_at_system();
  if (lazy && self->mailbox().try_block()) return;
  caf::intrusive_ptr_add_ref(self->ctrl());  // the pool's reference while it is queued
  push(s_, self);
}

void blocking_pool::enqueue(caf::scheduled_actor* self, caf::mailbox_element_ptr message) {
  // As scheduled_actor::enqueue (CAF 0.17.6), with the woken actor handed to
  // this pool instead of the sender's execution unit.
  const auto mid = message->mid;
  auto sender = message->sender;
  switch (self->mailbox().push_back(std::move(message))) {
    case caf::intrusive::inbox_result::unblocked_reader:
      caf::intrusive_ptr_add_ref(self->ctrl());
      push(s_, self);
      break;
    case caf::intrusive::inbox_result::queue_closed:
      if (mid.is_request()) {
        caf::detail::sync_request_bouncer bounce{caf::exit_reason()};
        bounce(sender, mid);
      }
      break;
    case caf::intrusive::inbox_result::success:
      break;  // the actor is queued or running: it will see the message
  }
}

void blocking_pool::stop() {
  std::unique_lock<std::mutex> lock(s_->m);
  s_->stopping = true;
  s_->work.notify_all();
  s_->ended.wait(lock, [this] { return s_->threads == 0; });
}

std::size_t blocking_pool::threads() const {
  std::lock_guard<std::mutex> guard(s_->m);
  return s_->threads;
}

std::uint64_t blocking_pool::threads_started() const {
  std::lock_guard<std::mutex> guard(s_->m);
  return s_->started;
}

}  // namespace cohort::detail
