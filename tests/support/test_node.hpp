// test_node: an in-process node on an ephemeral loopback port with its own data dir.
#pragma once

#include <functional>
#include <future>
#include <vector>
#include <thread>

#include <catch2/catch.hpp>

#include "cohort/examples/example_messages.hpp"
#include "cohort/examples/example_services.hpp"
#include "cohort/runtime/node.hpp"
#include "cohort/transport/client.hpp"
#include "eventually.hpp"
#include "temp_dir.hpp"

namespace cohort::test {

/// A node hosting `hosted` (by default the example services) on loopback.
inline node_config loopback_config(const std::string& data_dir,
                                   const std::vector<service_definition>& hosted = example_services()) {
  auto cfg = default_node_config(hosted);
  cfg.listen = {"tcp://127.0.0.1:*"};
  cfg.admin = "tcp://127.0.0.1:*";
  cfg.http.listen.clear();
  cfg.data_dir = data_dir;
  cfg.drain_timeout = std::chrono::milliseconds(2000);
  cfg.allow_fault_injection = true;  // tests crash services on purpose (greeter.crash from this host)
  return cfg;
}

inline service_config& service_named(node_config& cfg, const std::string& name) {
  for (auto& s : cfg.services)
    if (s.name == name) return s;
  FAIL("no service " << name);
  throw;
}

inline service_status status_of(const node& n, const std::string& name) {
  for (auto& s : n.services())
    if (s.name == name) return s;
  FAIL("no service " << name);
  throw;
}

/// The supervision tree's row of one child of a service (e.g. "entity/k").
inline child_status child_of(const node& n, const std::string& service, const std::string& id) {
  for (const auto& c : status_of(n, service).children)
    if (c.id == id) return c;
  FAIL("no child " << id);
  throw;
}

inline std::unique_ptr<node> start_node(const node_config& cfg) {
  auto n = node::start(cfg, example_services());
  if (!n) FAIL("node did not start: " << n.error().message);
  return std::move(*n);
}

/// Call options addressing the entity `key`, with the call's deadline.
inline call_options keyed(const std::string& key, std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
  call_options o;
  o.key = key;
  o.timeout = timeout;
  return o;
}

/// `n` calls of greeter.sleep (declared blocking) of `ms` each, at once, each
/// from a client of its own; each future is true when its call succeeded.
inline std::vector<std::future<bool>> greeter_sleepers(const std::string& endpoint, int n, std::uint32_t ms) {
  std::vector<std::future<bool>> sleepers;
  for (int i = 0; i < n; ++i)
    sleepers.push_back(std::async(std::launch::async, [endpoint, ms] {
      client s(endpoint);
      call_options o;
      o.timeout = std::chrono::seconds(10);
      return s.call_as<examples::sleep_args>("greeter", "sleep", examples::sleep_args{ms}, o).ok();
    }));
  return sleepers;
}

}  // namespace cohort::test
