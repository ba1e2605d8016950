// io_loop: the node's ZeroMQ thread. It owns every socket of the node, so CAF's
// scheduler threads never block on ZeroMQ; actors hand replies and outbound
// calls over through post(), woken by an eventfd.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <unordered_map>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "cohort/transport/client.hpp"
#include "cohort/transport/wire_limits.hpp"
#include "cohort/net/instance_pool.hpp"
#include "cohort/core/request.hpp"
#include "cohort/security/node_security.hpp"

namespace cohort::detail {

/// Counters of what the node's sockets saw. Safe to read from any thread.
struct io_counters {
  std::atomic<std::uint64_t> requests{0};          ///< well-formed requests admitted to routing
  std::atomic<std::uint64_t> rejected{0};          ///< requests answered with an error at the edge
  std::atomic<std::uint64_t> malformed_frames{0};  ///< messages that were not a valid Cohort request
  std::atomic<std::uint64_t> replies{0};           ///< replies written to a socket
  std::atomic<std::uint64_t> expired_in_transit{0};  ///< requests that arrived after their deadline: never run
  std::atomic<std::uint64_t> refused{0};             ///< requests refused by admission (unauthenticated, forbidden)
  std::atomic<std::uint64_t> refused_registrations{0};  ///< registry heartbeats not from an authenticated node (ignored)
};

class io_loop {
 public:
  /// `route` receives every admitted request (on the I/O thread).
  /// `default_deadline` applies to requests that carry none.
  io_loop(zmq::context_t& ctx, wire_limits limits, std::chrono::milliseconds default_deadline, std::chrono::microseconds spin,
          std::function<void(request_ptr)> route);
  ~io_loop();

  /// Who is who: CURVE on listening and outgoing sockets, and admission of
  /// every request. Must outlive the loop. Call before bind(). Without it
  /// nothing is authenticated (tests of the bare loop only).
  void set_security(const security::node_security* s) { security_ = s; }

  /// Binds a ROUTER socket; returns the endpoint actually bound (wildcard ports
  /// resolved). Requests on an admin socket go to `admin` instead of routing.
  /// Call before start(). Throws zmq::error_t.
  std::string bind(const std::string& endpoint, bool admin = false);
  /// How the listener bound at `endpoint` authenticates (open without security).
  [[nodiscard]] security::listener_mode mode_of(const std::string& bound_endpoint) const;

  /// Where requests from admin sockets go (on the I/O thread).
  void set_admin_handler(std::function<void(request_ptr)> admin) { admin_ = std::move(admin); }

  void start();
  /// Runs what was posted, then stops the thread and closes the sockets.
  void stop();

  /// Runs `task` on the I/O thread. Safe to call from any thread.
  void post(std::function<void()> task);
  /// True on the I/O thread itself.
  [[nodiscard]] bool on_io_thread() const noexcept { return std::this_thread::get_id() == io_thread_id_.load(); }

  /// Fails every request in flight to a remote endpoint (on the I/O thread).
  void fail_remote(const std::string& endpoint, const error_info& err);

  /// Connections to `endpoint` authenticate it by `public_key` (a cluster
  /// member's published key, checked against the trust list by the caller).
  /// On the I/O thread.
  void learn_server_key(const std::string& endpoint, const std::string& public_key);

  /// An instance of `service` at `endpoint` that a cluster member hosts
  /// (docs/cluster.md): added, or kept alive like a heartbeat would. On the
  /// I/O thread; it expires unless refreshed within the registration timeout.
  void refresh_instance(const std::string& service, const std::string& endpoint);

  /// Declares a remote service and its instances. Call before start().
  void add_remote_service(const remote_service_config& cfg);
  /// Which requests may be retried on another instance (idempotent methods,
  /// or requests with an idempotency key). Call before start().
  void set_retry_predicate(std::function<bool(const envelope&)> retryable) { retryable_ = std::move(retryable); }
  /// Which methods are internal (no client may call them). Call before start().
  void set_internal_predicate(std::function<bool(const envelope&)> internal) { internal_ = std::move(internal); }

