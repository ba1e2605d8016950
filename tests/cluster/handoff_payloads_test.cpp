// The handoff's payloads between nodes: what one node packs the other reads
// back, and what a peer sends outside the format or the limits is refused
// (nullopt), never a crash or an allocation the payload's size does not bound.
#include <catch2/catch.hpp>

#include <msgpack.hpp>

#include "handoff_payloads.hpp"

using namespace cohort;
using namespace cohort::cluster;

namespace {
std::string packed(void (*fill)(msgpack::packer<msgpack::sbuffer>&)) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  fill(pk);
  return std::string(buf.data(), buf.size());
}
}  // namespace

TEST_CASE("a manifest with inline files and a chunk read back as packed", "[cluster][handoff]") {
  std::string body(70000, '\0');
  for (std::size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>(i * 7);
  auto m = unpack_manifest(pack_inline("{\"files\":[]}", {{"000001.sst", body}, {"CURRENT", "MANIFEST-1\n"}}));
  REQUIRE(m);
  CHECK(m->text == "{\"files\":[]}");
  REQUIRE(m->files.size() == 2);
  CHECK(m->files.at("000001.sst") == body);
  CHECK(unpack_manifest(pack_string("{}"))->text == "{}");  // an older node: the text alone
  CHECK(unpack_bytes(pack_bin(body.data(), body.size())) == body);
  CHECK(unpack_bytes(pack_string("{\"reachable\":true}")) == std::string("{\"reachable\":true}"));
}

TEST_CASE("a peer's handoff payload outside the format or the limits is refused", "[cluster][handoff][bad-input]") {
  // Nested past the depth limit.
  auto deep = packed([](auto& pk) {
    for (int i = 0; i < 10000; ++i) pk.pack_array(1);
    pk.pack_nil();
  });
  CHECK_FALSE(unpack_manifest(deep));
  CHECK_FALSE(unpack_bytes(deep));
  // ... also under a key the reader would otherwise skip.
  auto deep_extra = packed([](auto& pk) {
    pk.pack_map(2), pk.pack("manifest"), pk.pack("{}"), pk.pack("extra");
    for (int i = 0; i < 10000; ++i) pk.pack_array(1);
    pk.pack_nil();
  });
  CHECK_FALSE(unpack_manifest(deep_extra));
  auto shallow_extra = packed([](auto& pk) {
    pk.pack_map(2), pk.pack("manifest"), pk.pack("{}"), pk.pack("extra"), pk.pack_array(1), pk.pack_nil();
  });
  CHECK(unpack_manifest(shallow_extra));
  // A map that claims four billion entries in a few bytes: refused before anything is made for them.
  std::string huge_map("\xdf\xff\xff\xff\xff", 5);
  CHECK_FALSE(unpack_manifest(huge_map));
  std::string huge_array("\xdd\xff\xff\xff\xff", 5);
  CHECK_FALSE(unpack_bytes(huge_array));
  // Trailing bytes, garbage, the wrong types.
  CHECK_FALSE(unpack_bytes(pack_string("{}") + "x"));
  CHECK_FALSE(unpack_bytes(std::string("\xc1", 1)));
  CHECK_FALSE(unpack_bytes(packed([](auto& pk) { pk.pack(42); })));
  CHECK_FALSE(unpack_manifest(packed([](auto& pk) {
    pk.pack_map(1), pk.pack("files"), pk.pack_map(1), pk.pack("a.sst"), pk.pack("text, not bin");
  })));
  CHECK_FALSE(unpack_manifest(packed([](auto& pk) { pk.pack_map(1), pk.pack(1), pk.pack("x"); })));
}
