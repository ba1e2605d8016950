// admin_service: the node's operator API ("admin" service on the admin endpoint),
// used by cohortctl. Methods: status, tree, restart, stop, start, crash,
// registry, storage, backup, restore, verify, flush, salvage.
#pragma once

#include "cohort/admin/operations.hpp"

namespace cohort::detail {

/// Answers one admin request. Runs on the I/O thread. Status, tree and child
/// commands read published snapshots and send commands; restart and restore
/// wait (at most 10 s) for the old actors to stop, and backup, restore,
/// verify and salvage do disk work: while they run, the I/O thread waits.
void handle_admin(admin_operations& n, request_ptr req);

/// The services' status as JSON text (an array), for cohortctl and GET /health.
[[nodiscard]] std::string services_json(const std::vector<service_status>& services);

}  // namespace cohort::detail
