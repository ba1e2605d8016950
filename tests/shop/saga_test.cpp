// The checkout saga: its happy path, its compensations, and how it survives
// crashes and restarts (progress persisted, resumed by the runtime).
#include <set>
#include <thread>

#include <catch2/catch.hpp>

#include "cohort/shop/audit.hpp"
#include "shop_node.hpp"
#include "test_node.hpp"

using namespace cohort;
using namespace cohort::shop;
using namespace cohort::test;
using namespace std::chrono_literals;

namespace {

void fill(client& c, const std::string& cart, const std::vector<std::pair<std::string, std::int64_t>>& lines) {
  for (const auto& [sku, qty] : lines) REQUIRE(c.call_as<cart_view>("cart", "add", cart_add_args{sku, qty}, key(cart)));
}

result<order_view> checkout(client& c, const std::string& order, const std::string& customer, const std::string& cart,
                            const std::string& card = "4242") {
  return c.call_as<order_view>("orders", "checkout", checkout_args{customer, cart, card}, key(order));
}

/// Waits (bounded) until the order's saga has ended; its last view.
order_view wait_final(client& c, const std::string& order, std::chrono::milliseconds limit = 10s) {
  order_view last;
  eventually(
      [&] {
        auto v = c.call_as<order_view>("orders", "get", no_args{}, key(order));
        if (v) last = *v;
        return v && is_final(v->status);
      },
      limit);
  return last;
}

stock_view stock(client& c, const std::string& sku) {
  return *c.call_as<stock_view>("inventory", "get", no_args{}, key(sku));
}

payment_view payment(client& c, const std::string& order) {
  return *c.call_as<payment_view>("payments", "get", no_args{}, key(order));
}

std::vector<notification> inbox(client& c, const std::string& customer) {
  return c.call_as<inbox_view>("notifications", "list", no_args{}, key(customer))->sent;
}

}  // namespace

TEST_CASE("a checkout reserves, charges once, commits, clears the cart and announces the order", "[shop][saga]") {
  temp_dir dir;
  auto n = start_shop(shop_test_config(dir.path()));
  client c(n->endpoints().front());
  REQUIRE(seed_shop(c));
  fill(c, "cart-ada", {{"mug-001", 2}, {"book-003", 1}});
  auto o = checkout(c, "ada-1", "ada", "cart-ada");
  REQUIRE(o);
  CHECK(o->status == "completed");
  CHECK(o->total_cents == 2 * 1299 + 3999);
  CHECK(stock(c, "mug-001").committed == 2);
  CHECK(stock(c, "mug-001").available == 498);
  CHECK(stock(c, "book-003").committed == 1);
  auto p = payment(c, "ada-1");
  CHECK(p.status == "captured");
  CHECK(p.captured_cents == o->total_cents);
  CHECK(p.captures == 1);
  CHECK(c.call_as<cart_view>("cart", "view", no_args{}, key("cart-ada"))->lines.empty());
  CHECK(c.call_as<order_history>("orders", "history", no_args{}, key("customer/ada"))->order_ids ==
        std::vector<std::string>{"ada-1"});
  REQUIRE(eventually([&] { return inbox(c, "ada").size() == 1; }));
  CHECK(inbox(c, "ada")[0].kind == "order_placed");

  SECTION("checking out the same order again changes nothing") {
    auto again = checkout(c, "ada-1", "ada", "cart-ada");
    REQUIRE(again);
    CHECK(again->status == "completed");
    CHECK(payment(c, "ada-1").captures == 1);
    CHECK(stock(c, "mug-001").committed == 2);
    std::this_thread::sleep_for(100ms);
    CHECK(inbox(c, "ada").size() == 1);
  }
  SECTION("an empty cart is refused without creating an order") {
    auto empty = checkout(c, "ada-2", "ada", "cart-ada");
    REQUIRE_FALSE(empty);
    CHECK(empty.error().code == "empty_cart");
    CHECK(c.call_as<order_view>("orders", "get", no_args{}, key("ada-2")).error().code == "unknown_order");
  }
  SECTION("bad checkout arguments are refused") {
    CHECK(checkout(c, "ada-3", "", "cart-ada").error().code == "invalid_order");
    CHECK(checkout(c, "customer/ada", "ada", "cart-ada").error().code == "invalid_order");
  }
}

