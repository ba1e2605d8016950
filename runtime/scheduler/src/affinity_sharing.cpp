#include "cohort/scheduler/affinity_sharing.hpp"

#include <caf/scheduler/coordinator.hpp>

namespace cohort::scheduler {

void use_affinity_sharing(caf::actor_system_config& cfg) {
  // A module with the scheduler's id replaces the one CAF would pick from
  // scheduler.policy (CAF creates its own only if none was loaded).
  cfg.module_factories.push_back([](caf::actor_system& sys) -> caf::actor_system::module* {
    return new caf::scheduler::coordinator<affinity_sharing>(sys);
  });
}

}  // namespace cohort::scheduler
