#include <catch2/catch.hpp>

#include "cohort/transport/envelope_codec.hpp"
#include "cohort/transport/json_bridge.hpp"

using namespace cohort;

TEST_CASE("JSON arguments become msgpack and back", "[transport]") {
  auto mp = json_to_msgpack(R"({"name":"Ada","n":[1,2,3],"ok":true})");
  REQUIRE(mp.ok());
  auto h = msgpack::unpack(mp->data(), mp->size());
  REQUIRE(h.get().type == msgpack::type::MAP);
  auto json = msgpack_to_json(*mp);
  REQUIRE(json.ok());
  CHECK(*json == R"({"n":[1,2,3],"name":"Ada","ok":true})");
}

TEST_CASE("invalid JSON is a bad_request", "[transport]") {
  auto mp = json_to_msgpack("{name: Ada");
  REQUIRE_FALSE(mp.ok());
  CHECK(mp.error().is(errc::bad_request));
}

TEST_CASE("invalid msgpack does not render as JSON", "[transport]") {
  auto json = msgpack_to_json("\xc1");
  CHECK_FALSE(json.ok());
}

TEST_CASE("JSON nested past the depth limit is refused before any recursive step", "[transport][bad-input]") {
  wire_limits limits;
  std::string deep = std::string(1000000, '[') + std::string(1000000, ']');
  auto r = json_to_msgpack(deep, limits);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().is(errc::bad_request));
  CHECK_THAT(r.error().message, Catch::Contains("deeper than 32"));
  std::string at_limit = std::string(32, '[') + std::string(32, ']');
  REQUIRE(json_to_msgpack(at_limit, limits).ok());
  // What JSON accepts at the limit, the native decoder accepts too.
  CHECK(decode_payload(*json_to_msgpack(at_limit, limits), limits).ok());
  CHECK_FALSE(json_to_msgpack(std::string(33, '[') + std::string(33, ']'), limits).ok());
}

TEST_CASE("JSON containers and strings past their limits are too_large", "[transport][bad-input]") {
  wire_limits limits;
  limits.max_container = 3;
  limits.max_string = 5;
  CHECK(json_to_msgpack("[1,2,3]", limits).ok());
  CHECK(json_to_msgpack("[1,2,3,4]", limits).error().is(errc::too_large));
  CHECK(json_to_msgpack(R"({"a":1,"b":2,"c":3,"d":4})", limits).error().is(errc::too_large));
  CHECK(json_to_msgpack(R"("12345")", limits).ok());
  CHECK(json_to_msgpack(R"("123456")", limits).error().is(errc::too_large));
  CHECK(json_to_msgpack(R"({"123456":1})", limits).error().is(errc::too_large));
}

TEST_CASE("msgpack nested past the limit does not render as JSON", "[transport][bad-input]") {
  std::string deep(100000, '\x91');  // fixarray of one, 100k deep
  deep += '\xc0';
  auto r = msgpack_to_json(deep);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().is(errc::bad_request));
}

TEST_CASE("invalid UTF-8 in JSON is a bad_request", "[transport][bad-input]") {
  CHECK(json_to_msgpack("\"\xff\"").error().is(errc::bad_request));
  CHECK(json_to_msgpack("\"\xc3\xa9t\xc3\xa9\"").ok());  // "été"
}
