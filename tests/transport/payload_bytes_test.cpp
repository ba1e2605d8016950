// payload_bytes: a received frame is taken over, not copied; copies are deep.
#include <catch2/catch.hpp>

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
