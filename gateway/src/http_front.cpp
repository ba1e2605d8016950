#include "cohort/gateway/http_front.hpp"

#include <optional>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "cohort/transport/envelope_codec.hpp"
#include "cohort/gateway/http_mapping.hpp"

namespace cohort::detail {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using json = nlohmann::json;

struct http_front::impl {
  net::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  std::thread thread;
  http_config cfg;
  wire_limits limits;
  std::chrono::milliseconds default_deadline;
  router route;
  health status;
  std::string endpoint;
  std::atomic<std::int64_t> in_flight{0};
  std::atomic<std::uint64_t> next_id{1};

  void accept();
};

namespace {

class session : public std::enable_shared_from_this<session> {
 public:
  session(tcp::socket socket, http_front::impl& front) : stream_(std::move(socket)), front_(front) {}

  void start() { read(); }

 private:
  using response = http::response<http::string_body>;

  void read() {
    parser_.emplace();
    parser_->body_limit(front_.cfg.max_body_bytes);
    parser_->header_limit(16 * 1024);
    // Slow clients: the whole request (or the next one on a kept-alive connection) within the timeout.
    stream_.expires_after(front_.cfg.read_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == net::error::operation_aborted ||
        ec == net::error::connection_reset || ec == net::error::eof)
      return close();
    if (ec == http::error::body_limit)
      return fail_and_close(11, http::status::payload_too_large, errc::too_large,
                            "request body exceeds " + std::to_string(front_.cfg.max_body_bytes) + " bytes");
    if (ec)
      return fail_and_close(11, http::status::bad_request, errc::bad_request, "malformed HTTP request: " + ec.message());
    handle(parser_->release());
  }

  void handle(http::request<http::string_body>&& req) {
    keep_alive_ = req.keep_alive();
    version_ = req.version();
    request_id_ = std::string(req["X-Request-Id"]);
    if (request_id_.empty() || request_id_.size() > 128 || !is_valid_utf8(request_id_)) request_id_ = new_trace_id();
    trace_id_ = std::string(req["X-Trace-Id"]);
    if (trace_id_.empty() || trace_id_.size() > 128 || !is_valid_utf8(trace_id_)) trace_id_ = new_trace_id();
    auto route = route_http_request(req, front_.limits, front_.default_deadline);
    if (route.what == http_route::kind::health) return health(route.health_of);
    if (route.what == http_route::kind::error) return error(route.status, route.error.code, route.error.message);

    // Bulkhead for the HTTP front as a whole: beyond it, 429 at once.
    if (front_.in_flight.fetch_add(1) >= static_cast<std::int64_t>(front_.cfg.max_in_flight)) {
      front_.in_flight--;
      return error(http::status::too_many_requests, errc::overloaded, "the gateway has too many requests in flight");
    }
    envelope env = std::move(route.call);
    env.id = front_.next_id++;
    env.trace = trace_id_;
    auto deadline = route.deadline;
    auto self = shared_from_this();
    auto r = std::make_shared<request>(
        std::move(env), std::move(route.args), std::chrono::steady_clock::now() + deadline,
        [self](const envelope& h, std::string&& payload) {
          // Any thread: hand the reply to this connection's thread.
          net::post(self->stream_.get_executor(), [self, kind = h.kind, payload = std::move(payload)] {
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
    stream_.expires_never();
    front_.route(std::move(r));
  }

  void answer(message_kind kind, const std::string& payload) {
    auto a = reply_to_http(kind, payload, front_.limits);
    if (a.status != http::status::ok) return error(a.status, a.error.code, a.error.message);
    send(http::status::ok, std::move(a.body));
  }

  void health(const std::string& service) {
    auto all = json::parse(front_.status(), nullptr, false);
    if (service.empty()) return send(http::status::ok, json{{"status", "ok"}, {"services", all}}.dump(-1, ' ', false, json::error_handler_t::replace));
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
    res->set(http::field::server, "cohort");
    res->set(http::field::content_type, "application/json");
    res->set("X-Request-Id", request_id_);
    res->set("X-Trace-Id", trace_id_);
    if (status == http::status::service_unavailable || status == http::status::too_many_requests ||
        status == http::status::insufficient_storage)
      res->set(http::field::retry_after, "1");
    res->keep_alive(keep_alive_);
    res->body() = std::move(body);
    res->prepare_payload();
    stream_.expires_after(front_.cfg.read_timeout);
    http::async_write(stream_, *res, [self = shared_from_this(), res](beast::error_code ec, std::size_t) {
      if (ec || !self->keep_alive_) return self->close();
      self->read();
    });
  }

  void fail_and_close(unsigned version, http::status status, errc code, const std::string& message) {
    version_ = version;
    keep_alive_ = false;
    error(status, code, message);
  }

  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http_front::impl& front_;
  std::optional<net::steady_timer> timer_;
  bool keep_alive_ = false;
  unsigned version_ = 11;
  std::string request_id_, trace_id_;
};

}  // namespace

void http_front::impl::accept() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted) return;
    if (!ec) std::make_shared<session>(std::move(socket), *this)->start();
    accept();
  });
}

http_front::http_front(const http_config& cfg, const wire_limits& limits, std::chrono::milliseconds default_deadline,
                       router route, health status)
    : impl_(std::make_unique<impl>()) {
  impl_->cfg = cfg;
  impl_->limits = limits;
  impl_->default_deadline = default_deadline;
  impl_->route = std::move(route);
  impl_->status = std::move(status);
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
  impl_->endpoint = "http://" + bound.address().to_string() + ":" + std::to_string(bound.port());
}

http_front::~http_front() { stop(); }

void http_front::start() {
  impl_->accept();
  impl_->thread = std::thread([this] { impl_->ioc.run(); });
}

void http_front::stop() {
  if (!impl_->thread.joinable()) return;
  net::post(impl_->ioc, [this] {
    beast::error_code ec;
    impl_->acceptor.close(ec);
  });
  impl_->ioc.stop();
  impl_->thread.join();
}

const std::string& http_front::endpoint() const noexcept { return impl_->endpoint; }

}  // namespace cohort::detail
