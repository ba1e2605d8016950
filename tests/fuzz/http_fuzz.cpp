// libFuzzer harness: the HTTP request path of a node's front. Bytes go through
// Beast's parser with the front's limits, then the front's own routing (path,
// headers, Content-Type, JSON body within wire limits); the request's
// arguments come back as a reply through the reply mapping (msgpack -> JSON).
#include <cstddef>
#include <cstdint>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http.hpp>

#include "cohort/gateway/http_mapping.hpp"

namespace http = boost::beast::http;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  http::request_parser<http::string_body> parser;
  parser.body_limit(64 * 1024);
  parser.header_limit(16 * 1024);
  boost::beast::error_code ec;
  std::size_t used = 0;
  while (used < size && !parser.is_done()) {
    auto n = parser.put(boost::asio::buffer(data + used, size - used), ec);
    if (ec == http::error::need_more) break;
    if (ec) return 0;
    if (n == 0) break;
    used += n;
  }
  if (!parser.is_done()) return 0;
  cohort::wire_limits limits;
  auto route = cohort::detail::route_http_request(parser.get(), limits, std::chrono::milliseconds(30000));
  if (route.what == cohort::detail::http_route::kind::call || route.what == cohort::detail::http_route::kind::events) {
    auto echoed = cohort::detail::reply_to_http(cohort::message_kind::reply, route.args, limits);
    if (echoed.status != http::status::ok) __builtin_trap();  // our own encoding must render
  }
  return 0;
}
