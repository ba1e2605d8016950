#include "cohort/gateway/http_front.hpp"
#include "cohort/log/log.hpp"
#include "cohort/log/thread_name.hpp"
#include "cohort/observability/trace_context.hpp"

#include <filesystem>
#include <optional>
#include <stdexcept>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "cohort/gateway/http_mapping.hpp"
#include "cohort/security/file_version.hpp"
#include "cohort/security/http_auth.hpp"
#include "cohort/security/rate_limiter.hpp"
#include "cohort/transport/envelope_codec.hpp"

namespace cohort::detail {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

/// A TLS context from PEM files; modern protocol versions only.
std::shared_ptr<ssl::context> make_tls(const std::string& cert, const std::string& key) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                   ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
  ctx->use_certificate_chain_file(cert);
  ctx->use_private_key_file(key, ssl::context::pem);
  return ctx;
}

/// The certificate's and key's versions (security::file_version, not the
/// mtime alone: a renewal renamed into place within one tick of the last is
/// still seen).
security::file_version tls_file_version(const std::string& path) {
  return security::version_of(path).value_or(security::file_version{});
}

}  // namespace

struct http_front::impl {
  net::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  std::thread thread;
  http_config cfg;
  wire_limits limits;
  std::chrono::milliseconds default_deadline;
  router route;
  health status;
  predicate internal;
  readiness not_ready;
  exposition metrics;
  observability::tracer* tracer = nullptr;  ///< the gateway hop's spans; may be null
  std::string endpoint;
  std::atomic<std::int64_t> in_flight{0};
  std::atomic<std::uint64_t> overloaded{0};  ///< 429s of the bulkhead
  std::atomic<std::uint64_t> next_id{1};
  std::unique_ptr<security::http_authenticator> auth;
  std::unique_ptr<security::rate_limiter> limiter;
  /// The current TLS context (I/O thread only): replaced when the certificate
  /// or key file changes; open connections keep the one they started with.
  std::shared_ptr<ssl::context> tls;
  security::file_version cert_version, key_version;
  std::optional<net::steady_timer> reload_timer;

  void accept();
  void watch_certificate();
  [[nodiscard]] bool cors_allows(std::string_view origin) const {
    for (const auto& o : cfg.auth.cors_origins)
      if (o == "*" || o == origin) return true;
    return false;
  }
};

namespace {

template <class Stream>
class session : public std::enable_shared_from_this<session<Stream>> {
  static constexpr bool tls = !std::is_same_v<Stream, beast::tcp_stream>;

 public:
  session(tcp::socket socket, http_front::impl& front, std::shared_ptr<ssl::context> ctx)
      : stream_(make_stream(std::move(socket), ctx)), front_(front), tls_ctx_(std::move(ctx)) {
    beast::error_code ec;
    auto peer = beast::get_lowest_layer(stream_).socket().remote_endpoint(ec);
    if (!ec) peer_ = peer.address().to_string();
  }

  void start() {
    if constexpr (tls) {
      lowest().expires_after(front_.cfg.read_timeout);
      stream_.async_handshake(ssl::stream_base::server, [self = this->shared_from_this()](beast::error_code ec) {
        if (ec) return;  // not TLS, or a failed handshake: nothing to answer
        self->read();
      });
    } else {
      read();
    }
  }

 private:
  using response = http::response<http::string_body>;

  static Stream make_stream(tcp::socket&& socket, const std::shared_ptr<ssl::context>& ctx) {
    if constexpr (tls)
      return Stream(beast::tcp_stream(std::move(socket)), *ctx);
    else
      return Stream(std::move(socket));
  }
  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  void read() {
    parser_.emplace();
    parser_->body_limit(front_.cfg.max_body_bytes);
    parser_->header_limit(16 * 1024);
    // Slow clients: the whole request (or the next one on a kept-alive connection) within the timeout.
    lowest().expires_after(front_.cfg.read_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == net::error::operation_aborted ||
        ec == net::error::connection_reset || ec == net::error::eof || ec == ssl::error::stream_truncated)
      return close();
    if (ec == http::error::body_limit)
      return fail_and_close(11, http::status::payload_too_large, errc::too_large,
                            "request body exceeds " + std::to_string(front_.cfg.max_body_bytes) + " bytes");
    if (ec)
      return fail_and_close(11, http::status::bad_request, errc::bad_request, "malformed HTTP request: " + ec.message());
    handle(parser_->release());
  }

