// Limits enforced on everything that comes from outside.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cohort {

/// Bounds applied when decoding frames from a peer. ZeroMQ enforces a hard cap
/// (ZMQ_MAXMSGSIZE) by dropping the connection; the soft limits below are
/// answered with a `too_large` or `bad_request` error reply.
struct wire_limits {
  /// Largest payload frame answered normally; larger ones get `too_large`. Default: 1 MiB.
  std::size_t max_payload_bytes = 1u << 20;
  /// Largest header frame. Default: 4 KiB.
  std::size_t max_header_bytes = 4096;
  /// Hard per-frame cap set as ZMQ_MAXMSGSIZE; a peer exceeding it is disconnected. Default: 4 MiB.
  std::int64_t hard_frame_bytes = 4 << 20;
  /// Maximum nesting depth of a msgpack value. Default: 32.
  std::size_t max_depth = 32;
  /// Maximum elements in one array / entries in one map. Default: 65536.
  std::size_t max_container = 65536;
  /// Maximum length of one string or binary. Default: 1 MiB.
  std::size_t max_string = 1u << 20;
};

}  // namespace cohort
