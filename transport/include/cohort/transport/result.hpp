// result<T>: a value or an error_info, for calls that fail without exceptions.
#pragma once

#include <cassert>
#include <utility>
#include <variant>

#include "cohort/transport/error_code.hpp"

namespace cohort {

/// A value of T or an error_info (C++17 has no std::expected).
template <class T>
class [[nodiscard]] result {
 public:
  result(T value) : v_(std::move(value)) {}
  result(error_info err) : v_(std::move(err)) {}

  [[nodiscard]] bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & { assert(ok()); return std::get<0>(v_); }
  const T& value() const& { assert(ok()); return std::get<0>(v_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }

  const error_info& error() const { assert(!ok()); return std::get<1>(v_); }

 private:
  std::variant<T, error_info> v_;
};

}  // namespace cohort
