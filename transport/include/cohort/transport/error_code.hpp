// Stable error codes: what a client sees on the wire (docs/protocol.md lists them).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace cohort {

/// The error codes the runtime itself produces. Services may add their own
/// codes (e.g. "out_of_stock"); on the wire every code is a lower-case string.
enum class errc {
  bad_request,          ///< malformed envelope, wrong field types, arguments of the wrong shape
  unsupported_version,  ///< the envelope's protocol version is not one this node speaks
  unknown_service,      ///< no service of that name is reachable from this node
  unknown_method,       ///< the service has no method of that name
  too_large,            ///< a frame or payload exceeds the configured limits
  timeout,              ///< the deadline passed before a reply was ready
  unavailable,          ///< the service is down or the node is shutting down; retry elsewhere/later
  overloaded,           ///< the service's in-flight bound is reached; back off and retry
  internal,             ///< the handler failed unexpectedly (its actor crashed)
  idempotency_key_reused,  ///< an idempotency key already answered a different request (method or arguments)
  storage_full,         ///< the service's disk is full: the write was not made; reads still work; retry later
  storage_unavailable,  ///< the service's store cannot write for another reason (I/O error); retry later
  store_corrupt,        ///< the service's store is damaged; it stays down until an operator acts (docs/storage.md)
  entity_quarantined,   ///< this entity's actor kept crashing; its requests are refused until the quarantine ends or an operator releases it
  unauthenticated,      ///< the caller has no identity this node trusts (no key, an unknown key, a bad or expired token)
  forbidden,            ///< the caller is known but may not make this call (not in its allow list, wrong role, read-only operator)
  rate_limited,         ///< the caller sent more than its rate allows; retry after the time the error names
  wrong_shard,          ///< (clusters) this node does not own the key's shard; the message names the owner's endpoint
};

/// The wire string of a code, e.g. "unknown_service".
[[nodiscard]] std::string_view to_string(errc code) noexcept;

/// Where a `wrong_shard` error says the key's shard lives (docs/protocol.md,
/// the error payload's `owner`): what a client needs to send it there itself.
struct shard_owner {
  std::string node;        ///< the owner's node name
  std::string endpoint;    ///< its ZeroMQ endpoint
  std::string server_key;  ///< its CURVE public key (Z85), empty when it runs keyless
  std::uint32_t shard = 0;   ///< the key's shard
  std::uint32_t shards = 0;  ///< how many shards the service has (to compute other keys' shards)
  std::uint64_t epoch = 0;   ///< the owner's epoch of the shard
};

/// An error as it travels: a stable code plus a human message.
struct error_info {
  std::string code;
  std::string message;

  error_info() = default;
  error_info(std::string c, std::string m) : code(std::move(c)), message(std::move(m)) {}
  error_info(errc c, std::string m) : code(to_string(c)), message(std::move(m)) {}

  /// `wrong_shard` only: the shard's owner (null otherwise, and when the node did not say).
  std::shared_ptr<const shard_owner> owner;

  [[nodiscard]] bool is(errc c) const noexcept { return code == to_string(c); }
  /// True for codes about one attempt (internal, unavailable, timeout,
  /// overloaded, storage_full, storage_unavailable) rather than about the operation: trying again may succeed.
  [[nodiscard]] bool transient() const noexcept {
    return is(errc::internal) || is(errc::unavailable) || is(errc::timeout) || is(errc::overloaded) ||
           is(errc::storage_full) || is(errc::storage_unavailable);
  }
};

}  // namespace cohort
