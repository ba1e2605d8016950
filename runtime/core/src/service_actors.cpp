// The actors that run a service's handlers: stateless workers and keyed
// entity actors, and the method_runner that runs handlers inside them.
#include <boost/core/demangle.hpp>
#include <algorithm>
#include <cstring>
#include <deque>
#include <optional>

#include "cohort/core/actor_messages.hpp"
#include "cohort/core/blocking_pool.hpp"
#include "cohort/transport/envelope_codec.hpp"
#include "cohort/core/entity_persistence.hpp"
#include "cohort/core/outbox.hpp"
#include "cohort/log/log.hpp"
#include "cohort/observability/trace_context.hpp"

namespace cohort::detail {

namespace {

using clock_type = std::chrono::steady_clock;

/// A request's trace as the node's route set it: views into its traceparent
/// ("00-<trace>-<span>-<flags>", this hop's span). Not valid when tracing is off.
struct hop_trace {
  std::string_view trace_id, span_id;
  bool sampled = false;
  bool valid = false;
};

hop_trace trace_of(const envelope& h) {
  hop_trace t;
  std::string_view tp = h.traceparent;
  if (tp.size() != observability::traceparent_size) return t;
  t.trace_id = tp.substr(observability::traceparent_trace_at, 32);
  t.span_id = tp.substr(observability::traceparent_span_at, 16);
  t.sampled = tp.substr(53) == "01";  // the node wrote it (write_traceparent): "01" or "00"
  t.valid = true;
  return t;
}

/// A request's arguments decoded in place, into `zone` (made here, sized to
/// them): their strings point into the request's payload.
result<msgpack::object> decode_args(const request& req, const wire_limits& limits, std::optional<msgpack::zone>& zone) {
  zone.emplace(payload_zone_block(req.payload.size()));
  return decode_payload_in_place(req.payload, limits, *zone);
}

/// Records the span of a request's durable write (one entity's batch in a group commit).
void record_write_span(observability::tracer& tracer, const envelope& h, std::uint64_t start, const result<bool>& written) {
  auto t = trace_of(h);
  if (!t.sampled && written) return;  // the tracer keeps only sampled or failed spans: not built for nothing
  observability::span s;
  s.trace_id = std::string(t.trace_id);
  s.span_id = observability::new_span_id();
  s.parent_span_id = std::string(t.span_id);
  s.name = "store.commit";
  s.service = h.service;
  s.kind = observability::span_kind::internal;
  s.start_ns = start;
  s.end_ns = observability::unix_ns();
  if (!written) s.code = written.error().code;
  s.attributes = {{"db.system", "rocksdb"}, {"cohort.key", h.key}, {"cohort.node", tracer.node()}};
  tracer.record(std::move(s), t.sampled);
}

/// The log context of a handler running for `h` in `actor`.
log::context log_context_of(const envelope& h, const std::string& actor) {
  auto t = trace_of(h);
  log::context c;
  c.service = h.service;
  c.actor = actor;
  c.trace_id = t.valid ? t.trace_id : std::string_view(h.trace);
  c.span_id = t.span_id;
  c.caller = h.caller;
  return c;
}

std::string exception_name(const std::exception& e) { return boost::core::demangle(typeid(e).name()); }

/// Marks a handler as running for the watchdog: a worker in its own activity
/// record, an entity in its scheduler thread's slot of the service.
class busy_marker {
 public:
  busy_marker(clock_type::time_point since, handler_activity* worker, service_runtime* entity_service,
              const std::string* method, const std::string* child)
      : worker_(worker) {
    auto now = since.time_since_epoch().count();
    if (worker_) {
      worker_->method.store(method, std::memory_order_relaxed);
      worker_->busy_since_ns.store(now, std::memory_order_release);
      return;
    }
    if (!entity_service) return;
    static std::atomic<std::size_t> next_ordinal{0};
    thread_local const std::size_t ordinal = next_ordinal.fetch_add(1);
    auto& slot = entity_service->entity_activity[ordinal % service_runtime::entity_activity_slots];
    std::lock_guard<std::mutex> guard(slot.m);
    if (slot.busy_since_ns.load(std::memory_order_relaxed) != 0) return;  // another thread's: unwatched
    slot.child = child;
    slot.method.store(method, std::memory_order_relaxed);
    slot.reported.store(false, std::memory_order_relaxed);
    slot.busy_since_ns.store(now, std::memory_order_release);
    slot_ = &slot;
  }
  ~busy_marker() {
    if (worker_) worker_->busy_since_ns.store(0, std::memory_order_release);
    if (slot_) {
      std::lock_guard<std::mutex> guard(slot_->m);
      slot_->busy_since_ns.store(0, std::memory_order_release);
      slot_->child = nullptr;
    }
  }
  busy_marker(const busy_marker&) = delete;
  busy_marker& operator=(const busy_marker&) = delete;

 private:
  handler_activity* worker_ = nullptr;
  entity_activity_slot* slot_ = nullptr;
};

/// Runs handlers inside one actor (worker or entity), keeps the continuations
/// of the calls they make, and for entities writes their changes through the
/// service's group committer before replying. Lives and dies with its actor.
class method_runner {
 public:
  method_runner(caf::scheduled_actor* self, std::shared_ptr<service_runtime> svc, entity_state_box* state,
                std::string key, std::shared_ptr<handler_activity> activity = nullptr)
      : self_(self), svc_(std::move(svc)), state_(state), activity_(std::move(activity)),
        actor_(state ? "entity/" + key : "worker") {
    if (state_) {
      persistence_.emplace(*svc_->db, std::move(key), *state_, svc_->cfg.snapshot_every, svc_->def.pending);
      if (svc_->def.reminders) persistence_->enable_reminders();
    }
  }
  /// An entity woken from hibernation: its persistence as it was (sequence
  /// numbers, pending marker, reminders), bound to the same state box.
  method_runner(caf::scheduled_actor* self, std::shared_ptr<service_runtime> svc, entity_state_box* state,
                entity_persistence&& persistence)
      : self_(self), svc_(std::move(svc)), state_(state), actor_("entity/" + persistence.key()) {
    persistence_.emplace(std::move(persistence));
  }

  /// Crashes this actor on the operator's request (fault injection).
  /// Its exit reason is `kill`, not `runtime_error`: the root
  /// counts it as a crash, but not towards the quarantine of a poison key.
  void injected_crash() {
    mark_failed();
    svc_->record_failure("crash injected by operator");
    self_->quit(caf::make_error(caf::exit_reason::kill));
  }
  /// A write of this entity failed (disk full, I/O error): its memory is
  /// ahead of its store. It leaves quietly, like a passivation, and its next
  /// message loads it from the store again: a full disk is not a crash and
  /// must not use up the service's restart intensity.
  void store_failed(const std::string& why) {
    svc_->record_failure(why);
    self_->quit();
  }

