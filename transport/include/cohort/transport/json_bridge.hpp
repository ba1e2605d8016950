// json_bridge: JSON text <-> msgpack bytes, for the CLI and the HTTP front.
// Both directions enforce the same wire_limits as the native port, before any
// recursive step, so outside JSON can never nest deep enough to exhaust a stack.
#pragma once

#include <string>
#include <string_view>

#include "cohort/transport/result.hpp"
#include "cohort/transport/wire_limits.hpp"

namespace cohort {

/// Parses JSON text and re-encodes it as one msgpack value. Invalid JSON (and
/// invalid UTF-8) is a `bad_request`; nesting deeper than `limits.max_depth`
/// is a `bad_request`; a container or string past its limit is `too_large`.
[[nodiscard]] result<std::string> json_to_msgpack(std::string_view json_text, const wire_limits& limits = {});

/// Renders one msgpack value as JSON text (binary becomes an array of bytes).
/// The value is decoded within `limits` first; invalid UTF-8 is replaced by U+FFFD.
[[nodiscard]] result<std::string> msgpack_to_json(std::string_view msgpack_bytes, int indent = -1,
                                                  const wire_limits& limits = {});

}  // namespace cohort
