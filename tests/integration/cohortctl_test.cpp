// Every cohortctl command against a running node process.
#include <catch2/catch.hpp>

#include <csignal>
#include <fstream>

#include <nlohmann/json.hpp>

#include "eventually.hpp"
#include "node_process.hpp"

using namespace cohort::test;
using namespace std::chrono_literals;

namespace {

/// Runs cohortctl against `n`'s admin endpoint: (exit code, stdout, stderr).
std::tuple<int, std::string, std::string> run_ctl(const node_process& n, std::vector<std::string> args) {
  std::vector<std::string> argv{COHORTCTL_BINARY, "--endpoint", n.admin, "--keys", n.keys};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv);
}

struct ctl_fixture : node_process {
  explicit ctl_fixture(bool allow_faults = true)
      : node_process("[services.greeter]\nworkers = 2\n[services.counter]\n",
                     std::string("allow_fault_injection = ") + (allow_faults ? "true\n" : "false\n")) {}

  std::tuple<int, std::string, std::string> ctl(std::vector<std::string> args) { return run_ctl(*this, std::move(args)); }

  void call(const std::string& target, const std::string& json, const std::string& key = "") {
    std::vector<std::string> argv{COHORT_BINARY, "call", target, json, "--endpoint", endpoint};
    if (!key.empty()) argv.insert(argv.end(), {"--key", key});
    child_process p(argv);
    p.wait();
  }
};

}  // namespace

TEST_CASE_METHOD(ctl_fixture, "cohortctl status lists services with state and restarts", "[integration][cohortctl]") {
  auto [code, out, err] = ctl({"status"});
  CHECK(code == 0);
  CHECK_THAT(out, Catch::Contains("SERVICE") && Catch::Contains("greeter") && Catch::Contains("counter") &&
                      Catch::Contains("up"));
  auto [jcode, json, jerr] = ctl({"--json", "status"});
  CHECK(jcode == 0);
  CHECK_THAT(json, Catch::Contains("\"state\": \"up\"") && Catch::Contains("\"restarts\": 0"));
  // The cohort program runs on the malloc it was linked with, and says so.
#ifdef COHORT_RUNS_ON_JEMALLOC
  CHECK_THAT(json, Catch::Contains("\"allocator\": \"jemalloc 5."));
  CHECK_THAT(out, Catch::Contains(", on jemalloc 5."));
#else
  CHECK_THAT(json, Catch::Contains("\"allocator\": \"glibc\""));
#endif
}

TEST_CASE_METHOD(ctl_fixture, "cohortctl crash and tree show the restart and its reason", "[integration][cohortctl]") {
  auto [code, out, err] = ctl({"crash", "greeter/worker-2"});
  CHECK(code == 0);
  CHECK(eventually([&] {
    auto tree = std::get<1>(ctl({"tree", "greeter"}));
    return tree.find("worker-2  worker, permanent, running, restarts 1, last failure: crash injected by operator") !=
           std::string::npos;
  }, 5s, 20ms));
}

TEST_CASE_METHOD(ctl_fixture, "cohortctl stop, start and restart a service", "[integration][cohortctl]") {
  CHECK(std::get<0>(ctl({"stop", "greeter"})) == 0);
  auto [scode, status, serr] = ctl({"status"});
  CHECK_THAT(status, Catch::Contains("down") && Catch::Contains("stopped by operator"));
  CHECK(std::get<0>(ctl({"start", "greeter"})) == 0);
  CHECK(std::get<0>(ctl({"restart", "greeter"})) == 0);
  auto [code, out, err] = ctl({"--json", "status"});
  CHECK_THAT(out, !Catch::Contains("\"state\": \"down\""));
}

TEST_CASE_METHOD(ctl_fixture, "cohortctl health says ready or names what is not, with its exit code", "[integration][cohortctl]") {
  auto [code, out, err] = ctl({"health"});
  CHECK(code == 0);
  CHECK_THAT(out, Catch::Contains(": ready"));
  REQUIRE(std::get<0>(ctl({"stop", "counter"})) == 0);
  auto [down, why, err2] = ctl({"health"});
  CHECK(down == 1);
  CHECK_THAT(why, Catch::Contains("not ready") && Catch::Contains("counter is down"));
}

