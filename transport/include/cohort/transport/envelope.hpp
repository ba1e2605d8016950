// The envelope: the msgpack header map that travels in front of every payload.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace cohort {

/// Protocol version this build speaks.
inline constexpr std::uint32_t protocol_version = 1;

/// What a message is. On the wire: the strings "request", "reply", "error", "oneway", "event".
enum class message_kind : std::uint8_t { request, reply, error, oneway, event };

[[nodiscard]] std::string_view to_string(message_kind kind) noexcept;

/// The decoded header. Empty strings mean "absent" (they are not sent).
struct envelope {
  std::uint32_t version = protocol_version;
  message_kind kind = message_kind::request;
  std::uint64_t id = 0;              ///< correlation id, chosen by the caller, echoed in the reply
  std::string service;               ///< target service (requests, one-way)
  std::string method;                ///< target method (requests, one-way)
  std::uint32_t deadline_ms = 0;     ///< remaining time budget in ms from receipt; 0 = node default
  std::string trace;                 ///< trace id; assigned by the first node if absent
  std::string key;                   ///< entity key, for entity services
  std::string idempotency_key;       ///< makes a retried request safe
};

}  // namespace cohort
