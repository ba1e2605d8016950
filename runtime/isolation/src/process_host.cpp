#include "cohort/isolation/process_host.hpp"

#include <array>
#include <csignal>
#include <cstring>
#include <map>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <nlohmann/json.hpp>
#include "cohort/log/log.hpp"
#include "cohort/log/thread_name.hpp"
#include <spdlog/spdlog.h>

#include "cohort/transport/client.hpp"
#include "cohort/transport/json_bridge.hpp"

namespace cohort::detail {

namespace {
using clock_type = std::chrono::steady_clock;
namespace asio = boost::asio;
}

/// The supervising thread's event loop: a child's exit arrives as SIGCHLD,
/// its output as readable bytes, restarts and status polls as timers.
/// Nothing here polls waitpid or sleeps.
struct process_host::loop {
  asio::io_context io;
  asio::signal_set sigchld{io, SIGCHLD};
  asio::steady_timer status_timer{io};
  asio::steady_timer kill_timer{io};
  /// One admin client per child, used by this thread only.
  std::map<std::string, std::unique_ptr<client>> admins;
};

struct process_host::child {
  explicit child(asio::io_context& io) : out(io), restart_timer(io) {}
  service_config cfg;
  pid_t pid = -1;
  asio::posix::stream_descriptor out;  ///< the child's stdout: "cohort: ready" says it is up
  std::array<char, 1024> read_buffer{};
  std::string out_buffer;
  asio::steady_timer restart_timer;
  std::string state = "starting";  // starting, up, restarting, down, stopped
  std::string down_reason, last_failure;
  std::uint64_t restarts = 0;
  bool operator_stopped = false;
  bool restart_requested = false;
  clock_type::time_point started_at;
  std::unique_ptr<supervision_plan> plan;
  /// What the process itself last reported (its admin status): the counters
  /// only the process knows (entities, events, resumes, in flight).
  service_status reported;
};

namespace {

/// Asks a service process for its own status, on its admin socket. Called by
/// the supervising thread, a few times a second; a slow child costs at most `limit`.
std::optional<service_status> ask_status(client& admin, std::chrono::milliseconds limit) {
  call_options o;
  o.timeout = limit;
  auto r = admin.call("admin", "status", *json_to_msgpack("{}"), o);
  if (!r.ok()) return std::nullopt;
  auto text = msgpack_to_json(r.payload);
  if (!text) return std::nullopt;
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.contains("services") || !j["services"].is_array() || j["services"].empty())
    return std::nullopt;
  const auto& s = j["services"][0];
  service_status out;
  out.kind = s.value("kind", "");
  out.in_flight = s.value("in_flight", std::int64_t{0});
  out.activations = s.value("activations", std::uint64_t{0});
  out.live_entities = s.value("live_entities", std::int64_t{0});
  out.hibernated_entities = s.value("hibernated_entities", std::int64_t{0});
  out.hibernations = s.value("hibernations", std::uint64_t{0});
  out.wakes = s.value("wakes", std::uint64_t{0});
  out.resumes = s.value("resumes", std::uint64_t{0});
  out.quarantines = s.value("quarantines", std::uint64_t{0});
  out.events_published = s.value("events_published", std::uint64_t{0});
  out.events_delivered = s.value("events_delivered", std::uint64_t{0});
  out.event_redeliveries = s.value("event_redeliveries", std::uint64_t{0});
  out.outbox_oldest_age_s = s.value("outbox_oldest_age_s", 0.0);
  out.events_logged = s.value("events_logged", std::uint64_t{0});
  out.subscriptions = s.value("subscriptions", std::int64_t{-1});
  out.pending_entities = s.value("pending_entities", std::int64_t{-1});
  out.stuck_handlers = s.value("stuck_handlers", std::uint64_t{0});
  return out;
}

}  // namespace

