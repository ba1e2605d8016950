#include <catch2/catch.hpp>

#include <cstdio>
#include <set>

#include <atomic>
#include <fstream>
#include <mutex>
#include <thread>

#include <rocksdb/perf_context.h>
#include <rocksdb/perf_level.h>

#include "cohort/storage/idempotency.hpp"
#include "cohort/storage/store.hpp"
#include "temp_dir.hpp"

using namespace cohort;

TEST_CASE("a store keeps what was written across close and reopen", "[storage]") {
  test::temp_dir dir;
  {
    auto s = store::open(dir / "svc");
    REQUIRE(s.ok());
    write_batch b;
    b.put(keyspace::state, "a", "1");
    b.put(keyspace::state, "b", "2");
    b.put(keyspace::journal, "a", "journal-a");
    REQUIRE((*s)->write(b).ok());
    write_batch d;
    d.erase(keyspace::state, "a");
    REQUIRE((*s)->write(d).ok());
  }
  auto s = store::open(dir / "svc");
  REQUIRE(s.ok());
  CHECK_FALSE((*s)->get(keyspace::state, "a")->has_value());
  CHECK((*s)->get(keyspace::state, "b")->value() == "2");
  CHECK((*s)->get(keyspace::journal, "a")->value() == "journal-a");  // keyspaces are separate
  CHECK_FALSE((*s)->get(keyspace::idempotency, "b")->has_value());
}

TEST_CASE("concurrent commits are grouped into fewer synced writes", "[storage]") {
  test::temp_dir dir;
  auto s = store::open(dir / "svc", {durability::sync});
  REQUIRE(s.ok());
  constexpr int threads = 16, per_thread = 50;
  std::atomic<int> acknowledged{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < threads; ++t)
    writers.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        write_batch b;
        b.put(keyspace::state, "k" + std::to_string(t) + "-" + std::to_string(i), "v");
        if ((*s)->write(b).ok()) acknowledged++;
      }
    });
  for (auto& w : writers) w.join();
  CHECK(acknowledged == threads * per_thread);
  auto st = (*s)->stats();
  CHECK(st.committed_writes == threads * per_thread);
  CHECK(st.commits < st.committed_writes);  // group commit: fewer fsyncs than writes
  for (int t = 0; t < threads; ++t) CHECK((*s)->get(keyspace::state, "k" + std::to_string(t) + "-49")->has_value());
}

TEST_CASE("commit callbacks run in queue order once durable", "[storage]") {
  test::temp_dir dir;
  auto s = store::open(dir / "svc");
  REQUIRE(s.ok());
  std::mutex m;
  std::vector<int> order;
  std::atomic<int> failed{0};  // Catch2 v2 assertions are not thread-safe: count on the committer, check here
  for (int i = 0; i < 100; ++i) {
    write_batch b;
    b.put(keyspace::state, "k", std::to_string(i));
    (*s)->commit(std::move(b), [&, i](const result<bool>& r) {
      if (!r.ok()) failed++;
      std::lock_guard<std::mutex> g(m);
      order.push_back(i);
    });
  }
  (*s)->barrier();
  std::lock_guard<std::mutex> g(m);
  CHECK(failed == 0);
  REQUIRE(order.size() == 100);
  CHECK(std::is_sorted(order.begin(), order.end()));
  CHECK((*s)->get(keyspace::state, "k")->value() == "99");
}

TEST_CASE("scan visits one prefix in key order from a start key", "[storage]") {
  test::temp_dir dir;
  auto s = store::open(dir / "svc");
  REQUIRE(s.ok());
  write_batch b;
  for (auto k : {"a/1", "a/2", "a/3", "ab/1", "b/1"}) b.put(keyspace::journal, k, k);
  REQUIRE((*s)->write(b).ok());
  std::vector<std::string> seen;
  REQUIRE((*s)->scan(keyspace::journal, "a/", "a/2", [&](std::string_view k, std::string_view) {
    seen.emplace_back(k);
    return true;
  }).ok());
  CHECK(seen == std::vector<std::string>{"a/2", "a/3"});
}