  /// Runs a request, or keeps it for later while an idempotency record is
  /// read off-thread (requests of an entity run in arrival order).
  void run(const request_ptr& req);
  /// The supervisor's first message to a worker that replaces a failed one:
  /// the restart is done (restart latency, failure to here).
  void restarted() {
    auto failed = activity_ ? activity_->replaces_failure_at_ns.exchange(0, std::memory_order_relaxed) : 0;
    auto now = clock_type::now().time_since_epoch().count();
    if (failed != 0 && now >= failed) svc_->restart_latency.record(static_cast<double>(now - failed) / 1000.0);
  }
  /// Stamps this worker's failure for its replacement's restart latency.
  void mark_failed() {
    if (activity_) activity_->failed_at_ns.store(clock_type::now().time_since_epoch().count(), std::memory_order_relaxed);
  }
  /// The idempotency record of the request that waits for it was read.
  void on_idempotency_record(const result<std::optional<idempotent_result>>& found);
  void on_reply(std::uint64_t id, call_answer&& a);
  /// Fails the calls whose deadline passed and re-arms the timer for the rest.
  void on_call_timeouts();
  void call_out(const request_ptr& parent, envelope&& target, payload_bytes&& payload,
                std::chrono::milliseconds timeout, std::function<void(reply&&)>&& then);

  /// A mutating invocation starts. True when a failure of it is undone from
  /// the persistence's stored image: no other mutating invocation is open, so
  /// the state is the one the store holds, and nothing is encoded (a call
  /// costs what it changes, not the size of the state). Otherwise `before`
  /// gets the state's encoding, to undo to.
  bool begin_mutation(std::string& before);
  /// A mutating invocation ended without an answer (its responder dropped;
  /// its caller is told `unavailable`). Changes it made stay in memory, unwritten,
  /// until the entity's next call: written with that call's changes (they
  /// differ from the stored image), or gone with its undo if it fails.
  void abandon_mutation() noexcept {
    if (open_mutations_ > 0) --open_mutations_;
  }
  /// An invocation finished: write its changes (and its idempotent result) if
  /// it changed the entity, then answer. A failed mutating invocation is
  /// undone to `before`, or to the stored image when it is nullptr.
  void finish(const request_ptr& req, bool mutating, stored_result outcome, const std::string* before,
              std::uint64_t generation);
  /// The result for an idempotency key was stored (or not): answer its retries.
  void idempotent_done(const std::string& idem, bool stored, const stored_result& outcome);
  /// Writes the entity's changes so far; `then` runs on this actor once durable.
  void checkpoint(std::function<void()> then);
  /// Keeps an event for the outbox, written with the next batch.
  void publish(const std::string& topic, std::string event, const std::string& key, const envelope& by);

  [[nodiscard]] bool idle() const noexcept {
    return continuations_.empty() && idem_waiters_.empty() && !looking_up_ && deferred_.empty();
  }
  /// Idle, and every write it made is durable: its memory equals its store,
  /// so the state may outlive this actor (hibernation). A write still queued
  /// could fail, and only this actor hears of it (store_failed).
  [[nodiscard]] bool settled() const noexcept {
    return idle() && (!writes_ || writes_->load(std::memory_order_acquire) == 0);
  }
  /// Gives up the entity's persistence (hibernation); the runner is not used
  /// after. Its stored image is dropped: a hibernated entity keeps its state
  /// once, and the wake's first change encodes it again.
  [[nodiscard]] entity_persistence take_persistence() {
    persistence_->forget_image();
    return std::move(*persistence_);
  }
  [[nodiscard]] entity_state_box* state() const noexcept { return state_; }
  [[nodiscard]] const service_runtime& service() const noexcept { return *svc_; }
  [[nodiscard]] entity_persistence* persistence() noexcept { return persistence_ ? &*persistence_ : nullptr; }
  [[nodiscard]] std::uint64_t generation() const noexcept { return generation_; }
  /// Expires when this runner (its actor) is gone: invocations check it
  /// before they touch the runner, so a responder kept past its actor's end
  /// answers `unavailable` instead of using freed memory.
  [[nodiscard]] std::weak_ptr<const int> life() const noexcept { return life_; }

  /// Replaces the state with what the store's reader thread read for this
  /// entity (after every write queued before the activation had landed).
  [[nodiscard]] result<bool> apply(const fetched_entity& f) { return persistence_->apply(f); }

 private:
  void crash(const std::string& what);

  caf::scheduled_actor* self_;
  std::shared_ptr<service_runtime> svc_;
  entity_state_box* state_;
  std::shared_ptr<handler_activity> activity_;
  std::string actor_;  ///< its path in the supervision tree, for the logs
  std::shared_ptr<const int> life_ = std::make_shared<const int>(0);
  /// Writes queued to the committer and not yet durable (made on the first
  /// write: an entity that is only read never has one). A failed write is
  /// never subtracted: this actor quits on it.
  std::shared_ptr<std::atomic<std::uint32_t>> writes_;
  std::optional<entity_persistence> persistence_;
  std::uint64_t next_call_ = 1;
  std::uint64_t generation_ = 0;  ///< mutating invocations finished
  std::uint32_t open_mutations_ = 0;  ///< mutating invocations started and not ended
  // Usually empty or tiny: vectors cost an entity 48 bytes where maps cost 112.
  struct continuation {
    std::function<void(reply&&)> then;
    clock_type::time_point deadline;
    request_ptr parent;  ///< the request whose handler made the call: told `internal` if `then` throws
    /// The call's client span, when traced: recorded when the reply (or the
    /// timeout) comes. Kept in place (its id in a fixed array): every traced
    /// call has one, and most are never recorded (unsampled, successful).
    struct call_span {
      char span_id[16] = {};
      std::string name;
      clock_type::time_point start{};  ///< converted to Unix time when recorded
    };
    std::optional<call_span> span;
  };
  /// Calls out, by id: appended in id order, so found by binary search. An
  /// answered call leaves a hole (an empty `then`) that is swept once holes
  /// are half of them, not erased at once: a handler with many calls out
  /// would otherwise move all the others at every reply.
  std::vector<std::pair<std::uint64_t, continuation>> continuations_;
  std::size_t answered_calls_ = 0;  ///< holes in continuations_
  using continuation_iterator = std::vector<std::pair<std::uint64_t, continuation>>::iterator;
  /// The call `id` still waiting for its reply, or end().
  continuation_iterator waiting_call(std::uint64_t id);
  /// Leaves a hole where `it` was, sweeping the holes when they are many.
  void forget_call(continuation_iterator it);
  /// Queues the removal of the reminder `req` delivers, with the next write.
  void mark_reminder_fired(const request& req);
  /// Records the client span of a call a handler made, with the reply's outcome.
  void record_call_span(const envelope& parent, const continuation::call_span& c, const reply& r);
  /// One timer per actor for the earliest deadline of its calls, not one per
  /// call: CAF's clock is a shared thread, and a timer per call costs it a wake-up.
  std::optional<clock_type::time_point> timer_at_;
  void arm_timer(clock_type::time_point at);
  /// A request with an idempotency key being processed here, and the retries waiting for its answer.
  struct idem_in_progress {
    std::string method;
    std::string fingerprint;  ///< of its arguments: a retry must repeat them
    std::vector<request_ptr> retries;
  };
  /// Idempotency keys being processed here. The actor is one entity, so the key alone names them.
  std::vector<std::pair<std::string, idem_in_progress>> idem_waiters_;

