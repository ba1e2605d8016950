// request: one request in flight inside a node, from ingress to its reply.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cohort/observability/tracer.hpp"
#include "cohort/transport/envelope.hpp"
#include "cohort/transport/error_code.hpp"
#include "cohort/transport/payload_bytes.hpp"

namespace cohort::detail {

/// Where a reply goes: back out of a socket, or to a calling actor. Gets the
/// reply header and payload (for errors, the encoded error map), both its to
/// keep: a sink that passes the reply on moves them instead of copying. A
/// result a handler gave as a value is still one here (payload.typed()): a
/// sink that sends bytes asks for them (take()), one that hands the reply to
/// an actor of this process passes the value on.
using reply_sink = std::function<void(envelope&& header, payload_bytes&& payload)>;

class request;

/// The requests one holder (a service, the node's forwarding) keeps until
/// they are answered: counted for admission and for the drain, and listed so
/// that a node whose drain timeout passes can answer the ones still running
/// (a blocking handler may run on for seconds) instead of leaving their
/// callers to wait it out. Adding and removing take a short lock.
class in_flight_set {
 public:
  [[nodiscard]] std::int64_t load(std::memory_order order = std::memory_order_seq_cst) const noexcept {
    return count_.load(order);
  }
  /// Answers every request still held with `err`; a handler still running
  /// then finds its request answered. Returns how many it answered.
  std::size_t fail_all(const error_info& err);

 private:
  friend class request;
  void add(request* r) noexcept;
  void remove(request* r) noexcept;
  std::atomic<std::int64_t> count_{0};
  std::mutex mutex_;
  request* head_ = nullptr;
};

/// A request inside the node. It is answered exactly once: by respond(), by
/// fail(), or, if it is destroyed unanswered (its actor crashed with it in the
/// mailbox, or the node stopped), with `unavailable` by its destructor, so no
/// caller ever waits in silence. Safe to answer from any thread.
class request : public std::enable_shared_from_this<request> {
 public:
  /// (The header by reference: moved once, into the request. Pass a copy to keep yours.)
  request(envelope&& header, payload_bytes payload, std::chrono::steady_clock::time_point deadline,
          reply_sink sink);
  ~request();
  request(const request&) = delete;
  request& operator=(const request&) = delete;

  /// Sends the result; false if already answered.
  bool respond(payload_bytes payload);
  /// Sends an error; false if already answered.
  bool fail(const error_info& err);
  [[nodiscard]] bool answered() const noexcept { return answered_.load(std::memory_order_acquire); }

  /// Counted against a service's in-flight bound (and listed) until answered.
  void hold(in_flight_set* in_flight) noexcept;
  [[nodiscard]] bool held() const noexcept { return held_by_ != nullptr; }

  [[nodiscard]] std::chrono::milliseconds remaining() const;

  envelope header;
  /// When it entered this node (the I/O thread's poll round that read it) or
  /// was made here (the handler's call): metrics and spans start from it
  /// instead of reading the clock again. Unset (epoch) when not known.
  std::chrono::steady_clock::time_point made{};
  /// `made`, or the clock now when it is not known: where a measurement of this request starts.
  [[nodiscard]] std::chrono::steady_clock::time_point made_or_now() const {
    return made != std::chrono::steady_clock::time_point{} ? made : std::chrono::steady_clock::now();
  }
  /// Times a cluster member turned it away while its own view was behind
  /// and it was sent again (cluster routing's backoff: resend_backoff.hpp).
  std::uint32_t resends = 0;
  /// As it arrived: from a socket, the received frame itself (not copied).
  payload_bytes payload;
  std::chrono::steady_clock::time_point deadline;
  /// Told once, on whichever thread answers, the request and the answer's
  /// code: "ok" or the error code (metrics, spans). Set before the request is
  /// routed; each observer calls the one it replaced.
  std::function<void(const request& req, std::string_view code)> observer;

  /// This hop's span, when the node traces the request: recorded when it is
  /// answered (if sampled, or failed). Its ids are in header.traceparent; kept
  /// here without allocation (the parent id fits in place).
  struct hop_span {
    observability::tracer* tracer = nullptr;
    std::chrono::steady_clock::time_point start{};  ///< converted to Unix time when recorded
    observability::span_kind kind = observability::span_kind::server;
    bool sampled = false;
    char parent[16] = {};  ///< the caller's span id; all zero when the trace started here
  };
  hop_span span;
  /// Made by a handler's call in this process. Its caller reads the result
  /// here, so a result may stay a value (any other request's is packed when
  /// the handler gives it, on the handler's thread). And its traceparent was
  /// written by this node, from the handler's own request's, which begin_span
  /// had checked or made: it is read without checking it again.
  bool from_handler = false;

  /// Where further messages of this request's stream go (events of a
  /// client's subscription): any number of times, from any thread, before
  /// and after the reply. Empty when the request came from where no stream
  /// can go back (an actor's call).
  reply_sink stream;

 private:
  bool claim() noexcept;
  void release() noexcept;
  void record_span(std::string_view code) const;

  friend class in_flight_set;
  reply_sink sink_;
  std::atomic<bool> answered_{false};
  in_flight_set* held_by_ = nullptr;
  request* prev_ = nullptr;  ///< neighbours in held_by_'s list, under its lock
  request* next_ = nullptr;
};

using request_ptr = std::shared_ptr<request>;

/// Continues the caller's trace (the request's traceparent) or starts one, and
/// makes the request carry this hop's span id, so that whatever it leads to is
/// a child of it; the span is recorded when the request is answered (if
/// sampled, or failed). Nothing when `tracer` is null or tracing is off.
void begin_span(request& req, observability::tracer* tracer, observability::span_kind kind);

/// The header of the reply to `req`.
[[nodiscard]] envelope reply_header(const envelope& req, bool is_error);

/// A fresh random W3C trace id (32 hex digits), for requests that arrive without one.
[[nodiscard]] std::string new_trace_id();

}  // namespace cohort::detail
