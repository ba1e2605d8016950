// A call between two services of one process carries its arguments and its
// result as C++ values, copied, never packed (transport/typed_value.hpp); a
// callee of another type, a socket and an idempotency record get the bytes,
// exactly as before. These tests count the packings and decodings of one
// message type to tell the two paths apart.
#include <catch2/catch.hpp>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "cohort/transport/client.hpp"
#include "cohort/examples/example_services.hpp"
#include "test_node.hpp"

using namespace cohort;
using namespace cohort::test;
using namespace std::chrono_literals;

namespace {

std::atomic<int> packs{0}, unpacks{0}, copies{0};
/// Where the last packing ran, and where typed_tally's handler last ran.
std::mutex threads_mutex;
std::thread::id packed_on, handled_on;

/// Arguments and results whose every packing and decoding is counted.
struct counted_args {
  std::string text;
  std::int64_t amount = 0;
  counted_args() = default;
  counted_args(std::string t, std::int64_t a) : text(std::move(t)), amount(a) {}
  counted_args(const counted_args& o) : text(o.text), amount(o.amount) { ++copies; }
  counted_args(counted_args&&) = default;
  counted_args& operator=(const counted_args& o) {
    ++copies;
    text = o.text;
    amount = o.amount;
    return *this;
  }
  counted_args& operator=(counted_args&&) = default;
  template <class Packer>
  void msgpack_pack(Packer& pk) const {
    ++packs;
    {
      std::lock_guard<std::mutex> guard(threads_mutex);
      packed_on = std::this_thread::get_id();
    }
    pk.pack_map(2);
    pk.pack(std::string_view("text")), pk.pack(text);
    pk.pack(std::string_view("amount")), pk.pack(amount);
  }
  void msgpack_unpack(const msgpack::object& o) {
    ++unpacks;
    if (o.type != msgpack::type::MAP) throw msgpack::type_error();
    for (const auto& kv : o.via.map) {
      auto k = kv.key.as<std::string>();
      if (k == "text") kv.val.convert(text);
      if (k == "amount") kv.val.convert(amount);
    }
  }
};

/// The same shape, another C++ type.
struct look_alike {
  std::string text;
  std::int64_t amount = 0;
  COHORT_FIELDS(text, amount);
};

/// Arguments and results that cannot be copied: they go as bytes.
struct move_only {
  std::unique_ptr<std::string> text = std::make_unique<std::string>();
  move_only() = default;
  explicit move_only(std::string t) : text(std::make_unique<std::string>(std::move(t))) {}
  move_only(move_only&&) = default;
  move_only& operator=(move_only&&) = default;
  template <class Packer>
  void msgpack_pack(Packer& pk) const {
    pk.pack_map(1);
    pk.pack(std::string_view("text")), pk.pack(*text);
  }
  void msgpack_unpack(const msgpack::object& o) {
    std::map<std::string, std::string> m;
    o.convert(m);
    *text = m["text"];
  }
};

struct relay_args {
  std::string how;  ///< same, later, other, tally
  std::string text;
  std::int64_t amount = 0;
  std::string key;
  std::string idem;
  COHORT_FIELDS(how, text, amount, key, idem);
};

struct relay_reply {
  std::string text;
  std::int64_t amount = 0;
  std::string error;
  COHORT_FIELDS(text, amount, error);
};

struct tally_state {
  std::int64_t total = 0;
  COHORT_FIELDS(total);
};

std::vector<service_definition> catalog() {
  auto c = example_services();
  c.push_back(worker_service("typed_echo")
                  // By value: the arguments are moved in, and the result moved out.
                  .method("echo", [](method_context&, counted_args a) {
                    a.text += "!";
                    return a;
                  })
                  .method("echo_move_only",
                          [](method_context&, move_only a) {
                            *a.text += "#";
                            return a;
                          })
                  .method("echo_later",
                          [](method_context&, const counted_args& a, responder<counted_args> respond) {
                            respond(counted_args{a.text + "?", a.amount});
                          })
                  .build());
  c.push_back(entity_service<tally_state>("typed_tally")
                  .method("add",
                          [](entity_context<tally_state>& ctx, const counted_args& a) {
                            ctx.state().total += a.amount;
                            {
                              std::lock_guard<std::mutex> guard(threads_mutex);
                              handled_on = std::this_thread::get_id();
                            }
                            return counted_args{ctx.key(), ctx.state().total};
                          })
                  .build());
  c.push_back(worker_service("typed_caller")
                  .method("relay",
                          [](method_context& ctx, const relay_args& a, responder<relay_reply> respond) {
                            auto done = [respond](auto r) {
                              if (!r) return respond(relay_reply{"", 0, r.error().code});
                              respond(relay_reply{r->text, r->amount, ""});
                            };
                            call_options o;
                            o.key = a.key;
                            o.idempotency_key = a.idem;
                            if (a.how == "same")
                              ctx.call<counted_args>("typed_echo", "echo", counted_args{a.text, a.amount}, done, o);
                            else if (a.how == "later")
                              ctx.call<counted_args>("typed_echo", "echo_later", counted_args{a.text, a.amount}, done, o);
                            else if (a.how == "move_only")
                              ctx.call<move_only>("typed_echo", "echo_move_only", move_only(a.text),
                                                  [respond](result<move_only> r) {
                                                    if (!r) return respond(relay_reply{"", 0, r.error().code});
                                                    respond(relay_reply{*r->text, 0, ""});
                                                  });
                            else if (a.how == "other")
                              ctx.call<look_alike>("typed_echo", "echo", look_alike{a.text, a.amount}, done, o);
                            else if (a.how == "other_long")  // a text of `amount` characters, made here
                              ctx.call<look_alike>("typed_echo", "echo",
                                                   look_alike{std::string(static_cast<std::size_t>(a.amount), 'x'), 0},
                                                   done, o);
                            else
                              ctx.call<counted_args>("typed_tally", "add", counted_args{a.text, a.amount}, done, o);
                          })
                  .build());
  return c;
}

std::unique_ptr<node> start(const node_config& cfg) {
  auto n = node::start(cfg, catalog());
  if (!n) FAIL("node did not start: " << n.error().message);
  return std::move(*n);
}

relay_reply relay(client& c, relay_args a) {
  auto r = c.call_as<relay_reply>("typed_caller", "relay", a);
  REQUIRE(r.ok());
  return *r;
}

}  // namespace