TEST_CASE("scan ends at its prefix and at its end key without stepping over the deleted keys past them", "[storage]") {
  // An entity's activation scans its (usually empty) reminder index: with
  // no bound, RocksDB stepped over every deleted key after it, thousands
  // per activation once the shop had cancelled its orders' reminders.
  test::temp_dir dir;
  auto s = store::open(dir / "svc");
  REQUIRE(s.ok());
  write_batch b;
  for (auto k : {"a/1", "a/2", "a/3"}) b.put(keyspace::reminders, k, k);
  for (int i = 0; i < 2000; ++i) b.put(keyspace::reminders, "b/" + std::to_string(i), "x");
  b.put(keyspace::reminders, std::string("c\xff\xff"), "last");
  REQUIRE((*s)->write(b).ok());
  write_batch d;
  for (int i = 0; i < 2000; ++i) d.erase(keyspace::reminders, "b/" + std::to_string(i));
  for (auto k : {"a/2", "a/3"}) d.erase(keyspace::reminders, k);
  REQUIRE((*s)->write(d).ok());
  auto scan = [&](std::string_view prefix, std::string_view end) {
    std::vector<std::string> seen;
    rocksdb::SetPerfLevel(rocksdb::PerfLevel::kEnableCount);
    rocksdb::get_perf_context()->Reset();
    REQUIRE((*s)->scan(keyspace::reminders, prefix, {}, [&](std::string_view k, std::string_view) {
      seen.emplace_back(k);
      return true;
    }, end).ok());
    const auto skipped = rocksdb::get_perf_context()->internal_delete_skipped_count;
    rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
    return std::make_pair(seen, skipped);
  };
  auto [seen, skipped] = scan("a/", {});
  CHECK(seen == std::vector<std::string>{"a/1"});
  CHECK(skipped <= 2);  // a/2 and a/3, not the 2000 under b/
  std::tie(seen, skipped) = scan("b/", "b/1");  // an end inside the prefix: b/0... only
  CHECK(seen.empty());
  CHECK(skipped <= 2);  // "b/0" sorts before "b/1", the rest after it
  std::tie(seen, skipped) = scan(std::string("c\xff"), {});  // a prefix ending in 0xff: bounded by "d"
  CHECK(seen == std::vector<std::string>{std::string("c\xff\xff")});
  std::tie(seen, skipped) = scan("", {});  // no prefix: everything, no bound
  CHECK(seen == std::vector<std::string>{"a/1", std::string("c\xff\xff")});
}

TEST_CASE("a checkpoint is a consistent copy that opens on its own", "[storage]") {
  test::temp_dir dir;
  auto s = store::open(dir / "svc");
  REQUIRE(s.ok());
  write_batch b;
  b.put(keyspace::state, "x", "1");
  REQUIRE((*s)->write(b).ok());
  REQUIRE((*s)->checkpoint(dir / "backup").ok());
  write_batch later;
  later.put(keyspace::state, "y", "2");
  REQUIRE((*s)->write(later).ok());
  auto copy = store::open(dir / "backup");
  REQUIRE(copy.ok());
  CHECK((*copy)->get(keyspace::state, "x")->value() == "1");
  CHECK_FALSE((*copy)->get(keyspace::state, "y")->has_value());
  CHECK_FALSE((*s)->checkpoint(dir / "backup").ok());  // never overwrites
  auto st = (*s)->stats();
  CHECK(st.size_on_disk_bytes > 0);
}

TEST_CASE("a store locked by another opener fails with a message naming the directory", "[storage]") {
  test::temp_dir dir;
  auto first = store::open(dir / "svc");
  REQUIRE(first.ok());
  auto second = store::open(dir / "svc");
  REQUIRE_FALSE(second.ok());
  CHECK(second.error().is(errc::storage_unavailable));
  CHECK_THAT(second.error().message, Catch::Contains(dir / "svc") && Catch::Contains("lock"));
}

