// affinity_sharing: CAF's work-sharing scheduler with one change that matters
// for request/response between actors: a message an actor sends to an idle
// actor makes that actor runnable on the *same* scheduler thread, next, with
// no wake-up of another thread (Go's runtime calls this slot "runnext").
//
// Why: under CAF's "sharing" every send to an idle actor goes through one
// locked queue and a condition variable. With two threads, a call and its
// reply bounce between them: two futex wake-ups and two context switches per
// call, about 4x the cost of the call itself (in-process bench, 2026-11-27).
// CAF's "stealing" keeps work local but puts idle threads through 50 us sleeps,
// which doubles a quiet node's latency.
//
// What is kept: a thread whose current job runs long never sits on work
// another thread could do. Jobs from outside the scheduler (the I/O thread,
// timers, other threads) go to the shared queue and wake an idle thread, as
// in "sharing". A parked job is taken by its own thread when the current job
// ends, or stolen by an idle thread within `steal_after` (idle threads look
// at the others' slots when they wake). A second send while the slot is full
// pushes the older job to the shared queue, where any thread takes it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include <caf/actor_system_config.hpp>
#include <caf/policy/unprofiled.hpp>
#include <caf/resumable.hpp>
#include <caf/scheduler/worker.hpp>

#include "cohort/scheduler/thread_parker.hpp"

namespace cohort::scheduler {

class affinity_sharing : public caf::policy::unprofiled {
 public:
  /// An idle thread takes a parked job only once it has seen it parked for
  /// this long: sooner, its own thread is about to run it (a batch of calls
  /// and replies between two actors stays on one thread instead of being
  /// split across two, where the actors' mailboxes and allocations bounce
  /// between cores). While jobs are being parked, idle threads wake this
  /// often to look; a job parked behind a long-running one waits about 2x
  /// this at most. The idle thread reads the clock, not the parking one: a
  /// park is a call's or a reply's hot path, two per in-process call.
  static constexpr std::chrono::microseconds steal_after{500};
  /// An idle thread that saw no job parked since it last slept sleeps until
  /// woken: by a shared job, or by the next park (see internal_enqueue). The
  /// timeout is only a safety net.
  static constexpr std::chrono::milliseconds deep_sleep{100};
  /// How long a thread about to sleep looks for work first (see search()).
  static constexpr std::chrono::microseconds search_for{20};

  struct worker_data;

  struct coordinator_data {
    explicit coordinator_data(caf::scheduler::abstract_coordinator*) {}
    std::mutex lock;
    std::deque<caf::resumable*> queue;  ///< guarded by lock
    /// Threads asleep, the latest last (woken first: its cache is warmest);
    /// guarded by lock. A waker takes one off before waking it, so each
    /// sleeper has one waker at most.
    std::vector<worker_data*> idle;
    std::atomic<std::size_t> queued{0};     ///< queue.size(), for threads that look without the lock
    std::atomic<std::size_t> searching{0};  ///< threads looking for work before they sleep (at most one)
    std::atomic<std::size_t> parked{0};  ///< jobs in the threads' slots now
    std::atomic<std::size_t> deep_sleepers{0};  ///< threads asleep until woken
  };

  struct worker_data {
    explicit worker_data(caf::scheduler::abstract_coordinator*) {}
    worker_data(const worker_data&) {}
    /// The job this thread runs next (written by this thread, taken by any).
    std::atomic<caf::resumable*> next{nullptr};
    /// Jobs this thread ever parked (written by this thread only, read by
    /// idle ones): unchanged between two looks means `next` is the same job.
    std::atomic<std::uint64_t> parks{0};
    /// All threads' parks summed when this thread last went to sleep (this
    /// thread only): did any come while it slept?
    std::uint64_t parks_seen = 0;
    /// What this thread, when idle, last saw of each other thread's slot
    /// (this thread only): its `parks` then, and when it first saw that.
    struct sighting {
      std::uint64_t parks = 0;
      std::int64_t since_ns = 0;
    };
    std::vector<sighting> seen;
    /// Where this thread sleeps when idle (see thread_parker.hpp).
    thread_parker parker;
  };

  /// From outside the scheduler (or from a worker's own actor via anon_send:
  /// CAF passes no execution unit then, see central_enqueue).
  template <class Coordinator>
  void central_enqueue(Coordinator* self, caf::resumable* job) {
    if (auto* w = static_cast<typename Coordinator::worker_type*>(current_worker()); w && w->parent() == self)
      return internal_enqueue(w, job);
    share(self, job);
  }