  /// Who calls, may they, and not too often: nullopt when refused (answered here).
  std::optional<std::string> admit(const http::request<http::string_body>& req, std::string_view path) {
    auto& auth = *front_.auth;
    const auto& access = auth.access_of(path);
    std::optional<security::http_identity> who;
    auto authorization = req[http::field::authorization];
    if (!authorization.empty()) {
      auto id = auth.authenticate(std::string_view(authorization.data(), authorization.size()));
      if (!id) {
        // Failed attempts count against the address: guessing tokens is rate limited too.
        if (front_.limiter) (void)front_.limiter->take("ip:" + peer_);
        log::get("http")->warn("http: refused {} from {}: {}", path, peer_, id.error().message);
        error(http::status::unauthorized, id.error().code, id.error().message);
        return std::nullopt;
      }
      who = std::move(*id);
    }
    if (auto refused = auth.authorize(who, access)) {
      error(refused->is(errc::unauthenticated) ? http::status::unauthorized : http::status::forbidden, refused->code, refused->message);
      return std::nullopt;
    }
    const std::string caller = who ? who->name : std::string("anonymous");
    if (front_.limiter) {
      if (auto wait = front_.limiter->take(who ? "id:" + who->name : "ip:" + peer_)) {
        retry_after_s_ = static_cast<int>((wait->count() + 999) / 1000);
        error(http::status::too_many_requests, errc::rate_limited,
              "'" + caller + "' sent more than " + std::to_string(front_.cfg.auth.rate_per_s) +
                  " requests per second; retry after " + std::to_string(retry_after_s_) + " s");
        return std::nullopt;
      }
    }
    return caller;
  }

  void handle(http::request<http::string_body>&& req) {
    keep_alive_ = req.keep_alive();
    version_ = req.version();
    retry_after_s_ = 1;
    request_id_ = std::string(req["X-Request-Id"]);
    if (request_id_.empty() || request_id_.size() > 128 || !is_valid_utf8(request_id_)) request_id_ = new_trace_id();
    started_ = std::chrono::steady_clock::now();
    started_ns_ = observability::unix_ns();
    method_ = std::string(req.method_string());
    path_ = std::string(req.target().substr(0, req.target().find('?')));
    caller_.clear();
    // W3C Trace Context: continue the caller's trace (traceparent) or start one;
    // X-Trace-Id names the trace for callers that do not speak it.
    trace_id_ = std::string(req["X-Trace-Id"]);
    if (trace_id_.empty() || trace_id_.size() > 128 || !is_valid_utf8(trace_id_)) trace_id_.clear();
    span_.reset();
    traceparent_.clear();
    tracestate_ = observability::sanitize_tracestate(std::string_view(req["tracestate"].data(), req["tracestate"].size()));
    if (front_.tracer && front_.tracer->enabled()) {
      auto ctx = front_.tracer->continue_or_start(std::string_view(req["traceparent"].data(), req["traceparent"].size()), trace_id_);
      span_.emplace();
      span_->parent = std::move(ctx.span_id);
      span_->sampled = ctx.sampled;
      ctx.span_id = observability::new_span_id();
      traceparent_ = observability::format_traceparent(ctx);
      if (trace_id_.empty()) trace_id_ = ctx.trace_id;
    } else {
      auto tp = std::string_view(req["traceparent"].data(), req["traceparent"].size());
      if (auto ctx = observability::parse_traceparent(tp)) {
        traceparent_ = std::string(tp);  // not traced here: passed on as it came
        if (trace_id_.empty()) trace_id_ = ctx->trace_id;
      }
    }
    if (trace_id_.empty()) trace_id_ = new_trace_id();
    origin_ = std::string(req[http::field::origin]);
    if (!origin_.empty() && !front_.cors_allows(origin_)) origin_.clear();
    const std::string path(req.target().substr(0, req.target().find('?')));
    if (req.method() == http::verb::options) return preflight(req);

    auto caller = admit(req, path);
    if (!caller) return;
    caller_ = *caller;
    auto route = route_http_request(req, front_.limits, front_.default_deadline);
    if (route.what == http_route::kind::health || route.what == http_route::kind::metrics)
      span_.reset();  // probes and scrapes are not traced (they would crowd out the requests)
    if (route.what == http_route::kind::health) return health(route.health_of);
    if (route.what == http_route::kind::metrics) return exposition();
    if (route.what == http_route::kind::error) return error(route.status, route.error.code, route.error.message);
    if (route.what == http_route::kind::events) return subscribe(std::move(route), std::move(*caller));
    if (front_.internal && front_.internal(route.call))
      return error(http::status::forbidden, errc::forbidden,
                   route.call.service + "." + route.call.method + " is internal: not reachable over HTTP");

    // Bulkhead for the HTTP front as a whole: beyond it, 429 at once.
    if (front_.in_flight.fetch_add(1) >= static_cast<std::int64_t>(front_.cfg.max_in_flight)) {
      front_.in_flight--;
      front_.overloaded++;
      return error(http::status::too_many_requests, errc::overloaded, "the gateway has too many requests in flight");
    }
    envelope env = std::move(route.call);
    env.id = front_.next_id++;
    env.trace = trace_id_;
    env.traceparent = traceparent_;
    env.tracestate = tracestate_;
    env.caller = std::move(*caller);
    auto deadline = route.deadline;
    auto self = this->shared_from_this();
    auto r = std::make_shared<request>(
        std::move(env), std::move(route.args), std::chrono::steady_clock::now() + deadline,
        [self](const envelope& h, payload_bytes&& payload) {
          // Any thread: hand the reply to this connection's thread.
          net::post(self->stream_.get_executor(), [self, kind = h.kind, payload = std::move(payload).take()] {
            self->front_.in_flight--;
            self->timer_.reset();
            self->answer(kind, payload);
          });
        });
    // No request outlives its deadline here, whatever happens downstream.
    timer_.emplace(stream_.get_executor());
    timer_->expires_after(deadline);
    timer_->async_wait([weak = std::weak_ptr<request>(r)](beast::error_code ec) {
      if (ec) return;
      if (auto req = weak.lock()) req->fail({errc::timeout, "no reply within the deadline"});
    });
    lowest().expires_never();
    front_.route(std::move(r));
  }

