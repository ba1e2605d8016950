// notifications: consumes the orders' events and records, per customer, the
// message it would send. The handlers append blindly: de-duplication of
// redelivered events is the runtime's (each delivery carries the event id as
// idempotency key), and the shop's tests check that it holds.
//
// An inbox only grows, so it is event-sourced: each message is one journal
// entry, and a snapshot every `snapshot_every` messages bounds recovery. As
// a plain entity, every message rewrote the whole inbox, and a checkout cost
// more the more its customer had bought (1.97k checkouts/s over 4000 orders,
// 1.49k over 40000, the inboxes' encoding on top of the profile).
#include "services.hpp"

namespace cohort::shop::detail {

namespace {

struct inbox_state {
  std::vector<notification> sent;
  COHORT_FIELDS(sent);
};

using ctx_t = event_context<inbox_state, notification>;

}  // namespace

service_definition make_notifications() {
  return event_sourced_service<inbox_state, notification>(
             "notifications", [](inbox_state& s, const notification& n) { s.sent.push_back(n); })
      .on_event("orders", "order_placed", "on_order_placed",
                [](ctx_t& ctx, const order_placed& e) {
                  std::size_t items = 0;
                  for (const auto& l : e.lines) items += static_cast<std::size_t>(l.qty);
                  ctx.emit({"order_placed", e.order_id,
                            "Dear " + e.customer + ", order " + e.order_id + " is confirmed: " +
                                std::to_string(items) + " item(s), " + format_money(e.total_cents)});
                  return no_args{};
                })
      .on_event("orders", "order_failed", "on_order_failed",
                [](ctx_t& ctx, const order_failed& e) {
                  ctx.emit({"order_failed", e.order_id,
                            "Dear " + e.customer + ", order " + e.order_id + " could not be completed: " + e.reason});
                  return no_args{};
                })
      .query("list", [](query_context<inbox_state>& ctx, const no_args&) { return inbox_view{ctx.key(), ctx.state().sent}; })
      .build();
}

}  // namespace cohort::shop::detail
