// placement: the coordinator's plan for one service's shards. A pure
// function of the current map and the nodes, so it is tested on its own.
// Rules (docs/cluster.md):
//   - shards never placed go to the least loaded eligible node;
//   - a shard whose owner is gone (lease expired) stays with it: unavailable,
//     never moved to a node without its data;
//   - shards of a draining node move to the least loaded eligible nodes;
//   - otherwise shards move from the most to the least loaded eligible node
//     until no two differ by more than one (minimal movement);
//   - a handoff to a node that is gone is called off: the owner keeps the
//     shard in a new epoch, so an export it made for that handoff (which the
//     writes it serves from now on make stale) never matches a later one.
#pragma once

#include <cstddef>
#include <set>
#include <string>

#include "cohort/cluster/shard_map.hpp"

namespace cohort::cluster {

struct placement_input {
  std::set<std::string> live;      ///< nodes with a lease that host the service
  std::set<std::string> draining;  ///< live nodes asked to give up their shards
  std::uint32_t shards = 64;       ///< for a map never stored
  std::size_t max_moves = 64;      ///< handoffs started by one plan at most
};

/// The next map, or nullopt when nothing should change.
[[nodiscard]] std::optional<shard_map> plan(const shard_map& current, const placement_input& in);

}  // namespace cohort::cluster
