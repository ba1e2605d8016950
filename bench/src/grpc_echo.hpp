// grpc_echo: a gRPC C++ unary echo server (callback API) and a client that
// keeps N calls in flight, measured like the raw ZeroMQ echo: the peer users
// would otherwise pick for request/reply between services.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "run_result.hpp"

namespace cohort::bench {

class grpc_echo_server {
 public:
  grpc_echo_server();   ///< listens on 127.0.0.1, an ephemeral port
  ~grpc_echo_server();
  grpc_echo_server(const grpc_echo_server&) = delete;
  grpc_echo_server& operator=(const grpc_echo_server&) = delete;
  [[nodiscard]] std::string address() const;  ///< "127.0.0.1:<port>"

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// Calls the echo with `in_flight` calls outstanding for `duration`, each
/// carrying `payload_bytes`; latency per call, throughput over the run.
run_result measure_grpc(const std::string& address, int in_flight, std::chrono::milliseconds duration,
                        std::size_t payload_bytes);

}  // namespace cohort::bench