TEST_CASE("a customer's history holds each order once, oldest first, across restarts, and no client writes it",
          "[shop][history]") {
  temp_dir dir;
  auto cfg = shop_test_config(dir.path());
  auto history = [](client& c, const std::string& customer) {
    auto h = c.call_as<order_history>("orders", "history", no_args{}, key("customer/" + customer));
    REQUIRE(h);
    return h->order_ids;
  };
  const std::vector<std::string> want{"hy-1", "hy-2", "hy-3"};
  {
    auto n = start_shop(cfg);
    client c(n->endpoints().front());
    REQUIRE(seed_shop(c));
    for (const auto& order : want) {
      fill(c, "cart-hy", {{"mug-001", 1}});
      REQUIRE(checkout(c, order, "hy", "cart-hy"));
    }
    CHECK(wait_final(c, "hy-3").status == "completed");
    CHECK(history(c, "hy") == want);
    REQUIRE(checkout(c, "hy-2", "hy", "cart-hy"));  // a checkout again: the order is not recorded twice
    CHECK(history(c, "hy") == want);
    CHECK(history(c, "nobody").empty());
  }
  // Restarted as a production node: without fault injection, keyless
  // loopback clients may not call internal methods (record is the saga's).
  cfg.allow_fault_injection = false;
  auto n = start_shop(cfg);
  client c(n->endpoints().front());
  CHECK(history(c, "hy") == want);
  auto forged = c.call("orders", "record", pack(history_args{"not-an-order"}), key("customer/hy"));
  REQUIRE_FALSE(forged.ok());
  CHECK(forged.error->code == "forbidden");
  CHECK(history(c, "hy") == want);
}

TEST_CASE("a long history moves its older orders to pages: the newest part stays bounded, nothing is lost or doubled",
          "[shop][history]") {
  temp_dir dir;
  shop_options opts;
  opts.history_page = 2;
  auto cfg = shop_test_config(dir.path(), opts);
  // The whole history: its pages, oldest first, then its newest part.
  auto whole = [](client& c, const std::string& customer) {
    auto head = c.call_as<order_history>("orders", "history", no_args{}, key("customer/" + customer));
    REQUIRE(head);
    std::vector<std::string> ids;
    for (std::uint32_t page = 0; page < head->pages; ++page) {
      auto p = c.call_as<order_history>("orders", "history", no_args{}, key(history_page_key(page, customer)));
      REQUIRE(p);
      CHECK(p->customer == customer);
      CHECK(p->order_ids.size() == 2);  // a page holds history_page orders
      ids.insert(ids.end(), p->order_ids.begin(), p->order_ids.end());
    }
    ids.insert(ids.end(), head->order_ids.begin(), head->order_ids.end());
    return std::make_pair(*head, ids);
  };
  std::vector<std::string> want;
  {
    auto n = start_shop(cfg, opts);
    client c(n->endpoints().front());
    REQUIRE(seed_shop(c));
    for (int i = 1; i <= 9; ++i) {
      want.push_back("pg-" + std::to_string(i));
      fill(c, "cart-pg", {{"mug-001", 1}});
      auto o = checkout(c, want.back(), "pg", "cart-pg");
      REQUIRE(o);
      CHECK(wait_final(c, want.back()).status == "completed");
      auto [head, ids] = whole(c, "pg");
      CHECK(ids == want);
      CHECK(head.order_ids.size() < 4);  // fewer than two pages: the rest moved out
    }
    auto [head, ids] = whole(c, "pg");
    CHECK(head.pages == 3);
    CHECK(head.order_ids == std::vector<std::string>{"pg-7", "pg-8", "pg-9"});
    REQUIRE(checkout(c, "pg-1", "pg", "cart-pg"));  // an archived order checked out again: not recorded twice
    CHECK(whole(c, "pg").second == want);
  }
  cfg.allow_fault_injection = false;  // production: keyless clients may not call internal methods
  auto n = start_shop(cfg, opts);
  client c(n->endpoints().front());
  CHECK(whole(c, "pg").second == want);
  auto forged_page = c.call("orders", "archive", pack(history_page_args{{"not-an-order"}}), key(history_page_key(0, "pg")));
  REQUIRE_FALSE(forged_page.ok());
  CHECK(forged_page.error->code == "forbidden");
  auto forged_trim = c.call("orders", "trim", pack(history_trim_args{3, "pg-7"}), key("customer/pg"));
  REQUIRE_FALSE(forged_trim.ok());
  CHECK(forged_trim.error->code == "forbidden");
  CHECK(whole(c, "pg").second == want);
  // Neither kind of history key is an order id.
  CHECK(checkout(c, history_page_key(0, "pg"), "pg", "cart-pg").error().code == "invalid_order");
}

