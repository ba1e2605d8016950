// invocation: one request as a handler sees it; implemented by the runtime.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <typeinfo>

#include <msgpack.hpp>

#include "cohort/transport/client.hpp"
#include "cohort/transport/envelope.hpp"

namespace cohort {

/// The runtime's side of one request, handed to a method handler. A reply (or
/// failure) is sent at most once; if the invocation is dropped unanswered, the
/// runtime answers `unavailable` so that no caller waits in silence.
///
/// Not thread-safe: use it only from the actor that received it.
class invocation {
 public:
  virtual ~invocation() = default;

  /// The request's header: service, method, key, trace, deadline.
  [[nodiscard]] virtual const envelope& header() const = 0;
  /// The decoded arguments (checked against the wire limits). Throws when
  /// arguments that came as a value (below) do not decode within them.
  [[nodiscard]] virtual const msgpack::object& args() const = 0;
  /// The arguments as the caller's own C++ value, when the call came from a
  /// handler in this process with arguments of `type`; else nullptr (read
  /// args()). Such a value was never packed, so the wire limits were not
  /// checked on it: it is this process's own data.
  [[nodiscard]] virtual const void* typed_args(const std::type_info& type) const = 0;
  /// When the caller stops waiting.
  [[nodiscard]] virtual std::chrono::steady_clock::time_point deadline() const = 0;
  /// Sends the result (msgpack bytes, or a value: typed_payload()).
  virtual void reply(payload_bytes payload) = 0;
  /// True when the caller is a handler in this process, which reads a result
  /// given as a value (typed_payload()) without packing. Any other caller
  /// gets bytes: reply() packs a value for it, and result_payload() packs at
  /// once instead of wrapping the value first.
  [[nodiscard]] virtual bool caller_takes_values() const { return false; }
  /// Sends an error.
  virtual void fail(error_info err) = 0;
  /// Calls another service, local or remote alike; `then` runs later on this
  /// handler's actor, so it may touch entity state. The callee inherits this
  /// request's trace and at most its remaining deadline.
  /// (By reference: the envelope's eight strings are moved once, into the
  /// callee's request, not at every layer on the way.)
  virtual void call(envelope&& target, payload_bytes&& payload, std::chrono::milliseconds timeout,
                    std::function<void(cohort::reply&&)>&& then) = 0;
  /// The entity's state object, or nullptr for a worker service.
  [[nodiscard]] virtual void* entity_state() = 0;
  /// Event-sourced entities: applies an event (msgpack bytes) to the state now
  /// and appends it to the entity's journal with this request's reply.
  virtual void emit(std::string event) = 0;
  /// Entities: resets the state to its default and deletes it from the store
  /// with this request's reply.
  virtual void erase_state() = 0;
  /// Entities: writes the state as it is now (with any events emitted or
  /// published so far) and runs `then` on this actor once it is durable: the
  /// step of a saga that must survive a crash before the next. If the write
  /// fails the actor is restarted from its store and `then` never runs.
  virtual void persist(std::function<void()> then) = 0;
  /// Entities: publishes an event (msgpack bytes) on `topic`; it is written to
  /// the outbox with this request's next write (persist or reply) and then
  /// delivered to every subscriber at least once, with `key` as entity key.
  virtual void publish(std::string topic, std::string event, std::string key) = 0;
  /// Entities: schedules (or moves) this entity's reminder `name` to `due_ms`
  /// (Unix ms by the service's clock), written with this request's next write.
  virtual void remind(std::string name, std::uint64_t due_ms, std::string payload) = 0;
  /// Entities: cancels this entity's reminder `name` (nothing if there is none).
  virtual void cancel_reminder(std::string name) = 0;
  /// The service's clock (Unix ms): what reminders are due by.
  [[nodiscard]] virtual std::uint64_t now_ms() const = 0;
};

}  // namespace cohort
