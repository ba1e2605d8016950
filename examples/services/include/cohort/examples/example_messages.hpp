// The messages of the example services (greeter, counter, visits, ledger):
// msgpack maps on the wire, shared by the services, the demo, tests and benchmarks.
#pragma once

#include <cstdint>
#include <string>

#include <msgpack.hpp>

namespace cohort::examples {

struct hello_args {
  std::string name;
  MSGPACK_DEFINE_MAP(name);
};

struct hello_reply {
  std::string greeting;
  MSGPACK_DEFINE_MAP(greeting);
};

struct echo_args {
  std::string data;
  MSGPACK_DEFINE_MAP(data);
};

struct sleep_args {
  std::uint32_t ms = 0;
  MSGPACK_DEFINE_MAP(ms);
};

struct fail_args {
  std::string code = "failed";
  std::string message = "requested failure";
  MSGPACK_DEFINE_MAP(code, message);
};

struct counter_state {
  std::int64_t value = 0;
  std::uint64_t updates = 0;
  MSGPACK_DEFINE_MAP(value, updates);
};

struct add_args {
  std::int64_t n = 1;
  MSGPACK_DEFINE_MAP(n);
};

struct counter_value {
  std::string key;
  std::int64_t value = 0;
  MSGPACK_DEFINE_MAP(key, value);
};

struct visit_reply {
  std::string greeting;
  std::int64_t visits = 0;
  MSGPACK_DEFINE_MAP(greeting, visits);
};

struct account_state {
  std::int64_t balance = 0;
  std::uint64_t events = 0;
  MSGPACK_DEFINE_MAP(balance, events);
};

struct account_event {
  std::int64_t delta = 0;  ///< deposit > 0, withdrawal < 0
  MSGPACK_DEFINE_MAP(delta);
};

struct amount_args {
  std::int64_t amount = 0;
  MSGPACK_DEFINE_MAP(amount);
};

struct balance_reply {
  std::string account;
  std::int64_t balance = 0;
  std::uint64_t events = 0;
  MSGPACK_DEFINE_MAP(account, balance, events);
};

}  // namespace cohort::examples
