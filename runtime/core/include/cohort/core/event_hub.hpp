// event_hub: a service's event log and the clients subscribed to it
// (docs/protocol.md, Events for clients).
//
// Every event the service publishes is written to its outbox with the change
// that caused it, as for any subscriber, under the pseudo-subscriber "_log".
// The outbox relay hands those records to the hub, the log's only writer: it
// numbers them in the order it receives them and writes them to the `events`
// keyspace in the same batch that deletes their outbox records, so the log
// holds each event once, in an order that keeps every publisher's order.
//
// A subscription is a cursor into that log, never a buffer: the hub sends at
// most `window` events a subscriber has not acknowledged, from a bounded cache
// of the newest events or, for a subscriber further behind, from the store (on
// its reader thread). Memory stays bounded however slow a subscriber is.
// Durable subscriptions (a name) keep their acknowledged position in the
// `cursors` keyspace and resume there; a live one that falls more than
// `max_lag` events behind skips ahead and is told (`_lagging`), as is a
// durable one whose events were trimmed by retention before it read them.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <caf/all.hpp>

#include "cohort/core/service_runtime.hpp"

namespace cohort::detail {

/// The outbox target whose records feed the event log.
inline constexpr std::string_view event_log_target = "_log";

/// Relay -> hub: one outbox record of the log (key, topic, entity key, event
/// id, payload, traceparent, published ms). Hub -> relay: its outbox record
/// is gone (appended to the log), or not (true/false, why).
using log_append_atom = caf::atom_constant<caf::atom("logappend")>;
using log_done_atom = caf::atom_constant<caf::atom("logdone")>;

/// The methods a client calls on a service to subscribe to its events.
[[nodiscard]] bool is_event_method(std::string_view method);

/// Spawns the event hub of `svc`, monitored by `parent` (the service root).
caf::actor spawn_event_hub(caf::event_based_actor* parent, std::shared_ptr<service_runtime> svc);

}  // namespace cohort::detail
