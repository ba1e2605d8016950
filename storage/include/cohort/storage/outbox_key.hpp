// outbox_key: how records are laid out in the `outbox` keyspace:
//   "<subscriber>\0" + epoch (8 bytes) + sequence (8 bytes) + entity_key(publisher)
// Keys sort by subscriber, then publication order (epoch, then sequence); the
// publishing entity at the end lets a record move with its shard when a
// cluster hands the shard over (entity_owner.hpp).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace cohort {

/// The outbox key of event `sequence` of publisher instance `epoch`, published
/// by entity `publisher`, for `subscriber` ("<service>.<method>" or the event log's name).
[[nodiscard]] std::string outbox_key(std::string_view subscriber, std::uint64_t epoch, std::uint64_t sequence,
                                     std::string_view publisher);

/// The subscriber part of an outbox key, its '\0' included (the whole key if there is none).
[[nodiscard]] std::string_view outbox_subscriber_prefix(std::string_view key) noexcept;

}  // namespace cohort
