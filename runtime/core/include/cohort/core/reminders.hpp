// reminders: the scheduler of a service's durable timers. Reads the earliest
// due reminders from the store (its `reminders` keyspace is in time order, so
// a store with millions pending costs one short scan, never a full one), on
// the store's reader thread, and delivers each to its entity as a request for
// the internal method `reminder_method`. The entity removes the reminder in
// the same write as the handler's changes; until then it is delivered again
// (at least once). Woken by new reminders and at least every `resume_every`.
#pragma once

#include <memory>

#include <caf/fwd.hpp>

#include "cohort/core/service_runtime.hpp"

namespace cohort::detail {

/// Spawns the scheduler of `svc`'s reminders, monitored by `parent` (the service root).
caf::actor spawn_reminder_scheduler(caf::event_based_actor* parent, std::shared_ptr<service_runtime> svc);

}  // namespace cohort::detail
