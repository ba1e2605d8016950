// The shop's services one by one: inventory, payments, cart and catalog.
#include <catch2/catch.hpp>

#include "shop_node.hpp"

using namespace cohort;
using namespace cohort::shop;
using namespace cohort::test;

TEST_CASE("inventory: reservations are per order and idempotent, stock never goes negative", "[shop]") {
  temp_dir dir;
  auto n = start_shop(shop_test_config(dir.path()));
  client c(n->endpoints().front());
  REQUIRE(c.call_as<stock_view>("inventory", "init", quantity_args{5}, key("sku-a")));
  // init again changes nothing
  CHECK(c.call_as<stock_view>("inventory", "init", quantity_args{99}, key("sku-a"))->available == 5);

  auto r1 = c.call_as<stock_view>("inventory", "reserve", reservation_args{"o1", 3}, key("sku-a"));
  REQUIRE(r1);
  CHECK(r1->available == 2);
  CHECK(r1->reserved == 3);
  // the same order again: its reservation, not a second one
  CHECK(c.call_as<stock_view>("inventory", "reserve", reservation_args{"o1", 3}, key("sku-a"))->available == 2);
  auto short_of = c.call_as<stock_view>("inventory", "reserve", reservation_args{"o2", 3}, key("sku-a"));
  REQUIRE_FALSE(short_of);
  CHECK(short_of.error().code == "out_of_stock");
  CHECK(c.call_as<stock_view>("inventory", "get", no_args{}, key("sku-a"))->available == 2);  // unchanged

  auto committed = c.call_as<stock_view>("inventory", "commit", reservation_args{"o1", 0}, key("sku-a"));
  REQUIRE(committed);
  CHECK(committed->committed == 3);
  CHECK(committed->reserved == 0);
  // commit and release of something not reserved change nothing
  CHECK(c.call_as<stock_view>("inventory", "commit", reservation_args{"o1", 0}, key("sku-a"))->committed == 3);
  CHECK(c.call_as<stock_view>("inventory", "release", reservation_args{"o1", 0}, key("sku-a"))->available == 2);

  REQUIRE(c.call_as<stock_view>("inventory", "reserve", reservation_args{"o3", 2}, key("sku-a")));
  auto released = c.call_as<stock_view>("inventory", "release", reservation_args{"o3", 0}, key("sku-a"));
  CHECK(released->available == 2);
  CHECK(released->available + released->reserved + released->committed == released->initial);

  // A changing method that changes nothing (a retried step) writes nothing.
  auto writes = [&] { return n->storage_stats("inventory")->committed_writes; };
  auto before = writes();
  for (int i = 0; i < 3; ++i) REQUIRE(c.call_as<stock_view>("inventory", "release", reservation_args{"o9", 0}, key("sku-a")));
  CHECK(writes() == before);
  REQUIRE(c.call_as<stock_view>("inventory", "reserve", reservation_args{"o9", 1}, key("sku-a")));
  CHECK(writes() == before + 1);
  CHECK(c.call_as<stock_view>("inventory", "reserve", reservation_args{"o4", 1}, key("nothing")).error().code ==
        "unknown_sku");
  CHECK(c.call_as<stock_view>("inventory", "reserve", reservation_args{"o4", -1}, key("sku-a")).error().code ==
        "invalid_quantity");
  CHECK(c.call_as<stock_view>("inventory", "restock", quantity_args{0}, key("sku-a")).error().code ==
        "invalid_quantity");
}

