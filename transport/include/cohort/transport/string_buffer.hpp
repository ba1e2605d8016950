// string_buffer: a msgpack output stream that packs straight into a std::string.
#pragma once

#include <cstddef>
#include <string>
#include <utility>

namespace cohort {

/// What msgpack::sbuffer does, without the copy out: sbuffer starts with an
/// 8 KiB block and its bytes are then copied into the std::string every
/// payload travels as, two allocations and a copy per message. Packing into
/// the string itself takes one allocation for a small message.
class string_buffer {
 public:
  /// `reserve`: room made at once, so that the few writes of a small message
  /// (a map header, keys, values) do not grow the string one after another.
  explicit string_buffer(std::size_t reserve = 128) { out_.reserve(reserve); }

  /// msgpack::packer's stream interface.
  void write(const char* data, std::size_t size) { out_.append(data, size); }

  [[nodiscard]] const std::string& str() const noexcept { return out_; }
  [[nodiscard]] std::string take() noexcept { return std::move(out_); }

 private:
  std::string out_;
};

}  // namespace cohort
