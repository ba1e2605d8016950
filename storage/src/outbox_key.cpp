#include "cohort/storage/outbox_key.hpp"

#include "cohort/storage/big_endian.hpp"
#include "cohort/storage/store.hpp"

namespace cohort {

std::string outbox_key(std::string_view subscriber, std::uint64_t epoch, std::uint64_t sequence,
                       std::string_view publisher) {
  std::string k(subscriber);
  k.push_back('\0');
  append_big_endian(k, epoch);
  append_big_endian(k, sequence);
  k += entity_key(publisher);
  return k;
}

std::string_view outbox_subscriber_prefix(std::string_view key) noexcept {
  auto nul = key.find('\0');
  return key.substr(0, nul == std::string_view::npos ? key.size() : nul + 1);
}

}  // namespace cohort
