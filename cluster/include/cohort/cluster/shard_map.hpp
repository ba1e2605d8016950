// shard_map: which node owns each shard of one entity service, as stored in
// etcd (one key per service, changed only by compare-and-swap on its
// revision). A key's shard is a stable hash of the entity key: every node,
// gateway and client computes the same one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cohort::cluster {

/// A shard's owner and where it is in a handoff.
struct shard_entry {
  /// The node that owns the shard: the only one that serves or writes its
  /// entities. Empty: never placed.
  std::string owner;
  /// Bumped each time the owner changes: every reply names it, and a node
  /// with an older one serves nothing of the shard.
  std::uint64_t epoch = 0;
  /// Handoff: "" (served by its owner), "moving" (the owner is letting go:
  /// requests wait, its entities are passivated, its data exported) or
  /// "exported" (the data is ready for `to` to fetch).
  std::string phase;
  std::string to;  ///< the node it moves to (phase not empty)
};

struct shard_map {
  std::vector<shard_entry> shards;
  std::int64_t revision = 0;  ///< etcd mod revision it was read at (0: not stored yet)

  [[nodiscard]] std::uint32_t count() const noexcept { return static_cast<std::uint32_t>(shards.size()); }
  [[nodiscard]] std::string encode() const;
  /// nullopt when `json` is not a shard map.
  [[nodiscard]] static std::optional<shard_map> decode(std::string_view json, std::int64_t revision);
};

/// The shard of entity `key` among `count` shards (transport's shard_of_key:
/// FNV-1a, 64 bits; clients compute it the same way).
[[nodiscard]] std::uint32_t shard_of(std::string_view key, std::uint32_t count) noexcept;

}  // namespace cohort::cluster
