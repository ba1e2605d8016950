// idempotency: the stored result of a request that carried an idempotency key,
// as kept in a store's `idempotency` keyspace: msgpack [expires_ms, is_error, payload].
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cohort {

/// A stored result: a reply payload, or an encoded error map.
struct idempotent_result {
  bool is_error = false;
  std::string payload;
};

/// Encodes a result that expires `ttl` from now (system clock).
[[nodiscard]] std::string encode_idempotent_result(const idempotent_result& r, std::chrono::milliseconds ttl);

/// Decodes a stored result; nullopt when it expired before `now_ms` or does not decode.
[[nodiscard]] std::optional<idempotent_result> decode_idempotent_result(std::string_view bytes, std::int64_t now_ms);

/// Milliseconds since the epoch, system clock (stored expiry times use it).
[[nodiscard]] std::int64_t system_now_ms();

}  // namespace cohort
