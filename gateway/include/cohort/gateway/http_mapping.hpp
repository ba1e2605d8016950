// http_mapping: what an HTTP request means to a node, and what a service's
// reply looks like over HTTP. Pure functions of their inputs (no sockets, no
// threads), so the HTTP front and its fuzzer run exactly the same code.
#pragma once

#include <chrono>
#include <string>

#include <boost/beast/http.hpp>

#include "cohort/transport/envelope.hpp"
#include "cohort/transport/error_code.hpp"
#include "cohort/transport/wire_limits.hpp"

namespace cohort::detail {

namespace http = boost::beast::http;

/// An HTTP request as the node routes it.
struct http_route {
  enum class kind { call, events, health, metrics, error } what = kind::error;
  envelope call;                           ///< kind::call: service, method, key, idempotency key, deadline; kind::events: service, `_subscribe`
  std::string args;                        ///< kind::call: the JSON body as one msgpack value; kind::events: the `_subscribe` map
  std::chrono::milliseconds deadline{0};   ///< kind::call
  std::string health_of;                   ///< kind::health: "" (= "ready"), "live", "ready", or a service
  http::status status = http::status::ok;  ///< kind::error
  error_info error;                        ///< kind::error
};

/// Maps a parsed request: POST /v1/<service>/<method> with a JSON body,
/// GET /v1/<service>/events (Server-Sent Events: a subscription, its query
/// `topics=a,b`, `name`, `from`, `window` and the `Last-Event-ID` header as
/// `_subscribe` arguments), or GET /health[/<service>]; everything else
/// becomes the error it deserves.
[[nodiscard]] http_route route_http_request(const http::request<http::string_body>& req, const wire_limits& limits,
                                            std::chrono::milliseconds default_deadline);

/// One Server-Sent Event (text/event-stream): an event of a subscription
/// (`id:` its seq, `event:` its topic, `data:` its payload as JSON) or a
/// notice (`_lagging`, `_end`). Empty when the payload does not convert.
[[nodiscard]] std::string sse_event(const envelope& header, const std::string& payload, const wire_limits& limits);

/// The HTTP status for a wire error code; business errors are 422.
[[nodiscard]] http::status http_status_of(const std::string& code);

/// A service's reply (`kind` reply or error) as an HTTP status and JSON body.
struct http_answer {
  http::status status;
  std::string body;          ///< the JSON result, or empty for an error
  error_info error;          ///< when status is not 200
};
[[nodiscard]] http_answer reply_to_http(message_kind kind, const std::string& payload, const wire_limits& limits);

}  // namespace cohort::detail
