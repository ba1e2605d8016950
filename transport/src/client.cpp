#include "cohort/transport/client.hpp"
#include "cohort/transport/frame.hpp"

#include <vector>

#include <zmq_addon.hpp>
#include "cohort/transport/poll.hpp"

namespace cohort {

namespace {

using clock_type = std::chrono::steady_clock;

void configure(zmq::socket_t& s, const wire_limits& limits) {
  s.set(zmq::sockopt::linger, 0);  // closing a client never waits for unsent requests
  s.set(zmq::sockopt::maxmsgsize, limits.hard_frame_bytes);
  s.set(zmq::sockopt::sndhwm, 100000);
  s.set(zmq::sockopt::rcvhwm, 100000);
}

}  // namespace

void set_liveness(zmq::socket_t& s, const liveness& l) {
  if (l.heartbeat.count() <= 0) return;
  // libzmq 4.3.4 (Debian's) aborts the process when a heartbeat timer fires
  // on a connection whose input stopped at the receive high-water mark and
  // whose peer then went away (`Assertion failed: !_io_error`,
  // stream_engine_base.cpp:331; zeromq/libzmq#4364, open upstream; found by
  // `make test-tsan`). Input stops only at the HWM: a heartbeating socket has
  // none. Its peers are the nodes it called, whose replies it asked for: the
  // node bounds those by max_in_flight, not by this queue.
  s.set(zmq::sockopt::rcvhwm, 0);
  s.set(zmq::sockopt::heartbeat_ivl, static_cast<int>(l.heartbeat.count()));
  s.set(zmq::sockopt::heartbeat_timeout, static_cast<int>(l.timeout.count()));
  // The peer drops us too if our pings stop (a paused process, a dead host).
  s.set(zmq::sockopt::heartbeat_ttl, static_cast<int>(l.timeout.count()));
  s.set(zmq::sockopt::connect_timeout, static_cast<int>(l.connect_timeout.count()));
  // Reconnect attempts back off to at most the heartbeat timeout, not forever.
  s.set(zmq::sockopt::reconnect_ivl, 100);
  s.set(zmq::sockopt::reconnect_ivl_max, static_cast<int>(l.timeout.count()));
}

namespace {

reply error_reply(std::uint64_t id, error_info err) {
  reply r;
  r.header.kind = message_kind::error;
  r.header.id = id;
  r.error = std::move(err);
  r.local = true;
  return r;
}

}  // namespace

namespace {
void set_curve(zmq::socket_t& s, const std::optional<curve_client_keys>& curve) {
  if (!curve) return;
  s.set(zmq::sockopt::curve_serverkey, curve->server_key);
  s.set(zmq::sockopt::curve_publickey, curve->public_key);
  s.set(zmq::sockopt::curve_secretkey, curve->secret_key);
}
}  // namespace

client::client(zmq::context_t& ctx, const std::string& endpoint, wire_limits limits, liveness l,
               const std::optional<curve_client_keys>& curve)
    : socket_(ctx, zmq::socket_type::dealer), limits_(limits) {
  configure(socket_, limits_);
  set_liveness(socket_, l);
  set_curve(socket_, curve);
  socket_.connect(endpoint);
  fd_ = socket_.get(zmq::sockopt::fd);
}

client::client(const std::string& endpoint, wire_limits limits, liveness l, const std::optional<curve_client_keys>& curve)
    : own_ctx_(std::make_unique<zmq::context_t>(1)),
      socket_(*own_ctx_, zmq::socket_type::dealer),
      limits_(limits) {
  configure(socket_, limits_);
  set_liveness(socket_, l);
  set_curve(socket_, curve);
  socket_.connect(endpoint);
  fd_ = socket_.get(zmq::sockopt::fd);
}

client::~client() {
  socket_.close();
}

std::uint64_t client::call_async(std::string_view service, std::string_view method,
                                 std::string payload, const call_options& opts,
                                 reply_handler on_reply) {
  envelope env;
  env.service = service;
  env.method = method;
  env.key = opts.key;
  env.idempotency_key = opts.idempotency_key;
  env.trace = opts.trace;
  env.traceparent = opts.traceparent;
  env.tracestate = opts.tracestate;
  env.shard = opts.shard;
  return call_async(std::move(env), std::move(payload), opts.timeout, std::move(on_reply));
}

std::uint64_t client::call_async(envelope env, std::string payload,
                                 std::chrono::milliseconds timeout, reply_handler on_reply) {
  env.kind = message_kind::request;
  env.id = next_id_++;
  env.deadline_ms = static_cast<std::uint32_t>(std::max<std::int64_t>(1, timeout.count()));
  env.sent_ms = wall_clock_ms();  // lets the receiver count time in transit
  std::array<zmq::message_t, 2> frames{frame_of(encode_envelope(env)), frame_of(std::move(payload))};
  std::optional<size_t> sent;
  may_read_ = true;  // a send can take the signal of a reply that came meanwhile (see fd())
  try {
    sent = zmq::send_multipart(socket_, frames, zmq::send_flags::dontwait);
  } catch (const zmq::error_t& e) {
    on_reply(error_reply(env.id, {errc::unavailable, std::string("send failed: ") + e.what()}));
    return env.id;
  }
  if (!sent) {
    on_reply(error_reply(env.id, {errc::unavailable, "send queue full: the peer is not reading"}));
    return env.id;
  }
  auto deadline = clock_type::now() + timeout;
  pending_.emplace(env.id, pending_call{std::move(on_reply), deadline});
  deadlines_.emplace(deadline, env.id);
  return env.id;
}

bool client::send_oneway(std::string_view service, std::string_view method, const std::string& payload) {
  envelope env;
  env.kind = message_kind::oneway;
  env.id = next_id_++;
  env.service = service;
  env.method = method;
  auto header = encode_envelope(env);
  std::array<zmq::const_buffer, 2> frames{zmq::buffer(header), zmq::buffer(payload)};
  may_read_ = true;  // as in call_async
  try {
    return zmq::send_multipart(socket_, frames, zmq::send_flags::dontwait).has_value();
  } catch (const zmq::error_t&) {
    return false;
  }
}

reply client::call(std::string_view service, std::string_view method, std::string payload,
                   const call_options& opts) {
  std::optional<reply> out;
  call_async(service, method, std::move(payload), opts, [&out](reply&& r) { out = std::move(r); });
  while (!out) {
    auto dl = next_deadline();
    auto wait = dl ? std::chrono::duration_cast<std::chrono::milliseconds>(*dl - clock_type::now())
                   : std::chrono::milliseconds(100);
    poll(std::max(wait, std::chrono::milliseconds(1)));
  }
  return std::move(*out);
}

std::size_t client::poll(std::chrono::milliseconds max_wait) {
  auto until = clock_type::now() + max_wait;
  if (auto dl = next_deadline(); dl && *dl < until) until = *dl;  // wake for the first deadline
  // Read first, sleep on the fd only when the socket was read empty since
  // the last send: a zmq_poll asks the socket for its events before and
  // after it sleeps (a getpid and a poll of its mailbox each, on top of its
  // own poll), where one recv that finds nothing does the same work.
  std::size_t done = may_read_ ? process_ready() : 0;
  // The fd also fires for news that is not a reply (a connection made, say):
  // then wait out the rest of the time.
  while (done == 0) {
    // Rounded up: poll(2) takes whole milliseconds, and a truncated 0.9 ms
    // (poll(1ms) right after reading the clock) is a poll that does not
    // sleep, which turned every caller's wait loop into a busy loop.
    auto left = std::max(std::chrono::ceil<std::chrono::milliseconds>(until - clock_type::now()),
                         std::chrono::milliseconds(0));
    if (!wait_readable(fd_, left)) break;
    done += process_ready();
    if (left.count() == 0) break;  // poll(0): one look, no sleep
  }
  done += expire(clock_type::now());
  return done;
}

bool client::drain(std::chrono::milliseconds max_wait) {
  auto until = clock_type::now() + max_wait;
  while (!pending_.empty()) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(until - clock_type::now());
    if (left.count() <= 0) return false;
    poll(left);
  }
  return true;
}

