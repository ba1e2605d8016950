#include "cohort/gateway/http_mapping.hpp"

#include <charconv>

#include "cohort/transport/envelope_codec.hpp"
#include "cohort/transport/json_bridge.hpp"

namespace cohort::detail {

namespace {

/// The longest X-Timeout-Ms accepted: one hour.
constexpr long long max_timeout_ms = 3600000;

/// application/json, with or without parameters (charset=utf-8).
bool is_json(boost::beast::string_view content_type) {
  auto type = content_type.substr(0, content_type.find(';'));
  while (!type.empty() && type.back() == ' ') type.remove_suffix(1);
  return boost::beast::iequals(type, "application/json");
}

http_route refuse(http::status status, errc code, std::string message) {
  http_route r;
  r.status = status;
  r.error = {code, std::move(message)};
  return r;
}

}  // namespace

http::status http_status_of(const std::string& code) {
  static const std::pair<errc, http::status> table[] = {
      {errc::bad_request, http::status::bad_request},
      {errc::unsupported_version, http::status::bad_request},
      {errc::unknown_service, http::status::not_found},
      {errc::unknown_method, http::status::not_found},
      {errc::too_large, http::status::payload_too_large},
      {errc::timeout, http::status::gateway_timeout},
      {errc::unavailable, http::status::service_unavailable},
      {errc::overloaded, http::status::too_many_requests},
      {errc::internal, http::status::internal_server_error},
      {errc::idempotency_key_reused, http::status::conflict},
      {errc::storage_full, http::status::insufficient_storage},
      {errc::storage_unavailable, http::status::service_unavailable},
      {errc::store_corrupt, http::status::service_unavailable},
      {errc::entity_quarantined, http::status::service_unavailable},
      {errc::unauthenticated, http::status::unauthorized},
      {errc::forbidden, http::status::forbidden},
      {errc::rate_limited, http::status::too_many_requests},
  };
  for (const auto& [c, s] : table)
    if (to_string(c) == code) return s;
  return http::status::unprocessable_entity;
}

http_route route_http_request(const http::request<http::string_body>& req, const wire_limits& limits,
                              std::chrono::milliseconds default_deadline) {
  // Routing looks at the path only; a query string is allowed and ignored.
  std::string target(req.target().substr(0, req.target().find('?')));
  if (target == "/health" || target.rfind("/health/", 0) == 0) {
    if (req.method() != http::verb::get) return refuse(http::status::method_not_allowed, errc::bad_request, "use GET");
    http_route r;
    r.what = http_route::kind::health;
    r.health_of = target == "/health" ? "" : target.substr(8);
    return r;
  }
  if (target == "/metrics") {
    if (req.method() != http::verb::get) return refuse(http::status::method_not_allowed, errc::bad_request, "use GET");
    http_route r;
    r.what = http_route::kind::metrics;
    return r;
  }
  if (target.rfind("/v1/", 0) != 0)
    return refuse(http::status::not_found, errc::unknown_service,
                  "no route for " + target + " (POST /v1/<service>/<method>)");
  if (req.method() != http::verb::post) return refuse(http::status::method_not_allowed, errc::bad_request, "use POST");
  auto path = target.substr(4);
  auto slash = path.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == path.size() || path.find('/', slash + 1) != std::string::npos)
    return refuse(http::status::not_found, errc::unknown_method, "path must be /v1/<service>/<method>");
  // Only JSON bodies: a browser form (urlencoded, multipart, text/plain) can
  // be posted cross-site without a preflight, application/json cannot.
  if (!req.body().empty() && !is_json(req[http::field::content_type]))
    return refuse(http::status::unsupported_media_type, errc::bad_request, "Content-Type must be application/json");
  http_route r;
  r.what = http_route::kind::call;
  r.call.service = path.substr(0, slash);
  r.call.method = path.substr(slash + 1);
  if (!is_valid_utf8(r.call.service) || !is_valid_utf8(r.call.method))
    return refuse(http::status::bad_request, errc::bad_request, "the path is not valid UTF-8");
  r.call.key = std::string(req["X-Cohort-Key"]);
  if (r.call.key.size() > 1024 || !is_valid_utf8(r.call.key))
    return refuse(http::status::bad_request, errc::bad_request, "X-Cohort-Key must be UTF-8 of at most 1024 bytes");
  r.call.idempotency_key = std::string(req["Idempotency-Key"]);
  if (r.call.idempotency_key.size() > 256 || !is_valid_utf8(r.call.idempotency_key))
    return refuse(http::status::bad_request, errc::bad_request, "Idempotency-Key must be UTF-8 of at most 256 bytes");
  r.deadline = default_deadline;
  if (auto t = req["X-Timeout-Ms"]; !t.empty()) {
    long long ms = 0;
    auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), ms);
    if (ec != std::errc() || end != t.data() + t.size() || ms < 1 || ms > max_timeout_ms)
      return refuse(http::status::bad_request, errc::bad_request,
                    "X-Timeout-Ms must be a whole number of milliseconds from 1 to " + std::to_string(max_timeout_ms));
    r.deadline = std::chrono::milliseconds(ms);
  }
  r.call.deadline_ms = static_cast<std::uint32_t>(r.deadline.count());
  auto args = json_to_msgpack(req.body().empty() ? std::string_view("null") : std::string_view(req.body()), limits);
  if (!args) {
    auto refused = refuse(http_status_of(args.error().code), errc::bad_request, "request body: " + args.error().message);
    refused.error.code = args.error().code;  // too_large stays too_large
    return refused;
  }
  r.args = std::move(*args);
  return r;
}

http_answer reply_to_http(message_kind kind, const std::string& payload, const wire_limits& limits) {
  if (kind == message_kind::error) {
    auto err = decode_error_payload(payload, limits);
    return {http_status_of(err.code), "", err};
  }
  auto body = msgpack_to_json(payload, -1, limits);
  if (!body) return {http::status::bad_gateway, "", {errc::internal, "the service's reply is not valid msgpack"}};
  return {http::status::ok, std::move(*body), {}};
}

}  // namespace cohort::detail
