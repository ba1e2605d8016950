// One factory per shop service (one file each); shop.cpp assembles them.
#pragma once

#include "cohort/shop/shop.hpp"

namespace cohort::shop::detail {

service_definition make_catalog();
service_definition make_inventory();
service_definition make_cart();
service_definition make_payments(const shop_options& opts);
service_definition make_orders(const shop_options& opts);
service_definition make_notifications();

}  // namespace cohort::shop::detail
