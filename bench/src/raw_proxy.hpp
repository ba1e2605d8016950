// raw_proxy: the floor of a gateway hop. ZeroMQ's own proxy (zmq_proxy, the
// broker of the ZeroMQ guide) between a ROUTER that clients connect to and a
// DEALER connected to a server, on a thread and a ZeroMQ context of its own
// (one I/O thread), as a gateway node has: the same bytes forwarded frame by
// frame, with no envelope, routing, admission or bookkeeping. What it costs
// against calling the server directly is what any ZeroMQ hop costs on this
// machine: a second socket pair's reads, writes and wake-ups.
#pragma once

#include <string>
#include <thread>

#include <zmq.hpp>

namespace cohort::bench {

class raw_proxy {
 public:
  /// Binds tcp://127.0.0.1:* in front of `server` and starts forwarding.
  explicit raw_proxy(const std::string& server);
  ~raw_proxy();
  raw_proxy(const raw_proxy&) = delete;
  raw_proxy& operator=(const raw_proxy&) = delete;
  [[nodiscard]] const std::string& endpoint() const { return endpoint_; }

 private:
  zmq::context_t ctx_{1};
  zmq::socket_t front_{ctx_, zmq::socket_type::router};
  zmq::socket_t back_{ctx_, zmq::socket_type::dealer};
  zmq::socket_t control_{ctx_, zmq::socket_type::pair};  ///< the proxy's end of the stop line
  zmq::socket_t stop_{ctx_, zmq::socket_type::pair};     ///< ours
  std::string endpoint_;
  std::thread thread_;
};

}  // namespace cohort::bench
