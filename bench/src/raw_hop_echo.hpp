// raw_hop_echo: the floor of request/reply *with one hand-off between
// threads*, with no runtime. A raw ZeroMQ ROUTER thread reads requests and
// hands them to a second thread (where an actor runtime runs a service's
// handler, apart from the socket so that a slow handler never stalls the
// socket), which hands each back as its own reply for the ROUTER thread to
// send. Both hand-offs are batched the way a careful hand-written server
// would batch them: everything read goes over in one lock and one notify,
// everything answered comes back in one lock, and the ROUTER thread is woken
// (an eventfd) only when it sleeps. The raw echo answers on the thread that
// read; this floor pays what any runtime that keeps handlers off the socket's
// thread pays, and nothing else: no envelope, no routing, no encoding.
#pragma once

#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>

namespace cohort::bench {

class raw_hop_echo_server {
 public:
  /// Binds tcp://127.0.0.1:* and starts both threads.
  raw_hop_echo_server();
  ~raw_hop_echo_server();
  raw_hop_echo_server(const raw_hop_echo_server&) = delete;
  raw_hop_echo_server& operator=(const raw_hop_echo_server&) = delete;
  [[nodiscard]] const std::string& endpoint() const { return endpoint_; }

 private:
  using message = std::vector<zmq::message_t>;  ///< [identity, body]
  void run_socket();
  void run_handler();

  zmq::context_t ctx_{1};
  zmq::socket_t router_;
  std::string endpoint_;
  int wake_fd_ = -1;  ///< eventfd: wakes the socket thread out of its poll

  std::mutex mutex_;
  std::condition_variable work_ready_;
  std::vector<message> requests_;  ///< read, not yet taken by the handler thread
  std::vector<message> replies_;   ///< answered, not yet sent
  bool socket_sleeping_ = false;   ///< the socket thread is (about to be) in poll
  bool stopping_ = false;

  std::thread handler_;
  std::thread socket_;  ///< last: started once everything above exists
};

}  // namespace cohort::bench