process_host::process_host(const node_config& cfg, std::string binary, std::string runtime_dir,
                           std::function<void(const std::string&)> on_exit)
    : cfg_(cfg),
      binary_(std::move(binary)),
      runtime_dir_(std::move(runtime_dir)),
      on_exit_(std::move(on_exit)),
      loop_(std::make_unique<loop>()) {
  for (const auto& s : cfg_.services) {
    auto c = std::make_unique<child>(loop_->io);
    c->cfg = s;
    supervision_policy p = s.supervision;
    p.strategy = restart_strategy::one_for_one;
    c->plan = std::make_unique<supervision_plan>(p, std::vector<child_spec>{{s.name}});
    children_.push_back(std::move(c));
  }
}

process_host::~process_host() { stop(); }

std::string process_host::endpoint_of(const std::string& service) const {
  return "ipc://" + runtime_dir_ + "/" + service + ".sock";
}

void process_host::start() {
  // Children are forked by the supervising thread only: PR_SET_PDEATHSIG ties
  // them to the thread that forked them, and this one outlives them all.
  // SIGCHLD is caught (signal_set) before the first fork, so no exit is missed.
  wait_for_exits();
  schedule_status_poll(std::chrono::milliseconds(500));
  asio::post(loop_->io, [this] {
    std::lock_guard<std::mutex> guard(mutex_);
    for (auto& c : children_) spawn(*c);
  });
  thread_ = std::thread([this] {
    log::name_this_thread("cohort-procs");
    // SIGCHLD is for this thread. `cohort run` blocks it in every other
    // thread, so that it never interrupts the I/O thread's or CAF's calls.
    sigset_t child_exits;
    sigemptyset(&child_exits);
    sigaddset(&child_exits, SIGCHLD);
    ::pthread_sigmask(SIG_UNBLOCK, &child_exits, nullptr);
    loop_->io.run();
  });
}

void process_host::spawn(child& c) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    c.state = "down";
    c.down_reason = std::string("pipe failed: ") + std::strerror(errno);
    return;
  }
  // Everything the child needs is prepared before fork: between fork and exec
  // a child of a multi-threaded process may only make async-signal-safe calls.
  std::vector<std::string> args{binary_, "run", "--config", cfg_.source_path, "--isolated-child", c.cfg.name,
                                "--runtime-dir", runtime_dir_};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  sigset_t none;
  sigemptyset(&none);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], 1);
    // If the parent node dies, its service processes go with it rather than
    // holding their stores locked for a parent that will never reap them.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    // The child must not inherit the parent's blocked stop signals.
    ::pthread_sigmask(SIG_SETMASK, &none, nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(out[1]);
  c.pid = pid;
  c.out.assign(out[0]);
  c.out_buffer.clear();
  c.state = "starting";
  c.started_at = clock_type::now();
  c.plan->started(0, c.started_at);
  read_output(c);
}

void process_host::read_output(child& c) {
  c.out.async_read_some(asio::buffer(c.read_buffer), [this, &c](const boost::system::error_code& ec, std::size_t n) {
    if (ec) return;  // end of output (the child exited) or closed by reap
    std::lock_guard<std::mutex> guard(mutex_);
    c.out_buffer.append(c.read_buffer.data(), n);
    if (c.state == "starting" && c.out_buffer.find("cohort: ready") != std::string::npos) c.state = "up";
    if (c.out_buffer.size() > 65536) c.out_buffer.erase(0, c.out_buffer.size() - 1024);
    read_output(c);
  });
}

void process_host::restart_later(child& c, std::chrono::milliseconds delay) {
  c.restart_timer.expires_after(delay);
  c.restart_timer.async_wait([this, &c](const boost::system::error_code& ec) {
    if (ec) return;  // cancelled: stopped by the operator or the node
    std::lock_guard<std::mutex> guard(mutex_);
    if (c.pid < 0 && c.state == "restarting" && !stopping_) spawn(c);
  });
}

