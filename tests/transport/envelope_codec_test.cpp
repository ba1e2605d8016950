#include <catch2/catch.hpp>
#include <map>
#include <set>
#include <tuple>

#include "cohort/transport/envelope_codec.hpp"
#include "cohort/transport/shard_key.hpp"

using namespace cohort;

namespace {

/// Packs a header map from key/value pairs given as a msgpack-able map.
template <class Map>
std::string header_of(const Map& m) {
  return pack(m);
}

std::string nested_arrays(int depth) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  for (int i = 0; i < depth; ++i) pk.pack_array(1);
  pk.pack_nil();
  return std::string(buf.data(), buf.size());
}

}  // namespace

TEST_CASE("an envelope survives encode and decode with every field", "[transport]") {
  envelope e;
  e.id = 42;
  e.service = "cart";
  e.method = "add";
  e.deadline_ms = 1500;
  e.trace = "abc";
  e.key = "cart-7";
  e.idempotency_key = "idem-1";
  auto back = decode_envelope(encode_envelope(e), wire_limits{});
  REQUIRE(back.ok());
  CHECK(back->id == 42);
  CHECK(back->kind == message_kind::request);
  CHECK(back->service == "cart");
  CHECK(back->method == "add");
  CHECK(back->deadline_ms == 1500);
  CHECK(back->trace == "abc");
  CHECK(back->key == "cart-7");
  CHECK(back->idempotency_key == "idem-1");
}

TEST_CASE("a reply envelope omits absent fields", "[transport]") {
  envelope e;
  e.kind = message_kind::error;
  e.id = 9;
  auto bytes = encode_envelope(e);
  auto h = msgpack::unpack(bytes.data(), bytes.size());
  CHECK(h.get().via.map.size == 3);
  auto back = decode_envelope(bytes, {});
  REQUIRE(back.ok());
  CHECK(back->kind == message_kind::error);
}

TEST_CASE("a header that is not a map is a bad_request", "[transport]") {
  auto r = decode_envelope(pack(std::vector<int>{1, 2, 3}), {});
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().is(errc::bad_request));
  CHECK_THAT(r.error().message, Catch::Contains("not a msgpack map"));
}

TEST_CASE("garbage bytes are a bad_request, not a crash", "[transport]") {
  std::string garbage = "\xc1\xc1\xff\x00garbage";
  auto r = decode_envelope(garbage, {});
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().is(errc::bad_request));
}

TEST_CASE("wrong field types are named in the error", "[transport]") {
  SECTION("id as a string") {
    auto r = decode_envelope(header_of(std::map<std::string, std::string>{{"v", "1"}}), {});
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error().message, Catch::Contains("'v'"));
  }
  SECTION("service as an integer") {
    msgpack::sbuffer buf;
    msgpack::packer<msgpack::sbuffer> pk(buf);
    pk.pack_map(5);
    pk.pack("v"), pk.pack(1), pk.pack("kind"), pk.pack("request"), pk.pack("id"), pk.pack(3);
    pk.pack("service"), pk.pack(17), pk.pack("method"), pk.pack("m");
    std::uint64_t id = 0;
    auto r = decode_envelope(std::string(buf.data(), buf.size()), {}, &id);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().is(errc::bad_request));
    CHECK_THAT(r.error().message, Catch::Contains("'service'"));
    CHECK(id == 3);  // still answerable
  }
}

TEST_CASE("an unknown protocol version is unsupported_version", "[transport]") {
  envelope e;
  e.version = 7;
  e.id = 1;
  e.service = "s";
  e.method = "m";
  auto r = decode_envelope(encode_envelope(e), {});
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().is(errc::unsupported_version));
}

TEST_CASE("a request without service or method is a bad_request", "[transport]") {
  envelope e;
  e.id = 1;
  auto r = decode_envelope(encode_envelope(e), {});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.error().message, Catch::Contains("'service' and 'method'"));
}

