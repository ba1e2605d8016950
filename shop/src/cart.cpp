// cart: one entity per cart id. Lines carry the unit price read from the
// catalog when the item was added.
#include <algorithm>

#include "services.hpp"

namespace cohort::shop::detail {

namespace {

struct cart_state {
  std::vector<cart_line> lines;
  COHORT_FIELDS(lines);
};

using ctx_t = entity_context<cart_state>;
using query_t = query_context<cart_state>;  // a query reads the state only

template <class Ctx>  // ctx_t or query_t
cart_view view(Ctx& ctx) {
  cart_view v{ctx.key(), ctx.state().lines, 0};
  for (const auto& l : v.lines) v.total_cents += l.qty * l.price_cents;
  return v;
}

}  // namespace

service_definition make_cart() {
  return entity_service<cart_state>("cart")
      .method("add",
              [](ctx_t& ctx, const cart_add_args& a, responder<cart_view> done) {
                if (a.qty <= 0) throw service_error("invalid_quantity", "quantity must be positive");
                ctx.call<product>("catalog", "get", sku_args{a.sku}, [ctx, a, done](result<product> p) mutable {
                  if (!p) return done.fail(p.error());
                  auto& lines = ctx.state().lines;
                  auto it = std::find_if(lines.begin(), lines.end(), [&](const cart_line& l) { return l.sku == a.sku; });
                  if (it == lines.end())
                    lines.push_back({p->sku, p->name, a.qty, p->price_cents});
                  else
                    it->qty += a.qty;
                  done(view(ctx));
                });
              })
      .method("remove",
              [](ctx_t& ctx, const cart_remove_args& a) {
                auto& lines = ctx.state().lines;
                auto it = std::find_if(lines.begin(), lines.end(), [&](const cart_line& l) { return l.sku == a.sku; });
                if (it == lines.end()) throw service_error("not_in_cart", "'" + a.sku + "' is not in the cart");
                if (a.qty <= 0 || a.qty >= it->qty)
                  lines.erase(it);
                else
                  it->qty -= a.qty;
                return view(ctx);
              })
      .method("clear",
              [](ctx_t& ctx, const no_args&) {
                ctx.state().lines.clear();
                return view(ctx);
              },
              true)
      .query("view", [](query_t& ctx, const no_args&) { return view(ctx); })
      .build();
}

}  // namespace cohort::shop::detail
