// The tally services, tested in-process with the harness Cohort ships:
// a real node on loopback, real clients, and a reminders' clock the test moves.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include <cohort/testing/harness.hpp>

#include "tally/services.hpp"

using namespace std::chrono_literals;

namespace {

cohort::call_options keyed(const std::string& key) {
  cohort::call_options o;
  o.key = key;
  return o;
}

}  // namespace

TEST_CASE("words counts the words of a text") {
  cohort::testing::harness h(tally::all_services());
  auto c = h.connect();
  auto r = c->call_as<tally::word_count>("words", "count", tally::text{"to be or not to be"});
  REQUIRE(r.ok());
  CHECK(r->words == 6);
}

TEST_CASE("each key is its own tally") {
  cohort::testing::harness h(tally::all_services());
  auto c = h.connect();
  REQUIRE(c->call_as<tally::count>("tally", "add", tally::add_args{3, 0}, keyed("apples")).ok());
  auto r = c->call_as<tally::count>("tally", "add", tally::add_args{4, 0}, keyed("apples"));
  REQUIRE(r.ok());
  CHECK(r->value == 7);
  auto pears = c->call_as<tally::count>("tally", "get", cohort::no_args{}, keyed("pears"));
  REQUIRE(pears.ok());
  CHECK(pears->value == 0);
}

TEST_CASE("a tally expires by its durable reminder when the test moves the clock") {
  cohort::testing::harness h(tally::all_services());
  auto c = h.connect();
  REQUIRE(c->call_as<tally::count>("tally", "add", tally::add_args{5, 60000}, keyed("milk")).ok());
  h.advance(30s);  // not due yet
  auto before = c->call_as<tally::count>("tally", "get", cohort::no_args{}, keyed("milk"));
  REQUIRE(before.ok());
  CHECK(before->value == 5);
  h.advance(31s);
  CHECK(cohort::testing::harness::eventually([&] {
    auto now = c->call_as<tally::count>("tally", "get", cohort::no_args{}, keyed("milk"));
    return now.ok() && now->expired && now->value == 0;
  }));
}

TEST_CASE("an unknown method is a clear error with a stable code") {
  cohort::testing::harness h(tally::all_services());
  auto c = h.connect();
  auto r = c->call("words", "shout", cohort::pack(tally::text{"x"}));
  REQUIRE(r.error);
  CHECK(r.error->is(cohort::errc::unknown_method));
}
