// service_definition: a service's name, kind and typed methods, and the builders
// that declare them.
//
//   auto greeter = worker_service("greeter")
//       .method("hello", [](method_context&, const hello_args& a) { return hello_reply{...}; })
//       .build();
//
// A handler is sync, `R f(Ctx&, const A&)`, or async, `void f(Ctx&, const A&, responder<R>)`;
// one that takes `A` by value gets the decoded arguments moved in.
// A and R are msgpack-mapped types (COHORT_FIELDS, or msgpack-c's MSGPACK_DEFINE_MAP); arguments of the wrong
// shape are answered with `bad_request` before the handler runs.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "cohort/actors/detail/callable_traits.hpp"
#include "cohort/actors/method_context.hpp"
#include "cohort/actors/reminder.hpp"
#include "cohort/transport/message_fields.hpp"  // COHORT_FIELDS, for the messages

namespace cohort {

/// How a service's actors are organised.
enum class service_kind {
  workers,   ///< a pool of stateless worker actors; requests go round-robin
  entities,  ///< one keyed, stateful actor per entity key ("virtual actors")
};

/// The type-erased state of one entity, with its msgpack encoding.
class entity_state_box {
 public:
  virtual ~entity_state_box() = default;
  [[nodiscard]] virtual void* get() noexcept = 0;
  [[nodiscard]] virtual std::string encode() const = 0;
  /// Replaces the state from stored bytes; false when they do not fit the type.
  [[nodiscard]] virtual bool decode(std::string_view bytes) = 0;
  /// Resets the state to its default.
  virtual void reset() = 0;
  /// Event-sourced entities: applies one event (msgpack bytes); false when it does not decode.
  [[nodiscard]] virtual bool apply_event(std::string_view) { return false; }
  [[nodiscard]] virtual bool event_sourced() const noexcept { return false; }
};

using method_handler = std::function<void(const std::shared_ptr<invocation>&)>;

/// One method of a service.
struct method_spec {
  method_handler handler;
  /// Entity methods only: the state is not changed, so nothing is written. Default: false.
  bool read_only = false;
  /// Safe to retry without an idempotency key. Default: false.
  bool idempotent = false;
  /// Worker methods only: the handler blocks its thread (a synchronous client,
  /// file I/O, sleeps). A worker service with such a method runs its workers on
  /// threads of their own (the service's own pool, a thread per worker, kept
  /// across restarts), never on the scheduler threads every other service
  /// shares. Default: false.
  bool blocking = false;
  /// Callable only by this deployment's own nodes and operators, never by a
  /// client (native or HTTP): fault injection, maintenance. Default: false.
  bool internal = false;
};

/// A subscription: events published by `publisher` on `topic` are delivered
/// to this service's `method` (at least once; see entity_context::publish).
struct subscription {
  std::string publisher;
  std::string topic;
  std::string method;
};

/// Everything the runtime needs to host a service.
struct service_definition {
  std::string name;
  service_kind kind = service_kind::workers;
  std::map<std::string, method_spec, std::less<>> methods;
  /// Entities only: makes a default-constructed state.
  std::function<std::unique_ptr<entity_state_box>()> make_state;
  /// Entities only: the key of requests that carry none (e.g. a catalog kept
  /// as one entity); empty = a key is required.
  std::string default_key;
  /// Entities only: true while the state has unfinished work. The runtime
  /// keeps an index of such entities and calls `resume_method` on each of them
  /// when the service starts and periodically after (config `resume_every_ms`),
  /// so that work cut short by a crash or a restart is taken up again.
  std::function<bool(const entity_state_box&)> pending;
  std::string resume_method;
  /// Entities only: the service has an on_reminder handler (method
  /// `reminder_method`): the runtime keeps and fires its entities' reminders.
  bool reminders = false;
  /// Events this service consumes.
  std::vector<subscription> subscriptions;

