#include "cohort/storage/idempotency.hpp"

#include <msgpack.hpp>
#include <openssl/evp.h>
#include <iterator>

#include <boost/algorithm/hex.hpp>

namespace cohort {

namespace {
struct record {
  std::int64_t expires_ms = 0;
  bool is_error = false;
  std::string payload;
  std::string method;
  std::string fingerprint;
  MSGPACK_DEFINE(expires_ms, is_error, payload, method, fingerprint);
};
}  // namespace

std::int64_t system_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string idempotency_record_key(std::string_view entity_key, std::string_view idem) {
  // Length-prefixed, so no choice of the two strings can make another pair's key.
  std::string out = std::to_string(entity_key.size());
  out += ':';
  out += entity_key;
  out += idem;
  return out;
}

std::string request_fingerprint(std::string_view payload) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(payload.data(), payload.size(), digest, &length, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("SHA-256 is not available from OpenSSL");
  std::string out;
  boost::algorithm::hex_lower(digest, digest + length, std::back_inserter(out));
  return out;
}

std::string encode_idempotent_result(const idempotent_result& r, std::chrono::milliseconds ttl) {
  msgpack::sbuffer buf;
  msgpack::pack(buf, record{system_now_ms() + ttl.count(), r.is_error, r.payload, r.method, r.fingerprint});
  return std::string(buf.data(), buf.size());
}

std::optional<idempotent_result> decode_idempotent_result(std::string_view bytes, std::int64_t now_ms) {
  try {
    auto h = msgpack::unpack(bytes.data(), bytes.size());
    record rec;
    h.get().convert(rec);
    if (rec.expires_ms <= now_ms) return std::nullopt;
    return idempotent_result{rec.is_error, std::move(rec.payload), std::move(rec.method), std::move(rec.fingerprint)};
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace cohort