  // -- Server-Sent Events: GET /v1/<service>/events --------------------------
  //
  // The connection subscribes (`_subscribe`) for its client, writes each event
  // as it comes (text/event-stream), and acknowledges what was written, so the
  // node never has more than the window in flight to a slow reader. A comment
  // line every few seconds keeps proxies from closing it and finds a client
  // that went away; then the subscription is ended.

  void subscribe(http_route route, std::string caller) {
    envelope env = std::move(route.call);
    env.id = front_.next_id++;
    env.trace = trace_id_;
    env.traceparent = traceparent_;
    env.tracestate = tracestate_;
    env.caller = caller;
    sse_.emplace();
    sse_->service = env.service;
    sse_->caller = std::move(caller);
    auto self = this->shared_from_this();
    auto r = std::make_shared<request>(
        std::move(env), std::move(route.args), std::chrono::steady_clock::now() + route.deadline,
        [self](const envelope& h, payload_bytes&& payload) {
          net::post(self->stream_.get_executor(), [self, kind = h.kind, payload = std::move(payload).take()] {
            self->subscribed(kind, payload);
          });
        });
    r->stream = [self, limits = front_.limits](const envelope& h, payload_bytes&& payload) {
      // Converted on the sender's thread; written on this connection's.
      auto text = sse_event(h, std::move(payload).take(), limits);
      net::post(self->stream_.get_executor(), [self, text = std::move(text), seq = h.seq, end = h.method == "_end"]() mutable {
        self->sse_push(std::move(text), seq, end);
      });
    };
    lowest().expires_never();
    front_.route(std::move(r));
  }