  /// A request whose idempotency record is being read on the store's reader
  /// thread (not in memory), and the requests that came after it meanwhile.
  request_ptr looking_up_;
  /// (A vector, not a deque: libstdc++'s deque allocates ~600 bytes when it is
  /// made, and every entity has one of these; this is rarely non-empty.)
  std::vector<request_ptr> deferred_;
  /// Runs a request whose idempotency record is known to be absent (`checked`) or not looked up yet.
  void start(const request_ptr& req, bool checked);
  void run_deferred();
  /// Refuses `req` (idempotency_key_reused) when its key was first used for
  /// another method or other arguments; false when it repeats that request.
  bool refuse_if_reused(const request_ptr& req, const std::string& first_method, const std::string& first_fingerprint,
                        const std::string& fingerprint);
  /// Answers `req` from a stored record, or refuses a reused key; false when none applies.
  bool answer_from_record(const request_ptr& req, const std::optional<idempotent_result>& stored,
                          const std::string& fingerprint);

  /// Outbox records of events published since the last write.
  std::vector<std::pair<std::string, std::string>> outbox_;
  /// The outbox keys collect() put in the last batch: the relay is told them
  /// once written (a key below where it scans from would otherwise wait).
  std::vector<std::string> outbox_keys_;
  /// Adds the entity's changes and its outbox records to `batch`; true when
  /// there were outbox records (the relay is told once they are written).
  /// With `skip_unchanged`, a state the store holds already (or equal to
  /// `before`, when the store's is not known) is not written again.
  bool collect(write_batch& batch, bool skip_unchanged = false, const std::string* before = nullptr);

  template <class Vec, class Key>
  static auto find_in(Vec& v, const Key& k) {
    return std::find_if(v.begin(), v.end(), [&](const auto& e) { return e.first == k; });
  }
};

void answer(const request_ptr& req, const stored_result& r) {
  if (r.is_error)
    req->fail(decode_error_payload(r.payload, wire_limits{}));
  else
    req->respond(r.payload);
}

/// answer() for a result not needed afterwards: the payload moves into the reply.
void answer(const request_ptr& req, stored_result&& r) {
  if (r.is_error)
    req->fail(decode_error_payload(r.payload, wire_limits{}));
  else
    req->respond(std::move(r.payload));
}

/// invocation as the runtime implements it for method_runner.
class actor_invocation final : public invocation {
 public:
  /// `args` decoded from the request's bytes, or nothing when the request
  /// carries a value (decoded from its bytes only if args() is asked).
  actor_invocation(request_ptr req, std::optional<msgpack::zone> zone, std::optional<msgpack::object> args, method_runner* runner,
                   bool read_only)
      : req_(std::move(req)), zone_(std::move(zone)), args_(args.value_or(msgpack::object())),
        args_decoded_(args.has_value()), runner_(runner), life_(runner->life()),
        mutating_(runner->state() && !read_only) {
    if (mutating_) {
      undo_to_image_ = runner_->begin_mutation(before_);
      generation_ = runner_->generation();
    }
  }
  ~actor_invocation() override {
    if (mutating_ && !finished_ && !life_.expired()) runner_->abandon_mutation();
  }
  actor_invocation(const actor_invocation&) = delete;
  actor_invocation& operator=(const actor_invocation&) = delete;

  const envelope& header() const override { return req_->header; }
  const msgpack::object& args() const override {
    if (!args_decoded_) {
      // A value from a caller of another type: its bytes, as a remote callee gets them.
      auto decoded = decode_args(*req_, runner_->service().limits, zone_);
      // With its code: bytes past [limits] are too_large here as from a socket.
      if (!decoded) throw service_error(decoded.error().code, decoded.error().message);
      args_ = *decoded;
      args_decoded_ = true;
    }
    return args_;
  }
  const void* typed_args(const std::type_info& type) const override {
    const auto* value = req_->payload.typed();
    return value && payload_bytes::same_type(value->type(), type) ? value->get() : nullptr;
  }
  clock_type::time_point deadline() const override { return req_->deadline; }
  bool caller_takes_values() const override { return req_->from_handler; }

  void reply(payload_bytes payload) override {
    if (finished_ || gone()) return;
    finished_ = true;
    // A result for a caller elsewhere is packed now, on this actor's thread,
    // while what it refers to is this handler's: not later on whichever
    // thread sends it (for an entity's write, the store's committer, which
    // every service shares).
    if (payload.typed() && !req_->from_handler) payload = payload_bytes(std::move(payload).take());
    runner_->finish(req_, mutating_, {false, std::move(payload)}, undo_point(), generation_);
  }

  void fail(error_info err) override {
    if (finished_ || gone()) return;
    finished_ = true;
    runner_->finish(req_, mutating_, {true, encode_error_payload(err)}, undo_point(), generation_);
  }

  void call(envelope&& target, payload_bytes&& payload, std::chrono::milliseconds timeout,
            std::function<void(cohort::reply&&)>&& then) override {
    if (gone()) return;
    runner_->call_out(req_, std::move(target), std::move(payload), timeout, std::move(then));
  }

  void* entity_state() override {
    require_live();
    return runner_->state() ? runner_->state()->get() : nullptr;
  }

  void emit(std::string event) override {
    require_live();
    if (!mutating_ || !runner_->state()->event_sourced())
      throw std::logic_error("emit() is only for commands of event-sourced entities");
    if (!runner_->persistence()->emit(std::move(event))) throw std::logic_error("an emitted event does not decode");
  }

  void erase_state() override {
    require_live();
    if (!mutating_) throw std::logic_error("erase() is only for methods that may change the entity");
    runner_->persistence()->erase();
  }

  void persist(std::function<void()> then) override {
    require_live();
    if (!mutating_) throw std::logic_error("persist() is only for methods that may change the entity");
    runner_->checkpoint(std::move(then));
    // What is written is no longer undone by a later failure of this request:
    // the stored image moved with the write (unless it was dropped, e.g. by
    // an erase), else the state is encoded now.
    if (!undo_to_image_ || !runner_->persistence()->has_image()) {
      before_ = runner_->state()->encode();
      undo_to_image_ = false;
    }
    generation_ = runner_->generation();
  }

  void publish(std::string topic, std::string event, std::string key) override {
    require_live();
    if (!mutating_) throw std::logic_error("publish() is only for methods that may change the entity");
    runner_->publish(topic, std::move(event), key, req_->header);
  }

  void remind(std::string name, std::uint64_t due_ms, std::string payload) override {
    require_reminders("remind_at/remind_in");
    runner_->persistence()->remind(std::move(name), due_ms, std::move(payload));
  }