TEST_CASE("payload decoding enforces depth, size and trailing-byte limits", "[transport]") {
  wire_limits limits;
  limits.max_depth = 8;
  limits.max_payload_bytes = 1000;
  CHECK(decode_payload(nested_arrays(7), limits).ok());
  auto deep = decode_payload(nested_arrays(50), limits);
  REQUIRE_FALSE(deep.ok());
  CHECK(deep.error().is(errc::bad_request));
  CHECK_THAT(deep.error().message, Catch::Contains("deeper"));

  auto big = decode_payload(std::string(2000, '\xa0'), limits);
  REQUIRE_FALSE(big.ok());
  CHECK(big.error().is(errc::too_large));

  auto trailing = decode_payload(pack(1) + pack(2), limits);
  REQUIRE_FALSE(trailing.ok());
  CHECK_THAT(trailing.error().message, Catch::Contains("trailing"));

  limits.max_container = 4;
  auto wide = decode_payload(pack(std::vector<int>(10, 1)), limits);
  REQUIRE_FALSE(wide.ok());
  CHECK(wide.error().is(errc::too_large));
}

TEST_CASE("pack writes the same bytes as msgpack's own buffer, small and large", "[transport]") {
  for (std::size_t n : {std::size_t(0), std::size_t(5), std::size_t(200), std::size_t(300000)}) {
    std::map<std::string, std::string> value{{"text", std::string(n, 'x')}, {"k", "v"}};
    msgpack::sbuffer reference;
    msgpack::pack(reference, value);
    CHECK(pack(value) == std::string(reference.data(), reference.size()));
  }
  string_buffer buf(0);
  msgpack::packer<string_buffer> pk(buf);
  pk.pack_array(2), pk.pack(1), pk.pack(std::string_view("two"));
  CHECK(buf.str() == pack(std::make_tuple(1, std::string("two"))));
}

TEST_CASE("in-place payload decoding points into the bytes and keeps every limit", "[transport][bad-input]") {
  wire_limits limits;
  const std::string bytes = pack(std::map<std::string, std::vector<char>>{{"text", {'a', 'b'}}, {std::string(40, 'k'), {}}});
  auto in_place = decode_payload_in_place(bytes, limits);
  REQUIRE(in_place.ok());
  auto copied = decode_payload(bytes, limits);
  REQUIRE(copied.ok());
  CHECK(in_place->get() == copied->get());
  auto inside = [&](const char* p) { return p >= bytes.data() && p < bytes.data() + bytes.size(); };
  const auto& map = in_place->get().via.map;
  REQUIRE(map.size == 2);
  for (std::uint32_t i = 0; i < map.size; ++i) {
    CHECK(inside(map.ptr[i].key.via.str.ptr));  // referenced, not copied
    CHECK_FALSE(inside(copied->get().via.map.ptr[i].key.via.str.ptr));  // decode_payload owns its copy
  }
  const auto& text = map.ptr[1];  // keys in order: 40 k's, then "text"
  REQUIRE(text.key.as<std::string>() == "text");
  REQUIRE(text.val.via.bin.size == 2);
  CHECK(inside(text.val.via.bin.ptr));

  // The same refusals as decode_payload.
  limits.max_depth = 8;
  auto deep = decode_payload_in_place(nested_arrays(50), limits);
  REQUIRE_FALSE(deep.ok());
  CHECK(deep.error().is(errc::bad_request));
  auto not_utf8 = decode_payload_in_place(pack(std::string("ok \xc3\x28")), limits);
  REQUIRE_FALSE(not_utf8.ok());
  CHECK_THAT(not_utf8.error().message, Catch::Contains("UTF-8"));
  auto trailing = decode_payload_in_place(pack(1) + pack(2), limits);
  REQUIRE_FALSE(trailing.ok());
  CHECK_THAT(trailing.error().message, Catch::Contains("trailing"));
}

