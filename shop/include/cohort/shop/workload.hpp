// A checkout workload: many customers filling carts and checking out at once
// over one client connection, then waiting until every order's saga has ended.
// Used by the demo's failure drill, the invariant tests and the benchmark.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "cohort/shop/messages.hpp"
#include "cohort/transport/client.hpp"

namespace cohort::shop {

struct workload_options {
  std::size_t orders = 100;
  std::size_t concurrency = 16;  ///< checkouts in flight at once
  std::uint64_t seed = 1;        ///< fixes carts, quantities and cards
  std::string prefix = "w";      ///< ids: <prefix>-o-<n>, <prefix>-cart-<n>, <prefix>-cust-<n>
  std::size_t customers = 8;
  double declined_share = 0.1;   ///< orders paid with the declined card
  std::string declined_card = "4000-0000-0000-0002";
  std::vector<product> products;  ///< what carts are filled from
  std::int64_t max_qty = 2;       ///< per line
  /// Bound on the whole run, including waiting for sagas to end.
  std::chrono::milliseconds time_limit{60000};
  /// Called about every `tick_every` while the run is going (e.g. to crash actors).
  std::function<void(const std::vector<std::string>& orders_in_flight)> on_tick;
  std::chrono::milliseconds tick_every{5};
};

struct workload_result {
  std::vector<std::string> order_ids;  ///< every order checked out (final or not)
  std::vector<std::string> customers;
  std::size_t completed = 0;
  std::size_t failed = 0;
  std::size_t unfinished = 0;  ///< not final when the time limit hit
  std::size_t retried_calls = 0;  ///< calls that failed transiently and were sent again
  double seconds = 0;            ///< from the first call until every saga ended
};

/// Runs the workload against the node (or gateway) `c` is connected to.
[[nodiscard]] workload_result run_checkouts(client& c, const workload_options& opts);

}  // namespace cohort::shop
