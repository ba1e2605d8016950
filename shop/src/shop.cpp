#include "cohort/shop/shop.hpp"

#include <cstdio>

#include "services.hpp"

namespace cohort::shop {

std::vector<service_definition> shop_services(const shop_options& opts) {
  std::vector<service_definition> out;
  out.push_back(detail::make_catalog());
  out.push_back(detail::make_inventory());
  out.push_back(detail::make_cart());
  out.push_back(detail::make_payments(opts));
  out.push_back(detail::make_orders(opts));
  out.push_back(detail::make_notifications());
  return out;
}

std::vector<std::string> shop_service_names() {
  return {"catalog", "inventory", "cart", "payments", "orders", "notifications"};
}

std::vector<product> sample_products() {
  return {
      {"mug-001", "Cohort mug", "Stoneware mug, 350 ml, with the supervision tree printed on it", 1299},
      {"tee-002", "Actor model t-shirt", "Organic cotton; 'let it crash' on the back", 2499},
      {"book-003", "Designing for failure", "A field guide to supervision, sagas and idempotency", 3999},
      {"keyb-004", "Mechanical keyboard", "Tenkeyless, brown switches", 8999},
      {"desk-005", "Standing desk", "Electric, 160 x 80 cm", 64900},
      {"stick-006", "Sticker pack", "Twelve stickers: ZeroMQ, msgpack, RocksDB and friends", 499},
  };
}

std::int64_t sample_initial_stock(const std::string& sku) {
  if (sku == "desk-005") return 20;
  if (sku == "keyb-004") return 50;
  return 500;
}

std::string format_money(std::int64_t cents) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%s%lld.%02lld", cents < 0 ? "-" : "", static_cast<long long>(std::llabs(cents) / 100),
                static_cast<long long>(std::llabs(cents) % 100));
  return buf;
}

}  // namespace cohort::shop