  /// Forwards `req` to an instance of a remote service, retrying on another
  /// per the service's policy (on the I/O thread).
  void forward_remote(const std::string& service, request_ptr req);

  /// The remote services and their instances (on the I/O thread).
  [[nodiscard]] const std::map<std::string, instance_pool>& remote_services() const noexcept { return pools_; }

  /// Announces `services` at `advertise` to every registry every `period`.
  /// Call before start().
  /// `curve` says that `advertise` takes CURVE with this node's key, so that
  /// registries connect to it with the key this node authenticated with.
  void announce(std::vector<std::string> registries, std::string advertise, std::vector<std::string> services,
                std::chrono::milliseconds period, bool curve = false);
  /// The clock difference between hosts that the deadline check tolerates
  /// (see transit_ms). Call before start().
  void set_max_clock_skew(std::chrono::milliseconds skew) { max_clock_skew_ms_ = static_cast<std::uint64_t>(skew.count()); }
  /// As a registry: instances that miss this long of heartbeats are dropped.
  void set_registration_timeout(std::chrono::milliseconds t) { registration_timeout_ = t; }
  /// Heartbeats of every connection: set before bind() and before any remote is used.
  void set_liveness(liveness l) { liveness_ = l; }

  /// Runs `task` on the I/O thread after `delay` (on the I/O thread).
  void after(std::chrono::milliseconds delay, std::function<void()> task);

  [[nodiscard]] const io_counters& counters() const noexcept { return counters_; }
  /// Requests forwarded to remote instances and not answered yet (any thread).
  [[nodiscard]] std::int64_t forwarded_in_flight() const noexcept { return forwarded_.load(); }
  /// Answers every forwarded request still waiting with `err` (a drain that
  /// timed out; any thread). Their late replies are then dropped.
  std::size_t fail_forwarded(const error_info& err) { return forwarded_.fail_all(err); }

 private:
  struct listener {
    zmq::socket_t socket;
    std::string endpoint;
    bool admin = false;
    security::listener_mode mode = security::listener_mode::open;
    int fd = -1;            ///< ZMQ_FD: readable when the socket has news
    bool may_read = true;   ///< after a send, or a read that stopped early: read whatever fd says
  };

  void run();
  /// Reads up to a batch; returns how many messages it handled.
  std::size_t read_listener(std::size_t index);
  void handle_message(std::size_t index, std::vector<zmq::message_t>& frames);
  /// A reply on its way out: encoded by the thread that produced it, sent by the I/O thread.
  struct outgoing_reply {
    std::size_t listener;
    std::string identity;
    bool delimiter;
    std::uint64_t ticket;  ///< with `deadline`: the request's entry in the deadline index (0: none)
    std::chrono::steady_clock::time_point deadline;
    std::string header;
    std::string payload;
  };
  /// Queues a reply for the I/O thread. Safe to call from any thread.
  void post_reply(outgoing_reply&& r);
  void send_reply(outgoing_reply& r);  ///< moves the payload into its frame
  void wake();
  void reject(std::size_t index, const std::string& identity, bool delimiter, std::uint64_t id,
              const error_info& err);
  /// Runs what was posted; `signalled`: the eventfd is readable (drain it).
  void run_posted(bool signalled);
  /// After an item was queued and counted: writes the eventfd if the I/O thread sleeps.
  void wake_if_sleeping(bool was_empty);
  /// The connection to `endpoint`, made on first use with the keys security
  /// gives for it; nullptr (and `why`) when this node will not talk to it.
  client* remote_client(const std::string& endpoint, error_info* why = nullptr);
  /// Answers `timeout` for every request from our sockets whose deadline passed,
  /// however long its handler still runs; returns the next deadline.
  std::optional<std::chrono::steady_clock::time_point> expire_requests(std::chrono::steady_clock::time_point now);

  void forget_deadline(std::uint64_t ticket, std::chrono::steady_clock::time_point deadline);

