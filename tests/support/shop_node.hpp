// shop_node: the whole shop in an in-process node on an ephemeral loopback
// port with its own data dir, seeded, with a client connected to it.
#pragma once

#include <catch2/catch.hpp>

#include "cohort/actors/method_context.hpp"
#include "cohort/runtime/node.hpp"
#include "cohort/shop/seed.hpp"
#include "cohort/shop/shop.hpp"
#include "cohort/shop/shop_config.hpp"
#include "cohort/transport/client.hpp"
#include "temp_dir.hpp"

namespace cohort::test {

inline node_config shop_test_config(const std::string& data_dir, const shop::shop_options& opts = {}) {
  auto cfg = shop::shop_node_config(opts);
  cfg.listen = {"tcp://127.0.0.1:*"};
  cfg.admin.clear();
  cfg.http.listen.clear();
  cfg.data_dir = data_dir;
  cfg.allow_fault_injection = true;
  cfg.drain_timeout = std::chrono::milliseconds(2000);
  for (auto& s : cfg.services) {
    s.store_durability = durability::async;  // tests check crash safety of the process, not of power loss
    s.resume_every = std::chrono::milliseconds(50);
    // Crash drills inject hundreds of crashes a second: these tests are about
    // what survives them, not about a supervisor giving up.
    s.supervision.intensity.max_restarts = 100000;
  }
  return cfg;
}

inline std::unique_ptr<node> start_shop(const node_config& cfg, const shop::shop_options& opts = {}) {
  auto n = node::start(cfg, shop::shop_services(opts));
  if (!n) FAIL("shop node did not start: " << n.error().message);
  return std::move(*n);
}

inline call_options key(const std::string& k) {
  call_options o;
  o.key = k;
  return o;
}

/// The initial stock of every sample product, for audits.
inline std::map<std::string, std::int64_t> sample_stock() {
  std::map<std::string, std::int64_t> out;
  for (const auto& p : shop::sample_products()) out[p.sku] = shop::sample_initial_stock(p.sku);
  return out;
}

}  // namespace cohort::test
