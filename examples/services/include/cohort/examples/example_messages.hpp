// The messages of the example services (greeter, counter, visits, ledger):
// msgpack maps on the wire, shared by the services, the demo, tests and benchmarks.
#pragma once

#include <cstdint>
#include <string>

#include <msgpack.hpp>

#include "cohort/transport/message_fields.hpp"

namespace cohort::examples {

struct hello_args {
  std::string name;
  COHORT_FIELDS(name);
};

struct hello_reply {
  std::string greeting;
  COHORT_FIELDS(greeting);
};

struct echo_args {
  std::string data;
  COHORT_FIELDS(data);
};

struct sleep_args {
  std::uint32_t ms = 0;
  COHORT_FIELDS(ms);
};

struct fail_args {
  std::string code = "failed";
  std::string message = "requested failure";
  COHORT_FIELDS(code, message);
};

struct counter_state {
  std::int64_t value = 0;
  std::uint64_t updates = 0;
  COHORT_FIELDS(value, updates);
};

struct add_args {
  std::int64_t n = 1;
  COHORT_FIELDS(n);
};

struct counter_value {
  std::string key;
  std::int64_t value = 0;
  COHORT_FIELDS(key, value);
};

struct visit_reply {
  std::string greeting;
  std::int64_t visits = 0;
  COHORT_FIELDS(greeting, visits);
};

struct account_state {
  std::int64_t balance = 0;
  std::uint64_t events = 0;
  COHORT_FIELDS(balance, events);
};

struct account_event {
  std::int64_t delta = 0;  ///< deposit > 0, withdrawal < 0
  COHORT_FIELDS(delta);
};

struct amount_args {
  std::int64_t amount = 0;
  COHORT_FIELDS(amount);
};

struct balance_reply {
  std::string account;
  std::int64_t balance = 0;
  std::uint64_t events = 0;
  COHORT_FIELDS(account, balance, events);
};

}  // namespace cohort::examples
