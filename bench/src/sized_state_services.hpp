// sized_state_services: two entity services whose state is as large as the
// benchmark makes it, for the curve of a changing call's cost against the
// size of the entity's state. `sized_plain` is a plain entity (its state is
// written whole after each change); `sized_journal` is event-sourced (each
// change is one small event, the state is written as a snapshot every
// `snapshot_every` events). Both: `grow` {bytes} adds that many bytes to the
// state, `bump` adds 1 to a counter in it and returns the counter.
#pragma once

#include <cstdint>

#include "cohort/actors/service_definition.hpp"
#include "cohort/transport/message_fields.hpp"

namespace cohort::bench {

struct grow_args {
  std::uint64_t bytes = 0;
  COHORT_FIELDS(bytes);
};

struct bump_reply {
  std::uint64_t n = 0;
  COHORT_FIELDS(n);
};

[[nodiscard]] service_definition sized_plain_service();
[[nodiscard]] service_definition sized_journal_service();

}  // namespace cohort::bench
