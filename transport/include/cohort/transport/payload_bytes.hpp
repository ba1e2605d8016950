// payload_bytes: a message body, held as a string or as the ZeroMQ frame it
// arrived in, so that the node takes a request's payload off the socket
// without copying it.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include <zmq.hpp>

#include "cohort/transport/frame.hpp"

namespace cohort {

/// Read-only bytes. Made from a string (what handlers and in-process callers
/// produce) or from a received frame (the node's door: a 1 MiB request was
/// copied there once more than raw ZeroMQ does, bench/README.md, Profiles).
/// The bytes stay where they are for as long as the value is neither moved
/// nor assigned, so views into them (in-place decoded arguments) stay valid.
/// A copy is a deep copy into a string: sharing a frame between copies would
/// have two threads touch its reference count through zmq_msg_copy, which
/// is not safe.
class payload_bytes {
 public:
  payload_bytes() = default;
  payload_bytes(std::string bytes) noexcept : string_(std::move(bytes)) {}  // NOLINT: implicit, as a string was
  payload_bytes(const char* bytes) : string_(bytes) {}                      // NOLINT
  /// Takes the received frame over; no copy.
  explicit payload_bytes(zmq::message_t&& frame) noexcept : frame_(std::move(frame)), in_frame_(true) {}

  payload_bytes(const payload_bytes& other) : string_(other.view()) {}
  payload_bytes& operator=(const payload_bytes& other) {
    if (this != &other) *this = payload_bytes(std::string(other.view()));
    return *this;
  }
  payload_bytes(payload_bytes&&) noexcept = default;
  payload_bytes& operator=(payload_bytes&&) noexcept = default;

  [[nodiscard]] const char* data() const noexcept {
    return in_frame_ ? static_cast<const char*>(frame_.data()) : string_.data();
  }
  [[nodiscard]] std::size_t size() const noexcept { return in_frame_ ? frame_.size() : string_.size(); }
  [[nodiscard]] bool empty() const noexcept { return size() == 0; }
  [[nodiscard]] const char* begin() const noexcept { return data(); }
  [[nodiscard]] const char* end() const noexcept { return data() + size(); }
  [[nodiscard]] char operator[](std::size_t i) const noexcept { return data()[i]; }

  [[nodiscard]] std::string_view view() const noexcept { return {data(), size()}; }
  operator std::string_view() const noexcept { return view(); }  // NOLINT: read as a view anywhere
  /// A copy as a string.
  [[nodiscard]] std::string str() const { return std::string(view()); }
  /// The bytes as a string: moved out if held as one, else copied.
  [[nodiscard]] std::string take() && { return in_frame_ ? std::string(view()) : std::move(string_); }

  // Compared as bytes with anything that reads as a string view (strings,
  // literals, views, another payload).
  friend bool operator==(const payload_bytes& a, const payload_bytes& b) noexcept { return a.view() == b.view(); }
  friend bool operator!=(const payload_bytes& a, const payload_bytes& b) noexcept { return a.view() != b.view(); }
  template <class T, class = std::enable_if_t<std::is_convertible_v<const T&, std::string_view>>>
  friend bool operator==(const payload_bytes& a, const T& b) noexcept {
    return a.view() == std::string_view(b);
  }
  template <class T, class = std::enable_if_t<std::is_convertible_v<const T&, std::string_view>>>
  friend bool operator==(const T& a, const payload_bytes& b) noexcept {
    return std::string_view(a) == b.view();
  }
  template <class T, class = std::enable_if_t<std::is_convertible_v<const T&, std::string_view>>>
  friend bool operator!=(const payload_bytes& a, const T& b) noexcept {
    return !(a == b);
  }
  template <class T, class = std::enable_if_t<std::is_convertible_v<const T&, std::string_view>>>
  friend bool operator!=(const T& a, const payload_bytes& b) noexcept {
    return !(a == b);
  }

 private:
  std::string string_;
  zmq::message_t frame_;
  bool in_frame_ = false;
};

/// A received payload frame as payload_bytes: a large one is taken over, a
/// small one copied. libzmq's decoder hands out small messages as slices of
/// one shared 8 KiB read buffer, which it reuses only once every slice is
/// closed; holding a 64-byte request for as long as its handler runs would
/// make it allocate a fresh buffer per read. Large messages have buffers of
/// their own.
[[nodiscard]] inline payload_bytes received_payload(zmq::message_t&& frame) {
  if (frame.size() < zero_copy_frame_bytes) return payload_bytes(frame.to_string());
  return payload_bytes(std::move(frame));
}

}  // namespace cohort
