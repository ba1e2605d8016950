// Events for clients: a client subscribes to a service's published events
// over its ZeroMQ connection: live or durable (a name and a cursor that
// resumes after the last acknowledged event), filtered by topic, at most
// `window` unacknowledged events in flight, `_lagging` when it fell behind,
// and the event log survives a restart of the node.
#include <catch2/catch.hpp>

#include <optional>

#include "cohort/actors/service_definition.hpp"
#include "cohort/transport/envelope_codec.hpp"
#include "test_node.hpp"

using namespace cohort;
using namespace cohort::test;
using namespace std::chrono_literals;

namespace {

struct feed_state {
  std::uint64_t posted = 0;
  MSGPACK_DEFINE_MAP(posted);
};
struct post_args {
  std::string topic;
  std::uint64_t first = 0;
  std::uint64_t count = 1;
  MSGPACK_DEFINE_MAP(topic, first, count);
};
struct item {
  std::string key;
  std::uint64_t n = 0;
  MSGPACK_DEFINE_MAP(key, n);
};

service_definition feed() {
  return entity_service<feed_state>("feed")
      .method("post",
              [](entity_context<feed_state>& ctx, const post_args& a) {
                for (std::uint64_t i = 0; i < a.count; ++i) ctx.publish(a.topic, item{ctx.key(), a.first + i});
                ctx.state().posted += a.count;
                return no_args{};
              })
      .build();
}

std::vector<service_definition> catalog() {
  auto c = example_services();
  c.push_back(feed());
  return c;
}

node_config feed_config(const std::string& dir, std::uint64_t retain = 100000) {
  auto cfg = loopback_config(dir, catalog());
  auto& s = service_named(cfg, "feed");
  s.events.enabled = true;
  s.events.retain_events = retain;
  s.store_durability = durability::async;
  return cfg;
}

std::unique_ptr<node> start(const node_config& cfg) {
  auto n = node::start(cfg, catalog());
  if (!n) FAIL("node did not start: " << n.error().message);
  return std::move(*n);
}

void post(client& c, const std::string& key, const std::string& topic, std::uint64_t first, std::uint64_t count = 1) {
  auto r = c.call_as<no_args>("feed", "post", post_args{topic, first, count}, keyed(key));
  REQUIRE(r.ok());
}

struct received {
  std::string topic;
  std::uint64_t seq = 0;
  item event;
};

struct subscribe_options {
  // A constructor, not an aggregate: the tests name only the leading fields.
  subscribe_options(std::vector<std::string> topics = {}, std::string name = {}, std::optional<std::uint64_t> from = {},
                    std::uint64_t window = 256, std::optional<std::uint64_t> max_lag = {})
      : topics(std::move(topics)), name(std::move(name)), from(from), window(window), max_lag(max_lag) {}
  std::vector<std::string> topics;
  std::string name;
  std::optional<std::uint64_t> from;
  std::uint64_t window = 256;
  std::optional<std::uint64_t> max_lag;
};

std::string subscribe_payload(const subscribe_options& o) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(2 + !o.name.empty() + o.from.has_value() + o.max_lag.has_value());
  pk.pack(std::string("topics")), pk.pack(o.topics);
  pk.pack(std::string("window")), pk.pack(o.window);
  if (!o.name.empty()) pk.pack(std::string("name")), pk.pack(o.name);
  if (o.from) pk.pack(std::string("from")), pk.pack(*o.from);
  if (o.max_lag) pk.pack(std::string("max_lag")), pk.pack(*o.max_lag);
  return std::string(buf.data(), buf.size());
}