  /// First member, so destroyed last: the forwarded requests that hold it
  /// live in the clients and timers below.
  in_flight_set forwarded_;
  zmq::context_t& ctx_;
  wire_limits limits_;
  std::chrono::milliseconds default_deadline_;
  std::uint64_t max_clock_skew_ms_ = 250;
  std::chrono::microseconds spin_;
  std::function<void(request_ptr)> route_;
  std::function<void(request_ptr)> admin_;
  // Deadlines of the requests our sockets admitted, in order; an entry leaves
  // when its reply passes through this thread, so the index holds only what
  // is in flight. I/O thread only.
  /// Requests from our sockets by (deadline, ticket): the earliest first, and
  /// found again by their reply, which carries both (one node per request).
  using deadline_index = std::map<std::pair<std::chrono::steady_clock::time_point, std::uint64_t>, std::weak_ptr<request>>;
  deadline_index deadlines_;
  std::uint64_t next_ticket_ = 0;
  std::vector<listener> listeners_;
  void heartbeat();
  void on_registration(const request_ptr& req, const std::string& sender_key);
  void expire_registrations();
  instance_pool& pool_for(const std::string& service);

  struct announcement {
    std::vector<std::string> registries;
    std::string payload;  ///< msgpack {node endpoint, services}
    std::chrono::milliseconds period{500};
  };
  std::optional<announcement> announcement_;
  std::chrono::milliseconds registration_timeout_{1500};
  liveness liveness_;

  void attempt(instance_pool& pool, request_ptr req, std::vector<instance_pool::instance_ptr> tried);

  std::map<std::string, std::unique_ptr<client>> remotes_;
  /// Subscriptions forwarded to a remote instance (a service process, another
  /// node): (endpoint, our request id there) -> where its events go and the
  /// subscriber's own request id. Ended by the `_end` that passes through or
  /// by the connection's retirement; bounded.
  struct relayed_stream {
    reply_sink sink;
    std::uint64_t id = 0;
    std::string service;
  };
  std::map<std::pair<std::string, std::uint64_t>, relayed_stream> streams_;
  static constexpr std::size_t max_relayed_streams = 65536;
  /// Server keys of registered instances (from the key they authenticated with).
  std::unordered_map<std::string, std::string> server_keys_;
  const security::node_security* security_ = nullptr;
  std::map<std::string, instance_pool> pools_;
  /// Connections taken out of use (a breaker's trial gets a new one; dead
  /// registered instances lose theirs). Destroyed at the start of the next
  /// poll round: this round may still hold pointers to them.
  std::vector<std::unique_ptr<client>> retired_;
  void retire_client(const std::string& endpoint);
  /// Bounds on what heartbeats may register.
  static constexpr std::size_t max_registered_services = 256;
  static constexpr std::size_t max_instances_per_service = 64;
  static constexpr std::size_t max_endpoint_length = 256;
  std::function<bool(const envelope&)> retryable_;
  std::function<bool(const envelope&)> internal_;
  std::minstd_rand jitter_{std::random_device{}()};
  std::multimap<std::chrono::steady_clock::time_point, std::function<void()>> timers_;
  int wake_fd_ = -1;
  /// Set by the I/O thread while it sleeps in poll (or is about to): only
  /// then do producers pay for the eventfd write. A spinning or busy I/O
  /// thread finds their work through pending_ at the top of its loop.
  std::atomic<bool> sleeping_{false};
  /// Tasks and replies queued and not yet taken (producers add, run_posted takes).
  std::atomic<std::size_t> pending_{0};
  std::mutex posted_mutex_;
  std::vector<std::function<void()>> posted_;
  std::vector<outgoing_reply> replies_;
  /// What run_posted() drains into, swapped with the two above: each pair of
  /// vectors keeps its capacity, so a reply queued by a worker is not a
  /// reallocation of a vector the last drain left empty.
  std::vector<std::function<void()>> draining_posted_;
  std::vector<outgoing_reply> draining_replies_;
  /// When the I/O thread's current round's poll returned (its thread only).
  std::chrono::steady_clock::time_point round_started_ = std::chrono::steady_clock::now();
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  /// Set by the I/O thread itself as it starts: thread_ is assigned only
  /// after the thread runs, so reading thread_.get_id() there would race.
  std::atomic<std::thread::id> io_thread_id_{};
  io_counters counters_;
};

}  // namespace cohort::detail
