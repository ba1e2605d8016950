// entity_key() and journal_key() (declared in store.hpp): how an entity's
// records are keyed, apart from the store so that key code (and its fuzzers)
// need no RocksDB.
#include "cohort/storage/big_endian.hpp"
#include "cohort/storage/store.hpp"

namespace cohort {

std::string entity_key(std::string_view key) {
  std::string out;
  out.reserve(4 + key.size() + 8);
  const auto n = static_cast<std::uint32_t>(key.size());
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((n >> shift) & 0xff));
  out.append(key);
  return out;
}

std::string journal_key(std::string_view key, std::uint64_t seq) {
  auto out = entity_key(key);
  append_big_endian(out, seq);
  return out;
}

}  // namespace cohort