TEST_CASE("a call between services of one process passes its arguments and result as values, never packed",
          "[runtime][typed]") {
  temp_dir dir;
  auto n = start(loopback_config(dir.path(), catalog()));
  client c(n->endpoints().front());
  packs = 0, unpacks = 0;
  for (int i = 0; i < 20; ++i) {
    auto r = relay(c, {"same", "v" + std::to_string(i), i, "", ""});
    CHECK(r.error.empty());
    CHECK(r.text == "v" + std::to_string(i) + "!");
    CHECK(r.amount == i);
    auto later = relay(c, {"later", "w", i, "", ""});
    CHECK(later.text == "w?");
    CHECK(later.amount == i);
  }
  CHECK(packs == 0);
  CHECK(unpacks == 0);
  // A type that cannot be copied goes as bytes, and arrives all the same.
  auto moved = relay(c, {"move_only", "m", 0, "", ""});
  CHECK(moved.error.empty());
  CHECK(moved.text == "m#");
}

TEST_CASE("a callee whose handler takes const A& reads the caller's value in place, a by-value one gets one copy",
          "[runtime][typed]") {
  temp_dir dir;
  auto n = start(loopback_config(dir.path(), catalog()));
  client c(n->endpoints().front());
  // The caller's value becomes the request's (typed_payload copies the
  // caller's argument once). echo (by value) copies it out of the request
  // and moves it back; echo_later (const&) reads it where it is and answers
  // a new value, moved.
  auto copies_per_call = [&](const std::string& how) {
    relay(c, {how, "warm", 0, "", ""});
    copies = 0;
    for (int i = 0; i < 10; ++i) CHECK(relay(c, {how, "t", i, "", ""}).error.empty());
    return copies.load() / 10.0;
  };
  CHECK(copies_per_call("same") == 2.0);
  CHECK(copies_per_call("later") == 1.0);
}

