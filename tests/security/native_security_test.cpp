// Security of the native fronts: CURVE keys, the trust list and its roles,
// the caller identity, the registry, the admin endpoint, public addresses,
// key rotation. Each test starts a real node in process and real ZeroMQ
// clients with real keys; refusals are observed as a client sees them.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "cohort/examples/example_messages.hpp"
#include "cohort/security/client_keys.hpp"
#include "cohort/security/keys.hpp"
#include "cohort/transport/client.hpp"
#include "cohort/transport/json_bridge.hpp"
#include "test_keys.hpp"
#include "test_node.hpp"

using namespace cohort;
using namespace cohort::examples;
using namespace cohort::test;
using namespace std::chrono_literals;

namespace {

security::trusted_peer peer(const test_key& k, security::role r, std::vector<std::string> services = {},
                            security::admin_access access = security::admin_access::read) {
  security::trusted_peer p;
  p.name = k.name;
  p.kind = r;
  p.public_key = k.pair.public_key;
  p.services = std::move(services);
  p.access = access;
  return p;
}

std::string node_public_key(const std::string& data_dir) {
  auto pub = security::read_public_key(data_dir + "/keys/node.key.pub");
  REQUIRE(pub);
  return *pub;
}

call_options quick(std::chrono::milliseconds t = 700ms) {
  call_options o;
  o.timeout = t;
  return o;
}

nlohmann::json admin_call(const std::string& endpoint, const std::optional<curve_client_keys>& keys,
                          const std::string& verb, const std::string& args = "{}", error_info* err = nullptr) {
  client c(endpoint, {}, {}, keys);
  auto r = c.call("admin", verb, *json_to_msgpack(args), quick(2000ms));
  if (!r.ok()) {
    if (err) *err = *r.error;
    return nullptr;
  }
  return nlohmann::json::parse(*msgpack_to_json(r.payload));
}

std::optional<curve_client_keys> local_operator(const std::string& data_dir, const std::string& endpoint) {
  security::key_choice ops;
  ops.keys_dir = data_dir + "/keys";
  ops.own_name = "operator";
  auto keys = security::find_client_keys(endpoint, ops);
  REQUIRE(keys);
  return *keys;
}

/// A registry heartbeat as a node sends it (docs/protocol.md).
struct registration {
  std::string endpoint;
  std::vector<std::string> services;
  MSGPACK_DEFINE_MAP(endpoint, services);
};

}  // namespace