/// A client of the protocol's subscription messages, written from docs/protocol.md.
struct subscriber {
  explicit subscriber(const std::string& endpoint) : c(endpoint) {
    c.on_event([this](envelope&& h, std::string&& p) {
      if (h.id != request_id) return;  // another subscription's
      if (!h.method.empty() && h.method[0] == '_') {
        control.emplace_back(h.method, std::move(p));
        return;
      }
      auto o = msgpack::unpack(p.data(), p.size());
      events.push_back({h.method, h.seq, o.get().as<item>()});
    });
  }
  struct subscribed {
    std::uint64_t subscription = 0, next = 0, head = 0, oldest = 0;
    bool resumed = false;
    MSGPACK_DEFINE_MAP(subscription, next, head, oldest, resumed);
  };
  result<subscribed> subscribe(const subscribe_options& o) {
    envelope env;
    env.service = "feed";
    env.method = "_subscribe";
    std::optional<reply> got;
    request_id = c.call_async(env, subscribe_payload(o), 5000ms, [&](reply&& r) { got = std::move(r); });
    for (int i = 0; i < 500 && !got; ++i) c.poll(10ms);
    if (!got) return error_info{errc::timeout, "no reply to _subscribe"};
    auto s = got->as<subscribed>();
    if (s) id = s->subscription;
    return s;
  }
  struct ack_args {
    std::uint64_t subscription = 0, seq = 0;
    MSGPACK_DEFINE_MAP(subscription, seq);
  };
  bool ack(std::uint64_t seq) { return c.call("feed", "_ack", pack(ack_args{id, seq})).ok(); }
  bool ack_all() { return events.empty() || ack(events.back().seq); }
  /// Polls until `n` events arrived (bounded).
  bool wait_for(std::size_t n, std::chrono::milliseconds limit = 5000ms) {
    auto until = std::chrono::steady_clock::now() + limit;
    while (events.size() < n && std::chrono::steady_clock::now() < until) c.poll(10ms);
    return events.size() >= n;
  }
  void settle(std::chrono::milliseconds d = 200ms) {
    auto until = std::chrono::steady_clock::now() + d;
    while (std::chrono::steady_clock::now() < until) c.poll(10ms);
  }
  client c;
  std::uint64_t request_id = 0, id = 0;
  std::vector<received> events;
  std::vector<std::pair<std::string, std::string>> control;
};

}  // namespace

TEST_CASE("a live subscriber gets the events published after it subscribed, in order per publisher, filtered by topic",
          "[runtime][events]") {
  temp_dir dir;
  auto n = start(feed_config(dir / "data"));
  client c(n->endpoints().front());
  post(c, "a", "tick", 0, 3);  // before the subscription: not seen by a live one
  // The relay appends to the log after the write: wait until these three are in it.
  REQUIRE(eventually([&] {
    subscriber probe(n->endpoints().front());
    auto p = probe.subscribe({});
    return p.ok() && p->head == 3;
  }));
  subscriber s(n->endpoints().front());
  auto sub = s.subscribe({{"tick"}});
  REQUIRE(sub.ok());
  CHECK(sub->head == 3);
  CHECK(sub->next == 4);
  for (std::uint64_t i = 0; i < 20; ++i) {
    post(c, "a", "tick", 100 + i);
    post(c, "b", "tock", 200 + i);  // filtered out
    post(c, "b", "tick", 300 + i);
  }
  REQUIRE(s.wait_for(40));
  s.settle();
  REQUIRE(s.events.size() == 40);
  std::vector<std::uint64_t> a, b;
  std::uint64_t last_seq = 0;
  for (const auto& e : s.events) {
    CHECK(e.topic == "tick");
    CHECK(e.seq > last_seq);  // the log's order
    last_seq = e.seq;
    (e.event.key == "a" ? a : b).push_back(e.event.n);
  }
  for (std::uint64_t i = 0; i < 20; ++i) {
    CHECK(a.at(i) == 100 + i);  // each publisher's order kept
    CHECK(b.at(i) == 300 + i);
  }
  n->stop();
}

