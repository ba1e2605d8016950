// echo_service: the service the request/reply benchmarks call. Only
// non-blocking methods, so its workers run on the node's shared scheduler as
// most services do. (greeter, the example, also declares a blocking method,
// which gives its workers threads of their own: a thread hop per request that
// made the benchmarks measure that instead, from cfb9e88 on.)
#pragma once

#include <string>

#include "cohort/actors/service_definition.hpp"
#include "cohort/runtime/node_config.hpp"

namespace cohort::bench {

/// `name`.echo returns its echo_args unchanged; `name`.crash (internal) crashes its worker.
[[nodiscard]] service_definition echo_service(const std::string& name = "echo");
/// Its configuration: `workers` workers, defaults otherwise.
[[nodiscard]] service_config echo_service_config(const std::string& name = "echo", std::size_t workers = 2);

}  // namespace cohort::bench
