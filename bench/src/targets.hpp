// targets: the performance targets a benchmark checks, printed and written to
// its JSON from the same list, so the text and the JSON always give the same
// verdict (docs: bench/README.md, "Targets").
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "stats.hpp"

namespace cohort::bench {

/// One checked figure: `value` (a ratio to the same-run baseline, or an
/// absolute figure) against `limit`.
struct target_check {
  std::string scenario;
  std::string metric;      ///< what `value` is: "throughput ratio", "p50 us vs gRPC", "bytes per live entity"
  spread cohort;           ///< Cohort's figure (median, min, max over the repeats)
  std::optional<spread> baseline;  ///< the same-run baseline's, when the target is a ratio
  std::string baseline_name;       ///< "raw ZeroMQ", "gRPC C++", ...
  double value = 0;
  bool at_least = true;    ///< value >= limit (else value <= limit)
  double limit = 0;
  /// Paired rows: the per-repeat ratios (Cohort's figure over the baseline's
  /// measured right beside it); `value` is their median.
  std::optional<spread> paired_ratios;
  [[nodiscard]] bool pass() const { return at_least ? value >= limit : value <= limit; }
  [[nodiscard]] std::string target_text() const;
  /// The spread of Cohort's figure relative to its median, in percent ((max - min) / median);
  /// for a paired row, the spread of the per-repeat ratios.
  [[nodiscard]] double spread_percent() const;
};

class target_list {
 public:
  /// Cohort's median / the baseline's median must be >= `min_ratio` (throughput).
  void ratio_at_least(std::string scenario, std::string metric, spread cohort, spread baseline,
                      std::string baseline_name, double min_ratio);
  /// For two configurations of Cohort measured in pairs, one right after the
  /// other in each repeat (the price of a feature): the median of the
  /// per-repeat ratios cohort[i] / baseline[i] must be >= `min_ratio`. A
  /// pair shares the machine's state of the moment, so the ratio of a pair
  /// moves less than the ratio of two medians taken over minutes.
  void paired_ratio_at_least(std::string scenario, std::string metric, const std::vector<double>& cohort,
                             const std::vector<double>& baseline, std::string baseline_name, double min_ratio);
  /// Cohort's median / the baseline's median must be <= `max_ratio` (latency).
  void ratio_at_most(std::string scenario, std::string metric, spread cohort, spread baseline,
                     std::string baseline_name, double max_ratio);
  /// Cohort's median must be <= `limit` (an absolute figure: bytes, microseconds).
  void value_at_most(std::string scenario, std::string metric, spread cohort, double limit);
  /// Cohort's median must be >= `limit`.
  void value_at_least(std::string scenario, std::string metric, spread cohort, double limit);

  [[nodiscard]] const std::vector<target_check>& checks() const { return checks_; }
  [[nodiscard]] std::size_t missed() const;
  /// The table every benchmark ends with: one line per target, pass or short.
  void print() const;
  /// The same rows for the JSON ("targets": [...]).
  [[nodiscard]] nlohmann::json to_json() const;

 private:
  std::vector<target_check> checks_;
};

}  // namespace cohort::bench
