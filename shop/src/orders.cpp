// orders: one entity per order, running the checkout saga:
//
//   reserving    reserve each line's stock                (inventory.reserve)
//   authorizing  authorize the total                      (payments.authorize)
//   confirmed    commit the stock, capture the payment,   (inventory.commit, payments.capture,
//                clear the cart                            cart.clear)
//   completed    + event order_placed
//
// and on a refusal before confirmation (out of stock, payment declined):
//
//   compensating release every line, void the payment     (inventory.release, payments.void)
//   failed       + event order_failed, with the reason
//
// Every step is idempotent (by the callee's state, plus an idempotency key per
// order and step), so the saga persists only its decisions (created,
// confirmed, compensating, and the end, with its event in the same write) and
// simply redoes the steps since the last one after a crash. A step that fails
// for a transient reason (callee crashed, down, slow) stops the saga with its
// progress stored; the runtime resumes pending orders (`resume`) at start-up
// and every `resume_every_ms`, with backoff and jitter between attempts.
// Before confirmation a step is given up once it has failed for
// `max_step_wait` (time, not attempts) and the order compensated; after it, never.
//
// The key "customer/<id>" holds that customer's order history instead: the
// saga's first step records its order there (`record`, internal, answering
// a count). It is a plain entity holding the newest orders only: once they
// are two pages (`shop_options::history_page`), the record's answer hands
// the oldest page to the saga, which writes it to "history/<n>/<id>"
// (`archive`) and takes it off (`trim`), so a checkout rewrites a bounded
// entity however many orders its customer has. (Moved to an event-sourced
// service of its own, the history wrote one event per order instead, but
// that store's fsyncs cost the shop more than the rewrite saves: bench/README.md,
// Profiles, eighteenth session.)
#include <chrono>
#include <random>

#include "services.hpp"

namespace cohort::shop::detail {

namespace {

struct order_state {
  std::string customer;
  std::string cart_id;
  std::string card;
  std::string status;  ///< empty: no such order
  std::string reason;   ///< why it failed (set when compensation is decided)
  std::string waiting;  ///< the step it retries, and why, while paused
  std::vector<order_line> lines;
  std::int64_t total_cents = 0;
  std::uint32_t reserved = 0;   ///< lines reserved (this activation; redone after a crash)
  std::uint32_t committed = 0;  ///< lines committed
  std::uint32_t released = 0;   ///< lines released
  bool recorded = false;        ///< in the customer's history
  bool captured = false;
  bool cart_cleared = false;
  bool payment_voided = false;
  std::uint32_t attempts = 0;  ///< failed attempts of the current step
  std::int64_t failing_since_ms = 0;  ///< wall clock of the current step's first failure (0: not failing)
  std::int64_t retry_at_ms = 0;       ///< not retried before this (backoff)
  std::int64_t created_ms = 0;
  /// "customer/<id>": the customer's newest order ids, after `archived_pages`
  /// pages of older ones; "history/<n>/<id>": page n's order ids.
  std::vector<std::string> history;
  std::uint32_t archived_pages = 0;
  std::uint64_t archived_orders = 0;  ///< in those pages
  COHORT_FIELDS(customer, cart_id, card, status, reason, waiting, lines, total_cents, reserved, committed, released,
                     recorded, captured, cart_cleared, payment_voided, attempts, failing_since_ms, retry_at_ms,
                     created_ms, history, archived_pages, archived_orders);

