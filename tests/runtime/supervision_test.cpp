// The supervision plan, driven deterministically with explicit clock values.
#include <catch2/catch.hpp>

#include "cohort/runtime/supervision.hpp"

using namespace cohort;
using namespace std::chrono_literals;

namespace {

using tp = std::chrono::steady_clock::time_point;
const tp t0{};

std::vector<child_spec> three(restart_type type = restart_type::permanent) {
  return {{"a", type}, {"b", type}, {"c", type}};
}

supervision_plan plan_of(restart_strategy s, std::size_t max_restarts = 3, std::chrono::milliseconds period = 5000ms,
                         restart_type type = restart_type::permanent) {
  supervision_policy p;
  p.strategy = s;
  p.intensity = {max_restarts, period};
  return supervision_plan(p, three(type));
}

const std::vector<bool> all_running{true, true, true};

}  // namespace

TEST_CASE("one_for_one restarts only the failed child", "[supervision]") {
  auto plan = plan_of(restart_strategy::one_for_one);
  auto d = plan.on_exit(1, true, all_running, t0);
  CHECK_FALSE(d.give_up);
  CHECK(d.stop.empty());
  CHECK(d.start == std::vector<std::size_t>{1});
}

TEST_CASE("one_for_all stops the others in reverse order and restarts all in start order", "[supervision]") {
  auto plan = plan_of(restart_strategy::one_for_all);
  auto d = plan.on_exit(1, true, all_running, t0);
  CHECK(d.stop == std::vector<std::size_t>{2, 0});
  CHECK(d.start == std::vector<std::size_t>{0, 1, 2});
}

TEST_CASE("rest_for_one restarts the failed child and those started after it", "[supervision]") {
  auto plan = plan_of(restart_strategy::rest_for_one);
  auto d = plan.on_exit(1, true, all_running, t0);
  CHECK(d.stop == std::vector<std::size_t>{2});
  CHECK(d.start == std::vector<std::size_t>{1, 2});
  auto first = plan.on_exit(0, true, all_running, t0);
  CHECK(first.start == std::vector<std::size_t>{0, 1, 2});
}

TEST_CASE("a transient child is restarted only after a crash", "[supervision]") {
  auto plan = plan_of(restart_strategy::one_for_one, 3, 5000ms, restart_type::transient);
  CHECK(plan.on_exit(0, false, all_running, t0).start.empty());
  CHECK(plan.on_exit(0, true, all_running, t0).start == std::vector<std::size_t>{0});
}

TEST_CASE("a temporary child is never restarted", "[supervision]") {
  auto plan = plan_of(restart_strategy::one_for_one, 3, 5000ms, restart_type::temporary);
  auto d = plan.on_exit(0, true, all_running, t0);
  CHECK(d.start.empty());
  CHECK_FALSE(d.give_up);
}

TEST_CASE("exceeding the restart intensity gives up and stops every child in reverse order", "[supervision]") {
  auto plan = plan_of(restart_strategy::one_for_one, 2, 1000ms);
  CHECK_FALSE(plan.on_exit(0, true, all_running, t0).give_up);
  CHECK_FALSE(plan.on_exit(0, true, all_running, t0 + 100ms).give_up);
  auto d = plan.on_exit(0, true, all_running, t0 + 200ms);
  CHECK(d.give_up);
  CHECK(d.stop == std::vector<std::size_t>{2, 1, 0});
}

TEST_CASE("restarts older than the period leave the sliding window", "[supervision]") {
  auto plan = plan_of(restart_strategy::one_for_one, 2, 1000ms);
  CHECK_FALSE(plan.on_exit(0, true, all_running, t0).give_up);
  CHECK_FALSE(plan.on_exit(0, true, all_running, t0 + 600ms).give_up);
  CHECK_FALSE(plan.on_exit(0, true, all_running, t0 + 1100ms).give_up);  // the first one expired
  CHECK(plan.on_exit(0, true, all_running, t0 + 1200ms).give_up);
}

TEST_CASE("backoff doubles from min up to max, with jitter within the random factor", "[supervision]") {
  supervision_policy p;
  p.intensity = {1000, 60000ms};
  p.backoff = {10ms, 200ms, 0.5, 30000ms};
  supervision_plan plan(p, three());
  plan.started(0, t0);
  std::vector<std::int64_t> delays;
  for (int i = 0; i < 7; ++i) delays.push_back(plan.on_exit(0, true, all_running, t0 + 1ms * i).delay.count());
  std::vector<std::int64_t> base{10, 20, 40, 80, 160, 200, 200};
  for (std::size_t i = 0; i < base.size(); ++i) {
    CHECK(delays[i] >= base[i]);
    CHECK(delays[i] <= static_cast<std::int64_t>(base[i] * 1.5));
  }
}

TEST_CASE("backoff resets after the child ran quietly for reset_after", "[supervision]") {
  supervision_policy p;
  p.intensity = {1000, 60000ms};
  p.backoff = {10ms, 1000ms, 0.0, 500ms};
  supervision_plan plan(p, three());
  plan.started(0, t0);
  CHECK(plan.on_exit(0, true, all_running, t0 + 1ms).delay == 10ms);
  CHECK(plan.on_exit(0, true, all_running, t0 + 2ms).delay == 20ms);
  plan.started(0, t0 + 10ms);
  CHECK(plan.on_exit(0, true, all_running, t0 + 1000ms).delay == 10ms);
}

TEST_CASE("a child spec is validated whole, with specific reasons", "[supervision]") {
  supervision_policy p;
  CHECK(validate(p, three()).ok());
  auto dup = validate(p, {{"a"}, {"a"}});
  REQUIRE_FALSE(dup.ok());
  CHECK(dup.error().code == "duplicate_child_id");
  CHECK(validate(p, {{""}}).error().code == "invalid_child_id");
  p.strategy = restart_strategy::simple_one_for_one;
  CHECK(validate(p, three()).error().code == "invalid_strategy");
  p.strategy = restart_strategy::one_for_one;
  p.intensity.period = 0ms;
  CHECK(validate(p, three()).error().code == "invalid_intensity");
  p.intensity.period = 1000ms;
  p.backoff = {100ms, 10ms, 0.1, 1000ms};
  CHECK(validate(p, three()).error().code == "invalid_backoff");
}

TEST_CASE("strategy and restart type names round-trip", "[supervision]") {
  CHECK(parse_restart_strategy("rest_for_one") == restart_strategy::rest_for_one);
  CHECK_FALSE(parse_restart_strategy("one_for_some").has_value());
  CHECK(parse_restart_type("transient") == restart_type::transient);
  CHECK(to_string(restart_type::temporary) == "temporary");
}
