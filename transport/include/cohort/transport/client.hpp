// client: a Cohort connection over one ZeroMQ DEALER socket.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>

#include <zmq.hpp>

#include "cohort/transport/envelope.hpp"
#include "cohort/transport/envelope_codec.hpp"
#include "cohort/transport/payload_bytes.hpp"
#include "cohort/transport/wire_limits.hpp"

namespace cohort {

/// Per-call options.
struct call_options {
  /// Deadline: the call fails with `timeout` after this long; sent as deadline_ms. Default: 5 s.
  std::chrono::milliseconds timeout{5000};
  /// Entity key for entity services. Default: none.
  std::string key;
  /// Idempotency key, for safe retries. Default: none.
  std::string idempotency_key;
  /// Trace id to propagate; the node assigns one when empty. Default: none.
  std::string trace;
  /// W3C Trace Context of the caller's span ("00-<trace>-<span>-<flags>") and
  /// its tracestate: the node's spans become its children. Default: none (the node starts a trace).
  std::string traceparent;
  std::string tracestate;
  /// (Clusters) Set (to the key's shard, or any value when unknown): serve
  /// the call only where the key's shard is owned; any other node answers
  /// `wrong_shard` naming the owner instead of forwarding it
  /// (cluster_client.hpp does this for you). Default: unset, nodes forward.
  std::uint32_t shard = envelope::no_shard;
};

/// A finished call: a result payload (msgpack bytes) or an error.
struct reply {
  envelope header;
  /// The result's bytes; a large one is the received frame itself (not copied).
  payload_bytes payload;
  std::optional<error_info> error;
  /// True when the error was made here (deadline passed, send failed, peer
  /// declared dead) rather than answered by the peer.
  bool local = false;

  [[nodiscard]] bool ok() const noexcept { return !error.has_value(); }

  /// Unpacks the payload as T; a shape mismatch is a `bad_request` error.
  /// A payload that is a T already (a call inside the process) is copied.
  template <class T>
  [[nodiscard]] result<T> as(const wire_limits& limits = {}) const& {
    if (error) return *error;
    if constexpr (std::is_copy_constructible_v<T>)
      if (const T* value = payload.typed_as<T>()) return *value;
    auto value = decode_payload_scratch(payload, limits);  // used up here, while `payload` is unchanged
    if (!value) return value.error();
    try {
      return value->as<T>();
    } catch (const std::exception& e) {
      return error_info{errc::bad_request, std::string("reply has an unexpected shape: ") + e.what()};
    }
  }
  /// The same for a reply used up here: a T is moved out, not copied.
  template <class T>
  [[nodiscard]] result<T> as(const wire_limits& limits = {}) && {
    if (!error)
      if (auto value = std::move(payload).take_typed<T>()) return std::move(*value);
    return static_cast<const reply&>(*this).as<T>(limits);
  }
};

using reply_handler = std::function<void(reply&&)>;

/// How a connection notices that its peer is gone when the network says
/// nothing (a silent partition, a host that vanished): ZeroMQ's own
/// heartbeats (ZMTP PING/PONG). A connection that hears nothing for `timeout`
/// is closed and made again; a connect that hangs is abandoned after
/// `connect_timeout`. Both ends of a node's connections use them, so a healed
/// network carries traffic again within about `timeout`, not after TCP's
/// retransmission backoff. A zero heartbeat turns them off.
struct liveness {
  std::chrono::milliseconds heartbeat{500};
  std::chrono::milliseconds timeout{1500};
  std::chrono::milliseconds connect_timeout{1000};
};

/// Sets the heartbeat and reconnection options of `liveness` on a socket.
void set_liveness(zmq::socket_t& socket, const liveness& l);

/// CURVE keys of a client connection (Z85 text, 40 characters each): the
/// server's public key, which pins the peer (a reply can come only from the
/// holder of its secret), and this side's key pair, which the server's trust
/// list must name. Where the keys come from is the caller's business
/// (cohort::security reads and makes key files).
struct curve_client_keys {
  std::string server_key;
  std::string public_key;
  std::string secret_key;
};

/// One connection to a node (or gateway). Many requests may be in flight at
/// once; replies are matched by correlation id and handlers run inside poll().
///
/// Not thread-safe: use one client per thread (ZeroMQ sockets are single-threaded).
/// The socket can be polled by an outside loop: poll fd() for reading, call
/// process_ready() when it is readable or may_read() says so, and expire()
/// when next_deadline() passes.
class client {
 public:
  /// Connects using `ctx`, which must outlive the client.
  /// With `curve`, the connection is encrypted and authenticated (CURVE);
  /// without, it is plain (keyless loopback, ipc, inproc).
  client(zmq::context_t& ctx, const std::string& endpoint, wire_limits limits = {}, liveness l = {},
         const std::optional<curve_client_keys>& curve = std::nullopt);
  /// Connects using a context of its own.
  explicit client(const std::string& endpoint, wire_limits limits = {}, liveness l = {},
                  const std::optional<curve_client_keys>& curve = std::nullopt);
  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  /// Sends a request and returns its correlation id; `on_reply` runs exactly
  /// once, from poll()/process_ready()/expire(), or at once if sending fails.
  std::uint64_t call_async(std::string_view service, std::string_view method, std::string payload,
                           const call_options& opts, reply_handler on_reply);

