// What moves with a shard: a store exports some entities' records (every
// entity keyspace and the outbox records they published, never the event
// log), another ingests them
// after deleting its old copy, and the first deletes its own.
#include <atomic>

#include <catch2/catch.hpp>

#include "cohort/storage/entity_owner.hpp"
#include "cohort/storage/big_endian.hpp"
#include "cohort/storage/idempotency.hpp"
#include "cohort/storage/outbox_key.hpp"
#include "cohort/storage/reminder_keys.hpp"
#include "cohort/storage/store.hpp"
#include "temp_dir.hpp"

using namespace cohort;

TEST_CASE("entity records are told apart by key in every keyspace", "[cluster][transfer]") {
  CHECK(owning_entity(keyspace::state, entity_key("cart-1")) == std::optional<std::string_view>("cart-1"));
  CHECK(owning_entity(keyspace::journal, journal_key("acc", 9)) == std::optional<std::string_view>("acc"));
  CHECK(owning_entity(keyspace::idempotency, idempotency_record_key("o:1", "retry-7")) ==
        std::optional<std::string_view>("o:1"));
  CHECK(owning_entity(keyspace::pending, "order-5") == std::optional<std::string_view>("order-5"));
  CHECK(owning_entity(keyspace::reminders, reminder_index_key("t", "ping")) == std::optional<std::string_view>("t"));
  CHECK(owning_entity(keyspace::reminders, reminder_schedule_key(123, "t", "ping")) ==
        std::optional<std::string_view>("t"));
  CHECK(owning_entity(keyspace::outbox, outbox_key("orders.paid", 7, 42, "o:1")) ==
        std::optional<std::string_view>("o:1"));
  CHECK(outbox_subscriber_prefix(outbox_key("orders.paid", 7, 42, "o:1")) == std::string_view("orders.paid\0", 12));
  CHECK_FALSE(owning_entity(keyspace::outbox, "anything"));
  // An outbox record written before keys named their publisher stays put.
  CHECK_FALSE(owning_entity(keyspace::outbox, outbox_key("orders.paid", 7, 42, "o:1").substr(0, 12 + 16)));
  CHECK_FALSE(owning_entity(keyspace::outbox, outbox_key("orders.paid", 7, 42, "o:1") + "x"));
  CHECK_FALSE(owning_entity(keyspace::events, big_endian_key(1)));
  CHECK_FALSE(owning_entity(keyspace::state, std::string("\0\0\0\x09" "ab", 6)));  // length past the end
  CHECK_FALSE(owning_entity(keyspace::idempotency, "x:abc"));
}

TEST_CASE("a store exports the chosen entities, another ingests them over its old copy", "[cluster][transfer]") {
  test::temp_dir dir;
  auto a = store::open(dir / "a");
  auto b = store::open(dir / "b");
  REQUIRE(a);
  REQUIRE(b);
  write_batch w;
  for (int i = 0; i < 100; ++i) {
    auto k = "e" + std::to_string(i);
    w.put(keyspace::state, entity_key(k), "v" + std::to_string(i));
    w.put(keyspace::idempotency, idempotency_record_key(k, "r"), "stored");
  }
  const std::string legacy("sub\0x", 5);  // no publisher in the key: stays with the node
  w.put(keyspace::outbox, legacy, "event");
  w.put(keyspace::outbox, outbox_key("sub", 1, 1, "e3"), "published by e3");
  w.put(keyspace::outbox, outbox_key("sub", 1, 2, "e4"), "published by e4");
  REQUIRE((*a)->write(w));
  // b has a stale copy of e1 and an entity a no longer has (e200): both must go.
  write_batch old;
  old.put(keyspace::state, entity_key("e1"), "stale");
  old.put(keyspace::state, entity_key("e201"), "gone");
  REQUIRE((*b)->write(old));
  auto odd = [](std::string_view k) { return (k.back() - '0') % 2 == 1; };
  auto exported = (*a)->export_entities(odd, dir / "x");
  REQUIRE(exported);
  CHECK(exported->records == 101);  // 50 states + 50 idempotency records + e3's outbox record
  REQUIRE((*b)->erase_entities(odd));
  REQUIRE((*b)->ingest(exported->files));
  CHECK((*b)->get(keyspace::state, entity_key("e1"))->value() == "v1");
  CHECK_FALSE((*b)->get(keyspace::state, entity_key("e201"))->has_value());
  CHECK_FALSE((*b)->get(keyspace::state, entity_key("e2"))->has_value());
  CHECK((*b)->get(keyspace::idempotency, idempotency_record_key("e99", "r"))->value() == "stored");
  CHECK_FALSE((*b)->get(keyspace::outbox, legacy)->has_value());
  CHECK((*b)->get(keyspace::outbox, outbox_key("sub", 1, 1, "e3"))->value() == "published by e3");
  CHECK_FALSE((*b)->get(keyspace::outbox, outbox_key("sub", 1, 2, "e4"))->has_value());
  auto erased = (*a)->erase_entities(odd);
  REQUIRE(erased);
  CHECK(*erased == 101);
  CHECK((*a)->get(keyspace::outbox, legacy)->value() == "event");
  CHECK((*a)->get(keyspace::outbox, outbox_key("sub", 1, 2, "e4"))->value() == "published by e4");
  CHECK_FALSE((*a)->get(keyspace::state, entity_key("e1"))->has_value());
  CHECK((*a)->get(keyspace::state, entity_key("e2"))->value() == "v2");
}

