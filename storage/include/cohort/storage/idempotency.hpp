// idempotency: the stored result of a request that carried an idempotency key,
// as kept in a store's `idempotency` keyspace. Records are scoped by entity
// (see idempotency_record_key) and remember which request they answered (its
// method and a SHA-256 of its arguments), so a key reused for a different
// request is recognised instead of answered with someone else's result.
// On disk: msgpack [expires_ms, is_error, payload, method, fingerprint].
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cohort {

/// A stored result: a reply payload, or an encoded error map, and what it answered.
struct idempotent_result {
  bool is_error = false;
  std::string payload;
  std::string method;       ///< the method of the request it answered
  std::string fingerprint;  ///< request_fingerprint() of that request's arguments
};

/// The keyspace key of the record for idempotency key `idem` sent to entity
/// `entity_key`: the same `idem` on two entities names two records.
[[nodiscard]] std::string idempotency_record_key(std::string_view entity_key, std::string_view idem);

/// SHA-256 (hex) of a request's argument bytes: what a retry must repeat.
[[nodiscard]] std::string request_fingerprint(std::string_view payload);

/// Encodes a result that expires `ttl` from now (system clock).
[[nodiscard]] std::string encode_idempotent_result(const idempotent_result& r, std::chrono::milliseconds ttl);

/// Decodes a stored result; nullopt when it expired before `now_ms` or does not decode.
[[nodiscard]] std::optional<idempotent_result> decode_idempotent_result(std::string_view bytes, std::int64_t now_ms);

/// Milliseconds since the epoch, system clock (stored expiry times use it).
[[nodiscard]] std::int64_t system_now_ms();

}  // namespace cohort
