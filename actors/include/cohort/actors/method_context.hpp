// method_context / entity_context / responder: what a handler works with.
#pragma once

#include <algorithm>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "cohort/actors/invocation.hpp"

namespace cohort {

/// Throw from a handler to answer with a business error (e.g. "out_of_stock").
/// The actor does not crash; any other exception crashes it (and it is restarted).
class service_error : public std::runtime_error {
 public:
  service_error(std::string code, const std::string& message)
      : std::runtime_error(message), code_(std::move(code)) {}
  service_error(errc code, const std::string& message) : service_error(std::string(to_string(code)), message) {}
  [[nodiscard]] const std::string& code() const noexcept { return code_; }

 private:
  std::string code_;
};

/// Arguments or result for methods that take or give nothing (nil on the wire;
/// any argument value is accepted).
struct no_args {
  template <class Packer>
  void msgpack_pack(Packer& pk) const { pk.pack_nil(); }
  void msgpack_unpack(const msgpack::object&) {}
};

/// A handler's result for `inv`'s caller: the value itself for a caller in
/// this process that takes values, else its msgpack bytes, packed now.
template <class T>
[[nodiscard]] payload_bytes result_payload(const invocation& inv, T&& value) {
  if constexpr (std::is_copy_constructible_v<std::decay_t<T>>)
    if (inv.caller_takes_values()) return typed_payload(std::forward<T>(value));
  return pack(value);
}

/// Sends a method's result later (asynchronous handlers). Copyable; the first
/// reply wins.
template <class R>
class responder {
 public:
  explicit responder(std::shared_ptr<invocation> inv) : inv_(std::move(inv)) {}
  void operator()(const R& value) const { inv_->reply(result_payload(*inv_, value)); }
  void operator()(R&& value) const { inv_->reply(result_payload(*inv_, std::move(value))); }
  void fail(std::string code, std::string message) const { inv_->fail({std::move(code), std::move(message)}); }
  void fail(const error_info& err) const { inv_->fail(err); }

 private:
  std::shared_ptr<invocation> inv_;
};

/// A handler's view of its request, and its way to call other services.
class method_context {
 public:
  explicit method_context(std::shared_ptr<invocation> inv) : inv_(std::move(inv)) {}

  [[nodiscard]] const envelope& header() const { return inv_->header(); }
  [[nodiscard]] const std::string& key() const { return inv_->header().key; }
  [[nodiscard]] const std::string& trace() const { return inv_->header().trace; }
  /// Who called, as the node authenticated them: a trust-list name (a CURVE
  /// key), a token's subject (HTTP), "anonymous" (keyless loopback) or "local".
  /// Calls this handler makes carry it on (the node vouches for it).
  [[nodiscard]] const std::string& caller() const { return inv_->header().caller; }

  /// Calls `service.method` with `args`; `then` gets result<R> on this actor.
  /// A callee in this process whose method takes an A gets a copy of `args`,
  /// and a result that is an R comes back as it is: nothing is packed (any
  /// other callee gets the msgpack bytes, as over the network).
  template <class R, class A, class F>
  void call(std::string service, std::string method, const A& args, F then,
            const call_options& opts = {}) {
    envelope target;
    target.service = std::move(service);
    target.method = std::move(method);
    target.key = opts.key;
    target.idempotency_key = opts.idempotency_key;
    target.caller = inv_->header().caller;
    // (A type that cannot be copied goes as bytes.)
    payload_bytes payload;
    if constexpr (std::is_copy_constructible_v<A>) payload = typed_payload(args);
    else payload = pack(args);
    inv_->call(std::move(target), std::move(payload), opts.timeout,
               [then = std::move(then)](reply&& r) mutable { then(std::move(r).template as<R>()); });
  }

 protected:
  std::shared_ptr<invocation> inv_;
};

/// The context of an entity handler: also the entity's state.
template <class State>
class entity_context : public method_context {
 public:
  using method_context::method_context;
  [[nodiscard]] State& state() { return *static_cast<State*>(inv_->entity_state()); }
  /// Deletes this entity's stored state (atomically with the reply) and resets it.
  void erase() { inv_->erase_state(); }
  /// Writes the state now; `then()` runs on this actor once it is durable (if
  /// the write fails the actor is restarted from its store instead). Later
  /// failures of this request no longer undo what was written.
  template <class F>
  void persist(F then) { inv_->persist(std::function<void()>(std::move(then))); }
  /// Publishes `event` on `topic` (outbox: written atomically with this
  /// request's next write, delivered at least once to each subscriber, which
  /// receives it as a request for entity `key`, default this entity's key,
  /// with a unique idempotency key so that it can drop redeliveries).
  template <class E>
  void publish(const std::string& topic, const E& event, std::string key = {}) {
    inv_->publish(topic, pack(event), key.empty() ? this->key() : std::move(key));
  }
  /// Schedules this entity's reminder `name` at `at` (replacing one of the
  /// same name). Written with this request's next write; delivered to the
  /// service's on_reminder handler at or after `at`, at least once, even
  /// across passivation, restarts and crashes.
  template <class P = no_args>
  void remind_at(std::string name, std::chrono::system_clock::time_point at, const P& payload = {}) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count();
    inv_->remind(std::move(name), static_cast<std::uint64_t>(std::max<std::int64_t>(0, ms)), pack(payload));
  }
  /// The same, `after` from now by the service's clock.
  template <class P = no_args>
  void remind_in(std::string name, std::chrono::milliseconds after, const P& payload = {}) {
    inv_->remind(std::move(name), inv_->now_ms() + static_cast<std::uint64_t>(std::max<std::int64_t>(0, after.count())),
                 pack(payload));
  }
  /// Cancels this entity's reminder `name`, if it has one.
  void cancel_reminder(std::string name) { inv_->cancel_reminder(std::move(name)); }
};

/// The context of an entity's query: the state, read only. A query writes
/// nothing, so a change made here would live in memory alone: lost at the
/// next activation, or written later by an unrelated method as if it had
/// made it. Nor may a query persist, erase, publish or set reminders.
template <class State>
class query_context : public method_context {
 public:
  using method_context::method_context;
  [[nodiscard]] const State& state() const { return *static_cast<const State*>(inv_->entity_state()); }
};

/// The context of an event-sourced entity's command: emit events, which are
/// applied to the state at once and journaled atomically with the reply.
template <class State, class Event>
class event_context : public entity_context<State> {
 public:
  using entity_context<State>::entity_context;
  void emit(const Event& event) { this->inv_->emit(pack(event)); }
  /// Read only: the state changes through emit() alone, so that replaying
  /// the journal rebuilds it (a change made here directly would be in the
  /// next snapshot but in no event, and a replay would lose it).
  [[nodiscard]] const State& state() { return entity_context<State>::state(); }
};

}  // namespace cohort
