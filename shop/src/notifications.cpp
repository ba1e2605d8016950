// notifications: consumes the orders' events and records, per customer, the
// message it would send. The handlers append blindly: de-duplication of
// redelivered events is the runtime's (each delivery carries the event id as
// idempotency key), and the shop's tests check that it holds.
#include "services.hpp"

namespace cohort::shop::detail {

namespace {

struct inbox_state {
  std::vector<notification> sent;
  COHORT_FIELDS(sent);
};

using ctx_t = entity_context<inbox_state>;

}  // namespace

service_definition make_notifications() {
  return entity_service<inbox_state>("notifications")
      .on_event("orders", "order_placed", "on_order_placed",
                [](ctx_t& ctx, const order_placed& e) {
                  std::size_t items = 0;
                  for (const auto& l : e.lines) items += static_cast<std::size_t>(l.qty);
                  ctx.state().sent.push_back({"order_placed", e.order_id,
                                              "Dear " + e.customer + ", order " + e.order_id + " is confirmed: " +
                                                  std::to_string(items) + " item(s), " + format_money(e.total_cents)});
                  return no_args{};
                })
      .on_event("orders", "order_failed", "on_order_failed",
                [](ctx_t& ctx, const order_failed& e) {
                  ctx.state().sent.push_back({"order_failed", e.order_id,
                                              "Dear " + e.customer + ", order " + e.order_id +
                                                  " could not be completed: " + e.reason});
                  return no_args{};
                })
      .query("list", [](ctx_t& ctx, const no_args&) { return inbox_view{ctx.key(), ctx.state().sent}; })
      .build();
}

}  // namespace cohort::shop::detail
