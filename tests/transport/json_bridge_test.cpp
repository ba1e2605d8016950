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
