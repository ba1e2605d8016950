#include "cohort/cluster/shard_map.hpp"

#include <nlohmann/json.hpp>

#include "cohort/transport/shard_key.hpp"

namespace cohort::cluster {

std::uint32_t shard_of(std::string_view key, std::uint32_t count) noexcept { return shard_of_key(key, count); }

std::string shard_map::encode() const {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& s : shards) {
    nlohmann::json e{{"owner", s.owner}, {"epoch", s.epoch}};
    if (!s.phase.empty()) e["phase"] = s.phase, e["to"] = s.to;
    list.push_back(std::move(e));
  }
  return nlohmann::json{{"shards", std::move(list)}}.dump();
}

std::optional<shard_map> shard_map::decode(std::string_view text, std::int64_t revision) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("shards") || !j["shards"].is_array()) return std::nullopt;
  shard_map out;
  out.revision = revision;
  try {
    for (const auto& e : j["shards"]) {
      shard_entry s;
      s.owner = e.value("owner", "");
      s.epoch = e.value("epoch", std::uint64_t{0});
      s.phase = e.value("phase", "");
      s.to = e.value("to", "");
      if (!s.phase.empty() && s.phase != "moving" && s.phase != "exported") return std::nullopt;
      out.shards.push_back(std::move(s));
    }
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
  if (out.shards.empty() || out.shards.size() > 4096) return std::nullopt;
  return out;
}

}  // namespace cohort::cluster
