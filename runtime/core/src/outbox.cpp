#include "cohort/core/outbox.hpp"

#include <random>
#include <unordered_map>
#include <unordered_set>

#include <spdlog/spdlog.h>

#include "cohort/core/actor_messages.hpp"
#include "cohort/transport/envelope_codec.hpp"

namespace cohort::detail {

namespace {

using clock_type = std::chrono::steady_clock;
using poke_atom = caf::atom_constant<caf::atom("obpoke")>;
using tick_atom = caf::atom_constant<caf::atom("obtick")>;
using delivered_atom = caf::atom_constant<caf::atom("obdeliv")>;
using deleted_atom = caf::atom_constant<caf::atom("obdeleted")>;

/// Deliveries in flight at once, over all subscribers.
constexpr std::size_t window = 256;
/// One delivery's deadline.
constexpr auto delivery_timeout = std::chrono::milliseconds(5000);
/// Retry backoff: doubles from min to max per failed delivery of a record.
constexpr auto backoff_min = std::chrono::milliseconds(20);
constexpr auto backoff_max = std::chrono::milliseconds(2000);
/// Looks for records to (re)deliver at least this often.
constexpr auto tick_every = std::chrono::milliseconds(100);

void put_big_endian(std::string& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}

struct relay_state {
  struct retry {
    int attempts = 0;
    clock_type::time_point not_before;
  };
  /// Records being delivered, or acknowledged and being deleted.
  std::unordered_set<std::string> in_flight;
  std::unordered_map<std::string, retry> retries;
  std::uint64_t next_id = 1;
  static inline const char* name = "cohort.outbox";
};

using relay_actor = caf::stateful_actor<relay_state>;

void deliver(relay_actor* self, const std::shared_ptr<service_runtime>& svc, std::string key, outbox_record rec) {
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
  h.deadline_ms = static_cast<std::uint32_t>(delivery_timeout.count());
  auto me = caf::actor_cast<caf::actor>(self);
  auto limits = svc->limits;
  self->state.in_flight.insert(key);
  svc->calls->route(std::make_shared<request>(
      std::move(h), std::move(rec.payload), clock_type::now() + delivery_timeout,
      [me, key = std::move(key), limits](const envelope& reply, std::string&& payload) {
        // Acknowledged: a result, or a business error that a redelivery
        // would only repeat. Not yet: anything about this attempt, or a
        // subscriber that is not reachable right now.
        std::string why;
        bool acked = reply.kind != message_kind::error;
        if (!acked) {
          auto err = decode_error_payload(payload, limits);
          acked = !err.transient() && !err.is(errc::unknown_service);
          why = err.code + ": " + err.message;
        }
        caf::anon_send(me, delivered_atom::value, key, acked, why);
      }));
}

/// Delivers every record that is not in flight or waiting out a backoff, up to the window.
void scan(relay_actor* self, const std::shared_ptr<service_runtime>& svc) {
  auto& st = self->state;
  if (st.in_flight.size() >= window) return;
  auto now = clock_type::now();
  std::vector<std::pair<std::string, outbox_record>> due;
  auto scanned = svc->db->scan(keyspace::outbox, "", "", [&](std::string_view k, std::string_view v) {
    std::string key(k);
    if (st.in_flight.count(key)) return true;
    if (auto r = st.retries.find(key); r != st.retries.end() && r->second.not_before > now) return true;
    auto rec = decode_outbox_record(v);
    if (!rec) {
      spdlog::error("{}: outbox record does not decode; left in place: {}", svc->def.name, rec.error().message);
      return true;
    }
    due.emplace_back(std::move(key), std::move(*rec));
    return st.in_flight.size() + due.size() < window;
  });
  if (!scanned) spdlog::warn("{}: outbox scan failed: {}", svc->def.name, scanned.error().message);
  for (auto& [key, rec] : due) deliver(self, svc, std::move(key), std::move(rec));
}

caf::behavior outbox_relay(relay_actor* self, std::shared_ptr<service_runtime> svc) {
  svc->set_relay(caf::actor_cast<caf::actor>(self));
  self->send(self, poke_atom::value);
  self->delayed_send(self, tick_every, tick_atom::value);
  return {
      [=](poke_atom) { scan(self, svc); },
      [=](tick_atom) {
        scan(self, svc);
        self->delayed_send(self, tick_every, tick_atom::value);
      },
      [=](delivered_atom, const std::string& key, bool acked, const std::string& why) {
        auto& st = self->state;
        if (!acked) {
          st.in_flight.erase(key);
          auto& r = st.retries[key];
          r.attempts++;
          auto delay = std::min<std::chrono::milliseconds>(backoff_max, backoff_min * (1 << std::min(r.attempts, 10)));
          r.not_before = clock_type::now() + delay;
          svc->event_redeliveries++;
          return;
        }
        if (!why.empty()) spdlog::warn("{}: event rejected by its subscriber, dropped: {}", svc->def.name, why);
        st.retries.erase(key);
        svc->events_delivered++;
        // Stays in flight until the delete lands, so a scan cannot send it again.
        write_batch batch;
        batch.erase(keyspace::outbox, key);
        auto me = caf::actor_cast<caf::actor>(self);
        svc->db->commit(std::move(batch), [me, key](const result<bool>&) { caf::anon_send(me, deleted_atom::value, key); });
      },
      [=](deleted_atom, const std::string& key) {
        self->state.in_flight.erase(key);
        scan(self, svc);
      },
  };
}

}  // namespace

std::vector<std::pair<std::string, std::string>> make_outbox_records(service_runtime& svc, const std::string& topic,
                                                                     std::string event, const std::string& key) {
  std::vector<std::pair<std::string, std::string>> out;
  auto it = svc.subscribers.find(topic);
  if (it == svc.subscribers.end()) return out;  // nobody listens
  auto seq = svc.next_event.fetch_add(1, std::memory_order_relaxed) + 1;
  char id[64];
  std::snprintf(id, sizeof id, "/%016llx-%llu", static_cast<unsigned long long>(svc.event_epoch),
                static_cast<unsigned long long>(seq));
  auto event_id = svc.def.name + id;
  for (const auto& target : it->second) {
    std::string k = target.service + "." + target.method;
    k.push_back('\0');
    put_big_endian(k, svc.event_epoch);
    put_big_endian(k, seq);
    msgpack::sbuffer buf;
    msgpack::pack(buf, outbox_record{target.service, target.method, key, event_id, event});
    out.emplace_back(std::move(k), std::string(buf.data(), buf.size()));
  }
  svc.events_published += out.size();
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

void service_runtime::poke_outbox() {
  caf::actor relay;
  {
    std::lock_guard<std::mutex> guard(mutex_);
    relay = relay_;
  }
  if (relay) caf::anon_send(relay, poke_atom::value);
}

}  // namespace cohort::detail
