// Entity state in the service's store: idempotency, event sourcing, deletion.
#include <catch2/catch.hpp>

#include <atomic>
#include <type_traits>
#include <utility>

#include "cohort/transport/client.hpp"
#include "cohort/transport/json_bridge.hpp"
#include "test_node.hpp"
#include "cohort/examples/example_messages.hpp"

using namespace cohort;
using namespace cohort::examples;
using namespace cohort::test;
using namespace std::chrono_literals;

namespace {

call_options op(const std::string& key, const std::string& idem = "") {
  call_options o;
  o.key = key;
  o.idempotency_key = idem;
  return o;
}

std::string args(const char* json) { return *json_to_msgpack(json); }

}  // namespace

TEST_CASE("a retried request with an idempotency key has exactly one effect", "[storage][runtime]") {
  temp_dir dir;
  auto n = start_node(loopback_config(dir.path()));
  client c(n->endpoints().front());
  auto first = c.call("counter", "add", args(R"({"n":5})"), op("k", "op-1"));
  auto retry = c.call("counter", "add", args(R"({"n":5})"), op("k", "op-1"));
  REQUIRE(first.ok());
  REQUIRE(retry.ok());
  CHECK(retry.payload == first.payload);  // the stored result
  CHECK(c.call_as<counter_value>("counter", "get", no_args{}, op("k"))->value == 5);
  // Retries racing the first attempt get its answer too.
  int ok = 0;
  for (int i = 0; i < 10; ++i) c.call_async("counter", "add", args(R"({"n":1})"), op("k", "op-2"), [&](reply&& r) { ok += r.ok(); });
  REQUIRE(c.drain(5s));
  CHECK(ok == 10);
  CHECK(c.call_as<counter_value>("counter", "get", no_args{}, op("k"))->value == 6);
  // A different key is a different operation.
  CHECK(c.call_as<counter_value>("counter", "add", counter_value{"", 0}, op("k", "op-3")).ok());
}

TEST_CASE("stored idempotent results expire after the configured time", "[storage][runtime]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path());
  service_named(cfg, "counter").idempotency_ttl = 50ms;
  auto n = start_node(cfg);
  client c(n->endpoints().front());
  REQUIRE(c.call("counter", "add", args(R"({"n":1})"), op("k", "op")).ok());
  std::this_thread::sleep_for(120ms);
  REQUIRE(c.call("counter", "add", args(R"({"n":1})"), op("k", "op")).ok());
  CHECK(c.call_as<counter_value>("counter", "get", no_args{}, op("k"))->value == 2);
}

TEST_CASE("a business error is remembered for its idempotency key", "[storage][runtime]") {
  temp_dir dir;
  auto n = start_node(loopback_config(dir.path()));
  client c(n->endpoints().front());
  auto declined = c.call("ledger", "withdraw", args(R"({"amount":10})"), op("acct", "w-1"));
  REQUIRE_FALSE(declined.ok());
  CHECK(declined.error->code == "insufficient_funds");
  REQUIRE(c.call("ledger", "deposit", args(R"({"amount":100})"), op("acct", "d-1")).ok());
  auto retry = c.call("ledger", "withdraw", args(R"({"amount":10})"), op("acct", "w-1"));
  REQUIRE_FALSE(retry.ok());
  CHECK(retry.error->code == "insufficient_funds");  // the same answer, no late effect
  CHECK(c.call_as<balance_reply>("ledger", "balance", no_args{}, op("acct"))->balance == 100);
}

TEST_CASE("a runtime failure is not stored under its idempotency key: the retry runs again", "[storage][runtime]") {
  // The first attempt of each key crashes its handler (internal); a retry with
  // the same key must run, not get `internal` back from the store.
  static std::atomic<int> attempts{0};
  attempts = 0;
  auto flaky = entity_service<counter_state>("flaky")
                   .method("add",
                           [](entity_context<counter_state>& ctx, const add_args& a) {
                             if (attempts.fetch_add(1) == 0) throw std::runtime_error("first attempt fails");
                             ctx.state().value += a.n;
                             return counter_value{ctx.key(), ctx.state().value};
                           })
                   .build();
  auto catalog = example_services();
  catalog.push_back(flaky);
  temp_dir dir;
  auto started = node::start(loopback_config(dir.path(), catalog), catalog);
  REQUIRE(started);
  auto& n = *started;
  client c(n->endpoints().front());
  auto first = c.call_as<counter_value>("flaky", "add", add_args{5}, op("k", "once"));
  REQUIRE(!first.ok());
  CHECK(first.error().is(errc::internal));
  // The crashed entity is being restarted meanwhile: a retry may meet `unavailable` first.
  result<counter_value> retry = error_info{errc::unavailable, "not tried"};
  eventually([&] {
    retry = c.call_as<counter_value>("flaky", "add", add_args{5}, op("k", "once"));
    return retry.ok() || !retry.error().is(errc::unavailable);
  });
  REQUIRE(retry.ok());
  CHECK(retry->value == 5);
  CHECK(attempts == 2);
  // Now the business result is stored: a third call is answered from it.
  auto again = c.call_as<counter_value>("flaky", "add", add_args{5}, op("k", "once"));
  REQUIRE(again.ok());
  CHECK(again->value == 5);
  CHECK(attempts == 2);
}

