// zap_handler: the node's ZeroMQ authentication handler (ZAP, RFC 27). libzmq
// asks it about every new connection to a socket that has a ZAP domain; the
// handler answers from the trust list. It runs on a thread of its own: a
// handshake never waits for the node's I/O thread, and vice versa.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <thread>

#include <zmq.hpp>

namespace cohort::security {

/// What a connecting peer presented.
struct zap_request {
  std::string domain;     ///< the listening socket's ZAP domain
  std::string address;    ///< the peer's IP address
  std::string mechanism;  ///< "NULL", "PLAIN" or "CURVE"
  std::string public_key; ///< CURVE: the client's public key in Z85
};

/// The answer: accepted with a user id (the message property "User-Id"), or refused.
struct zap_verdict {
  bool accepted = false;
  std::string user_id;
  std::string reason;
};

class zap_handler {
 public:
  /// Binds inproc://zeromq.zap.01 in `ctx` (before any socket that needs it
  /// binds) and starts answering with `decide`.
  zap_handler(zmq::context_t& ctx, std::function<zap_verdict(const zap_request&)> decide);
  ~zap_handler();
  zap_handler(const zap_handler&) = delete;
  zap_handler& operator=(const zap_handler&) = delete;

  [[nodiscard]] std::uint64_t refused() const noexcept { return refused_.load(); }

 private:
  void run();

  zmq::socket_t socket_;
  std::function<zap_verdict(const zap_request&)> decide_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> refused_{0};
  std::thread thread_;
};

}  // namespace cohort::security
