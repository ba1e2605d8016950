// The shop's node configuration: the runtime's defaults hosting every shop
// service, with a restart intensity fit for entity services (header-only: the
// shop library itself does not depend on the runtime; programs that host the
// shop link both).
#pragma once

#include "cohort/runtime/node_config.hpp"
#include "cohort/shop/shop.hpp"

namespace cohort::shop {

/// Every shop service on the default loopback ports. An entity crash affects
/// one key (one cart, one order), so a service gives up only when crashes are
/// widespread: more than 200 in one second, not the default 3 in 5 s.
inline node_config shop_node_config(const shop_options& opts = {}) {
  auto cfg = default_node_config(shop_services(opts));
  for (auto& s : cfg.services) {
    s.supervision.intensity.max_restarts = 200;
    s.supervision.intensity.period = std::chrono::milliseconds(1000);
    s.intensity_set = true;
    // Clients subscribe to orders' events (order_placed, order_failed).
    if (s.name == "orders") s.events.enabled = true;
  }
  // The embedded demo keeps every trace, so that `cohortctl trace` shows any checkout.
  cfg.trace.sample = 1.0;
  return cfg;
}

}  // namespace cohort::shop
