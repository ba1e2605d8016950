// outbox: durable, acknowledged events between services. An entity's
// published events are written to its service's `outbox` keyspace in the same
// batch as the state change that caused them, one record per subscriber; the
// service's relay actor delivers each record as a request to the subscriber
// (with the event id as idempotency key, so the subscriber drops
// redeliveries), deletes it when acknowledged and redelivers it with backoff
// until then. Records survive crashes; the relay starts from the store.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <caf/fwd.hpp>
#include <msgpack.hpp>

#include "cohort/transport/result.hpp"
#include "cohort/core/service_runtime.hpp"

namespace cohort::detail {

/// One event on its way to one subscriber.
struct outbox_record {
  std::string service;   ///< the subscriber
  std::string method;
  std::string key;       ///< the subscriber's entity key
  std::string event_id;  ///< unique; the delivery's idempotency key
  std::string payload;   ///< the event (msgpack)
  std::string traceparent;  ///< the publication's span: deliveries continue its trace (absent in older records)
  std::uint64_t published_ms = 0;  ///< Unix ms of the publication (0 in older records): the backlog's age
  MSGPACK_DEFINE(service, method, key, event_id, payload, traceparent, published_ms);
};

/// Allocates the next event id of `svc` and the records of `event` on `topic`,
/// one per subscriber, as (outbox key, encoded record) pairs, for the
/// subscribers' entity `key`. Keys sort by subscriber, then publication order,
/// and end with the `publisher` entity whose write stores them: a record
/// belongs to its publisher's shard, moves with it and is exported with it
/// (never with the shard of the subscriber key, which another node may own).
[[nodiscard]] std::vector<std::pair<std::string, std::string>> make_outbox_records(service_runtime& svc,
                                                                                   const std::string& topic,
                                                                                   std::string event,
                                                                                   const std::string& key,
                                                                                   const std::string& publisher,
                                                                                   const std::string& traceparent = {});

[[nodiscard]] result<outbox_record> decode_outbox_record(std::string_view bytes);

/// Spawns the relay of `svc`'s outbox, monitored by `parent` (the service root).
caf::actor spawn_outbox_relay(caf::event_based_actor* parent, std::shared_ptr<service_runtime> svc);

}  // namespace cohort::detail