TEST_CASE("payments: decline rules, one capture per order, void and refund", "[shop]") {
  temp_dir dir;
  shop_options opts;
  opts.decline_over_cents = 10000;
  opts.declined_card = "bad-card";
  auto n = start_shop(shop_test_config(dir.path(), opts), opts);
  client c(n->endpoints().front());

  auto big = c.call_as<payment_view>("payments", "authorize", authorize_args{10001, "good", "ada"}, key("p-big"));
  REQUIRE(big);
  CHECK(big->status == "declined");
  CHECK(big->reason.find("over the limit") != std::string::npos);
  auto card = c.call_as<payment_view>("payments", "authorize", authorize_args{100, "bad-card", "ada"}, key("p-card"));
  CHECK(card->status == "declined");
  CHECK(c.call_as<payment_view>("payments", "capture", no_args{}, key("p-card")).error().code == "not_authorized");

  REQUIRE(c.call_as<payment_view>("payments", "authorize", authorize_args{2500, "good", "ada"}, key("p1"))->status ==
          "authorized");
  // a second authorize (e.g. a retry with another amount) does not change the first
  CHECK(c.call_as<payment_view>("payments", "authorize", authorize_args{9999, "good", "ada"}, key("p1"))->amount_cents ==
        2500);
  for (int i = 0; i < 3; ++i) {
    auto cap = c.call_as<payment_view>("payments", "capture", no_args{}, key("p1"));
    REQUIRE(cap);
    CHECK(cap->status == "captured");
    CHECK(cap->captures == 1);
    CHECK(cap->captured_cents == 2500);
  }
  auto refunded = c.call_as<payment_view>("payments", "refund", no_args{}, key("p1"));
  CHECK(refunded->status == "refunded");
  CHECK(refunded->captured_cents == 0);

  REQUIRE(c.call_as<payment_view>("payments", "authorize", authorize_args{700, "good", "bo"}, key("p2")));
  CHECK(c.call_as<payment_view>("payments", "void", no_args{}, key("p2"))->status == "voided");
  CHECK(c.call_as<payment_view>("payments", "capture", no_args{}, key("p2")).error().code == "not_authorized");
  // voiding first blocks a late authorize
  CHECK(c.call_as<payment_view>("payments", "void", no_args{}, key("p3"))->status == "voided");
  CHECK(c.call_as<payment_view>("payments", "authorize", authorize_args{700, "good", "bo"}, key("p3"))->status ==
        "voided");
  CHECK(c.call_as<payment_view>("payments", "authorize", authorize_args{0, "good", "bo"}, key("p4")).error().code ==
        "invalid_amount");
}

TEST_CASE("cart and catalog: prices from the catalog, unknown products refused, search", "[shop]") {
  temp_dir dir;
  auto n = start_shop(shop_test_config(dir.path()));
  client c(n->endpoints().front());
  REQUIRE(seed_shop(c));
  REQUIRE(seed_shop(c));  // seeding twice changes nothing
  auto all = c.call_as<product_list>("catalog", "list", no_args{});
  REQUIRE(all);
  CHECK(all->products.size() == sample_products().size());
  auto found = c.call_as<product_list>("catalog", "search", search_args{"KEYBOARD"});
  REQUIRE(found->products.size() == 1);
  CHECK(found->products[0].sku == "keyb-004");
  CHECK(c.call_as<product>("catalog", "get", sku_args{"nope"}).error().code == "unknown_sku");
  CHECK(c.call_as<product_list>("catalog", "upsert", product_list{{product{"", "x", "", 1}}}).error().code ==
        "invalid_product");

  REQUIRE(c.call_as<cart_view>("cart", "add", cart_add_args{"mug-001", 2}, key("c1")));
  REQUIRE(c.call_as<cart_view>("cart", "add", cart_add_args{"mug-001", 1}, key("c1")));
  auto v = c.call_as<cart_view>("cart", "add", cart_add_args{"book-003", 1}, key("c1"));
  REQUIRE(v);
  REQUIRE(v->lines.size() == 2);
  CHECK(v->lines[0].qty == 3);
  CHECK(v->total_cents == 3 * 1299 + 3999);
  CHECK(c.call_as<cart_view>("cart", "add", cart_add_args{"nope", 1}, key("c1")).error().code == "unknown_sku");
  CHECK(c.call_as<cart_view>("cart", "add", cart_add_args{"mug-001", 0}, key("c1")).error().code ==
        "invalid_quantity");
  CHECK(c.call_as<cart_view>("cart", "view", no_args{}, key("c1"))->lines.size() == 2);  // refusals changed nothing
  CHECK(c.call_as<cart_view>("cart", "remove", cart_remove_args{"mug-001", 1}, key("c1"))->lines[0].qty == 2);
  CHECK(c.call_as<cart_view>("cart", "remove", cart_remove_args{"book-003", 0}, key("c1"))->lines.size() == 1);
  CHECK(c.call_as<cart_view>("cart", "remove", cart_remove_args{"tee-002", 0}, key("c1")).error().code == "not_in_cart");
  CHECK(c.call_as<cart_view>("cart", "clear", no_args{}, key("c1"))->lines.empty());
}