  void subscribed(message_kind kind, const std::string& payload) {
    if (kind == message_kind::error) {
      sse_.reset();
      keep_alive_ = false;
      return answer(kind, payload);
    }
    try {
      auto h = decode_payload(payload, front_.limits);  // the node's answer: outside data all the same
      if (!h) throw std::runtime_error(h.error().message);
      auto m = h->get().as<std::map<std::string, msgpack::object>>();
      sse_->id = m.at("subscription").as<std::uint64_t>();
    } catch (const std::exception&) {
      sse_.reset();
      return error(http::status::bad_gateway, errc::internal, "the node's answer to _subscribe does not decode");
    }
    auto res = std::make_shared<http::response<http::empty_body>>(http::status::ok, version_);
    res->set(http::field::server, "cohort");
    res->set(http::field::content_type, "text/event-stream");
    res->set(http::field::cache_control, "no-cache");
    res->set(http::field::connection, "close");  // the body ends when the stream does
    res->set("X-Accel-Buffering", "no");
    res->set("X-Request-Id", request_id_);
    res->set("X-Trace-Id", trace_id_);
    if (!origin_.empty()) {
      res->set(http::field::access_control_allow_origin, origin_);
      res->set(http::field::vary, "Origin");
    }
    finished(200, 0);
    auto sr = std::make_shared<http::response_serializer<http::empty_body>>(*res);
    http::async_write_header(stream_, *sr, [self = this->shared_from_this(), res, sr](beast::error_code ec, std::size_t) {
      if (ec) return self->sse_close();
      self->sse_->open = true;
      self->sse_push(": subscribed\n\n", 0, false);
      self->sse_keepalive();
      self->sse_watch();
    });
  }

  /// A client sends nothing on an event stream: a read that completes is
  /// its going away (EOF), noticed at once, before more events are written
  /// (and acknowledged) into a connection nobody reads.
  void sse_watch() {
    stream_.async_read_some(net::buffer(sse_->scratch), [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      if (!self->sse_ || self->sse_->closed) return;
      if (ec) return self->sse_close();
      self->sse_watch();
    });
  }

  void sse_push(std::string text, std::uint64_t seq, bool end) {
    if (!sse_ || sse_->closed || text.empty()) return;
    sse_->out += text;
    if (seq) sse_->to_ack = seq;
    if (end) sse_->ended = true;  // the node ended it: written, then closed
    sse_flush();
  }

  void sse_flush() {
    auto& s = *sse_;
    if (!s.open || s.writing || s.out.empty()) return;
    s.writing = true;
    auto batch = std::make_shared<std::string>(std::move(s.out));
    s.out.clear();
    auto ack = s.to_ack;
    net::async_write(stream_, net::buffer(*batch), [self = this->shared_from_this(), batch, ack](beast::error_code ec, std::size_t) {
      auto& s = *self->sse_;
      s.writing = false;
      if (ec) return self->sse_close();
      if (ack > s.acked) self->sse_ack(ack);
      if (s.ended && s.out.empty()) return self->sse_close();
      self->sse_flush();
    });
  }

  /// Tells the node what was written (and that the connection is alive).
  void sse_ack(std::uint64_t seq) {
    auto& s = *sse_;
    if (seq > s.acked) s.acked = seq;
    envelope env;
    env.kind = message_kind::request;
    env.id = front_.next_id++;
    env.service = s.service;
    env.method = "_ack";
    env.caller = s.caller;
    env.deadline_ms = 5000;
    msgpack::sbuffer buf;
    msgpack::packer<msgpack::sbuffer> pk(buf);
    pk.pack_map(s.acked ? 2 : 1);
    pk.pack(std::string_view("subscription")), pk.pack(s.id);
    if (s.acked) pk.pack(std::string_view("seq")), pk.pack(s.acked);
    auto self = this->shared_from_this();
    front_.route(std::make_shared<request>(
        std::move(env), std::string(buf.data(), buf.size()), std::chrono::steady_clock::now() + std::chrono::seconds(5),
        [self](const envelope& h, payload_bytes&& payload) {
          if (h.kind != message_kind::error) return;
          // The node no longer knows the subscription (restarted, ended): so ends the stream; EventSource reconnects.
          auto err = decode_error_payload(payload, self->front_.limits);
          if (err.is(errc::bad_request))
            net::post(self->stream_.get_executor(), [self] { self->sse_push(": ended\n\n", 0, true); });
        }));
  }

  void sse_keepalive() {
    timer_.emplace(stream_.get_executor());
    timer_->expires_after(std::chrono::seconds(5));
    timer_->async_wait([self = this->shared_from_this()](beast::error_code ec) {
      if (ec || !self->sse_ || self->sse_->closed) return;
      self->sse_push(": ping\n\n", 0, false);  // a client that went away fails this write
      self->sse_ack(self->sse_->acked);
      self->sse_keepalive();
    });
  }

