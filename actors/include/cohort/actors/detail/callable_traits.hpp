// callable_traits: the parameter list of a handler lambda or function.
#pragma once

#include <tuple>

namespace cohort::detail {

template <class F>
struct callable_traits : callable_traits<decltype(&F::operator())> {};

template <class C, class R, class... Args>
struct callable_traits<R (C::*)(Args...) const> {
  using result_type = R;
  using arg_types = std::tuple<Args...>;
};

template <class C, class R, class... Args>
struct callable_traits<R (C::*)(Args...)> : callable_traits<R (C::*)(Args...) const> {};

template <class R, class... Args>
struct callable_traits<R (*)(Args...)> {
  using result_type = R;
  using arg_types = std::tuple<Args...>;
};

}  // namespace cohort::detail
