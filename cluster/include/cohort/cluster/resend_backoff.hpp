// resend_backoff: how long a forwarded request waits before it is sent
// again to a shard's new owner whose own view is still behind (it turned the
// request away naming an older epoch than the one it was sent under).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace cohort::cluster {

/// The wait before re-send number `resends` (0: the first): 5 ms for the
/// first `steady` ones (a new owner's view catches up within milliseconds:
/// its etcd write, then its watch; a longer wait here is added to the
/// slowest requests of every handoff), then doubling, at most 100 ms.
/// Without it an owner whose view stayed behind (its etcd watch broken)
/// would be sent the request every 5 ms until its deadline. Counted per
/// request, not by its age: a request that waited in a hold before it was
/// first turned away is still sent again 5 ms later.
inline std::chrono::milliseconds resend_backoff(std::uint32_t resends) {
  constexpr std::chrono::milliseconds first{5}, most{100};
  constexpr std::uint32_t steady = 10;
  if (resends < steady) return first;
  return std::min(most, first * (std::int64_t{1} << std::min<std::uint32_t>(resends - steady + 1, 5)));
}

}  // namespace cohort::cluster