  template <class Worker>
  void external_enqueue(Worker* self, caf::resumable* job) {
    share(self->parent(), job);
  }

  /// A job made runnable by the job this worker is running: parked in its
  /// slot. An older parked job goes to the shared queue.
  template <class Worker>
  void internal_enqueue(Worker* self, caf::resumable* job) {
    auto& pd = d(self->parent());
    auto& w = d(self);
    w.parks.store(w.parks.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    auto* older = w.next.exchange(job, std::memory_order_acq_rel);
    if (older) return share(self->parent(), older);
    pd.parked.fetch_add(1, std::memory_order_seq_cst);
    // A thread in deep sleep would not look at the slots: wake one, once per
    // burst (it then wakes every steal_after while parks go on).
    if (pd.deep_sleepers.load(std::memory_order_seq_cst) > 0) wake_one(pd);
  }

  /// CAF's resume asks the thread's logger to note which actor runs, under
  /// a lock, twice per job; Debian's CAF logs nothing (see
  /// affinity_sharing.cpp). Every spawn from this thread gives it the logger
  /// again, hence before each job.
  template <class Worker>
  void before_resume(Worker*, caf::resumable*) {
    drop_caf_logger();
  }

  /// A job that used up its throughput: to the back of the shared queue.
  template <class Worker>
  void resume_job_later(Worker* self, caf::resumable* job) {
    share(self->parent(), job);
  }

  template <class Worker>
  caf::resumable* dequeue(Worker* self) {
    current_worker() = self;
    auto* parent = self->parent();
    auto& pd = d(parent);
    for (;;) {
      if (auto* job = take_slot(d(self), pd)) return job;
      std::unique_lock<std::mutex> guard(pd.lock);
      if (!pd.queue.empty()) {
        return pop_shared(pd);
      }
      guard.unlock();
      if (auto* job = steal(self)) return job;
      if (search(self)) continue;
      guard.lock();
      if (!pd.queue.empty()) continue;
      // Light sleep (timed) only while jobs are being parked, to look at the
      // slots again; otherwise until woken.
      const auto parks = parks_so_far(parent);
      const bool parking = parks != d(self).parks_seen;
      d(self).parks_seen = parks;
      std::chrono::nanoseconds sleep = steal_after;
      bool deep = false;
      if (!parking) {
        // Deep sleep only if nothing is parked, checked after saying so: a
        // park either sees deep_sleepers > 0 (and wakes an idle thread once
        // it can take the lock, which we hold until we are on the idle
        // list) or we see parked > 0 here.
        pd.deep_sleepers.fetch_add(1, std::memory_order_seq_cst);
        deep = true;
        if (pd.parked.load(std::memory_order_seq_cst) == 0) sleep = deep_sleep;
      }
      d(self).parker.prepare();
      pd.idle.push_back(&d(self));
      guard.unlock();
      d(self).parker.park_for(sleep);
      if (deep) pd.deep_sleepers.fetch_sub(1, std::memory_order_seq_cst);
      // Off the idle list, whether a waker took us off or not: after a
      // timeout we are still on it, and a waker that took us off just before
      // our timeout may unpark us late, so a wake proves nothing.
      guard.lock();
      for (auto it = pd.idle.begin(); it != pd.idle.end(); ++it)
        if (*it == &d(self)) {
          pd.idle.erase(it);
          break;
        }
      if (!pd.queue.empty()) {
        return pop_shared(pd);
      }
    }
  }

  template <class Worker, class UnaryFunction>
  void foreach_resumable(Worker* self, UnaryFunction f) {
    if (auto* job = d(self).next.exchange(nullptr)) f(job);
  }

  template <class Coordinator, class UnaryFunction>
  void foreach_central_resumable(Coordinator* self, UnaryFunction f) {
    std::unique_lock<std::mutex> guard(d(self).lock);
    while (!d(self).queue.empty()) {
      f(pop_shared(d(self)));
    }
  }

 private:
  /// Drops this thread's reference to CAF's logger when CAF logs nothing.
  static void drop_caf_logger() noexcept;

  /// The worker this thread is (null on other threads).
  static void*& current_worker() {
    static thread_local void* w = nullptr;
    return w;
  }

  static caf::resumable* take_slot(worker_data& w, coordinator_data& pd) {
    if (w.next.load(std::memory_order_relaxed) == nullptr) return nullptr;
    auto* job = w.next.exchange(nullptr, std::memory_order_acq_rel);
    if (job) pd.parked.fetch_sub(1, std::memory_order_release);
    return job;
  }

  template <class Coordinator>
  static void share(Coordinator* self, caf::resumable* job) {
    auto& pd = d(self);
    worker_data* sleeper = nullptr;
    {
      std::lock_guard<std::mutex> guard(pd.lock);
      pd.queue.push_back(job);
      pd.queued.fetch_add(1, std::memory_order_relaxed);
      // A searching thread will take it (it looks under this lock before
      // it sleeps): no wake-up.
      if (pd.searching.load(std::memory_order_relaxed) == 0) sleeper = take_idle(pd);
    }
    // Woken after the lock is released: the sleeper's first step is to take it.
    if (sleeper) sleeper->parker.unpark();
  }

  /// Before sleeping, one thread at a time looks for work for up to
  /// search_for, so that a job shared meanwhile needs no wake-up; true if
  /// it saw some (to take through the normal path).
  template <class Worker>
  bool search(Worker* self) {
    auto& pd = d(self->parent());
    std::size_t none = 0;
    if (!pd.searching.compare_exchange_strong(none, 1, std::memory_order_acq_rel)) return false;
    const auto until = std::chrono::steady_clock::now() + search_for;
    bool found = false;
    while (!found && std::chrono::steady_clock::now() < until) {
      found = pd.queued.load(std::memory_order_relaxed) > 0 ||
              d(self).next.load(std::memory_order_relaxed) != nullptr;
      if (!found) std::this_thread::yield();
    }
    pd.searching.store(0, std::memory_order_release);
    return found;
  }

  /// The shared queue's first job (the queue is not empty); under pd.lock.
  static caf::resumable* pop_shared(coordinator_data& pd) {
    auto* job = pd.queue.front();
    pd.queue.pop_front();
    pd.queued.fetch_sub(1, std::memory_order_relaxed);
    return job;
  }

  /// An idle thread, taken off the list (null if none); under pd.lock.
  static worker_data* take_idle(coordinator_data& pd) {
    if (pd.idle.empty()) return nullptr;
    auto* w = pd.idle.back();
    pd.idle.pop_back();
    return w;
  }

  static void wake_one(coordinator_data& pd) {
    worker_data* sleeper = nullptr;
    {
      std::lock_guard<std::mutex> guard(pd.lock);
      sleeper = take_idle(pd);
    }
    if (sleeper) sleeper->parker.unpark();
  }

  /// Jobs parked by all threads so far (idle path only).
  template <class Coordinator>
  static std::uint64_t parks_so_far(Coordinator* parent) {
    std::uint64_t sum = 0;
    for (std::size_t i = 0; i < parent->num_workers(); ++i)
      sum += d(parent->worker_by_id(i)).parks.load(std::memory_order_relaxed);
    return sum;
  }

  /// A job another thread parked and has not run since this thread first
  /// saw it there, at least steal_after ago. A thread's park count unchanged
  /// since then means its slot holds that same job (or none).
  template <class Worker>
  caf::resumable* steal(Worker* self) {
    auto* parent = self->parent();
    auto& pd = d(parent);
    if (pd.parked.load(std::memory_order_acquire) == 0) return nullptr;
    auto& seen = d(self).seen;
    seen.resize(parent->num_workers());
    const auto now = now_ns();
    for (std::size_t i = 0; i < parent->num_workers(); ++i) {
      if (i == self->id()) continue;
      auto& victim = d(parent->worker_by_id(i));
      const auto parks = victim.parks.load(std::memory_order_relaxed);
      if (parks != seen[i].parks || seen[i].since_ns == 0) {
        seen[i] = {parks, now};
        continue;
      }
      if (now - seen[i].since_ns < steal_after_ns) continue;
      if (auto* job = take_slot(victim, pd)) return job;
    }
    return nullptr;
  }

  static constexpr std::int64_t steal_after_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(steal_after).count();
  static std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
};

/// Makes `cfg`'s actor system schedule with affinity_sharing
/// (scheduler.max-threads and max-throughput are honoured as usual).
void use_affinity_sharing(caf::actor_system_config& cfg);

}  // namespace cohort::scheduler

namespace caf::scheduler {
/// CAF's worker loop for this policy, less the logger's per-job bookkeeping
/// (see affinity_sharing.cpp). Declared here so that no translation unit
/// instantiates CAF's own.
template <>
void worker<cohort::scheduler::affinity_sharing>::run();
}  // namespace caf::scheduler