TEST_CASE("a payload whose objects outgrow the first zone block decodes whole", "[transport]") {
  // 60000 one-byte integers: ~60 KB of msgpack, ~1 MB of objects, far past
  // the zone's first block (sized from the payload).
  std::vector<int> many(60000);
  for (std::size_t i = 0; i < many.size(); ++i) many[i] = static_cast<int>(i % 100);
  std::vector<std::string> words(3000, std::string(30, 'w'));
  for (const auto& bytes : {pack(many), pack(words)}) {
    for (bool in_place : {false, true}) {
      auto h = in_place ? decode_payload_in_place(bytes, wire_limits{}) : decode_payload(bytes, wire_limits{});
      REQUIRE(h.ok());
      CHECK(pack(h->get()) == bytes);
    }
  }
}

TEST_CASE("error payloads carry code and message both ways", "[transport]") {
  auto e = decode_error_payload(encode_error_payload({"out_of_stock", "none left"}), {});
  CHECK(e.code == "out_of_stock");
  CHECK(e.message == "none left");
  auto bad = decode_error_payload(pack(5), {});
  CHECK(bad.is(errc::bad_request));
}

TEST_CASE("a wrong_shard error names the shard's owner both ways; a malformed owner is refused", "[transport]") {
  error_info err{errc::wrong_shard, "shard 3 of 'counter' is owned by node 'n2'"};
  err.owner = std::make_shared<const shard_owner>(shard_owner{"n2", "tcp://10.0.0.2:7000", "K3y", 3, 64, 9});
  auto e = decode_error_payload(encode_error_payload(err), {});
  REQUIRE(e.is(errc::wrong_shard));
  REQUIRE(e.owner);
  CHECK(e.owner->node == "n2");
  CHECK(e.owner->endpoint == "tcp://10.0.0.2:7000");
  CHECK(e.owner->server_key == "K3y");
  CHECK(e.owner->shard == 3);
  CHECK(e.owner->shards == 64);
  CHECK(e.owner->epoch == 9);
  // Older decoders see code and message; an owner on another code is ignored.
  error_info other{errc::unavailable, "x"};
  other.owner = err.owner;
  CHECK_FALSE(decode_error_payload(encode_error_payload(other), {}).owner);
  auto with_owner = [](msgpack::sbuffer& buf, auto&& pack_owner) {
    msgpack::packer<msgpack::sbuffer> pk(buf);
    pk.pack_map(3);
    pk.pack(std::string("code")), pk.pack(std::string("wrong_shard"));
    pk.pack(std::string("message")), pk.pack(std::string("m"));
    pk.pack(std::string("owner"));
    pack_owner(pk);
  };
  msgpack::sbuffer wrong_type;
  with_owner(wrong_type, [](auto& pk) {
    pk.pack_map(1);
    pk.pack(std::string("shard")), pk.pack(std::string("three"));
  });
  CHECK(decode_error_payload(std::string(wrong_type.data(), wrong_type.size()), {}).is(errc::bad_request));
  msgpack::sbuffer out_of_range;
  with_owner(out_of_range, [](auto& pk) {
    pk.pack_map(3);
    pk.pack(std::string("endpoint")), pk.pack(std::string("tcp://h:1"));
    pk.pack(std::string("shard")), pk.pack(70);
    pk.pack(std::string("shards")), pk.pack(64);
  });
  CHECK(decode_error_payload(std::string(out_of_range.data(), out_of_range.size()), {}).is(errc::bad_request));
  msgpack::sbuffer too_long;
  with_owner(too_long, [](auto& pk) {
    pk.pack_map(1);
    pk.pack(std::string("endpoint")), pk.pack(std::string(5000, 'x'));
  });
  CHECK(decode_error_payload(std::string(too_long.data(), too_long.size()), {}).is(errc::bad_request));
}

