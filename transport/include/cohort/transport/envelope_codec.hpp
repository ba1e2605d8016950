// envelope_codec: envelope <-> msgpack bytes, and bounded decoding of payloads.
#pragma once

#include <string>
#include <string_view>

#include <msgpack.hpp>

#include "cohort/transport/envelope.hpp"
#include "cohort/transport/result.hpp"
#include "cohort/transport/string_buffer.hpp"
#include "cohort/transport/wire_limits.hpp"

namespace cohort {

/// Encodes a header map. Absent (empty/zero) optional fields are omitted.
[[nodiscard]] std::string encode_envelope(const envelope& env);

/// Decodes a header frame, enforcing `limits`. A failure carries `bad_request`,
/// `too_large` or `unsupported_version`; `partial_id` receives the correlation
/// id whenever it could be read, so that even a rejected request gets a reply.
[[nodiscard]] result<envelope> decode_envelope(std::string_view bytes, const wire_limits& limits,
                                               std::uint64_t* partial_id = nullptr);

/// Unpacks one msgpack value (a payload) enforcing depth, container and string
/// limits, rejecting trailing bytes and strings that are not UTF-8. The handle owns its zone.
[[nodiscard]] result<msgpack::object_handle> decode_payload(std::string_view bytes,
                                                            const wire_limits& limits);

/// decode_payload without copying: the value's strings, bins and exts point
/// into `bytes`, which must stay unchanged for as long as the handle (or any
/// object taken from it) is used. For payloads held by whoever holds the
/// handle: a request and its arguments, a reply read into a typed value.
[[nodiscard]] result<msgpack::object_handle> decode_payload_in_place(std::string_view bytes,
                                                                     const wire_limits& limits);

/// decode_payload_in_place into a zone the caller keeps (and may move: its
/// blocks stay where they are), for a holder that has room for the zone
/// itself and so saves allocating it. Make the zone with
/// `msgpack::zone(payload_zone_block(bytes.size()))`.
[[nodiscard]] result<msgpack::object> decode_payload_in_place(std::string_view bytes, const wire_limits& limits,
                                                              msgpack::zone& zone);

/// The first block for a zone that will hold a payload of `bytes` decoded in
/// place: sized to it, not msgpack's 8 KiB default.
[[nodiscard]] std::size_t payload_zone_block(std::size_t bytes) noexcept;

/// decode_payload_in_place for a value used up at once (converted to a typed
/// value, then dropped): made in this thread's scratch zone instead of a zone
/// of its own, so a decode allocates two blocks fewer. The object is valid
/// until the next decode_payload_scratch on this thread, and while `bytes`
/// stays unchanged.
[[nodiscard]] result<msgpack::object> decode_payload_scratch(std::string_view bytes, const wire_limits& limits);

/// True when `s` is well-formed UTF-8 (no overlong forms, no surrogates).
[[nodiscard]] bool is_valid_utf8(std::string_view s) noexcept;

/// `s` with every byte that is not part of well-formed UTF-8 replaced by U+FFFD.
[[nodiscard]] std::string to_valid_utf8(std::string_view s);

/// The payload of an error reply: {"code": ..., "message": ...}.
[[nodiscard]] std::string encode_error_payload(const error_info& err);

/// Reads an error payload back; malformed ones become a `bad_request` error_info.
[[nodiscard]] error_info decode_error_payload(std::string_view bytes, const wire_limits& limits);

/// Packs any msgpack-mapped value into bytes.
template <class T>
[[nodiscard]] std::string pack(const T& value) {
  string_buffer buf;
  msgpack::pack(buf, value);
  return buf.take();
}

}  // namespace cohort
