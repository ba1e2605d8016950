// libFuzzer harness: the JSON <-> msgpack bridge (HTTP bodies in, replies out).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "cohort/transport/envelope_codec.hpp"
#include "cohort/transport/json_bridge.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  cohort::wire_limits limits;
  limits.max_container = 1024;  // small enough that a fuzzer can cross it
  limits.max_string = 4096;
  if (auto mp = cohort::json_to_msgpack(text, limits)) {
    // Whatever JSON accepts, the native decoder accepts, and it renders back.
    if (!cohort::decode_payload(*mp, limits)) __builtin_trap();
    if (!cohort::msgpack_to_json(*mp, -1, limits)) __builtin_trap();
  }
  (void)cohort::msgpack_to_json(text, 2, limits);  // the same bytes as a (hostile) reply
  return 0;
}