  /// Not stored: a saga invocation is driving this order in this activation.
  bool running = false;
};

using ctx_t = entity_context<order_state>;
using query_t = query_context<order_state>;  // a query reads the state only
using done_t = responder<order_view>;

constexpr auto step_timeout = std::chrono::milliseconds(2000);
const std::string customer_prefix = "customer/";

bool is_history_key(const std::string& key) {
  return key.rfind(customer_prefix, 0) == 0 || key.rfind(history_page_prefix, 0) == 0;
}

/// The customer a history key names ("customer/<id>", "history/<n>/<id>"); any other key as it is.
std::string customer_of(const std::string& key) {
  if (key.rfind(customer_prefix, 0) == 0) return key.substr(customer_prefix.size());
  if (key.rfind(history_page_prefix, 0) == 0)
    if (auto slash = key.find('/', history_page_prefix.size()); slash != std::string::npos) return key.substr(slash + 1);
  return key;
}

template <class Ctx>  // ctx_t or query_t
order_view view(Ctx& ctx) {
  const auto& s = ctx.state();
  return {ctx.key(), s.customer, s.status, s.waiting.empty() ? s.reason : s.reason + (s.reason.empty() ? "" : "; ") + s.waiting,
          s.total_cents, s.lines};
}

std::int64_t now_ms();

/// The reminder that cancels an order whose payment is not authorized in time.
const std::string payment_deadline_reminder = "payment-deadline";

bool before_confirmation(const std::string& status) { return status == "reserving" || status == "authorizing"; }

/// One run of the saga of one order, from its current state to its end or to
/// a step that cannot be done now. Lives as long as its calls are in flight.
class saga : public std::enable_shared_from_this<saga> {
 public:
  saga(ctx_t ctx, done_t done, shop_options opts) : ctx_(std::move(ctx)), done_(std::move(done)), opts_(std::move(opts)) {}

  /// Takes the next step the state calls for.
  void advance() {
    auto& s = ctx_.state();
    auto self = shared_from_this();
    if (is_final(s.status)) return finish();
    if (!s.recorded)
      return call<history_recorded>("orders", "record", history_args{ctx_.key()}, customer_prefix + s.customer, "record",
                                    [self](const history_recorded& r) {
                                      if (!r.archive.empty()) return self->archive(r);
                                      self->progress([](order_state& o) { o.recorded = true; });
                                    });
    if (s.status == "reserving") {
      if (s.reserved < s.lines.size()) {
        const auto& line = s.lines[s.reserved];
        return call<stock_view>(
            "inventory", "reserve", reservation_args{ctx_.key(), line.qty}, line.sku, "reserve/" + line.sku,
            [self](const stock_view&) { self->progress([](order_state& o) { o.reserved++; }); },
            [self, sku = line.sku](const error_info& e) {
              self->decide("compensating", e.code == "out_of_stock" ? "out of stock: " + e.message
                                                                    : "cannot reserve " + sku + ": " + e.code + ": " + e.message);
            });
      }
      // Payment must be authorized in time, whatever happens meanwhile (outages,
      // crashes, restarts): a durable reminder, written with the next write.
      ctx_.remind_in(payment_deadline_reminder, opts_.payment_deadline);
      return progress([](order_state& o) { o.status = "authorizing"; });
    }
    if (s.status == "authorizing") {
      return call<payment_view>(
          "payments", "authorize", authorize_args{s.total_cents, s.card, s.customer}, ctx_.key(), "authorize",
          [self](const payment_view& p) {
            if (p.status == "authorized") return self->decide("confirmed", "");
            self->decide("compensating", "payment " + p.status + (p.reason.empty() ? "" : ": " + p.reason));
          },
          [self](const error_info& e) { self->decide("compensating", "payment refused: " + e.code + ": " + e.message); });
    }
    if (s.status == "confirmed") {
      if (s.committed < s.lines.size()) {
        const auto& line = s.lines[s.committed];
        return call<stock_view>("inventory", "commit", reservation_args{ctx_.key(), 0}, line.sku, "commit/" + line.sku,
                                [self](const stock_view&) { self->progress([](order_state& o) { o.committed++; }); });
      }
      if (!s.captured)
        return call<payment_view>("payments", "capture", no_args{}, ctx_.key(), "capture",
                                  [self](const payment_view&) { self->progress([](order_state& o) { o.captured = true; }); });
      if (!s.cart_cleared)
        return call<cart_view>("cart", "clear", no_args{}, s.cart_id, "clear-cart",
                               [self](const cart_view&) { self->progress([](order_state& o) { o.cart_cleared = true; }); });
      ctx_.publish("order_placed", order_placed{ctx_.key(), s.customer, s.total_cents, s.lines}, s.customer);
      return decide("completed", "");
    }
    if (s.status == "compensating") {
      if (s.released < s.lines.size()) {
        const auto& line = s.lines[s.released];
        return call<stock_view>("inventory", "release", reservation_args{ctx_.key(), 0}, line.sku, "release/" + line.sku,
                                [self](const stock_view&) { self->progress([](order_state& o) { o.released++; }); });
      }
      if (!s.payment_voided)
        return call<payment_view>("payments", "void", no_args{}, ctx_.key(), "void",
                                  [self](const payment_view&) { self->progress([](order_state& o) { o.payment_voided = true; }); });
      ctx_.publish("order_failed", order_failed{ctx_.key(), s.customer, s.reason}, s.customer);
      return decide("failed", s.reason);
    }
    finish();  // not a saga state: nothing to drive
  }