TEST_CASE("a key's shard is FNV-1a mod the count, the same for every client", "[transport]") {
  CHECK(shard_of_key("", 64) == 14695981039346656037ull % 64);
  CHECK(shard_of_key("a", 1000) == 0xaf63dc4c8601ec8cull % 1000);  // FNV-1a 64 of "a"
  CHECK(shard_of_key("anything", 0) == 0);
  std::set<std::uint32_t> seen;
  for (int i = 0; i < 1000; ++i) seen.insert(shard_of_key("k" + std::to_string(i), 16));
  CHECK(seen.size() == 16);
}

TEST_CASE("every runtime error code has a distinct stable string", "[transport]") {
  std::set<std::string_view> seen;
  for (auto c : {errc::bad_request, errc::unsupported_version, errc::unknown_service, errc::unknown_method,
                 errc::too_large, errc::timeout, errc::unavailable, errc::overloaded, errc::internal})
    CHECK(seen.insert(to_string(c)).second);
  CHECK(to_string(errc::unknown_service) == "unknown_service");
}

TEST_CASE("sent_ms travels in the envelope and time in transit is counted beyond the skew allowance",
          "[transport][deadline]") {
  envelope e;
  e.id = 1;
  e.service = "s";
  e.method = "m";
  e.deadline_ms = 1000;
  e.sent_ms = 1'700'000'000'000;
  auto back = decode_envelope(encode_envelope(e), {});
  REQUIRE(back.ok());
  CHECK(back->sent_ms == e.sent_ms);
  CHECK(transit_ms(e, e.sent_ms + 100, 250) == 0);   // within the skew allowance
  CHECK(transit_ms(e, e.sent_ms + 3250, 250) == 3000);
  CHECK(transit_ms(e, e.sent_ms - 5000, 250) == 0);  // the sender's clock is ahead: nothing counted
  envelope without = e;
  without.sent_ms = 0;
  CHECK(transit_ms(without, e.sent_ms + 9999, 250) == 0);
}

TEST_CASE("UTF-8 validation refuses overlong forms, surrogates and truncated sequences", "[transport][bad-input]") {
  CHECK(is_valid_utf8("plain ascii"));
  CHECK(is_valid_utf8("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));  // é € 😀
  CHECK_FALSE(is_valid_utf8("\xc0\xaf"));                        // overlong '/'
  CHECK_FALSE(is_valid_utf8("\xed\xa0\x80"));                    // surrogate U+D800
  CHECK_FALSE(is_valid_utf8("\xe2\x82"));                        // truncated
  CHECK_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));                // past U+10FFFF
  CHECK_FALSE(is_valid_utf8("\xff"));
}

TEST_CASE("UTF-8 validation finds a bad byte anywhere in or after a long ASCII run", "[transport][bad-input]") {
  // ASCII is checked 8 bytes at a time: every position of the bad byte, at
  // every alignment, in runs shorter and longer than a word.
  for (std::size_t before : {0, 1, 7, 8, 9, 15, 16, 63, 64, 1000})
    for (std::size_t after : {0, 1, 7, 8, 17}) {
      const std::string a(before, 'a'), b(after, 'b');
      INFO("before " << before << ", after " << after);
      CHECK(is_valid_utf8(a + b));
      CHECK(is_valid_utf8(a + "\xc3\xa9" + b));                   // é between ASCII runs
      CHECK(is_valid_utf8(a + "\xf0\x9f\x98\x80" + b));           // 😀
      CHECK_FALSE(is_valid_utf8(a + "\xff" + b));
      CHECK_FALSE(is_valid_utf8(a + "\xc0\xaf" + b));               // overlong
      CHECK_FALSE(is_valid_utf8(a + "\xed\xa0\x80" + b));          // surrogate
      CHECK_FALSE(is_valid_utf8(a + "\xe2\x82"));                  // truncated at the end
      CHECK_FALSE(is_valid_utf8(a + "\xc3\xa9" + b + "\x80"));      // a stray continuation byte
    }
  std::string large(256 << 10, 'x');
  CHECK(is_valid_utf8(large));
  large[large.size() - 3] = '\x80';
  CHECK_FALSE(is_valid_utf8(large));
}

