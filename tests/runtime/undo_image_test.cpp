// A mutating call does not encode the entity's whole state before it runs: a
// failure is undone to the stored image (the state as the store holds it; for
// an event-sourced entity, an encoding plus the events journaled since), so a
// call costs what it changes. These tests count the state's encodings and
// check every undo against the store, including the case the image must not
// serve: a failure while another call of the same entity is half done.
#include <catch2/catch.hpp>

#include <atomic>

#include "cohort/transport/client.hpp"
#include "cohort/transport/json_bridge.hpp"
#include "test_node.hpp"
#include "cohort/examples/example_messages.hpp"

using namespace cohort;
using namespace cohort::examples;
using namespace cohort::test;
using namespace std::chrono_literals;

namespace {

std::atomic<int> encodes{0};

/// An account whose every encoding is counted.
struct tallied_state {
  account_state s;
  template <class Packer>
  void msgpack_pack(Packer& pk) const {
    ++encodes;
    pk.pack(s);
  }
  void msgpack_unpack(const msgpack::object& o) { o.convert(s); }
};

std::string args(const char* json) { return *json_to_msgpack(json); }

balance_reply view(const std::string& key, const tallied_state& t) { return {key, t.s.balance, t.s.events}; }

service_definition tallied_ledger() {
  using ctx_t = event_context<tallied_state, account_event>;
  return event_sourced_service<tallied_state, account_event>("tallied_ledger",
                                                             [](tallied_state& t, const account_event& e) {
                                                               t.s.balance += e.delta;
                                                               ++t.s.events;
                                                             })
      .command("deposit",
               [](ctx_t& ctx, const amount_args& a) {
                 ctx.emit(account_event{a.amount});
                 if (a.amount > 100) throw service_error("over_limit", "emitted, then refused");
                 return view(ctx.key(), ctx.state());
               })
      .query("balance", [](query_context<tallied_state>& ctx, const no_args&) { return view(ctx.key(), ctx.state()); })
      .build();
}

service_definition tallied_counter() {
  using ctx_t = entity_context<tallied_state>;
  return entity_service<tallied_state>("tallied_counter")
      .method("add",
              [](ctx_t& ctx, const amount_args& a) {
                ctx.state().s.balance += a.amount;
                ++ctx.state().s.events;
                if (a.amount > 100) throw service_error("over_limit", "changed, then refused");
                return view(ctx.key(), ctx.state());
              })
      // Changes the state, then waits for another service before it answers:
      // meanwhile other calls of the same entity run.
      .method("add_slowly",
              [](ctx_t& ctx, const amount_args& a, responder<balance_reply> respond) {
                ctx.state().s.balance += a.amount;
                ++ctx.state().s.events;
                auto key = ctx.key();
                ctx.call<sleep_args>("greeter", "sleep", sleep_args{100},
                                     [respond, key, a](result<sleep_args> r) {
                                       if (r)
                                         respond(balance_reply{key, a.amount, 0});
                                       else
                                         respond.fail(r.error());
                                     });
              })
      .method("touch", [](ctx_t& ctx, const no_args&) { return view(ctx.key(), ctx.state()); })
      // Changes the state and drops its responder: its caller is told `unavailable`.
      .method("add_unanswered",
              [](ctx_t& ctx, const amount_args& a, responder<balance_reply>) {
                ctx.state().s.balance += a.amount;
                ++ctx.state().s.events;
              })
      .query("balance", [](query_context<tallied_state>& ctx, const no_args&) { return view(ctx.key(), ctx.state()); })
      .build();
}

std::vector<service_definition> catalog() {
  auto c = example_services();
  c.push_back(tallied_ledger());
  c.push_back(tallied_counter());
  return c;
}

std::unique_ptr<node> start(const node_config& cfg) {
  auto n = node::start(cfg, catalog());
  if (!n) FAIL("node did not start: " << n.error().message);
  return std::move(*n);
}

/// `service`'s entity `key` answers balance and events as expected.
void check_balance(client& c, const std::string& service, const std::string& key, std::int64_t balance,
                   std::uint64_t events) {
  auto b = c.call_as<balance_reply>(service, "balance", no_args{}, keyed(key));
  REQUIRE(b.ok());
  CHECK(b->balance == balance);
  CHECK(b->events == events);
}

/// `service.method` of 500 (over the limit) changes the state, then is refused.
void refuse_over_limit(client& c, const std::string& service, const std::string& method, const std::string& key) {
  auto refused = c.call(service, method, args(R"({"amount":500})"), keyed(key));
  REQUIRE(refused.error);
  CHECK(refused.error->code == "over_limit");
}

}  // namespace