  /// True when a method is declared blocking: the workers get threads of their own.
  [[nodiscard]] bool has_blocking_methods() const {
    for (const auto& [name, m] : methods)
      if (m.blocking) return true;
    return false;
  }
};

namespace detail {

template <class Ctx, class F>
method_handler adapt_handler(F f) {
  using args = typename callable_traits<F>::arg_types;
  constexpr auto arity = std::tuple_size_v<args>;
  static_assert(arity == 2 || arity == 3, "a handler takes (Ctx&, const A&) or (Ctx&, const A&, responder<R>)");
  using P = std::tuple_element_t<1, args>;
  using A = std::decay_t<P>;
  // A handler that takes `const A&` reads a caller's value in this process
  // where it is (the request holds it until answered): not copied.
  constexpr bool reads_in_place = std::is_same_v<P, const A&> && std::is_copy_assignable_v<A>;
  return [f = std::move(f)](const std::shared_ptr<invocation>& inv) mutable {
    auto run = [&](auto&& arg) {
      Ctx ctx(inv);
      try {
        if constexpr (arity == 2) {
          inv->reply(result_payload(*inv, f(ctx, std::forward<decltype(arg)>(arg))));
        } else {
          using resp = std::decay_t<std::tuple_element_t<2, args>>;
          f(ctx, std::forward<decltype(arg)>(arg), resp(inv));
        }
      } catch (const service_error& e) {
        inv->fail({e.code(), e.what()});
      }
    };
    const void* value = nullptr;
    if constexpr (std::is_copy_assignable_v<A>) value = inv->typed_args(typeid(A));
    if constexpr (reads_in_place)
      if (value) return run(*static_cast<const A*>(value));
    A a;
    if (value) {
      if constexpr (std::is_copy_assignable_v<A>) a = *static_cast<const A*>(value);  // a caller here: its value, copied
    } else {
      try {
        inv->args().convert(a);
      } catch (const service_error& e) {  // the bytes themselves refused (e.g. too_large): their own code
        inv->fail({e.code(), e.what()});
        return;
      } catch (const std::exception& e) {
        inv->fail({errc::bad_request, "arguments of " + inv->header().service + "." +
                                          inv->header().method + " have the wrong shape (" + e.what() + ")"});
        return;
      }
    }
    // A handler that takes its arguments by value gets them moved in: an
    // echo of a large string, returned, is then never copied (forward
    // leaves a const& or & parameter bound to `a` as before).
    run(std::forward<P>(a));
  };
}

/// A query's handler must take the read-only context: one written for an
/// entity_context would otherwise be told at compile time only that the
/// types do not match.
template <class F, class State>
constexpr void require_query_context() {
  using first = std::tuple_element_t<0, typename callable_traits<F>::arg_types>;
  static_assert(std::is_convertible_v<query_context<State>&, first>,
                "a query's handler takes cohort::query_context<State>& (its state() is const: a query writes "
                "nothing), not entity_context<State>&");
}

template <class State>
class typed_state_box : public entity_state_box {
 public:
  void* get() noexcept override { return &state_; }
  std::string encode() const override { return pack(state_); }
  bool decode(std::string_view bytes) override {
    try {
      auto h = msgpack::unpack(bytes.data(), bytes.size());
      State fresh;
      h.get().convert(fresh);
      state_ = std::move(fresh);
      return true;
    } catch (const std::exception&) {
      return false;
    }
  }
  void reset() override { state_ = State{}; }

 protected:
  State state_{};
};

template <class State, class Event>
class event_sourced_box final : public typed_state_box<State> {
 public:
  explicit event_sourced_box(std::function<void(State&, const Event&)> apply) : apply_(std::move(apply)) {}
  bool apply_event(std::string_view bytes) override {
    try {
      auto h = msgpack::unpack(bytes.data(), bytes.size());
      Event e;
      h.get().convert(e);
      apply_(this->state_, e);
      return true;
    } catch (const std::exception&) {
      return false;
    }
  }
  bool event_sourced() const noexcept override { return true; }

 private:
  std::function<void(State&, const Event&)> apply_;
};

}  // namespace detail

/// Declares a stateless service served by a pool of worker actors.
class worker_service {
 public:
  explicit worker_service(std::string name) { def_.name = std::move(name); }

  template <class F>
  worker_service& method(std::string name, F f, bool idempotent = false) {
    def_.methods[std::move(name)] = {detail::adapt_handler<method_context>(std::move(f)), false, idempotent, false};
    return *this;
  }

  /// A method whose handler blocks its thread. The service's workers then run
  /// on dedicated threads (its own bounded pool, `workers` threads), so the
  /// wait costs no other service anything. Entity services have no blocking
  /// methods: an entity's handler must not block; call a worker service.
  template <class F>
  worker_service& blocking_method(std::string name, F f, bool idempotent = false) {
    def_.methods[std::move(name)] = {detail::adapt_handler<method_context>(std::move(f)), false, idempotent, true};
    return *this;
  }

  /// Marks `method` (declared above) internal: no client may call it (method_spec::internal).
  worker_service& internal(const std::string& method) {
    def_.methods.at(method).internal = true;
    return *this;
  }

  [[nodiscard]] service_definition build() { return std::move(def_); }

 private:
  service_definition def_;
};

/// Declares a service of keyed entity actors whose state is a State
/// (msgpack-mapped, default-constructible). The state is loaded from the
/// service's store on activation and written back before each reply of a
/// method that may change it.
template <class State>
class entity_service {
 public:
  explicit entity_service(std::string name) {
    def_.name = std::move(name);
    def_.kind = service_kind::entities;
    def_.make_state = [] { return std::make_unique<detail::typed_state_box<State>>(); };
  }

