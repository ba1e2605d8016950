#include "cohort/core/reminders.hpp"

#include <limits>
#include <unordered_set>

#include <caf/all.hpp>

#include "cohort/actors/reminder.hpp"
#include "cohort/core/actor_messages.hpp"
#include "cohort/log/log.hpp"
#include "cohort/storage/reminder_keys.hpp"
#include "cohort/transport/envelope_codec.hpp"

namespace cohort::detail {

struct due_reminders {
  std::vector<std::pair<std::string, reminder_record>> due;  ///< (schedule key, reminder)
  std::optional<error_info> error;
  std::optional<std::uint64_t> first_stored;  ///< the due time of the first reminder seen still stored
  std::uint64_t scanned_to = 0;                ///< the scan covered every due time below this
};
using due_ptr = std::shared_ptr<const due_reminders>;

}  // namespace cohort::detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cohort::detail::due_ptr)

namespace cohort::detail {

namespace {

using clock_type = std::chrono::steady_clock;
using poke_atom = caf::atom_constant<caf::atom("rempoke")>;
using found_atom = caf::atom_constant<caf::atom("remfound")>;
using fired_atom = caf::atom_constant<caf::atom("remfired")>;
using wake_atom = caf::atom_constant<caf::atom("remwake")>;

/// Reminders delivered at once, at most (the rest on the next round).
constexpr std::size_t batch_limit = 256;
constexpr auto delivery_timeout = std::chrono::seconds(30);
/// How often a scan starts from the beginning of the schedule all the same.
constexpr auto full_scan_every = std::chrono::seconds(60);

struct scheduler_state {
  std::unordered_set<std::string> in_flight;  ///< schedule keys being delivered
  bool scanning = false;
  bool rescan = false;
  /// Where the next scan starts (a due time): the first reminder the last
  /// scan found still stored, or the time it scanned to. The fired and
  /// cancelled reminders before it are deleted keys, which RocksDB would
  /// step over on every scan until a compaction drops them.
  std::uint64_t from_due = 0;
  /// The earliest due time announced while a scan was under way: that
  /// scan may have read the store before the write it announces.
  std::uint64_t lowered = std::numeric_limits<std::uint64_t>::max();
  clock_type::time_point next_full_scan{};
  std::uint64_t next_id = 1;
  static inline const char* name = "cohort.reminders";
};
using scheduler_actor = caf::stateful_actor<scheduler_state>;

void scan(scheduler_actor* self, const std::shared_ptr<service_runtime>& svc) {
  auto& st = self->state;
  if (st.scanning) {
    st.rescan = true;
    return;
  }
  st.scanning = true;
  st.rescan = false;
  const auto now = svc->now_ms();
  // Now and then from the very start all the same, for a write no poke
  // announced: one long scan a minute is cheap insurance.
  std::uint64_t from = st.from_due;
  if (const auto t = clock_type::now(); t >= st.next_full_scan) from = 0, st.next_full_scan = t + full_scan_every;
  auto skip = std::make_shared<const std::unordered_set<std::string>>(st.in_flight);
  svc->db->read_after_writes([me = caf::actor_cast<caf::actor>(self), now, from, skip](const store& db) {
    auto out = std::make_shared<due_reminders>();
    out->scanned_to = now + 1;
    auto scanned = db.scan(keyspace::reminders, reminder_schedule_prefix,
                           std::string(reminder_schedule_prefix) + encode_reminder_due(from),
                           [&](std::string_view k, std::string_view v) {
                             // Every key here is due: the scan ends at now + 1 (below).
                             if (!out->first_stored) out->first_stored = reminder_schedule_due(k);
                             std::string key(k);
                             if (skip->count(key)) return true;
                             try {
                               auto h = msgpack::unpack(v.data(), v.size());
                               reminder_record r;
                               h.get().convert(r);
                               out->due.emplace_back(std::move(key), std::move(r));
                             } catch (const std::exception& e) {
                               log::get("reminders")->error("a stored reminder does not decode; left in place: {}", e.what());
                             }
                             return out->due.size() < batch_limit;
                           },
                           // Up to now: the deleted (fired, cancelled) reminders not yet due are not stepped over.
                           std::string(reminder_schedule_prefix) + encode_reminder_due(now + 1));
    if (!scanned) out->error = scanned.error();
    caf::anon_send(me, found_atom::value, due_ptr(std::move(out)));
  });
}

void deliver(scheduler_actor* self, const std::shared_ptr<service_runtime>& svc, std::string schedule_key,
             reminder_record r) {
  envelope h;
  h.kind = message_kind::request;
  h.id = self->state.next_id++;
  h.service = svc->def.name;
  h.method = reminder_method;
  h.key = r.key;
  h.caller = "cohort.reminders";
  h.deadline_ms = static_cast<std::uint32_t>(std::chrono::milliseconds(delivery_timeout).count());
  self->state.in_flight.insert(schedule_key);
  auto me = caf::actor_cast<caf::actor>(self);
  svc->calls->route(std::make_shared<request>(
      std::move(h), pack(reminder{r.name, r.due_ms, std::move(r.payload)}), clock_type::now() + delivery_timeout,
      [me, schedule_key = std::move(schedule_key)](const envelope&, payload_bytes&&) {
        // Whatever the answer: handled, the entity removed it; not, it is still
        // stored and the next round delivers it again.
        caf::anon_send(me, fired_atom::value, schedule_key);
      }));
}

caf::behavior scheduler(scheduler_actor* self, std::shared_ptr<service_runtime> svc) {
  svc->set_reminder_scheduler(caf::actor_cast<caf::actor>(self));
  const auto poll = std::max<std::chrono::milliseconds>(std::chrono::milliseconds(5),
                                                        std::min<std::chrono::milliseconds>(svc->cfg.resume_every,
                                                                                            std::chrono::milliseconds(1000)));
  self->send(self, wake_atom::value);
  return {
      [=](wake_atom) {
        scan(self, svc);
        self->delayed_send(self, poll, wake_atom::value);
      },
      [=](poke_atom, std::uint64_t earliest_due) {
        auto& st = self->state;
        st.from_due = std::min(st.from_due, earliest_due);
        if (st.scanning) st.lowered = std::min(st.lowered, earliest_due);
        scan(self, svc);
      },
      [=](found_atom, const due_ptr& found) {
        auto& st = self->state;
        st.scanning = false;
        if (found->error) log::get("reminders")->warn("{}: reminder scan failed: {}", svc->def.name, found->error->message);
        else st.from_due = found->first_stored ? *found->first_stored : found->scanned_to;
        st.from_due = std::min(st.from_due, st.lowered);
        st.lowered = std::numeric_limits<std::uint64_t>::max();
        for (const auto& [key, r] : found->due)
          if (!st.in_flight.count(key)) deliver(self, svc, key, r);
        // A full batch means more may be due now.
        if (st.rescan || found->due.size() >= batch_limit) scan(self, svc);
      },
      [=](fired_atom, const std::string& schedule_key) { self->state.in_flight.erase(schedule_key); },
  };
}

}  // namespace

caf::actor spawn_reminder_scheduler(caf::event_based_actor* parent, std::shared_ptr<service_runtime> svc) {
  return parent->spawn<caf::monitored>(scheduler, std::move(svc));
}

void service_runtime::set_reminder_scheduler(caf::actor scheduler) {
  std::lock_guard<std::mutex> guard(mutex_);
  reminder_scheduler_ = std::move(scheduler);
}

namespace {
using poke_reminders_atom = caf::atom_constant<caf::atom("rempoke")>;
}

void service_runtime::poke_reminders(std::uint64_t earliest_due) {
  caf::actor s;
  {
    std::lock_guard<std::mutex> guard(mutex_);
    s = reminder_scheduler_;
  }
  if (s) caf::anon_send(s, poke_reminders_atom::value, earliest_due);
}

}  // namespace cohort::detail