TEST_CASE("a store's write guard refuses an entity's batches as they are queued, others are written",
          "[cluster][transfer]") {
  test::temp_dir dir;
  auto db = store::open(dir / "g");
  REQUIRE(db);
  std::atomic<bool> fenced{false};
  (*db)->set_write_guard([&](const write_batch& b) -> std::optional<error_info> {
    if (fenced && b.entity == "moved") return error_info{errc::unavailable, "not served here"};
    return std::nullopt;
  });
  auto batch_of = [](const std::string& entity, const std::string& value) {
    write_batch b;
    b.entity = entity;
    b.put(keyspace::state, entity_key(entity), value);
    return b;
  };
  REQUIRE((*db)->write(batch_of("moved", "1")));
  fenced = true;
  auto refused = (*db)->write(batch_of("moved", "2"));
  REQUIRE_FALSE(refused);
  CHECK(refused.error().is(errc::unavailable));
  CHECK((*db)->get(keyspace::state, entity_key("moved"))->value() == "1");
  REQUIRE((*db)->write(batch_of("stays", "3")));
  write_batch service_wide;  // no entity: never guarded (outbox, event log)
  service_wide.put(keyspace::outbox, "x", "y");
  REQUIRE((*db)->write(service_wide));
}

TEST_CASE("a pre-copy: a snapshot moves while writes go on, then only the records changed since", "[cluster][transfer]") {
  test::temp_dir dir;
  auto a = store::open(dir / "a");
  auto b = store::open(dir / "b");
  REQUIRE(a);
  REQUIRE(b);
  auto odd = [](std::string_view k) { return (k.back() - '0') % 2 == 1; };
  write_batch w;
  for (int i = 0; i < 100; ++i) w.put(keyspace::state, entity_key("e" + std::to_string(i)), "v1");
  REQUIRE((*a)->write(w));
  const auto tracking = (*a)->track_changes(odd);
  (*a)->barrier();
  auto base = (*a)->export_entities(odd, dir / "x");
  REQUIRE(base);
  CHECK(base->records == 50);
  // Meanwhile the shard serves on: an update, a new entity, a deletion, a
  // journal record, and writes of entities that stay (not recorded).
  write_batch later;
  later.put(keyspace::state, entity_key("e1"), "v2");
  later.put(keyspace::state, entity_key("e101"), "new");
  later.erase(keyspace::state, entity_key("e3"));
  later.put(keyspace::journal, journal_key("e5", 1), "event");
  later.put(keyspace::state, entity_key("e2"), "stays here");
  REQUIRE((*a)->write(later));
  // The same key written twice is one record of the delta.
  write_batch again;
  again.put(keyspace::state, entity_key("e1"), "v3");
  REQUIRE((*a)->write(again));
  (*a)->barrier();
  auto delta = (*a)->export_changes(tracking, dir / "x");
  REQUIRE(delta);
  CHECK(delta->records == 4);  // e1, e101, e3 (deleted), e5's journal record
  // Ingested in order over the snapshot: the newest state of every moved record.
  REQUIRE((*b)->ingest(base->files));
  REQUIRE((*b)->ingest(delta->files));
  CHECK((*b)->get(keyspace::state, entity_key("e1"))->value() == "v3");
  CHECK((*b)->get(keyspace::state, entity_key("e101"))->value() == "new");
  CHECK_FALSE((*b)->get(keyspace::state, entity_key("e3"))->has_value());
  CHECK((*b)->get(keyspace::state, entity_key("e7"))->value() == "v1");
  CHECK((*b)->get(keyspace::journal, journal_key("e5", 1))->value() == "event");
  CHECK_FALSE((*b)->get(keyspace::state, entity_key("e2"))->has_value());
  // A tracking is used once; one past its limit gives up rather than grow.
  CHECK_FALSE((*a)->export_changes(tracking, dir / "y"));
  const auto small = (*a)->track_changes(odd, 2);
  write_batch many;
  for (int i = 1; i < 10; i += 2) many.put(keyspace::state, entity_key("e" + std::to_string(i)), "v4");
  REQUIRE((*a)->write(many));
  auto overflowed = (*a)->export_changes(small, dir / "y");
  REQUIRE_FALSE(overflowed);
  CHECK(overflowed.error().is(errc::overloaded));
}
