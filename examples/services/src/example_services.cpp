#include "cohort/examples/example_services.hpp"

#include "cohort/examples/example_messages.hpp"

#include <stdexcept>
#include <thread>

namespace cohort {

namespace {

using namespace examples;

service_definition greeter() {
  return worker_service("greeter")
      .method("hello",
              [](method_context&, const hello_args& a) {
                if (a.name.empty()) throw service_error(errc::bad_request, "name must not be empty");
                return hello_reply{"Hello, " + a.name + "!"};
              },
              true)
      .method("echo", [](method_context&, const echo_args& a) { return a; }, true)
      .blocking_method("sleep",
              [](method_context&, const sleep_args& a) {
                // Blocks its worker, declared so: greeter's workers get threads of their own.
                std::this_thread::sleep_for(std::chrono::milliseconds(std::min<std::uint32_t>(a.ms, 10000)));
                return a;
              })
      .method("fail",
              [](method_context&, const fail_args& a) -> no_args { throw service_error(a.code, a.message); })
      .method("crash",
              [](method_context&, const fail_args& a) -> no_args { throw std::runtime_error(a.message); })
      // Crashing on purpose is a drill, not a client's business (it would run the restart intensity out).
      .internal("crash")
      .method("whoami", [](method_context& ctx, const no_args&) { return hello_reply{ctx.caller()}; }, true)
      .build();
}

service_definition counter() {
  return entity_service<counter_state>("counter")
      .method("add",
              [](entity_context<counter_state>& ctx, const add_args& a) {
                auto& s = ctx.state();
                std::int64_t sum = 0;
                if (__builtin_add_overflow(s.value, a.n, &sum))
                  throw service_error("out_of_range", "counter '" + ctx.key() + "' at " + std::to_string(s.value) +
                                                          " cannot add " + std::to_string(a.n) +
                                                          " without overflowing a 64-bit integer");
                s.value = sum;
                ++s.updates;
                return counter_value{ctx.key(), s.value};
              })
      .query("get",
             [](query_context<counter_state>& ctx, const no_args&) {
               return counter_value{ctx.key(), ctx.state().value};
             })
      .method("reset",
              [](entity_context<counter_state>& ctx, const no_args&) {
                ctx.erase();
                return counter_value{ctx.key(), 0};
              })
      // A poison key for supervision tests: its handler crashes its actor.
      .method("crash",
              [](entity_context<counter_state>& ctx, const no_args&) -> counter_value {
                throw std::runtime_error("counter '" + ctx.key() + "' crashed on purpose");
              })
      .internal("crash")
      .build();
}

service_definition ledger() {
  using ctx_t = event_context<account_state, account_event>;
  return event_sourced_service<account_state, account_event>(
             "ledger",
             [](account_state& s, const account_event& e) {
               s.balance += e.delta;
               ++s.events;
             })
      .command("deposit",
               [](ctx_t& ctx, const amount_args& a) {
                 if (a.amount <= 0) throw service_error(errc::bad_request, "amount must be positive");
                 std::int64_t after = 0;
                 if (__builtin_add_overflow(ctx.state().balance, a.amount, &after))
                   throw service_error("out_of_range", "a deposit of " + std::to_string(a.amount) +
                                                           " would overflow the balance");
                 ctx.emit(account_event{a.amount});
                 return balance_reply{ctx.key(), ctx.state().balance, ctx.state().events};
               })
      .command("withdraw",
               [](ctx_t& ctx, const amount_args& a) {
                 if (a.amount <= 0) throw service_error(errc::bad_request, "amount must be positive");
                 if (ctx.state().balance < a.amount)
                   throw service_error("insufficient_funds", "balance " + std::to_string(ctx.state().balance) +
                                                                 " is below " + std::to_string(a.amount));
                 ctx.emit(account_event{-a.amount});
                 return balance_reply{ctx.key(), ctx.state().balance, ctx.state().events};
               })
      .query("balance",
             [](query_context<account_state>& ctx, const no_args&) {
               return balance_reply{ctx.key(), ctx.state().balance, ctx.state().events};
             })
      .build();
}

service_definition visits() {
  return worker_service("visits")
      .method("record",
              [](method_context& ctx, const hello_args& a, responder<visit_reply> respond) {
                if (a.name.empty()) throw service_error(errc::bad_request, "name must not be empty");
                call_options by_name;
                by_name.key = a.name;
                ctx.call<counter_value>(
                    "counter", "add", add_args{1},
                    [ctx, a, respond](result<counter_value> count) mutable {
                      if (!count) return respond.fail(count.error());
                      ctx.call<hello_reply>("greeter", "hello", a,
                                            [respond, n = count->value](result<hello_reply> hello) {
                                              if (!hello) return respond.fail(hello.error());
                                              respond(visit_reply{hello->greeting, n});
                                            });
                    },
                    by_name);
              })
      .build();
}

}  // namespace

std::vector<service_definition> example_services() {
  std::vector<service_definition> out;
  out.push_back(greeter());
  out.push_back(counter());
  out.push_back(visits());
  out.push_back(ledger());
  return out;
}

node_config example_node_config() { return default_node_config(example_services()); }

}  // namespace cohort
