// raw_router: the ROUTER socket and thread every raw ZeroMQ baseline server
// of the benchmarks runs on (the echo floor, the durable-write floor). Each
// waits up to 50 ms for requests, then hands the socket to `serve_ready`,
// which reads what it can without waiting and answers.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include <zmq_addon.hpp>

namespace cohort::bench {

class raw_router_thread {
 public:
  /// Binds tcp://127.0.0.1:* and starts the thread.
  explicit raw_router_thread(std::function<void(zmq::socket_t&)> serve_ready)
      : router_(ctx_, zmq::socket_type::router), serve_ready_(std::move(serve_ready)) {
    router_.set(zmq::sockopt::linger, 0);
    router_.set(zmq::sockopt::sndhwm, 100000);
    router_.set(zmq::sockopt::rcvhwm, 100000);
    router_.bind("tcp://127.0.0.1:*");
    endpoint_ = router_.get(zmq::sockopt::last_endpoint);
    thread_ = std::thread([this] {
      zmq::pollitem_t item{router_.handle(), 0, ZMQ_POLLIN, 0};
      while (!stop_)
        if (zmq::poll(&item, 1, std::chrono::milliseconds(50)) > 0) serve_ready_(router_);
    });
  }
  ~raw_router_thread() {
    stop_ = true;
    thread_.join();
  }
  raw_router_thread(const raw_router_thread&) = delete;
  raw_router_thread& operator=(const raw_router_thread&) = delete;
  [[nodiscard]] const std::string& endpoint() const { return endpoint_; }

 private:
  zmq::context_t ctx_{1};
  zmq::socket_t router_;
  std::function<void(zmq::socket_t&)> serve_ready_;
  std::string endpoint_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace cohort::bench