void process_host::wait_for_exits() {
  loop_->sigchld.async_wait([this](const boost::system::error_code& ec, int) {
    if (ec) return;
    std::vector<std::string> exited;
    bool all_gone = true, done = false;
    {
      // One SIGCHLD may stand for several exits: ask about each child.
      std::lock_guard<std::mutex> guard(mutex_);
      for (auto& cp : children_) {
        auto& c = *cp;
        int status = 0;
        if (c.pid > 0 && ::waitpid(c.pid, &status, WNOHANG) == c.pid) {
          reap(c, status);
          exited.push_back(c.cfg.name);
        }
        all_gone = all_gone && c.pid < 0;
      }
      done = stopping_ && all_gone;
      if (done) {
        loop_->kill_timer.cancel();
        loop_->status_timer.cancel();
        loop_->sigchld.cancel();
        loop_->io.stop();
      }
    }
    for (const auto& name : exited) on_exit_(name);
    if (!done) wait_for_exits();
  });
}

void process_host::schedule_status_poll(std::chrono::milliseconds delay) {
  loop_->status_timer.expires_after(delay);
  loop_->status_timer.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    poll_status();
    schedule_status_poll(std::chrono::milliseconds(500));
  });
}

void process_host::poll_status() {
  std::vector<std::string> up;
  {
    std::lock_guard<std::mutex> guard(mutex_);
    if (stopping_) return;
    for (auto& c : children_)
      if (c->state == "up") up.push_back(c->cfg.name);
  }
  for (const auto& name : up) {
    auto& admin = loop_->admins[name];
    if (!admin) admin = std::make_unique<client>("ipc://" + runtime_dir_ + "/" + name + ".admin.sock");
    auto seen = ask_status(*admin, std::chrono::milliseconds(200));
    if (!seen) {
      admin.reset();  // a fresh connection next time (the process may have been replaced)
      continue;
    }
    std::lock_guard<std::mutex> guard(mutex_);
    for (auto& c : children_)
      if (c->cfg.name == name) c->reported = *seen;
  }
}

void process_host::reap(child& c, int status) {
  boost::system::error_code ignored;
  c.out.close(ignored);
  c.pid = -1;
  std::string why = WIFSIGNALED(status) ? std::string("killed by signal ") + std::to_string(WTERMSIG(status)) + " (" +
                                              ::strsignal(WTERMSIG(status)) + ")"
                                        : "exited with code " + std::to_string(WEXITSTATUS(status));
  if (c.restart_requested) {
    c.restart_requested = false;
    c.state = "restarting";
    restart_later(c, std::chrono::milliseconds(0));
    return;
  }
  if (c.operator_stopped || stopping_) {
    c.state = "stopped";
    return;
  }
  c.last_failure = why;
  log::get("isolation")->error("service process {} {}", c.cfg.name, why);
  const bool abnormal = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  auto decision = c.plan->on_exit(0, abnormal, {false}, clock_type::now());
  if (decision.give_up) {
    c.state = "down";
    c.down_reason = "restart intensity exceeded; last failure: " + why;
    return;
  }
  if (decision.start.empty()) {
    c.state = "stopped";
    return;
  }
  c.restarts++;
  c.state = "restarting";
  restart_later(c, std::chrono::duration_cast<std::chrono::milliseconds>(decision.delay));
}

void process_host::stop() {
  {
    std::lock_guard<std::mutex> guard(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (!thread_.joinable()) return;
  // SIGTERM lets each child drain; SIGKILL after the drain timeout and one
  // more second. The loop ends once the last child is reaped.
  asio::post(loop_->io, [this] {
    bool any = false;
    {
      std::lock_guard<std::mutex> guard(mutex_);
      for (auto& c : children_) {
        c->restart_timer.cancel();
        if (c->pid > 0) {
          ::kill(c->pid, SIGTERM);
          any = true;
        }
      }
    }
    if (!any) {
      loop_->io.stop();
      return;
    }
    loop_->kill_timer.expires_after(cfg_.drain_timeout + std::chrono::seconds(1));
    loop_->kill_timer.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      std::lock_guard<std::mutex> guard(mutex_);
      for (auto& c : children_)
        if (c->pid > 0) {
          log::get("isolation")->warn("service process {} did not finish draining in time: SIGKILL", c->cfg.name);
          ::kill(c->pid, SIGKILL);
        }
    });
  });
  thread_.join();
  std::lock_guard<std::mutex> guard(mutex_);
  for (auto& c : children_)
    if (c->state != "down") c->state = "stopped";
}

