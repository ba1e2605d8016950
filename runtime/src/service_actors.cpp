// The actors that run a service's handlers: stateless workers and keyed
// entity actors, and the method_runner that runs handlers inside them.
#include <cxxabi.h>
#include <unordered_map>

#include "actor_messages.hpp"
#include "cohort/transport/envelope_codec.hpp"

namespace cohort::detail {

namespace {

using clock_type = std::chrono::steady_clock;

std::string entity_store_key(const std::string& key) { return "entity/" + key; }

std::string exception_name(const std::exception& e) {
  int status = 0;
  char* name = abi::__cxa_demangle(typeid(e).name(), nullptr, nullptr, &status);
  std::string out = status == 0 && name ? name : typeid(e).name();
  std::free(name);
  return out;
}

/// Runs handlers inside one actor (worker or entity) and keeps the
/// continuations of the calls they make. Lives and dies with its actor.
class method_runner {
 public:
  method_runner(caf::scheduled_actor* self, std::shared_ptr<service_runtime> svc,
                entity_state_box* state, std::string key, std::shared_ptr<handler_activity> activity = nullptr)
      : self_(self), svc_(std::move(svc)), state_(state), key_(std::move(key)), activity_(std::move(activity)) {}

  /// Crashes this actor on the operator's request (fault injection).
  void injected_crash() { crash("crash injected by operator"); }

  void run(const request_ptr& req);
  void on_reply(std::uint64_t id, reply&& r);
  void on_call_timeout(std::uint64_t id);
  void call_out(const request_ptr& parent, envelope target, std::string payload,
                std::chrono::milliseconds timeout, std::function<void(reply&&)> then);

  [[nodiscard]] bool idle() const noexcept { return continuations_.empty(); }
  [[nodiscard]] entity_state_box* state() const noexcept { return state_; }
  [[nodiscard]] const service_runtime& service() const noexcept { return *svc_; }

  /// Writes the entity state through the store; false (with `err`) if not stored.
  bool persist(error_info& err);
  /// Discards in-memory changes of a failed method by reloading the stored state.
  void reload();
  /// Loads the stored state; false (with `err`) if the store cannot be read.
  bool load(error_info& err);

 private:
  void crash(const std::string& what);

  caf::scheduled_actor* self_;
  std::shared_ptr<service_runtime> svc_;
  entity_state_box* state_;
  std::string key_;
  std::shared_ptr<handler_activity> activity_;
  std::uint64_t next_call_ = 1;
  std::unordered_map<std::uint64_t, std::function<void(reply&&)>> continuations_;
};

/// invocation as the runtime implements it for method_runner.
class actor_invocation final : public invocation {
 public:
  actor_invocation(request_ptr req, msgpack::object_handle args, method_runner* runner, bool read_only)
      : req_(std::move(req)), args_(std::move(args)), runner_(runner), read_only_(read_only) {}

  const envelope& header() const override { return req_->header; }
  const msgpack::object& args() const override { return args_.get(); }
  clock_type::time_point deadline() const override { return req_->deadline; }

  void reply(std::string payload) override {
    if (req_->answered()) return;
    if (runner_->state() && !read_only_) {
      // "Done" only once the state is durable in the service's mode.
      error_info err;
      if (!runner_->persist(err)) {
        req_->fail(err);
        return;
      }
    }
    req_->respond(std::move(payload));
  }

  void fail(error_info err) override {
    if (req_->answered()) return;
    if (runner_->state() && !read_only_) runner_->reload();
    req_->fail(err);
  }

  void call(envelope target, std::string payload, std::chrono::milliseconds timeout,
            std::function<void(cohort::reply&&)> then) override {
    runner_->call_out(req_, std::move(target), std::move(payload), timeout, std::move(then));
  }

  void* entity_state() override { return runner_->state() ? runner_->state()->get() : nullptr; }

