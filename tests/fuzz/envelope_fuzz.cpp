// libFuzzer harness: the envelope and payload decoders, as a node's edge runs
// them on every frame from outside. The first byte splits the input into a
// header frame and a payload frame.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "cohort/transport/envelope_codec.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string_view all(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto cut = std::min<std::size_t>(data[0] * 4u, all.size());
  cohort::wire_limits limits;
  std::uint64_t id = 0;
  auto header = cohort::decode_envelope(all.substr(0, cut), limits, &id);
  if (header) {
    // What decodes must encode and decode to the same envelope.
    auto again = cohort::decode_envelope(cohort::encode_envelope(*header), limits);
    if (!again || again->id != header->id || again->service != header->service || again->key != header->key ||
        again->sent_ms != header->sent_ms || again->deadline_ms != header->deadline_ms)
      __builtin_trap();
  }
  auto payload = cohort::decode_payload(all.substr(cut), limits);
  // The per-thread scratch zone that reply::as decodes into must agree with
  // a zone of its own, call after call (and ASan sees any use of a cleared zone).
  auto scratch = cohort::decode_payload_scratch(all.substr(cut), limits);
  if (payload.ok() != scratch.ok()) __builtin_trap();
  if (payload) {
    const auto& a = payload->get();
    const auto& b = *scratch;
    if (a.type != b.type) __builtin_trap();
    if (a.type == msgpack::type::STR &&
        (a.via.str.size != b.via.str.size || (a.via.str.size && std::memcmp(a.via.str.ptr, b.via.str.ptr, a.via.str.size))))
      __builtin_trap();
    if (a.type == msgpack::type::ARRAY && a.via.array.size != b.via.array.size) __builtin_trap();
    if (a.type == msgpack::type::MAP && a.via.map.size != b.via.map.size) __builtin_trap();
  }
  (void)cohort::decode_error_payload(all.substr(cut), limits);
  return 0;
}
