// The shop's messages: msgpack maps on the wire (JSON through the gateway),
// shared by the services, the demo, the tests and the benchmark. Money is in
// integer cents.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <msgpack.hpp>

#include "cohort/transport/message_fields.hpp"

namespace cohort::shop {

// -- catalog ------------------------------------------------------------------

struct product {
  std::string sku;
  std::string name;
  std::string description;
  std::int64_t price_cents = 0;
  COHORT_FIELDS(sku, name, description, price_cents);
};

struct product_list {
  std::vector<product> products;
  COHORT_FIELDS(products);
};

struct sku_args {
  std::string sku;
  COHORT_FIELDS(sku);
};

struct search_args {
  std::string query;  ///< case-insensitive substring of the name
  COHORT_FIELDS(query);
};

// -- inventory (entity key: the SKU) -----------------------------------------

struct quantity_args {
  std::int64_t qty = 0;
  COHORT_FIELDS(qty);
};

struct reservation_args {
  std::string order_id;
  std::int64_t qty = 0;  ///< reserve only
  COHORT_FIELDS(order_id, qty);
};

/// Stock of one SKU. Always: initial == available + reserved + committed.
struct stock_view {
  std::string sku;
  std::int64_t initial = 0;  ///< everything ever stocked
  std::int64_t available = 0;
  std::int64_t reserved = 0;
  std::int64_t committed = 0;  ///< sold
  COHORT_FIELDS(sku, initial, available, reserved, committed);
};

// -- cart (entity key: the cart id) -------------------------------------------

struct cart_line {
  std::string sku;
  std::string name;
  std::int64_t qty = 0;
  std::int64_t price_cents = 0;  ///< unit price when added
  COHORT_FIELDS(sku, name, qty, price_cents);
};

struct cart_add_args {
  std::string sku;
  std::int64_t qty = 1;
  COHORT_FIELDS(sku, qty);
};

struct cart_remove_args {
  std::string sku;
  std::int64_t qty = 0;  ///< 0 = the whole line
  COHORT_FIELDS(sku, qty);
};

struct cart_view {
  std::string cart_id;
  std::vector<cart_line> lines;
  std::int64_t total_cents = 0;
  COHORT_FIELDS(cart_id, lines, total_cents);
};

// -- payments (entity key: the order id: one payment per order) --------------

struct authorize_args {
  std::int64_t amount_cents = 0;
  std::string card;
  std::string customer;
  COHORT_FIELDS(amount_cents, card, customer);
};

/// status: "none", "authorized", "declined", "captured", "voided", "refunded".
struct payment_view {
  std::string order_id;
  std::string status = "none";
  std::int64_t amount_cents = 0;
  std::int64_t captured_cents = 0;
  std::uint32_t captures = 0;  ///< times money was taken: never more than 1
  std::string reason;
  COHORT_FIELDS(order_id, status, amount_cents, captured_cents, captures, reason);
};

// -- orders (entity key: the order id; "customer/<id>" for a history) ---------

struct checkout_args {
  std::string customer;
  std::string cart_id;
  std::string card;
  COHORT_FIELDS(customer, cart_id, card);
};

struct order_line {
  std::string sku;
  std::int64_t qty = 0;
  std::int64_t price_cents = 0;
  COHORT_FIELDS(sku, qty, price_cents);
};

/// status: "reserving", "authorizing", "confirmed" (payment authorized, being
/// fulfilled), "completed"; or "compensating", "failed" (with a reason).
struct order_view {
  std::string order_id;
  std::string customer;
  std::string status;
  std::string reason;  ///< why it failed, or what it waits for
  std::int64_t total_cents = 0;
  std::vector<order_line> lines;
  COHORT_FIELDS(order_id, customer, status, reason, total_cents, lines);
};

/// `orders.record`'s argument (on "customer/<id>"; the saga's first step).
struct history_args {
  std::string order_id;
  COHORT_FIELDS(order_id);
};

/// `orders.record`'s answer: the order is in the history, which holds
/// `orders` orders. A count, not the history: the saga needs only to know
/// the step is done, and a reply that carried the whole history made each
/// checkout cost more the more its customer had bought.
///
/// A history keeps its newest orders in "customer/<id>" and moves older ones
/// to pages of `shop_options::history_page` orders ("history/<n>/<id>"), so
/// that a record rewrites a bounded entity however long the history. When
/// the newest part has grown to two pages, the answer carries the oldest
/// page (`archive`): the saga that got it writes it (`orders.archive`) and
/// then takes it off the newest part (`orders.trim`).
struct history_recorded {
  std::string customer;
  std::string order_id;
  std::uint64_t orders = 0;
  std::uint32_t archive_page = 0;         ///< the page `archive` is, when not empty
  std::vector<std::string> archive;       ///< a page due to be written, oldest first; usually empty
  COHORT_FIELDS(customer, order_id, orders, archive_page, archive);
};

/// `orders.archive` on "history/<n>/<customer>": the page's orders (written
/// whole: a page is written again with the same orders if a saga repeats it).
struct history_page_args {
  std::vector<std::string> order_ids;
  COHORT_FIELDS(order_ids);
};

/// `orders.trim` on "customer/<id>": page `page`, now written, whose last
/// order is `last`, leaves the newest part (a trim that does not match what
/// the history holds, a repeated one, changes nothing).
struct history_trim_args {
  std::uint32_t page = 0;
  std::string last;
  COHORT_FIELDS(page, last);
};

/// `orders.history` on "customer/<id>": the customer's newest orders, oldest
/// first, after `pages` full pages of older ones, which are read with the
/// same method on history_page_key(page, customer) for page 0 to pages - 1.
struct order_history {
  std::string customer;
  std::vector<std::string> order_ids;
  std::uint32_t pages = 0;
  COHORT_FIELDS(customer, order_ids, pages);
};

/// Where the pages of customers' older orders live: "history/<n>/<customer>".
inline const std::string history_page_prefix = "history/";

/// The key of a customer's older orders, page `page` (0: the oldest).
inline std::string history_page_key(std::uint32_t page, const std::string& customer) {
  return history_page_prefix + std::to_string(page) + "/" + customer;
}

// -- events -------------------------------------------------------------------

/// Topic "order_placed", published by orders when a checkout completes.
struct order_placed {
  std::string order_id;
  std::string customer;
  std::int64_t total_cents = 0;
  std::vector<order_line> lines;
  COHORT_FIELDS(order_id, customer, total_cents, lines);
};

/// Topic "order_failed", published by orders when a checkout is compensated.
struct order_failed {
  std::string order_id;
  std::string customer;
  std::string reason;
  COHORT_FIELDS(order_id, customer, reason);
};

// -- notifications (entity key: the customer) --------------------------------

struct notification {
  std::string kind;  ///< "order_placed" or "order_failed"
  std::string order_id;
  std::string text;
  COHORT_FIELDS(kind, order_id, text);
};

struct inbox_view {
  std::string customer;
  std::vector<notification> sent;
  COHORT_FIELDS(customer, sent);
};

}  // namespace cohort::shop
