#include "cohort/transport/json_bridge.hpp"

#include <nlohmann/json.hpp>

namespace cohort {

result<std::string> json_to_msgpack(std::string_view json_text) {
  auto doc = nlohmann::json::parse(json_text.begin(), json_text.end(), nullptr, false);
  if (doc.is_discarded()) return error_info{errc::bad_request, "arguments are not valid JSON"};
  auto bytes = nlohmann::json::to_msgpack(doc);
  return std::string(bytes.begin(), bytes.end());
}

result<std::string> msgpack_to_json(std::string_view msgpack_bytes, int indent) {
  auto doc = nlohmann::json::from_msgpack(msgpack_bytes.begin(), msgpack_bytes.end(), true, false);
  if (doc.is_discarded()) return error_info{errc::bad_request, "reply is not valid msgpack"};
  return doc.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace cohort