TEST_CASE("key files: the secret is written 0600 and read back, a readable or mismatched one is refused",
          "[security][keys]") {
  temp_dir dir;
  auto k = make_key(dir.path(), "alice");
  struct stat st {};
  REQUIRE(::stat(k.file.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  auto back = security::read_key_pair(k.file);
  REQUIRE(back);
  CHECK(back->public_key == k.pair.public_key);
  CHECK(back->secret_key == k.pair.secret_key);
  CHECK(*security::read_public_key(k.file + ".pub") == k.pair.public_key);
  // Not overwritten by a second `keys new`.
  CHECK_FALSE(security::write_key_pair(k.file, security::generate_key_pair(), "alice"));

  ::chmod(k.file.c_str(), 0644);
  auto loose = security::read_key_pair(k.file);
  REQUIRE_FALSE(loose);
  CHECK_THAT(loose.error().message, Catch::Contains("readable by others"));
  ::chmod(k.file.c_str(), 0600);

  auto other = security::generate_key_pair();
  auto mixed = dir.path() + "/mixed.key";
  std::ofstream(mixed) << "public = \"" << k.pair.public_key << "\"\nsecret = \"" << other.secret_key << "\"\n";
  ::chmod(mixed.c_str(), 0600);
  auto bad = security::read_key_pair(mixed);
  REQUIRE_FALSE(bad);
  CHECK_THAT(bad.error().message, Catch::Contains("does not belong"));
  CHECK_FALSE(security::is_curve_key("not a key"));
  CHECK(security::is_curve_key(other.public_key));
}

TEST_CASE("a node made with no setup has its keys and its local operator, and keyless loopback clients are anonymous",
          "[security]") {
  temp_dir dir;
  auto n = start_node(loopback_config(dir.path()));
  struct stat st {};
  REQUIRE(::stat((dir.path() + "/keys/node.key").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  REQUIRE(::stat((dir.path() + "/keys/operator.key").c_str(), &st) == 0);

  client anonymous(n->endpoints().front());
  auto who = anonymous.call_as<hello_reply>("greeter", "whoami", no_args{});
  REQUIRE(who.ok());
  CHECK(who->greeting == "anonymous");
  // The caller cannot claim to be someone else: the header's caller is replaced.
  envelope forged;
  forged.service = "greeter";
  forged.method = "whoami";
  forged.caller = "admin-of-everything";
  std::optional<reply> got;
  anonymous.call_async(forged, pack(no_args{}), 2000ms, [&](reply&& r) { got = std::move(r); });
  REQUIRE(anonymous.drain(3000ms));
  REQUIRE(got->ok());
  CHECK(got->as<hello_reply>()->greeting == "anonymous");

  // The admin endpoint takes no keyless operator, and takes the local one.
  error_info err;
  CHECK(admin_call(n->admin_endpoint(), std::nullopt, "status", "{}", &err).is_null());
  CHECK(err.is(errc::timeout));  // the handshake was refused: nothing was ever delivered
  auto status = admin_call(n->admin_endpoint(), local_operator(dir.path(), n->admin_endpoint()), "status");
  REQUIRE(status.is_object());
  CHECK(status["services"].size() == 4);
}

TEST_CASE("internal methods are closed to keyless clients unless the node is set up for crash drills", "[security]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path());
  cfg.allow_fault_injection = false;  // the default of a real node
  auto n = start_node(cfg);
  client anonymous(n->endpoints().front());
  auto crash = anonymous.call("greeter", "crash", pack(fail_args{"", "boom"}));
  REQUIRE(crash.error);
  CHECK(crash.error->is(errc::forbidden));
  CHECK_THAT(crash.error->message, Catch::Contains("internal"));
  CHECK(status_of(*n, "greeter").restarts == 0);
  CHECK(anonymous.call_as<hello_reply>("greeter", "hello", hello_args{"still"}).ok());  // public methods are open
  n->stop();

  temp_dir drill_dir;
  auto drill = loopback_config(drill_dir.path());  // allow_fault_injection = true: keyless crash drills work
  auto d = start_node(drill);
  client local(d->endpoints().front());
  auto crashed = local.call("greeter", "crash", pack(fail_args{"", "boom"}));
  REQUIRE(crashed.error);
  CHECK(crashed.error->is(errc::internal));  // it ran, and crashed its actor
  d->stop();
}

TEST_CASE("a forged registry heartbeat from a keyless peer is ignored; keyless callers may not use the registry",
          "[security][registry]") {
  temp_dir dir;
  auto n = start_node(loopback_config(dir.path()));
  client attacker(n->endpoints().front());
  for (int i = 0; i < 5; ++i)
    REQUIRE(attacker.send_oneway("_registry", "heartbeat", pack(registration{"tcp://127.0.0.1:9", {"payments"}})));
  // As a request it is refused in words.
  auto asked = attacker.call("_registry", "heartbeat", pack(registration{"tcp://127.0.0.1:9", {"payments"}}));
  REQUIRE(asked.error);
  CHECK(asked.error->is(errc::forbidden));
  // Nothing was registered: 'payments' is still unknown here, and the registry lists nothing.
  auto r = attacker.call("payments", "authorize", pack(no_args{}), quick());
  REQUIRE(r.error);
  CHECK(r.error->is(errc::unknown_service));
  auto registry = admin_call(n->admin_endpoint(), local_operator(dir.path(), n->admin_endpoint()), "registry");
  REQUIRE(registry.is_object());
  CHECK(registry["instances"].empty());
  auto status = admin_call(n->admin_endpoint(), local_operator(dir.path(), n->admin_endpoint()), "status");
  CHECK(status["metrics"]["refused_registrations"].get<int>() >= 6);
}

TEST_CASE("with keys required, only trusted clients get in, each for its own services and never for internal methods",
          "[security][roles]") {
  temp_dir dir, keys;
  auto alice = make_key(keys.path(), "alice"), bob = make_key(keys.path(), "bob"),
       stranger = make_key(keys.path(), "stranger"), ops = make_key(keys.path(), "ops");
  auto cfg = loopback_config(dir.path());
  cfg.security.keyless_loopback = false;
  cfg.security.peers = {peer(alice, security::role::client, {"greeter"}), peer(bob, security::role::client, {"*"}),
                        peer(ops, security::role::operator_)};
  auto n = start_node(cfg);
  const auto server = node_public_key(dir.path());
  const auto& ep = n->endpoints().front();

  client keyless(ep);
  auto none = keyless.call("greeter", "hello", pack(hello_args{"x"}), quick());
  REQUIRE(none.error);
  CHECK((none.error->is(errc::timeout) && none.local));  // refused at the handshake

  client unknown(ep, {}, {}, stranger.to(server));
  auto un = unknown.call("greeter", "hello", pack(hello_args{"x"}), quick());
  REQUIRE(un.error);
  CHECK((un.error->is(errc::timeout) && un.local));

  client wrong_server(ep, {}, {}, alice.to(bob));  // a node that is not who it should be is never talked to
  CHECK(wrong_server.call("greeter", "hello", pack(hello_args{"x"}), quick()).error->is(errc::timeout));

  client operator_on_front(ep, {}, {}, ops.to(server));
  CHECK(operator_on_front.call("greeter", "hello", pack(hello_args{"x"}), quick()).error->is(errc::timeout));

  client a(ep, {}, {}, alice.to(server));
  auto who = a.call_as<hello_reply>("greeter", "whoami", no_args{});
  REQUIRE(who.ok());
  CHECK(who->greeting == "alice");
  auto other = a.call("counter", "get", pack(no_args{}), keyed("k"));
  REQUIRE(other.error);
  CHECK(other.error->is(errc::forbidden));
  CHECK_THAT(other.error->message, Catch::Contains("alice") && Catch::Contains("counter"));

  client b(ep, {}, {}, bob.to(server));
  CHECK(b.call_as<counter_value>("counter", "add", add_args{2}, keyed("k")).ok());
  auto crash = b.call("greeter", "crash", pack(fail_args{"", "boom"}));
  REQUIRE(crash.error);
  CHECK(crash.error->is(errc::forbidden));
  CHECK_THAT(crash.error->message, Catch::Contains("internal"));
  CHECK(status_of(*n, "greeter").restarts == 0);
  // A caller's identity goes with the calls its request makes (visits calls greeter).
  CHECK(b.call_as<visit_reply>("visits", "record", hello_args{"bob"}).ok());
}

TEST_CASE("the admin endpoint: operators only, read access reads, control acts, clients and strangers are refused",
          "[security][admin]") {
  temp_dir dir, keys;
  auto reader = make_key(keys.path(), "reader"), boss = make_key(keys.path(), "boss"), app = make_key(keys.path(), "app");
  auto cfg = loopback_config(dir.path());
  cfg.security.peers = {peer(reader, security::role::operator_), peer(boss, security::role::operator_, {}, security::admin_access::control),
                        peer(app, security::role::client, {"*"})};
  auto n = start_node(cfg);
  const auto server = node_public_key(dir.path());
  const auto& admin = n->admin_endpoint();

  error_info err;
  CHECK(admin_call(admin, app.to(server), "status", "{}", &err).is_null());
  CHECK(err.is(errc::timeout));  // a client key is not an operator's: refused at the handshake
  CHECK(admin_call(admin, reader.to(server), "status").is_object());
  CHECK(admin_call(admin, reader.to(server), "restart", R"({"target":"greeter"})", &err).is_null());
  CHECK(err.is(errc::forbidden));
  CHECK_THAT(err.message, Catch::Contains("reader") && Catch::Contains("control"));
  CHECK(admin_call(admin, reader.to(server), "stop", R"({"target":"greeter"})", &err).is_null());
  CHECK(err.is(errc::forbidden));
  CHECK(status_of(*n, "greeter").state == "up");
  auto done = admin_call(admin, boss.to(server), "stop", R"({"target":"greeter"})");
  REQUIRE(done.is_object());
  CHECK(eventually([&] { return status_of(*n, "greeter").state != "up"; }));
}

TEST_CASE("a cluster member refuses to start with a keyless loopback listener, naming the fix",
          "[security][cluster]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path());  // keyless loopback: the development default
  cfg.cluster.etcd = {"http://127.0.0.1:9"};  // never reached: the node refuses before it joins
  auto refused = node::start(cfg, example_services());
  REQUIRE_FALSE(refused);
  CHECK(refused.error().is(errc::bad_request));
  CHECK_THAT(refused.error().message, Catch::Contains("keyless_loopback = false"));
}

TEST_CASE("a public address without keys and a trust list refuses to start; insecure = true is a choice",
          "[security][public]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path());
  cfg.listen = {"tcp://0.0.0.0:*"};
  auto refused = node::start(cfg, example_services());
  REQUIRE_FALSE(refused);
  CHECK_THAT(refused.error().message, Catch::Contains("refusing to listen on tcp://0.0.0.0:*") &&
                                          Catch::Contains("insecure = true"));
  cfg.listen = {"tcp://127.0.0.1:*"};
  cfg.admin = "tcp://0.0.0.0:*";
  REQUIRE_FALSE(node::start(cfg, example_services()));

  // A remote on another host whose key nobody named: this node will not send it anything in plain text.
  cfg.admin = "tcp://127.0.0.1:*";
  remote_service_config far;
  far.name = "payments";
  far.endpoints = {"tcp://192.0.2.7:7400"};
  cfg.remotes = {far};
  auto unknown = node::start(cfg, example_services());
  REQUIRE_FALSE(unknown);
  CHECK_THAT(unknown.error().message, Catch::Contains("no key is known for tcp://192.0.2.7:7400"));

  cfg.remotes.clear();
  cfg.listen = {"tcp://0.0.0.0:*"};
  cfg.security.insecure = true;
  auto open = node::start(cfg, example_services());
  REQUIRE(open);
}

TEST_CASE("keys rotate through the trust file without a restart: the new key gets in, the old one is refused",
          "[security][rotation]") {
  temp_dir dir, keys;
  auto old_key = make_key(keys.path(), "app-2025"), new_key = make_key(keys.path(), "app-2026");
  const auto trust = keys.path() + "/trust.toml";
  std::ofstream(trust) << old_key.trust_entry("client", "services = [\"greeter\"]\n", "peer");
  auto cfg = loopback_config(dir.path());
  cfg.security.keyless_loopback = false;
  cfg.security.trust_file = trust;
  cfg.security.reload_every = 50ms;
  auto n = start_node(cfg);
  const auto server = node_public_key(dir.path());
  client before(n->endpoints().front(), {}, {}, old_key.to(server));
  REQUIRE(before.call("greeter", "hello", pack(hello_args{"x"})).ok());
  client early(n->endpoints().front(), {}, {}, new_key.to(server));
  REQUIRE(early.call("greeter", "hello", pack(hello_args{"x"}), quick()).error->is(errc::timeout));

  // Step 1: both keys. Step 2: the new one only.
  std::ofstream(trust + ".tmp") << old_key.trust_entry("client", "services = [\"greeter\"]\n", "peer")
                                << new_key.trust_entry("client", "services = [\"greeter\"]\n", "peer");
  std::filesystem::rename(trust + ".tmp", trust);
  CHECK(eventually([&] {
    client fresh(n->endpoints().front(), {}, {}, new_key.to(server));
    return fresh.call("greeter", "hello", pack(hello_args{"x"}), quick(300ms)).ok();
  }));
  std::ofstream(trust + ".tmp") << new_key.trust_entry("client", "services = [\"greeter\"]\n", "peer");
  std::filesystem::rename(trust + ".tmp", trust);
  // The old key's open connection is refused per request from now on.
  CHECK(eventually([&] {
    auto r = before.call("greeter", "hello", pack(hello_args{"x"}), quick(300ms));
    return r.error && r.error->is(errc::unauthenticated);
  }));
  client after(n->endpoints().front(), {}, {}, new_key.to(server));
  CHECK(after.call("greeter", "hello", pack(hello_args{"x"})).ok());
  // A broken trust file keeps the list read before.
  std::ofstream(trust + ".tmp") << "[[peer]]\nname = \"x\"\nrole = \"wizard\"\n";
  std::filesystem::rename(trust + ".tmp", trust);
  std::this_thread::sleep_for(200ms);
  CHECK(after.call("greeter", "hello", pack(hello_args{"x"})).ok());
}

TEST_CASE("[security] config: every entry is checked and errors name the key and line", "[security][config]") {
  const std::vector<std::string> known{"greeter", "counter"};
  auto key = security::generate_key_pair().public_key;
  auto ok = parse_node_config("[security]\nkeyless_loopback = false\n[[security.peer]]\nname = \"a\"\nrole = \"client\"\nkey = \"" + key +
                                  "\"\nservices = [\"greeter\"]\n",
                              "t.toml", known);
  REQUIRE(ok);
  REQUIRE(ok->security.peers.size() == 1);
  CHECK(ok->security.peers[0].may_call("greeter"));
  CHECK_FALSE(ok->security.peers[0].may_call("counter"));
  CHECK_FALSE(ok->security.keyless_loopback);
  auto bad_role = parse_node_config("[[security.peer]]\nname = \"a\"\nrole = \"wizard\"\nkey = \"" + key + "\"\n", "t.toml", known);
  REQUIRE_FALSE(bad_role);
  CHECK_THAT(bad_role.error().message, Catch::Contains("t.toml:1") && Catch::Contains("'role'"));
  auto bad_key = parse_node_config("[[security.peer]]\nname = \"a\"\nrole = \"node\"\nkey = \"short\"\n", "t.toml", known);
  REQUIRE_FALSE(bad_key);
  CHECK_THAT(bad_key.error().message, Catch::Contains("Z85"));
  auto node_services = parse_node_config("[[security.peer]]\nname = \"a\"\nrole = \"node\"\nkey = \"" + key +
                                             "\"\nservices = [\"x\"]\n", "t.toml", known);
  REQUIRE_FALSE(node_services);
  CHECK_THAT(node_services.error().message, Catch::Contains("'services' is for clients"));
  auto unknown = parse_node_config("[security]\nkeyless = true\n", "t.toml", known);
  REQUIRE_FALSE(unknown);
  CHECK_THAT(unknown.error().message, Catch::Contains("security.keyless"));
}
