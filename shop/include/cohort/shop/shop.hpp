// The shop: Cohort's reference e-commerce application. Six services, each its
// own supervision tree and its own store:
//   catalog        products (one entity, key "main": list, get, search)
//   inventory      stock per SKU (reserve, release, commit; never negative)
//   cart           one entity per cart (add, remove, view, clear)
//   payments       one entity per order (authorize, capture, void, refund;
//                  never charges twice; a decline rule for demonstrations)
//   orders         one entity per order, running the checkout saga; order
//                  history per customer under the key "customer/<id>"
//   notifications  consumes order events, records what it would send
// docs/shop.md describes the saga and the events.
#pragma once

#include <chrono>

#include <cstdint>
#include <string>
#include <vector>

#include "cohort/actors/service_definition.hpp"
#include "cohort/shop/messages.hpp"

namespace cohort::shop {

/// Payments' decline rule: what a demonstration needs to show a failure.
struct shop_options {
  /// Authorizations above this amount are declined. Default: 1000.00.
  std::int64_t decline_over_cents = 100000;
  /// Authorizations with this card are declined. Default: Stripe's test decline card.
  std::string declined_card = "4000-0000-0000-0002";
  /// Before payment is confirmed, how long a step may keep failing for a
  /// transient reason (a dependency down, partitioned, slow) before the order
  /// is compensated: time, not attempts, so an outage of a few seconds that
  /// fails attempts in a millisecond each (an open breaker) does not void
  /// every order in flight. Default: 60 s. After confirmation, never.
  std::chrono::milliseconds max_step_wait{60000};
  /// A checkout whose payment is not authorized this long after it reached
  /// the payment step is cancelled (compensated), whatever its retries are
  /// doing: a durable reminder set when the step begins. Default: 15 min.
  std::chrono::milliseconds payment_deadline{15 * 60 * 1000};
  /// Retries of a failing step back off from min to max (doubling, with
  /// +-20% jitter so that orders do not retry in lockstep). Defaults: 200 ms, 2 s.
  std::chrono::milliseconds retry_min{200};
  std::chrono::milliseconds retry_max{2000};
  /// A customer's history keeps up to two pages of its newest orders in one
  /// entity and moves each older page of this many to an entity of its own
  /// (messages.hpp, history_recorded): a checkout's history write stays
  /// bounded however many orders the customer has. Default: 256.
  std::uint32_t history_page = 256;
};

/// The shop's service definitions.
[[nodiscard]] std::vector<service_definition> shop_services(const shop_options& opts = {});
/// Their names, in the order above.
[[nodiscard]] std::vector<std::string> shop_service_names();

/// The products and initial stock the demo and `cohort run` start with.
[[nodiscard]] std::vector<product> sample_products();
[[nodiscard]] std::int64_t sample_initial_stock(const std::string& sku);

/// "12.34" for 1234 cents.
[[nodiscard]] std::string format_money(std::int64_t cents);

/// True for the saga's final states.
[[nodiscard]] inline bool is_final(const std::string& status) { return status == "completed" || status == "failed"; }

}  // namespace cohort::shop