  void cancel_reminder(std::string name) override {
    require_reminders("cancel_reminder");
    runner_->persistence()->cancel_reminder(std::move(name));
  }

  std::uint64_t now_ms() const override { return runner_->service().now_ms(); }

 private:
  /// The actor that ran the handler has ended (crashed, passivated, stopped):
  /// the request is answered `unavailable` here and nothing else is done.
  bool gone() {
    if (!life_.expired()) return false;
    finished_ = true;
    req_->fail({errc::unavailable, req_->header.service + "." + req_->header.method +
                                       ": the actor that ran it has ended before it answered"});
    return true;
  }

  const std::string* undo_point() const noexcept { return undo_to_image_ ? nullptr : &before_; }

  void require_live() const {
    if (life_.expired()) throw std::logic_error("the entity's actor has ended: its state is gone with it");
  }

  void require_reminders(const char* what) const {
    require_live();
    if (!mutating_) throw std::logic_error(std::string(what) + " is only for methods that may change the entity");
    if (!runner_->service().def.reminders)
      throw std::logic_error(std::string(what) + ": the service has no on_reminder handler");
  }

  request_ptr req_;
  /// The arguments' objects, in the invocation itself (one allocation fewer
  /// than a handle's zone); their strings point into req_->payload: both
  /// declared after req_, so gone before it.
  mutable std::optional<msgpack::zone> zone_;
  mutable msgpack::object args_;
  mutable bool args_decoded_;
  method_runner* runner_;
  std::weak_ptr<const int> life_;
  bool mutating_;
  bool finished_ = false;
  bool undo_to_image_ = false;  ///< a failure restores the stored image, not before_
  std::string before_;
  std::uint64_t generation_ = 0;
};

/// Runtime codes are about this attempt, not about the operation: a retry must
/// not get them back from the idempotency store.
bool is_business_result(const stored_result& r) {
  if (!r.is_error) return true;
  auto code = decode_error_payload(r.payload, wire_limits{}).code;
  for (auto c : {errc::internal, errc::unavailable, errc::timeout, errc::overloaded, errc::unknown_method,
                 errc::unknown_service, errc::too_large, errc::unsupported_version, errc::storage_full,
                 errc::storage_unavailable, errc::store_corrupt, errc::idempotency_key_reused})
    if (code == to_string(c)) return false;
  return true;
}

void method_runner::run(const request_ptr& req) {
  if (looking_up_) {
    deferred_.push_back(req);
    return;
  }
  start(req, false);
}

void method_runner::run_deferred() {
  while (!looking_up_ && !deferred_.empty()) {
    auto next = std::move(deferred_.front());
    deferred_.erase(deferred_.begin());
    start(next, false);
  }
}

bool method_runner::refuse_if_reused(const request_ptr& req, const std::string& first_method,
                                     const std::string& first_fingerprint, const std::string& fingerprint) {
  const auto& h = req->header;
  if (first_method == h.method && first_fingerprint == fingerprint) return false;
  req->fail({errc::idempotency_key_reused,
             "idempotency key '" + h.idempotency_key + "' of " + h.service + " entity '" + persistence_->key() +
                 "' was used for " + (first_method == h.method ? "the same method with other arguments" : first_method) +
                 "; a retry must repeat the request exactly, a new request needs a new key"});
  return true;
}

bool method_runner::answer_from_record(const request_ptr& req, const std::optional<idempotent_result>& stored,
                                       const std::string& fingerprint) {
  if (!stored) return false;
  if (refuse_if_reused(req, stored->method, stored->fingerprint, fingerprint)) return true;
  answer(req, {stored->is_error, stored->payload});  // done before: the stored result, no second effect
  return true;
}

void method_runner::on_idempotency_record(const result<std::optional<idempotent_result>>& found) {
  auto req = std::move(looking_up_);
  looking_up_ = nullptr;
  if (req) {
    if (!found)
      req->fail({errc::unavailable, found.error().message});
    else if (!answer_from_record(req, *found, request_fingerprint(req->payload)))
      start(req, true);
  }
  run_deferred();
}

void method_runner::start(const request_ptr& req, bool checked) {
  const auto& h = req->header;
  const auto now = clock_type::now();
  if (now >= req->deadline) {
    req->fail({errc::timeout, "deadline passed while " + h.service + "." + h.method + " was queued"});
    return;
  }
  auto it = svc_->def.methods.find(h.method);
  if (it == svc_->def.methods.end()) {
    req->fail({errc::unknown_method, "service '" + h.service + "' has no method '" + h.method + "'"});
    return;
  }
  // In place: the arguments' strings point into the payload, which the
  // invocation holds (req_) for as long as it holds them (args_).
  // A value from a handler of this process is not decoded (see typed_value.hpp).
  std::optional<msgpack::zone> zone;
  std::optional<msgpack::object> args;
  if (!req->payload.typed()) {
    auto decoded = decode_args(*req, svc_->limits, zone);
    if (!decoded) {
      req->fail(decoded.error());
      return;
    }
    args = *decoded;
  }
  const auto& idem = h.idempotency_key;
  if (persistence_ && !idem.empty() && !it->second.read_only) {
    auto fingerprint = request_fingerprint(req->payload);
    if (auto w = find_in(idem_waiters_, idem); w != idem_waiters_.end()) {
      if (refuse_if_reused(req, w->second.method, w->second.fingerprint, fingerprint)) return;
      w->second.retries.push_back(req);  // a retry of a request still in progress: same answer
      return;
    }
    if (!checked) {
      // The record from memory when it is there (or surely absent); from the
      // disk only on the store's reader thread, never on this one.
      auto record_key = idempotency_record_key(persistence_->key(), idem);
      auto in_memory = svc_->db->get_if_in_memory(keyspace::idempotency, record_key);
      if (!in_memory) {
        req->fail({errc::unavailable, in_memory.error().message});
        return;
      }
      if (!*in_memory) {
        looking_up_ = req;
        svc_->db->read([me = caf::actor_cast<caf::actor>(self_), record_key](const store& db) {
          auto found = find_idempotent_result(db, record_key);
          caf::anon_send(me, idem_record_atom::value,
                         std::make_shared<const result<std::optional<idempotent_result>>>(std::move(found)));
        });
        return;
      }
      auto stored = decode_idempotent_record(**in_memory);
      if (!stored) {
        req->fail({errc::unavailable, stored.error().message});
        return;
      }
      if (answer_from_record(req, *stored, fingerprint)) return;
    }
    idem_waiters_.emplace_back(idem, idem_in_progress{h.method, std::move(fingerprint), {}});
  }
  auto inv = std::make_shared<actor_invocation>(req, std::move(zone), args, this, it->second.read_only);
  // The watchdog reads this marker to find handlers that block too long.
  busy_marker busy(now, activity_.get(), persistence_ ? svc_.get() : nullptr, &it->first, &actor_);
  log::scope logging(log_context_of(h, actor_));
  if (persistence_ && svc_->def.pending) persistence_->set_trace(h.traceparent);
  if (persistence_ && svc_->def.reminders && h.method == reminder_method) mark_reminder_fired(*req);
  try {
    it->second.handler(inv);
  } catch (const std::exception& e) {
    inv->fail({errc::internal, h.service + "." + h.method + " crashed: " + exception_name(e) + ": " + e.what()});
    crash(exception_name(e) + ": " + e.what());
  } catch (...) {
    inv->fail({errc::internal, h.service + "." + h.method + " crashed with a non-standard exception"});
    crash("non-standard exception");
  }
}

void method_runner::call_out(const request_ptr& parent, envelope&& target, payload_bytes&& payload,
                             std::chrono::milliseconds timeout, std::function<void(reply&&)>&& then) {
  auto now = clock_type::now();
  auto deadline = std::min(parent->deadline, now + timeout);
  auto id = next_call_++;
  if (!then) then = [](reply&&) {};  // an empty `then` marks an answered call
  continuation c{std::move(then), deadline, parent, std::nullopt};
  // The call's own span: the callee's span is its child. Spans are made when
  // the trace may be kept (sampled) and, to keep errors, when it may not.
  target.tracestate = parent->header.tracestate;
  if (auto t = trace_of(parent->header); t.valid && svc_->tracer && svc_->tracer->enabled()) {
    auto& span = c.span.emplace();
    span.name = target.service + "." + target.method;
    span.start = now;
    // The caller's traceparent (the node wrote it: version 00, flags 00 or
    // 01) with this call's span id written over the parent's.
    target.traceparent = parent->header.traceparent;
    observability::fill_span_id(span.span_id);
    auto* tp = &target.traceparent[0];
    observability::write_traceparent(tp, {tp + observability::traceparent_trace_at, 32},
                                     {span.span_id, sizeof span.span_id}, t.sampled);
  } else {
    target.traceparent = parent->header.traceparent;
  }
  continuations_.emplace_back(id, std::move(c));
  target.kind = message_kind::request;
  target.id = id;
  target.trace = parent->header.trace;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
  target.deadline_ms = static_cast<std::uint32_t>(std::max<std::int64_t>(1, left.count()));
  auto me = caf::actor_cast<caf::actor>(self_);
  auto limits = svc_->limits;
  auto out = std::make_shared<request>(
      std::move(target), std::move(payload), deadline,
      [me, id, limits](envelope&& h, payload_bytes&& p) {
        call_answer a;  // in the CAF message itself: one allocation, not two
        if (h.kind == message_kind::error) {
          a.error = decode_error_payload(p, limits);
          // unknown_service tells a client that the service *it named* does not
          // exist. A handler's dependency that is missing is this node's
          // problem, and its caller must not read it as its own mistake.
          if (a.error->is(errc::unknown_service))
            a.error = error_info{errc::unavailable, "a dependency is not reachable from this node: " + a.error->message};
        } else {
          a.payload = std::move(p);
        }
        caf::anon_send(me, reply_atom::value, id, std::move(a));
      });
  out->made = now;
  out->from_handler = true;
  if (!timer_at_ || deadline < *timer_at_) arm_timer(deadline);
  svc_->calls->route(std::move(out));
}

method_runner::continuation_iterator method_runner::waiting_call(std::uint64_t id) {
  // Ids are consecutive from the first one kept until a sweep leaves a gap,
  // and replies mostly come in the order of their calls (whose answered
  // predecessors the sweep removed): the id's own offset first, then a search.
  auto it = continuations_.end();
  if (!continuations_.empty() && id >= continuations_.front().first) {
    const auto offset = id - continuations_.front().first;
    if (offset < continuations_.size() && continuations_[offset].first == id) it = continuations_.begin() + offset;
  }
  if (it == continuations_.end())
    it = std::lower_bound(continuations_.begin(), continuations_.end(), id,
                          [](const auto& e, std::uint64_t k) { return e.first < k; });
  if (it == continuations_.end() || it->first != id || !it->second.then) return continuations_.end();
  return it;
}

void method_runner::forget_call(continuation_iterator it) {
  it->second = continuation{};
  if (++answered_calls_ == continuations_.size()) {
    continuations_.clear();
    answered_calls_ = 0;
  } else if (answered_calls_ * 2 > continuations_.size()) {
    continuations_.erase(std::remove_if(continuations_.begin(), continuations_.end(),
                                        [](const auto& e) { return !e.second.then; }),
                         continuations_.end());
    answered_calls_ = 0;
  }
}

void method_runner::on_reply(std::uint64_t id, call_answer&& a) {
  auto it = waiting_call(id);
  if (it == continuations_.end()) return;  // timed out already
  reply r;
  r.header.kind = a.error ? message_kind::error : message_kind::reply;
  r.header.id = id;
  r.payload = std::move(a.payload);
  r.error = std::move(a.error);
  r.local = a.local;
  auto then = std::move(it->second.then);
  auto parent = std::move(it->second.parent);
  auto span = std::move(it->second.span);
  forget_call(it);
  if (span && parent) record_call_span(parent->header, *span, r);
  std::optional<log::scope> logging;
  if (parent) logging.emplace(log_context_of(parent->header, actor_));
  if (parent && persistence_ && svc_->def.pending) persistence_->set_trace(parent->header.traceparent);
  // A continuation that throws is a handler that crashed: its caller gets
  // `internal` naming the exception (not `unavailable` from the actor's end).
  auto crashed = [&](const std::string& what) {
    if (parent)
      parent->fail({errc::internal, parent->header.service + "." + parent->header.method + " crashed: " + what});
    crash(what);
  };
  try {
    then(std::move(r));
  } catch (const std::exception& e) {
    crashed(exception_name(e) + " in a call continuation: " + e.what());
  } catch (...) {
    crashed("a non-standard exception in a call continuation");
  }
}

void method_runner::mark_reminder_fired(const request& req) {
  auto args = decode_payload_in_place(req.payload, svc_->limits);
  if (!args) return;
  try {
    reminder r;
    args->get().convert(r);
    persistence_->reminder_fired(std::move(r.name), r.due_ms);
  } catch (const std::exception&) {
    // Not a reminder the runtime sent (its handler gets the bad arguments); nothing to remove.
  }
}

void method_runner::record_call_span(const envelope& parent, const continuation::call_span& c, const reply& r) {
  auto t = trace_of(parent);
  if (!t.sampled && !r.error) return;  // the tracer keeps only sampled or failed spans: not built for nothing
  const auto end = clock_type::now();
  svc_->tracer->record_with(t.sampled, [&](observability::span& s) {
    s.trace_id.assign(t.trace_id);
    s.span_id.assign(c.span_id, sizeof c.span_id);
    s.parent_span_id.assign(t.span_id);
    s.name.assign(c.name);
    s.service.assign(svc_->def.name);
    s.kind = observability::span_kind::client;
    s.start_ns = observability::unix_ns_at(c.start);
    s.end_ns = observability::unix_ns_at(end);
    if (r.error) s.code.assign(r.error->code);
    const std::string_view name = c.name;
    const auto dot = name.find('.');
    s.attributes.emplace_back("rpc.system", "cohort");
    s.attributes.emplace_back("rpc.service", name.substr(0, dot));
    s.attributes.emplace_back("rpc.method", dot == std::string_view::npos ? std::string_view() : name.substr(dot + 1));
    s.attributes.emplace_back("cohort.node", svc_->tracer->node());
    if (r.error && r.local) s.attributes.emplace_back("cohort.error.local", "true");
  });
}

void method_runner::arm_timer(clock_type::time_point at) {
  timer_at_ = at;
  auto delay = std::chrono::duration_cast<std::chrono::milliseconds>(at - clock_type::now()) + std::chrono::milliseconds(1);
  caf::delayed_anon_send(caf::actor_cast<caf::actor>(self_), std::max(delay, std::chrono::milliseconds(1)),
                         call_timeout_atom::value);
}

void method_runner::on_call_timeouts() {
  timer_at_.reset();
  auto now = clock_type::now();
  std::vector<std::uint64_t> due;
  std::optional<clock_type::time_point> next;
  for (const auto& [id, c] : continuations_) {
    if (!c.then) continue;  // answered
    if (c.deadline <= now)
      due.push_back(id);
    else if (c.deadline != clock_type::time_point::max() && (!next || c.deadline < *next))
      next = c.deadline;
  }
  for (auto id : due) {
    call_answer a;
    a.error = error_info{errc::timeout, "no reply before the deadline"};
    a.local = true;
    on_reply(id, std::move(a));
  }
  if (next && (!timer_at_ || *next < *timer_at_)) arm_timer(*next);
}

bool method_runner::begin_mutation(std::string& before) {
  const bool alone = open_mutations_++ == 0;
  if (alone && persistence_->has_image()) return true;
  before = state_->encode();
  if (!alone) return false;
  persistence_->set_image(std::move(before));  // the state is the stored one: it is the image from now on
  before.clear();
  return true;
}

void method_runner::finish(const request_ptr& req, bool mutating, stored_result outcome,
                           const std::string* before, std::uint64_t generation) {
  if (mutating && open_mutations_ > 0) --open_mutations_;
  const auto& idem = req->header.idempotency_key;
  auto waiting = idem.empty() ? idem_waiters_.end() : find_in(idem_waiters_, idem);
  const bool remember = waiting != idem_waiters_.end() && is_business_result(outcome);
  if (!mutating) {
    answer(req, std::move(outcome));  // nothing kept: a worker's reply is not copied
    return;
  }
  if (outcome.is_error) {
    // Undo the failed invocation's changes in memory; if others changed the
    // entity meanwhile (an async handler), only a restart from the store is safe.
    persistence_->discard();
    outbox_.clear();
    if (generation != generation_ || !(before ? state_->decode(*before) : persistence_->restore_image()))
      return crash("could not undo a failed method");
    // A reminder whose handler answered with a business error was handled:
    // it is removed (a crash or a runtime error leaves it to fire again).
    if (svc_->def.reminders && req->header.method == reminder_method && is_business_result(outcome))
      mark_reminder_fired(*req);
  }
  const auto new_reminders_due = persistence_->earliest_new_reminder();  // 0: none
  write_batch batch;
  batch.entity = persistence_->key();
  batch.epoch = req->header.epoch;
  // A method that changed nothing (a retried step, a saga's reply after its
  // last decision was persisted) writes nothing.
  const bool events = !outcome.is_error && collect(batch, true, before);
  if (remember)
    add_idempotent_result(batch, idempotency_record_key(persistence_->key(), idem), outcome, waiting->second.method,
                          waiting->second.fingerprint, svc_->cfg.idempotency_ttl);
  ++generation_;
  if (batch.empty()) {
    answer(req, outcome);
    if (!idem.empty()) idempotent_done(idem, false, outcome);
    return;
  }
  auto me = caf::actor_cast<caf::actor>(self_);
  auto svc = events ? svc_ : nullptr;
  // The write's span (group commit: from queued to durable), child of the request's.
  std::uint64_t write_start = 0;
  observability::tracer* tracer = nullptr;
  if (auto t = trace_of(req->header); t.valid && svc_->tracer && svc_->tracer->enabled())
    tracer = svc_->tracer, write_start = observability::unix_ns();
  auto reminders = new_reminders_due != 0 ? svc_ : nullptr;
  if (!svc_->admits_key(persistence_->key(), req->header.epoch)) {
    // Fencing (clusters): the shard moved or this node's lease lapsed while
    // the handler ran. Nothing is written; the entity reloads if it comes back.
    req->fail({errc::unavailable, "not stored: entity " + svc_->def.name + "/" + persistence_->key() +
                                      " is no longer served by this node (its shard moved or its lease lapsed)"});
    return crash("fenced: its shard is no longer served here");
  }
  std::vector<std::string> keys;
  if (events) keys.swap(outbox_keys_);
  if (!writes_) writes_ = std::make_shared<std::atomic<std::uint32_t>>(0);
  writes_->fetch_add(1, std::memory_order_relaxed);
  svc_->db->commit(std::move(batch), [req, outcome = std::move(outcome), me, idem, svc, tracer, write_start, reminders,
                                      new_reminders_due, keys = std::move(keys),
                                      writes = writes_](const result<bool>& written) mutable {
    if (tracer) record_write_span(*tracer, req->header, write_start, written);
    // On the committer's thread: the reply says "done" only now.
    if (written) {
      writes->fetch_sub(1, std::memory_order_release);
      if (svc) svc->poke_outbox(std::move(keys));
      if (reminders) reminders->poke_reminders(new_reminders_due);
      if (idem.empty())
        answer(req, std::move(outcome));  // not needed after: moved into the reply
      else
        answer(req, outcome);
    } else {
      req->fail({written.error().code, "not stored: " + written.error().message});
      caf::anon_send(me, store_failed_atom::value, written.error().message);
    }
    if (!idem.empty()) caf::anon_send(me, idem_done_atom::value, idem, static_cast<bool>(written), outcome.is_error, outcome.payload.str());
  });
}

void method_runner::idempotent_done(const std::string& idem, bool stored, const stored_result& outcome) {
  auto it = find_in(idem_waiters_, idem);
  if (it == idem_waiters_.end()) return;
  auto waiters = std::move(it->second.retries);
  idem_waiters_.erase(it);
  for (auto& w : waiters) {
    if (stored || !outcome.is_error)
      answer(w, outcome);
    else
      run(w);  // the first attempt failed without a stored result: this retry runs for real
  }
}

bool method_runner::collect(write_batch& batch, bool skip_unchanged, const std::string* before) {
  std::optional<std::string> now;
  if (skip_unchanged && outbox_.empty() && !persistence_->has_changes()) {
    // An event-sourced entity changes by its events only: none, nothing to write.
    if (state_->event_sourced()) return false;
    const auto* stored = persistence_->stored_state();
    if (!stored) stored = before;
    now = state_->encode();  // encoded once: compared here, written below
    if (stored && *now == *stored) return false;
  }
  persistence_->add_changes(batch, std::move(now));
  if (outbox_.empty()) return false;
  outbox_keys_.clear();
  for (auto& [k, v] : outbox_) {
    outbox_keys_.push_back(k);
    batch.put(keyspace::outbox, std::move(k), std::move(v));
  }
  outbox_.clear();
  return true;
}

void method_runner::publish(const std::string& topic, std::string event, const std::string& key, const envelope& by) {
  // The publication's span (producer): each delivery's span is its child, even a redelivery hours later.
  std::string traceparent;
  if (auto t = trace_of(by); t.valid && svc_->tracer && svc_->tracer->enabled()) {
    observability::span s;
    s.trace_id = std::string(t.trace_id);
    s.span_id = observability::new_span_id();
    s.parent_span_id = std::string(t.span_id);
    s.name = "publish " + topic;
    s.service = svc_->def.name;
    s.kind = observability::span_kind::producer;
    s.start_ns = s.end_ns = observability::unix_ns();
    s.attributes = {{"messaging.system", "cohort"}, {"messaging.destination.name", topic},
                    {"cohort.key", key}, {"cohort.node", svc_->tracer->node()}};
    traceparent = observability::format_traceparent({s.trace_id, s.span_id, t.sampled});
    svc_->tracer->record(std::move(s), t.sampled);
  }
  for (auto& r : make_outbox_records(*svc_, topic, std::move(event), key, persistence_ ? persistence_->key() : key, traceparent))
    outbox_.push_back(std::move(r));
}

void method_runner::checkpoint(std::function<void()> then) {
  write_batch batch;
  batch.entity = persistence_->key();
  const auto new_reminders_due = persistence_->earliest_new_reminder();  // 0: none
  const bool events = collect(batch);
  ++generation_;
  auto id = next_call_++;
  // No timer: the committer always calls back, and a failed write crashes this actor.
  continuations_.emplace_back(id, continuation{[then = std::move(then)](reply&&) { then(); },
                                               clock_type::time_point::max(), nullptr, std::nullopt});
  auto me = caf::actor_cast<caf::actor>(self_);
  auto svc = events ? svc_ : nullptr;
  auto reminders = new_reminders_due != 0 ? svc_ : nullptr;
  std::vector<std::string> keys;
  if (events) keys.swap(outbox_keys_);
  svc_->db->commit(std::move(batch), [me, id, svc, reminders, new_reminders_due,
                                      keys = std::move(keys)](const result<bool>& written) mutable {
    if (!written) return caf::anon_send(me, store_failed_atom::value, written.error().message);
    if (svc) svc->poke_outbox(std::move(keys));
    if (reminders) reminders->poke_reminders(new_reminders_due);
    caf::anon_send(me, reply_atom::value, id, call_answer{});
  });
}

void method_runner::crash(const std::string& what) {
  mark_failed();
  // Logged here, inside the handler's log scope: the line names the trace and the caller.
  log::get("service")->error("{} {} crashed: {}", svc_->def.name, actor_, what);
  svc_->record_failure(what);
  self_->quit(caf::make_error(caf::sec::runtime_error, what));
}

// -- worker -------------------------------------------------------------------

struct worker_state {
  std::unique_ptr<method_runner> runner;
  static inline const char* name = "cohort.worker";
};

caf::behavior worker_actor(caf::stateful_actor<worker_state>* self, std::shared_ptr<service_runtime> svc,
                           std::shared_ptr<handler_activity> activity) {
  self->state.runner = std::make_unique<method_runner>(self, std::move(svc), nullptr, std::string{}, std::move(activity));
  return {
      [=](const request_ptr& req) { self->state.runner->run(req); },
      [=](crash_atom) { self->state.runner->injected_crash(); },
      [=](restarted_atom) { self->state.runner->restarted(); },
      [=](reply_atom, std::uint64_t id, call_answer& a) { self->state.runner->on_reply(id, std::move(a)); },
      [=](call_timeout_atom) { self->state.runner->on_call_timeouts(); },
  };
}

/// A worker of a service with blocking methods: the same behavior, run by
/// the service's blocking_pool instead of the scheduler (see blocking_pool.hpp).
class pooled_worker final : public pooled_actor<worker_state> {
 public:
  pooled_worker(caf::actor_config& cfg, std::shared_ptr<service_runtime> svc, std::shared_ptr<handler_activity> activity)
      : pooled_actor<worker_state>(cfg, svc->blocking), svc_(std::move(svc)), activity_(std::move(activity)) {}

