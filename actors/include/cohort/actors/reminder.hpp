// reminder: a durable timer of an entity. Scheduled with
// entity_context::remind_at / remind_in, kept in the service's store (so it
// survives passivation, restarts and crashes), and delivered to the entity's
// on_reminder handler at or after its time, at least once.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <msgpack.hpp>

#include "cohort/transport/message_fields.hpp"

namespace cohort {

/// The method a reminder arrives as (internal: no client may call it).
inline constexpr const char* reminder_method = "_reminder";

/// What an entity's on_reminder handler receives.
struct reminder {
  std::string name;
  std::uint64_t due_ms = 0;       ///< when it was due (Unix ms)
  std::vector<char> payload;      ///< the payload given when it was scheduled (msgpack; bin on the wire)
  COHORT_FIELDS(name, due_ms, payload);

  /// The payload decoded as P.
  template <class P>
  [[nodiscard]] P payload_as() const {
    auto h = msgpack::unpack(payload.data(), payload.size());
    P out;
    h.get().convert(out);
    return out;
  }
};

}  // namespace cohort
