#include "cohort/gateway/http_mapping.hpp"

#include <charconv>

#include <msgpack.hpp>
#include <uriparser/Uri.h>

#include "cohort/transport/envelope_codec.hpp"
#include "cohort/transport/json_bridge.hpp"

namespace cohort::detail {

namespace {

/// The longest X-Timeout-Ms accepted: one hour.
constexpr long long max_timeout_ms = 3600000;

/// A whole decimal number in [min, max].
std::optional<std::uint64_t> number(std::string_view text, std::uint64_t min, std::uint64_t max) {
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < min || v > max) return std::nullopt;
  return v;
}

/// The `_subscribe` arguments of GET /v1/<service>/events: from its query
/// string (parsed by uriparser: percent-decoding, '+' as space) and
/// Last-Event-ID (an EventSource that reconnects sends the last id it got).
result<std::string> subscribe_args(std::string_view target, boost::beast::string_view last_event_id) {
  std::vector<std::string> topics;
  std::string name;
  std::optional<std::uint64_t> from, window;
  auto q = target.find('?');
  if (q != std::string_view::npos && q + 1 < target.size()) {
    auto query = target.substr(q + 1);
    UriQueryListA* list = nullptr;
    int count = 0;
    if (uriDissectQueryMallocA(&list, &count, query.data(), query.data() + query.size()) != URI_SUCCESS)
      return error_info{errc::bad_request, "the query string does not parse"};
    std::optional<error_info> bad;
    for (auto* item = list; item && !bad; item = item->next) {
      std::string_view k(item->key ? item->key : ""), v(item->value ? item->value : "");
      if (!is_valid_utf8(v)) bad = error_info{errc::bad_request, "query values must be UTF-8"};
      else if (k == "topics" || k == "topic") {
        for (std::size_t at = 0; at <= v.size() && !bad;) {
          auto comma = v.find(',', at);
          auto t = v.substr(at, comma == std::string_view::npos ? std::string_view::npos : comma - at);
          if (!t.empty()) topics.emplace_back(t);
          if (comma == std::string_view::npos) break;
          at = comma + 1;
        }
      } else if (k == "name") {
        name = std::string(v);
      } else if (k == "from") {
        if (!(from = number(v, 0, UINT64_MAX))) bad = error_info{errc::bad_request, "'from' must be a whole number"};
      } else if (k == "window") {
        if (!(window = number(v, 1, 4096))) bad = error_info{errc::bad_request, "'window' must be a whole number from 1 to 4096"};
      }
    }
    uriFreeQueryListA(list);
    if (bad) return *bad;
  }
  if (!last_event_id.empty() && name.empty()) {
    auto last = number(std::string_view(last_event_id.data(), last_event_id.size()), 0, UINT64_MAX - 1);
    if (!last) return error_info{errc::bad_request, "Last-Event-ID must be the id of an event (a whole number)"};
    from = *last + 1;  // resume after the last event the client got
  }
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(1 + !name.empty() + from.has_value() + window.has_value());
  pk.pack(std::string_view("topics")), pk.pack(topics);
  if (!name.empty()) pk.pack(std::string_view("name")), pk.pack(name);
  if (from) pk.pack(std::string_view("from")), pk.pack(*from);
  if (window) pk.pack(std::string_view("window")), pk.pack(*window);
  return std::string(buf.data(), buf.size());
}

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
      {errc::wrong_shard, http::status::service_unavailable},
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
  auto path = target.substr(4);
  if (req.method() == http::verb::get && path.size() > 7 && path.compare(path.size() - 7, 7, "/events") == 0 &&
      path.find('/') == path.size() - 7) {
    http_route r;
    r.what = http_route::kind::events;
    r.call.service = path.substr(0, path.size() - 7);
    r.call.method = "_subscribe";
    if (!is_valid_utf8(r.call.service)) return refuse(http::status::bad_request, errc::bad_request, "the path is not valid UTF-8");
    auto args = subscribe_args(std::string_view(req.target().data(), req.target().size()), req["Last-Event-ID"]);
    if (!args) return refuse(http::status::bad_request, errc::bad_request, args.error().message);
    r.args = std::move(*args);
    r.deadline = default_deadline;
    r.call.deadline_ms = static_cast<std::uint32_t>(r.deadline.count());
    return r;
  }
  if (req.method() != http::verb::post)
    return refuse(http::status::method_not_allowed, errc::bad_request, "use POST (or GET /v1/<service>/events)");
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

std::string sse_event(const envelope& header, const std::string& payload, const wire_limits& limits) {
  // A topic is one line of the stream: one with a line break cannot be sent as it is.
  if (header.method.find_first_of("\r\n") != std::string::npos) return {};
  std::string data;
  if (header.method == "_end") {
    auto err = decode_error_payload(payload, limits);
    auto json = msgpack_to_json(encode_error_payload(err), -1, limits);
    data = json ? std::move(*json) : std::string("{}");
  } else {
    auto json = msgpack_to_json(payload, -1, limits);
    if (!json) return {};
    data = std::move(*json);
  }
  // One line of compact JSON (no raw newline can appear in it): one data: line.
  std::string out;
  if (header.seq) out += "id: " + std::to_string(header.seq) + "\n";
  out += "event: " + header.method + "\ndata: " + data + "\n\n";
  return out;
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
