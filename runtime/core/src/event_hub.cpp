#include "cohort/core/event_hub.hpp"

#include <deque>
#include <random>
#include <set>
#include <unordered_map>

#include <msgpack.hpp>

#include "cohort/core/actor_messages.hpp"
#include "cohort/log/log.hpp"
#include "cohort/storage/big_endian.hpp"
#include "cohort/transport/envelope_codec.hpp"

namespace cohort::detail {

namespace {

using clock_type = std::chrono::steady_clock;
using loaded_log_atom = caf::atom_constant<caf::atom("hubloaded")>;
using appended_atom = caf::atom_constant<caf::atom("hubappend")>;
using page_atom = caf::atom_constant<caf::atom("hubpage")>;
using cursor_atom = caf::atom_constant<caf::atom("hubcursor")>;
using cursor_saved_atom = caf::atom_constant<caf::atom("hubsaved")>;
using trim_found_atom = caf::atom_constant<caf::atom("hubtrimf")>;
using trimmed_atom = caf::atom_constant<caf::atom("hubtrimmed")>;
using hub_tick_atom = caf::atom_constant<caf::atom("hubtick")>;

/// Newest events kept in memory for live subscribers (count and bytes).
constexpr std::size_t cache_entries = 4096;
constexpr std::size_t cache_bytes = 16u << 20;
/// Events appended in one batch at most.
constexpr std::size_t max_append = 1024;
/// Log entries one disk read examines at most.
constexpr std::size_t page_examined = 1024;
/// Retention deletes at most this many entries per tick.
constexpr std::size_t trim_batch = 10000;
constexpr auto tick_every = std::chrono::milliseconds(1000);
/// Limits of a subscription's arguments.
constexpr std::uint64_t default_window = 256, max_window = 4096;
constexpr std::size_t max_topics = 64, max_name = 256;

/// The key of the log's head (its last sequence number) in `cursors`; names are "n" + name.
const std::string head_key = "h";

/// One event of the log. The sequence number is the key; the rest the value.
struct log_entry {
  std::uint64_t seq = 0;
  std::string topic;
  std::string key;
  std::string event_id;
  std::string payload;
  std::string traceparent;
  std::uint64_t published_ms = 0;
  MSGPACK_DEFINE(topic, key, event_id, payload, traceparent, published_ms);
  [[nodiscard]] std::size_t bytes() const { return 64 + topic.size() + key.size() + event_id.size() + payload.size(); }
};
using entry_ptr = std::shared_ptr<const log_entry>;

std::string encode_entry(const log_entry& e) {
  msgpack::sbuffer buf;
  msgpack::pack(buf, e);
  return std::string(buf.data(), buf.size());
}

std::optional<log_entry> decode_entry(std::string_view key, std::string_view value) {
  try {
    auto h = msgpack::unpack(value.data(), value.size());
    log_entry e;
    h.get().convert(e);
    e.seq = read_big_endian(key);
    return e;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

/// Events read off the store for one subscriber.
struct log_page {
  std::vector<entry_ptr> entries;  ///< those that match its topics
  std::uint64_t examined_to = 0;   ///< the last sequence number looked at (0: none)
  std::size_t damaged = 0;         ///< entries that did not decode (skipped, and said so)
  std::optional<error_info> error;
};
using log_page_ptr = std::shared_ptr<const log_page>;

/// Records the relay handed over, being appended.
struct pending_append {
  std::string outbox_key;
  log_entry entry;
  caf::actor relay;
};
using append_batch_ptr = std::shared_ptr<std::vector<pending_append>>;

using key_list_ptr = std::shared_ptr<const std::vector<std::string>>;

}  // namespace
}  // namespace cohort::detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cohort::detail::log_page_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cohort::detail::append_batch_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cohort::detail::key_list_ptr)

namespace cohort::detail {

namespace {

struct subscription {
  std::uint64_t id = 0;
  std::uint64_t request_id = 0;  ///< the `_subscribe` request's: every event carries it
  reply_sink push;
  std::string caller;
  std::set<std::string, std::less<>> topics;  ///< empty: every topic
  std::string name;                           ///< durable: its name; empty: live only
  std::uint64_t next = 1;                     ///< the next sequence number to look at
  std::uint64_t window = default_window;
  std::uint64_t max_lag = 0;                  ///< live: how far behind before it skips ahead
  std::deque<std::uint64_t> unacked;          ///< sent, not acknowledged
  bool reading = false;                       ///< a page is being read off the store
  clock_type::time_point last_heard;
  std::uint64_t cursor_saved = 0;             ///< durable: the position stored
  bool cursor_saving = false;
  [[nodiscard]] bool durable() const { return !name.empty(); }
  [[nodiscard]] bool wants(std::string_view topic) const { return topics.empty() || topics.count(topic); }
  /// Everything below this was delivered and acknowledged, or not wanted.
  [[nodiscard]] std::uint64_t position() const { return unacked.empty() ? next - 1 : unacked.front() - 1; }
};

struct hub_state {
  bool ready = false;
  std::uint64_t head = 0;    ///< the last sequence number written
  std::uint64_t oldest = 1;  ///< the first one still kept (head + 1 when the log is empty)
  std::deque<entry_ptr> cache;
  std::size_t cached_bytes = 0;
  std::vector<pending_append> queued;  ///< handed over, waiting for the next append
  bool appending = false;
  bool trimming = false;
  std::vector<request_ptr> early;  ///< requests that came before the log was loaded
  std::unordered_map<std::uint64_t, subscription> subs;
  std::unordered_map<std::string, std::uint64_t> by_name;
  std::mt19937_64 ids{std::random_device{}()};
  static inline const char* name = "cohort.events";
};

using hub_actor = caf::stateful_actor<hub_state>;

std::string encode_map(std::initializer_list<std::pair<const char*, std::uint64_t>> numbers) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(static_cast<std::uint32_t>(numbers.size()));
  for (const auto& [k, v] : numbers) pk.pack(std::string_view(k)), pk.pack(v);
  return std::string(buf.data(), buf.size());
}

void push_control(const service_runtime& svc, const subscription& s, const char* what, std::string payload) {
  envelope h;
  h.kind = message_kind::event;
  h.id = s.request_id;
  h.service = svc.def.name;
  h.method = what;
  s.push(std::move(h), std::move(payload));
}

void push_event(const service_runtime& svc, const subscription& s, const log_entry& e) {
  envelope h;
  h.kind = message_kind::event;
  h.id = s.request_id;
  h.service = svc.def.name;
  h.method = e.topic;
  h.key = e.key;
  h.seq = e.seq;
  h.traceparent = e.traceparent;
  h.idempotency_key = e.event_id;  // unique per event: a subscriber that dedups keys on it
  s.push(std::move(h), std::string(e.payload));
}

void end_subscription(hub_actor* self, service_runtime& svc, std::uint64_t id, const error_info& why) {
  auto& st = self->state;
  auto it = st.subs.find(id);
  if (it == st.subs.end()) return;
  push_control(svc, it->second, "_end", encode_error_payload(why));
  if (it->second.durable()) st.by_name.erase(it->second.name);
  st.subs.erase(it);
  svc.subscriptions.store(static_cast<std::int64_t>(st.subs.size()));
}

void save_cursor(hub_actor* self, const std::shared_ptr<service_runtime>& svc, subscription& s);
void pump(hub_actor* self, const std::shared_ptr<service_runtime>& svc, subscription& s);

void read_page(hub_actor* self, const std::shared_ptr<service_runtime>& svc, subscription& s) {
  s.reading = true;
  auto want = s.topics;
  auto from = s.next;
  auto limit = s.window - s.unacked.size();
  svc->db->read([me = caf::actor_cast<caf::actor>(self), id = s.id, from, limit, want](const store& db) {
    auto page = std::make_shared<log_page>();
    std::size_t examined = 0;
    auto start = big_endian_key(from);
    auto scanned = db.scan(keyspace::events, {}, start, [&](std::string_view k, std::string_view v) {
      auto e = decode_entry(k, v);
      if (!e) {
        page->damaged++;  // skipped, and reported by the hub: never in silence
        page->examined_to = read_big_endian(k);
        return true;
      }
      page->examined_to = e->seq;
      if (want.empty() || want.count(e->topic)) page->entries.push_back(std::make_shared<const log_entry>(std::move(*e)));
      return ++examined < page_examined && page->entries.size() < limit;
    });
    if (!scanned) page->error = scanned.error();
    caf::anon_send(me, page_atom::value, id, log_page_ptr(std::move(page)));
  });
}

void pump(hub_actor* self, const std::shared_ptr<service_runtime>& svc, subscription& s) {
  auto& st = self->state;
  if (!st.ready || s.reading) return;
  // A live subscriber too far behind skips ahead to what memory still holds.
  if (!s.durable() && st.head >= s.next && st.head - s.next + 1 > s.max_lag) {
    auto keep = std::min<std::uint64_t>(s.max_lag, st.cache.size());
    auto skip_to = st.head + 1 - keep;
    push_control(*svc, s, "_lagging", encode_map({{"missed", skip_to - s.next}, {"next", skip_to}}));
    s.next = skip_to;
  }
  // Trimmed by retention before it was read: said loudly, never skipped in silence.
  if (s.next < st.oldest) {
    push_control(*svc, s, "_lagging", encode_map({{"missed", st.oldest - s.next}, {"next", st.oldest}}));
    s.next = st.oldest;
  }
  while (s.unacked.size() < s.window && s.next <= st.head) {
    if (st.cache.empty() || st.cache.front()->seq > s.next) return read_page(self, svc, s);
    const auto& e = *st.cache[s.next - st.cache.front()->seq];
    if (s.wants(e.topic)) {
      push_event(*svc, s, e);
      s.unacked.push_back(e.seq);
    }
    s.next++;
  }
  if (s.durable() && s.unacked.empty()) save_cursor(self, svc, s);
}

void save_cursor(hub_actor* self, const std::shared_ptr<service_runtime>& svc, subscription& s) {
  auto at = s.position();
  if (!s.durable() || s.cursor_saving || at <= s.cursor_saved) return;
  s.cursor_saving = true;
  write_batch batch;
  batch.put(keyspace::cursors, "n" + s.name, big_endian_key(at));
  svc->db->commit(std::move(batch), [me = caf::actor_cast<caf::actor>(self), id = s.id, at](const result<bool>& done) {
    caf::anon_send(me, cursor_saved_atom::value, id, at, static_cast<bool>(done));
  });
}

/// Appends what the relay handed over (one batch at a time: the log's order is the append order).
void append(hub_actor* self, const std::shared_ptr<service_runtime>& svc) {
  auto& st = self->state;
  if (!st.ready || st.appending || st.queued.empty()) return;
  auto batch_items = std::make_shared<std::vector<pending_append>>();
  auto n = std::min(st.queued.size(), max_append);
  batch_items->assign(std::make_move_iterator(st.queued.begin()), std::make_move_iterator(st.queued.begin() + n));
  st.queued.erase(st.queued.begin(), st.queued.begin() + n);
  write_batch batch;
  auto seq = st.head;
  for (auto& a : *batch_items) {
    a.entry.seq = ++seq;
    batch.put(keyspace::events, big_endian_key(seq), encode_entry(a.entry));
    batch.erase(keyspace::outbox, a.outbox_key);
  }
  batch.put(keyspace::cursors, head_key, big_endian_key(seq));
  st.appending = true;
  svc->db->commit(std::move(batch), [me = caf::actor_cast<caf::actor>(self), batch_items](const result<bool>& done) {
    caf::anon_send(me, appended_atom::value, batch_items, static_cast<bool>(done),
                   done ? std::string() : done.error().message);
  });
}

void on_appended(hub_actor* self, const std::shared_ptr<service_runtime>& svc, const append_batch_ptr& items, bool ok,
                 const std::string& why) {
  auto& st = self->state;
  st.appending = false;
  for (auto& a : *items) {
    if (ok) svc->events_logged++;
    self->send(a.relay, log_done_atom::value, a.outbox_key, ok, why);
  }
  if (ok && !items->empty()) {
    st.head = items->back().entry.seq;
    if (st.oldest == 0 || st.oldest > st.head) st.oldest = items->front().entry.seq;
    for (auto& a : *items) {
      auto e = std::make_shared<const log_entry>(std::move(a.entry));
      st.cached_bytes += e->bytes();
      st.cache.push_back(std::move(e));
    }
    while (!st.cache.empty() && (st.cache.size() > cache_entries || st.cached_bytes > cache_bytes)) {
      st.cached_bytes -= st.cache.front()->bytes();
      st.cache.pop_front();
    }
    for (auto& [id, s] : st.subs) pump(self, svc, s);
  } else if (!ok) {
    log::get("outbox")->warn("{}: events not appended to the event log (the relay retries): {}", svc->def.name, why);
  }
  append(self, svc);
}

struct subscribe_args {
  std::vector<std::string> topics;
  std::string name;
  std::optional<std::uint64_t> from;
  std::uint64_t window = default_window;
  std::optional<std::uint64_t> max_lag;
};

result<subscribe_args> parse_subscribe(const request& req, const wire_limits& limits) {
  subscribe_args a;
  if (req.payload.size() == 1 && static_cast<unsigned char>(req.payload[0]) == 0xc0) return a;  // nil: all defaults
  auto handle = decode_payload(req.payload, limits);
  if (!handle) return handle.error();
  const auto& o = handle->get();
  if (o.type != msgpack::type::MAP) return error_info{errc::bad_request, "_subscribe takes a map (or nil)"};
  auto bad = [](const std::string& what) { return error_info{errc::bad_request, "_subscribe: " + what}; };
  for (const auto& kv : o.via.map) {
    if (kv.key.type != msgpack::type::STR) return bad("keys are strings");
    std::string_view k(kv.key.via.str.ptr, kv.key.via.str.size);
    const auto& v = kv.val;
    if (k == "topics") {
      if (v.type != msgpack::type::ARRAY || v.via.array.size > max_topics)
        return bad("'topics' is an array of at most 64 strings");
      for (const auto& t : v.via.array) {
        if (t.type != msgpack::type::STR || t.via.str.size == 0 || t.via.str.size > 256)
          return bad("'topics' holds non-empty strings of at most 256 bytes");
        a.topics.emplace_back(t.via.str.ptr, t.via.str.size);
      }
    } else if (k == "name") {
      if (v.type != msgpack::type::STR || v.via.str.size == 0 || v.via.str.size > max_name)
        return bad("'name' is a non-empty string of at most 256 bytes");
      a.name.assign(v.via.str.ptr, v.via.str.size);
    } else if (k == "from") {
      if (v.type != msgpack::type::POSITIVE_INTEGER) return bad("'from' is a non-negative integer");
      a.from = v.via.u64;
    } else if (k == "window") {
      if (v.type != msgpack::type::POSITIVE_INTEGER || v.via.u64 == 0 || v.via.u64 > max_window)
        return bad("'window' is an integer from 1 to 4096");
      a.window = v.via.u64;
    } else if (k == "max_lag") {
      if (v.type != msgpack::type::POSITIVE_INTEGER || v.via.u64 == 0) return bad("'max_lag' is a positive integer");
      a.max_lag = v.via.u64;
    }
  }
  return a;
}

/// Reads a positive integer field of a map payload (subscription ids, sequence numbers).
std::optional<std::uint64_t> field_u64(const request& req, const wire_limits& limits, std::string_view name) {
  auto handle = decode_payload(req.payload, limits);
  if (!handle || handle->get().type != msgpack::type::MAP) return std::nullopt;
  for (const auto& kv : handle->get().via.map)
    if (kv.key.type == msgpack::type::STR && std::string_view(kv.key.via.str.ptr, kv.key.via.str.size) == name &&
        kv.val.type == msgpack::type::POSITIVE_INTEGER)
      return kv.val.via.u64;
  return std::nullopt;
}

/// Starts a subscription once its stored cursor (durable ones) is known.
void start_subscription(hub_actor* self, const std::shared_ptr<service_runtime>& svc, const request_ptr& req,
                        subscribe_args a, std::optional<std::uint64_t> stored) {
  auto& st = self->state;
  if (req->answered()) return;
  if (st.subs.size() >= svc->cfg.events.max_subscribers) {
    req->fail({errc::overloaded, "service '" + svc->def.name + "' serves " + std::to_string(st.subs.size()) +
                                     " subscriptions (max_subscribers); try later"});
    return;
  }
  if (!a.name.empty())
    if (auto old = st.by_name.find(a.name); old != st.by_name.end())
      end_subscription(self, *svc, old->second,
                       {errc::unavailable, "subscription '" + a.name + "' was taken over by a new subscriber"});
  subscription s;
  do s.id = st.ids() >> 11; while (s.id == 0 || st.subs.count(s.id));  // below 2^53: exact in JSON and JavaScript
  s.request_id = req->header.id;
  s.push = req->stream;
  s.caller = req->header.caller;
  s.topics.insert(a.topics.begin(), a.topics.end());
  s.name = a.name;
  s.window = a.window;
  s.max_lag = a.max_lag.value_or(std::max<std::uint64_t>(cache_entries, a.window));
  s.last_heard = clock_type::now();
  if (stored) {
    s.next = *stored + 1;
    s.cursor_saved = *stored;
  } else if (a.from) {
    s.next = *a.from == 0 ? st.oldest : *a.from;
  } else {
    s.next = st.head + 1;
  }
  s.next = std::min(s.next, st.head + 1);
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(5);
  pk.pack(std::string_view("subscription")), pk.pack(s.id);
  pk.pack(std::string_view("next")), pk.pack(s.next);
  pk.pack(std::string_view("head")), pk.pack(st.head);
  pk.pack(std::string_view("oldest")), pk.pack(st.oldest);
  pk.pack(std::string_view("resumed")), pk.pack(static_cast<bool>(stored));
  if (!req->respond(std::string(buf.data(), buf.size()))) return;
  if (!s.name.empty()) st.by_name[s.name] = s.id;
  auto id = s.id;
  auto& placed = st.subs.emplace(id, std::move(s)).first->second;
  svc->subscriptions.store(static_cast<std::int64_t>(st.subs.size()));
  log::get("service")->info("{}: subscription {} by {} ({}), from {}", svc->def.name, id, placed.caller,
                            placed.durable() ? "durable '" + placed.name + "'" : std::string("live"), placed.next);
  pump(self, svc, placed);
}

void on_request(hub_actor* self, const std::shared_ptr<service_runtime>& svc, const request_ptr& req) {
  auto& st = self->state;
  if (!st.ready) {
    st.early.push_back(req);
    return;
  }
  const auto& method = req->header.method;
  if (method == "_subscribe") {
    if (!req->stream) {
      req->fail({errc::bad_request, "_subscribe needs a connection that can carry a stream: a client's ZeroMQ "
                                    "connection to the node, or HTTP's /events (Server-Sent Events)"});
      return;
    }
    auto args = parse_subscribe(*req, svc->limits);
    if (!args) {
      req->fail(args.error());
      return;
    }
    if (args->name.empty()) return start_subscription(self, svc, req, std::move(*args), std::nullopt);
    auto me = caf::actor_cast<caf::actor>(self);
    svc->db->read_after_writes([me, req, name = args->name](const store& db) {
      auto got = db.get(keyspace::cursors, "n" + name);
      std::uint64_t at = 0;
      bool found = got && *got;
      if (found) at = read_big_endian(**got);
      caf::anon_send(me, cursor_atom::value, req, found, at, got ? std::string() : got.error().message);
    });
    return;
  }
  auto id = field_u64(*req, svc->limits, "subscription");
  auto it = id ? st.subs.find(*id) : st.subs.end();
  if (it == st.subs.end() || it->second.caller != req->header.caller) {
    if (req->header.kind == message_kind::request)
      req->fail({errc::bad_request, method + ": no subscription " + (id ? std::to_string(*id) : std::string("(none given)")) +
                                        " of this caller on '" + svc->def.name + "' (ended, timed out, or never made)"});
    return;
  }
  auto& s = it->second;
  s.last_heard = clock_type::now();
  if (method == "_ack") {
    if (auto seq = field_u64(*req, svc->limits, "seq"))
      while (!s.unacked.empty() && s.unacked.front() <= *seq) s.unacked.pop_front();
    if (req->header.kind == message_kind::request) req->respond(encode_map({{"next", s.next}}));
    pump(self, svc, s);
    save_cursor(self, svc, s);
    return;
  }
  // _unsubscribe: ends it; a durable subscription's cursor stays for its next subscriber.
  save_cursor(self, svc, s);
  if (s.durable()) st.by_name.erase(s.name);
  auto position = s.position();
  st.subs.erase(it);
  svc->subscriptions.store(static_cast<std::int64_t>(st.subs.size()));
  if (req->header.kind == message_kind::request) req->respond(encode_map({{"position", position}}));
}

/// Asks the reader thread which of the oldest entries retention drops.
void trim(hub_actor* self, const std::shared_ptr<service_runtime>& svc) {
  auto& st = self->state;
  if (st.trimming || !st.ready || st.head < st.oldest) return;
  const auto& cfg = svc->cfg.events;
  const auto count = st.head - st.oldest + 1;
  const std::uint64_t excess = count > cfg.retain_events ? count - cfg.retain_events : 0;
  const auto now = wall_clock_ms();
  const auto cutoff = now > static_cast<std::uint64_t>(cfg.retain.count()) ? now - cfg.retain.count() : 0;
  // Nothing too old in memory's view and not too many: no disk read.
  if (excess == 0 && !st.cache.empty() && st.cache.front()->seq == st.oldest && st.cache.front()->published_ms >= cutoff)
    return;
  st.trimming = true;
  svc->db->read([me = caf::actor_cast<caf::actor>(self), from = st.oldest, excess, cutoff](const store& db) {
    auto keys = std::make_shared<std::vector<std::string>>();
    std::uint64_t last = 0;
    (void)db.scan(keyspace::events, {}, big_endian_key(from), [&](std::string_view k, std::string_view v) {
      auto e = decode_entry(k, v);
      bool drop = keys->size() < excess || !e || e->published_ms < cutoff;
      if (!drop) return false;
      keys->emplace_back(k);
      last = read_big_endian(k);
      return keys->size() < trim_batch;
    });
    caf::anon_send(me, trim_found_atom::value, key_list_ptr(std::move(keys)), last);
  });
}

caf::behavior event_hub(hub_actor* self, std::shared_ptr<service_runtime> svc) {
  svc->set_event_hub(caf::actor_cast<caf::actor>(self));
  svc->db->read_after_writes([me = caf::actor_cast<caf::actor>(self)](const store& db) {
    std::uint64_t head = 0, oldest = 0;
    if (auto h = db.get(keyspace::cursors, head_key); h && *h) head = read_big_endian(**h);
    (void)db.scan(keyspace::events, {}, {}, [&](std::string_view k, std::string_view) {
      oldest = read_big_endian(k);
      return false;
    });
    caf::anon_send(me, loaded_log_atom::value, head, oldest == 0 ? head + 1 : oldest);
  });
  self->delayed_send(self, tick_every, hub_tick_atom::value);
  self->set_exit_handler([=](caf::exit_msg& em) {
    auto& st = self->state;
    for (auto& [id, s] : st.subs) {
      save_cursor(self, svc, s);
      push_control(*svc, s, "_end",
                   encode_error_payload({errc::unavailable, "service '" + svc->def.name + "' is stopping or restarting; "
                                                             "subscribe again"}));
    }
    st.subs.clear();
    svc->subscriptions.store(0);
    self->quit(em.reason);
  });
  return {
      [=](loaded_log_atom, std::uint64_t head, std::uint64_t oldest) {
        auto& st = self->state;
        st.head = head;
        st.oldest = oldest;
        st.ready = true;
        auto early = std::move(st.early);
        for (auto& r : early) on_request(self, svc, r);
        append(self, svc);
      },
      [=](request_ptr& req) { on_request(self, svc, req); },
      [=](log_append_atom, std::string& key, std::string& topic, std::string& entity, std::string& event_id,
          std::string& payload, std::string& traceparent, std::uint64_t published_ms) {
        pending_append a;
        a.outbox_key = std::move(key);
        a.entry.topic = std::move(topic);
        a.entry.key = std::move(entity);
        a.entry.event_id = std::move(event_id);
        a.entry.payload = std::move(payload);
        a.entry.traceparent = std::move(traceparent);
        a.entry.published_ms = published_ms;
        a.relay = caf::actor_cast<caf::actor>(self->current_sender());
        self->state.queued.push_back(std::move(a));
        append(self, svc);
      },
      [=](appended_atom, const append_batch_ptr& items, bool ok, const std::string& why) {
        on_appended(self, svc, items, ok, why);
      },
      [=](cursor_atom, request_ptr& req, bool found, std::uint64_t at, const std::string& why) {
        if (!why.empty()) {
          req->fail({errc::storage_unavailable, "the subscription's cursor could not be read: " + why});
          return;
        }
        auto args = parse_subscribe(*req, svc->limits);
        if (args) start_subscription(self, svc, req, std::move(*args), found ? std::optional<std::uint64_t>(at) : std::nullopt);
      },
      [=](cursor_saved_atom, std::uint64_t id, std::uint64_t at, bool ok) {
        auto it = self->state.subs.find(id);
        if (it == self->state.subs.end()) return;
        it->second.cursor_saving = false;
        if (ok && at > it->second.cursor_saved) it->second.cursor_saved = at;
        save_cursor(self, svc, it->second);  // acknowledged further meanwhile
      },
      [=](page_atom, std::uint64_t id, const log_page_ptr& page) {
        auto it = self->state.subs.find(id);
        if (it == self->state.subs.end()) return;
        auto& s = it->second;
        s.reading = false;
        if (page->error) {
          log::get("service")->warn("{}: reading the event log for subscription {} failed: {}", svc->def.name, id,
                                    page->error->message);
          return;  // tried again at the next tick or ack
        }
        if (page->damaged) {
          // The store's checksums passed but an entry does not decode: the
          // subscriber is told how many it misses, as for trimmed ones.
          log::get("service")->error("{}: {} event log entries do not decode; subscription {} skips them",
                                     svc->def.name, page->damaged, id);
          push_control(*svc, s, "_lagging", encode_map({{"missed", page->damaged}, {"next", page->examined_to + 1}}));
        }
        for (const auto& e : page->entries) {
          if (e->seq < s.next) continue;
          push_event(*svc, s, *e);
          s.unacked.push_back(e->seq);
        }
        if (page->examined_to >= s.next) s.next = page->examined_to + 1;
        else if (page->entries.empty() && s.next < self->state.head) s.next = self->state.head + 1;  // a gap: nothing there
        pump(self, svc, s);
      },
      [=](trim_found_atom, const key_list_ptr& keys, std::uint64_t last) {
        auto& st = self->state;
        if (keys->empty()) {
          st.trimming = false;
          return;
        }
        write_batch batch;
        for (const auto& k : *keys) batch.erase(keyspace::events, k);
        svc->db->commit(std::move(batch), [me = caf::actor_cast<caf::actor>(self), last](const result<bool>& done) {
          caf::anon_send(me, trimmed_atom::value, last, static_cast<bool>(done));
        });
      },
      [=](trimmed_atom, std::uint64_t last, bool ok) {
        auto& st = self->state;
        st.trimming = false;
        if (!ok) return;
        st.oldest = std::max(st.oldest, last + 1);
        while (!st.cache.empty() && st.cache.front()->seq < st.oldest) {
          st.cached_bytes -= st.cache.front()->bytes();
          st.cache.pop_front();
        }
      },
      [=](hub_tick_atom) {
        auto& st = self->state;
        auto idle_since = clock_type::now() - svc->cfg.events.idle_timeout;
        std::vector<std::uint64_t> idle;
        for (auto& [id, s] : st.subs) {
          if (s.last_heard < idle_since) idle.push_back(id);
          else pump(self, svc, s);
        }
        for (auto id : idle) {
          if (auto it = st.subs.find(id); it != st.subs.end()) save_cursor(self, svc, it->second);
          end_subscription(self, *svc, id,
                           {errc::timeout, "no _ack for " + std::to_string(svc->cfg.events.idle_timeout.count()) +
                                               " ms: the subscription ended (subscribe again to resume)"});
        }
        trim(self, svc);
        self->delayed_send(self, tick_every, hub_tick_atom::value);
      },
  };
}

}  // namespace

bool is_event_method(std::string_view method) {
  return method == "_subscribe" || method == "_ack" || method == "_unsubscribe";
}

caf::actor spawn_event_hub(caf::event_based_actor* parent, std::shared_ptr<service_runtime> svc) {
  return parent->spawn<caf::monitored>(event_hub, std::move(svc));
}

void service_runtime::set_event_hub(caf::actor hub) {
  std::lock_guard<std::mutex> guard(mutex_);
  event_hub_ = std::move(hub);
}

caf::actor service_runtime::event_hub() const {
  std::lock_guard<std::mutex> guard(mutex_);
  return event_hub_;
}

}  // namespace cohort::detail
