// shard_key: which shard of a sharded entity service an entity key belongs
// to. Nodes route by it (cluster/), and a client that talks to shard owners
// directly (cluster_client.hpp) computes it the same way.
#pragma once

#include <cstdint>
#include <string_view>

namespace cohort {

/// The shard of entity `key` among `count` shards: FNV-1a (64 bits) mod
/// `count`; 0 when `count` is 0. Stable across versions: changing it moves every key.
[[nodiscard]] std::uint32_t shard_of_key(std::string_view key, std::uint32_t count) noexcept;

}  // namespace cohort
