#include "cohort/core/entity_persistence.hpp"
#include "cohort/storage/reminder_keys.hpp"

#include "cohort/storage/idempotency.hpp"

#include <msgpack.hpp>

namespace cohort::detail {

namespace {

std::uint64_t read_big_endian(std::string_view s) {
  std::uint64_t v = 0;
  for (unsigned char c : s) v = (v << 8) | c;
  return v;
}

struct snapshot_record {
  std::uint64_t seq = 0;
  std::string state;
  MSGPACK_DEFINE(seq, state);
};

}  // namespace

entity_persistence::entity_persistence(store& db, std::string key, entity_state_box& box, std::size_t snapshot_every,
                                       std::function<bool(const entity_state_box&)> pending)
    : db_(db),
      key_(std::move(key)),
      box_(box),
      snapshot_every_(std::max<std::size_t>(1, snapshot_every)),
      pending_(std::move(pending)) {}

void entity_persistence::update_pending_index(write_batch& batch) {
  if (!pending_) return;
  const bool now = pending_(box_);
  if (now == pending_stored_) return;
  if (now)
    batch.put(keyspace::pending, key_, trace_);  // a resumed saga continues the trace that began it
  else
    batch.erase(keyspace::pending, key_);
  pending_stored_ = now;
}

fetched_entity entity_persistence::fetch(const store& db, const std::string& key, bool pending_index,
                                         bool event_sourced, bool reminders) {
  fetched_entity f;
  if (reminders) {
    const auto index = reminder_index_prefix(key);
    auto scanned = db.scan(keyspace::reminders, index, index, [&](std::string_view k, std::string_view v) {
      f.reminders[std::string(k.substr(index.size()))] = decode_reminder_due(v);
      return true;
    });
    if (!scanned) return f.outcome = scanned.error(), f;
  }
  if (pending_index) {
    auto marked = db.get(keyspace::pending, key);
    if (!marked) return f.outcome = marked.error(), f;
    f.pending_marked = marked->has_value();
  }
  const auto prefix = entity_key(key);
  if (!event_sourced) {
    auto stored = db.get(keyspace::state, prefix);
    if (!stored) return f.outcome = stored.error(), f;
    f.state = std::move(*stored);
    return f;
  }
  auto snap = db.get(keyspace::snapshot, prefix);
  if (!snap) return f.outcome = snap.error(), f;
  if (*snap) {
    try {
      auto h = msgpack::unpack((*snap)->data(), (*snap)->size());
      snapshot_record rec;
      h.get().convert(rec);
      f.snapshot_seq = rec.seq;
      f.snapshot_state = std::move(rec.state);
    } catch (const std::exception&) {
      f.snapshot_unreadable = true;  // apply() reports it
      return f;
    }
  }
  auto scanned = db.scan(keyspace::journal, prefix, cohort::journal_key(key, f.snapshot_seq + 1),
                         [&](std::string_view k, std::string_view v) {
                           f.events.emplace_back(read_big_endian(k.substr(prefix.size())), std::string(v));
                           return true;
                         });
  if (!scanned) f.outcome = scanned.error();
  return f;
}

result<bool> entity_persistence::apply(const fetched_entity& f) {
  if (!f.outcome) return f.outcome.error();
  if (pending_) pending_stored_ = f.pending_marked;
  reminders_stored_ = f.reminders;
  reminder_ops_.clear();
  box_.reset();
  pending_events_.clear();
  erase_ = false;
  image_.reset();
  auto fail = [&](const std::string& what) {
    return error_info{errc::internal, what + " of " + key_ + " in '" + db_.directory() + "' does not decode"};
  };
  if (!box_.event_sourced()) {
    if (f.state && !box_.decode(*f.state)) return fail("stored state");
    return true;
  }
  seq_ = snapshot_seq_ = 0;
  if (f.snapshot_unreadable || (f.snapshot_state && !box_.decode(*f.snapshot_state))) return fail("snapshot");
  if (f.snapshot_state) seq_ = snapshot_seq_ = f.snapshot_seq;
  for (const auto& [seq, event] : f.events) {
    if (!box_.apply_event(event)) return fail("journal event " + std::to_string(seq_ + 1));
    seq_ = seq;
  }
  return true;
}

bool entity_persistence::emit(std::string event) {
  if (!box_.apply_event(event)) return false;
  pending_events_.push_back(std::move(event));
  return true;
}

void entity_persistence::erase() {
  box_.reset();
  pending_events_.clear();
  erase_ = true;
}

void entity_persistence::add_changes(write_batch& batch, std::optional<std::string> encoded) {
  const auto prefix = entity_key(key_);
  if (erase_) {
    batch.erase(keyspace::state, prefix);
    if (box_.event_sourced()) {
      // The journal stays as history; a default snapshot at the current
      // sequence makes recovery start from the reset state.
      batch.put(keyspace::snapshot, prefix, [&] {
        msgpack::sbuffer buf;
        msgpack::pack(buf, snapshot_record{seq_, box_.encode()});
        return std::string(buf.data(), buf.size());
      }());
      snapshot_seq_ = seq_;
    }
    erase_ = false;
    image_.reset();
    update_pending_index(batch);
    write_reminders(batch);
    return;
  }
  update_pending_index(batch);
  write_reminders(batch);
  if (!box_.event_sourced()) {
    std::string state = encoded ? std::move(*encoded) : box_.encode();
    if (image_)
      image_->state.assign(state);  // its buffer reused: no allocation when the size holds
    else
      set_image(state);
    batch.put(keyspace::state, prefix, std::move(state));
    return;
  }
  extend_image(pending_events_);
  for (auto& e : pending_events_) batch.put(keyspace::journal, cohort::journal_key(key_, ++seq_), std::move(e));
  pending_events_.clear();
  if (seq_ - snapshot_seq_ >= snapshot_every_) {
    auto state = box_.encode();
    msgpack::sbuffer buf;
    msgpack::pack(buf, snapshot_record{seq_, state});
    batch.put(keyspace::snapshot, prefix, std::string(buf.data(), buf.size()));
    snapshot_seq_ = seq_;
    set_image(std::move(state));  // the snapshot's encoding: the events before it are in it
  }
}

void entity_persistence::set_image(std::string encoded_state) {
  if (!image_) image_ = std::make_unique<stored_image>();
  image_->state = std::move(encoded_state);
  image_->events.clear();
  image_->event_bytes = 0;
}

void entity_persistence::extend_image(const std::vector<std::string>& events) {
  if (!image_ || events.empty()) return;
  for (const auto& e : events) image_->event_bytes += e.size();
  // Past the state's own size (or a count), replaying the events to undo a
  // failure costs more than encoding the state once: forget, and the next
  // invocation sets it again from an encoding (one per that many events).
  constexpr std::size_t max_events = 256, min_bytes = 4096;
  if (image_->events.size() + events.size() > max_events ||
      image_->event_bytes > std::max(min_bytes, image_->state.size())) {
    image_.reset();
    return;
  }
  image_->events.insert(image_->events.end(), events.begin(), events.end());
}

bool entity_persistence::restore_image() {
  if (!image_ || !box_.decode(image_->state)) return false;
  for (const auto& e : image_->events)
    if (!box_.apply_event(e)) return false;
  return true;
}

bool entity_persistence::has_changes() const {
  return !pending_events_.empty() || erase_ || (pending_ && pending_(box_) != pending_stored_) || !reminder_ops_.empty();
}

void entity_persistence::discard() {
  pending_events_.clear();
  erase_ = false;
  reminder_ops_.clear();
}

void entity_persistence::remind(std::string name, std::uint64_t due_ms, std::string payload) {
  reminder_ops_.push_back({reminder_op::kind::set, std::move(name), due_ms, std::move(payload)});
}

void entity_persistence::cancel_reminder(std::string name) {
  reminder_ops_.push_back({reminder_op::kind::cancel, std::move(name), 0, {}});
}

void entity_persistence::reminder_fired(std::string name, std::uint64_t due_ms) {
  reminder_ops_.push_back({reminder_op::kind::fired, std::move(name), due_ms, {}});
}

std::uint64_t entity_persistence::earliest_new_reminder() const {
  std::uint64_t earliest = 0;
  for (const auto& op : reminder_ops_)
    if (op.what == reminder_op::kind::set && (earliest == 0 || op.due_ms < earliest)) earliest = op.due_ms;
  return earliest;
}

void entity_persistence::write_reminders(write_batch& batch) {
  for (auto& op : reminder_ops_) {
    auto old = reminders_stored_.find(op.name);
    const bool exists = old != reminders_stored_.end();
    if (op.what == reminder_op::kind::fired && (!exists || old->second != op.due_ms)) continue;  // moved or gone
    if (exists) batch.erase(keyspace::reminders, reminder_schedule_key(old->second, key_, op.name));
    if (op.what == reminder_op::kind::set) {
      msgpack::sbuffer buf;
      msgpack::pack(buf, reminder_record{key_, op.name, op.due_ms, std::vector<char>(op.payload.begin(), op.payload.end())});
      batch.put(keyspace::reminders, reminder_schedule_key(op.due_ms, key_, op.name), std::string(buf.data(), buf.size()));
      batch.put(keyspace::reminders, reminder_index_key(key_, op.name), encode_reminder_due(op.due_ms));
      reminders_stored_[op.name] = op.due_ms;
    } else if (exists) {
      batch.erase(keyspace::reminders, reminder_index_key(key_, op.name));
      reminders_stored_.erase(old);
    }
  }
  reminder_ops_.clear();
}

result<std::optional<idempotent_result>> find_idempotent_result(const store& db, const std::string& record_key) {
  auto stored = db.get(keyspace::idempotency, record_key);
  if (!stored) return stored.error();
  return decode_idempotent_record(*stored);
}

result<std::optional<idempotent_result>> decode_idempotent_record(const std::optional<std::string>& stored) {
  if (!stored) return std::optional<idempotent_result>{};
  // Expired (or unreadable: treated as never stored) gives nullopt.
  return decode_idempotent_result(*stored, system_now_ms());
}

void add_idempotent_result(write_batch& batch, const std::string& record_key, const stored_result& r,
                           const std::string& method, const std::string& fingerprint, std::chrono::milliseconds ttl) {
  batch.put(keyspace::idempotency, record_key, encode_idempotent_result({r.is_error, r.payload.str(), method, fingerprint}, ttl));
}

}  // namespace cohort::detail
