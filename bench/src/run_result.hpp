// run_result: one measurement of a request/reply scenario.
#pragma once

namespace cohort::bench {

struct run_result {
  double throughput = 0;  ///< replies per second
  double p50_us = 0, p99_us = 0, p999_us = 0;
};

}  // namespace cohort::bench
