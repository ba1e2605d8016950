#include "cohort/core/outbox.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "cohort/log/log.hpp"
#include <spdlog/spdlog.h>

#include "cohort/core/actor_messages.hpp"
#include "cohort/core/event_hub.hpp"
#include "cohort/storage/big_endian.hpp"
#include "cohort/storage/outbox_key.hpp"
#include "cohort/transport/envelope_codec.hpp"

namespace cohort::detail {

namespace {

using clock_type = std::chrono::steady_clock;
using poke_atom = caf::atom_constant<caf::atom("obpoke")>;
using tick_atom = caf::atom_constant<caf::atom("obtick")>;
using delivered_atom = caf::atom_constant<caf::atom("obdeliv")>;
using deleted_atom = caf::atom_constant<caf::atom("obdeleted")>;
using scanned_atom = caf::atom_constant<caf::atom("obscanned")>;

/// Deliveries in flight at once, over all subscribers.
constexpr std::size_t window = 256;
/// One delivery's deadline.
constexpr auto delivery_timeout = std::chrono::milliseconds(5000);
/// Retry backoff of a subscriber: doubles from min to max per failed delivery.
constexpr auto backoff_min = std::chrono::milliseconds(20);
constexpr auto backoff_max = std::chrono::milliseconds(2000);
/// A record whose subscriber entity is quarantined is tried again after this.
constexpr auto quarantine_retry = std::chrono::milliseconds(5000);
/// Such records held back one by one at most; beyond, their subscriber waits.
constexpr std::size_t max_held = 4096;
/// Looks for records to (re)deliver at least this often.
constexpr auto tick_every = std::chrono::milliseconds(100);
/// Every this many ticks a scan starts from the beginning of every
/// subscriber's range, whatever the cursors say (a record written with an
/// older epoch after a clock step back would otherwise wait behind them).
constexpr int full_scan_every = 100;

/// The subscriber part of an outbox key: "<service>.<method>\0".
std::string prefix_of(std::string_view key) { return std::string(outbox_subscriber_prefix(key)); }

struct relay_state {
  struct backoff {
    int attempts = 0;
    clock_type::time_point not_before;
  };
  /// Records being delivered, or acknowledged and being deleted.
  std::unordered_set<std::string> in_flight;
  /// Acknowledged records whose delete failed (disk full): deleted again on
  /// the next tick, never delivered again meanwhile.
  std::unordered_set<std::string> undeleted;
  /// Records whose subscriber entity is quarantined: not tried again before the time.
  std::unordered_map<std::string, clock_type::time_point> held;
  /// Subscribers that failed a delivery wait out a backoff, all their records with them.
  std::map<std::string, backoff> paused;
  /// Per subscriber, where a scan starts: every key below it is deleted, so
  /// a scan never walks over the tombstones of delivered events again.
  std::map<std::string, std::string> cursor;
  /// Per subscriber, the greatest key this relay deleted (new keys sort above it).
  std::map<std::string, std::string> deleted_up_to;
  /// The subscribers' key prefixes ("<service>.<method>\0"), fixed at start.
  std::vector<std::string> prefixes;
  /// Undelivered records seen by scans -> their publication time (Unix ms), for
  /// the age of the oldest; at most max_tracked (the oldest are what matter).
  std::unordered_map<std::string, std::uint64_t> waiting_since;
  bool scanning = false;   ///< a scan is out on the store's reader thread
  bool rescan = false;     ///< and another was asked for meanwhile
  /// What moved cursors back while a scan was out: its answer, read before
  /// that, must not move them forward past it again. `restart`: every
  /// cursor was cleared (records arrived from elsewhere, a full scan);
  /// `lowered`: per subscriber, the smallest key written meanwhile.
  bool restart = false;
  std::map<std::string, std::string> lowered;
  int ticks = 0;
  std::size_t scans = 0;
  std::uint64_t next_id = 1;
  static inline const char* name = "cohort.outbox";
};

using relay_actor = caf::stateful_actor<relay_state>;

constexpr std::size_t max_tracked = 10000;

/// Publishes the age of the oldest undelivered event the relay knows of.
void update_oldest(relay_state& st, service_runtime& svc) {
  std::uint64_t oldest = 0;
  for (const auto& [key, at] : st.waiting_since)
    if (at != 0 && (oldest == 0 || at < oldest)) oldest = at;
  svc.outbox_oldest_ms.store(oldest, std::memory_order_relaxed);
}

void deliver(relay_actor* self, const std::shared_ptr<service_runtime>& svc, std::string key, outbox_record rec) {
  if (rec.service == event_log_target) {
    // For the event log: its hub appends it and deletes the record in one
    // write, then answers log_done (a hub that is restarting: retried).
    self->state.in_flight.insert(key);
    if (auto hub = svc->event_hub())
      self->send(hub, log_append_atom::value, std::move(key), std::move(rec.method), std::move(rec.key),
                 std::move(rec.event_id), std::move(rec.payload), std::move(rec.traceparent), rec.published_ms);
    else
      self->send(self, log_done_atom::value, std::move(key), false, std::string("the event hub is not running"));
    return;
  }
  envelope h;
  h.kind = message_kind::request;
  h.id = self->state.next_id++;
  h.service = std::move(rec.service);
  h.method = std::move(rec.method);
  h.key = std::move(rec.key);
  // One key per (event, subscriber): two subscriptions in one service are two
  // operations, and each delivery's retries must find only its own record.
  h.idempotency_key = rec.event_id + "/" + h.method;
  h.trace = std::move(rec.event_id);
  h.traceparent = std::move(rec.traceparent);
  if (h.traceparent.size() == 55) h.trace = h.traceparent.substr(3, 32);
  h.deadline_ms = static_cast<std::uint32_t>(delivery_timeout.count());
  auto me = caf::actor_cast<caf::actor>(self);
  auto limits = svc->limits;
  self->state.in_flight.insert(key);
  svc->calls->route(std::make_shared<request>(
      std::move(h), std::move(rec.payload), clock_type::now() + delivery_timeout,
      [me, key = std::move(key), limits](const envelope& reply, payload_bytes&& payload) {
        // Acknowledged: a result, or a business error that a redelivery
        // would only repeat. Not yet: anything about this attempt, or a
        // subscriber that is not reachable right now.
        // A quarantined subscriber entity holds back its own records only.
        std::string why;
        bool acked = reply.kind != message_kind::error;
        bool this_record_only = false;
        if (!acked) {
          auto err = decode_error_payload(payload, limits);
          this_record_only = err.is(errc::entity_quarantined);
          acked = !err.transient() && !err.is(errc::unknown_service) && !this_record_only;
          why = err.code + ": " + err.message;
        }
        caf::anon_send(me, delivered_atom::value, key, acked, this_record_only, why);
      }));
}

/// Asks the store's reader thread for the records that are due: per
/// subscriber that is not waiting out a backoff, from its cursor, skipping
/// those in flight, up to the free part of the window. The actor never
/// iterates the store itself.
void scan(relay_actor* self, const std::shared_ptr<service_runtime>& svc) {
  auto& st = self->state;
  if (st.scanning) {
    st.rescan = true;
    return;
  }
  if (st.in_flight.size() >= window) return;
  auto now = clock_type::now();
  std::vector<std::pair<std::string, std::string>> ranges;  // (prefix, start)
  // Start at another subscriber each time: a busy one cannot keep the window to itself.
  const auto n = st.prefixes.size();
  const auto first = n ? st.scans++ % n : 0;
  for (std::size_t i = 0; i < n; ++i) {
    const auto& p = st.prefixes[(first + i) % n];
    if (auto b = st.paused.find(p); b != st.paused.end() && b->second.not_before > now) continue;
    auto c = st.cursor.find(p);
    ranges.emplace_back(p, c == st.cursor.end() ? p : c->second);
  }
  if (ranges.empty()) return;
  st.scanning = true;
  st.rescan = false;
  const std::size_t limit = window - st.in_flight.size();
  auto skip = std::make_shared<std::unordered_set<std::string>>(st.in_flight);
  for (auto it = st.held.begin(); it != st.held.end();)
    if (it->second <= now) {
      it = st.held.erase(it);
    } else {
      skip->insert(it->first);
      ++it;
    }
  svc->db->read_after_writes([me = caf::actor_cast<caf::actor>(self), ranges = std::move(ranges), limit,
                              skip](const store& db) {
    auto out = std::make_shared<scanned_records>();
    for (const auto& [prefix, start] : ranges) {
      auto& first = out->first_seen[prefix];
      auto scanned = db.scan(keyspace::outbox, prefix, start, [&](std::string_view k, std::string_view v) {
        std::string key(k);
        if (!first) first = key;
        if (skip->count(key)) return true;
        out->records.emplace_back(std::move(key), std::string(v));
        return out->records.size() < limit;
      });
      if (!scanned) out->error = scanned.error();
      if (out->records.size() >= limit) break;
    }
    caf::anon_send(me, scanned_atom::value, scanned_ptr(std::move(out)));
  });
}

void on_scanned(relay_actor* self, const std::shared_ptr<service_runtime>& svc, const scanned_records& r) {
  auto& st = self->state;
  st.scanning = false;
  if (r.error) log::get("outbox")->warn("{}: outbox scan failed: {}", svc->def.name, r.error->message);
  // Move each scanned subscriber's cursor up to its smallest live key, or,
  // when none is left, to the greatest key this relay deleted there (new
  // records sort above it). Subscribers not scanned keep theirs.
  if (!r.error)
    for (const auto& [prefix, first] : r.first_seen) {
      auto& c = st.cursor[prefix];
      if (first) {
        c = *first;
      } else if (auto high = st.deleted_up_to.find(prefix); high != st.deleted_up_to.end() && c < high->second) {
        c = high->second;
      }
      if (c.empty()) st.cursor.erase(prefix);
    }
  if (st.restart) {
    st.cursor.clear();
  } else {
    for (const auto& [prefix, key] : st.lowered)
      if (auto c = st.cursor.find(prefix); c != st.cursor.end() && key < c->second) c->second = key;
  }
  st.restart = false;
  st.lowered.clear();
  for (const auto& [key, bytes] : r.records) {
    if (st.in_flight.count(key) || st.in_flight.size() >= window) continue;
    auto rec = decode_outbox_record(bytes);
    if (!rec) {
      log::get("outbox")->error("{}: outbox record does not decode; left in place: {}", svc->def.name, rec.error().message);
      continue;
    }
    if (st.waiting_since.size() < max_tracked) st.waiting_since.emplace(key, rec->published_ms);
    deliver(self, svc, key, std::move(*rec));
  }
  update_oldest(st, *svc);
  if (st.rescan) scan(self, svc);
}

/// Deletes an acknowledged record. It stays in flight until the delete has
/// landed, so that no scan sends it again; a failed delete is retried.
void erase_record(relay_actor* self, const std::shared_ptr<service_runtime>& svc, const std::string& key) {
  write_batch batch;
  batch.erase(keyspace::outbox, key);
  auto me = caf::actor_cast<caf::actor>(self);
  svc->db->commit(std::move(batch), [me, key](const result<bool>& done) {
    caf::anon_send(me, deleted_atom::value, key, static_cast<bool>(done),
                   done ? std::string() : done.error().message);
  });
}

/// A failed delivery (or log append): the record leaves the window and its
/// subscriber waits out a backoff that doubles with each failure.
void back_off(relay_state& st, service_runtime& svc, const std::string& key) {
  st.in_flight.erase(key);
  auto& b = st.paused[prefix_of(key)];
  b.attempts++;
  b.not_before = clock_type::now() + std::min<std::chrono::milliseconds>(backoff_max, backoff_min * (1 << std::min(b.attempts, 10)));
  svc.event_redeliveries++;
}

/// The record is gone from the store: nothing of it is kept, and new records
/// of its subscriber sort above it.
void forget_deleted(relay_actor* self, const std::shared_ptr<service_runtime>& svc, const std::string& key) {
  auto& st = self->state;
  st.in_flight.erase(key);
  st.waiting_since.erase(key);
  update_oldest(st, *svc);
  auto& high = st.deleted_up_to[prefix_of(key)];
  if (high < key) high = key;
  scan(self, svc);
}

caf::behavior outbox_relay(relay_actor* self, std::shared_ptr<service_runtime> svc) {
  svc->set_relay(caf::actor_cast<caf::actor>(self));
  std::set<std::string> prefixes;
  for (const auto& [topic, targets] : svc->subscribers)
    for (const auto& t : targets) prefixes.insert(t.service + "." + t.method + '\0');
  if (svc->cfg.events.enabled) prefixes.insert(std::string(event_log_target) + '\0');
  self->state.prefixes.assign(prefixes.begin(), prefixes.end());
  self->send(self, poke_atom::value, std::vector<std::string>());
  self->delayed_send(self, tick_every, tick_atom::value);
  return {
      [=](poke_atom, const std::vector<std::string>& written) {
        // A record written below where its subscriber's scan starts (another
        // entity's event, numbered earlier, written later) moves the start back;
        // an empty key (records arrived from elsewhere: a shard handed over)
        // sends every scan back to the start.
        auto& st = self->state;
        for (const auto& key : written) {
          if (key.empty()) {
            st.cursor.clear();
            st.restart = st.restart || st.scanning;
            break;
          }
          const auto prefix = prefix_of(key);
          if (auto c = st.cursor.find(prefix); c != st.cursor.end() && key < c->second) c->second = key;
          if (st.scanning) {
            auto [low, fresh] = st.lowered.emplace(prefix, key);
            if (!fresh && key < low->second) low->second = key;
          }
        }
        scan(self, svc);
      },
      [=](log_done_atom, const std::string& key, bool ok, const std::string& why) {
        auto& st = self->state;
        if (!ok) {
          // Not in the log: tried again after a backoff, like a failed delivery.
          back_off(st, *svc, key);
          log::get("outbox")->debug("{}: event log append deferred: {}", svc->def.name, why);
          return;
        }
        // The hub's write deleted the record: as after our own delete.
        st.paused.erase(prefix_of(key));
        forget_deleted(self, svc, key);
      },
      [=](tick_atom) {
        auto& st = self->state;
        if (++st.ticks % full_scan_every == 0) {
          st.cursor.clear();
          st.restart = st.restart || st.scanning;
        }
        for (const auto& key : st.undeleted) erase_record(self, svc, key);
        st.undeleted.clear();
        scan(self, svc);
        self->delayed_send(self, tick_every, tick_atom::value);
      },
      [=](scanned_atom, const scanned_ptr& r) { on_scanned(self, svc, *r); },
      [=](delivered_atom, const std::string& key, bool acked, bool this_record_only, const std::string& why) {
        auto& st = self->state;
        auto prefix = prefix_of(key);
        if (!acked && this_record_only) {
          // Kept out of scans for a while; the others of its subscriber go on.
          st.in_flight.erase(key);
          if (st.held.size() < max_held) {
            st.held[key] = clock_type::now() + quarantine_retry;
          } else {
            st.paused[prefix] = {1, clock_type::now() + quarantine_retry};
          }
          svc->event_redeliveries++;
          return;
        }
        if (!acked) return back_off(st, *svc, key);
        if (!why.empty()) log::get("outbox")->warn("{}: event rejected by its subscriber, dropped: {}", svc->def.name, why);
        st.paused.erase(prefix);
        svc->events_delivered++;
        erase_record(self, svc, key);
      },
      [=](deleted_atom, const std::string& key, bool ok, const std::string& why) {
        auto& st = self->state;
        if (!ok) {
          // Delivered but still stored: kept out of scans and deleted again
          // at the next tick (a redelivery would be dropped by its
          // idempotency key, but it is work the subscriber need not do).
          log::get("outbox")->warn("{}: an acknowledged outbox record could not be deleted (retrying): {}", svc->def.name, why);
          st.undeleted.insert(key);
          return;
        }
        forget_deleted(self, svc, key);
      },
  };
}

}  // namespace

std::vector<std::pair<std::string, std::string>> make_outbox_records(service_runtime& svc, const std::string& topic,
                                                                     std::string event, const std::string& key,
                                                                     const std::string& publisher,
                                                                     const std::string& traceparent) {
  std::vector<std::pair<std::string, std::string>> out;
  auto it = svc.subscribers.find(topic);
  const bool logged = svc.cfg.events.enabled;
  if (it == svc.subscribers.end() && !logged) return out;  // nobody listens
  auto seq = svc.next_event.fetch_add(1, std::memory_order_relaxed) + 1;
  char id[64];
  std::snprintf(id, sizeof id, "/%016llx-%llu", static_cast<unsigned long long>(svc.event_epoch),
                static_cast<unsigned long long>(seq));
  auto event_id = svc.def.name + id;
  const auto now = wall_clock_ms();
  // Keys (storage/outbox_key.hpp): by subscriber, then publication order;
  // the publisher at the end lets a record move with its entity's shard.
  auto add = [&](const std::string& service, const std::string& method, const std::string& subscriber) {
    auto k = outbox_key(subscriber, svc.event_epoch, seq, publisher);
    msgpack::sbuffer buf;
    msgpack::pack(buf, outbox_record{service, method, key, event_id, event, traceparent, now});
    out.emplace_back(std::move(k), std::string(buf.data(), buf.size()));
  };
  // The event log's record: one key range for every topic (the topic is its
  // method), so the log's order follows the publications'.
  if (logged) add(std::string(event_log_target), topic, std::string(event_log_target));
  if (it != svc.subscribers.end())
    for (const auto& target : it->second) add(target.service, target.method, target.service + "." + target.method);
  svc.events_published += out.size() - (logged ? 1 : 0);  // the log's record is counted as logged, once appended
  return out;
}

result<outbox_record> decode_outbox_record(std::string_view bytes) {
  try {
    auto h = msgpack::unpack(bytes.data(), bytes.size());
    outbox_record r;
    h.get().convert(r);
    return r;
  } catch (const std::exception& e) {
    return error_info{errc::internal, e.what()};
  }
}

caf::actor spawn_outbox_relay(caf::event_based_actor* parent, std::shared_ptr<service_runtime> svc) {
  return parent->spawn<caf::monitored>(outbox_relay, std::move(svc));
}

void service_runtime::set_relay(caf::actor relay) {
  std::lock_guard<std::mutex> guard(mutex_);
  relay_ = std::move(relay);
}

void service_runtime::poke_outbox(std::vector<std::string> written) {
  caf::actor relay;
  {
    std::lock_guard<std::mutex> guard(mutex_);
    relay = relay_;
  }
  if (relay) caf::anon_send(relay, poke_atom::value, std::move(written));
}

}  // namespace cohort::detail