TEST_CASE("a subscriber never has more than its window of unacknowledged events", "[runtime][events]") {
  temp_dir dir;
  auto n = start(feed_config(dir / "data"));
  client c(n->endpoints().front());
  subscriber s(n->endpoints().front());
  REQUIRE(s.subscribe({{}, "", std::nullopt, 10}).ok());
  post(c, "a", "tick", 0, 35);
  REQUIRE(s.wait_for(10));
  s.settle();
  CHECK(s.events.size() == 10);  // the window, no more
  REQUIRE(s.ack(s.events[4].seq));  // five acknowledged: five more may come
  REQUIRE(s.wait_for(15));
  s.settle();
  CHECK(s.events.size() == 15);
  for (int round = 0; round < 10 && s.events.size() < 35; ++round) {
    REQUIRE(s.ack_all());
    s.wait_for(std::min<std::size_t>(35, s.events.size() + 10), 2000ms);
  }
  REQUIRE(s.events.size() == 35);
  for (std::uint64_t i = 0; i < 35; ++i) CHECK(s.events[i].event.n == i);
  n->stop();
}

TEST_CASE("a durable subscriber resumes after its last acknowledged event and gets what was published meanwhile",
          "[runtime][events]") {
  temp_dir dir;
  auto cfg = feed_config(dir / "data");
  auto n = start(cfg);
  client c(n->endpoints().front());
  std::uint64_t acked_n = 0;
  {
    subscriber s(n->endpoints().front());
    auto sub = s.subscribe({{"tick"}, "billing"});
    REQUIRE(sub.ok());
    CHECK_FALSE(sub->resumed);
    post(c, "a", "tick", 0, 10);
    REQUIRE(s.wait_for(10));
    REQUIRE(s.ack(s.events[5].seq));  // 0..5 acknowledged, 6..9 not
    acked_n = s.events[5].event.n;
  }  // the subscriber goes away without a word
  post(c, "a", "tick", 10, 10);  // published while it was away
  n->stop();
  n = start(cfg);  // and the node restarted: log and cursor are in the store
  subscriber again(n->endpoints().front());
  auto sub = again.subscribe({{"tick"}, "billing"});
  REQUIRE(sub.ok());
  CHECK(sub->resumed);
  REQUIRE(again.wait_for(14));
  again.settle();
  REQUIRE(again.events.size() == 14);  // 6..19: everything after the last acknowledged, none lost
  for (std::size_t i = 0; i < 14; ++i) CHECK(again.events[i].event.n == acked_n + 1 + i);
  // A live subscriber from the start of the log sees all 20, numbered 1..20.
  subscriber all(n->endpoints().front());
  auto from_start = all.subscribe({{}, "", 0});
  REQUIRE(from_start.ok());
  CHECK(from_start->oldest == 1);
  REQUIRE(all.wait_for(20));
  CHECK(all.events.front().seq == 1);
  CHECK(all.events.back().seq == 20);
  n->stop();
}

TEST_CASE("a live subscriber that falls behind is told it lags and skips ahead; memory stays bounded",
          "[runtime][events]") {
  temp_dir dir;
  auto n = start(feed_config(dir / "data"));
  client c(n->endpoints().front());
  subscriber s(n->endpoints().front());
  REQUIRE(s.subscribe({{}, "", std::nullopt, 5, 20}).ok());
  post(c, "a", "tick", 0, 100);  // it reads 5 and acknowledges none
  REQUIRE(s.wait_for(5));
  s.settle();
  CHECK(s.events.size() == 5);
  // Acknowledge until it has the newest event.
  for (int round = 0; round < 50 && (s.events.empty() || s.events.back().seq < 100); ++round) {
    REQUIRE(s.ack_all());
    s.settle(50ms);
  }
  REQUIRE(s.events.back().seq == 100);
  REQUIRE_FALSE(s.control.empty());
  std::uint64_t missed = 0;
  for (const auto& [what, payload] : s.control) {
    CHECK(what == "_lagging");
    auto lag = msgpack::unpack(payload.data(), payload.size()).get().as<std::map<std::string, std::uint64_t>>();
    CHECK(lag["missed"] > 0);
    missed += lag["missed"];
  }
  // Every event is either received or counted as missed, none twice, in order.
  CHECK(missed + s.events.size() == 100);
  for (std::size_t i = 1; i < s.events.size(); ++i) CHECK(s.events[i].seq > s.events[i - 1].seq);
  n->stop();
}

