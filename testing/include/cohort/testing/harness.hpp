// harness: an in-process node for the tests of a service author. It hosts the
// services it is given on ephemeral loopback ports with a fresh data
// directory (removed afterwards), hands out clients, and lets the test move
// the clock entities' reminders are due by. Test-framework neutral: it throws
// std::runtime_error on a setup failure, so any framework reports it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cohort/actors/service_definition.hpp"
#include "cohort/runtime/node.hpp"
#include "cohort/runtime/node_config.hpp"
#include "cohort/transport/client.hpp"

namespace cohort::testing {

class harness {
 public:
  /// Hosts `services` (each with its default config); `adjust` may change the
  /// node's config before it starts (workers, limits, supervision).
  explicit harness(std::vector<service_definition> services,
                   const std::function<void(node_config&)>& adjust = {});
  ~harness();
  harness(const harness&) = delete;
  harness& operator=(const harness&) = delete;

  /// The running node.
  [[nodiscard]] cohort::node& node() noexcept { return *node_; }
  /// The node's first endpoint (tcp://127.0.0.1:PORT).
  [[nodiscard]] const std::string& endpoint() const noexcept;
  /// A new client of the node (each client is for one thread).
  [[nodiscard]] std::unique_ptr<client> connect() const;
  /// Its data directory (each service's store is a folder in it).
  [[nodiscard]] const std::string& data_dir() const noexcept { return data_dir_; }

  /// The test's clock for reminders (Unix ms). It starts at the wall clock's
  /// now and moves only when told.
  [[nodiscard]] std::uint64_t now_ms() const noexcept { return clock_->load(); }
  /// Moves the reminders' clock forward; reminders due by then fire (the
  /// node's scheduler looks at least once a second, or at once for reminders
  /// set while it runs).
  void advance(std::chrono::milliseconds by) noexcept { clock_->fetch_add(static_cast<std::uint64_t>(by.count())); }

  /// Polls `condition` every 5 ms until it holds or `limit` passes.
  static bool eventually(const std::function<bool()>& condition,
                         std::chrono::milliseconds limit = std::chrono::seconds(5));

  /// Stops the node (it also stops when the harness goes).
  void stop();

 private:
  std::string data_dir_;
  std::shared_ptr<std::atomic<std::uint64_t>> clock_;
  std::unique_ptr<cohort::node> node_;
};

}  // namespace cohort::testing
