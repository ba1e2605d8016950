#include "cohort/transport/error_code.hpp"

namespace cohort {

std::string_view to_string(errc code) noexcept {
  switch (code) {
    case errc::bad_request: return "bad_request";
    case errc::unsupported_version: return "unsupported_version";
    case errc::unknown_service: return "unknown_service";
    case errc::unknown_method: return "unknown_method";
    case errc::too_large: return "too_large";
    case errc::timeout: return "timeout";
    case errc::unavailable: return "unavailable";
    case errc::overloaded: return "overloaded";
    case errc::internal: return "internal";
    case errc::idempotency_key_reused: return "idempotency_key_reused";
    case errc::storage_full: return "storage_full";
    case errc::storage_unavailable: return "storage_unavailable";
    case errc::store_corrupt: return "store_corrupt";
    case errc::entity_quarantined: return "entity_quarantined";
    case errc::unauthenticated: return "unauthenticated";
    case errc::forbidden: return "forbidden";
    case errc::rate_limited: return "rate_limited";
    case errc::wrong_shard: return "wrong_shard";
  }
  return "internal";
}

}  // namespace cohort