namespace {

/// A request header with the required fields, then `extra(pk)` packing `extra_pairs` more pairs.
template <class Extra>
std::string header_with(std::uint32_t extra_pairs, Extra extra) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(5 + extra_pairs);
  pk.pack("v"), pk.pack(1), pk.pack("kind"), pk.pack("request");
  pk.pack("service"), pk.pack("s"), pk.pack("method"), pk.pack("m");
  extra(pk);
  pk.pack("id"), pk.pack(77);  // last: a rejection must still learn it
  return std::string(buf.data(), buf.size());
}

}  // namespace

TEST_CASE("a header's unknown fields are skipped, nested or not, within the limits", "[transport][bad-input]") {
  auto bytes = header_with(2, [](auto& pk) {
    pk.pack("future"), pk.pack_map(1), pk.pack("a"), pk.pack_array(2), pk.pack(1), pk.pack("x");
    pk.pack("later"), pk.pack(-5);
  });
  auto r = decode_envelope(bytes, {});
  REQUIRE(r.ok());
  CHECK(r->id == 77);
  CHECK(r->service == "s");
  CHECK(r->method == "m");
}

TEST_CASE("a header's limits stop the parse with a clear error", "[transport][bad-input]") {
  SECTION("nesting under an unknown key") {
    wire_limits limits;
    limits.max_depth = 4;
    auto ok = header_with(1, [](auto& pk) { pk.pack("deep"), pk.pack_array(1), pk.pack_array(1), pk.pack(0); });
    CHECK(decode_envelope(ok, limits).ok());  // the root and three levels below it
    auto deep = header_with(1, [](auto& pk) {
      pk.pack("deep");
      for (int i = 0; i < 4; ++i) pk.pack_array(1);
      pk.pack(0);
    });
    auto r = decode_envelope(deep, limits);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().is(errc::bad_request));
    CHECK_THAT(r.error().message, Catch::Contains("nests deeper than 4"));
  }
  SECTION("a string longer than max_string") {
    wire_limits limits;
    limits.max_string = 8;
    auto r = decode_envelope(header_with(1, [](auto& pk) { pk.pack("note"), pk.pack(std::string(9, 'n')); }), limits);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().is(errc::too_large));
  }
  SECTION("a container that claims more than max_container") {
    wire_limits limits;
    limits.max_container = 3;
    auto r = decode_envelope(header_with(1, [](auto& pk) { pk.pack("list"), pk.pack(std::vector<int>{1, 2, 3, 4}); }),
                             limits);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().is(errc::too_large));
  }
}

TEST_CASE("a wrong header field is reported with the id that follows it", "[transport][bad-input]") {
  SECTION("a known field holding a map") {
    std::uint64_t id = 0;
    auto r = decode_envelope(header_with(1, [](auto& pk) { pk.pack("trace"), pk.pack_map(0); }), {}, &id);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error().message, Catch::Contains("'trace'"));
    CHECK(id == 77);
  }
  SECTION("a key that is not a string") {
    std::uint64_t id = 0;
    auto r = decode_envelope(header_with(1, [](auto& pk) { pk.pack(5), pk.pack("x"); }), {}, &id);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error().message, Catch::Contains("keys must be UTF-8 strings"));
    CHECK(id == 77);
  }
  SECTION("a key that is a container") {
    std::uint64_t id = 0;
    auto r = decode_envelope(header_with(1, [](auto& pk) { pk.pack_array(1), pk.pack("k"), pk.pack("x"); }), {}, &id);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error().message, Catch::Contains("keys must be UTF-8 strings"));
    CHECK(id == 77);
  }
  SECTION("a kind that is not one of the five") {
    std::uint64_t id = 0;
    auto r = decode_envelope(header_with(1, [](auto& pk) { pk.pack("kind"), pk.pack("question"); }), {}, &id);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error().message, Catch::Contains("'kind'"));
    CHECK(id == 77);
  }
}