  void sse_close() {
    if (!sse_ || sse_->closed) return;
    sse_->closed = true;
    if (timer_) timer_->cancel();
    if (sse_->id) {
      envelope env;
      env.kind = message_kind::oneway;
      env.id = front_.next_id++;
      env.service = sse_->service;
      env.method = "_unsubscribe";
      env.caller = sse_->caller;
      env.deadline_ms = 5000;
      front_.route(std::make_shared<request>(std::move(env), pack(std::map<std::string, std::uint64_t>{{"subscription", sse_->id}}),
                                             std::chrono::steady_clock::now() + std::chrono::seconds(5),
                                             [](const envelope&, payload_bytes&&) {}));
    }
    beast::error_code ec;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
    lowest().socket().close(ec);
  }

  struct sse_state {
    std::string service, caller;
    std::uint64_t id = 0;      ///< the node's subscription id
    std::string out;           ///< written next
    std::uint64_t to_ack = 0;  ///< the newest event in what was queued
    std::uint64_t acked = 0;
    bool open = false, writing = false, ended = false, closed = false;
    std::array<char, 256> scratch{};  ///< what a client sends on its event stream (nothing, or its EOF)
  };
  std::optional<sse_state> sse_;

  /// CORS preflight: allowed origins get the methods and headers they may use.
  void preflight(const http::request<http::string_body>& req) {
    if (origin_.empty())
      return error(http::status::forbidden, errc::forbidden, "cross-origin requests from this origin are not allowed");
    auto res = std::make_shared<response>(http::status::no_content, version_);
    res->set(http::field::access_control_allow_methods, "GET, POST, OPTIONS");
    res->set(http::field::access_control_allow_headers,
             "Authorization, Content-Type, Idempotency-Key, X-Cohort-Key, X-Timeout-Ms, X-Request-Id, X-Trace-Id, "
             "traceparent, tracestate");
    res->set(http::field::access_control_max_age, "600");
    write(res);
  }

  void answer(message_kind kind, const std::string& payload) {
    auto a = reply_to_http(kind, payload, front_.limits);
    if (a.status != http::status::ok) return error(a.status, a.error.code, a.error.message);
    send(http::status::ok, std::move(a.body));
  }

  void exposition() {
    if (!front_.metrics) return error(http::status::not_found, errc::unknown_service, "this node exports no metrics");
    auto res = std::make_shared<response>(http::status::ok, version_);
    res->set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
    res->body() = front_.metrics();
    write(res);
  }

  void health(const std::string& service) {
    // live: the process serves (nothing else asked). ready (and /health): every service up, not draining.
    if (service == "live") return send(http::status::ok, json{{"status", "live"}}.dump());
    const json state = front_.status();
    json all = state.is_object() && state.contains("services") ? state["services"] : json::array();
    json remotes = state.is_object() && state.contains("remotes") ? state["remotes"] : json::array();
    if (service.empty() || service == "ready") {
      std::vector<std::string> why;
      if (front_.not_ready) why = front_.not_ready();
      if (why.empty())
        return send(http::status::ok, json{{"status", "ready"}, {"services", all}, {"remotes", remotes}}.dump(-1, ' ', false, json::error_handler_t::replace));
      retry_after_s_ = 1;
      return send(http::status::service_unavailable,
                  json{{"status", "not ready"}, {"not_ready", why}, {"services", all}, {"remotes", remotes}}
                      .dump(-1, ' ', false, json::error_handler_t::replace));
    }
    for (const auto& s : all)
      if (s["name"] == service)
        return send(s["state"] == "up" ? http::status::ok : http::status::service_unavailable, s.dump(-1, ' ', false, json::error_handler_t::replace));
    error(http::status::not_found, errc::unknown_service, "no service named '" + service + "' on this node");
  }

  void error(http::status status, std::string_view code, const std::string& message) {
    send(status, json{{"error", {{"code", code}, {"message", message}}}, {"request_id", request_id_},
                      {"trace_id", trace_id_}}
                     .dump(-1, ' ', false, json::error_handler_t::replace));
  }
  void error(http::status status, errc code, const std::string& message) { error(status, to_string(code), message); }

