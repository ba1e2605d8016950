#include "stats.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace cohort::bench {

spread spread_of(std::vector<double> values) {
  if (values.empty()) return {};
  std::sort(values.begin(), values.end());
  auto n = values.size();
  double median = n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
  return {median, values.front(), values.back()};
}

nlohmann::json to_json(const spread& s) { return {{"median", s.median}, {"min", s.min}, {"max", s.max}}; }

double percentile(std::vector<double>& samples, double p) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  auto idx = static_cast<std::size_t>(std::ceil(p / 100.0 * samples.size())) - 1;
  return samples[std::min(idx, samples.size() - 1)];
}

std::string human(double v) {
  char buf[32];
  if (v >= 1e6)
    std::snprintf(buf, sizeof buf, "%.2fM", v / 1e6);
  else if (v >= 1e3)
    std::snprintf(buf, sizeof buf, "%.1fk", v / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

}  // namespace cohort::bench