TEST_CASE("a declined payment compensates: stock released, nothing captured, failure announced", "[shop][saga]") {
  temp_dir dir;
  auto n = start_shop(shop_test_config(dir.path()));
  client c(n->endpoints().front());
  REQUIRE(seed_shop(c));
  fill(c, "cart-bo", {{"keyb-004", 2}});
  auto o = checkout(c, "bo-1", "bo", "cart-bo", "4000-0000-0000-0002");
  REQUIRE(o);
  CHECK(o->status == "failed");
  CHECK(failure_kind(o->reason) == "payment declined");
  auto s = stock(c, "keyb-004");
  CHECK(s.available == 50);
  CHECK(s.reserved == 0);
  CHECK(s.committed == 0);
  CHECK(payment(c, "bo-1").captured_cents == 0);
  CHECK(c.call_as<cart_view>("cart", "view", no_args{}, key("cart-bo"))->lines.size() == 1);  // cart kept
  REQUIRE(eventually([&] { return inbox(c, "bo").size() == 1; }));
  CHECK(inbox(c, "bo")[0].kind == "order_failed");

  // Over the amount limit: declined as well.
  fill(c, "cart-big", {{"desk-005", 2}});
  auto big = checkout(c, "bo-2", "bo", "cart-big");
  CHECK(big->status == "failed");
  CHECK(big->reason.find("over the limit") != std::string::npos);
  CHECK(stock(c, "desk-005").available == 20);
}

TEST_CASE("out of stock on a later line releases the lines reserved before it", "[shop][saga]") {
  temp_dir dir;
  auto n = start_shop(shop_test_config(dir.path()));
  client c(n->endpoints().front());
  REQUIRE(seed_shop(c));
  fill(c, "cart-cy", {{"stick-006", 3}, {"desk-005", 25}});
  auto o = checkout(c, "cy-1", "cy", "cart-cy");
  REQUIRE(o);
  CHECK(o->status == "failed");
  CHECK(failure_kind(o->reason) == "out of stock");
  CHECK(stock(c, "stick-006").available == 500);
  CHECK(stock(c, "stick-006").reserved == 0);
  CHECK(stock(c, "desk-005").available == 20);
  CHECK(payment(c, "cy-1").status == "voided");
}

TEST_CASE("a saga waiting for a service that is down resumes when it is back, even after its actor crashed",
          "[shop][saga][resume]") {
  temp_dir dir;
  auto n = start_shop(shop_test_config(dir.path()));
  client c(n->endpoints().front());
  REQUIRE(seed_shop(c));
  fill(c, "cart-di", {{"tee-002", 1}});
  REQUIRE(n->stop_service("payments"));
  auto o = checkout(c, "di-1", "di", "cart-di");
  REQUIRE(o);
  CHECK(o->status == "authorizing");  // stopped at the step it cannot take, progress stored
  CHECK(o->reason.find("unavailable") != std::string::npos);
  CHECK(stock(c, "tee-002").reserved == 1);
  // The orders actor crashes: its memory is gone, its progress is in the store.
  REQUIRE(n->command_child("orders", "entity/di-1", "crash"));
  std::this_thread::sleep_for(100ms);
  CHECK(wait_final(c, "di-1", 200ms).status == "authorizing");  // still waiting, retried by the runtime
  CHECK(eventually([&] { return status_of(*n, "orders").pending_entities == 1; }));  // one saga in progress
  REQUIRE(n->start_service("payments"));
  auto done = wait_final(c, "di-1");
  CHECK(done.status == "completed");
  CHECK(payment(c, "di-1").captures == 1);
  CHECK(stock(c, "tee-002").committed == 1);
  CHECK(status_of(*n, "orders").resumes > 0);
  CHECK(eventually([&] { return status_of(*n, "orders").pending_entities == 0; }));
}

