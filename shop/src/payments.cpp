// payments: one entity per order, so one order can never hold two payments.
// Every operation is idempotent by state: a second authorize returns the
// first's outcome, a second capture takes nothing, and money is captured at
// most once (`captures` never exceeds 1).
#include "services.hpp"

namespace cohort::shop::detail {

namespace {

struct payment_state {
  std::string status = "none";
  std::int64_t amount_cents = 0;
  std::int64_t captured_cents = 0;
  std::uint32_t captures = 0;
  std::string card;
  std::string customer;
  std::string reason;
  COHORT_FIELDS(status, amount_cents, captured_cents, captures, card, customer, reason);
};

using ctx_t = entity_context<payment_state>;
using query_t = query_context<payment_state>;  // a query reads the state only

template <class Ctx>  // ctx_t or query_t
payment_view view(Ctx& ctx) {
  const auto& s = ctx.state();
  return {ctx.key(), s.status, s.amount_cents, s.captured_cents, s.captures, s.reason};
}

}  // namespace

service_definition make_payments(const shop_options& opts) {
  return entity_service<payment_state>("payments")
      .method("authorize",
              [opts](ctx_t& ctx, const authorize_args& a) {
                auto& s = ctx.state();
                if (s.status != "none") return view(ctx);  // decided before (or voided first): same answer
                if (a.amount_cents <= 0) throw service_error("invalid_amount", "amount must be positive");
                s.amount_cents = a.amount_cents;
                s.card = a.card;
                s.customer = a.customer;
                if (a.card == opts.declined_card) {
                  s.status = "declined";
                  s.reason = "card " + a.card + " declined by issuer";
                } else if (a.amount_cents > opts.decline_over_cents) {
                  s.status = "declined";
                  s.reason = "amount " + format_money(a.amount_cents) + " over the limit of " +
                             format_money(opts.decline_over_cents);
                } else {
                  s.status = "authorized";
                }
                return view(ctx);
              },
              true)
      .method("capture",
              [](ctx_t& ctx, const no_args&) {
                auto& s = ctx.state();
                if (s.status == "captured") return view(ctx);
                if (s.status != "authorized")
                  throw service_error("not_authorized", "payment of " + ctx.key() + " is " + s.status);
                s.status = "captured";
                s.captured_cents = s.amount_cents;
                s.captures++;
                return view(ctx);
              },
              true)
      // Cancels: an authorization is voided, a capture refunded; voiding a
      // payment never authorized blocks a late authorize of the same order.
      .method("void",
              [](ctx_t& ctx, const no_args&) {
                auto& s = ctx.state();
                if (s.status == "none" || s.status == "authorized") {
                  s.status = "voided";
                } else if (s.status == "captured") {
                  s.status = "refunded";
                  s.captured_cents = 0;
                }
                return view(ctx);
              },
              true)
      .method("refund",
              [](ctx_t& ctx, const no_args&) {
                auto& s = ctx.state();
                if (s.status == "refunded") return view(ctx);
                if (s.status != "captured") throw service_error("not_captured", "payment of " + ctx.key() + " is " + s.status);
                s.status = "refunded";
                s.captured_cents = 0;
                return view(ctx);
              },
              true)
      .query("get", [](query_t& ctx, const no_args&) { return view(ctx); })
      .build();
}

}  // namespace cohort::shop::detail
