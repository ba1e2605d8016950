// reminder_keys: how entities' reminders (durable timers) are laid out in the
// `reminders` keyspace. Two kinds of key, each a prefix byte:
//   's' + due (8-byte big-endian Unix ms) + entity_key(key) + name -> the reminder
//       (the schedule: in time order, so the next due is the first key)
//   'i' + entity_key(key) + name -> due (8 bytes)
//       (the index: an entity's reminders, read when it activates)
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <msgpack.hpp>

namespace cohort {

/// A scheduled reminder as stored (the schedule entry's value).
struct reminder_record {
  std::string key;   ///< the entity
  std::string name;
  std::uint64_t due_ms = 0;
  std::vector<char> payload;  ///< msgpack
  MSGPACK_DEFINE(key, name, due_ms, payload);
};

inline constexpr std::string_view reminder_schedule_prefix = "s";

[[nodiscard]] std::string reminder_schedule_key(std::uint64_t due_ms, std::string_view key, std::string_view name);
/// The due time a schedule key starts with.
[[nodiscard]] std::uint64_t reminder_schedule_due(std::string_view schedule_key);
/// All index keys of one entity start with this.
[[nodiscard]] std::string reminder_index_prefix(std::string_view key);
[[nodiscard]] std::string reminder_index_key(std::string_view key, std::string_view name);
[[nodiscard]] std::string encode_reminder_due(std::uint64_t due_ms);
[[nodiscard]] std::uint64_t decode_reminder_due(std::string_view bytes);

}  // namespace cohort
