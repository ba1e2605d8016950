#include "raw_hop_echo.hpp"

#include <sys/eventfd.h>
#include <cstdint>
#include <stdexcept>
#include <unistd.h>

#include <zmq_addon.hpp>

namespace cohort::bench {

raw_hop_echo_server::raw_hop_echo_server() : router_(ctx_, zmq::socket_type::router) {
  router_.set(zmq::sockopt::linger, 0);
  router_.set(zmq::sockopt::sndhwm, 100000);
  router_.set(zmq::sockopt::rcvhwm, 100000);
  router_.bind("tcp://127.0.0.1:*");
  endpoint_ = router_.get(zmq::sockopt::last_endpoint);
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) throw std::runtime_error("eventfd failed");
  handler_ = std::thread([this] { run_handler(); });
  socket_ = std::thread([this] { run_socket(); });
}

raw_hop_echo_server::~raw_hop_echo_server() {
  {
    std::lock_guard<std::mutex> guard(mutex_);
    stopping_ = true;
  }
  work_ready_.notify_all();
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
  handler_.join();
  socket_.join();
  ::close(wake_fd_);
}

void raw_hop_echo_server::run_socket() {
  std::vector<message> read, answered;
  for (;;) {
    // Everything the socket holds, handed over in one lock and one notify.
    read.clear();
    for (;;) {
      message frames;
      if (!zmq::recv_multipart(router_, std::back_inserter(frames), zmq::recv_flags::dontwait)) break;
      read.push_back(std::move(frames));
    }
    bool stop;
    {
      std::lock_guard<std::mutex> guard(mutex_);
      for (auto& m : read) requests_.push_back(std::move(m));
      answered.swap(replies_);
      stop = stopping_;
      // Nothing read and nothing to send: sleep until the socket or the handler thread wakes us.
      socket_sleeping_ = read.empty() && answered.empty();
    }
    if (stop) return;
    if (!read.empty()) work_ready_.notify_one();
    for (auto& m : answered) zmq::send_multipart(router_, m, zmq::send_flags::dontwait);
    answered.clear();
    if (!socket_sleeping_) continue;
    zmq::pollitem_t items[] = {{router_.handle(), 0, ZMQ_POLLIN, 0}, {nullptr, wake_fd_, ZMQ_POLLIN, 0}};
    zmq::poll(items, 2, std::chrono::milliseconds(50));
    if (items[1].revents & ZMQ_POLLIN) {
      std::uint64_t drained;
      [[maybe_unused]] auto n = ::read(wake_fd_, &drained, sizeof drained);
    }
    std::lock_guard<std::mutex> guard(mutex_);
    socket_sleeping_ = false;
  }
}

void raw_hop_echo_server::run_handler() {
  std::vector<message> work;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      work_ready_.wait(lock, [this] { return stopping_ || !requests_.empty(); });
      if (stopping_) return;
      work.swap(requests_);
    }
    // The "handler": each request is its own reply (an echo), moved, not copied.
    bool wake;
    {
      std::lock_guard<std::mutex> guard(mutex_);
      for (auto& m : work) replies_.push_back(std::move(m));
      wake = socket_sleeping_;
      socket_sleeping_ = false;  // one eventfd write per sleep is enough
    }
    work.clear();
    if (wake) {
      std::uint64_t one = 1;
      [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
    }
  }
}

}  // namespace cohort::bench