TEST_CASE("an event-sourced entity recovers from its snapshot plus the journal after it", "[storage][runtime]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path());
  service_named(cfg, "ledger").snapshot_every = 5;
  service_named(cfg, "ledger").entity_idle = 20ms;
  {
    auto n = start_node(cfg);
    client c(n->endpoints().front());
    for (int i = 1; i <= 12; ++i) REQUIRE(c.call("ledger", "deposit", args(R"({"amount":10})"), op("acct")).ok());
    REQUIRE(c.call("ledger", "withdraw", args(R"({"amount":25})"), op("acct")).ok());
    auto b = c.call_as<balance_reply>("ledger", "balance", no_args{}, op("acct"));
    CHECK(b->balance == 95);
    CHECK(b->events == 13);
    // Passivated and re-activated: the state comes back from snapshot + journal.
    REQUIRE(eventually([&] { return status_of(*n, "ledger").passivations >= 1; }));
    auto again = c.call_as<balance_reply>("ledger", "balance", no_args{}, op("acct"));
    CHECK(again->balance == 95);
    CHECK(again->events == 13);
  }
  auto n = start_node(cfg);
  client c(n->endpoints().front());
  auto after = c.call_as<balance_reply>("ledger", "balance", no_args{}, op("acct"));
  REQUIRE(after.ok());
  CHECK(after->balance == 95);
  CHECK(after->events == 13);
  auto bad = c.call("ledger", "withdraw", args(R"({"amount":1000})"), op("acct"));
  CHECK(bad.error->code == "insufficient_funds");
  CHECK(c.call_as<balance_reply>("ledger", "balance", no_args{}, op("acct"))->events == 13);
}

// An event-sourced command reads its state and changes it by emitting
// events only: a change made to the state directly would be in the next
// snapshot but in no event, and lost on a replay. Checked where it is cheap:
// at compile time (a mutable state() fails to build this file).
static_assert(std::is_same_v<decltype(std::declval<event_context<account_state, account_event>&>().state()),
                             const account_state&>,
              "an event-sourced command's state is read-only");
static_assert(std::is_same_v<decltype(std::declval<entity_context<account_state>&>().state()), account_state&>,
              "a plain entity's handler changes its state in place");
// A query writes nothing: a change there would live in memory only (lost at
// the next activation, or stored later by an unrelated method). Its context
// has a const state() and none of the writing verbs; entity_service::query
// refuses a handler that takes entity_context (a static_assert).
static_assert(std::is_same_v<decltype(std::declval<query_context<account_state>&>().state()), const account_state&>,
              "a query's state is read-only");
template <class C, class = void>
struct can_persist : std::false_type {};
template <class C>
struct can_persist<C, std::void_t<decltype(std::declval<C&>().persist(std::declval<void (*)()>()))>> : std::true_type {};
template <class C, class = void>
struct can_erase : std::false_type {};
template <class C>
struct can_erase<C, std::void_t<decltype(std::declval<C&>().erase())>> : std::true_type {};
static_assert(can_persist<entity_context<account_state>>::value && can_erase<entity_context<account_state>>::value,
              "the detection below can see the verbs");
static_assert(!can_persist<query_context<account_state>>::value && !can_erase<query_context<account_state>>::value,
              "a query can neither persist nor erase");

