// stats: median and spread of repeated measurements, and latency percentiles.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace cohort::bench {

/// Median, min and max of a set of repeated measurements.
struct spread {
  double median = 0, min = 0, max = 0;
};

[[nodiscard]] spread spread_of(std::vector<double> values);

/// {"median", "min", "max"}: how every benchmark's JSON gives a spread.
[[nodiscard]] nlohmann::json to_json(const spread& s);

/// The p-th percentile (0..100) of `samples` (sorted in place).
[[nodiscard]] double percentile(std::vector<double>& samples, double p);

/// "123.4k" style formatting for rates.
[[nodiscard]] std::string human(double value);

}  // namespace cohort::bench