TEST_CASE("an event-sourced command costs its events, not the state: a failure replays the stored image",
          "[storage][runtime]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path(), catalog());
  service_named(cfg, "tallied_ledger").snapshot_every = 10;
  {
    auto n = start(cfg);
    client c(n->endpoints().front());
    REQUIRE(c.call("tallied_ledger", "deposit", args(R"({"amount":1})"), keyed("a")).ok());
    encodes = 0;
    for (int i = 0; i < 22; ++i) REQUIRE(c.call("tallied_ledger", "deposit", args(R"({"amount":1})"), keyed("a")).ok());
    // 22 commands: the snapshots at 10 and 20 encode the state, nothing else
    // does (encoding it before each command would make 22 more).
    CHECK(encodes <= 3);
    // Three events after the last snapshot: the undo replays them on its encoding.
    refuse_over_limit(c, "tallied_ledger", "deposit", "a");
    check_balance(c, "tallied_ledger", "a", 23, 23);
    REQUIRE(c.call("tallied_ledger", "deposit", args(R"({"amount":2})"), keyed("a")).ok());
    check_balance(c, "tallied_ledger", "a", 25, 24);
  }
  auto n = start(cfg);  // the store agrees with what memory said
  client c(n->endpoints().front());
  check_balance(c, "tallied_ledger", "a", 25, 24);
}

TEST_CASE("a plain entity's call encodes its state once, to write it", "[storage][runtime]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path(), catalog());
  auto n = start(cfg);
  client c(n->endpoints().front());
  REQUIRE(c.call("tallied_counter", "add", args(R"({"amount":1})"), keyed("k")).ok());
  encodes = 0;
  for (int i = 0; i < 20; ++i) REQUIRE(c.call("tallied_counter", "add", args(R"({"amount":1})"), keyed("k")).ok());
  CHECK(encodes == 20);  // the writes; the undo and the "changed nothing?" check use the stored image
  // A call that changes nothing is compared with the image and writes nothing.
  encodes = 0;
  REQUIRE(c.call("tallied_counter", "touch", args("null"), keyed("k")).ok());
  CHECK(encodes == 1);
  // A failure after a change is undone to the stored image.
  refuse_over_limit(c, "tallied_counter", "add", "k");
  check_balance(c, "tallied_counter", "k", 21, 21);
}

TEST_CASE("a failure beside a half-done call of the same entity keeps that call's change", "[storage][runtime]") {
  // add_slowly changes the state and waits; add runs meanwhile, changes it
  // too and fails. Its undo must keep add_slowly's change, which the store
  // does not hold yet: the stored image is not the state it started from.
  temp_dir dir;
  auto cfg = loopback_config(dir.path(), catalog());
  cfg.scheduler_threads = 2;
  {
    auto n = start(cfg);
    client c(n->endpoints().front());
    REQUIRE(c.call("tallied_counter", "add", args(R"({"amount":1})"), keyed("k")).ok());
    bool slow_ok = false;
    c.call_async("tallied_counter", "add_slowly", args(R"({"amount":7})"), keyed("k"),
                 [&](reply&& r) { slow_ok = r.ok(); });
    refuse_over_limit(c, "tallied_counter", "add", "k");
    REQUIRE(c.drain(5s));
    CHECK(slow_ok);
    check_balance(c, "tallied_counter", "k", 8, 2);
  }
  auto n = start(cfg);
  client c(n->endpoints().front());
  check_balance(c, "tallied_counter", "k", 8, 2);
}

TEST_CASE("a woken entity's first change sets its image again, and a failure then is undone", "[storage][runtime]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path(), catalog());
  service_named(cfg, "tallied_ledger").entity_hibernate_after = 20ms;
  auto n = start(cfg);
  client c(n->endpoints().front());
  for (int i = 0; i < 3; ++i) REQUIRE(c.call("tallied_ledger", "deposit", args(R"({"amount":4})"), keyed("h")).ok());
  REQUIRE(eventually([&] { return status_of(*n, "tallied_ledger").hibernations >= 1; }));
  refuse_over_limit(c, "tallied_ledger", "deposit", "h");
  check_balance(c, "tallied_ledger", "h", 12, 3);
}

TEST_CASE("after a call that never answered, the next call leaves memory and store in agreement",
          "[storage][runtime]") {
  // The unanswered call's change is in memory, not in the store. The next
  // call, though it changes nothing itself, finds the state unlike the
  // stored image and writes it: a restart finds what memory had.
  temp_dir dir;
  auto cfg = loopback_config(dir.path(), catalog());
  {
    auto n = start(cfg);
    client c(n->endpoints().front());
    REQUIRE(c.call("tallied_counter", "add", args(R"({"amount":1})"), keyed("k")).ok());
    auto dropped = c.call("tallied_counter", "add_unanswered", args(R"({"amount":5})"), keyed("k"));
    REQUIRE(dropped.error);
    CHECK(dropped.error->code == "unavailable");
    REQUIRE(c.call("tallied_counter", "touch", args("null"), keyed("k")).ok());
    check_balance(c, "tallied_counter", "k", 6, 2);
  }
  auto n = start(cfg);
  client c(n->endpoints().front());
  check_balance(c, "tallied_counter", "k", 6, 2);
}
