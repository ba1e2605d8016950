// The actors of one service: its root (router), stateless workers and keyed
// entity actors, and the method_runner that runs handlers inside them.
#include <cxxabi.h>
#include <unordered_map>

#include <caf/all.hpp>

#include "cohort/transport/envelope_codec.hpp"
#include "service_runtime.hpp"

using reply_ptr = std::shared_ptr<cohort::reply>;
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cohort::detail::request_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(reply_ptr)

namespace cohort::detail {

namespace {

using clock_type = std::chrono::steady_clock;
using reply_atom = caf::atom_constant<caf::atom("reply")>;
using call_timeout_atom = caf::atom_constant<caf::atom("calltmo")>;
using passivate_atom = caf::atom_constant<caf::atom("passivate")>;
using passivate_ok_atom = caf::atom_constant<caf::atom("passiv_ok")>;

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
                entity_state_box* state, std::string key)
      : self_(self), svc_(std::move(svc)), state_(state), key_(std::move(key)) {}

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

caf::behavior worker_actor(caf::stateful_actor<worker_state>* self, std::shared_ptr<service_runtime> svc) {
  self->state.runner = std::make_unique<method_runner>(self, std::move(svc), nullptr, std::string{});
  return {
      [=](const request_ptr& req) { self->state.runner->run(req); },
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

// -- service root ---------------------------------------------------------------

struct service_root_state {
  struct entity_entry {
    caf::actor actor;
    std::uint64_t sent = 0;
  };
  std::vector<caf::actor> workers;
  std::size_t next_worker = 0;
  std::unordered_map<std::string, entity_entry> entities;
  std::unordered_map<caf::actor_addr, std::string> entity_keys;
  static inline const char* name = "cohort.service";
};

caf::behavior service_root(caf::stateful_actor<service_root_state>* self, std::shared_ptr<service_runtime> svc) {
  const bool entities = svc->def.kind == service_kind::entities;
  if (!entities)
    for (std::size_t i = 0; i < svc->cfg.workers; ++i)
      self->state.workers.push_back(self->spawn<caf::monitored>(worker_actor, svc));

  self->set_down_handler([=](caf::down_msg& dm) {
    auto& st = self->state;
    if (entities) {
      auto k = st.entity_keys.find(dm.source);
      if (k == st.entity_keys.end()) return;
      auto e = st.entities.find(k->second);
      if (e != st.entities.end() && e->second.actor.address() == dm.source) st.entities.erase(e);
      st.entity_keys.erase(k);
      if (dm.reason) svc->restarts++;  // re-activated on its next message
      return;
    }
    for (auto& w : st.workers)
      if (w.address() == dm.source) {
        // Temporary one_for_one restart until the supervisor of issue 3 takes over.
        w = self->spawn<caf::monitored>(worker_actor, svc);
        svc->restarts++;
      }
  });
  self->set_exit_handler([=](caf::exit_msg& em) {
    for (auto& w : self->state.workers) self->send_exit(w, em.reason);
    for (auto& [k, e] : self->state.entities) self->send_exit(e.actor, em.reason);
    self->quit(em.reason);
  });

  return {
      [=](request_ptr& req) {
        auto& st = self->state;
        if (!entities) {
          auto& w = st.workers[st.next_worker++ % st.workers.size()];
          self->send(w, std::move(req));
          return;
        }
        if (req->header.key.empty()) {
          req->fail({errc::bad_request, "service '" + svc->def.name + "' is an entity service: set 'key'"});
          return;
        }
        auto it = st.entities.find(req->header.key);
        if (it == st.entities.end()) {
          auto a = self->spawn<caf::monitored>(entity_actor, svc, req->header.key, caf::actor_cast<caf::actor>(self));
          st.entity_keys.emplace(a.address(), req->header.key);
          it = st.entities.emplace(req->header.key, service_root_state::entity_entry{a, 0}).first;
        }
        it->second.sent++;
        self->send(it->second.actor, std::move(req));
      },
      [=](passivate_atom, const std::string& key, std::uint64_t processed) {
        auto& st = self->state;
        auto it = st.entities.find(key);
        // Only when the entity has seen everything we sent may it go quietly.
        if (it == st.entities.end() || it->second.sent != processed ||
            it->second.actor != caf::actor_cast<caf::actor>(self->current_sender()))
          return;
        self->send(it->second.actor, passivate_ok_atom::value);
        st.entity_keys.erase(it->second.actor.address());
        st.entities.erase(it);
      },
  };
}

}  // namespace

void service_runtime::record_failure(std::string reason) {
  std::lock_guard<std::mutex> guard(failure_mutex_);
  last_failure_ = std::move(reason);
}

std::string service_runtime::last_failure() const {
  std::lock_guard<std::mutex> guard(failure_mutex_);
  return last_failure_;
}

caf::actor spawn_service(caf::actor_system& sys, std::shared_ptr<service_runtime> svc) {
  return sys.spawn(service_root, std::move(svc));
}

void deliver(const caf::actor& service, request_ptr req) {
  caf::anon_send(service, std::move(req));
}

}  // namespace cohort::detail
