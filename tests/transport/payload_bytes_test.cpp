// payload_bytes: a received frame is taken over, not copied; copies are deep;
// a value made in the process is packed only when its bytes are read.
#include <catch2/catch.hpp>

#include <map>

#include "cohort/transport/client.hpp"
#include "cohort/transport/payload_bytes.hpp"

using namespace cohort;

TEST_CASE("a large received frame becomes the payload without a copy, a small one is copied", "[payload]") {
  std::string big(zero_copy_frame_bytes, 'x');
  zmq::message_t frame(big.data(), big.size());
  const void* bytes = frame.data();
  auto p = received_payload(std::move(frame));
  CHECK(static_cast<const void*>(p.data()) == bytes);  // the frame's own buffer
  CHECK(p.size() == big.size());
  CHECK(p == big);

  zmq::message_t small_frame(std::string_view("hello, world: a small payload of more than 33 bytes"));
  const void* small_bytes = small_frame.data();
  auto s = received_payload(std::move(small_frame));
  CHECK(static_cast<const void*>(s.data()) != small_bytes);  // copied: the read buffer goes back to libzmq
  CHECK(s == "hello, world: a small payload of more than 33 bytes");
}

TEST_CASE("payload bytes read as a view, compare as bytes, and copy deeply", "[payload]") {
  std::string big(100000, 'y');
  payload_bytes held(zmq::message_t(big.data(), big.size()));
  payload_bytes copy = held;
  CHECK(copy.data() != held.data());
  CHECK(copy == held);
  CHECK(std::string_view(copy) == big);
  CHECK(held.str() == big);
  CHECK(std::move(held).take() == big);

  payload_bytes from_string(std::string("abc"));
  CHECK(from_string == "abc");
  CHECK("abd" != from_string);
  CHECK(from_string[1] == 'b');
  CHECK(!from_string.empty());
  CHECK(payload_bytes().empty());
  std::string taken = std::move(from_string).take();
  CHECK(taken == "abc");
}

namespace {

/// A message whose packings are counted.
struct counted_value {
  std::string text;
  static inline int packs = 0;
  template <class Packer>
  void msgpack_pack(Packer& pk) const {
    ++packs;
    pk.pack_map(1);
    pk.pack(std::string_view("text"));
    pk.pack(text);
  }
  void msgpack_unpack(const msgpack::object& o) {
    std::map<std::string, std::string> m;
    o.convert(m);
    text = m["text"];
  }
};

/// The same shape as counted_value, another C++ type.
struct look_alike {
  std::string text;
  MSGPACK_DEFINE_MAP(text);
};

}  // namespace

TEST_CASE("a typed payload is packed only when its bytes are read, once, and copies share it", "[payload]") {
  counted_value::packs = 0;
  auto p = typed_payload(counted_value{"hello"});
  REQUIRE(p.typed_as<counted_value>() != nullptr);
  CHECK(p.typed_as<counted_value>()->text == "hello");
  CHECK(p.typed_as<look_alike>() == nullptr);  // another type: bytes
  CHECK(counted_value::packs == 0);

  payload_bytes copy = p;  // shares the value: no packing, no copy of it
  CHECK(copy.typed_as<counted_value>() == p.typed_as<counted_value>());
  CHECK(counted_value::packs == 0);

  // The bytes are what pack() makes, packed once for every reader.
  string_buffer expected;
  msgpack::pack(expected, look_alike{"hello"});
  CHECK(p.view() == expected.str());
  CHECK(copy.view() == expected.str());
  CHECK(p.size() == expected.str().size());
  CHECK(std::move(copy).take() == expected.str());
  CHECK(counted_value::packs == 1);

  // The only holder takes the bytes without a copy of them; a shared value's are copied.
  auto big = typed_payload(counted_value{std::string(1000, 'b')});
  payload_bytes other_holder = big;
  const char* packed = big.data();
  std::string copied = std::move(other_holder).take();
  CHECK(copied.data() != packed);
  std::string taken = std::move(big).take();
  CHECK(taken.data() == packed);
  CHECK(taken == copied);
  CHECK(counted_value::packs == 2);
}

TEST_CASE("a typed value is moved out by its only holder and copied out of a shared one", "[payload]") {
  std::string long_text(1000, 'z');
  auto p = typed_payload(counted_value{long_text});
  const char* held_chars = p.typed_as<counted_value>()->text.data();
  payload_bytes shared = p;
  auto copied = std::move(shared).take_typed<counted_value>();
  REQUIRE(copied);
  CHECK(copied->text == long_text);
  CHECK(copied->text.data() != held_chars);  // copied: p still holds it
  CHECK(shared.typed() == nullptr);
  auto moved = std::move(p).take_typed<counted_value>();
  REQUIRE(moved);
  CHECK(moved->text.data() == held_chars);  // the only holder: moved, not copied
  CHECK(!std::move(payload_bytes(std::string("x"))).take_typed<counted_value>());
}

TEST_CASE("a reply that holds a value answers as() with it, or decodes its bytes for another type", "[payload]") {
  counted_value::packs = 0;
  reply r;
  r.payload = typed_payload(counted_value{"abc"});
  auto same = r.as<counted_value>();
  REQUIRE(same.ok());
  CHECK(same->text == "abc");
  CHECK(counted_value::packs == 0);
  auto other = r.as<look_alike>();  // another type: packed and decoded, as over a socket
  REQUIRE(other.ok());
  CHECK(other->text == "abc");
  CHECK(counted_value::packs == 1);
  auto moved = std::move(r).as<counted_value>();
  REQUIRE(moved.ok());
  CHECK(moved->text == "abc");
}
