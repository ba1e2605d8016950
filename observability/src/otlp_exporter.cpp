#include "cohort/observability/otlp_exporter.hpp"

#include <map>

#include <curl/curl.h>
#include <nlohmann/json.hpp>

#include "cohort/log/log.hpp"

namespace cohort::observability {

namespace {

using json = nlohmann::json;

json string_attribute(const std::string& key, const std::string& value) {
  return {{"key", key}, {"value", {{"stringValue", value}}}};
}

json resource(const std::string& service, const std::string& node) {
  return {{"attributes", json::array({string_attribute("service.name", service),
                                      string_attribute("service.instance.id", node),
                                      string_attribute("service.namespace", "cohort")})}};
}

json scope() { return {{"name", "cohort"}, {"version", "1"}}; }

std::size_t batch_limit = 512;

/// Severity numbers of the OpenTelemetry log data model.
int severity_number(const std::string& level) {
  if (level == "trace") return 1;
  if (level == "debug") return 5;
  if (level == "info") return 9;
  if (level == "warning" || level == "warn") return 13;
  if (level == "error") return 17;
  if (level == "critical") return 21;
  return 0;
}

/// Items (spans, log records) grouped by the service they belong to: one OTLP resource each.
using by_service_items = std::map<std::string, json>;

void add_to(by_service_items& groups, const std::string& service, json item) {
  auto& list = groups[service.empty() ? "cohort" : service];
  if (list.is_null()) list = json::array();
  list.push_back(std::move(item));
}

/// {"<resources>": [{"resource": ..., "<scopes>": [{"scope": ..., "<items>": [...]}]}, ...]}
json per_resource(by_service_items& groups, const std::string& node, const char* resources, const char* scopes,
                  const char* items) {
  json out = json::array();
  for (auto& [service, list] : groups)
    out.push_back({{"resource", resource(service, node)},
                   {scopes, json::array({{{"scope", scope()}, {items, std::move(list)}}})}});
  return {{resources, std::move(out)}};
}

std::size_t discard_body(char*, std::size_t size, std::size_t n, void*) { return size * n; }

}  // namespace

json otlp_traces_document(const std::vector<span>& spans, const std::string& node) {
  by_service_items by_service;
  for (const auto& s : spans) {
    json attributes = json::array();
    for (const auto& [k, v] : s.attributes) attributes.push_back(string_attribute(k, v));
    json status = s.failed() ? json{{"code", 2}, {"message", s.code}} : json{{"code", 1}};
    json j = {{"traceId", s.trace_id},
              {"spanId", s.span_id},
              {"name", s.name},
              {"kind", static_cast<int>(s.kind)},
              {"startTimeUnixNano", std::to_string(s.start_ns)},
              {"endTimeUnixNano", std::to_string(s.end_ns)},
              {"attributes", std::move(attributes)},
              {"status", std::move(status)}};
    if (!s.parent_span_id.empty()) j["parentSpanId"] = s.parent_span_id;
    add_to(by_service, s.service, std::move(j));
  }
  return per_resource(by_service, node, "resourceSpans", "scopeSpans", "spans");
}

json otlp_logs_document(const std::vector<log::record>& lines, const std::string& node) {
  by_service_items by_service;
  for (const auto& r : lines) {
    json attributes = json::array({string_attribute("cohort.component", r.component)});
    if (!r.actor.empty()) attributes.push_back(string_attribute("cohort.actor", r.actor));
    if (!r.caller.empty()) attributes.push_back(string_attribute("cohort.caller", r.caller));
    for (const auto& [k, v] : r.fields) attributes.push_back(string_attribute(k, v));
    json j = {{"timeUnixNano", std::to_string(static_cast<std::uint64_t>(r.time_us) * 1000)},
              {"severityNumber", severity_number(r.level)},
              {"severityText", r.level},
              {"body", {{"stringValue", r.message}}},
              {"attributes", std::move(attributes)}};
    if (!r.trace_id.empty()) j["traceId"] = r.trace_id;
    if (!r.span_id.empty()) j["spanId"] = r.span_id;
    add_to(by_service, r.service, std::move(j));
  }
  return per_resource(by_service, node, "resourceLogs", "scopeLogs", "logRecords");
}

otlp_exporter::otlp_exporter(const trace_config& cfg, std::string node) : cfg_(cfg), node_(std::move(node)) {
  static const bool curl_ready = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  (void)curl_ready;
  while (!cfg_.otlp_endpoint.empty() && cfg_.otlp_endpoint.back() == '/') cfg_.otlp_endpoint.pop_back();
  thread_ = std::thread([this] { run(); });
}

otlp_exporter::~otlp_exporter() {
  {
    std::lock_guard<std::mutex> guard(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

bool otlp_exporter::push(const span& s) {
  std::lock_guard<std::mutex> guard(mutex_);
  if (spans_.size() + lines_.size() >= cfg_.export_queue) {
    dropped.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  spans_.push_back(s);
  if (spans_.size() == batch_limit) wake_.notify_one();
  return true;
}

bool otlp_exporter::push(const log::record& r) {
  std::lock_guard<std::mutex> guard(mutex_);
  if (spans_.size() + lines_.size() >= cfg_.export_queue) {
    dropped.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  lines_.push_back(r);
  return true;
}

bool otlp_exporter::post(const std::string& url, const std::string& body) {
  CURL* curl = curl_easy_init();
  if (!curl) return false;
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(cfg_.export_timeout.count()));
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(cfg_.export_timeout.count()));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard_body);
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  auto rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return rc == CURLE_OK && status >= 200 && status < 300;
}

void otlp_exporter::run() {
  bool failing = false;  // log a failing collector once, and its recovery once
  for (;;) {
    std::vector<span> spans;
    std::vector<log::record> lines;
    bool stop = false;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait_for(lock, cfg_.export_every, [&] { return stopping_ || spans_.size() >= batch_limit; });
      stop = stopping_;
      while (!spans_.empty() && spans.size() < batch_limit) {
        spans.push_back(std::move(spans_.front()));
        spans_.pop_front();
      }
      while (!lines_.empty() && lines.size() < batch_limit) {
        lines.push_back(std::move(lines_.front()));
        lines_.pop_front();
      }
    }
    bool ok = true;
    if (!spans.empty()) {
      if (post(cfg_.otlp_endpoint + "/v1/traces", otlp_traces_document(spans, node_).dump(-1, ' ', false, json::error_handler_t::replace)))
        exported.fetch_add(spans.size(), std::memory_order_relaxed);
      else
        ok = false, failures.fetch_add(1, std::memory_order_relaxed);
    }
    if (!lines.empty()) {
      if (post(cfg_.otlp_endpoint + "/v1/logs", otlp_logs_document(lines, node_).dump(-1, ' ', false, json::error_handler_t::replace)))
        logs_exported.fetch_add(lines.size(), std::memory_order_relaxed);
      else
        ok = false, failures.fetch_add(1, std::memory_order_relaxed);
    }
    if (!ok && !failing) {
      failing = true;
      log::get("trace")->warn("OTLP export to {} failed; spans are dropped until it answers (counted in "
                              "cohort_trace_export_failures_total)", cfg_.otlp_endpoint);
    } else if (ok && failing && (!spans.empty() || !lines.empty())) {
      failing = false;
      log::get("trace")->info("OTLP export to {} works again", cfg_.otlp_endpoint);
    }
    if (stop) {
      std::lock_guard<std::mutex> guard(mutex_);
      if (spans_.empty() && lines_.empty()) return;
      if (!ok) return;  // a collector that is down does not hold the node's stop
    }
  }
}

}  // namespace cohort::observability
