// payload_bytes: a message body, held as a string, as the ZeroMQ frame it
// arrived in (so that the node takes a request's payload off the socket
// without copying it), or as the C++ value a handler made (typed_value.hpp:
// a call that stays in the process is never packed).
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include <zmq.hpp>

#include "cohort/transport/frame.hpp"
#include "cohort/transport/typed_value.hpp"

namespace cohort {

/// Read-only bytes. Made from a string (what handlers and in-process callers
/// produce) or from a received frame (the node's door: a 1 MiB request was
/// copied there once more than raw ZeroMQ does, bench/README.md, Profiles).
/// The bytes stay where they are for as long as the value is neither moved
/// nor assigned, so views into them (in-place decoded arguments) stay valid.
/// A copy is a deep copy into a string: sharing a frame between copies would
/// have two threads touch its reference count through zmq_msg_copy, which
/// is not safe. A typed value is shared by copies (it is immutable); its bytes
/// are packed the first time anything reads them.
class payload_bytes {
 public:
  payload_bytes() = default;
  payload_bytes(std::string bytes) noexcept : string_(std::move(bytes)) {}  // NOLINT: implicit, as a string was
  payload_bytes(const char* bytes) : string_(bytes) {}                      // NOLINT
  /// Takes the received frame over; no copy.
  explicit payload_bytes(zmq::message_t&& frame) noexcept : frame_(std::move(frame)) {}
  /// Holds a value, not bytes (typed_payload() below makes one).
  explicit payload_bytes(std::shared_ptr<const typed_value> value) noexcept : typed_(std::move(value)) {}

  payload_bytes(const payload_bytes& other) : typed_(other.typed_) {
    if (!typed_) string_ = std::string(other.view());
  }
  payload_bytes& operator=(const payload_bytes& other) {
    if (this != &other) *this = payload_bytes(other);
    return *this;
  }
  payload_bytes(payload_bytes&&) noexcept = default;
  payload_bytes& operator=(payload_bytes&&) noexcept = default;

  // A typed payload is packed by the first of these (it may allocate).
  [[nodiscard]] const char* data() const { return view().data(); }
  [[nodiscard]] std::size_t size() const { return view().size(); }
  [[nodiscard]] bool empty() const { return size() == 0; }
  [[nodiscard]] const char* begin() const { return data(); }
  [[nodiscard]] const char* end() const { return data() + size(); }
  [[nodiscard]] char operator[](std::size_t i) const { return data()[i]; }

  [[nodiscard]] std::string_view view() const {
    if (typed_) return typed_->bytes();
    if (frame_) return {static_cast<const char*>(frame_->data()), frame_->size()};
    return string_;
  }
  operator std::string_view() const { return view(); }  // NOLINT: read as a view anywhere
  /// A copy as a string.
  [[nodiscard]] std::string str() const { return std::string(view()); }
  /// The bytes as a string: moved out if held as one (or packed from a value
  /// this payload alone holds), else copied. The payload is empty after.
  [[nodiscard]] std::string take() && {
    if (typed_) {
      auto value = std::move(typed_);
      return value.use_count() == 1 ? value->take_bytes() : std::string(value->bytes());
    }
    return frame_ ? std::string(view()) : std::move(string_);
  }

  /// The value held, when this payload holds a value (not bytes) of type T
  /// (same_type below).
  template <class T>
  [[nodiscard]] const T* typed_as() const noexcept {
    return typed_ && same_type(typed_->type(), typeid(T)) ? static_cast<const T*>(typed_->get()) : nullptr;
  }
  /// The same type for a value passed between handlers: the same type_info
  /// object, not only the same name. A plugin built against another version
  /// of a message header has its own type_info under the same name (loaded
  /// RTLD_LOCAL), and gets bytes, which tolerate the difference, instead of a
  /// value laid out differently.
  [[nodiscard]] static bool same_type(const std::type_info& a, const std::type_info& b) noexcept { return &a == &b; }
  [[nodiscard]] const typed_value* typed() const noexcept { return typed_.get(); }
  /// The value of type T held, moved out when this is its only holder (else
  /// copied); the payload is empty after. Nothing when it holds no T.
  template <class T>
  [[nodiscard]] std::optional<T> take_typed() && {
    const T* held = typed_as<T>();
    if (!held) return std::nullopt;
    std::optional<T> out;
    // The only holder: no one else can read the value (or its bytes) again.
    if (typed_.use_count() == 1)
      out.emplace(std::move(const_cast<typed_value_of<T>&>(static_cast<const typed_value_of<T>&>(*typed_)).mutable_value()));
    else if constexpr (std::is_copy_constructible_v<T>)
      out.emplace(*held);
    else
      return std::nullopt;  // shared and not copyable: read from the bytes
    typed_.reset();
    return out;
  }

  // Compared as bytes with anything that reads as a string view (strings,
  // literals, views, another payload).
  friend bool operator==(const payload_bytes& a, const payload_bytes& b) { return a.view() == b.view(); }
  friend bool operator!=(const payload_bytes& a, const payload_bytes& b) { return a.view() != b.view(); }
  template <class T, class = std::enable_if_t<std::is_convertible_v<const T&, std::string_view>>>
  friend bool operator==(const payload_bytes& a, const T& b) {
    return a.view() == std::string_view(b);
  }
  template <class T, class = std::enable_if_t<std::is_convertible_v<const T&, std::string_view>>>
  friend bool operator==(const T& a, const payload_bytes& b) {
    return std::string_view(a) == b.view();
  }
  template <class T, class = std::enable_if_t<std::is_convertible_v<const T&, std::string_view>>>
  friend bool operator!=(const payload_bytes& a, const T& b) {
    return !(a == b);
  }
  template <class T, class = std::enable_if_t<std::is_convertible_v<const T&, std::string_view>>>
  friend bool operator!=(const T& a, const payload_bytes& b) {
    return !(a == b);
  }

 private:
  std::string string_;
  /// Optional, not a message_t that is empty: making, moving and closing a
  /// message_t each call into libzmq, and a payload is moved about ten times
  /// on its way through a call and its reply.
  std::optional<zmq::message_t> frame_;
  std::shared_ptr<const typed_value> typed_;
};

/// A payload holding `value` itself (copied, or moved from an rvalue): packed
/// only if it leaves the process or meets a reader of another type.
template <class T>
[[nodiscard]] payload_bytes typed_payload(T&& value) {
  return payload_bytes(make_typed_value(std::forward<T>(value)));
}

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
