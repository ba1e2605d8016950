// The demo (`make demo`): the whole shop embedded in one node, a scripted
// client session over real tcp loopback printed as a transcript, a failure
// drill that crashes the payments actors in the middle of checkouts, and a
// summary of the invariants. Exits 0 only when every step behaved as the
// transcript says and every invariant holds.
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <random>
#include <sstream>
#include <unistd.h>

#include "cohort/runtime/node.hpp"
#include "cohort/shop/audit.hpp"
#include "cohort/shop/seed.hpp"
#include "cohort/shop/shop.hpp"
#include "cohort/shop/shop_config.hpp"
#include "cohort/shop/workload.hpp"
#include "cohort/transport/client.hpp"
#include "cohort/transport/json_bridge.hpp"

namespace cohort {

namespace {

using namespace cohort::shop;

struct transcript {
  client& c;
  int failures = 0;

  static void section(const std::string& title) { std::cout << "\n== " << title << "\n"; }
  static void say(const std::string& line) { std::cout << "   " << line << "\n"; }

  /// Calls SERVICE.METHOD with JSON arguments, prints the call and its reply;
  /// `expect` is "ok" or an error code. Returns the reply.
  reply step(const std::string& service, const std::string& method, const std::string& json,
             const std::string& key, const std::string& expect, bool print_reply = true) {
    std::cout << "\n > " << service << "." << method << " " << json << (key.empty() ? "" : "   (key " + key + ")")
              << "\n";
    call_options opts;
    opts.key = key;
    opts.timeout = std::chrono::milliseconds(10000);
    auto r = c.call(service, method, *json_to_msgpack(json), opts);
    if (r.ok() && print_reply) std::cout << "   <- " << msgpack_to_json(r.payload).value() << "\n";
    if (!r.ok()) std::cout << "   <- error " << r.error->code << ": " << r.error->message << "\n";
    check(r.ok() ? "ok" : r.error->code, expect);
    return r;
  }

  template <class R>
  R get(const std::string& service, const std::string& method, const std::string& key) {
    call_options opts;
    opts.key = key;
    auto r = c.call_as<R>(service, method, no_args{}, opts);
    if (!r) {
      say("!! " + service + "." + method + " failed: " + r.error().message);
      ++failures;
      return R{};
    }
    return *r;
  }

  void check(const std::string& got, const std::string& expect) {
    if (got == expect) return;
    std::cout << "   !! expected " << expect << ", got " << got << "\n";
    ++failures;
  }

  /// Checks out `order` and waits (bounded) until its saga has ended.
  order_view checkout(const std::string& order, const std::string& customer, const std::string& cart,
                      const std::string& card) {
    std::ostringstream args;
    args << R"({"customer":")" << customer << R"(","cart_id":")" << cart << R"(","card":")" << card << R"("})";
    auto r = step("orders", "checkout", args.str(), order, "ok", false);
    auto v = r.as<order_view>();
    for (int i = 0; i < 200 && v && !is_final(v->status); ++i) {
      usleep(20000);
      v = get_order(order);
    }
    if (!v) return {};
    std::cout << "   <- order " << v->order_id << ": " << v->status << ", total " << format_money(v->total_cents)
              << (v->reason.empty() ? "" : "\n      reason: " + v->reason) << "\n";
    return *v;
  }

  result<order_view> get_order(const std::string& order) {
    call_options opts;
    opts.key = order;
    return c.call_as<order_view>("orders", "get", no_args{}, opts);
  }

  void show_stock(const std::string& sku) {
    auto s = get<stock_view>("inventory", "get", sku);
    say("stock of " + sku + ": available " + std::to_string(s.available) + ", reserved " + std::to_string(s.reserved) +
        ", sold " + std::to_string(s.committed) + " (of " + std::to_string(s.initial) + ")");
  }

  payment_view show_payment(const std::string& order) {
    auto p = get<payment_view>("payments", "get", order);
    say("payment of " + order + ": " + p.status + ", captured " + format_money(p.captured_cents) +
        (p.reason.empty() ? "" : " (" + p.reason + ")"));
    return p;
  }