  /// Sends a request built from a full envelope (the id is replaced by the client's own).
  std::uint64_t call_async(envelope env, std::string payload, std::chrono::milliseconds timeout,
                           reply_handler on_reply);

  /// Sends a one-way message (no reply, no deadline); false when it could not be queued.
  bool send_oneway(std::string_view service, std::string_view method, const std::string& payload);

  /// Sends a request and waits for its reply (or its deadline).
  [[nodiscard]] reply call(std::string_view service, std::string_view method, std::string payload,
                           const call_options& opts = {});

  /// Typed convenience: packs `args`, unpacks the result as R.
  template <class R, class A>
  [[nodiscard]] result<R> call_as(std::string_view service, std::string_view method, const A& args,
                                  const call_options& opts = {}) {
    return call(service, method, pack(args), opts).template as<R>(limits_);
  }

  /// Waits up to `max_wait` for replies, runs their handlers and expires
  /// overdue calls. Returns the number of calls completed.
  std::size_t poll(std::chrono::milliseconds max_wait);

  /// Polls until nothing is in flight or `max_wait` passed; true if all completed.
  bool drain(std::chrono::milliseconds max_wait);

  /// Reads every reply already queued on the socket without blocking.
  std::size_t process_ready();

  /// Fails every call in flight with `err` (e.g. the peer is known to be dead).
  std::size_t fail_all(const error_info& err);

  /// Fails every call whose deadline is at or before `now` with `timeout`.
  std::size_t expire(std::chrono::steady_clock::time_point now);

  [[nodiscard]] std::optional<std::chrono::steady_clock::time_point> next_deadline() const;
  [[nodiscard]] std::size_t in_flight() const noexcept { return pending_.size(); }
  [[nodiscard]] zmq::socket_t& socket() noexcept { return socket_; }
  /// ZeroMQ's notification fd of the socket (ZMQ_FD): readable when the
  /// socket has news. Edge-like: once a read found the socket empty it
  /// announces the next message, but a send can take that signal (libzmq
  /// processes pending commands in send now and then), so after a send the
  /// socket must be read whatever the fd says: may_read().
  [[nodiscard]] int fd() const noexcept { return fd_; }
  /// True after a send, until a read finds the socket empty.
  [[nodiscard]] bool may_read() const noexcept { return may_read_; }
  /// Where `event` messages go (a subscription's events; docs/protocol.md,
  /// Events for clients): their header (its id is the `_subscribe` request's)
  /// and payload, from poll()/process_ready(). Without a handler they are dropped.
  void on_event(std::function<void(envelope&&, std::string&&)> handler) { on_event_ = std::move(handler); }

  /// Replies that arrived after their call had timed out (dropped).
  [[nodiscard]] std::uint64_t late_replies() const noexcept { return late_replies_; }

 private:
  struct pending_call {
    reply_handler handler;
    std::chrono::steady_clock::time_point deadline;
  };

  /// Ends the pending call `it` (found by the caller) with `r`.
  void complete(std::unordered_map<std::uint64_t, pending_call>::iterator it, reply&& r);

  std::unique_ptr<zmq::context_t> own_ctx_;
  zmq::socket_t socket_;
  int fd_ = -1;
  bool may_read_ = true;
  wire_limits limits_;
  std::uint64_t next_id_ = 1;
  std::unordered_map<std::uint64_t, pending_call> pending_;
  std::multimap<std::chrono::steady_clock::time_point, std::uint64_t> deadlines_;
  std::uint64_t late_replies_ = 0;
  std::function<void(envelope&&, std::string&&)> on_event_;
};

}  // namespace cohort
