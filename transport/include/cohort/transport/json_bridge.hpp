// json_bridge: JSON text <-> msgpack bytes, for the CLI and the HTTP front.
#pragma once

#include <string>
#include <string_view>

#include "cohort/transport/result.hpp"

namespace cohort {

/// Parses JSON text and re-encodes it as one msgpack value. Invalid JSON is a `bad_request`.
[[nodiscard]] result<std::string> json_to_msgpack(std::string_view json_text);

/// Renders one msgpack value as JSON text (binary becomes an array of bytes).
[[nodiscard]] result<std::string> msgpack_to_json(std::string_view msgpack_bytes, int indent = -1);

}  // namespace cohort