TEST_CASE("a corrupt store fails to open with a clear message", "[storage]") {
  test::temp_dir dir;
  { REQUIRE(store::open(dir / "svc").ok()); }
  for (const auto& e : std::filesystem::directory_iterator(dir / "svc"))
    if (e.path().filename().string().rfind("MANIFEST", 0) == 0) std::ofstream(e.path(), std::ios::trunc) << "garbage";
  auto s = store::open(dir / "svc");
  REQUIRE_FALSE(s.ok());
  CHECK_THAT(s.error().message, Catch::Contains(dir / "svc"));
}

TEST_CASE("a store under a path that is not a directory fails with a clear message", "[storage]") {
  test::temp_dir dir;
  std::ofstream(dir / "file") << "x";
  auto s = store::open(dir / "file/svc");
  REQUIRE_FALSE(s.ok());
  CHECK_THAT(s.error().message, Catch::Contains(dir / "file/svc"));
}

TEST_CASE("expired idempotency records are dropped by compaction, live ones kept", "[storage]") {
  test::temp_dir dir;
  auto s = store::open(dir / "svc");
  REQUIRE(s.ok());
  write_batch b;
  b.put(keyspace::idempotency, "old", encode_idempotent_result({false, "r1"}, std::chrono::milliseconds(-1000)));
  b.put(keyspace::idempotency, "new", encode_idempotent_result({true, "r2"}, std::chrono::hours(1)));
  REQUIRE((*s)->write(b).ok());
  REQUIRE((*s)->compact(keyspace::idempotency).ok());
  CHECK_FALSE((*s)->get(keyspace::idempotency, "old")->has_value());
  auto kept = (*s)->get(keyspace::idempotency, "new");
  REQUIRE(kept->has_value());
  auto r = decode_idempotent_result(**kept, system_now_ms());
  REQUIRE(r);
  CHECK(r->is_error);
  CHECK(r->payload == "r2");
}

TEST_CASE("a full commit queue answers overloaded at once and loses nothing it accepted", "[storage]") {
  test::temp_dir dir;
  store_options opts{durability::sync};
  opts.max_queued = 4;
  auto s = store::open(dir / "svc", opts);
  REQUIRE(s.ok());
  std::mutex m;
  std::vector<std::string> accepted;
  std::atomic<int> refused{0}, answered{0};
  // Far faster than fsyncs: the queue fills.
  for (int i = 0; i < 500; ++i) {
    write_batch b;
    auto key = "k" + std::to_string(i);
    b.put(keyspace::state, key, "v");
    (*s)->commit(std::move(b), [&, key](const result<bool>& r) {
      if (r) {
        std::lock_guard<std::mutex> guard(m);
        accepted.push_back(key);
      } else if (r.error().is(errc::overloaded)) {
        refused++;
      }
      answered++;
    });
  }
  (*s)->barrier();  // behind everything queued, never refused itself
  CHECK(answered == 500);
  CHECK(refused > 0);
  CHECK(!accepted.empty());
  std::lock_guard<std::mutex> guard(m);
  for (const auto& key : accepted) CHECK((*s)->get(keyspace::state, key)->has_value());
}

