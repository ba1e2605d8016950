// entity_persistence: how one entity's state lives in its service's store.
// Plain entities keep one value in the `state` keyspace; event-sourced ones
// append events to the `journal` and write a `snapshot` every N events (keys:
// cohort::entity_key and cohort::journal_key).
// Not thread-safe: owned by the entity's actor.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cohort/actors/service_definition.hpp"
#include "cohort/storage/idempotency.hpp"
#include "cohort/storage/store.hpp"
#include "cohort/transport/payload_bytes.hpp"

namespace cohort::detail {

/// What an entity's activation reads from the store, read anywhere (the
/// store's reader thread) and applied by the entity's actor.
struct fetched_entity {
  result<bool> outcome = true;               ///< a read that failed: the error
  bool pending_marked = false;               ///< the pending index holds the entity
  std::optional<std::string> state;          ///< plain entities: the stored state
  std::optional<std::string> snapshot_state;  ///< event-sourced: the latest snapshot's state
  std::uint64_t snapshot_seq = 0;             ///< and the sequence it was taken at
  bool snapshot_unreadable = false;           ///< a snapshot is stored but does not decode
  std::vector<std::pair<std::uint64_t, std::string>> events;  ///< event-sourced: the journal after it
  std::map<std::string, std::uint64_t> reminders;  ///< the entity's reminders: name -> due (Unix ms)
};

class entity_persistence {
 public:
  /// `pending` (may be empty) says whether the state has unfinished work; such
  /// entities are indexed in the `pending` keyspace under their plain key.
  entity_persistence(store& db, std::string key, entity_state_box& box, std::size_t snapshot_every,
                     std::function<bool(const entity_state_box&)> pending = {});

  /// Loads the state: the stored value, or the latest snapshot plus the journal after it.
  [[nodiscard]] result<bool> load() {
    return apply(fetch(db_, key_, static_cast<bool>(pending_), box_.event_sourced(), reminders_));
  }
  /// The service keeps reminders: activation reads this entity's.
  void enable_reminders() { reminders_ = true; }

  /// Reads what load() needs; touches nothing of an entity (runs off its actor).
  [[nodiscard]] static fetched_entity fetch(const store& db, const std::string& key, bool pending_index,
                                            bool event_sourced, bool reminders = false);
  /// Replaces the state with what fetch() read.
  [[nodiscard]] result<bool> apply(const fetched_entity& f);

  /// Applies an event to the state now and keeps it for the next batch.
  [[nodiscard]] bool emit(std::string event);
  /// Resets the state and deletes it with the next batch.
  void erase();

  /// Adds this invocation's changes to `batch`: the events (and a snapshot
  /// when one is due), or the state itself, or its deletion. `encoded` is the
  /// state's encoding when the caller has it already.
  void add_changes(write_batch& batch, std::optional<std::string> encoded = std::nullopt);
  /// True when the next batch has something besides the state itself: events,
  /// a deletion, or a change of the pending index.
  [[nodiscard]] bool has_changes() const;
  /// Forgets the changes of an invocation that failed (the caller reloads).
  void discard();
  /// The traceparent of the request at work: a pending marker written now
  /// keeps it, so that the resumed work continues the same trace.
  void set_trace(std::string_view traceparent) { trace_.assign(traceparent.data(), traceparent.size()); }

  /// Reminders, written with the next batch: schedule (or move) one, cancel
  /// one, and remove one that fired and was handled (only if it was not
  /// moved meanwhile).
  void remind(std::string name, std::uint64_t due_ms, std::string payload);
  void cancel_reminder(std::string name);
  void reminder_fired(std::string name, std::uint64_t due_ms);
  /// The earliest due time scheduled by the changes not yet written (0: none).
  [[nodiscard]] std::uint64_t earliest_new_reminder() const;

  /// The stored image: the state as the store holds it once the batches
  /// queued so far land (plain entities: the encoding last written; event-
  /// sourced ones: an encoding of the state plus the events journaled since).
  /// A failed invocation is rolled back to it, and a plain entity's state is
  /// compared with it to skip writing what the store already holds, so that
  /// a call does not encode the whole state before it runs. Unknown after a
  /// load, an erase or hibernation (memory), and for an event-sourced entity
  /// once the events since grow past a bound: the caller then sets it from an
  /// encoding of the state while no other invocation has changed it.
  [[nodiscard]] bool has_image() const noexcept { return image_ != nullptr; }
  void set_image(std::string encoded_state);
  void forget_image() noexcept { image_.reset(); }
  /// Replaces the state with the stored image; false when there is none or it does not decode.
  [[nodiscard]] bool restore_image();
  /// Plain entities: the encoding the store holds, when known (else nullptr).
  [[nodiscard]] const std::string* stored_state() const noexcept {
    return image_ && !box_.event_sourced() ? &image_->state : nullptr;
  }

  [[nodiscard]] std::uint64_t sequence() const noexcept { return seq_; }
  [[nodiscard]] const std::string& key() const noexcept { return key_; }

 private:
  store& db_;
  std::string key_;
  entity_state_box& box_;
  std::size_t snapshot_every_;
  std::uint64_t seq_ = 0;            ///< last journaled event
  std::uint64_t snapshot_seq_ = 0;   ///< sequence of the latest snapshot
  std::vector<std::string> pending_events_;
  bool erase_ = false;
  struct stored_image {
    std::string state;                ///< an encoding of the state
    std::vector<std::string> events;  ///< event-sourced: journaled after `state`
    std::size_t event_bytes = 0;
  };
  /// Allocated only while known: a hibernated entity carries one pointer.
  std::unique_ptr<stored_image> image_;
  /// Adds the events just journaled to the image, or forgets it past the bound.
  void extend_image(const std::vector<std::string>& events);
  std::function<bool(const entity_state_box&)> pending_;
  std::string trace_;  ///< traceparent of the request at work: kept with the pending marker
  bool pending_stored_ = false;  ///< the pending index holds this entity
  void update_pending_index(write_batch& batch);
  bool reminders_ = false;
  std::map<std::string, std::uint64_t> reminders_stored_;  ///< name -> due, as in the store
  struct reminder_op {
    enum class kind { set, cancel, fired } what;
    std::string name;
    std::uint64_t due_ms = 0;
    std::string payload;
  };
  std::vector<reminder_op> reminder_ops_;
  void write_reminders(write_batch& batch);
};

/// A stored result of a request with an idempotency key.
struct stored_result {
  bool is_error = false;
  /// The reply payload (a result may still be a value: see typed_value.hpp),
  /// or the encoded error map.
  payload_bytes payload;
};

/// Reads the unexpired stored record under `record_key` (idempotency_record_key), if any.
[[nodiscard]] result<std::optional<idempotent_result>> find_idempotent_result(const store& db,
                                                                            const std::string& record_key);
/// The unexpired record in `stored` (the bytes under a record key, if any).
[[nodiscard]] result<std::optional<idempotent_result>> decode_idempotent_record(const std::optional<std::string>& stored);
/// Adds the result of `method` called with arguments of `fingerprint`, expiring after `ttl`, to `batch`.
void add_idempotent_result(write_batch& batch, const std::string& record_key, const stored_result& r,
                           const std::string& method, const std::string& fingerprint, std::chrono::milliseconds ttl);

}  // namespace cohort::detail
