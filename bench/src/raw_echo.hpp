// raw_echo: the raw ZeroMQ request/reply floor every request/reply benchmark
// compares with: a ROUTER echo server on its own thread, and a DEALER client
// that keeps `in_flight` requests outstanding (each a 4-byte slot id and the
// payload) and times each answer. No envelope, no routing, no encoding.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <zmq_addon.hpp>

#include "raw_router.hpp"
#include "run_result.hpp"
#include "stats.hpp"

namespace cohort::bench {

/// A raw ZeroMQ ROUTER echo server on its own thread: every frame it reads goes back as read.
class raw_echo_server {
 public:
  raw_echo_server()
      : router_([this](zmq::socket_t& s) {
          for (;;) {
            frames_.clear();
            if (!zmq::recv_multipart(s, std::back_inserter(frames_), zmq::recv_flags::dontwait)) break;
            zmq::send_multipart(s, frames_, zmq::send_flags::dontwait);
          }
        }) {}
  const std::string& endpoint() const { return router_.endpoint(); }

 private:
  std::vector<zmq::message_t> frames_;  ///< the router's thread's only
  raw_router_thread router_;            ///< last: its thread stops first
};

/// A DEALER connected to `endpoint`, on a ZeroMQ context of its own (one I/O
/// thread), as a client process would have.
struct bench_dealer {
  zmq::context_t ctx{1};
  zmq::socket_t socket{ctx, zmq::socket_type::dealer};
  explicit bench_dealer(const std::string& endpoint) {
    socket.set(zmq::sockopt::linger, 0);
    socket.connect(endpoint);
  }
};

/// The closed loop of the DEALER clients: `in_flight` slots, each sent again
/// as soon as its answer is read, until `duration` has passed. `send(slot)`
/// sends slot's request; `read_slot()` blocks for the next answer and
/// returns its slot. One round trip first makes the connection.
template <class Send, class ReadSlot>
run_result closed_loop(int in_flight, std::chrono::milliseconds duration, Send&& send, ReadSlot&& read_slot) {
  using clock_type = std::chrono::steady_clock;
  std::vector<clock_type::time_point> sent_at(static_cast<std::size_t>(in_flight));
  std::vector<double> latencies;
  std::uint64_t done = 0;
  auto send_one = [&](std::size_t slot) {
    sent_at[slot] = clock_type::now();
    send(slot);
  };
  send_one(0);
  (void)read_slot();
  auto start = clock_type::now();
  auto until = start + duration;
  for (int i = 0; i < in_flight; ++i) send_one(static_cast<std::size_t>(i));
  for (int left = in_flight; left > 0;) {
    const std::size_t slot = read_slot();
    auto now = clock_type::now();
    latencies.push_back(std::chrono::duration<double, std::micro>(now - sent_at.at(slot)).count());
    ++done;
    if (now < until) send_one(slot);
    else --left;
  }
  double secs = std::chrono::duration<double>(clock_type::now() - start).count();
  return {done / secs, percentile(latencies, 50), percentile(latencies, 99), percentile(latencies, 99.9), done};
}

/// The raw client against a raw echo (or anything that answers each frame with itself).
run_result measure_raw(const std::string& endpoint, int in_flight, std::chrono::milliseconds duration,
                       std::size_t payload_bytes);

}  // namespace cohort::bench