TEST_CASE_METHOD(ctl_fixture, "cohortctl steers one child: stop, start, restart", "[integration][cohortctl]") {
  // Each command's effect shows in the tree, not only in the exit code.
  auto worker1 = [&] {
    auto [code, tree, err] = ctl({"tree", "greeter"});
    auto at = tree.find("worker-1  ");
    return at == std::string::npos ? std::string() : tree.substr(at, tree.find('\n', at) - at);
  };
  CHECK(std::get<0>(ctl({"stop", "greeter/worker-1"})) == 0);
  CHECK_THAT(worker1(), Catch::Contains("stopped"));
  CHECK(std::get<0>(ctl({"start", "greeter/worker-1"})) == 0);
  CHECK_THAT(worker1(), Catch::Contains("running"));
  CHECK(std::get<0>(ctl({"restart", "greeter/worker-1"})) == 0);
  CHECK_THAT(worker1(), Catch::Contains("running") && Catch::Contains("restarts 1"));
  call("counter.add", R"({"n":1})", "k1");
  CHECK(std::get<0>(ctl({"restart", "counter/entity/k1"})) == 0);
  auto [code, tree, err] = ctl({"tree", "counter"});
  CHECK_THAT(tree, Catch::Contains("entity/k1"));  // restarted: activated again at once
}

TEST_CASE_METHOD(ctl_fixture, "cohortctl reports unknown names with a non-zero exit", "[integration][cohortctl]") {
  auto [c1, o1, e1] = ctl({"restart", "nosuch"});
  CHECK(c1 == 1);
  CHECK_THAT(e1, Catch::Contains("unknown_service"));
  auto [c2, o2, e2] = ctl({"restart", "greeter/worker-9"});
  CHECK(c2 == 1);
  CHECK_THAT(e2, Catch::Contains("no child 'worker-9'"));
  auto [c3, o3, e3] = ctl({"tree", "nosuch"});
  CHECK(c3 == 1);
  auto [c4, o4, e4] = ctl({"frobnicate"});
  CHECK(c4 == 2);
}

TEST_CASE_METHOD(ctl_fixture, "cohortctl storage and backup", "[integration][cohortctl][storage]") {
  call("counter.add", R"({"n":3})", "k1");
  auto [code, out, err] = ctl({"storage", "counter"});
  CHECK(code == 0);
  CHECK_THAT(out, Catch::Contains("SIZE_ON_DISK") && Catch::Contains("counter"));
  auto [bcode, bout, berr] = ctl({"backup", "counter", "b1"});
  CHECK(bcode == 0);
  CHECK(std::filesystem::exists(dir / "d/backups/counter/b1/CURRENT"));  // under <data_dir>/backups
  auto [again, aout, aerr] = ctl({"backup", "counter", "b1"});
  CHECK(again == 1);  // never overwrites
  for (std::string outside : {"../../escape", "/etc/cohort", ".."}) {
    auto [ocode, oout, oerr] = ctl({"backup", "counter", outside});
    CHECK(ocode == 1);
    CHECK_THAT(oerr, Catch::Contains("plain file name"));
  }
  call("counter.add", R"({"n":10})", "k1");
  auto [rcode, rout, rerr] = ctl({"restore", "counter", "b1"});
  CHECK(rcode == 0);
  CHECK_THAT(rout, Catch::Contains("restored"));
  auto [vcode, vout, verr] = ctl({"storage", "verify", "counter"});
  CHECK(vcode == 0);
  CHECK_THAT(vout, Catch::Contains("no damage"));
  auto [scode, sout, serr] = ctl({"storage", "greeter"});
  CHECK(scode == 1);
  CHECK_THAT(serr, Catch::Contains("no store"));
}

TEST_CASE("cohortctl crash is refused unless the node allows fault injection", "[integration][cohortctl]") {
  ctl_fixture f(false);
  auto [code, out, err] = f.ctl({"crash", "greeter/worker-1"});
  CHECK(code == 1);
  CHECK_THAT(err, Catch::Contains("fault injection is off"));
}

