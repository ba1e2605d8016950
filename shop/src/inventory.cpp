// inventory: one entity per SKU. A reservation is kept per order, so reserve,
// release and commit are idempotent by state (a retried step finds its own
// reservation) and stock can never go negative.
#include <numeric>

#include "services.hpp"

namespace cohort::shop::detail {

namespace {

struct stock_state {
  bool stocked = false;
  std::int64_t initial = 0;
  std::int64_t available = 0;
  std::int64_t committed = 0;
  std::map<std::string, std::int64_t> reserved;  ///< order id -> quantity
  COHORT_FIELDS(stocked, initial, available, committed, reserved);
};

using ctx_t = entity_context<stock_state>;
using query_t = query_context<stock_state>;  // a query reads the state only

template <class Ctx>  // ctx_t or query_t
stock_view view(Ctx& ctx) {
  const auto& s = ctx.state();
  std::int64_t reserved = 0;
  for (const auto& [order, qty] : s.reserved) reserved += qty;
  return {ctx.key(), s.initial, s.available, reserved, s.committed};
}

void check_quantity(std::int64_t qty, bool zero_ok) {
  if (qty < 0 || (!zero_ok && qty == 0))
    throw service_error("invalid_quantity", "quantity must be " + std::string(zero_ok ? "0 or more" : "positive"));
}

}  // namespace

service_definition make_inventory() {
  return entity_service<stock_state>("inventory")
      // Sets the initial stock of a SKU that has none yet; later calls change nothing.
      .method("init",
              [](ctx_t& ctx, const quantity_args& a) {
                check_quantity(a.qty, true);
                auto& s = ctx.state();
                if (!s.stocked) {
                  s.stocked = true;
                  s.initial = s.available = a.qty;
                }
                return view(ctx);
              },
              true)
      .method("restock",
              [](ctx_t& ctx, const quantity_args& a) {
                check_quantity(a.qty, false);
                auto& s = ctx.state();
                s.stocked = true;
                s.initial += a.qty;
                s.available += a.qty;
                return view(ctx);
              })
      .method("reserve",
              [](ctx_t& ctx, const reservation_args& a) {
                auto& s = ctx.state();
                if (!s.stocked) throw service_error("unknown_sku", "no stock record for '" + ctx.key() + "'");
                if (a.order_id.empty()) throw service_error("invalid_reservation", "order_id is required");
                check_quantity(a.qty, false);
                if (s.reserved.count(a.order_id)) return view(ctx);  // a retry of this order's reservation
                if (s.available < a.qty)
                  throw service_error("out_of_stock", ctx.key() + ": " + std::to_string(a.qty) + " requested, " +
                                                          std::to_string(s.available) + " available");
                s.available -= a.qty;
                s.reserved[a.order_id] = a.qty;
                return view(ctx);
              },
              true)
      .method("release",
              [](ctx_t& ctx, const reservation_args& a) {
                auto& s = ctx.state();
                if (auto it = s.reserved.find(a.order_id); it != s.reserved.end()) {
                  s.available += it->second;
                  s.reserved.erase(it);
                }
                return view(ctx);
              },
              true)
      .method("commit",
              [](ctx_t& ctx, const reservation_args& a) {
                auto& s = ctx.state();
                if (auto it = s.reserved.find(a.order_id); it != s.reserved.end()) {
                  s.committed += it->second;
                  s.reserved.erase(it);
                }
                return view(ctx);
              },
              true)
      .query("get", [](query_t& ctx, const no_args&) { return view(ctx); })
      .build();
}

}  // namespace cohort::shop::detail
