#include "cohort/runtime/supervision.hpp"

#include <algorithm>
#include <cmath>
#include <set>

namespace cohort {

std::string_view to_string(restart_strategy s) noexcept {
  switch (s) {
    case restart_strategy::one_for_one: return "one_for_one";
    case restart_strategy::one_for_all: return "one_for_all";
    case restart_strategy::rest_for_one: return "rest_for_one";
    case restart_strategy::simple_one_for_one: return "simple_one_for_one";
  }
  return "one_for_one";
}

std::string_view to_string(restart_type t) noexcept {
  switch (t) {
    case restart_type::permanent: return "permanent";
    case restart_type::transient: return "transient";
    case restart_type::temporary: return "temporary";
  }
  return "permanent";
}

std::optional<restart_strategy> parse_restart_strategy(std::string_view s) noexcept {
  for (auto v : {restart_strategy::one_for_one, restart_strategy::one_for_all, restart_strategy::rest_for_one,
                 restart_strategy::simple_one_for_one})
    if (to_string(v) == s) return v;
  return std::nullopt;
}

std::optional<restart_type> parse_restart_type(std::string_view s) noexcept {
  for (auto v : {restart_type::permanent, restart_type::transient, restart_type::temporary})
    if (to_string(v) == s) return v;
  return std::nullopt;
}

result<bool> validate(const supervision_policy& policy, const std::vector<child_spec>& children) {
  if (policy.strategy == restart_strategy::simple_one_for_one && children.size() > 1)
    return error_info{"invalid_strategy", "simple_one_for_one takes exactly one child template, got " +
                                              std::to_string(children.size())};
  if (policy.intensity.period.count() <= 0)
    return error_info{"invalid_intensity", "restart period must be positive"};
  if (policy.backoff.enabled() && (policy.backoff.min > policy.backoff.max || policy.backoff.random_factor < 0 ||
                                   policy.backoff.random_factor > 10))
    return error_info{"invalid_backoff", "backoff needs 0 <= min <= max and 0 <= random_factor <= 10"};
  std::set<std::string> ids;
  for (const auto& c : children) {
    if (c.id.empty()) return error_info{"invalid_child_id", "a child id must not be empty"};
    if (!ids.insert(c.id).second) return error_info{"duplicate_child_id", "child id '" + c.id + "' appears twice"};
  }
  return true;
}

bool restart_window::admit(std::chrono::steady_clock::time_point now) {
  while (!times_.empty() && now - times_.front() > limits_.period) times_.pop_front();
  if (times_.size() >= limits_.max_restarts) return false;
  times_.push_back(now);
  return true;
}

supervision_plan::supervision_plan(supervision_policy policy, std::vector<child_spec> children, std::uint64_t seed)
    : policy_(policy),
      children_(std::move(children)),
      window_(policy.intensity),
      consecutive_(children_.size(), 0),
      started_at_(children_.size()),
      rng_(seed) {}

void supervision_plan::started(std::size_t index, std::chrono::steady_clock::time_point now) {
  if (index >= started_at_.size()) {
    started_at_.resize(index + 1);
    consecutive_.resize(index + 1, 0);
  }
  started_at_[index] = now;
}

std::chrono::milliseconds supervision_plan::backoff_delay(std::size_t index, std::chrono::steady_clock::time_point now) {
  const auto& b = policy_.backoff;
  if (!b.enabled()) return std::chrono::milliseconds(0);
  if (index >= consecutive_.size()) consecutive_.resize(index + 1, 0), started_at_.resize(index + 1);
  // A child that ran quietly for reset_after starts its backoff from scratch.
  if (now - started_at_[index] >= b.reset_after) consecutive_[index] = 0;
  auto n = consecutive_[index]++;
  double base = static_cast<double>(b.min.count()) * std::pow(2.0, std::min<std::uint32_t>(n, 30));
  base = std::min(base, static_cast<double>(b.max.count()));
  std::uniform_real_distribution<double> jitter(0.0, b.random_factor);
  return std::chrono::milliseconds(static_cast<std::int64_t>(base * (1.0 + jitter(rng_))));
}

restart_decision supervision_plan::on_exit(std::size_t index, bool abnormal, const std::vector<bool>& running,
                                           std::chrono::steady_clock::time_point now) {
  restart_decision d;
  const auto& spec = children_[std::min(index, children_.size() - 1)];
  bool restart = spec.restart == restart_type::permanent || (spec.restart == restart_type::transient && abnormal);
  if (!restart) return d;
  if (!window_.admit(now)) {
    d.give_up = true;
    for (std::size_t i = running.size(); i-- > 0;)
      if (running[i]) d.stop.push_back(i);
    return d;
  }
  switch (policy_.strategy) {
    case restart_strategy::one_for_one:
    case restart_strategy::simple_one_for_one:
      d.start.push_back(index);
      break;
    case restart_strategy::one_for_all:
    case restart_strategy::rest_for_one: {
      std::size_t from = policy_.strategy == restart_strategy::one_for_all ? 0 : index;
      for (std::size_t i = running.size(); i-- > from;)
        if (i != index && running[i]) d.stop.push_back(i);
      for (std::size_t i = from; i < running.size(); ++i)
        if (i == index || running[i]) d.start.push_back(i);
      break;
    }
  }
  d.delay = backoff_delay(index, now);
  return d;
}

}  // namespace cohort