  /// A method that may change the state.
  template <class F>
  entity_service& method(std::string name, F f, bool idempotent = false) {
    def_.methods[std::move(name)] = {detail::adapt_handler<entity_context<State>>(std::move(f)), false, idempotent};
    return *this;
  }

  /// A method that only reads the state (nothing is written; always
  /// idempotent). Its handler takes a query_context<State>&, whose state()
  /// is const.
  template <class F>
  entity_service& query(std::string name, F f) {
    detail::require_query_context<F, State>();
    def_.methods[std::move(name)] = {detail::adapt_handler<query_context<State>>(std::move(f)), true, true};
    return *this;
  }

  /// Requests without a key go to the entity `key`.
  entity_service& default_key(std::string key) {
    def_.default_key = std::move(key);
    return *this;
  }

  /// Entities whose state satisfies `pending` have unfinished work: the runtime
  /// calls `method` (a method declared here, taking no arguments) on them at
  /// start-up and every `resume_every_ms` until `pending` is false.
  template <class P>
  entity_service& resumable(std::string method, P pending) {
    def_.resume_method = std::move(method);
    def_.pending = [pending = std::move(pending)](const entity_state_box& box) {
      return pending(*static_cast<const State*>(const_cast<entity_state_box&>(box).get()));
    };
    return *this;
  }

  /// Consumes the events `publisher` publishes on `topic` with the handler
  /// `f(ctx, const Event&)`, declared as method `name`. Deliveries carry an
  /// idempotency key, so a redelivered event is answered from the store
  /// without running `f` twice.
  template <class F>
  entity_service& on_event(std::string publisher, std::string topic, std::string name, F f) {
    def_.subscriptions.push_back({std::move(publisher), std::move(topic), name});
    return method(std::move(name), std::move(f));
  }

  /// Marks `method` (declared above) internal: no client may call it (method_spec::internal).
  entity_service& internal(const std::string& method) {
    def_.methods.at(method).internal = true;
    return *this;
  }

  /// Handles this service's reminders: `f(ctx, const reminder&)`, run on the
  /// entity when a reminder it scheduled (ctx.remind_at / remind_in) is due.
  /// Whatever it changes is written with the reminder's removal, so a
  /// reminder that fired and was handled does not fire again.
  template <class F>
  entity_service& on_reminder(F f) {
    def_.reminders = true;
    method(reminder_method, std::move(f));
    return internal(reminder_method);
  }

  [[nodiscard]] service_definition build() { return std::move(def_); }

 private:
  service_definition def_;
};

/// Declares an event-sourced entity service: commands emit events, `apply`
/// folds an event into the state. The journal keeps every event; a snapshot
/// every N events (config `snapshot_every`) bounds recovery, which loads the
/// latest snapshot and replays the events after it.
template <class State, class Event>
class event_sourced_service {
 public:
  event_sourced_service(std::string name, std::function<void(State&, const Event&)> apply) {
    def_.name = std::move(name);
    def_.kind = service_kind::entities;
    def_.make_state = [apply = std::move(apply)] {
      return std::make_unique<detail::event_sourced_box<State, Event>>(apply);
    };
  }

  /// A command: may emit events through event_context::emit.
  template <class F>
  event_sourced_service& command(std::string name, F f, bool idempotent = false) {
    def_.methods[std::move(name)] = {detail::adapt_handler<event_context<State, Event>>(std::move(f)), false, idempotent};
    return *this;
  }

  /// Consumes the events `publisher` publishes on `topic` with the command
  /// `f(ctx, const Event&)`, declared as method `name` (as entity_service's
  /// on_event: deliveries carry an idempotency key).
  template <class F>
  event_sourced_service& on_event(std::string publisher, std::string topic, std::string name, F f) {
    def_.subscriptions.push_back({std::move(publisher), std::move(topic), name});
    return command(std::move(name), std::move(f));
  }

  /// A query: reads the state only (a query_context<State>&, as entity_service's).
  template <class F>
  event_sourced_service& query(std::string name, F f) {
    detail::require_query_context<F, State>();
    def_.methods[std::move(name)] = {detail::adapt_handler<query_context<State>>(std::move(f)), true, true};
    return *this;
  }

  /// Marks `method` (declared above) internal: no client may call it (method_spec::internal).
  event_sourced_service& internal(const std::string& method) {
    def_.methods.at(method).internal = true;
    return *this;
  }

  [[nodiscard]] service_definition build() { return std::move(def_); }

 private:
  service_definition def_;
};

}  // namespace cohort
