// The demo: an embedded node with the example services and a scripted client
// session over real tcp loopback, printed as a transcript. Exits non-zero when
// any step does not behave as the transcript says.
#include <filesystem>
#include <iostream>
#include <unistd.h>

#include "cohort/actors/example_services.hpp"
#include "cohort/runtime/node.hpp"
#include "cohort/transport/client.hpp"
#include "cohort/transport/json_bridge.hpp"

namespace cohort {

namespace {

struct transcript {
  client& c;
  int failures = 0;

  /// Calls and prints; `expect` is "ok" or an error code.
  reply step(const std::string& what, const std::string& service, const std::string& method,
             const std::string& json, const std::string& expect, call_options opts = {}) {
    std::cout << "\n> " << what << "\n  " << service << "." << method << " " << json
              << (opts.key.empty() ? "" : "  [key " + opts.key + "]") << "\n";
    auto args = json_to_msgpack(json);
    auto r = c.call(service, method, *args, opts);
    std::string got = r.ok() ? "ok" : r.error->code;
    if (r.ok())
      std::cout << "  <- " << msgpack_to_json(r.payload).value() << "\n";
    else
      std::cout << "  <- error " << r.error->code << ": " << r.error->message << "\n";
    if (got != expect) {
      std::cout << "  !! expected " << expect << "\n";
      ++failures;
    }
    return r;
  }
};

}  // namespace

int run_demo() {
  auto data_dir = std::filesystem::temp_directory_path() / ("cohort-demo-" + std::to_string(::getpid()));
  auto cfg = default_node_config();
  cfg.listen = {"tcp://127.0.0.1:*"};
  cfg.admin = "tcp://127.0.0.1:*";
  cfg.http.listen.clear();
  cfg.data_dir = data_dir.string();
  auto n = node::start(cfg, example_services());
  if (!n) {
    std::cerr << "demo: cannot start the node: " << n.error().message << "\n";
    return 2;
  }
  const auto endpoint = (*n)->endpoints().front();
  std::cout << "Cohort demo: one node, services greeter (workers), counter (entities, RocksDB), visits\n"
            << "(calls the other two), reached over " << endpoint << " with msgpack envelopes.\n";

  int failures = 0;
  {
    client c(endpoint);
    transcript t{c};
    t.step("a stateless worker answers", "greeter", "hello", R"({"name":"Ada"})", "ok");
    call_options cart;
    cart.key = "ada";
    t.step("an entity actor is activated for key 'ada' and its state stored", "counter", "add", R"({"n":5})", "ok", cart);
    t.step("the same entity keeps its state", "counter", "add", R"({"n":2})", "ok", cart);
    t.step("read-only query", "counter", "get", "null", "ok", cart);
    t.step("a service calls two others (counter, then greeter) and combines the replies", "visits", "record",
           R"({"name":"ada"})", "ok");
    t.step("a business error has its own code; the actor keeps serving", "greeter", "fail",
           R"({"code":"out_of_stock","message":"no more widgets"})", "out_of_stock");
    t.step("a handler that throws crashes its actor, the caller hears 'internal'", "greeter", "crash",
           R"({"message":"boom"})", "internal");
    t.step("... and the restarted worker serves again", "greeter", "hello", R"({"name":"again"})", "ok");
    t.step("arguments of the wrong shape", "greeter", "hello", R"({"name":42})", "bad_request");
    t.step("unknown method", "greeter", "shout", "null", "unknown_method");
    t.step("unknown service", "billing", "charge", "null", "unknown_service");
    call_options quick;
    quick.timeout = std::chrono::milliseconds(100);
    t.step("a slow handler past the caller's deadline", "greeter", "sleep", R"({"ms":300})", "timeout", quick);

    std::cout << "\n> 64 requests in flight on one connection\n";
    int ok = 0;
    for (int i = 0; i < 64; ++i)
      c.call_async("greeter", "echo", *json_to_msgpack(R"({"data":"ping"})"), {}, [&](reply&& r) { ok += r.ok(); });
    c.drain(std::chrono::seconds(10));
    std::cout << "  <- " << ok << " of 64 replies ok\n";
    if (ok != 64) ++t.failures;
    failures = t.failures;
  }

  std::cout << "\nServices:\n";
  for (const auto& s : (*n)->services())
    std::cout << "  " << s.name << ": " << s.state << ", restarts " << s.restarts << ", activations "
              << s.activations << (s.last_failure.empty() ? "" : ", last failure: " + s.last_failure) << "\n";
  (*n)->stop();
  std::error_code ec;
  std::filesystem::remove_all(data_dir, ec);
  std::cout << "\n" << (failures == 0 ? "Demo complete: every step behaved as expected."
                                      : std::to_string(failures) + " step(s) did not behave as expected.")
            << "\n";
  return failures == 0 ? 0 : 1;
}

}  // namespace cohort
