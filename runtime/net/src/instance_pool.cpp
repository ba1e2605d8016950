#include "cohort/net/instance_pool.hpp"

#include <algorithm>

namespace cohort::detail {

namespace {
// Virtual nodes per instance on the hash ring: enough that keys spread evenly
// and that adding or removing an instance moves about 1/N of them.
constexpr int virtual_nodes = 64;
}  // namespace

std::string_view to_string(service_instance::breaker b) noexcept {
  switch (b) {
    case service_instance::breaker::closed: return "closed";
    case service_instance::breaker::open: return "open";
    case service_instance::breaker::half_open: return "half_open";
  }
  return "closed";
}

std::uint64_t stable_hash(std::string_view s) noexcept {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  // Final mix: FNV alone clusters similar short strings on the ring.
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

instance_pool::instance_pool(remote_service_config cfg) : cfg_(std::move(cfg)) {
  for (const auto& ep : cfg_.endpoints) add(ep, false, clock_type::now());
}

void instance_pool::add(const std::string& endpoint, bool registered, clock_type::time_point now) {
  for (auto& i : instances_)
    if (i->endpoint == endpoint) {
      i->last_seen = now;
      return;
    }
  auto i = std::make_shared<service_instance>();
  i->endpoint = endpoint;
  i->registered = registered;
  i->last_seen = now;
  instances_.push_back(std::move(i));
  rebuild_ring();
}

std::vector<std::string> instance_pool::expire(clock_type::time_point now, std::chrono::milliseconds timeout) {
  std::vector<std::string> gone;
  auto stale = [&](const instance_ptr& i) { return i->registered && now - i->last_seen > timeout; };
  for (auto& i : instances_)
    if (stale(i)) gone.push_back(i->endpoint);
  if (gone.empty()) return gone;
  instances_.erase(std::remove_if(instances_.begin(), instances_.end(), stale), instances_.end());
  rebuild_ring();
  return gone;
}

void instance_pool::rebuild_ring() {
  ring_.clear();
  for (auto& i : instances_)
    for (int v = 0; v < virtual_nodes; ++v) ring_[stable_hash(i->endpoint + "#" + std::to_string(v))] = i;
}

bool instance_pool::admits(service_instance& i, clock_type::time_point now) const {
  switch (i.state) {
    case service_instance::breaker::closed: return true;
    case service_instance::breaker::open:
      if (now - i.opened_at < cfg_.breaker_cooldown) return false;
      i.state = service_instance::breaker::half_open;  // cooled down: one trial
      i.trial_in_flight = false;
      [[fallthrough]];
    case service_instance::breaker::half_open: return !i.trial_in_flight;
  }
  return false;
}

instance_pool::instance_ptr instance_pool::pick(const envelope& h, const std::vector<instance_ptr>& tried,
                                                clock_type::time_point now) {
  auto usable = [&](const instance_ptr& i) {
    return std::find(tried.begin(), tried.end(), i) == tried.end() && admits(*i, now);
  };
  instance_ptr chosen;
  if (cfg_.balance == balance_policy::consistent_hash && !h.key.empty() && !ring_.empty()) {
    // The first usable instance clockwise from the key's point on the ring.
    auto start = ring_.lower_bound(stable_hash(h.key));
    for (std::size_t n = 0; n < ring_.size() && !chosen; ++n, ++start) {
      if (start == ring_.end()) start = ring_.begin();
      if (usable(start->second)) chosen = start->second;
    }
  } else if (cfg_.balance == balance_policy::least_outstanding) {
    for (auto& i : instances_)
      if (usable(i) && (!chosen || i->outstanding < chosen->outstanding)) chosen = i;
  } else {
    for (std::size_t n = 0; n < instances_.size() && !chosen; ++n) {
      auto& i = instances_[next_++ % instances_.size()];
      if (usable(i)) chosen = i;
    }
  }
  if (chosen && chosen->state == service_instance::breaker::half_open) chosen->trial_in_flight = true;
  return chosen;
}

void instance_pool::record(const instance_ptr& i, bool failure, clock_type::time_point now) {
  i->requests++;
  if (!failure) {
    i->last_success = now;
    i->consecutive_failures = 0;
    i->state = service_instance::breaker::closed;
    i->trial_in_flight = false;
    return;
  }
  i->failures++;
  i->consecutive_failures++;
  if (i->state == service_instance::breaker::half_open ||
      i->consecutive_failures >= static_cast<int>(cfg_.breaker_failures)) {
    i->state = service_instance::breaker::open;
    i->opened_at = now;
    i->trial_in_flight = false;
  }
}

}  // namespace cohort::detail