std::size_t client::process_ready() {
  std::size_t done = 0;
  std::vector<zmq::message_t> frames;
  for (;;) {
    frames.clear();
    std::optional<size_t> got;
    try {
      got = zmq::recv_multipart(socket_, std::back_inserter(frames), zmq::recv_flags::dontwait);
    } catch (const zmq::error_t&) {
      may_read_ = false;  // its fd says when to try again
      break;
    }
    if (!got) {
      may_read_ = false;  // read to empty: the fd announces the next
      break;
    }
    if (frames.size() != 2) continue;  // not a Cohort reply: drop
    auto header = decode_envelope(frames[0].to_string_view(), limits_);
    if (!header) continue;
    if (header->kind == message_kind::event) {
      if (on_event_) on_event_(std::move(*header), frames[1].to_string());
      continue;
    }
    auto it = pending_.find(header->id);
    if (it == pending_.end()) {
      ++late_replies_;
      continue;
    }
    reply r;
    r.header = std::move(*header);
    if (r.header.kind == message_kind::error)
      r.error = decode_error_payload(frames[1].to_string_view(), limits_);
    else
      r.payload = received_payload(std::move(frames[1]));
    complete(it, std::move(r));
    ++done;
  }
  return done;
}

std::size_t client::expire(clock_type::time_point now) {
  std::size_t done = 0;
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    auto id = deadlines_.begin()->second;
    deadlines_.erase(deadlines_.begin());
    auto it = pending_.find(id);
    if (it == pending_.end()) continue;
    auto handler = std::move(it->second.handler);
    pending_.erase(it);
    handler(error_reply(id, {errc::timeout, "no reply before the deadline"}));
    ++done;
  }
  return done;
}

std::size_t client::fail_all(const error_info& err) {
  auto pending = std::move(pending_);
  pending_.clear();
  deadlines_.clear();
  for (auto& [id, call] : pending) call.handler(error_reply(id, err));
  return pending.size();
}

std::optional<clock_type::time_point> client::next_deadline() const {
  if (deadlines_.empty()) return std::nullopt;
  return deadlines_.begin()->first;
}

void client::complete(std::unordered_map<std::uint64_t, pending_call>::iterator it, reply&& r) {
  const auto id = it->first;
  auto handler = std::move(it->second.handler);
  auto range = deadlines_.equal_range(it->second.deadline);
  for (auto d = range.first; d != range.second; ++d)
    if (d->second == id) {
      deadlines_.erase(d);
      break;
    }
  pending_.erase(it);
  handler(std::move(r));
}

}  // namespace cohort
