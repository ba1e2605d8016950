// The saga and event families of /metrics move with the shop's events: an
// order waiting on payments is pending and resumed; events held back while
// their subscriber is down are a backlog that ages, then drains.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>
#include <thread>

#include "child_process.hpp"
#include "cohort/shop/seed.hpp"
#include "shop_node.hpp"
#include "test_node.hpp"

using namespace cohort;
using namespace cohort::shop;
using namespace cohort::test;
using namespace std::chrono_literals;

namespace {

std::string scrape(const std::string& url) {
  temp_dir tmp;
  const auto body = tmp / "body";
  child_process p({"/usr/bin/curl", "-s", "-o", body, "--max-time", "10", url});
  REQUIRE(p.wait(15s) == 0);
  std::ifstream in(body);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

double sample(const std::string& text, const std::string& series) {
  auto at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  auto start = at + 1 + series.size() + 1;
  return std::stod(text.substr(start, text.find('\n', start) - start));
}

}  // namespace

TEST_CASE("saga and event families of /metrics move with the shop's events", "[shop][metrics]") {
  temp_dir dir;
  auto cfg = shop_test_config(dir.path());
  cfg.http.listen = "127.0.0.1:0";
  auto n = start_shop(cfg);
  const auto url = n->http_endpoint() + "/metrics";
  client c(n->endpoints().front());
  REQUIRE(seed_shop(c));
  REQUIRE(c.call_as<cart_view>("cart", "add", cart_add_args{"mug-001", 1}, key("cart-m")));

  REQUIRE(n->stop_service("payments"));
  REQUIRE(n->stop_service("notifications"));
  auto o = c.call_as<order_view>("orders", "checkout", checkout_args{"m", "cart-m", "4242"}, key("m-1"));
  REQUIRE(o);
  CHECK(o->status == "authorizing");
  std::string text;
  REQUIRE(eventually([&] {
    text = scrape(url);
    return sample(text, R"(cohort_entities_pending{service="orders"})") == 1 &&
           sample(text, R"(cohort_resumes_total{service="orders"})") >= 1;
  }));
  REQUIRE(n->start_service("payments"));
  // Completed: its order_placed event waits for notifications, which is down.
  REQUIRE(eventually([&] {
    text = scrape(url);
    return sample(text, R"(cohort_events_published_total{service="orders"})") >= 1 &&
           sample(text, R"(cohort_outbox_backlog{service="orders"})") >= 1 &&
           sample(text, R"(cohort_event_redeliveries_total{service="orders"})") >= 1 &&
           sample(text, R"(cohort_outbox_oldest_age_seconds{service="orders"})") > 0;
  }, 10s));
  CHECK(sample(text, R"(cohort_entities_pending{service="orders"})") <= 1);
  REQUIRE(n->start_service("notifications"));
  REQUIRE(eventually([&] {
    text = scrape(url);
    return sample(text, R"(cohort_outbox_backlog{service="orders"})") == 0 &&
           sample(text, R"(cohort_outbox_oldest_age_seconds{service="orders"})") == 0 &&
           sample(text, R"(cohort_events_delivered_total{service="orders"})") >= 1 &&
           sample(text, R"(cohort_entities_pending{service="orders"})") == 0;
  }, 10s));
}
