// resend_backoff: how long a forwarded request waits before it is sent
// again to a shard's new owner whose own view is still behind (it turned the
// request away naming an older epoch than the one it was sent under).
#pragma once

#include <algorithm>
#include <chrono>

namespace cohort::cluster {

/// The wait before the next attempt, given how long the request has been in
/// this node: 5 ms at first (a new owner's view catches up in milliseconds),
/// then a quarter of its age, at most 100 ms. Without it an owner whose
/// view stayed behind (its etcd watch broken) would be sent the request every
/// 5 ms until its deadline; the age needs no count of attempts kept with it.
inline std::chrono::milliseconds resend_backoff(std::chrono::steady_clock::duration waited) {
  constexpr std::chrono::milliseconds first{5}, most{100};
  return std::clamp(std::chrono::duration_cast<std::chrono::milliseconds>(waited / 4), first, most);
}

}  // namespace cohort::cluster