  /// Prints the customer's notifications once `count` have arrived (delivery is asynchronous).
  void show_notifications(const std::string& customer, std::size_t count) {
    inbox_view inbox;
    for (int i = 0; i < 200; ++i) {
      inbox = get<inbox_view>("notifications", "list", customer);
      if (inbox.sent.size() >= count) break;
      usleep(20000);
    }
    for (const auto& n : inbox.sent) say("notification -> " + n.text);
    if (inbox.sent.size() != count) {
      say("!! expected " + std::to_string(count) + " notification(s) for " + customer);
      ++failures;
    }
  }
};

std::string row(const std::string& what, const std::string& value, bool ok) {
  std::ostringstream out;
  out << "   | " << std::left << std::setw(44) << what << " | " << std::setw(40) << value << " | "
      << (ok ? "ok  " : "FAIL") << " |\n";
  return out.str();
}

}  // namespace

int run_demo() {
  auto data_dir = std::filesystem::temp_directory_path() / ("cohort-demo-" + std::to_string(::getpid()));
  auto cfg = shop_node_config();
  cfg.listen = {"tcp://127.0.0.1:*"};
  cfg.admin = "tcp://127.0.0.1:*";
  cfg.http.listen.clear();
  cfg.data_dir = data_dir.string();
  cfg.allow_fault_injection = true;  // the failure drill crashes actors on purpose
  auto n = node::start(cfg, shop_services());
  if (!n) {
    std::cerr << "demo: cannot start the node: " << n.error().message << "\n";
    return 2;
  }
  auto& node = **n;
  const auto endpoint = node.endpoints().front();
  std::cout << "Cohort shop demo\n"
            << "One node runs six services: catalog, inventory, cart, payments, orders and notifications.\n"
            << "Each is its own supervision tree of actors with its own RocksDB store (under " << data_dir.string()
            << ").\n"
            << "This session is a client on " << endpoint << ": every call below is a msgpack request over ZeroMQ.\n";

  int failures = 0;
  audit_report audit;
  workload_result drill;
  std::uint64_t crashes = 0, payments_restarts_before = 0;
  {
    client c(endpoint);
    transcript t{c};
    if (auto seeded = seed_shop(c); !seeded) {
      std::cerr << "demo: seeding failed: " << seeded.error().message << "\n";
      return 1;
    }
    std::map<std::string, std::int64_t> initial;
    for (const auto& p : sample_products()) initial[p.sku] = sample_initial_stock(p.sku);

    t.section("1. Browse: the catalog service holds the products");
    auto list = t.step("catalog", "list", "null", "", "ok", false).as<product_list>();
    for (const auto& p : list ? list->products : std::vector<product>{})
      t.say(p.sku + "  " + p.name + "  " + format_money(p.price_cents));
    t.step("catalog", "search", R"({"query":"mug"})", "", "ok");
    t.step("catalog", "get", R"({"sku":"lamp-999"})", "", "unknown_sku");

    t.section("2. Alice fills her cart (one cart entity actor; prices come from the catalog)");
    t.step("cart", "add", R"({"sku":"mug-001","qty":2})", "cart-alice", "ok", false);
    t.step("cart", "add", R"({"sku":"book-003","qty":1})", "cart-alice", "ok", false);
    t.step("cart", "view", "null", "cart-alice", "ok");

    t.section("3. Alice checks out: reserve stock, authorize payment, confirm, commit stock, capture, publish OrderPlaced");
    auto alice = t.checkout("alice-1", "alice", "cart-alice", "4242-4242-4242-4242");
    t.check(alice.status, "completed");
    t.show_stock("mug-001");
    t.check(t.show_payment("alice-1").status, "captured");
    t.step("cart", "view", "null", "cart-alice", "ok");
    t.say("the orders service published OrderPlaced in the same write as the order's completion (outbox);");
    t.say("notifications consumed it:");
    t.show_notifications("alice", 1);
    t.step("orders", "history", "null", "customer/alice", "ok");

    t.section("4. Bob pays with a card the bank declines: the saga compensates");
    t.step("cart", "add", R"({"sku":"keyb-004","qty":1})", "cart-bob", "ok", false);
    auto bob = t.checkout("bob-1", "bob", "cart-bob", "4000-0000-0000-0002");
    t.check(bob.status, "failed");
    t.say("compensation: the keyboard reserved for bob-1 went back to stock, nothing was captured");
    t.show_stock("keyb-004");
    t.check(t.show_payment("bob-1").status, "declined");
    t.show_notifications("bob", 1);

    t.section("5. Carol wants 25 standing desks (20 in stock): her other line is reserved, then released");
    t.step("cart", "add", R"({"sku":"stick-006","qty":3})", "cart-carol", "ok", false);
    t.step("cart", "add", R"({"sku":"desk-005","qty":25})", "cart-carol", "ok", false);
    auto carol = t.checkout("carol-1", "carol", "cart-carol", "4242-4242-4242-4242");
    t.check(carol.status, "failed");
    t.show_stock("stick-006");
    t.show_stock("desk-005");
    t.check(t.show_payment("carol-1").status, "voided");

    t.section("6. Failure drill: 200 checkouts, 16 at a time, while payments actors are crashed");
    t.say("every 10 ms an operator command crashes the payments entity of an order in flight");
    t.say("(cohortctl crash payments/entity/<order>). Callers get a clear error at once, the");
    t.say("supervisor re-activates the actor from its store, and the orders saga retries the step");
    t.say("with the same idempotency key, or, resumed by the runtime, picks up where it stopped.");
    for (const auto& s : node.services())
      if (s.name == "payments") payments_restarts_before = s.restarts;
    workload_options w;
    w.prefix = "drill";
    w.orders = 200;
    w.concurrency = 16;
    w.customers = 12;
    w.seed = 7;
    w.products = sample_products();
    w.time_limit = std::chrono::milliseconds(60000);
    std::mt19937 rng(7);
    auto last_crash = std::chrono::steady_clock::now();
    w.on_tick = [&](const std::vector<std::string>& in_flight) {
      if (in_flight.empty() || std::chrono::steady_clock::now() - last_crash < std::chrono::milliseconds(10)) return;
      last_crash = std::chrono::steady_clock::now();
      const auto& victim = in_flight[rng() % in_flight.size()];
      if (node.command_child("payments", "entity/" + victim, "crash")) ++crashes;
    };
    drill = run_checkouts(c, w);
    std::uint64_t restarts = 0;
    for (const auto& s : node.services())
      if (s.name == "payments") restarts = s.restarts - payments_restarts_before;
    t.say(std::to_string(crashes) + " crashes injected; the payments supervisor restarted " +
          std::to_string(restarts) + " actor(s)");
    t.say("all " + std::to_string(drill.order_ids.size()) + " sagas ended in " +
          std::to_string(drill.seconds).substr(0, 4) + " s: " + std::to_string(drill.completed) + " completed, " +
          std::to_string(drill.failed) + " failed, " + std::to_string(drill.unfinished) + " unfinished; " +
          std::to_string(drill.retried_calls) + " client calls retried");
    if (drill.unfinished != 0 || crashes == 0) ++t.failures;

    t.section("7. Audit: the invariants, checked through the services' own queries");
    std::vector<std::string> orders = {"alice-1", "bob-1", "carol-1"};
    orders.insert(orders.end(), drill.order_ids.begin(), drill.order_ids.end());
    audit = audit_shop(c, orders, initial);
    failures = t.failures;

    std::int64_t initial_total = 0, available = 0, reserved = 0, sold = 0;
    for (const auto& s : audit.stock) {
      initial_total += s.initial;
      available += s.available;
      reserved += s.reserved;
      sold += s.committed;
    }
    std::string reasons;
    for (const auto& [kind, count] : audit.failure_reasons)
      reasons += (reasons.empty() ? "" : ", ") + std::to_string(count) + " " + kind;
    std::uint64_t payments_restarts = 0, resumes = 0, delivered = 0, redelivered = 0;
    for (const auto& s : node.services()) {
      if (s.name == "payments") payments_restarts = s.restarts;
      if (s.name == "orders") {
        resumes = s.resumes;
        delivered = s.events_delivered;
        redelivered = s.event_redeliveries;
      }
    }
    const std::string rule = "   +" + std::string(46, '-') + "+" + std::string(42, '-') + "+------+\n";
    std::cout << "\n" << rule;
    std::cout << row("orders placed", std::to_string(audit.orders), audit.orders == orders.size());
    std::cout << row("  completed", std::to_string(audit.completed), true);
    std::cout << row("  compensated (failed)", std::to_string(audit.failed) + (reasons.empty() ? "" : ": " + reasons),
                     true);
    std::cout << row("  unfinished", std::to_string(audit.unfinished), audit.unfinished == 0);
    std::cout << row("stock: available + reserved + sold = initial",
                     std::to_string(available) + "+" + std::to_string(reserved) + "+" + std::to_string(sold) + "=" +
                         std::to_string(initial_total),
                     available + reserved + sold == initial_total && reserved == 0);
    std::cout << row("money: captured = completed order totals",
                     format_money(audit.captured_cents) + " = " + format_money(audit.completed_cents),
                     audit.captured_cents == audit.completed_cents);
    std::cout << row("notifications: placed / failed, once each",
                     std::to_string(audit.placed_notifications) + " / " + std::to_string(audit.failed_notifications),
                     audit.placed_notifications == audit.completed && audit.failed_notifications == audit.failed);
    std::cout << row("payments actors crashed / restarts seen",
                     std::to_string(crashes) + " / " + std::to_string(payments_restarts), crashes > 0);
    std::cout << row("saga resume calls made by the runtime", std::to_string(resumes), true);
    std::cout << row("events delivered (redeliveries)",
                     std::to_string(delivered) + " (" + std::to_string(redelivered) + ")", true);
    std::cout << rule;
    for (const auto& v : audit.violations) std::cout << "   !! " << v << "\n";
  }

  std::cout << "\nSupervision trees:\n";
  for (const auto& s : node.services())
    std::cout << "   " << std::left << std::setw(14) << s.name << s.state << ", " << s.kind << ", restarts "
              << s.restarts << ", activations " << s.activations << "\n";
  node.stop();
  std::error_code ec;
  std::filesystem::remove_all(data_dir, ec);
  const bool ok = failures == 0 && audit.ok();
  std::cout << "\n"
            << (ok ? "Demo complete: every step behaved as expected and every invariant holds."
                   : "Demo FAILED: " + std::to_string(failures) + " step(s) misbehaved, " +
                         std::to_string(audit.violations.size()) + " invariant violation(s).")
            << "\n";
  return ok ? 0 : 1;
}

}  // namespace cohort
