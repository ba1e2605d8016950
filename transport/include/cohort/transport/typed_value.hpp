// typed_value: a message body still as the C++ value a handler made, with its
// msgpack bytes made only if something asks for them.
//
// Why: a call between two services of one process used to be packed by the
// caller and decoded by the callee, and its result packed and decoded again
// on the way back, although both ends hold the same C++ type. Carried as a
// value instead, it is copied once (what Orleans does for calls inside a
// silo, and Akka for local messages, which it does not serialize at all).
// Anything that needs bytes (a socket, an idempotency record, a callee of
// another type) asks for them and gets exactly what pack() gives.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include <msgpack.hpp>

#include "cohort/transport/string_buffer.hpp"

namespace cohort {

/// An immutable value of some msgpack-mapped type. Shared between holders;
/// safe to read, bytes() included, from several threads at once.
class typed_value {
 public:
  virtual ~typed_value() = default;
  typed_value() = default;
  typed_value(const typed_value&) = delete;
  typed_value& operator=(const typed_value&) = delete;

  [[nodiscard]] virtual const std::type_info& type() const noexcept = 0;
  [[nodiscard]] virtual const void* get() const noexcept = 0;

  /// The value's msgpack bytes: packed on the first call, on whichever thread
  /// makes it, and kept.
  [[nodiscard]] std::string_view bytes() const {
    std::call_once(packed_once_, [this] { packed_ = pack_value(); });
    return packed_;
  }
  /// The bytes moved out, for the value's only holder, which drops it after
  /// (a large result sent out of a socket is then packed once, not copied).
  [[nodiscard]] std::string take_bytes() const {
    std::call_once(packed_once_, [this] { packed_ = pack_value(); });
    return std::move(packed_);
  }

 private:
  [[nodiscard]] virtual std::string pack_value() const = 0;
  mutable std::once_flag packed_once_;
  mutable std::string packed_;
};

template <class T>
class typed_value_of final : public typed_value {
 public:
  explicit typed_value_of(T value) : value_(std::move(value)) {}
  [[nodiscard]] const std::type_info& type() const noexcept override { return typeid(T); }
  [[nodiscard]] const void* get() const noexcept override { return &value_; }
  /// For a holder that owns the only reference and is done with the bytes.
  [[nodiscard]] T& mutable_value() noexcept { return value_; }

 private:
  [[nodiscard]] std::string pack_value() const override {
    string_buffer buf;
    msgpack::pack(buf, value_);
    return buf.take();
  }
  T value_;
};

/// `value` as a shared typed_value (copied, or moved when given an rvalue).
template <class T>
[[nodiscard]] std::shared_ptr<const typed_value> make_typed_value(T&& value) {
  return std::make_shared<typed_value_of<std::decay_t<T>>>(std::forward<T>(value));
}

}  // namespace cohort
