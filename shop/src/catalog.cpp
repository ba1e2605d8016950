// catalog: every product in one entity (key "main"): reads are queries on one
// actor, and the product list is small enough to keep whole.
#include <algorithm>
#include <cctype>

#include "services.hpp"

namespace cohort::shop::detail {

namespace {

struct catalog_state {
  std::map<std::string, product> products;
  COHORT_FIELDS(products);
};

using ctx_t = entity_context<catalog_state>;
using query_t = query_context<catalog_state>;  // a query reads the state only

product_list all(const catalog_state& s) {
  product_list out;
  for (const auto& [sku, p] : s.products) out.products.push_back(p);
  return out;
}

void check(const product& p) {
  if (p.sku.empty() || p.name.empty()) throw service_error("invalid_product", "a product needs a sku and a name");
  if (p.price_cents < 0) throw service_error("invalid_product", "price of " + p.sku + " is negative");
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

}  // namespace

service_definition make_catalog() {
  return entity_service<catalog_state>("catalog")
      .default_key("main")
      .method("upsert",
              [](ctx_t& ctx, const product_list& a) {
                for (const auto& p : a.products) check(p);
                for (const auto& p : a.products) ctx.state().products[p.sku] = p;
                return all(ctx.state());
              },
              /*idempotent=*/true)
      // Adds the products not there yet; an operator's later changes stay.
      .method("seed",
              [](ctx_t& ctx, const product_list& a) {
                for (const auto& p : a.products) check(p);
                for (const auto& p : a.products) ctx.state().products.emplace(p.sku, p);
                return all(ctx.state());
              },
              /*idempotent=*/true)
      .query("list", [](query_t& ctx, const no_args&) { return all(ctx.state()); })
      .query("get",
             [](query_t& ctx, const sku_args& a) {
               auto it = ctx.state().products.find(a.sku);
               if (it == ctx.state().products.end()) throw service_error("unknown_sku", "no product '" + a.sku + "'");
               return it->second;
             })
      .query("search",
             [](query_t& ctx, const search_args& a) {
               product_list out;
               auto q = lower(a.query);
               for (const auto& [sku, p] : ctx.state().products)
                 if (lower(p.name).find(q) != std::string::npos) out.products.push_back(p);
               return out;
             })
      .build();
}

}  // namespace cohort::shop::detail
