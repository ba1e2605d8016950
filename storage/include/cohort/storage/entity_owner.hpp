// entity_owner: which entity a stored record belongs to, read off its key.
// What moves with an entity when its shard changes hands (docs/cluster.md):
// its state, journal, snapshot, idempotency records, pending mark, reminders
// and the outbox records of the events it published (not yet delivered). The
// event log and its cursors belong to the service instance that wrote them
// and stay where they are.
#pragma once

#include <optional>
#include <string_view>

#include "cohort/storage/store.hpp"

namespace cohort {

/// The entity key of `record_key` in `space`; nullopt for keyspaces of the
/// whole service (events, cursors) and for keys that do not parse (outbox
/// records written before their key named the publisher).
[[nodiscard]] std::optional<std::string_view> owning_entity(keyspace space, std::string_view record_key) noexcept;

/// True for the keyspaces whose records belong to one entity each.
[[nodiscard]] constexpr bool is_entity_keyspace(keyspace space) noexcept {
  return space != keyspace::events && space != keyspace::cursors;
}

}  // namespace cohort
