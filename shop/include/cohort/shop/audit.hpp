// The shop's invariants, checked from outside through the services' queries:
// what the demo's summary table shows and the invariant tests assert.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "cohort/shop/messages.hpp"
#include "cohort/transport/client.hpp"

namespace cohort::shop {

struct audit_report {
  std::size_t orders = 0, completed = 0, failed = 0, unfinished = 0;
  std::map<std::string, std::size_t> failure_reasons;  ///< "payment declined", "out of stock", ...
  std::int64_t completed_cents = 0;  ///< sum of completed orders' totals
  std::int64_t captured_cents = 0;   ///< sum of money held by payments of these orders
  std::size_t placed_notifications = 0, failed_notifications = 0;
  std::vector<stock_view> stock;
  std::vector<std::string> violations;  ///< empty when every invariant holds
  [[nodiscard]] bool ok() const { return violations.empty(); }
};

/// Checks, for `order_ids` (all the orders placed against this shop) and the
/// SKUs in `initial_stock`:
///  - every order ended (completed or failed);
///  - stock: never negative, nothing left reserved, available + reserved +
///    committed equals the initial stock, committed equals what completed
///    orders bought;
///  - payments: every completed order captured exactly its total exactly once;
///    no failed order holds money; captured money equals completed totals;
///  - history: each order in its customer's history exactly once;
///  - notifications: each completed order announced exactly once, each failed
///    order exactly once (waits up to `settle` for deliveries in flight).
[[nodiscard]] audit_report audit_shop(client& c, const std::vector<std::string>& order_ids,
                                      const std::map<std::string, std::int64_t>& initial_stock,
                                      std::chrono::milliseconds settle = std::chrono::milliseconds(10000));

/// The kind of a failed order's reason: "payment declined", "out of stock", or "other".
[[nodiscard]] std::string failure_kind(const std::string& reason);

}  // namespace cohort::shop
