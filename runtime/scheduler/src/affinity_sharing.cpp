#include "cohort/scheduler/affinity_sharing.hpp"

#include <caf/detail/build_config.hpp>
#include <caf/detail/log_level.hpp>
#include <caf/logger.hpp>
#include <caf/scheduler/coordinator.hpp>

namespace caf::scheduler {

// CAF 0.17.6's loop (caf/scheduler/worker.hpp) without its logging. Each job
// it resumes there costs a dynamic_cast (to name the actor) and, in CAF's own
// resume, two lookups in the logger's thread -> actor-id map under a spin
// lock (CAF_PUSH_AID): together about 10% of an in-process call in a
// profile. They feed only CAF's log, which Debian's build compiles out
// (CAF_LOG_LEVEL QUIET): there the loop names no actor and the policy drops
// the thread's logger before each job (before_resume), so the macros in
// CAF's resume find none. With a CAF built to log, both stay.
template <>
void worker<cohort::scheduler::affinity_sharing>::run() {
  CAF_SET_LOGGER_SYS(&system());
  for (;;) {
    auto job = policy_.dequeue(this);
#if CAF_LOG_LEVEL != CAF_LOG_LEVEL_QUIET
    CAF_PUSH_AID_FROM_PTR(dynamic_cast<abstract_actor*>(job));
#endif
    policy_.before_resume(this, job);
    auto res = job->resume(this, max_throughput_);
    policy_.after_resume(this, job);
    switch (res) {
      case resumable::resume_later:
        policy_.resume_job_later(this, job);  // still in the loop: keeps its reference
        break;
      case resumable::done:
        policy_.after_completion(this, job);
        intrusive_ptr_release(job);
        break;
      case resumable::awaiting_message:
        intrusive_ptr_release(job);  // enqueued again, maybe, by its next message
        break;
      case resumable::shutdown_execution_unit:
        policy_.after_completion(this, job);
        policy_.before_shutdown(this);
        return;
    }
  }
}

}  // namespace caf::scheduler

namespace cohort::scheduler {

void affinity_sharing::drop_caf_logger() noexcept {
#if CAF_LOG_LEVEL == CAF_LOG_LEVEL_QUIET
  if (caf::logger::current_logger() != nullptr) caf::logger::set_current_actor_system(nullptr);
#endif
}

void use_affinity_sharing(caf::actor_system_config& cfg) {
  // A module with the scheduler's id replaces the one CAF would pick from
  // scheduler.policy (CAF creates its own only if none was loaded).
  cfg.module_factories.push_back([](caf::actor_system& sys) -> caf::actor_system::module* {
    return new caf::scheduler::coordinator<affinity_sharing>(sys);
  });
}

}  // namespace cohort::scheduler
