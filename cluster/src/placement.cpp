#include "cohort/cluster/placement.hpp"

#include <algorithm>
#include <map>

namespace cohort::cluster {

std::optional<shard_map> plan(const shard_map& current, const placement_input& in) {
  shard_map next = current;
  if (next.shards.empty()) next.shards.resize(in.shards);
  bool changed = next.shards.size() != current.shards.size();
  std::vector<std::string> eligible;
  for (const auto& n : in.live)
    if (!in.draining.count(n)) eligible.push_back(n);
  // Load as it will be once the handoffs in progress are done.
  std::map<std::string, std::size_t> load;
  for (const auto& n : eligible) load[n] = 0;
  for (auto& s : next.shards) {
    if (!s.phase.empty() && !in.live.count(s.to)) {  // the target left: the owner keeps it
      // In a new epoch: the export on its disk names the old one, and the
      // writes it takes from now on make that export stale. A later handoff
      // of the shard at the same epoch would take it as ready and move
      // the shard without those writes.
      s.phase.clear(), s.to.clear();
      s.epoch++;
      changed = true;
    }
    const auto& holder = s.phase.empty() ? s.owner : s.to;
    if (load.count(holder)) load[holder]++;
  }
  if (eligible.empty()) return changed ? std::optional<shard_map>(next) : std::nullopt;
  auto least = [&] {
    return std::min_element(load.begin(), load.end(), [](const auto& a, const auto& b) {
             return a.second < b.second || (a.second == b.second && a.first < b.first);
           })->first;
  };
  std::size_t moves = 0;
  for (auto& s : next.shards) {
    if (s.owner.empty()) {  // never placed: nothing to hand over
      s.owner = least();
      s.epoch++;
      load[s.owner]++;
      changed = true;
    } else if (s.phase.empty() && in.draining.count(s.owner) && in.live.count(s.owner) && moves < in.max_moves) {
      s.phase = "moving", s.to = least();
      load[s.to]++;
      moves++, changed = true;
    }
  }
  // Balance: from the most to the least loaded, one shard at a time.
  while (moves < in.max_moves) {
    auto most = std::max_element(load.begin(), load.end(), [](const auto& a, const auto& b) {
      return a.second < b.second || (a.second == b.second && a.first > b.first);
    });
    auto to = least();
    if (most->second <= load[to] + 1) break;
    auto it = std::find_if(next.shards.begin(), next.shards.end(),
                           [&](const shard_entry& s) { return s.phase.empty() && s.owner == most->first; });
    if (it == next.shards.end()) break;
    it->phase = "moving", it->to = to;
    most->second--, load[to]++;
    moves++, changed = true;
  }
  return changed ? std::optional<shard_map>(next) : std::nullopt;
}

}  // namespace cohort::cluster