 private:
  request_ptr req_;
  msgpack::object_handle args_;
  method_runner* runner_;
  bool read_only_;
};

void method_runner::run(const request_ptr& req) {
  const auto& h = req->header;
  if (clock_type::now() >= req->deadline) {
    req->fail({errc::timeout, "deadline passed while " + h.service + "." + h.method + " was queued"});
    return;
  }
  auto it = svc_->def.methods.find(h.method);
  if (it == svc_->def.methods.end()) {
    req->fail({errc::unknown_method, "service '" + h.service + "' has no method '" + h.method + "'"});
    return;
  }
  auto args = decode_payload(req->payload, svc_->limits);
  if (!args) {
    req->fail(args.error());
    return;
  }
  auto inv = std::make_shared<actor_invocation>(req, std::move(*args), this, it->second.read_only);
  // The watchdog reads this marker to find handlers that block too long.
  struct busy_guard {
    handler_activity* a;
    busy_guard(handler_activity* act, const std::string* method) : a(act) {
      if (!a) return;
      a->method.store(method, std::memory_order_relaxed);
      a->busy_since_ns.store(clock_type::now().time_since_epoch().count(), std::memory_order_release);
    }
    ~busy_guard() {
      if (a) a->busy_since_ns.store(0, std::memory_order_release);
    }
  } busy(activity_.get(), &it->first);
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

void method_runner::call_out(const request_ptr& parent, envelope target, std::string payload,
                             std::chrono::milliseconds timeout, std::function<void(reply&&)> then) {
  auto now = clock_type::now();
  auto deadline = std::min(parent->deadline, now + timeout);
  auto id = next_call_++;
  continuations_.emplace(id, std::move(then));
  target.kind = message_kind::request;
  target.id = id;
  target.trace = parent->header.trace;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
  target.deadline_ms = static_cast<std::uint32_t>(std::max<std::int64_t>(1, left.count()));
  auto me = caf::actor_cast<caf::actor>(self_);
  auto limits = svc_->limits;
  auto out = std::make_shared<request>(
      std::move(target), std::move(payload), deadline,
      [me, id, limits](const envelope& h, std::string&& p) {
        auto r = std::make_shared<reply>();
        r->header = h;
        if (h.kind == message_kind::error)
          r->error = decode_error_payload(p, limits);
        else
          r->payload = std::move(p);
        caf::anon_send(me, reply_atom::value, id, std::move(r));
      });
  caf::delayed_anon_send(me, left + std::chrono::milliseconds(1), call_timeout_atom::value, id);
  svc_->calls->route(std::move(out));
}

void method_runner::on_reply(std::uint64_t id, reply&& r) {
  auto it = continuations_.find(id);
  if (it == continuations_.end()) return;  // timed out already
  auto then = std::move(it->second);
  continuations_.erase(it);
  try {
    then(std::move(r));
  } catch (const std::exception& e) {
    crash(exception_name(e) + " in a call continuation: " + e.what());
  }
}

void method_runner::on_call_timeout(std::uint64_t id) {
  auto it = continuations_.find(id);
  if (it == continuations_.end()) return;
  reply r;
  r.header.kind = message_kind::error;
  r.header.id = id;
  r.error = error_info{errc::timeout, "no reply before the deadline"};
  on_reply(id, std::move(r));
}

bool method_runner::persist(error_info& err) {
  write_batch batch;
  batch.put(entity_store_key(key_), state_->encode());
  auto written = svc_->db->write(batch);
  if (!written) {
    err = {errc::unavailable, "state of " + svc_->def.name + "/" + key_ + " was not stored: " + written.error().message};
    reload();
    return false;
  }
  return true;
}

bool method_runner::load(error_info& err) {
  auto stored = svc_->db->get(entity_store_key(key_));
  if (!stored) {
    err = stored.error();
    return false;
  }
  if (*stored && !state_->decode(**stored)) {
    err = {errc::internal, "stored state of " + svc_->def.name + "/" + key_ + " does not decode"};
    return false;
  }
  return true;
}

void method_runner::reload() {
  error_info err;
  if (!load(err)) crash(err.message);
}

void method_runner::crash(const std::string& what) {
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
      [=](reply_atom, std::uint64_t id, const reply_ptr& r) { self->state.runner->on_reply(id, std::move(*r)); },
      [=](call_timeout_atom, std::uint64_t id) { self->state.runner->on_call_timeout(id); },
  };
}

// -- entity -------------------------------------------------------------------

struct entity_actor_state {
  std::unique_ptr<entity_state_box> box;
  std::unique_ptr<method_runner> runner;
  std::uint64_t processed = 0;
  static inline const char* name = "cohort.entity";
};

caf::behavior entity_actor(caf::stateful_actor<entity_actor_state>* self, std::shared_ptr<service_runtime> svc,
                           std::string key, caf::actor parent) {
  auto& st = self->state;
  st.box = svc->def.make_state();
  st.runner = std::make_unique<method_runner>(self, svc, st.box.get(), key);
  error_info err;
  if (!st.runner->load(err)) {
    svc->record_failure("activation of " + svc->def.name + "/" + key + " failed: " + err.message);
    self->quit(caf::make_error(caf::sec::runtime_error, err.message));
    return {};
  }
  svc->activations++;
  svc->live_entities++;
  self->attach_functor([svc] { svc->live_entities--; });
  return {
      [=](const request_ptr& req) {
        self->state.processed++;
        self->state.runner->run(req);
      },
      [=](reply_atom, std::uint64_t id, const reply_ptr& r) { self->state.runner->on_reply(id, std::move(*r)); },
      [=](call_timeout_atom, std::uint64_t id) { self->state.runner->on_call_timeout(id); },
      [=](crash_atom) { self->state.runner->injected_crash(); },
      [=](passivate_ok_atom) {
        svc->passivations++;
        self->quit();
      },
      caf::after(svc->cfg.entity_idle) >>
          [=] {
            if (self->state.runner->idle()) self->send(parent, passivate_atom::value, key, self->state.processed);
          },
  };
}

}  // namespace

caf::actor spawn_worker(caf::event_based_actor* parent, std::shared_ptr<service_runtime> svc,
                        std::shared_ptr<handler_activity> activity) {
  return parent->spawn<caf::monitored>(worker_actor, std::move(svc), std::move(activity));
}

caf::actor spawn_entity(caf::event_based_actor* parent, std::shared_ptr<service_runtime> svc, std::string key) {
  return parent->spawn<caf::monitored>(entity_actor, std::move(svc), std::move(key),
                                       caf::actor_cast<caf::actor>(parent));
}

}  // namespace cohort::detail
