#include "cohort/storage/entity_owner.hpp"

#include <charconv>
#include <cstdint>

#include "cohort/storage/big_endian.hpp"
#include "cohort/storage/outbox_key.hpp"

namespace cohort {

namespace {
/// entity_key(): a 4-byte big-endian length, then the key (anything may follow).
std::optional<std::string_view> length_prefixed(std::string_view k) noexcept {
  if (k.size() < 4) return std::nullopt;
  const auto n = static_cast<std::size_t>(read_big_endian(k.substr(0, 4)));
  if (k.size() - 4 < n) return std::nullopt;
  return k.substr(4, n);
}
}  // namespace

std::optional<std::string_view> owning_entity(keyspace space, std::string_view k) noexcept {
  switch (space) {
    case keyspace::state:
    case keyspace::journal:
    case keyspace::snapshot:
      return length_prefixed(k);
    case keyspace::idempotency: {  // "<decimal length>:" + entity key + idempotency key
      auto colon = k.find(':');
      if (colon == std::string_view::npos || colon == 0 || colon > 10) return std::nullopt;
      std::size_t n = 0;
      auto [end, ec] = std::from_chars(k.data(), k.data() + colon, n);
      if (ec != std::errc() || end != k.data() + colon || k.size() - colon - 1 < n) return std::nullopt;
      return k.substr(colon + 1, n);
    }
    case keyspace::pending:  // the entity key itself
      return k;
    case keyspace::reminders:  // 's' + 8-byte due + entity_key() + name, or 'i' + entity_key() + name
      if (k.empty()) return std::nullopt;
      if (k[0] == 's') return k.size() < 9 ? std::nullopt : length_prefixed(k.substr(9));
      if (k[0] == 'i') return length_prefixed(k.substr(1));
      return std::nullopt;
    case keyspace::outbox: {  // outbox_key(): subscriber, '\0', epoch, sequence, entity_key(publisher)
      const auto prefix = outbox_subscriber_prefix(k).size();
      if (prefix == 0 || k[prefix - 1] != '\0' || k.size() - prefix < 16) return std::nullopt;
      auto rest = k.substr(prefix + 16);
      auto owner = length_prefixed(rest);
      // Records written before the publisher was part of the key stay with the node.
      if (!owner || owner->size() + 4 != rest.size()) return std::nullopt;
      return owner;
    }
    case keyspace::events:
    case keyspace::cursors:
      return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace cohort
