// Durable timers (reminders): an entity schedules one, it fires at or after
// its time (by a clock the test moves), at least once and in time order,
// across passivation, crashes and restarts; cancel and replace work; a store
// with many pending reminders starts and fires only what is due.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <random>

#include "cohort/actors/service_definition.hpp"
#include "test_node.hpp"

using namespace cohort;
using namespace cohort::test;
using namespace std::chrono_literals;

namespace {

struct alarm_state {
  std::vector<std::string> fired;  ///< "name:note" per delivery
  std::vector<std::uint64_t> due;
  MSGPACK_DEFINE_MAP(fired, due);
};
struct arm_args {
  std::string name;
  std::uint64_t in_ms = 0;
  std::string note;
  std::uint32_t count = 1;  ///< arm name-0 .. name-(count-1), 1 ms apart from in_ms on
  MSGPACK_DEFINE_MAP(name, in_ms, note, count);
};
struct name_args {
  std::string name;
  MSGPACK_DEFINE_MAP(name);
};

std::atomic<std::uint64_t> fake_now{1'000'000'000};

service_definition alarms() {
  return entity_service<alarm_state>("alarms")
      .method("arm",
              [](entity_context<alarm_state>& ctx, const arm_args& a) {
                if (a.count == 1) {
                  ctx.remind_in(a.name, std::chrono::milliseconds(a.in_ms), a.note);
                } else {
                  for (std::uint32_t i = 0; i < a.count; ++i)
                    ctx.remind_in(a.name + "-" + std::to_string(i), std::chrono::milliseconds(a.in_ms + i), a.note);
                }
                return no_args{};
              })
      .method("cancel",
              [](entity_context<alarm_state>& ctx, const name_args& a) {
                ctx.cancel_reminder(a.name);
                return no_args{};
              })
      .query("fired", [](query_context<alarm_state>& ctx, const no_args&) { return ctx.state(); })
      .on_reminder([](entity_context<alarm_state>& ctx, const reminder& r) {
        ctx.state().fired.push_back(r.name + ":" + r.payload_as<std::string>());
        ctx.state().due.push_back(r.due_ms);
        return no_args{};
      })
      .build();
}

std::vector<service_definition> catalog() {
  auto c = example_services();
  c.push_back(alarms());
  return c;
}

node_config alarm_config(const std::string& dir) {
  auto cfg = loopback_config(dir, catalog());
  cfg.reminder_clock = [] { return fake_now.load(); };
  cfg.allow_fault_injection = true;
  service_named(cfg, "alarms").resume_every = 20ms;  // the scheduler looks at least this often
  return cfg;
}

std::unique_ptr<node> start(const node_config& cfg) {
  auto n = node::start(cfg, catalog());
  if (!n) FAIL("node did not start: " << n.error().message);
  return std::move(*n);
}

void arm(client& c, const std::string& key, const std::string& name, std::uint64_t in_ms, const std::string& note = "n",
         std::uint32_t count = 1) {
  REQUIRE(c.call_as<no_args>("alarms", "arm", arm_args{name, in_ms, note, count}, keyed(key)).ok());
}

/// What the entity has seen fire. Asked again (bounded) while the entity is
/// down for a moment (just crashed on purpose: `unavailable`).
alarm_state fired(client& c, const std::string& key) {
  result<alarm_state> r = error_info{errc::unavailable, "not asked"};
  for (int i = 0; i < 50 && !(r = c.call_as<alarm_state>("alarms", "fired", no_args{}, keyed(key))).ok(); ++i)
    std::this_thread::sleep_for(20ms);
  REQUIRE(r.ok());
  return *r;
}

}  // namespace

TEST_CASE("a reminder fires at or after its time, once, with its payload", "[runtime][reminders]") {
  temp_dir dir;
  auto n = start(alarm_config(dir / "data"));
  client c(n->endpoints().front());
  const auto t0 = fake_now.load();
  arm(c, "k1", "a", 1000, "hello");
  std::this_thread::sleep_for(150ms);  // several scheduler rounds
  CHECK(fired(c, "k1").fired.empty());
  fake_now += 999;
  std::this_thread::sleep_for(150ms);
  CHECK(fired(c, "k1").fired.empty());  // not before its time
  fake_now += 1;
  REQUIRE(eventually([&] { return !fired(c, "k1").fired.empty(); }));
  auto f = fired(c, "k1");
  CHECK(f.fired == std::vector<std::string>{"a:hello"});
  CHECK(f.due == std::vector<std::uint64_t>{t0 + 1000});
  std::this_thread::sleep_for(150ms);
  CHECK(fired(c, "k1").fired.size() == 1);  // handled and removed: not again
  n->stop();
}

TEST_CASE("a reminder is replaced by one of the same name and cancelled by name", "[runtime][reminders]") {
  temp_dir dir;
  auto n = start(alarm_config(dir / "data"));
  client c(n->endpoints().front());
  arm(c, "k2", "b", 100, "first");
  arm(c, "k2", "b", 500, "second");  // moves b
  arm(c, "k2", "c", 100);
  REQUIRE(c.call_as<no_args>("alarms", "cancel", name_args{"c"}, keyed("k2")).ok());
  REQUIRE(c.call_as<no_args>("alarms", "cancel", name_args{"none"}, keyed("k2")).ok());  // nothing to cancel: fine
  fake_now += 200;
  std::this_thread::sleep_for(150ms);
  CHECK(fired(c, "k2").fired.empty());
  fake_now += 400;
  REQUIRE(eventually([&] { return !fired(c, "k2").fired.empty(); }));
  std::this_thread::sleep_for(100ms);
  CHECK(fired(c, "k2").fired == std::vector<std::string>{"b:second"});
  n->stop();
}

TEST_CASE("reminders survive a crash of their entity and a restart of the node", "[runtime][reminders]") {
  temp_dir dir;
  auto cfg = alarm_config(dir / "data");
  {
    auto n = start(cfg);
    client c(n->endpoints().front());
    arm(c, "k3", "after-crash", 100, "x");
    arm(c, "k4", "after-restart", 300, "y");
    REQUIRE(n->command_child("alarms", "entity/k3", "crash"));
    fake_now += 100;
    REQUIRE(eventually([&] { return fired(c, "k3").fired.size() == 1; }));
    n->stop();  // k4's reminder is only in the store now
  }
  fake_now += 300;
  auto n = start(cfg);
  client c(n->endpoints().front());
  REQUIRE(eventually([&] { return fired(c, "k4").fired.size() == 1; }));
  CHECK(fired(c, "k4").fired[0] == "after-restart:y");
  CHECK(fired(c, "k3").fired.size() == 1);  // not again after the restart
  n->stop();
}

TEST_CASE("an entity's reminders fire in time order", "[runtime][reminders]") {
  temp_dir dir;
  auto n = start(alarm_config(dir / "data"));
  client c(n->endpoints().front());
  std::vector<std::uint64_t> offsets(40);
  for (std::size_t i = 0; i < offsets.size(); ++i) offsets[i] = 10 + i * 7;
  std::shuffle(offsets.begin(), offsets.end(), std::mt19937(7));
  for (std::size_t i = 0; i < offsets.size(); ++i) arm(c, "k5", "r" + std::to_string(i), offsets[i]);
  fake_now += 1000;
  REQUIRE(eventually([&] { return fired(c, "k5").fired.size() == offsets.size(); }));
  auto due = fired(c, "k5").due;
  CHECK(std::is_sorted(due.begin(), due.end()));
  n->stop();
}

TEST_CASE("a node with many pending reminders starts and fires only those that are due", "[runtime][reminders]") {
  temp_dir dir;
  auto cfg = alarm_config(dir / "data");
  {
    auto n = start(cfg);
    client c(n->endpoints().front());
    // 50 000 reminders a day away, in 50 entities (one write each).
    for (int e = 0; e < 50; ++e) arm(c, "far-" + std::to_string(e), "far", 86'400'000, "later", 1000);
    n->stop();
  }
  auto n = start(cfg);
  client c(n->endpoints().front());
  arm(c, "near", "soon", 50, "now");
  fake_now += 50;
  REQUIRE(eventually([&] { return fired(c, "near").fired.size() == 1; }));
  std::this_thread::sleep_for(100ms);
  for (int e = 0; e < 50; e += 7) CHECK(fired(c, "far-" + std::to_string(e)).fired.empty());
  n->stop();
}

TEST_CASE("a reminder due before where the scheduler's scans now start still fires", "[runtime][reminders]") {
  // Each scan starts where the last found nothing more stored (so the fired
  // and cancelled reminders before it are not stepped over again); a write
  // tells the scheduler its earliest due time, which moves the start back.
  temp_dir dir;
  auto n = start(alarm_config(dir / "data"));
  client c(n->endpoints().front());
  arm(c, "k6", "first", 10);
  fake_now += 10;
  REQUIRE(eventually([&] { return fired(c, "k6").fired.size() == 1; }));
  std::this_thread::sleep_for(100ms);  // more rounds: they scanned up to now + 1 and start there
  arm(c, "k6", "at-once", 0, "z");  // due now: before that start
  REQUIRE(eventually([&] { return fired(c, "k6").fired.size() == 2; }));
  CHECK(fired(c, "k6").fired[1] == "at-once:z");
  n->stop();
}