bool process_host::ready(const std::string& service, std::string* why_not) const {
  std::lock_guard<std::mutex> guard(mutex_);
  for (const auto& c : children_)
    if (c->cfg.name == service) {
      if (c->state == "up") return true;
      if (why_not)
        *why_not = c->state == "down" ? c->down_reason
                                      : "its process is " + c->state +
                                            (c->last_failure.empty() ? "" : " (last failure: " + c->last_failure + ")");
      return false;
    }
  if (why_not) *why_not = "not hosted here";
  return false;
}

std::vector<service_status> process_host::status() const {
  std::lock_guard<std::mutex> guard(mutex_);
  std::vector<service_status> out;
  for (const auto& c : children_) {
    service_status s;
    s.name = c->cfg.name;
    s.kind = c->reported.kind.empty() ? "process" : c->reported.kind;
    s.state = c->state == "up" ? "up" : (c->state == "down" || c->state == "stopped" ? "down" : c->state);
    s.down_reason = c->down_reason;
    s.strategy = "one_for_one";
    s.uptime_s = c->pid > 0 ? std::chrono::duration<double>(clock_type::now() - c->started_at).count() : 0;
    s.restarts = c->restarts;
    s.last_failure = c->last_failure;
    s.children.push_back({"process", "process", "permanent", c->state, c->restarts, c->last_failure});
    s.pid = c->pid;
    if (c->state == "up") {
      s.in_flight = c->reported.in_flight;
      s.activations = c->reported.activations;
      s.live_entities = c->reported.live_entities;
      s.hibernated_entities = c->reported.hibernated_entities;
      s.hibernations = c->reported.hibernations;
      s.wakes = c->reported.wakes;
      s.resumes = c->reported.resumes;
      s.quarantines = c->reported.quarantines;
      s.events_published = c->reported.events_published;
      s.events_delivered = c->reported.events_delivered;
      s.event_redeliveries = c->reported.event_redeliveries;
      s.outbox_oldest_age_s = c->reported.outbox_oldest_age_s;
      s.events_logged = c->reported.events_logged;
      s.subscriptions = c->reported.subscriptions;
      s.pending_entities = c->reported.pending_entities;
      s.stuck_handlers = c->reported.stuck_handlers;
    }
    out.push_back(std::move(s));
  }
  return out;
}

result<bool> process_host::command(const std::string& service, const std::string& cmd) {
  std::lock_guard<std::mutex> guard(mutex_);
  for (auto& cp : children_) {
    auto& c = *cp;
    if (c.cfg.name != service) continue;
    // The supervising thread carries these out: it reaps the old process
    // (which drains on SIGTERM) and forks the new one.
    if (cmd != "stop" && cmd != "start" && cmd != "restart")
      return error_info{errc::bad_request, "unknown command '" + cmd + "'"};
    const bool alive = c.pid > 0;
    c.operator_stopped = cmd == "stop";
    c.down_reason = cmd == "stop" ? "stopped by operator" : "";
    if (cmd == "stop") {
      c.restart_requested = false;
      asio::post(loop_->io, [&c] { c.restart_timer.cancel(); });
      if (alive && c.state != "stopping") ::kill(c.pid, SIGTERM);
      c.state = alive ? "stopping" : "stopped";
    } else if (alive) {
      // start while stopping, or restart: a new process once the old one is reaped.
      if (cmd == "restart" || c.state == "stopping") c.restart_requested = true;
      if (cmd == "restart" && c.state != "stopping") ::kill(c.pid, SIGTERM);
      if (c.restart_requested) c.state = "stopping";
    } else {
      c.state = "restarting";
      asio::post(loop_->io, [this, &c] { restart_later(c, std::chrono::milliseconds(0)); });
    }
    return true;
  }
  return error_info{errc::unknown_service, "no service named '" + service + "' on this node"};
}

}  // namespace cohort::detail
