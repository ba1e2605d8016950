// entity_owner: which entity a stored record belongs to, read off its key.
// What moves with an entity when its shard changes hands (docs/cluster.md):
// its state, journal, snapshot, idempotency records, pending mark and
// reminders. The outbox, the event log and its cursors belong to the service
// instance that wrote them and stay where they are.
#pragma once

#include <optional>
#include <string_view>

#include "cohort/storage/store.hpp"

namespace cohort {

/// The entity key of `record_key` in `space`; nullopt for keyspaces of the
/// whole service (outbox, events, cursors) and for keys that do not parse.
[[nodiscard]] std::optional<std::string_view> owning_entity(keyspace space, std::string_view record_key) noexcept;

/// True for the keyspaces whose records belong to one entity each.
[[nodiscard]] constexpr bool is_entity_keyspace(keyspace space) noexcept {
  return space != keyspace::outbox && space != keyspace::events && space != keyspace::cursors;
}

}  // namespace cohort
