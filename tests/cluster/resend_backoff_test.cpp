#include <catch2/catch.hpp>

#include "cohort/cluster/resend_backoff.hpp"

using namespace std::chrono_literals;
using cohort::cluster::resend_backoff;

TEST_CASE("a request turned away by an owner whose view is behind is sent again soon, then less and less often") {
  CHECK(resend_backoff(0ms) == 5ms);
  CHECK(resend_backoff(19ms) == 5ms);
  CHECK(resend_backoff(40ms) == 10ms);
  CHECK(resend_backoff(200ms) == 50ms);
  CHECK(resend_backoff(400ms) == 100ms);
  CHECK(resend_backoff(30s) == 100ms);
  // Never sooner than the first wait, whatever the clock says.
  CHECK(resend_backoff(-5ms) == 5ms);
  // Attempts over a 2 s deadline: bounded (5 ms each would be 400).
  auto waited = 0ms;
  int attempts = 0;
  while (waited < 2s) waited += resend_backoff(waited), ++attempts;
  CHECK(attempts < 60);
  CHECK(attempts > 20);
}
