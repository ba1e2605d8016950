// Randomized invariants (fixed seeds, bounded): many concurrent checkouts
// while actors of every shop service crash; afterwards the audit must hold.
#include <random>

#include <catch2/catch.hpp>

#include "cohort/shop/audit.hpp"
#include "cohort/shop/workload.hpp"
#include "shop_node.hpp"
#include "test_node.hpp"

using namespace cohort;
using namespace cohort::shop;
using namespace cohort::test;

TEST_CASE("invariants hold under concurrent checkouts while actors crash", "[shop][invariants]") {
  auto seed = GENERATE(1u, 2u, 3u);
  INFO("seed " << seed);
  temp_dir dir;
  // Pages of three orders: each customer's history moves pages out of its
  // newest part several times while its entities crash.
  shop_options opts;
  opts.history_page = 3;
  auto n = start_shop(shop_test_config(dir.path(), opts), opts);
  client c(n->endpoints().front());
  REQUIRE(seed_shop(c));

  workload_options w;
  w.prefix = "s" + std::to_string(seed);
  w.orders = 150;
  w.concurrency = 16;
  w.customers = 10;
  w.seed = seed;
  w.declined_share = 0.15;
  w.products = sample_products();
  w.max_qty = 3;
  w.time_limit = std::chrono::milliseconds(60000);
  w.tick_every = std::chrono::milliseconds(1);
  std::mt19937 rng(seed);
  std::size_t crashes = 0;
  // Each tick crashes the actor of a random service that an order in flight uses.
  w.on_tick = [&](const std::vector<std::string>& in_flight) {
    if (in_flight.empty()) return;
    const auto& order = in_flight[rng() % in_flight.size()];
    static const char* services[] = {"payments", "orders", "inventory", "cart", "notifications"};
    std::string service = services[rng() % 5];
    std::string key = order;
    if (service == "inventory") key = sample_products()[rng() % sample_products().size()].sku;
    if (service == "cart") key = w.prefix + "-cart-" + order.substr(order.rfind('-') + 1);
    if (service == "notifications") key = w.prefix + "-cust-" + std::to_string(rng() % w.customers);
    if (service == "orders" && rng() % 3 == 0) key = "customer/" + w.prefix + "-cust-" + std::to_string(rng() % w.customers);
    if (n->command_child(service, "entity/" + key, "crash")) ++crashes;
  };
  auto result = run_checkouts(c, w);
  INFO(result.completed << " completed, " << result.failed << " failed, " << result.unfinished << " unfinished, "
                        << crashes << " crashes");
  CHECK(crashes > 20);
  CHECK(result.unfinished == 0);
  CHECK(result.completed > 0);
  CHECK(result.failed > 0);  // declined cards at least

  auto report = audit_shop(c, result.order_ids, sample_stock());
  for (const auto& v : report.violations) UNSCOPED_INFO(v);
  CHECK(report.ok());
  CHECK(report.orders == result.order_ids.size());
  CHECK(report.completed + report.failed == report.orders);
  // The audit read the histories through their pages: there were some.
  auto history = c.call_as<order_history>("orders", "history", no_args{}, key("customer/" + w.prefix + "-cust-0"));
  REQUIRE(history);
  CHECK(history->pages >= 2);
  CHECK(history->order_ids.size() < 2 * opts.history_page + 16);  // its newest part stays bounded
  for (const auto& s : n->services()) CHECK(s.state == "up");
}