TEST_CASE("a failed method leaves no trace in memory or store", "[storage][runtime]") {
  // A command that emits an event and then fails: the undo path (the
  // ledger's own refusals throw before emitting, so they never reach it).
  using ctx_t = event_context<account_state, account_event>;
  auto catalog = example_services();
  catalog.push_back(event_sourced_service<account_state, account_event>(
                        "shaky_ledger", [](account_state& s, const account_event& e) {
                          s.balance += e.delta;
                          ++s.events;
                        })
                        .command("deposit",
                                 [](ctx_t& ctx, const amount_args& a) {
                                   ctx.emit(account_event{a.amount});
                                   if (a.amount > 100) throw service_error("over_limit", "emitted, then refused");
                                   return balance_reply{ctx.key(), ctx.state().balance, ctx.state().events};
                                 })
                        .query("balance",
                               [](query_context<account_state>& ctx, const no_args&) {
                                 return balance_reply{ctx.key(), ctx.state().balance, ctx.state().events};
                               })
                        .build());
  temp_dir dir;
  auto cfg = loopback_config(dir.path(), catalog);
  {
    auto n = node::start(cfg, catalog);
    REQUIRE(n);
    client c((*n)->endpoints().front());
    REQUIRE(c.call("shaky_ledger", "deposit", args(R"({"amount":5})"), op("a")).ok());
    auto refused = c.call("shaky_ledger", "deposit", args(R"({"amount":500})"), op("a"));
    REQUIRE(refused.error);
    CHECK(refused.error->code == "over_limit");
    auto in_memory = c.call_as<balance_reply>("shaky_ledger", "balance", no_args{}, op("a"));
    REQUIRE(in_memory.ok());
    CHECK(in_memory->balance == 5);  // the emitted 500 was undone in memory
    CHECK(in_memory->events == 1);
  }
  auto n = node::start(cfg, catalog);  // and never reached the journal
  REQUIRE(n);
  client c((*n)->endpoints().front());
  auto stored = c.call_as<balance_reply>("shaky_ledger", "balance", no_args{}, op("a"));
  REQUIRE(stored.ok());
  CHECK(stored->balance == 5);
  CHECK(stored->events == 1);
}

TEST_CASE("an entity can delete its stored state", "[storage][runtime]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path());
  service_named(cfg, "counter").entity_idle = 20ms;
  auto n = start_node(cfg);
  client c(n->endpoints().front());
  REQUIRE(c.call("counter", "add", args(R"({"n":7})"), op("gone")).ok());
  REQUIRE(c.call("counter", "reset", args("null"), op("gone")).ok());
  REQUIRE(eventually([&] { return status_of(*n, "counter").live_entities == 0; }));
  CHECK(c.call_as<counter_value>("counter", "get", no_args{}, op("gone"))->value == 0);
}

TEST_CASE("a backup taken while serving restores the state it saw", "[storage][runtime]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path());
  {
    auto n = start_node(cfg);
    client c(n->endpoints().front());
    REQUIRE(c.call("counter", "add", args(R"({"n":4})"), op("b")).ok());
    auto written = n->backup("counter", "backup");
    REQUIRE(written.ok());
    CHECK(*written == dir / "backups/counter/backup");
    REQUIRE(c.call("counter", "add", args(R"({"n":100})"), op("b")).ok());
    CHECK(n->backup("greeter", "x").error().is(errc::bad_request));
    CHECK(n->backup("counter", "backup").error().is(errc::unavailable));
    CHECK(n->backup("counter", "../escape").error().is(errc::bad_request));
    auto st = n->storage_stats("counter");
    REQUIRE(st.ok());
    CHECK(st->committed_writes >= 2);
  }
  // Restore by hand: with the node stopped, the backup replaces the service's directory.
  std::filesystem::remove_all(dir / "counter");
  std::filesystem::rename(dir / "backups/counter/backup", dir / "counter");
  auto n = start_node(cfg);
  client c(n->endpoints().front());
  CHECK(c.call_as<counter_value>("counter", "get", no_args{}, op("b"))->value == 4);
}

TEST_CASE("an idempotency key is scoped by entity: the same key on two entities is two operations",
          "[storage][runtime][idempotency]") {
  temp_dir dir;
  auto n = start_node(loopback_config(dir.path()));
  client c(n->endpoints().front());
  auto a = c.call_as<counter_value>("counter", "add", add_args{5}, op("alice", "same-key"));
  auto b = c.call_as<counter_value>("counter", "add", add_args{5}, op("bob", "same-key"));
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  // Before the fix bob got alice's stored reply (key "alice") and no effect.
  CHECK(b->key == "bob");
  CHECK(c.call_as<counter_value>("counter", "get", no_args{}, op("bob"))->value == 5);
  CHECK(c.call_as<counter_value>("counter", "get", no_args{}, op("alice"))->value == 5);
}

