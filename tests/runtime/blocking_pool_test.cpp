// blocking_pool: the threads a blocking service's workers run on. Checked
// here on its own, with actors that block, in a bare CAF actor system.
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include <caf/all.hpp>
#include <catch2/catch.hpp>

#include "cohort/core/blocking_pool.hpp"
#include "eventually.hpp"

using namespace std::chrono_literals;
using cohort::detail::blocking_pool;

namespace {

struct sleeper_state {
  static inline const char* name = "test.sleeper";
};

/// Sleeps for the milliseconds it is sent, on a thread of its pool, and answers them.
class pooled_sleeper final : public cohort::detail::pooled_actor<sleeper_state> {
 public:
  using pooled_actor::pooled_actor;

  caf::behavior make_behavior() override {
    return {[](int ms) {
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
      return ms;
    }};
  }
};

/// Sends `ms` to every actor at once; true when all answered.
bool sleep_all(caf::scoped_actor& self, const std::vector<caf::actor>& actors, int ms) {
  for (const auto& a : actors) self->send(a, ms);
  std::size_t answered = 0;
  bool timed_out = false;
  for (std::size_t i = 0; i < actors.size() && !timed_out; ++i)
    self->receive([&](int) { ++answered; }, caf::after(std::chrono::seconds(10)) >> [&] { timed_out = true; });
  return answered == actors.size();
}

}  // namespace

TEST_CASE("a blocking pool gives every busy actor a thread, keeps `keep` when idle, and reuses them",
          "[runtime][blocking_pool]") {
  caf::actor_system_config cfg;
  caf::actor_system system{cfg};
  auto pool = std::make_shared<blocking_pool>(system, "test", 1, 100ms);
  std::vector<caf::actor> sleepers;
  for (int i = 0; i < 3; ++i) sleepers.push_back(system.spawn<pooled_sleeper>(pool));
  caf::scoped_actor self{system};

  // Three 500 ms sleeps at once end together: no actor waited for a thread
  // although the pool keeps only one.
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(sleep_all(self, sleepers, 500));
  CHECK(std::chrono::steady_clock::now() - t0 < 900ms);
  CHECK(pool->threads() >= 3);
  const auto started = pool->threads_started();
  INFO("threads started: " << started);

  // Idle past the limit: the threads beyond `keep` end.
  CHECK(cohort::test::eventually([&] { return pool->threads() == 1; }, 3000ms));
  // A message to an idle actor takes the kept thread: none is started.
  REQUIRE(sleep_all(self, {sleepers.front()}, 1));
  CHECK(pool->threads_started() == started);

  // Actors that end hand their threads back; stop() ends the threads.
  for (const auto& a : sleepers) self->send_exit(a, caf::exit_reason::user_shutdown);
  sleepers.clear();
  pool->stop();
  CHECK(pool->threads() == 0);
}

TEST_CASE("an actor on a blocking pool that ends is replaced on the same threads", "[runtime][blocking_pool]") {
  caf::actor_system_config cfg;
  caf::actor_system system{cfg};
  auto pool = std::make_shared<blocking_pool>(system, "test", 1, 60000ms);
  caf::scoped_actor self{system};
  auto first = system.spawn<pooled_sleeper>(pool);
  REQUIRE(sleep_all(self, {first}, 1));
  // Twenty actors in turn, each ended before the next starts: the pool's
  // threads carry them all (a thread per actor would start twenty).
  for (int i = 0; i < 20; ++i) {
    auto next = system.spawn<pooled_sleeper>(pool);
    REQUIRE(sleep_all(self, {next}, 1));
    self->send_exit(next, caf::exit_reason::user_shutdown);
  }
  INFO("threads started for 21 actors: " << pool->threads_started());
  CHECK(pool->threads_started() <= 4);
  self->send_exit(first, caf::exit_reason::user_shutdown);
  pool->stop();
  CHECK(pool->threads() == 0);
}
