#include "cohort/log/log.hpp"

#include <atomic>
#include <chrono>
#include <ctime>
#include <deque>
#include <mutex>

#include <nlohmann/json.hpp>
#include <spdlog/cfg/helpers.h>
#include <spdlog/details/registry.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "cohort/log/log_ring.hpp"

namespace cohort::log {

namespace {

using ojson = nlohmann::ordered_json;

thread_local context current_context;

std::int64_t unix_us(spdlog::log_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

/// RFC 3339 in UTC with microseconds: 2026-11-26T05:40:00.123456Z.
std::string rfc3339(std::int64_t us) {
  std::time_t secs = static_cast<std::time_t>(us / 1000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(us % 1000000));
  return buf;
}

std::string_view level_name(spdlog::level::level_enum l) {
  auto sv = spdlog::level::to_string_view(l);
  return {sv.data(), sv.size()};
}

/// Everything a line says, from the message and the thread's context.
record make_record(const spdlog::details::log_msg& msg, const std::string& node) {
  const auto& c = current_context;
  record r;
  r.time_us = unix_us(msg.time);
  r.level = std::string(level_name(msg.level));
  r.node = node;
  r.component.assign(msg.logger_name.data(), msg.logger_name.size());
  r.service = std::string(c.service);
  r.actor = std::string(c.actor);
  r.trace_id = std::string(c.trace_id);
  r.span_id = std::string(c.span_id);
  r.caller = std::string(c.caller);
  r.message.assign(msg.payload.data(), msg.payload.size());
  if (c.extra)
    for (const auto& [k, v] : *c.extra) r.fields.emplace_back(std::string(k), v);
  return r;
}

/// The configuration all loggers share. Guarded by `setup_mutex`.
struct shared_setup {
  std::string node;
  format output = format::text;
  std::vector<spdlog::sink_ptr> sinks;
  bool access = false;
};
std::mutex setup_mutex;
shared_setup setup;
std::atomic<bool> access_on{false};

/// JSON lines: one object a line, escaped by nlohmann::json (control
/// characters as \u00XX, invalid UTF-8 replaced by U+FFFD), never hand-made.
class json_formatter final : public spdlog::formatter {
 public:
  explicit json_formatter(std::string node) : node_(std::move(node)) {}
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    auto text = to_json(make_record(msg, node_)).dump(-1, ' ', false, ojson::error_handler_t::replace);
    dest.append(text.data(), text.data() + text.size());
    dest.push_back('\n');
  }
  [[nodiscard]] std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<json_formatter>(node_);
  }

 private:
  std::string node_;
};

/// Human text: spdlog's pattern, then the context as key=value.
class text_formatter final : public spdlog::formatter {
 public:
  text_formatter() : base_("[%Y-%m-%d %H:%M:%S.%e] [%n] [%^%l%$] %v", spdlog::pattern_time_type::local, "") {}
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    base_.format(msg, dest);
    const auto& c = current_context;
    auto add = [&](std::string_view key, std::string_view value) {
      if (value.empty()) return;
      dest.push_back(' ');
      dest.append(key.data(), key.data() + key.size());
      dest.push_back('=');
      dest.append(value.data(), value.data() + value.size());
    };
    add("service", c.service);
    add("actor", c.actor);
    add("trace", c.trace_id);
    add("span", c.span_id);
    add("caller", c.caller);
    if (c.extra)
      for (const auto& [k, v] : *c.extra) add(k, v);
    dest.push_back('\n');
  }
  [[nodiscard]] std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<text_formatter>(); }

 private:
  spdlog::pattern_formatter base_;
};

/// The ring of recent lines, as records (not text).
class ring_sink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  void configure(std::string node, std::size_t capacity) {
    std::lock_guard<std::mutex> guard(ring_mutex_);
    node_ = std::move(node);
    capacity_ = capacity;
    while (lines_.size() > capacity_) lines_.pop_front();
  }
  std::vector<record> find(const query& q) {
    std::vector<record> out;
    std::lock_guard<std::mutex> guard(ring_mutex_);
    for (auto it = lines_.rbegin(); it != lines_.rend() && out.size() < q.limit; ++it) {
      if (it->time_us < q.since_us) break;  // the ring is in time order
      if (!q.trace_id.empty() && it->trace_id != q.trace_id) continue;
      if (!q.service.empty() && it->service != q.service) continue;
      if (!q.component.empty() && it->component != q.component) continue;
      out.push_back(*it);
    }
    std::reverse(out.begin(), out.end());
    return out;
  }
  void set_listener(std::function<void(const record&)> l) {
    std::lock_guard<std::mutex> guard(ring_mutex_);
    listener_ = std::move(l);
  }
  std::atomic<std::uint64_t> overwritten{0};

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    std::lock_guard<std::mutex> guard(ring_mutex_);
    if (capacity_ == 0 && !listener_) return;
    auto r = make_record(msg, node_);
    if (r.message.size() > 8192) r.message.resize(8192);  // a ring of lines, not of payloads
    if (listener_) listener_(r);
    if (capacity_ == 0) return;
    if (lines_.size() >= capacity_) {
      lines_.pop_front();
      overwritten.fetch_add(1, std::memory_order_relaxed);
    }
    lines_.push_back(std::move(r));
  }
  void flush_() override {}

 private:
  std::mutex ring_mutex_;  // find() runs beside logging threads
  std::string node_;
  std::size_t capacity_ = 10000;
  std::deque<record> lines_;
  std::function<void(const record&)> listener_;
};