TEST_CASE("an idempotency key reused with other arguments or another method is idempotency_key_reused",
          "[storage][runtime][idempotency]") {
  temp_dir dir;
  auto n = start_node(loopback_config(dir.path()));
  client c(n->endpoints().front());
  REQUIRE(c.call_as<counter_value>("counter", "add", add_args{5}, op("k", "op-1")).ok());
  auto other_args = c.call_as<counter_value>("counter", "add", add_args{7}, op("k", "op-1"));
  REQUIRE_FALSE(other_args.ok());
  CHECK(other_args.error().is(errc::idempotency_key_reused));
  CHECK_THAT(other_args.error().message, Catch::Contains("op-1"));
  // The exact retry still gets the stored result.
  auto retry = c.call_as<counter_value>("counter", "add", add_args{5}, op("k", "op-1"));
  REQUIRE(retry.ok());
  CHECK(retry->value == 5);
  // Another mutating method under the same key (ledger has two: deposit, withdraw).
  REQUIRE(c.call("ledger", "deposit", args(R"({"amount":10})"), op("acct", "t-1")).ok());
  auto other_method = c.call("ledger", "withdraw", args(R"({"amount":10})"), op("acct", "t-1"));
  REQUIRE(other_method.error);
  CHECK(other_method.error->is(errc::idempotency_key_reused));
  CHECK_THAT(other_method.error->message, Catch::Contains("deposit"));
  CHECK(c.call_as<counter_value>("counter", "get", no_args{}, op("k"))->value == 5);
  // Racing retries with different arguments: one runs, the other is refused, never answered with its result.
  int ok = 0, reused = 0;
  c.call_async("counter", "add", args(R"({"n":1})"), op("k", "race"), [&](reply&& r) { ok += r.ok(); });
  c.call_async("counter", "add", args(R"({"n":2})"), op("k", "race"), [&](reply&& r) {
    reused += r.error && r.error->is(errc::idempotency_key_reused);
  });
  REQUIRE(c.drain(5s));
  CHECK(ok == 1);
  CHECK(reused == 1);
}

TEST_CASE("adding past the range of a 64-bit counter is an error, not a wrap-around", "[runtime][bad-input]") {
  temp_dir dir;
  auto n = start_node(loopback_config(dir.path()));
  client c(n->endpoints().front());
  REQUIRE(c.call_as<counter_value>("counter", "add", add_args{INT64_MAX}, op("big")).ok());
  auto over = c.call_as<counter_value>("counter", "add", add_args{1}, op("big"));
  REQUIRE_FALSE(over.ok());
  CHECK(over.error().code == "out_of_range");
  CHECK(c.call_as<counter_value>("counter", "get", no_args{}, op("big"))->value == INT64_MAX);
}

TEST_CASE("restore brings back exactly the backed-up state while the node runs", "[storage][runtime][restore]") {
  temp_dir dir;
  auto n = start_node(loopback_config(dir.path()));
  client c(n->endpoints().front());
  REQUIRE(c.call_as<counter_value>("counter", "add", add_args{4}, op("a")).ok());
  REQUIRE(c.call_as<counter_value>("counter", "add", add_args{1}, op("b")).ok());
  REQUIRE(n->backup("counter", "before").ok());
  REQUIRE(c.call_as<counter_value>("counter", "add", add_args{100}, op("a")).ok());
  REQUIRE(c.call_as<counter_value>("counter", "add", add_args{7}, op("new")).ok());
  REQUIRE(n->restore("counter", "before").ok());
  CHECK(status_of(*n, "counter").state == "up");
  CHECK(c.call_as<counter_value>("counter", "get", no_args{}, op("a"))->value == 4);
  CHECK(c.call_as<counter_value>("counter", "get", no_args{}, op("b"))->value == 1);
  CHECK(c.call_as<counter_value>("counter", "get", no_args{}, op("new"))->value == 0);
  CHECK_FALSE(std::filesystem::exists(dir / "counter.restoring"));
  CHECK(n->restore("counter", "nosuch").error().is(errc::bad_request));
  CHECK(n->restore("counter", "../x").error().is(errc::bad_request));
  // Writes go on after a restore.
  CHECK(c.call_as<counter_value>("counter", "add", add_args{1}, op("a"))->value == 5);
}

