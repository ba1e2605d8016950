// big_endian: 8-byte big-endian numbers in store keys, so that keys sort in
// numeric order (journal sequences, outbox and event log positions).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace cohort {

/// Appends `v` as 8 big-endian bytes.
inline void append_big_endian(std::string& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}

/// `v` as 8 big-endian bytes.
[[nodiscard]] inline std::string big_endian_key(std::uint64_t v) {
  std::string out;
  append_big_endian(out, v);
  return out;
}

/// The number in the first (at most 8) bytes of `s`, big-endian.
[[nodiscard]] inline std::uint64_t read_big_endian(std::string_view s) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < 8 && i < s.size(); ++i) v = (v << 8) | static_cast<unsigned char>(s[i]);
  return v;
}

}  // namespace cohort
