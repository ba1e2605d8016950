#include <catch2/catch.hpp>

#include "cohort/cluster/resend_backoff.hpp"

using namespace std::chrono_literals;
using cohort::cluster::resend_backoff;

TEST_CASE("a request turned away by an owner whose view is behind is sent again soon, then less and less often") {
  CHECK(resend_backoff(0) == 5ms);  // the first re-sends: as soon as before
  CHECK(resend_backoff(9) == 5ms);
  CHECK(resend_backoff(10) == 10ms);  // then less and less often
  CHECK(resend_backoff(11) == 20ms);
  CHECK(resend_backoff(13) == 80ms);
  CHECK(resend_backoff(14) == 100ms);
  CHECK(resend_backoff(1000) == 100ms);
  // Attempts over a 2 s deadline: bounded (5 ms each would be 400).
  auto waited = 0ms;
  std::uint32_t attempts = 0;
  while (waited < 2s) waited += resend_backoff(attempts++);
  CHECK(attempts < 40);
  CHECK(attempts > 25);
}
