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
  std::uint32_t deadline_ms = 0;     ///< time budget in ms as the sender sent it; 0 = node default
  std::uint64_t sent_ms = 0;         ///< sender's wall clock at sending (Unix ms); 0 = absent
  std::string trace;                 ///< trace id; assigned by the first node if absent
  /// W3C Trace Context: "00-<trace id>-<parent span id>-<flags>", and the
  /// vendors' tracestate passed on untouched. Set by the first node if absent.
  std::string traceparent;
  std::string tracestate;
  std::string key;                   ///< entity key, for entity services
  std::string idempotency_key;       ///< makes a retried request safe
  /// Who called: set by the receiving node from the connection's key (or the
  /// HTTP token), never taken from the sender, except from a trusted node,
  /// which passes on the caller it admitted. "anonymous" for keyless callers.
  std::string caller;
  /// Events to clients: the event's position in its service's event log
  /// (docs/protocol.md, Events). 0 = absent.
  std::uint64_t seq = 0;
  /// Sharded entity services (docs/cluster.md): the key's shard and the epoch
  /// of its owner. In a reply: the shard and epoch that served it. In a
  /// request: set by a node that forwards it to the owner it believes in (a
  /// node that does not own it then answers `wrong_shard` instead of
  /// forwarding again). Absent: shard = no_shard, epoch = 0.
  static constexpr std::uint32_t no_shard = 0xffffffffu;
  std::uint32_t shard = no_shard;
  std::uint64_t epoch = 0;
};

/// The wall clock as the envelope's `sent_ms` counts it: Unix time in ms.
[[nodiscard]] std::uint64_t wall_clock_ms() noexcept;

/// Milliseconds the request spent in transit, as far as clocks allowed to
/// tell: now minus `sent_ms`, less `max_skew_ms` (the clock difference the
/// deployment tolerates), never negative. 0 when `sent_ms` is absent.
[[nodiscard]] std::uint64_t transit_ms(const envelope& env, std::uint64_t now_ms, std::uint64_t max_skew_ms) noexcept;

}  // namespace cohort