TEST_CASE("a saga resumed after an outage and a crash continues the trace of the checkout that began it",
          "[shop][saga][resume][trace]") {
  temp_dir dir;
  auto n = start_shop(shop_test_config(dir.path()));
  client c(n->endpoints().front());
  REQUIRE(seed_shop(c));
  fill(c, "cart-tr", {{"tee-002", 1}});
  REQUIRE(n->stop_service("payments"));
  const std::string trace = "7d3e9a1c5b2f48e6a0c4d8b1e2f3a4b5";
  call_options o = key("tr-1");
  o.traceparent = "00-" + trace + "-a1b2c3d4e5f60718-01";
  auto first = c.call_as<order_view>("orders", "checkout", checkout_args{"tr", "cart-tr", "4242"}, o);
  REQUIRE(first);
  CHECK(first->status == "authorizing");
  REQUIRE(n->command_child("orders", "entity/tr-1", "crash"));  // its memory (and its request) gone
  REQUIRE(n->start_service("payments"));
  CHECK(wait_final(c, "tr-1").status == "completed");

  std::vector<observability::span> spans;
  auto has = [&](const std::string& name, observability::span_kind kind, const std::string& code) {
    for (const auto& s : spans)
      if (s.name == name && s.kind == kind && s.code == code) return &s;
    return static_cast<const observability::span*>(nullptr);
  };
  REQUIRE(eventually([&] {
    spans = n->spans(trace);
    return has("payments.capture", observability::span_kind::server, "ok") != nullptr;
  }));
  const auto* checkout_span = has("orders.checkout", observability::span_kind::server, "ok");
  const auto* resume_span = has("orders.resume", observability::span_kind::server, "ok");
  REQUIRE(checkout_span);
  REQUIRE(resume_span);
  CHECK(resume_span->parent_span_id == checkout_span->span_id);  // the pending marker kept the checkout's span
  CHECK(has("payments.authorize", observability::span_kind::client, "unavailable"));  // the failed attempt, while down
  CHECK(has("payments.authorize", observability::span_kind::server, "ok"));           // the one after the resume
}

TEST_CASE("a checkout whose payment step is stuck past payment_deadline is cancelled by a durable reminder",
          "[shop][saga][reminders]") {
  temp_dir dir;
  shop_options opts;
  opts.payment_deadline = 300ms;
  opts.max_step_wait = 60s;  // retries alone would wait a minute
  auto n = start_shop(shop_test_config(dir.path(), opts), opts);
  client c(n->endpoints().front());
  REQUIRE(seed_shop(c));
  fill(c, "cart-pd", {{"mug-001", 2}});
  REQUIRE(n->stop_service("payments"));
  auto o = checkout(c, "pd-1", "pd", "cart-pd");
  REQUIRE(o);
  CHECK(o->status == "authorizing");
  order_view seen;
  REQUIRE(eventually(
      [&] {
        auto v = c.call_as<order_view>("orders", "get", no_args{}, key("pd-1"));
        if (v) seen = *v;
        return v && v->status == "compensating";
      },
      10s));
  CHECK(seen.reason.find("payment not authorized within 300 ms") != std::string::npos);
  REQUIRE(eventually([&] { return stock(c, "mug-001").reserved == 0; }));  // released at once
  REQUIRE(n->start_service("payments"));  // voiding the payment waits for payments
  auto done = wait_final(c, "pd-1");
  CHECK(done.status == "failed");
  CHECK(payment(c, "pd-1").status == "voided");
}

TEST_CASE("before confirmation a saga gives up once a step has failed for max_step_wait and compensates",
          "[shop][saga][resume]") {
  temp_dir dir;
  shop_options opts;
  opts.max_step_wait = 1500ms;
  auto n = start_shop(shop_test_config(dir.path(), opts), opts);
  client c(n->endpoints().front());
  REQUIRE(seed_shop(c));
  fill(c, "cart-ed", {{"mug-001", 4}});
  REQUIRE(n->stop_service("payments"));
  REQUIRE(checkout(c, "ed-1", "ed", "cart-ed"));
  // Stock goes back at once; voiding the payment waits for payments to return
  // (a compensation is never abandoned).
  REQUIRE(eventually([&] { return stock(c, "mug-001").available == 500; }));
  CHECK(stock(c, "mug-001").reserved == 0);
  auto waiting = c.call_as<order_view>("orders", "get", no_args{}, key("ed-1"));
  CHECK(waiting->status == "compensating");
  CHECK(waiting->reason.find("authorize failed for") != std::string::npos);
  REQUIRE(n->start_service("payments"));
  auto o = wait_final(c, "ed-1");
  CHECK(o.status == "failed");
  CHECK(o.reason.find("authorize failed for") != std::string::npos);
  CHECK(o.reason.find("waiting on") == std::string::npos);
  // Voided before any authorize got through: nothing can authorize it later.
  CHECK(payment(c, "ed-1").status == "voided");
}

