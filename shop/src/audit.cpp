#include "cohort/shop/audit.hpp"

#include <thread>

#include "cohort/actors/method_context.hpp"
#include "cohort/shop/shop.hpp"

namespace cohort::shop {

namespace {

call_options keyed(const std::string& key) {
  call_options o;
  o.key = key;
  o.timeout = std::chrono::milliseconds(5000);
  return o;
}

/// Retries transient failures a few times: the audit may run right after a crash drill.
template <class R, class A>
result<R> ask(client& c, const std::string& service, const std::string& method, const A& args, const std::string& key) {
  result<R> r = error_info{errc::unavailable, "not asked"};
  for (int attempt = 0; attempt < 20; ++attempt) {
    r = c.call_as<R>(service, method, args, keyed(key));
    if (r || !r.error().transient()) return r;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return r;
}

}  // namespace

std::string failure_kind(const std::string& reason) {
  if (reason.rfind("payment declined", 0) == 0) return "payment declined";
  if (reason.rfind("out of stock", 0) == 0) return "out of stock";
  return "other";
}

audit_report audit_shop(client& c, const std::vector<std::string>& order_ids,
                        const std::map<std::string, std::int64_t>& initial_stock, std::chrono::milliseconds settle) {
  audit_report rep;
  auto violation = [&](std::string v) { rep.violations.push_back(std::move(v)); };
  std::map<std::string, std::int64_t> sold;                 // sku -> quantity in completed orders
  std::map<std::string, std::map<std::string, std::string>> by_customer;  // customer -> order -> status

  for (const auto& id : order_ids) {
    auto o = ask<order_view>(c, "orders", "get", no_args{}, id);
    if (!o) {
      if (o.error().code != "unknown_order") violation("order " + id + ": " + o.error().code + ": " + o.error().message);
      continue;  // unknown_order: its checkout never created it
    }
    rep.orders++;
    auto p = ask<payment_view>(c, "payments", "get", no_args{}, id);
    if (!p) {
      violation("payment of " + id + ": " + p.error().code + ": " + p.error().message);
      continue;
    }
    if (p->captures > 1) violation("order " + id + " was charged " + std::to_string(p->captures) + " times");
    rep.captured_cents += p->captured_cents;
    by_customer[o->customer][id] = o->status;
    if (o->status == "completed") {
      rep.completed++;
      rep.completed_cents += o->total_cents;
      for (const auto& l : o->lines) sold[l.sku] += l.qty;
      if (p->status != "captured" || p->captured_cents != o->total_cents || p->captures != 1)
        violation("completed order " + id + " has payment " + p->status + " of " + format_money(p->captured_cents) +
                  " (total " + format_money(o->total_cents) + ")");
    } else if (o->status == "failed") {
      rep.failed++;
      rep.failure_reasons[failure_kind(o->reason)]++;
      if (p->captured_cents != 0 || p->status == "captured")
        violation("failed order " + id + " holds money: payment " + p->status);
    } else {
      rep.unfinished++;
      violation("order " + id + " did not end: " + o->status + " (" + o->reason + ")");
    }
  }
  if (rep.captured_cents != rep.completed_cents)
    violation("money: captured " + format_money(rep.captured_cents) + " but completed orders total " +
              format_money(rep.completed_cents));

  // Each order is in its customer's history once (the saga's first step),
  // in its pages of older orders or its newest part; no history holds an
  // order twice, and no page is missing or empty.
  for (const auto& [customer, orders] : by_customer) {
    auto h = ask<order_history>(c, "orders", "history", no_args{}, "customer/" + customer);
    if (!h) {
      violation("history of " + customer + ": " + h.error().code + ": " + h.error().message);
      continue;
    }
    std::vector<std::string> ids;
    for (std::uint32_t page = 0; page < h->pages; ++page) {
      auto p = ask<order_history>(c, "orders", "history", no_args{}, history_page_key(page, customer));
      if (!p)
        violation("history of " + customer + ", page " + std::to_string(page) + ": " + p.error().code + ": " +
                  p.error().message);
      else if (p->order_ids.empty())
        violation("history of " + customer + ": page " + std::to_string(page) + " is empty");
      else
        ids.insert(ids.end(), p->order_ids.begin(), p->order_ids.end());
    }
    ids.insert(ids.end(), h->order_ids.begin(), h->order_ids.end());
    std::map<std::string, int> times;
    for (const auto& id : ids)
      if (++times[id] == 2) violation("history of " + customer + " holds order " + id + " twice");
    for (const auto& [id, status] : orders)
      if (times[id] == 0) violation("order " + id + " (" + status + ") is not in " + customer + "'s history");
  }

  for (const auto& [sku, initial] : initial_stock) {
    auto s = ask<stock_view>(c, "inventory", "get", no_args{}, sku);
    if (!s) {
      violation("stock of " + sku + ": " + s.error().code + ": " + s.error().message);
      continue;
    }
    rep.stock.push_back(*s);
    if (s->available < 0) violation(sku + ": negative stock " + std::to_string(s->available));
    if (s->reserved != 0 && rep.unfinished == 0) violation(sku + ": " + std::to_string(s->reserved) + " still reserved");
    if (s->available + s->reserved + s->committed != initial)
      violation(sku + ": available " + std::to_string(s->available) + " + reserved " + std::to_string(s->reserved) +
                " + committed " + std::to_string(s->committed) + " != initial " + std::to_string(initial));
    if (s->committed != sold[sku])
      violation(sku + ": committed " + std::to_string(s->committed) + " but completed orders bought " +
                std::to_string(sold[sku]));
  }

  // Events are delivered asynchronously: wait (bounded) until they have all landed.
  auto until = std::chrono::steady_clock::now() + settle;
  std::vector<std::string> problems;
  do {
    problems.clear();
    rep.placed_notifications = rep.failed_notifications = 0;
    for (const auto& [customer, orders] : by_customer) {
      auto inbox = ask<inbox_view>(c, "notifications", "list", no_args{}, customer);
      if (!inbox) {
        problems.push_back("notifications of " + customer + ": " + inbox.error().message);
        continue;
      }
      std::map<std::string, std::pair<int, int>> seen;  // order -> (placed, failed)
      for (const auto& n : inbox->sent) {
        auto& s = seen[n.order_id];
        (n.kind == "order_placed" ? s.first : s.second)++;
        (n.kind == "order_placed" ? rep.placed_notifications : rep.failed_notifications)++;
      }
      for (const auto& [id, status] : orders) {
        auto s = seen[id];
        auto want = status == "completed" ? std::make_pair(1, 0) : status == "failed" ? std::make_pair(0, 1) : s;
        if (s != want)
          problems.push_back("order " + id + " (" + status + ") announced " + std::to_string(s.first) +
                             "x placed, " + std::to_string(s.second) + "x failed");
      }
    }
    if (problems.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  } while (std::chrono::steady_clock::now() < until);
  for (auto& p : problems) violation(std::move(p));
  return rep;
}

}  // namespace cohort::shop