TEST_CASE("truncated headers and trailing bytes are bad_requests", "[transport][bad-input]") {
  envelope e;
  e.id = 3;
  e.service = "s";
  e.method = "m";
  const auto whole = encode_envelope(e);
  for (std::size_t cut = 1; cut < whole.size(); ++cut) {
    auto r = decode_envelope(whole.substr(0, cut), {});
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().is(errc::bad_request));
  }
  auto r = decode_envelope(whole + "x", {});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.error().message, Catch::Contains("trailing bytes"));
  auto empty = decode_envelope("", {});
  REQUIRE_FALSE(empty.ok());
  CHECK(empty.error().is(errc::bad_request));
}

TEST_CASE("the scratch decode gives what decode_payload gives, each until the next on its thread",
          "[transport][bad-input]") {
  wire_limits limits;
  limits.max_depth = 8;
  const auto first = pack(std::map<std::string, std::vector<int>>{{"a", {1, 2, 3}}, {"b", {}}});
  auto a = decode_payload_scratch(first, limits);
  REQUIRE(a.ok());
  auto as_map = a->as<std::map<std::string, std::vector<int>>>();
  CHECK(as_map.at("a") == std::vector<int>{1, 2, 3});
  CHECK(as_map.at("b").empty());
  // The next one reuses the zone: its value is its own.
  auto b = decode_payload_scratch(pack(std::string("second")), limits);
  REQUIRE(b.ok());
  CHECK(b->as<std::string>() == "second");
  // Errors are decode_payload's, code for code.
  for (const auto& bad : {nested_arrays(9), std::string("\xc1", 1), pack(1) + "x", std::string(),
                          pack(std::string("\xc0\xaf"))}) {
    auto mine = decode_payload_scratch(bad, limits);
    auto theirs = decode_payload(bad, limits);
    REQUIRE_FALSE(mine.ok());
    REQUIRE_FALSE(theirs.ok());
    CHECK(mine.error().code == theirs.error().code);
  }
}

TEST_CASE("a payload decoded into the caller's zone outlives a move of the zone, errors as decode_payload's",
          "[transport][bad-input]") {
  wire_limits limits;
  limits.max_depth = 8;
  const auto bytes = pack(std::map<std::string, std::vector<std::string>>{{"lines", {"one", "two"}}});
  msgpack::zone zone(payload_zone_block(bytes.size()));
  auto decoded = decode_payload_in_place(bytes, limits, zone);
  REQUIRE(decoded.ok());
  msgpack::zone kept(std::move(zone));  // what an invocation does with it
  auto value = decoded->as<std::map<std::string, std::vector<std::string>>>();
  CHECK(value.at("lines") == std::vector<std::string>{"one", "two"});
  // In place: the strings point into the payload's bytes.
  const auto& str = decoded->via.map.ptr[0].key.via.str;
  CHECK(str.ptr >= bytes.data());
  CHECK(str.ptr < bytes.data() + bytes.size());
  CHECK(payload_zone_block(0) >= 256);
  CHECK(payload_zone_block(std::size_t{1} << 30) <= MSGPACK_ZONE_CHUNK_SIZE);
  for (const auto& bad : {nested_arrays(9), std::string("\xc1", 1), pack(1) + "x", std::string(),
                          pack(std::string("\xc0\xaf"))}) {
    msgpack::zone z(payload_zone_block(bad.size()));
    auto mine = decode_payload_in_place(bad, limits, z);
    auto theirs = decode_payload(bad, limits);
    REQUIRE_FALSE(mine.ok());
    REQUIRE_FALSE(theirs.ok());
    CHECK(mine.error().code == theirs.error().code);
  }
}
