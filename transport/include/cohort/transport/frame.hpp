// frame: a ZeroMQ message made from a string without copying it when it is
// large. zmq copies a buffer it is given; for a large payload (an echo of
// 256 KiB, a bulk read) that copy and the page faults of its fresh buffer
// cost more than the request's other work, so the frame takes the string
// over instead and frees it when the I/O thread has sent it.
#pragma once

#include <cstddef>
#include <string>

#include <zmq.hpp>

namespace cohort {

/// Below this, a copy is cheaper than handing ownership over (zmq keeps very
/// small messages inline, and a deleter runs on zmq's I/O thread).
constexpr std::size_t zero_copy_frame_bytes = 16 * 1024;

[[nodiscard]] inline zmq::message_t frame_of(std::string&& bytes) {
  if (bytes.size() < zero_copy_frame_bytes) return zmq::message_t(bytes.data(), bytes.size());
  auto* owned = new std::string(std::move(bytes));
  return zmq::message_t(owned->data(), owned->size(),
                        [](void*, void* hint) { delete static_cast<std::string*>(hint); }, owned);
}

}  // namespace cohort