TEST_CASE("an outage shorter than max_step_wait delays orders and voids none, however often they retry",
          "[shop][saga][resume]") {
  temp_dir dir;
  shop_options opts;
  opts.max_step_wait = 5s;
  auto n = start_shop(shop_test_config(dir.path(), opts), opts);  // resume sweeps every 50 ms
  client c(n->endpoints().front());
  REQUIRE(seed_shop(c));
  fill(c, "cart-ou", {{"tee-002", 1}});
  REQUIRE(n->stop_service("payments"));  // every authorize fails in well under a millisecond
  auto o = checkout(c, "ou-1", "ou", "cart-ou");
  REQUIRE(o);
  std::this_thread::sleep_for(2s);  // 40 resume sweeps: an attempt count of 20 would have given up
  auto waiting = c.call_as<order_view>("orders", "get", no_args{}, key("ou-1"));
  REQUIRE(waiting.ok());
  CHECK(waiting->status == "authorizing");
  CHECK(waiting->reason.find("waiting on authorize") != std::string::npos);
  REQUIRE(n->start_service("payments"));
  auto done = wait_final(c, "ou-1");
  CHECK(done.status == "completed");
  CHECK(payment(c, "ou-1").captures == 1);
}

TEST_CASE("an unfinished saga is resumed when the node starts again on its data", "[shop][saga][resume]") {
  temp_dir dir;
  auto cfg = shop_test_config(dir.path());
  {
    auto n = start_shop(cfg);
    client c(n->endpoints().front());
    REQUIRE(seed_shop(c));
    fill(c, "cart-fa", {{"book-003", 2}});
    REQUIRE(n->stop_service("payments"));
    auto o = checkout(c, "fa-1", "fa", "cart-fa");
    REQUIRE(o);
    REQUIRE(o->status == "authorizing");
    n->stop();
  }
  auto n = start_shop(cfg);
  client c(n->endpoints().front());
  auto o = wait_final(c, "fa-1");
  CHECK(o.status == "completed");
  CHECK(payment(c, "fa-1").captures == 1);
  CHECK(stock(c, "book-003").committed == 2);
  REQUIRE(eventually([&] { return inbox(c, "fa").size() == 1; }));
}

TEST_CASE("events wait in the outbox while their subscriber is down, and arrive once it is back", "[shop][events]") {
  temp_dir dir;
  auto n = start_shop(shop_test_config(dir.path()));
  client c(n->endpoints().front());
  REQUIRE(seed_shop(c));
  REQUIRE(n->stop_service("notifications"));
  for (int i = 0; i < 3; ++i) {
    auto cart = "cart-gi-" + std::to_string(i);
    fill(c, cart, {{"stick-006", 1}});
    REQUIRE(checkout(c, "gi-" + std::to_string(i), "gi", cart)->status == "completed");
  }
  std::this_thread::sleep_for(300ms);
  auto orders = status_of(*n, "orders");
  CHECK(orders.events_published == 3);
  CHECK(orders.events_delivered == 0);
  CHECK(orders.event_redeliveries > 0);  // tried, refused (service down), kept
  CHECK(orders.outbox_oldest_age_s >= 0.2);  // the first event waits since its checkout, 300 ms ago at least
  CHECK(orders.outbox_oldest_age_s < 60);
  REQUIRE(n->start_service("notifications"));
  REQUIRE(eventually([&] { return status_of(*n, "orders").events_delivered == 3; }, 10s));
  CHECK(eventually([&] { return status_of(*n, "orders").outbox_oldest_age_s == 0; }));
  auto sent = inbox(c, "gi");
  REQUIRE(sent.size() == 3);
  std::set<std::string> ids;
  for (const auto& s : sent) ids.insert(s.order_id);
  CHECK(ids == std::set<std::string>{"gi-0", "gi-1", "gi-2"});
}

TEST_CASE("a redelivered event (same event id) is not applied twice", "[shop][events]") {
  temp_dir dir;
  auto n = start_shop(shop_test_config(dir.path()));
  client c(n->endpoints().front());
  order_placed e{"hx-1", "hx", 100, {}};
  call_options o = key("hx");
  o.idempotency_key = "orders/0000000000000001-1";  // what the relay sends: the event id
  for (int i = 0; i < 3; ++i) REQUIRE(c.call("notifications", "on_order_placed", pack(e), o).ok());
  CHECK(inbox(c, "hx").size() == 1);
  o.idempotency_key = "orders/0000000000000001-2";  // another event
  REQUIRE(c.call("notifications", "on_order_placed", pack(e), o).ok());
  CHECK(inbox(c, "hx").size() == 2);
}

TEST_CASE("the outbox relay is a supervised child: it shows in the tree", "[shop][events]") {
  temp_dir dir;
  auto n = start_shop(shop_test_config(dir.path()));
  auto orders = status_of(*n, "orders");
  bool relay = false;
  for (const auto& ch : orders.children) relay |= ch.id == "outbox" && ch.state == "running";
  CHECK(relay);
  auto payments = status_of(*n, "payments");  // publishes nothing: no relay
  for (const auto& ch : payments.children) CHECK(ch.id != "outbox");
}
