#include "cohort/shop/seed.hpp"

#include "cohort/shop/shop.hpp"

namespace cohort::shop {

result<bool> seed_shop(client& c) {
  auto products = sample_products();
  if (auto r = c.call_as<product_list>("catalog", "seed", product_list{products}); !r) return r.error();
  for (const auto& p : products) {
    call_options opts;
    opts.key = p.sku;
    if (auto r = c.call_as<stock_view>("inventory", "init", quantity_args{sample_initial_stock(p.sku)}, opts); !r)
      return r.error();
  }
  return true;
}

}  // namespace cohort::shop