 private:
  /// A step done: on to the next without a write (steps are idempotent, so
  /// after a crash they are redone from the last decision).
  template <class F>
  void progress(F change) {
    auto& s = ctx_.state();
    change(s);
    s.attempts = 0;
    s.failing_since_ms = s.retry_at_ms = 0;
    s.waiting.clear();
    advance();
  }


 public:
  /// Cancels the order (before confirmation): compensate, with `reason`.
  void cancel(std::string reason) { decide("compensating", std::move(reason)); }

 private:
  /// The record step's answer asked for a page of the customer's history
  /// to be moved out of its newest part: written to its own entity, then
  /// trimmed from the newest part. Housekeeping, not a step: if either call
  /// fails, the customer's next record asks again, so the saga goes on.
  void archive(const history_recorded& r) {
    auto self = shared_from_this();
    const auto& customer = ctx_.state().customer;
    call_options write;
    write.timeout = step_timeout;
    write.key = history_page_key(r.archive_page, customer);
    ctx_.call<history_recorded>(
        "orders", "archive", history_page_args{r.archive},
        [self, page = r.archive_page, last = r.archive.back(), head = customer_prefix + customer](result<history_recorded> w) {
          auto recorded = [self] { self->progress([](order_state& o) { o.recorded = true; }); };
          if (!w) return recorded();
          call_options trim;
          trim.timeout = step_timeout;
          trim.key = head;
          self->ctx_.call<history_recorded>("orders", "trim", history_trim_args{page, last},
                                            [recorded](result<history_recorded>) { recorded(); }, trim);
        },
        write);
  }

  /// A decision: stored before anything follows from it.
  void decide(std::string status, std::string reason) {
    auto& s = ctx_.state();
    if (s.status == "authorizing" && status != "authorizing") ctx_.cancel_reminder(payment_deadline_reminder);
    s.status = std::move(status);
    s.reason = std::move(reason);
    s.attempts = 0;
    s.failing_since_ms = s.retry_at_ms = 0;
    s.waiting.clear();
    ctx_.persist([self = shared_from_this()] { self->advance(); });
  }

