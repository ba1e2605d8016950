// raw_durable_service: the floor of a durable write *over the network*, with
// no runtime: a raw ZeroMQ ROUTER thread that group-commits every request it
// has read into one synced RocksDB write, then answers them, and a DEALER
// client keeping `clients` writes in flight. Raw RocksDB alone has no round
// trip; this floor has one round trip and one fsync per group, which is what
// a service reached over a socket cannot do without.
#pragma once

#include <chrono>
#include <cstddef>

namespace cohort::bench {

/// Writes per second through the raw ZeroMQ + RocksDB service, `clients` in
/// flight (each on its own key) for `duration`, values of `value_bytes`.
[[nodiscard]] double raw_zmq_rocksdb_synced(int clients, std::chrono::milliseconds duration,
                                            std::size_t value_bytes = 32);

}  // namespace cohort::bench