TEST_CASE("a durable subscriber whose events were trimmed by retention is told how many it missed",
          "[runtime][events]") {
  temp_dir dir;
  auto n = start(feed_config(dir / "data", 30));
  client c(n->endpoints().front());
  {
    subscriber s(n->endpoints().front());
    REQUIRE(s.subscribe({{}, "slow", 0}).ok());
    post(c, "a", "tick", 0, 1);
    REQUIRE(s.wait_for(1));
    REQUIRE(s.ack_all());
    s.settle();
  }
  post(c, "a", "tick", 1, 100);
  subscriber again(n->endpoints().front());
  // Retention runs once a second: wait until the oldest kept is past the cursor.
  REQUIRE(eventually([&] {
    subscriber probe(n->endpoints().front());
    auto p = probe.subscribe({});
    return p.ok() && p->oldest > 2;
  }, 10000ms, 100ms));
  REQUIRE(again.subscribe({{}, "slow"}).ok());
  REQUIRE(eventually([&] {
    again.c.poll(10ms);
    return !again.control.empty();
  }));
  CHECK(again.control.front().first == "_lagging");
  auto lag = msgpack::unpack(again.control.front().second.data(), again.control.front().second.size()).get().as<std::map<std::string, std::uint64_t>>();
  CHECK(lag["missed"] >= 70);
  REQUIRE(again.wait_for(30));
  CHECK(again.events.back().event.n == 100);
  n->stop();
}

TEST_CASE("subscription requests with bad arguments, to a service without an event log, or acks of another's "
          "subscription are refused with a clear code",
          "[runtime][events]") {
  temp_dir dir;
  auto n = start(feed_config(dir / "data"));
  client c(n->endpoints().front());
  auto bad = c.call("feed", "_subscribe", pack(std::map<std::string, std::uint64_t>{{"window", 0}}));
  REQUIRE(bad.error);
  CHECK(bad.error->code == "bad_request");
  CHECK_THAT(bad.error->message, Catch::Contains("window"));
  auto none = c.call("counter", "_subscribe", pack(std::map<std::string, std::uint64_t>{}));
  REQUIRE(none.error);
  CHECK(none.error->code == "unknown_method");
  CHECK_THAT(none.error->message, Catch::Contains("event log"));
  auto stray = c.call("feed", "_ack", pack(std::map<std::string, std::uint64_t>{{"subscription", 12345}, {"seq", 1}}));
  REQUIRE(stray.error);
  CHECK(stray.error->code == "bad_request");
  // The node still serves.
  post(c, "a", "tick", 0);
  n->stop();
}

TEST_CASE("a node relays the events of a subscription to a service it reaches as a remote instance",
          "[runtime][events]") {
  temp_dir dir;
  auto publisher = start(feed_config(dir / "a"));
  auto cfg = loopback_config(dir / "b", example_services());
  remote_service_config feed_remote;
  feed_remote.name = "feed";
  feed_remote.endpoints = {publisher->endpoints().front()};
  cfg.remotes.push_back(feed_remote);
  auto front = node::start(cfg, catalog());
  if (!front) FAIL("front node did not start: " << front.error().message);
  subscriber s((*front)->endpoints().front());  // through the front node
  auto sub = s.subscribe({{"tick"}, "via-front"});
  REQUIRE(sub.ok());
  client c((*front)->endpoints().front());
  for (std::uint64_t i = 0; i < 12; ++i) post(c, "a", "tick", i);
  REQUIRE(s.wait_for(12));
  for (std::uint64_t i = 0; i < 12; ++i) CHECK(s.events[i].event.n == i);
  REQUIRE(s.ack_all());  // acknowledgements travel the same way
  // The publisher restarts its service: the subscriber hears _end through the front.
  REQUIRE(publisher->restart_service("feed").ok());
  REQUIRE(eventually([&] {
    s.c.poll(10ms);
    return !s.control.empty();
  }));
  CHECK(s.control.back().first == "_end");
  (*front)->stop();
  publisher->stop();
}