  /// A step cannot be done now: stop with the progress stored (with the
  /// reply); the runtime's resume sweep takes the order up again.
  /// Retries are by time with backoff and jitter: the order waits on its
  /// dependency (its view says so) and gives up, before confirmation, only
  /// once the step has failed for longer than max_step_wait.
  void pause(const std::string& step, const error_info& e) {
    auto& s = ctx_.state();
    const auto now = now_ms();
    s.attempts++;
    if (s.failing_since_ms == 0) s.failing_since_ms = now;
    const auto failing_for = now - s.failing_since_ms;
    if (before_confirmation(s.status) && failing_for >= opts_.max_step_wait.count())
      return decide("compensating", step + " failed for " + std::to_string(failing_for) + " ms (" +
                                        std::to_string(s.attempts) + " attempts), last: " + e.code + ": " + e.message);
    auto backoff = std::min<std::int64_t>(opts_.retry_max.count(),
                                          opts_.retry_min.count() << std::min<std::uint32_t>(s.attempts - 1, 16));
    thread_local std::minstd_rand jitter{std::random_device{}()};
    backoff = backoff * (80 + static_cast<std::int64_t>(jitter() % 41)) / 100;
    s.retry_at_ms = now + backoff;
    s.waiting = "waiting on " + step + " for " + std::to_string(failing_for) + " ms, retry in " +
                std::to_string(backoff) + " ms (" + e.code + ": " + e.message + ")";
    finish();
  }

  void finish() {
    ctx_.state().running = false;
    done_(view(ctx_));
  }

  /// Calls one step. Transient failures pause the saga; a refusal (a
  /// business error) goes to `refused`, or, after confirmation, pauses too.
  template <class R, class A, class Ok>
  void call(const std::string& service, const std::string& method, const A& args, std::string key,
            const std::string& step, Ok ok, std::function<void(const error_info&)> refused = {}) {
    call_options opts;
    opts.timeout = step_timeout;
    opts.key = std::move(key);
    opts.idempotency_key = ctx_.key() + "/" + step;
    ctx_.call<R>(service, method, args,
                 [self = shared_from_this(), ok = std::move(ok), refused = std::move(refused), step](result<R> r) mutable {
                   if (r) return ok(*r);
                   if (r.error().transient() || r.error().is(errc::unknown_service) || !refused)
                     return self->pause(step, r.error());
                   refused(r.error());
                 },
                 opts);
  }

