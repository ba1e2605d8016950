// The small example services every node can host (used by the demo, tests and bench).
#pragma once

#include <vector>

#include "cohort/actors/service_definition.hpp"
#include "cohort/runtime/node_config.hpp"

namespace cohort {

/// greeter (workers): hello, echo, sleep, fail, crash.
/// counter (entities): add, get, reset, crash.
/// ledger (event-sourced entities): deposit, withdraw, balance.
/// visits (workers): record — calls greeter and counter, wherever they run.
[[nodiscard]] std::vector<service_definition> example_services();

/// The default node config hosting every example service.
[[nodiscard]] node_config example_node_config();

}  // namespace cohort