TEST_CASE("a restore interrupted before its swap leaves the old store, and the leftover copy goes at start",
          "[storage][runtime][restore]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path());
  {
    auto n = start_node(cfg);
    client c(n->endpoints().front());
    REQUIRE(c.call_as<counter_value>("counter", "add", add_args{3}, op("kept")).ok());
    REQUIRE(n->backup("counter", "b").ok());
    REQUIRE(c.call_as<counter_value>("counter", "add", add_args{3}, op("kept")).ok());
  }
  // A crash in the middle of copying: half a store beside the real one.
  std::filesystem::copy(dir / "backups/counter/b", dir / "counter.restoring", std::filesystem::copy_options::recursive);
  std::filesystem::remove(dir / "counter.restoring/CURRENT");
  auto n = start_node(cfg);
  client c(n->endpoints().front());
  CHECK(c.call_as<counter_value>("counter", "get", no_args{}, op("kept"))->value == 6);
  CHECK_FALSE(std::filesystem::exists(dir / "counter.restoring"));
}

TEST_CASE("an entity service past max_live_entities answers overloaded for new keys and serves live ones",
          "[storage][runtime]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path());
  service_named(cfg, "counter").max_live_entities = 3;
  auto n = start_node(cfg);
  client c(n->endpoints().front());
  for (auto k : {"a", "b", "c"}) REQUIRE(c.call_as<counter_value>("counter", "add", add_args{1}, op(k)).ok());
  auto refused = c.call("counter", "add", pack(add_args{1}), op("d"));
  REQUIRE(!refused.ok());
  CHECK(refused.error->is(errc::overloaded));
  CHECK_THAT(refused.error->message, Catch::Contains("max_live_entities"));
  CHECK(c.call_as<counter_value>("counter", "add", add_args{1}, op("a"))->value == 2);
}

namespace {

struct blob_state {
  std::string bytes;
  COHORT_FIELDS(bytes);
};
struct blob_args {
  std::uint32_t size = 0;
  COHORT_FIELDS(size);
};

/// Entities whose every put writes a state of `size` bytes.
std::vector<service_definition> blob_catalog() {
  auto c = example_services();
  c.push_back(entity_service<blob_state>("blobs")
                  .method("put",
                          [](entity_context<blob_state>& ctx, const blob_args& a) {
                            // Another letter each time: an unchanged state is not written again.
                            auto& b = ctx.state().bytes;
                            const char next = b.empty() ? 'a' : static_cast<char>('a' + (b[0] - 'a' + 1) % 26);
                            b.assign(a.size, next);
                            return no_args{};
                          })
                  .build());
  return c;
}

/// Memtable bytes of `blobs` once 24 MiB of states were written to it, after flushes settle.
std::uint64_t memtables_after_24_mib(std::size_t store_memory_mb, std::uint64_t settle_below) {
  temp_dir dir;
  auto catalog = blob_catalog();
  auto cfg = loopback_config(dir.path(), catalog);
  cfg.store_memory_mb = store_memory_mb;
  service_named(cfg, "blobs").store_durability = durability::async;  // the memtables are the point
  auto n = node::start(cfg, catalog);
  REQUIRE(n);
  client c((*n)->endpoints().front());
  for (int i = 0; i < 384; ++i) REQUIRE(c.call("blobs", "put", pack(blob_args{64 * 1024}), keyed("b" + std::to_string(i % 48))).ok());
  std::uint64_t held = 0;
  for (int i = 0; i < 200; ++i) {
    auto st = (*n)->storage_stats("blobs");
    REQUIRE(st.ok());
    held = st->memtable_bytes;
    if (held <= settle_below) break;
    std::this_thread::sleep_for(25ms);
  }
  return held;
}

}  // namespace

TEST_CASE("a node's stores keep their unflushed writes within its store_memory_mb together", "[storage][runtime]") {
  const auto bounded = memtables_after_24_mib(8, 8u << 20);
  INFO("memtables with an 8 MiB budget: " << bounded);
  CHECK(bounded <= (8u << 20));
  // Without one, RocksDB's bound per column family (64 MiB) keeps all of it in memory.
  const auto unbounded = memtables_after_24_mib(0, 0);
  INFO("memtables without a budget: " << unbounded);
  CHECK(unbounded > (16u << 20));
}
