#include "cohort/storage/idempotency.hpp"

#include <msgpack.hpp>

namespace cohort {

namespace {
struct record {
  std::int64_t expires_ms = 0;
  bool is_error = false;
  std::string payload;
  MSGPACK_DEFINE(expires_ms, is_error, payload);
};
}  // namespace

std::int64_t system_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string encode_idempotent_result(const idempotent_result& r, std::chrono::milliseconds ttl) {
  msgpack::sbuffer buf;
  msgpack::pack(buf, record{system_now_ms() + ttl.count(), r.is_error, r.payload});
  return std::string(buf.data(), buf.size());
}

std::optional<idempotent_result> decode_idempotent_result(std::string_view bytes, std::int64_t now_ms) {
  try {
    auto h = msgpack::unpack(bytes.data(), bytes.size());
    record rec;
    h.get().convert(rec);
    if (rec.expires_ms <= now_ms) return std::nullopt;
    return idempotent_result{rec.is_error, std::move(rec.payload)};
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace cohort