std::shared_ptr<ring_sink>& the_ring() {
  static auto ring = std::make_shared<ring_sink>();
  return ring;
}

std::unique_ptr<spdlog::formatter> make_formatter(format f, const std::string& node) {
  if (f == format::json) return std::make_unique<json_formatter>(node);
  return std::make_unique<text_formatter>();
}

/// The sinks of every logger: stderr (colours only for a terminal) and the ring.
std::vector<spdlog::sink_ptr> make_sinks(format f) {
  spdlog::sink_ptr out;
  if (f == format::text)
    out = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  else
    out = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  return {out, the_ring()};
}

void set_up_logger(const std::shared_ptr<spdlog::logger>& l) {
  l->sinks() = setup.sinks;
  l->set_formatter(make_formatter(setup.output, setup.node));
}

}  // namespace

bool is_level(std::string_view name) {
  for (auto l : {"trace", "debug", "info", "warn", "warning", "error", "err", "critical", "off"})
    if (name == l) return true;
  return false;
}

void configure(const config& cfg, std::string node) {
  std::lock_guard<std::mutex> guard(setup_mutex);
  setup.node = std::move(node);
  setup.output = cfg.output;
  setup.sinks = make_sinks(cfg.output);
  setup.access = cfg.access;
  access_on.store(cfg.access, std::memory_order_relaxed);
  the_ring()->configure(setup.node, cfg.ring_lines);

  // The default logger is the component "cohort" (lines of code that name none).
  auto def = spdlog::get("cohort");
  if (!def) {
    def = std::make_shared<spdlog::logger>("cohort");
    spdlog::register_logger(def);
  }
  spdlog::set_default_logger(def);
  spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& l) { set_up_logger(l); });
  // Levels: spdlog's own "info,store=debug" syntax, so loggers made later get theirs too.
  std::string spec = cfg.level;
  for (const auto& [component, level] : cfg.levels) spec += "," + component + "=" + level;
  spdlog::cfg::helpers::load_levels(spec);
  spdlog::flush_on(spdlog::level::warn);
}

std::shared_ptr<spdlog::logger> get(const std::string& component) {
  if (auto l = spdlog::get(component)) return l;
  std::lock_guard<std::mutex> guard(setup_mutex);
  if (auto l = spdlog::get(component)) return l;
  auto l = std::make_shared<spdlog::logger>(component);
  spdlog::details::registry::instance().initialize_logger(l);  // registered, with its configured level
  if (setup.sinks.empty())  // logging not configured (a library user): spdlog's default output
    l->sinks() = spdlog::default_logger()->sinks();
  else
    set_up_logger(l);  // after initialize_logger, which sets the global formatter
  return l;
}

bool access_log_on() { return access_on.load(std::memory_order_relaxed); }

scope::scope(const context& ctx) : saved_(current_context) { current_context = ctx; }
scope::~scope() { current_context = saved_; }
const context& current() { return current_context; }

std::vector<record> recent(const query& q) { return the_ring()->find(q); }
std::uint64_t ring_overwritten() { return the_ring()->overwritten.load(std::memory_order_relaxed); }
void set_listener(std::function<void(const record&)> listener) { the_ring()->set_listener(std::move(listener)); }

ojson to_json(const record& r) {
  ojson j;
  j["time"] = rfc3339(r.time_us);
  j["level"] = r.level;
  j["node"] = r.node;
  j["component"] = r.component;
  if (!r.service.empty()) j["service"] = r.service;
  if (!r.actor.empty()) j["actor"] = r.actor;
  if (!r.trace_id.empty()) j["trace_id"] = r.trace_id;
  if (!r.span_id.empty()) j["span_id"] = r.span_id;
  if (!r.caller.empty()) j["caller"] = r.caller;
  j["msg"] = r.message;
  for (const auto& [k, v] : r.fields) j[k] = v;
  return j;
}

}  // namespace cohort::log