TEST_CASE("cohortctl against a node that is not there fails by its deadline", "[integration][cohortctl]") {
  child_process p({COHORTCTL_BINARY, "--endpoint", "tcp://127.0.0.1:1", "--timeout", "200", "status"});
  auto code = p.wait();
  REQUIRE(code);
  CHECK(*code == 1);
  CHECK_THAT(p.err(), Catch::Contains("timeout"));
}

TEST_CASE("cohortctl with an endpoint that is not one is a usage error, exit 2", "[integration][cohortctl]") {
  child_process p({COHORTCTL_BINARY, "--endpoint", "garbage", "status"});
  auto code = p.wait();
  REQUIRE(code);
  CHECK(*code == 2);  // before the fix: abort, 134
  CHECK_THAT(p.err(), Catch::Contains("usage") && Catch::Contains("garbage"));
}

TEST_CASE("cohortctl to an endpoint where nothing listens says so within --timeout", "[integration][cohortctl]") {
  // An ipc path in a fresh directory: nothing can be listening there.
  temp_dir dir;
  child_process p({COHORTCTL_BINARY, "--endpoint", "ipc://" + (dir / "nobody.sock"), "--timeout", "300", "status"});
  auto code = p.wait();
  REQUIRE(code);
  CHECK(*code == 1);
  CHECK_THAT(p.err(), Catch::Contains("nothing answered at ipc://") && Catch::Contains("--timeout"));
}

TEST_CASE_METHOD(ctl_fixture, "cohortctl tree lists the live entities of an entity service", "[integration][cohortctl]") {
  call("counter.add", R"({"n":1})", "cart-7");
  call("counter.add", R"({"n":1})", "cart-8");
  auto [code, out, err] = ctl({"tree", "counter"});
  CHECK(code == 0);
  CHECK_THAT(out, Catch::Contains("entity/cart-7") && Catch::Contains("entity/cart-8"));
}

TEST_CASE("cohortctl registry shows each remote instance, its breaker and its counts", "[integration][cohortctl]") {
  auto backend = std::make_unique<node_process>("[services.greeter]\n");
  const std::string backend_endpoint = backend->endpoint;
  node_process front("[remote.greeter]\nendpoints = [\"" + backend_endpoint +
                     "\"]\nmax_retries = 0\nbreaker_failures = 2\nbreaker_cooldown_ms = 60000\nattempt_timeout_ms = 300\n");
  std::vector<std::string> call{COHORT_BINARY, "call", "greeter.hello", R"({"name":"r"})", "--endpoint", front.endpoint};
  for (int i = 0; i < 3; ++i) CHECK(run(call).first == 0);
  auto [code, out, err] = run_ctl(front, {"registry"});
  CHECK(code == 0);
  CHECK_THAT(out, Catch::Contains("SERVICE") && Catch::Contains("LAST SUCCESS"));
  CHECK_THAT(out, Catch::Contains(backend_endpoint) && Catch::Contains("config") && Catch::Contains("closed"));
  CHECK_THAT(out, Catch::Contains("s ago"));
  auto [jcode, jout, jerr] = run_ctl(front, {"--json", "registry"});
  REQUIRE(jcode == 0);
  auto j = nlohmann::json::parse(jout);
  REQUIRE(j["instances"].size() == 1);
  CHECK(j["instances"][0]["requests"] == 3);
  CHECK(j["instances"][0]["failures"] == 0);
  // The instance dies: two failed calls open its breaker, and the table says so.
  backend->proc->signal(SIGKILL);
  backend->proc->wait();
  for (int i = 0; i < 2; ++i) CHECK(run(call).first != 0);
  auto [code2, out2, err2] = run_ctl(front, {"--json", "registry"});
  REQUIRE(code2 == 0);
  auto j2 = nlohmann::json::parse(out2);
  CHECK(j2["instances"][0]["breaker"] == "open");
  CHECK(j2["instances"][0]["failures"] >= 2);
}
