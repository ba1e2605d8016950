// admin_service: the node's operator API ("admin" service on the admin endpoint),
// used by cohortctl. Methods: status, tree, restart, stop, start, crash.
#pragma once

#include "cohort/runtime/node.hpp"
#include "request.hpp"

namespace cohort::detail {

/// Answers one admin request. Runs on the I/O thread; never blocks on actors
/// (it reads published snapshots and sends commands).
void handle_admin(node& n, request_ptr req);

/// The services' status as JSON text (an array), for cohortctl and GET /health.
[[nodiscard]] std::string services_json(const std::vector<service_status>& services);

}  // namespace cohort::detail
