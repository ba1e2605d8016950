#include "raw_proxy.hpp"

#include <atomic>

namespace cohort::bench {

raw_proxy::raw_proxy(const std::string& server) {
  for (auto* s : {&front_, &back_}) {
    s->set(zmq::sockopt::linger, 0);
    s->set(zmq::sockopt::sndhwm, 100000);
    s->set(zmq::sockopt::rcvhwm, 100000);
  }
  front_.bind("tcp://127.0.0.1:*");
  endpoint_ = front_.get(zmq::sockopt::last_endpoint);
  back_.connect(server);
  static std::atomic<int> made{0};
  const auto control = "inproc://raw-proxy-control-" + std::to_string(made++);
  control_.bind(control);
  stop_.connect(control);
  thread_ = std::thread([this] {
    zmq::proxy_steerable(front_, back_, zmq::socket_ref(), control_);  // returns on TERMINATE
  });
}

raw_proxy::~raw_proxy() {
  stop_.send(zmq::str_buffer("TERMINATE"), zmq::send_flags::none);
  thread_.join();
}

}  // namespace cohort::bench