  caf::behavior make_behavior() override { return worker_actor(this, std::move(svc_), std::move(activity_)); }

 private:
  std::shared_ptr<service_runtime> svc_;
  std::shared_ptr<handler_activity> activity_;
};

// -- entity -------------------------------------------------------------------

}  // namespace

/// A hibernated entity: its state and its persistence, without an actor
/// (about 0.5 KB against an awake one's 2.6 KB: storage bench). Kept by its service's root
/// while it is live; the next message wakes it on a fresh actor. Counts as
/// a live entity for as long as it holds the state.
struct hibernated_entity {
  std::unique_ptr<entity_state_box> box;
  std::optional<entity_persistence> persistence;
  std::atomic<std::int64_t>* live;  ///< the service's live count, given back when this state is dropped
  hibernated_entity(std::unique_ptr<entity_state_box> b, entity_persistence&& p, std::atomic<std::int64_t>* live_count)
      : box(std::move(b)), persistence(std::move(p)), live(live_count) {}
  hibernated_entity(const hibernated_entity&) = delete;
  hibernated_entity& operator=(const hibernated_entity&) = delete;
  ~hibernated_entity() {
    if (live) live->fetch_sub(1, std::memory_order_relaxed);
  }
};

namespace {

/// Everything an entity actor keeps; small, as a service may hold millions.
struct entity_actor_state {
  std::shared_ptr<service_runtime> svc;
  caf::actor parent;
  std::unique_ptr<entity_state_box> box;
  std::optional<method_runner> runner;
  std::vector<request_ptr> early;  ///< requests that came while the state was loading (or offered)
  hibernated_ptr offered;          ///< the state, while the root decides on a hibernation offer
  std::uint64_t processed = 0;
  bool live = false;
  bool crash_requested = false;  ///< the operator's crash came while an offer was out
  ~entity_actor_state() {
    if (live) svc->live_entities--;
  }
  static inline const char* name = "cohort.entity";
};

using entity_self = caf::stateful_actor<entity_actor_state>;

caf::behavior entity_offered(entity_self* self, std::string key);

/// Takes the state back into this actor (woken, or an offer refused). The
/// live count moves with the state: not counted twice, never dropped.
void take_state(entity_self* self, hibernated_entity& h) {
  auto& s = self->state;
  s.box = std::move(h.box);
  s.runner.emplace(self, s.svc, s.box.get(), std::move(*h.persistence));
  h.persistence.reset();
  h.live = nullptr;
  s.live = true;
}

/// Runs the requests that waited while the state was loading or offered, in order.
void run_early(entity_self* self) {
  auto& s = self->state;
  auto early = std::move(s.early);
  s.early.clear();
  for (auto& req : early) {
    s.processed++;
    s.runner->run(req);
  }
}

/// The behavior of a loaded entity. The handlers capture only `self`: a
/// behavior is allocated per entity.
caf::behavior entity_running(entity_self* self) {
  return {
      [self](const request_ptr& req) {
        self->state.processed++;
        self->state.runner->run(req);
      },
      [self](reply_atom, std::uint64_t id, call_answer& a) { self->state.runner->on_reply(id, std::move(a)); },
      [self](call_timeout_atom) { self->state.runner->on_call_timeouts(); },
      [self](crash_atom) { self->state.runner->injected_crash(); },
      [self](store_failed_atom, const std::string& why) { self->state.runner->store_failed(why); },
      [self](idem_done_atom, const std::string& idem, bool stored, bool is_error, const std::string& payload) {
        self->state.runner->idempotent_done(idem, stored, {is_error, payload});
      },
      [self](idem_record_atom, const idem_record_ptr& found) { self->state.runner->on_idempotency_record(*found); },
      [self](passivate_ok_atom) {
        self->state.svc->passivations++;
        self->quit();
      },
      [self](passivate_atom) {
        // The root saw no traffic for the idle time; offer to go if nothing is pending.
        auto& s = self->state;
        if (s.runner->idle()) self->send(s.parent, passivate_atom::value, s.runner->persistence()->key(), s.processed);
      },
      [self](hibernate_atom) {
        // Idle for entity_hibernate_after: offer the state to the root, which
        // takes it only if it sent nothing since (`processed`). Until it
        // answers, requests wait here in order.
        auto& s = self->state;
        if (!s.runner->settled()) return;
        auto key = s.runner->persistence()->key();
        s.offered = std::make_shared<hibernated_entity>(std::move(s.box), s.runner->take_persistence(),
                                                        &s.svc->live_entities);
        s.runner.reset();
        s.live = false;  // counted by the offered state now
        // From this send on, the state may be the root's: not read here again.
        self->send(s.parent, hibernate_atom::value, key, s.processed, s.offered);
        self->become(entity_offered(self, std::move(key)));
      },
  };
}

/// An entity whose state is offered to its root for hibernation. Once the
/// root takes it, the state is the root's (and a woken actor's, at once):
/// this actor never touches it again, so it keeps its own copy of the key.
caf::behavior entity_offered(entity_self* self, std::string key) {
  return {
      [self](const request_ptr& req) { self->state.early.push_back(req); },
      [self](crash_atom) { self->state.crash_requested = true; },
      [self, key](hibernate_ok_atom) {
        // The root keeps the state; nothing was sent here after the offer.
        auto& s = self->state;
        s.offered.reset();  // drops this actor's reference only
        for (auto& req : s.early) self->send(s.parent, req);  // none expected: routed again, not lost
        s.early.clear();
        s.svc->hibernations++;
        // An operator's crash that came meanwhile is for the entity, which
        // lives on in the root's keeping: asked again, it wakes and crashes.
        if (s.crash_requested)
          self->send(s.parent, command_atom::value, static_cast<std::int32_t>(child_command::crash), "entity/" + key);
        self->quit();
      },
      [self](hibernate_no_atom) {
        auto& s = self->state;
        take_state(self, *s.offered);
        s.offered.reset();
        self->become(entity_running(self));
        if (s.crash_requested) return s.runner->injected_crash();
        run_early(self);
      },
      [](passivate_atom) {},
      [](hibernate_atom) {},
  };
}

/// An entity starts by asking its store's reader thread for its state (after
/// every write queued before, e.g. by its previous activation) and keeps the
/// requests that arrive meanwhile, in order. No scheduler thread waits for
/// the disk: a slow store delays its own entities, never another service.
/// A hibernated entity wakes with its state as it left it: no read at all.
caf::behavior entity_actor(entity_self* self, std::shared_ptr<service_runtime> svc, std::string key,
                           caf::actor parent, hibernated_ptr hibernated) {
  auto& st = self->state;
  st.svc = svc;
  st.parent = std::move(parent);
  if (hibernated) {
    take_state(self, *hibernated);
    svc->wakes++;
    return entity_running(self);
  }
  st.box = svc->def.make_state();
  st.runner.emplace(self, svc, st.box.get(), key);
  // Counted from now: a restart waits for loading entities too.
  svc->live_entities++;
  st.live = true;
  svc->db->read_after_writes([me = caf::actor_cast<caf::actor>(self), key, pending = static_cast<bool>(svc->def.pending),
                              event_sourced = st.box->event_sourced(), reminders = svc->def.reminders](const store& db) {
    caf::anon_send(me, loaded_atom::value, std::make_shared<const fetched_entity>(
                                               entity_persistence::fetch(db, key, pending, event_sourced, reminders)));
  });
  return {
      [self](const request_ptr& req) { self->state.early.push_back(req); },
      [self](loaded_atom, const fetched_ptr& f) {
        auto& s = self->state;
        if (auto loaded = s.runner->apply(*f); !loaded) {
          const auto& key = s.runner->persistence()->key();
          auto why = "activation of " + s.svc->def.name + "/" + key + " failed: " + loaded.error().message;
          s.svc->record_failure(why);
          if (loaded.error().is(errc::store_corrupt)) s.svc->store_damaged = true;
          self->quit(caf::make_error(caf::sec::runtime_error, std::move(why)));
          return;
        }
        s.svc->activations++;
        self->become(entity_running(self));
        run_early(self);
      },
      [self](crash_atom) { self->state.runner->injected_crash(); },
      [](passivate_atom) {},  // not loaded yet: nothing to give up
      [](hibernate_atom) {},
  };
}

}  // namespace

caf::actor spawn_worker(caf::event_based_actor* parent, std::shared_ptr<service_runtime> svc,
                        std::shared_ptr<handler_activity> activity) {
  // Blocking methods: the workers run on the service's own threads, so their
  // waits never hold a scheduler thread other services need. (Without a
  // pool, which the host always makes, a thread each as CAF gives them.)
  if (svc->dedicated_threads())
    return svc->blocking ? parent->spawn<pooled_worker, caf::monitored>(std::move(svc), std::move(activity))
                         : parent->spawn<caf::monitored + caf::detached>(worker_actor, std::move(svc), std::move(activity));
  return parent->spawn<caf::monitored>(worker_actor, std::move(svc), std::move(activity));
}

caf::actor spawn_entity(caf::event_based_actor* parent, std::shared_ptr<service_runtime> svc, std::string key,
                        hibernated_ptr hibernated) {
  return parent->spawn<caf::monitored>(entity_actor, std::move(svc), std::move(key),
                                       caf::actor_cast<caf::actor>(parent), std::move(hibernated));
}

}  // namespace cohort::detail
