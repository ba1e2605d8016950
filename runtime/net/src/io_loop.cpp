#include "cohort/net/io_loop.hpp"

#include <algorithm>
#include <random>
#include <sys/eventfd.h>
#include <unistd.h>

#include "cohort/log/log.hpp"
#include "cohort/log/thread_name.hpp"
#include <spdlog/spdlog.h>
#include <zmq_addon.hpp>

#include "cohort/observability/trace_context.hpp"
#include "cohort/transport/envelope_codec.hpp"
#include "cohort/transport/frame.hpp"
#include "cohort/transport/message_fields.hpp"
#include "cohort/transport/poll.hpp"

namespace cohort::detail {

namespace {

using clock_type = std::chrono::steady_clock;

// Messages read from one socket before the loop looks at the others.
constexpr int read_batch = 256;


}  // namespace

io_loop::io_loop(zmq::context_t& ctx, wire_limits limits, std::chrono::milliseconds default_deadline, std::chrono::microseconds spin,
                 std::function<void(request_ptr)> route)
    : ctx_(ctx), limits_(limits), default_deadline_(default_deadline), spin_(spin), route_(std::move(route)) {
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
}

io_loop::~io_loop() {
  stop();
  ::close(wake_fd_);
}

std::string io_loop::bind(const std::string& endpoint, bool admin) {
  zmq::socket_t s(ctx_, zmq::socket_type::router);
  s.set(zmq::sockopt::linger, 0);
  s.set(zmq::sockopt::maxmsgsize, limits_.hard_frame_bytes);
  s.set(zmq::sockopt::sndhwm, 100000);
  s.set(zmq::sockopt::rcvhwm, 100000);
  // A peer that went silent is dropped and its resources freed by TCP
  // keepalive, not by ZeroMQ heartbeats: with heartbeats, a client that
  // fills this socket's receive queue and disconnects made libzmq 4.3.4 abort
  // the whole node (zeromq/libzmq#4364; see set_liveness). Clients still
  // heartbeat us (we answer their pings), so they notice a dead node fast.
  if (liveness_.heartbeat.count() > 0) {
    s.set(zmq::sockopt::tcp_keepalive, 1);
    s.set(zmq::sockopt::tcp_keepalive_idle, 10);
    s.set(zmq::sockopt::tcp_keepalive_intvl, 2);
    s.set(zmq::sockopt::tcp_keepalive_cnt, 3);
  }
  auto mode = security_ ? security_->secure_listener(s, endpoint, admin ? security::front::admin : security::front::clients)
                        : security::listener_mode::open;
  s.bind(endpoint);
  auto bound = s.get(zmq::sockopt::last_endpoint);
  const int fd = s.get(zmq::sockopt::fd);
  listeners_.push_back({std::move(s), bound, admin, mode, fd});
  return bound;
}

security::listener_mode io_loop::mode_of(const std::string& bound_endpoint) const {
  for (const auto& l : listeners_)
    if (l.endpoint == bound_endpoint) return l.mode;
  return security::listener_mode::open;
}

void io_loop::start() {
  if (announcement_) after(std::chrono::milliseconds(0), [this] { heartbeat(); });
  after(registration_timeout_ / 3, [this] { expire_registrations(); });
  thread_ = std::thread([this] {
    log::name_this_thread("cohort-io");
    io_thread_id_.store(std::this_thread::get_id());
    run();
  });
}

namespace {
struct registration {
  std::string endpoint;
  std::vector<std::string> services;
  bool curve = false;  ///< the endpoint takes CURVE with the key the heartbeat came with
  COHORT_FIELDS(endpoint, services, curve);
};
}  // namespace

void io_loop::announce(std::vector<std::string> registries, std::string advertise, std::vector<std::string> services,
                       std::chrono::milliseconds period, bool curve) {
  announcement_ =
      announcement{std::move(registries), pack(registration{std::move(advertise), std::move(services), curve}), period};
}

void io_loop::heartbeat() {
  for (const auto& r : announcement_->registries) {
    error_info why;
    if (auto* c = remote_client(r, &why))
      c->send_oneway("_registry", "heartbeat", announcement_->payload);
    else
      log::get("net")->warn("registry {}: not announcing: {}", r, why.message);
  }
  after(announcement_->period, [this] { heartbeat(); });
}

instance_pool& io_loop::pool_for(const std::string& service) {
  auto it = pools_.find(service);
  if (it == pools_.end()) {
    remote_service_config cfg;  // defaults for services known only from heartbeats
    cfg.name = service;
    it = pools_.emplace(service, instance_pool(cfg)).first;
  }
  return it->second;
}

void io_loop::on_registration(const request_ptr& req, const std::string& sender_key) {
  auto handle = decode_payload(req->payload, limits_);
  if (!handle) return;
  try {
    registration r;
    handle->get().convert(r);
    if (r.endpoint.empty() || r.endpoint.size() > max_endpoint_length) return;
    // The endpoint is reached with the key its node authenticated with here,
    // never with a key the payload names.
    if (r.curve && !sender_key.empty()) {
      auto& known = server_keys_[r.endpoint];
      if (known != sender_key) {
        if (!known.empty()) {
          log::get("net")->warn("registry: {} now registers with another node key; reconnecting with it", r.endpoint);
          retire_client(r.endpoint);
        }
        known = sender_key;
      }
    }
    auto now = clock_type::now();
    for (const auto& s : r.services) {
      // Bounded: a flood of made-up services or instances costs a warning, not memory.
      if (s.empty() || s.size() > max_endpoint_length) continue;
      auto it = pools_.find(s);
      if (it == pools_.end() && pools_.size() >= max_registered_services) {
        log::get("net")->warn("registry: ignoring '{}' from {}: {} services known already", s, r.endpoint, pools_.size());
        continue;
      }
      auto& pool = pool_for(s);
      bool known = false;
      for (const auto& i : pool.instances()) known = known || i->endpoint == r.endpoint;
      if (!known && pool.instances().size() >= max_instances_per_service) {
        log::get("net")->warn("registry: ignoring instance {} of '{}': {} known already", r.endpoint, s, pool.instances().size());
        continue;
      }
      pool.add(r.endpoint, true, now);
    }
  } catch (const std::exception&) {
    counters_.malformed_frames++;
  }
}

void io_loop::expire_registrations() {
  auto now = clock_type::now();
  std::vector<std::string> gone_endpoints;
  // Pools stay (at most max_registered_services; retries in flight refer to
  // them); their dead instances and those instances' connections go.
  for (auto& [name, pool] : pools_)
    for (const auto& gone : pool.expire(now, registration_timeout_)) {
      fail_remote(gone, {errc::unavailable, "instance " + gone + " of '" + name + "' stopped sending heartbeats"});
      gone_endpoints.push_back(gone);
    }
  // Close the connections nobody routes to any more (they were polled forever).
  for (const auto& endpoint : gone_endpoints) {
    bool used = false;
    for (const auto& [name, pool] : pools_)
      for (const auto& i : pool.instances()) used = used || i->endpoint == endpoint;
    if (!used && !(announcement_ && std::count(announcement_->registries.begin(), announcement_->registries.end(), endpoint)))
      retire_client(endpoint);
  }
  after(registration_timeout_ / 3, [this] { expire_registrations(); });
}

void io_loop::stop() {
  if (!thread_.joinable()) return;
  stopping_.store(true);
  post([] {});
  thread_.join();
  remotes_.clear();
  for (auto& l : listeners_) l.socket.close();
}

void io_loop::wake() {
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
}

void io_loop::post(std::function<void()> task) {
  bool was_empty;
  {
    std::lock_guard<std::mutex> guard(posted_mutex_);
    was_empty = posted_.empty() && replies_.empty();
    posted_.push_back(std::move(task));
    pending_.fetch_add(1, std::memory_order_seq_cst);
  }
  wake_if_sleeping(was_empty);
}

void io_loop::wake_if_sleeping(bool was_empty) {
  // Dekker with run(): the producer counted its item (pending_), then looks
  // whether the I/O thread sleeps; it says it sleeps, then looks at the
  // count. One of us sees the other (both seq_cst), so an item never waits
  // for poll's timeout.
  // Only the first item of a batch pays for the wake-up syscall, and only
  // when the I/O thread is not awake anyway.
  if (was_empty && sleeping_.load(std::memory_order_seq_cst)) wake();
}

void io_loop::post_reply(outgoing_reply&& r) {
  // Replies made on this thread (forwarded from a remote instance, refused at
  // the edge) go out at once: no queue, no wake-up.
  if (on_io_thread()) {
    forget_deadline(r.ticket, r.deadline);
    send_reply(r);
    return;
  }
  bool was_empty;
  {
    std::lock_guard<std::mutex> guard(posted_mutex_);
    was_empty = posted_.empty() && replies_.empty();
    replies_.push_back(std::move(r));
    pending_.fetch_add(1, std::memory_order_seq_cst);
  }
  wake_if_sleeping(was_empty);
}

void io_loop::run_posted(bool signalled) {
  if (signalled) {
    std::uint64_t drained;
    [[maybe_unused]] auto n = ::read(wake_fd_, &drained, sizeof drained);
  }
  auto& tasks = draining_posted_;
  auto& replies = draining_replies_;
  {
    std::lock_guard<std::mutex> guard(posted_mutex_);
    tasks.swap(posted_);
    replies.swap(replies_);
    pending_.fetch_sub(tasks.size() + replies.size(), std::memory_order_relaxed);
  }
  for (auto& r : replies) {
    forget_deadline(r.ticket, r.deadline);
    send_reply(r);
  }
  // A task that posts adds to posted_, never to this vector.
  for (auto& t : tasks) t();
  // Capacity kept for the next round, unless a burst grew it past the usual.
  constexpr std::size_t kept_capacity = 1024;
  replies.clear();
  tasks.clear();
  if (replies.capacity() > kept_capacity) std::vector<outgoing_reply>().swap(replies);
  if (tasks.capacity() > kept_capacity) std::vector<std::function<void()>>().swap(tasks);
}

void io_loop::run() {
  // Polls ZeroMQ's notification fds itself rather than calling zmq_poll: that
  // asks every socket for its events before and after its poll (each a
  // getpid and a poll of the socket's mailbox: libzmq's fork check and
  // signaler), which was most of this thread's syscalls. A socket is read
  // when its fd fires or it may hold unannounced messages (`may_read`: after a
  // send, which can take the signal, or a read that stopped at its batch);
  // a read that finds it empty re-arms the fd.
  std::vector<::pollfd> fds;
  std::vector<client*> polled_remotes;
  auto spin_until = clock_type::now();
  while (!stopping_.load(std::memory_order_relaxed)) {
    fds.clear();
    polled_remotes.clear();
    retired_.clear();  // no pointer to them is left from the last round
    for (auto& l : listeners_) fds.push_back({l.fd, POLLIN, 0});
    fds.push_back({wake_fd_, POLLIN, 0});
    // One clock read before the poll and one after it, per round: the spin
    // goes round many times between two requests.
    auto now = clock_type::now();
    std::optional<clock_type::time_point> next_deadline = expire_requests(now);
    while (!timers_.empty() && timers_.begin()->first <= now) {
      auto task = std::move(timers_.begin()->second);
      timers_.erase(timers_.begin());
      task();
    }
    if (!timers_.empty() && (!next_deadline || timers_.begin()->first < *next_deadline))
      next_deadline = timers_.begin()->first;
    // After the timers, which may have sent: a socket sent on is read before sleeping.
    bool ready_now = pending_.load(std::memory_order_relaxed) > 0;
    for (auto& l : listeners_) ready_now = ready_now || l.may_read;
    for (auto& [ep, c] : remotes_) {
      fds.push_back({c->fd(), POLLIN, 0});
      polled_remotes.push_back(c.get());
      ready_now = ready_now || c->may_read();
      if (auto d = c->next_deadline(); d && (!next_deadline || *d < *next_deadline)) next_deadline = d;
    }
    auto timeout = std::chrono::milliseconds(100);
    if (next_deadline)
      timeout = std::clamp(std::chrono::duration_cast<std::chrono::milliseconds>(*next_deadline - now) +
                               std::chrono::milliseconds(1),
                           std::chrono::milliseconds(0), timeout);
    // Under load, poll without sleeping for a short while after the last
    // event: a thread that goes to sleep between two requests costs two
    // context switches to wake, more than the polls it saves.
    const bool spinning = now < spin_until;
    auto wait = spinning || ready_now ? std::chrono::milliseconds(0) : timeout;
    if (wait.count() > 0) {
      // About to sleep: say so, then look for work posted before we said it.
      sleeping_.store(true, std::memory_order_seq_cst);
      if (pending_.load(std::memory_order_seq_cst) > 0) wait = std::chrono::milliseconds(0);
    }
    poll_fds(fds.data(), fds.size(), wait);
    sleeping_.store(false, std::memory_order_relaxed);
    now = clock_type::now();
    round_started_ = now;
    const bool signalled = fds[listeners_.size()].revents & POLLIN;
    const bool posted = signalled || pending_.load(std::memory_order_relaxed) > 0;
    std::size_t handled = posted ? 1 : 0;
    for (std::size_t i = 0; i < listeners_.size(); ++i)
      if (listeners_[i].may_read || (fds[i].revents & POLLIN)) handled += read_listener(i);
    if (posted) run_posted(signalled);
    now = clock_type::now();
    for (std::size_t i = 0; i < polled_remotes.size(); ++i) {
      auto* c = polled_remotes[i];
      if (c->may_read() || (fds[listeners_.size() + 1 + i].revents & POLLIN)) handled += c->process_ready();
      c->expire(now);
    }
    if (handled > 0)
      spin_until = now + spin_;
    else if (spinning)
      std::this_thread::yield();  // let the threads we wait for run
  }
  run_posted(true);  // replies produced while stopping still go out
}

std::size_t io_loop::read_listener(std::size_t index) {
  auto& l = listeners_[index];
  std::vector<zmq::message_t> frames;
  std::size_t handled = 0;
  for (int i = 0; i < read_batch; ++i) {
    frames.clear();
    std::optional<size_t> got;
    try {
      got = zmq::recv_multipart(l.socket, std::back_inserter(frames), zmq::recv_flags::dontwait);
    } catch (const zmq::error_t& e) {
      l.may_read = e.num() == EINTR;  // otherwise its fd says when to try again
      if (e.num() != EINTR) counters_.malformed_frames++;
      return handled;
    }
    if (!got) {
      l.may_read = false;  // read to empty: the fd is armed again
      return handled;
    }
    handle_message(index, frames);
    ++handled;
  }
  l.may_read = true;  // stopped at the batch: more may be queued, unannounced
  return handled;
}

void io_loop::handle_message(std::size_t index, std::vector<zmq::message_t>& frames) {
  // frames: [identity, (empty delimiter from REQ peers)?, header, payload]
  std::string identity = frames[0].to_string();
  std::size_t first = 1;
  bool delimiter = false;
  if (frames.size() > 1 && frames[1].size() == 0) {
    delimiter = true;
    first = 2;
  }
  std::size_t parts = frames.size() - first;
  std::uint64_t id = 0;
  if (parts == 0) {
    // One empty frame (from a DEALER: a REQ peer always sends a body after
    // its delimiter). The identity is enough to route an answer.
    counters_.malformed_frames++;
    return reject(index, identity, false, 0,
                  {errc::bad_request, "an empty message; a request is two frames, header and payload"});
  }
  auto header = decode_envelope(frames[first].to_string_view(), limits_, &id);
  if (parts != 2) {
    counters_.malformed_frames++;
    return reject(index, identity, delimiter, id,
                  {errc::bad_request, "a request is exactly two frames, header and payload; got " +
                                          std::to_string(parts)});
  }
  if (!header) {
    counters_.malformed_frames++;
    return reject(index, identity, delimiter, id, header.error());
  }
  envelope& env = *header;
  if (env.kind != message_kind::request && env.kind != message_kind::oneway) {
    counters_.malformed_frames++;
    return reject(index, identity, delimiter, id,
                  {errc::bad_request, "a node accepts only 'request' and 'oneway' messages"});
  }
  if (frames[first + 1].size() > limits_.max_payload_bytes)
    return reject(index, identity, delimiter, id,
                  {errc::too_large, "payload of " + std::to_string(frames[first + 1].size()) +
                                        " bytes exceeds the limit of " + std::to_string(limits_.max_payload_bytes)});
  // Who sent it, and may they? Taken from the connection's key, never from the header.
  bool from_node = false;
  std::string sender_key;
  if (security_) {
    const char* user = zmq_msg_gets(frames[first].handle(), "User-Id");
    if (user) sender_key = user;
    if (auto refused = security_->admit(listeners_[index].mode,
                                        listeners_[index].admin ? security::front::admin : security::front::clients,
                                        sender_key, env, &from_node, internal_ && internal_(env))) {
      counters_.refused++;
      if (env.service == "_registry") {
        counters_.refused_registrations++;
        log::get("net")->warn("registry: ignored a heartbeat not sent by an authenticated node ({})", refused->message);
      }
      log::get("net")->warn("refused {}.{} from '{}': {}", env.service, env.method, env.caller.empty() ? "?" : env.caller,
                   refused->message);
      if (env.kind != message_kind::request) return;
      return reject(index, identity, delimiter, env.id, *refused);
    }
  } else {
    from_node = true;
    env.caller = security::anonymous_caller;
  }
  if (env.trace.empty()) {
    auto ctx = env.traceparent.empty() ? std::nullopt : observability::parse_traceparent(env.traceparent);
    env.trace = ctx ? ctx->trace_id : new_trace_id();
  }
  if (env.deadline_ms == 0) env.deadline_ms = static_cast<std::uint32_t>(default_deadline_.count());
  // The budget started when the sender sent it: time spent in queues and on
  // the wire (a partition holds requests for as long as it lasts) counts.
  // (The wall clock is read only for a sender that stamped its send time.)
  if (auto transit = env.sent_ms ? transit_ms(env, wall_clock_ms(), max_clock_skew_ms_) : 0; transit > 0) {
    if (transit >= env.deadline_ms) {
      counters_.expired_in_transit++;
      if (env.kind != message_kind::request) return;
      return reject(index, identity, delimiter, env.id,
                    {errc::timeout, env.service + "." + env.method + " arrived " + std::to_string(transit) +
                                        " ms late for its deadline of " + std::to_string(env.deadline_ms) +
                                        " ms and was not run"});
    }
    env.deadline_ms -= static_cast<std::uint32_t>(transit);
  }
  env.sent_ms = 0;  // from here on the node's own clock counts
  // From when this round's poll returned: the request had arrived by then, so
  // the deadline is if anything a little early, never late.
  auto deadline = round_started_ + std::chrono::milliseconds(env.deadline_ms);
  auto ticket = ++next_ticket_;
  // Events of a subscription go back the same way, any number of times (no
  // deadline to forget). Made for subscriptions only: a sink is an allocation.
  reply_sink stream;
  if (env.method == "_subscribe")
    stream = [this, index, identity, delimiter](const envelope& h, payload_bytes&& p) {
      post_reply({index, identity, delimiter, 0, {}, encode_envelope(h), std::move(p).take()});
    };
  reply_sink sink = [this, index, identity = std::move(identity), delimiter, ticket, deadline](const envelope& h,
                                                                                            payload_bytes&& p) {
    // Any thread: encode here (a result still a value is packed here too),
    // then hop onto the I/O thread, which owns the socket.
    post_reply({index, identity, delimiter, ticket, deadline, encode_envelope(h), std::move(p).take()});
  };
  counters_.requests++;
  auto req = std::make_shared<request>(std::move(env), received_payload(std::move(frames[first + 1])), deadline,
                                       std::move(sink));
  req->made = round_started_;
  if (req->header.method == "_subscribe") req->stream = std::move(stream);
  if (req->header.kind == message_kind::request)
    deadlines_.emplace(std::make_pair(deadline, ticket), req);
  if (req->header.service == "_registry") {
    if (!from_node) {
      counters_.refused_registrations++;
      return;
    }
    on_registration(req, sender_key);  // heartbeats are one-way: nothing to answer
    return;
  }
  if (listeners_[index].admin && admin_)
    admin_(std::move(req));
  else
    route_(std::move(req));
}

void io_loop::forget_deadline(std::uint64_t ticket, clock_type::time_point deadline) {
  if (ticket != 0) deadlines_.erase(std::make_pair(deadline, ticket));
}

std::optional<clock_type::time_point> io_loop::expire_requests(clock_type::time_point now) {
  while (!deadlines_.empty()) {
    auto first = deadlines_.begin();
    if (first->first.first > now) return first->first.first;
    auto req = first->second.lock();
    deadlines_.erase(first);
    if (!req) continue;
    req->fail({errc::timeout, "no reply from " + req->header.service + "." + req->header.method +
                                  " within its deadline of " + std::to_string(req->header.deadline_ms) + " ms"});
  }
  return std::nullopt;
}

void io_loop::send_reply(outgoing_reply& r) {
  auto& l = listeners_[r.listener];
  auto& s = l.socket;
  l.may_read = true;  // a send may take the signal of a request that arrived meanwhile
  try {
    s.send(zmq::buffer(r.identity), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
    if (r.delimiter) s.send(zmq::const_buffer(), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
    s.send(zmq::buffer(r.header), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
    s.send(frame_of(std::move(r.payload)), zmq::send_flags::dontwait);  // large payloads are not copied
    counters_.replies++;
  } catch (const zmq::error_t&) {
    // The peer is gone or not reading; ROUTER drops what it cannot route.
  }
}

void io_loop::reject(std::size_t index, const std::string& identity, bool delimiter, std::uint64_t id,
                     const error_info& err) {
  counters_.rejected++;
  envelope h;
  h.kind = message_kind::error;
  h.id = id;
  outgoing_reply r{index, identity, delimiter, 0, {}, encode_envelope(h), encode_error_payload(err)};
  send_reply(r);
}

void io_loop::retire_client(const std::string& endpoint) {
  auto it = remotes_.find(endpoint);
  if (it == remotes_.end()) return;
  retired_.push_back(std::move(it->second));
  remotes_.erase(it);
  // Subscriptions relayed over it end here: their subscribers subscribe again.
  for (auto s = streams_.lower_bound({endpoint, 0}); s != streams_.end() && s->first.first == endpoint;) {
    envelope h;
    h.kind = message_kind::event;
    h.id = s->second.id;
    h.service = s->second.service;
    h.method = "_end";
    s->second.sink(std::move(h), encode_error_payload({errc::unavailable, "the connection to " + endpoint + " was closed"}));
    s = streams_.erase(s);
  }
}

client* io_loop::remote_client(const std::string& endpoint, error_info* why) {
  auto it = remotes_.find(endpoint);
  if (it != remotes_.end()) return it->second.get();
  std::optional<curve_client_keys> keys;
  if (security_) {
    auto known = server_keys_.find(endpoint);
    auto found = security_->client_keys(endpoint, known == server_keys_.end() ? std::string() : known->second);
    if (!found) {
      if (why) *why = found.error();
      return nullptr;
    }
    keys = *found;
  }
  auto& c = remotes_[endpoint];
  c = std::make_unique<client>(ctx_, endpoint, limits_, liveness_, keys);
  // Events of subscriptions forwarded there: on to their subscribers.
  c->on_event([this, endpoint](envelope&& h, std::string&& p) {
    auto it = streams_.find({endpoint, h.id});
    if (it == streams_.end()) return;
    const bool ended = h.method == "_end";
    h.id = it->second.id;
    it->second.sink(std::move(h), std::move(p));
    if (ended) streams_.erase(it);
  });
  return c.get();
}

void io_loop::fail_remote(const std::string& endpoint, const error_info& err) {
  if (auto it = remotes_.find(endpoint); it != remotes_.end()) it->second->fail_all(err);
}

void io_loop::learn_server_key(const std::string& endpoint, const std::string& public_key) {
  auto& known = server_keys_[endpoint];
  if (known == public_key) return;
  if (!known.empty()) retire_client(endpoint);
  known = public_key;
}

void io_loop::refresh_instance(const std::string& service, const std::string& endpoint) {
  if (pools_.find(service) == pools_.end() && pools_.size() >= max_registered_services) return;
  pool_for(service).add(endpoint, true, clock_type::now());
}

void io_loop::add_remote_service(const remote_service_config& cfg) {
  pools_.emplace(cfg.name, instance_pool(cfg));
}

void io_loop::after(std::chrono::milliseconds delay, std::function<void()> task) {
  timers_.emplace(clock_type::now() + delay, std::move(task));
}

void io_loop::forward_remote(const std::string& service, request_ptr req) {
  auto it = pools_.find(service);
  if (it == pools_.end()) {
    req->fail({errc::unknown_service, "no service named '" + service + "' is reachable from this node"});
    return;
  }
  auto& pool = it->second;
  std::int64_t in_flight = 0;
  for (const auto& i : pool.instances()) in_flight += i->outstanding;
  if (in_flight >= static_cast<std::int64_t>(pool.config().max_in_flight)) {
    pool.bulkhead_rejections++;
    req->fail({errc::overloaded, "'" + service + "' has " + std::to_string(in_flight) +
                                     " requests in flight from this node; retry later"});
    return;
  }
  pool.retry_tokens = std::min(100.0, pool.retry_tokens + pool.config().retry_budget);
  // Counted until answered: a node that drains waits for these too.
  if (!req->held()) req->hold(&forwarded_);
  attempt(pool, std::move(req), {});
}

void io_loop::attempt(instance_pool& pool, request_ptr req, std::vector<instance_pool::instance_ptr> tried) {
  auto left = req->remaining();
  if (left.count() <= 0) {
    req->fail({errc::timeout, "deadline passed before " + req->header.service + "." + req->header.method + " was answered"});
    return;
  }
  auto now = clock_type::now();
  auto instance = pool.pick(req->header, tried, now);
  if (!instance) {
    req->fail({errc::unavailable, "no instance of '" + req->header.service + "' is available (" +
                                      std::to_string(pool.instances().size()) + " known, " +
                                      std::to_string(tried.size()) + " tried)"});
    return;
  }
  if (!tried.empty()) instance->retries++;
  tried.push_back(instance);
  // A breaker's trial goes over a new connection: the old one may be the
  // stalled TCP stream that opened the breaker (nothing else is on it now).
  if (instance->state == service_instance::breaker::half_open)
    if (auto c = remotes_.find(instance->endpoint); c != remotes_.end() && c->second->in_flight() == 0)
      retire_client(instance->endpoint);
  const auto& cfg = pool.config();
  auto budget = cfg.attempt_timeout.count() > 0 ? std::min(left, cfg.attempt_timeout) : left;
  error_info refused;
  client* remote = remote_client(instance->endpoint, &refused);
  if (!remote) {
    req->fail(refused);
    return;
  }
  instance->outstanding++;
  envelope env = req->header;
  const bool subscribe = req->stream && req->header.method == "_subscribe";
  auto sent_id = remote->call_async(std::move(env), req->payload.str(), budget,
                  [this, &pool, req, instance, tried = std::move(tried), subscribe](reply&& r) mutable {
                    instance->outstanding--;
                    if (subscribe && r.error) streams_.erase({instance->endpoint, r.header.id});
                    // An instance failed when it did not answer in time or could not be reached;
                    // an error it answered with (even `unavailable` from its service) is its answer.
                    const bool failed = r.error && r.local;
                    pool.record(instance, failed, clock_type::now());
                    const auto& cfg = pool.config();
                    if (failed && tried.size() <= cfg.max_retries && retryable_ && retryable_(req->header) &&
                        pool.retry_tokens >= 1 && req->remaining().count() > 0) {
                      pool.retry_tokens -= 1;
                      // Backoff with jitter before trying elsewhere; capped by what is left.
                      auto backoff = std::chrono::milliseconds(
                          std::min<std::int64_t>(5 * (1 << std::min<std::size_t>(tried.size(), 6)) + static_cast<std::int64_t>(jitter_() % 5),
                                                 std::max<std::int64_t>(0, req->remaining().count() / 4)));
                      after(backoff, [this, &pool, req, tried] { attempt(pool, req, tried); });
                      return;
                    }
                    // The owner of a shard names itself in its reply (shard, epoch): passed back as it came.
                    req->header.shard = r.header.shard;
                    req->header.epoch = r.header.epoch;
                    if (r.error)
                      req->fail(*r.error);
                    else
                      req->respond(std::move(r.payload));
                  });
  if (subscribe && !req->answered()) {
    if (streams_.size() >= max_relayed_streams) streams_.erase(streams_.begin());
    streams_[{instance->endpoint, sent_id}] = {req->stream, req->header.id, req->header.service};
  }
}

}  // namespace cohort::detail