TEST_CASE("a callee of another argument type, and a client, get the bytes as before", "[runtime][typed]") {
  temp_dir dir;
  auto n = start(loopback_config(dir.path(), catalog()));
  client c(n->endpoints().front());
  packs = 0, unpacks = 0;
  for (int i = 0; i < 10; ++i) {
    // The caller sends a look_alike: typed_echo decodes it into its own type,
    // and its result is packed for the caller, which reads a look_alike.
    auto r = relay(c, {"other", "o", i, "", ""});
    CHECK(r.error.empty());
    CHECK(r.text == "o!");
    CHECK(r.amount == i);
  }
  CHECK(unpacks == 10);
  CHECK(packs == 10);
  packs = 0, unpacks = 0;
  for (int i = 0; i < 10; ++i) {
    // Over the socket: decoded from the frame, the result packed for it.
    auto r = c.call_as<look_alike>("typed_echo", "echo", look_alike{"s", i});
    REQUIRE(r.ok());
    CHECK(r->text == "s!");
  }
  CHECK(unpacks == 10);
  CHECK(packs == 10);
}

TEST_CASE("a value packed for a callee of another type past the node's limits is too_large, as from a socket",
          "[runtime][typed]") {
  // The callee decodes the bytes with the node's [limits], as it would a
  // frame: a string past max_string is too_large there, and must be here.
  temp_dir dir;
  auto cfg = loopback_config(dir.path(), catalog());
  cfg.limits.max_string = 100;
  auto n = start(cfg);
  client c(n->endpoints().front());
  auto refused = relay(c, {"other_long", "", 101, "", ""});
  CHECK(refused.error == "too_large");
  auto served = relay(c, {"other_long", "", 100, "", ""});
  CHECK(served.error.empty());
  CHECK(served.text == std::string(100, 'x') + "!");
}

TEST_CASE("a result for a caller outside the process is packed on the handler's thread, not the store's committer",
          "[runtime][typed]") {
  // The entity's reply waits for its write, and is sent from the committer's
  // thread: a result still a value then would be packed there.
  temp_dir dir;
  auto n = start(loopback_config(dir.path(), catalog()));
  client c(n->endpoints().front());
  for (int i = 1; i <= 5; ++i) {
    auto r = c.call_as<look_alike>("typed_tally", "add", look_alike{"", 1}, keyed("t"));
    REQUIRE(r.ok());
    CHECK(r->amount == i);
    std::lock_guard<std::mutex> guard(threads_mutex);
    CHECK(packed_on == handled_on);
  }
}

TEST_CASE("an idempotent entity call made with a value is fingerprinted, recorded and answered again",
          "[runtime][typed]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path(), catalog());
  {
    auto n = start(cfg);
    client c(n->endpoints().front());
    auto first = relay(c, {"tally", "", 5, "k", "i1"});
    CHECK(first.error.empty());
    CHECK(first.text == "k");
    CHECK(first.amount == 5);
    // The same request again: the recorded result, no second effect.
    auto again = relay(c, {"tally", "", 5, "k", "i1"});
    CHECK(again.error.empty());
    CHECK(again.amount == 5);
    // The same key with other arguments: refused (the fingerprint is of the packed value).
    auto reused = relay(c, {"tally", "", 6, "k", "i1"});
    CHECK(reused.error == "idempotency_key_reused");
    auto next = relay(c, {"tally", "", 1, "k", "i2"});
    CHECK(next.amount == 6);
  }
  // The record and the state were written as bytes: a restarted node reads them back.
  auto n = start(cfg);
  client c(n->endpoints().front());
  auto again = relay(c, {"tally", "", 5, "k", "i1"});
  CHECK(again.amount == 5);
  CHECK(relay(c, {"tally", "", 2, "k", "i3"}).amount == 8);
}
