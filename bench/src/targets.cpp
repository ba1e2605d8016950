#include "targets.hpp"

#include <cstdio>

namespace cohort::bench {

std::string target_check::target_text() const {
  char buf[96];
  if (baseline)
    std::snprintf(buf, sizeof buf, "%s %.2fx %s", at_least ? ">=" : "<=", limit, baseline_name.c_str());
  else
    std::snprintf(buf, sizeof buf, "%s %s", at_least ? ">=" : "<=", human(limit).c_str());
  return buf;
}

double target_check::spread_percent() const {
  if (paired_ratios)
    return paired_ratios->median != 0 ? 100.0 * (paired_ratios->max - paired_ratios->min) / paired_ratios->median : 0;
  return cohort.median != 0 ? 100.0 * (cohort.max - cohort.min) / cohort.median : 0;
}

void target_list::ratio_at_least(std::string scenario, std::string metric, spread cohort, spread baseline,
                                 std::string baseline_name, double min_ratio) {
  checks_.push_back({std::move(scenario), std::move(metric), cohort, baseline, std::move(baseline_name),
                     baseline.median != 0 ? cohort.median / baseline.median : 0, true, min_ratio, std::nullopt});
}

void target_list::paired_ratio_at_least(std::string scenario, std::string metric, const std::vector<double>& cohort,
                                        const std::vector<double>& baseline, std::string baseline_name,
                                        double min_ratio) {
  std::vector<double> ratios;
  for (std::size_t i = 0; i < cohort.size() && i < baseline.size(); ++i)
    ratios.push_back(baseline[i] != 0 ? cohort[i] / baseline[i] : 0);
  auto r = spread_of(ratios);
  checks_.push_back({std::move(scenario), std::move(metric), spread_of(cohort), spread_of(baseline),
                     std::move(baseline_name), r.median, true, min_ratio, r});
}

void target_list::ratio_at_most(std::string scenario, std::string metric, spread cohort, spread baseline,
                                std::string baseline_name, double max_ratio) {
  checks_.push_back({std::move(scenario), std::move(metric), cohort, baseline, std::move(baseline_name),
                     baseline.median != 0 ? cohort.median / baseline.median : 1e9, false, max_ratio, std::nullopt});
}

void target_list::value_at_most(std::string scenario, std::string metric, spread cohort, double limit) {
  checks_.push_back({std::move(scenario), std::move(metric), cohort, std::nullopt, "", cohort.median, false, limit, std::nullopt});
}

void target_list::value_at_least(std::string scenario, std::string metric, spread cohort, double limit) {
  checks_.push_back({std::move(scenario), std::move(metric), cohort, std::nullopt, "", cohort.median, true, limit, std::nullopt});
}

std::size_t target_list::missed() const {
  std::size_t n = 0;
  for (const auto& c : checks_) n += !c.pass();
  return n;
}

void target_list::print() const {
  std::printf("\ntargets (%zu, %zu short)\n%-34s %-26s %-24s %-24s %8s %7s  %-22s %s\n", checks_.size(), missed(),
              "scenario", "metric", "cohort median [min..max]", "baseline median [min..max]", "value", "spread",
              "target", "result");
  auto cell = [](const spread& s) { return human(s.median) + " [" + human(s.min) + ".." + human(s.max) + "]"; };
  for (const auto& c : checks_)
    std::printf("%-34s %-26s %-24s %-24s %8.2f %6.0f%%  %-22s %s\n", c.scenario.c_str(), c.metric.c_str(),
                cell(c.cohort).c_str(), c.baseline ? cell(*c.baseline).c_str() : "-", c.value, c.spread_percent(),
                c.target_text().c_str(), c.pass() ? "pass" : "SHORT");
}

nlohmann::json target_list::to_json() const {
  auto j = nlohmann::json::array();
  auto s = [](const spread& v) { return nlohmann::json{{"median", v.median}, {"min", v.min}, {"max", v.max}}; };
  for (const auto& c : checks_)
    j.push_back({{"scenario", c.scenario}, {"metric", c.metric}, {"cohort", s(c.cohort)},
                 {"baseline", c.baseline ? s(*c.baseline) : nlohmann::json(nullptr)}, {"baseline_name", c.baseline_name},
                 {"value", c.value}, {"limit", c.limit}, {"at_least", c.at_least}, {"target", c.target_text()},
                 {"spread_percent", c.spread_percent()}, {"pass", c.pass()},
                 {"paired_ratios", c.paired_ratios ? s(*c.paired_ratios) : nlohmann::json(nullptr)}});
  return j;
}

}  // namespace cohort::bench
