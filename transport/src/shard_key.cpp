#include "cohort/transport/shard_key.hpp"

namespace cohort {

std::uint32_t shard_of_key(std::string_view key, std::uint32_t count) noexcept {
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char c : key) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return count == 0 ? 0 : static_cast<std::uint32_t>(h % count);
}

}  // namespace cohort