  ctx_t ctx_;
  done_t done_;
  shop_options opts_;
};

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

service_definition make_orders(const shop_options& opts) {
  return entity_service<order_state>("orders")
      .method("checkout",
              [opts](ctx_t& ctx, const checkout_args& a, done_t done) {
                auto& s = ctx.state();
                if (is_history_key(ctx.key()))
                  throw service_error("invalid_order", "order ids must not start with '" + customer_prefix + "' or '" +
                                                           history_page_prefix + "'");
                if (s.running && s.status.empty())
                  throw service_error("checkout_in_progress", "order " + ctx.key() + " is being created");
                if (!s.status.empty()) {  // a retry of a checkout: report, or take it up again
                  if (s.running || is_final(s.status)) return done(view(ctx));
                  s.running = true;
                  return std::make_shared<saga>(ctx, done, opts)->advance();
                }
                if (a.customer.empty() || a.cart_id.empty())
                  throw service_error("invalid_order", "customer and cart_id are required");
                s.running = true;
                call_options cart_opts;
                cart_opts.key = a.cart_id;
                cart_opts.timeout = step_timeout;
                ctx.call<cart_view>("cart", "view", no_args{},
                                    [ctx, a, done, opts](result<cart_view> cart) mutable {
                                      auto& s = ctx.state();
                                      s.running = false;
                                      if (!cart) return done.fail(cart.error());
                                      if (cart->lines.empty())
                                        return done.fail("empty_cart", "cart '" + a.cart_id + "' is empty");
                                      s.customer = a.customer;
                                      s.cart_id = a.cart_id;
                                      s.card = a.card;
                                      for (const auto& l : cart->lines) s.lines.push_back({l.sku, l.qty, l.price_cents});
                                      s.total_cents = cart->total_cents;
                                      s.status = "reserving";
                                      s.created_ms = now_ms();
                                      s.running = true;
                                      auto run = std::make_shared<saga>(ctx, done, opts);
                                      ctx.persist([run] { run->advance(); });
                                    },
                                    cart_opts);
              })
      .method("resume",
              [opts](ctx_t& ctx, const no_args&, done_t done) {
                auto& s = ctx.state();
                if (s.running || s.status.empty() || is_final(s.status)) return done(view(ctx));
                if (s.retry_at_ms > now_ms()) return done(view(ctx));  // backing off: not yet
                s.running = true;
                std::make_shared<saga>(ctx, done, opts)->advance();
              })
      .resumable("resume", [](const order_state& s) { return !s.status.empty() && !is_final(s.status); })
      .on_reminder([opts](ctx_t& ctx, const reminder& r, done_t done) {
        auto& s = ctx.state();
        if (r.name != payment_deadline_reminder || s.status != "authorizing") return done(view(ctx));  // moved on meanwhile
        if (s.running) {  // a step is in flight: look again shortly
          ctx.remind_in(payment_deadline_reminder, std::chrono::milliseconds(500));
          return done(view(ctx));
        }
        s.running = true;
        std::make_shared<saga>(ctx, done, opts)
            ->cancel("payment not authorized within " + std::to_string(opts.payment_deadline.count()) + " ms");
      })
      .query("get",
             [](query_t& ctx, const no_args&) {
               if (ctx.state().status.empty()) throw service_error("unknown_order", "no order '" + ctx.key() + "'");
               return view(ctx);
             })
      .method("record",
              [page = std::max<std::uint32_t>(1, opts.history_page)](ctx_t& ctx, const history_args& a) {
                if (ctx.key().rfind(customer_prefix, 0) != 0)
                  throw service_error("invalid_order", "histories live under '" + customer_prefix + "<id>'");
                auto& s = ctx.state();
                auto& h = s.history;
                // Newest last: a repeated record is most likely of a recent order.
                if (std::find(h.rbegin(), h.rend(), a.order_id) == h.rend()) h.push_back(a.order_id);
                history_recorded r{ctx.key().substr(customer_prefix.size()), a.order_id, s.archived_orders + h.size(),
                                   s.archived_pages, {}};
                if (h.size() >= 2 * std::size_t{page}) r.archive.assign(h.begin(), h.begin() + page);
                return r;
              },
              true)
      .method("archive",
              [](ctx_t& ctx, const history_page_args& a) {
                if (ctx.key().rfind(history_page_prefix, 0) != 0)
                  throw service_error("invalid_order", "pages of histories live under '" + history_page_prefix + "<n>/<id>'");
                if (a.order_ids.empty()) throw service_error("invalid_order", "a page of a history holds orders");
                ctx.state().history = a.order_ids;  // whole: a page written again is the same page
                return history_recorded{customer_of(ctx.key()), a.order_ids.back(), a.order_ids.size(), 0, {}};
              },
              true)
      .method("trim",
              [](ctx_t& ctx, const history_trim_args& a) {
                if (ctx.key().rfind(customer_prefix, 0) != 0)
                  throw service_error("invalid_order", "histories live under '" + customer_prefix + "<id>'");
                auto& s = ctx.state();
                auto& h = s.history;
                // Only the page the newest part starts with, once: a repeated
                // or stale trim finds another page number and changes nothing.
                if (a.page == s.archived_pages) {
                  auto last = std::find(h.begin(), h.end(), a.last);
                  if (last != h.end()) {
                    s.archived_orders += static_cast<std::uint64_t>(last - h.begin()) + 1;
                    s.archived_pages++;
                    h.erase(h.begin(), last + 1);
                  }
                }
                return history_recorded{customer_of(ctx.key()), a.last, s.archived_orders + h.size(), s.archived_pages, {}};
              },
              true)
      // The saga's steps: no client puts orders in a customer's history.
      .internal("record")
      .internal("archive")
      .internal("trim")
      .query("history",
             [](query_t& ctx, const no_args&) {
               return order_history{customer_of(ctx.key()), ctx.state().history, ctx.state().archived_pages};
             })
      .build();
}

}  // namespace cohort::shop::detail
