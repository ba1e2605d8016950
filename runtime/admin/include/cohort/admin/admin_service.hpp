// admin_service: the node's operator API ("admin" service on the admin endpoint),
// used by cohortctl. Methods: status, tree, restart, stop, start, crash,
// registry, storage, backup, restore, verify, flush, salvage.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "cohort/admin/operations.hpp"

namespace cohort::detail {

/// The thread admin operations that wait run on (restarts wait for actors
/// to stop; backup, restore, verify, flush and salvage do disk work), one at
/// a time, in order, so that the I/O thread never waits for them.
class admin_worker {
 public:
  static constexpr std::size_t max_queued = 16;
  admin_worker();
  ~admin_worker();  ///< runs what is queued, then stops
  admin_worker(const admin_worker&) = delete;
  admin_worker& operator=(const admin_worker&) = delete;
  /// False when `max_queued` operations are waiting already (answer `overloaded`).
  bool post(std::function<void()> job);

 private:
  void run();
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::thread thread_;
};

/// Answers one admin request. Runs on the I/O thread: status, tree and
/// registry read published snapshots and answer at once; the verbs that wait
/// go to `worker` and are answered from there.
void handle_admin(admin_operations& n, admin_worker& worker, request_ptr req);

/// The services' status as JSON (an array), for cohortctl and GET /health.
[[nodiscard]] nlohmann::json services_json(const std::vector<service_status>& services);

}  // namespace cohort::detail