  void send(http::status status, std::string body) {
    auto res = std::make_shared<response>(status, version_);
    res->set(http::field::content_type, "application/json");
    if (status == http::status::service_unavailable || status == http::status::too_many_requests ||
        status == http::status::insufficient_storage)
      res->set(http::field::retry_after, std::to_string(retry_after_s_));
    if (status == http::status::unauthorized) res->set(http::field::www_authenticate, "Bearer");
    res->body() = std::move(body);
    write(res);
  }

  void write(const std::shared_ptr<response>& res) {
    res->set(http::field::server, "cohort");
    res->set("X-Request-Id", request_id_);
    res->set("X-Trace-Id", trace_id_);
    if (!traceparent_.empty()) res->set("traceparent", traceparent_);
    finished(res->result_int(), res->body().size());
    if (!origin_.empty()) {
      res->set(http::field::access_control_allow_origin, origin_);
      res->set(http::field::vary, "Origin");
      res->set(http::field::access_control_expose_headers, "X-Request-Id, X-Trace-Id, traceparent, Retry-After");
    }
    if constexpr (tls) res->set(http::field::strict_transport_security, "max-age=31536000");
    res->keep_alive(keep_alive_);
    res->prepare_payload();
    lowest().expires_after(front_.cfg.read_timeout);
    http::async_write(stream_, *res, [self = this->shared_from_this(), res](beast::error_code ec, std::size_t) {
      if (ec || !self->keep_alive_) return self->close();
      self->read();
    });
  }

  /// The request is answered: its span (the gateway hop) and its access log line.
  void finished(unsigned status, std::size_t bytes) {
    if (span_ && front_.tracer) {
      const bool failed = status >= 400;
      observability::span s;
      s.trace_id = traceparent_.substr(3, 32);
      s.span_id = traceparent_.substr(36, 16);
      s.parent_span_id = span_->parent;
      s.name = method_ + " " + path_;
      s.service = "gateway";
      s.kind = observability::span_kind::server;
      s.start_ns = started_ns_;
      s.end_ns = observability::unix_ns();
      s.code = failed ? "http_" + std::to_string(status) : "ok";
      s.attributes = {{"http.request.method", method_}, {"url.path", path_},
                      {"http.response.status_code", std::to_string(status)}, {"cohort.caller", caller_},
                      {"cohort.node", front_.tracer->node()}, {"http.request_id", request_id_}};
      front_.tracer->record(std::move(s), span_->sampled);
      span_.reset();
    }
    if (log::access_log_on()) {
      auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started_).count();
      log::fields f{{"method", method_}, {"path", path_}, {"status", std::to_string(status)},
                    {"duration_ms", std::to_string(ms)}, {"bytes", std::to_string(bytes)},
                    {"peer", peer_}, {"request_id", request_id_}};
      log::context c;
      c.trace_id = trace_id_;
      c.caller = caller_;
      c.extra = &f;
      log::scope scope(c);
      log::get("access")->info("{} {} {} {:.1f} ms", method_, path_, status, ms);
    }
  }

  void fail_and_close(unsigned version, http::status status, errc code, const std::string& message) {
    version_ = version;
    keep_alive_ = false;
    error(status, code, message);
  }

  void close() {
    if constexpr (tls) {
      lowest().expires_after(std::chrono::seconds(2));
      stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) {});
    } else {
      beast::error_code ec;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    }
  }

  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http_front::impl& front_;
  std::shared_ptr<ssl::context> tls_ctx_;  ///< kept alive for this connection
  std::optional<net::steady_timer> timer_;
  bool keep_alive_ = false;
  int retry_after_s_ = 1;
  unsigned version_ = 11;
  std::string request_id_, trace_id_, origin_, peer_;
  // The request being answered: for its span and its access log line.
  std::string method_, path_, caller_, traceparent_, tracestate_;
  std::chrono::steady_clock::time_point started_;
  std::uint64_t started_ns_ = 0;
  struct hop_span {
    std::string parent;
    bool sampled = false;
  };
  std::optional<hop_span> span_;
};

}  // namespace

void http_front::impl::accept() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted) return;
    if (!ec) {
      if (tls)
        std::make_shared<session<beast::ssl_stream<beast::tcp_stream>>>(std::move(socket), *this, tls)->start();
      else
        std::make_shared<session<beast::tcp_stream>>(std::move(socket), *this, nullptr)->start();
    }
    accept();
  });
}

