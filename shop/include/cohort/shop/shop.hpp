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
  /// Failed attempts of a step before payment is confirmed after which the
  /// saga gives up and compensates (after confirmation it never gives up). Default: 20.
  std::uint32_t max_step_attempts = 20;
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
