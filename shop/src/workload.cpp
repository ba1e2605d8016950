#include "cohort/shop/workload.hpp"

#include <map>
#include <random>

#include "cohort/actors/method_context.hpp"
#include "cohort/shop/shop.hpp"

namespace cohort::shop {

namespace {

using clock_type = std::chrono::steady_clock;

/// One customer's way from an empty cart to an ended order.
struct job {
  enum class phase { adding, checking_out, waiting, done };
  std::string order, cart, customer, card;
  std::vector<cart_add_args> lines;
  std::size_t next_line = 0;
  phase at = phase::adding;
  bool placed = false;  ///< the order exists (checkout answered, or get found it)
  std::string status;
};

class runner {
 public:
  runner(client& c, const workload_options& o) : c_(c), opts_(o), rng_(o.seed) {}

  workload_result run() {
    make_jobs();
    auto start = clock_type::now();
    auto limit = start + opts_.time_limit;
    auto next_tick = start;
    while (finished_ < jobs_.size() && clock_type::now() < limit) {
      while (started_ < jobs_.size() && active_ < opts_.concurrency) {
        ++active_;
        send(started_++);
      }
      auto now = clock_type::now();
      while (!timers_.empty() && timers_.begin()->first <= now) {
        auto i = timers_.begin()->second;
        timers_.erase(timers_.begin());
        send(i);
      }
      c_.poll(std::chrono::milliseconds(1));
      if (opts_.on_tick && clock_type::now() >= next_tick) {
        std::vector<std::string> in_flight;
        for (const auto& j : jobs_)
          if (j.at == job::phase::checking_out || j.at == job::phase::waiting) in_flight.push_back(j.order);
        opts_.on_tick(in_flight);
        next_tick = clock_type::now() + opts_.tick_every;
      }
    }
    c_.drain(std::chrono::milliseconds(2000));
    workload_result out;
    out.seconds = std::chrono::duration<double>(clock_type::now() - start).count();
    out.retried_calls = retried_;
    for (const auto& j : jobs_) {
      if (j.placed) out.order_ids.push_back(j.order);
      if (j.status == "completed") out.completed++;
      else if (j.status == "failed") out.failed++;
      else if (j.placed) out.unfinished++;
    }
    for (std::size_t k = 0; k < opts_.customers; ++k) out.customers.push_back(customer_name(k));
    return out;
  }

 private:
  std::string customer_name(std::size_t k) const { return opts_.prefix + "-cust-" + std::to_string(k); }

  void make_jobs() {
    std::uniform_int_distribution<std::size_t> pick(0, opts_.products.empty() ? 0 : opts_.products.size() - 1);
    std::uniform_int_distribution<std::int64_t> qty(1, std::max<std::int64_t>(1, opts_.max_qty));
    std::uniform_int_distribution<int> line_count(1, 3);
    std::bernoulli_distribution declined(opts_.declined_share);
    for (std::size_t n = 0; n < opts_.orders; ++n) {
      job j;
      j.order = opts_.prefix + "-o-" + std::to_string(n);
      j.cart = opts_.prefix + "-cart-" + std::to_string(n);
      j.customer = customer_name(n % std::max<std::size_t>(1, opts_.customers));
      j.card = declined(rng_) ? opts_.declined_card : "4242-4242-4242-4242";
      for (int l = line_count(rng_); l > 0 && !opts_.products.empty(); --l)
        j.lines.push_back({opts_.products[pick(rng_)].sku, qty(rng_)});
      jobs_.push_back(std::move(j));
    }
  }

  void later(std::size_t i, int ms) { timers_.emplace(clock_type::now() + std::chrono::milliseconds(ms), i); }

  void end(std::size_t i) {
    jobs_[i].at = job::phase::done;
    ++finished_;
    --active_;
  }

  void send(std::size_t i) {
    auto& j = jobs_[i];
    call_options o;
    o.timeout = std::chrono::milliseconds(5000);
    switch (j.at) {
      case job::phase::adding:
        if (j.next_line == j.lines.size()) {
          j.at = job::phase::checking_out;
          return send(i);
        }
        o.key = j.cart;
        c_.call_async("cart", "add", pack(j.lines[j.next_line]), o, [this, i](reply&& r) { on_added(i, std::move(r)); });
        return;
      case job::phase::checking_out:
        j.placed = true;  // from here on the order may exist
        o.key = j.order;
        c_.call_async("orders", "checkout", pack(checkout_args{j.customer, j.cart, j.card}), o,
                      [this, i](reply&& r) { on_order(i, std::move(r), true); });
        return;
      case job::phase::waiting:
        o.key = j.order;
        c_.call_async("orders", "get", pack(no_args{}), o, [this, i](reply&& r) { on_order(i, std::move(r), false); });
        return;
      case job::phase::done:
        return;
    }
  }

  void on_added(std::size_t i, reply&& r) {
    auto& j = jobs_[i];
    if (!r.ok() && r.error->transient()) {
      ++retried_;
      return later(i, 10);
    }
    ++j.next_line;  // added, or refused (e.g. unknown SKU): on with the next
    send(i);
  }

  void on_order(std::size_t i, reply&& r, bool was_checkout) {
    auto& j = jobs_[i];
    auto v = r.as<order_view>();
    if (v) {
      j.status = v->status;
      if (is_final(v->status)) return end(i);
      j.at = job::phase::waiting;  // the saga continues (or is resumed): look again soon
      return later(i, 20);
    }
    const auto& e = v.error();
    if (e.transient() || e.code == "checkout_in_progress") {
      ++retried_;
      return later(i, 10);  // the same order id again: checkout is idempotent per order
    }
    if (!was_checkout && e.code == "unknown_order") {
      j.at = job::phase::checking_out;  // its creation did not survive a crash: check out again
      return later(i, 10);
    }
    j.status = "rejected:" + e.code;  // e.g. empty_cart: no order was created
    end(i);
  }

  client& c_;
  const workload_options& opts_;
  std::mt19937_64 rng_;
  std::vector<job> jobs_;
  std::multimap<clock_type::time_point, std::size_t> timers_;
  std::size_t started_ = 0, active_ = 0, finished_ = 0, retried_ = 0;
};

}  // namespace

workload_result run_checkouts(client& c, const workload_options& opts) { return runner(c, opts).run(); }

}  // namespace cohort::shop