void http_front::impl::watch_certificate() {
  reload_timer->expires_after(std::chrono::seconds(1));
  reload_timer->async_wait([this](beast::error_code ec) {
    if (ec) return;
    auto cert = tls_file_version(cfg.tls_cert_file), key = tls_file_version(cfg.tls_key_file);
    if (cert != cert_version || key != key_version) {
      cert_version = cert;
      key_version = key;
      try {
        tls = make_tls(cfg.tls_cert_file, cfg.tls_key_file);
        log::get("http")->info("http: TLS certificate read again from {}", cfg.tls_cert_file);
      } catch (const std::exception& e) {
        // Half-replaced files (certificate new, key old): keep serving with the old pair.
        log::get("http")->error("http: cannot use the new TLS certificate ({}): {}; keeping the old one", cfg.tls_cert_file, e.what());
      }
    }
    watch_certificate();
  });
}

http_front::http_front(const http_config& cfg, const wire_limits& limits, std::chrono::milliseconds default_deadline,
                       router route, health status, predicate internal, readiness not_ready, exposition metrics,
                       observability::tracer* tracer)
    : impl_(std::make_unique<impl>()) {
  impl_->tracer = tracer;
  impl_->not_ready = std::move(not_ready);
  impl_->metrics = std::move(metrics);
  impl_->cfg = cfg;
  impl_->limits = limits;
  impl_->default_deadline = default_deadline;
  impl_->route = std::move(route);
  impl_->status = std::move(status);
  impl_->internal = std::move(internal);
  auto auth = security::http_authenticator::make(cfg.auth);
  if (!auth) throw std::runtime_error(auth.error().message);
  impl_->auth = std::move(*auth);
  if (cfg.auth.rate_per_s > 0)
    impl_->limiter = std::make_unique<security::rate_limiter>(
        cfg.auth.rate_per_s, cfg.auth.rate_burst > 0 ? cfg.auth.rate_burst : 2 * cfg.auth.rate_per_s);
  if (cfg.tls()) {
    try {
      impl_->tls = make_tls(cfg.tls_cert_file, cfg.tls_key_file);
    } catch (const std::exception& e) {
      throw std::runtime_error("TLS certificate " + cfg.tls_cert_file + " / key " + cfg.tls_key_file + ": " + e.what());
    }
    impl_->cert_version = tls_file_version(cfg.tls_cert_file);
    impl_->key_version = tls_file_version(cfg.tls_key_file);
    impl_->reload_timer.emplace(impl_->ioc);
  }
  auto colon = cfg.listen.rfind(':');
  if (colon == std::string::npos)
    throw std::system_error(std::make_error_code(std::errc::invalid_argument), "http listen must be host:port");
  auto address = net::ip::make_address(cfg.listen.substr(0, colon));
  auto port = static_cast<unsigned short>(std::stoi(cfg.listen.substr(colon + 1)));
  tcp::endpoint ep(address, port);
  impl_->acceptor.open(ep.protocol());
  impl_->acceptor.set_option(net::socket_base::reuse_address(true));
  impl_->acceptor.bind(ep);
  impl_->acceptor.listen();
  auto bound = impl_->acceptor.local_endpoint();
  impl_->endpoint = std::string(cfg.tls() ? "https://" : "http://") + bound.address().to_string() + ":" +
                    std::to_string(bound.port());
}

http_front::~http_front() { stop(); }

void http_front::start() {
  impl_->accept();
  if (impl_->reload_timer) impl_->watch_certificate();
  impl_->thread = std::thread([this] {
    log::name_this_thread("cohort-http");
    impl_->ioc.run();
  });
}

void http_front::stop() {
  if (!impl_->thread.joinable()) return;
  net::post(impl_->ioc, [this] {
    beast::error_code ec;
    impl_->acceptor.close(ec);
    if (impl_->reload_timer) impl_->reload_timer->cancel();
  });
  impl_->ioc.stop();
  impl_->thread.join();
}

std::uint64_t http_front::overloaded() const noexcept { return impl_->overloaded.load(); }

const std::string& http_front::endpoint() const noexcept { return impl_->endpoint; }

}  // namespace cohort::detail
