// Two services of the tally app: `tally` (an entity per key: a count that
// expires unless topped up) and `words` (stateless workers that count words).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <cohort/actors/service_definition.hpp>
#include <cohort/transport/message_fields.hpp>

namespace tally {

struct add_args {
  std::int64_t n = 0;
  std::uint64_t expire_after_ms = 0;  ///< 0: never; else the count resets this long after its last add
  COHORT_FIELDS(n, expire_after_ms);
};

struct count {
  std::string key;
  std::int64_t value = 0;
  bool expired = false;
  COHORT_FIELDS(key, value, expired);
};

struct text {
  std::string body;
  COHORT_FIELDS(body);
};

struct word_count {
  std::uint64_t words = 0;
  COHORT_FIELDS(words);
};

/// The entity's state, stored in the service's own store.
struct tally_state {
  std::int64_t value = 0;
  bool expired = false;
  COHORT_FIELDS(value, expired);
};

cohort::service_definition tally_service();
cohort::service_definition words_service();
std::vector<cohort::service_definition> all_services();

}  // namespace tally