namespace {

/// Memtable bytes of all `stores` once their flushes have settled (bounded wait).
std::uint64_t settled_memtables(const std::vector<std::unique_ptr<store>>& stores, std::uint64_t at_most) {
  std::uint64_t total = 0;
  for (int i = 0; i < 200; ++i) {
    total = 0;
    for (const auto& s : stores) total += s->stats().memtable_bytes;
    if (total <= at_most) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  return total;
}

/// 24 MiB of 4 KiB values over `stores`, unsynced (the memtables are the point here).
void fill(std::vector<std::unique_ptr<store>>& stores) {
  const std::string value(4096, 'v');
  for (int i = 0; i < 6 * 1024; ++i) {
    write_batch b;
    b.put(keyspace::state, "key-" + std::to_string(i), value);
    REQUIRE(stores[static_cast<std::size_t>(i) % stores.size()]->write(b).ok());
  }
}

}  // namespace

TEST_CASE("stores sharing a memory budget keep their memtables within it together", "[storage]") {
  constexpr std::size_t budget_bytes = 8u << 20;
  test::temp_dir dir;
  std::vector<std::unique_ptr<store>> unbounded;
  for (int i = 0; i < 3; ++i) {
    auto s = store::open(dir / ("free-" + std::to_string(i)), {durability::async});
    REQUIRE(s.ok());
    unbounded.push_back(std::move(*s));
  }
  fill(unbounded);
  // Without a budget, RocksDB's own bound (64 MiB per column family) keeps it all in memory.
  CHECK(settled_memtables(unbounded, 0) > budget_bytes * 2);

  auto budget = std::make_shared<memory_budget>(budget_bytes);
  CHECK(budget->bytes() == budget_bytes);
  std::vector<std::unique_ptr<store>> bounded;
  for (int i = 0; i < 3; ++i) {
    store_options o{durability::async};
    o.memory = budget;
    auto s = store::open(dir / ("shared-" + std::to_string(i)), o);
    REQUIRE(s.ok());
    bounded.push_back(std::move(*s));
  }
  fill(bounded);
  const auto held = settled_memtables(bounded, budget_bytes);
  INFO("memtables " << held << " bytes, budget " << budget_bytes);
  CHECK(held <= budget_bytes);
  // The manager counts memory reserved for memtables (arena blocks) too,
  // and a flushed memtable's until it is freed; its bound is soft (a flush
  // starts past it): once flushes settle, a little over at most.
  for (int i = 0; i < 200 && budget->used() >= budget_bytes + budget_bytes / 4; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  CHECK(budget->used() < budget_bytes + budget_bytes / 4);
  // Flushed, not lost.
  for (int i = 0; i < 6 * 1024; i += 97) {
    auto v = bounded[static_cast<std::size_t>(i) % 3]->get(keyspace::state, "key-" + std::to_string(i));
    REQUIRE(v.ok());
    CHECK(v->has_value());
  }
}

TEST_CASE("marks set and cleared in the pending keyspace leave little for its scan to step over", "[storage]") {
  // The resume sweep scans the pending keyspace every resume_every_ms. Each
  // finished saga leaves a deleted mark, which a scan steps over for as long
  // as it sits in a memtable: with RocksDB's default 64 MiB buffer, 100k
  // finished sagas made a scan of no live mark take 25 ms, 500k 159 ms, on
  // the store's one reader thread. The keyspace's memtable is kept small, so
  // its deleted marks are flushed and compacted away.
  test::temp_dir dir;
  store_options o;
  o.mode = durability::async;
  auto s = store::open(dir / "svc", o);
  REQUIRE(s.ok());
  constexpr int marks = 120000;
  const std::string traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  std::set<std::string> live;
  std::atomic<int> refused{0};
  for (int i = 0; i < marks; ++i) {
    char key[32];
    std::snprintf(key, sizeof key, "order-%08x", static_cast<unsigned>(i * 2654435761u));
    write_batch set;
    set.put(keyspace::pending, key, traceparent);
    (*s)->commit(std::move(set), [&](const result<bool>& r) { refused += !r.ok(); });
    if (i % 1000 == 0) {
      live.insert(key);  // still pending
      continue;
    }
    write_batch clear;
    clear.erase(keyspace::pending, key);
    (*s)->commit(std::move(clear), [&](const result<bool>& r) { refused += !r.ok(); });
    if (i % 500 == 499) (*s)->barrier();  // within the committer's queue bound
  }
  (*s)->barrier();
  REQUIRE(refused == 0);
  CHECK((*s)->stats().memtable_bytes < 4u << 20);  // 16 MB with the default buffer
  std::set<std::string> found;
  REQUIRE((*s)->scan(keyspace::pending, "", "", [&](std::string_view k, std::string_view v) {
    CHECK(v == traceparent);
    found.emplace(k);
    return true;
  }));
  CHECK(found == live);
}
