// run_result: one measurement of a request/reply scenario.
#pragma once

#include <cstdint>

namespace cohort::bench {

struct run_result {
  double throughput = 0;  ///< replies per second
  double p50_us = 0, p99_us = 0, p999_us = 0;
  std::uint64_t replies = 0;  ///< replies counted in the measurement
  /// The whole process's CPU time (every thread: client, node, peers' idle
  /// servers) over the measurement, per reply: what one request costs on
  /// this machine. 0 when not taken.
  double cpu_us_per_reply = 0;
  double faults_per_reply = 0;  ///< the process's page faults over the measurement, per reply
};

}  // namespace cohort::bench
