// The messages between a service's actors, and the spawn functions of its
// workers and entities. Private to the runtime (includes CAF).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <caf/all.hpp>

#include "cohort/core/service_runtime.hpp"
#include "cohort/transport/error_code.hpp"
#include "cohort/transport/payload_bytes.hpp"

namespace cohort::detail {
struct fetched_entity;
using fetched_ptr = std::shared_ptr<const fetched_entity>;
}
namespace cohort {
struct idempotent_result;
}
namespace cohort::detail {
using idem_record_ptr = std::shared_ptr<const result<std::optional<idempotent_result>>>;

/// What a scan on a store's reader thread found (pending entities, outbox
/// records), sent back to the actor that asked for it.
struct scanned_records {
  std::vector<std::pair<std::string, std::string>> records;  ///< (key, value), in key order per range
  /// Per range scanned (by its prefix): its smallest key at or above the start, if any.
  std::map<std::string, std::optional<std::string>> first_seen;
  std::optional<error_info> error;
};
using scanned_ptr = std::shared_ptr<const scanned_records>;
/// A call's answer on its way back to the actor that made the call: a
/// `reply` without its header, which a caller in this process never reads
/// (moving an envelope moves its eight strings, one call each). The caller
/// makes the `reply` its continuation gets.
struct call_answer {
  payload_bytes payload;
  std::optional<error_info> error;
  bool local = false;  ///< the error was made on this side (deadline passed)
};
/// A hibernated entity: its state without its actor (service_actors.cpp).
struct hibernated_entity;
using hibernated_ptr = std::shared_ptr<hibernated_entity>;
}

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cohort::detail::request_ptr)
// A call's answer travels in the message itself (copied only if a message were shared).
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cohort::detail::call_answer)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cohort::detail::fetched_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cohort::detail::idem_record_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cohort::detail::scanned_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cohort::detail::hibernated_ptr)

namespace cohort::detail {

using reply_atom = caf::atom_constant<caf::atom("reply")>;
using call_timeout_atom = caf::atom_constant<caf::atom("calltmo")>;
using passivate_atom = caf::atom_constant<caf::atom("passivate")>;
using passivate_ok_atom = caf::atom_constant<caf::atom("passiv_ok")>;
/// Root -> an idle entity: hibernate if nothing is pending; the entity ->
/// root: its offer (key, requests processed, its state); root -> entity:
/// taken (`hibern_ok`: the actor ends) or not (`hibern_no`: it carries on).
using hibernate_atom = caf::atom_constant<caf::atom("hibernate")>;
using hibernate_ok_atom = caf::atom_constant<caf::atom("hibern_ok")>;
using hibernate_no_atom = caf::atom_constant<caf::atom("hibern_no")>;
/// To an entity service's root: stop the live entities this node no longer serves (their shard moved).
using release_atom = caf::atom_constant<caf::atom("release")>;
using crash_atom = caf::atom_constant<caf::atom("crash")>;
using command_atom = caf::atom_constant<caf::atom("command")>;
using start_child_atom = caf::atom_constant<caf::atom("startchild")>;
/// The supervisor to a worker it just started in place of a failed one: its first message (restart latency).
using restarted_atom = caf::atom_constant<caf::atom("restarted")>;
using store_failed_atom = caf::atom_constant<caf::atom("storefail")>;
/// A service root to itself: publish the operator's view of its children now (coalesced after restarts).
using publish_view_atom = caf::atom_constant<caf::atom("pubview")>;
using sweep_atom = caf::atom_constant<caf::atom("sweep")>;
using idem_done_atom = caf::atom_constant<caf::atom("idemdone")>;
using resume_atom = caf::atom_constant<caf::atom("resume")>;
using resume_done_atom = caf::atom_constant<caf::atom("resumedone")>;
using loaded_atom = caf::atom_constant<caf::atom("loaded")>;
using idem_record_atom = caf::atom_constant<caf::atom("idemrecord")>;

/// Spawns a worker of `svc`, monitored by `parent`.
caf::actor spawn_worker(caf::event_based_actor* parent, std::shared_ptr<service_runtime> svc,
                        std::shared_ptr<handler_activity> activity);

/// Spawns the entity `key` of `svc`, monitored by `parent` (its service root):
/// loaded from its store, or woken from `hibernated` (its state in memory).
caf::actor spawn_entity(caf::event_based_actor* parent, std::shared_ptr<service_runtime> svc, std::string key,
                        hibernated_ptr hibernated = nullptr);

}  // namespace cohort::detail
