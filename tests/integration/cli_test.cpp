// `cohort call` against a real node process.
#include <catch2/catch.hpp>

#include <fstream>

#include "node_process.hpp"

using namespace cohort::test;

namespace {

struct node_fixture : node_process {
  node_fixture() : node_process("[services.greeter]\n[services.counter]\n") {}

  /// Runs `cohort call ...`; returns exit code, stdout and stderr.
  std::tuple<int, std::string, std::string> call(std::vector<std::string> args) {
    std::vector<std::string> argv{COHORT_BINARY, "call"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back("--endpoint");
    argv.push_back(endpoint);
    return run_command(argv);
  }
};

}  // namespace

TEST_CASE_METHOD(node_fixture, "cohort call prints the JSON reply", "[integration][cli]") {
  auto [code, out, err] = call({"greeter.hello", R"({"name":"cli"})"});
  CHECK(code == 0);
  CHECK_THAT(out, Catch::Contains(R"("greeting": "Hello, cli!")"));
}

TEST_CASE_METHOD(node_fixture, "cohort call passes an entity key", "[integration][cli]") {
  auto [c1, o1, e1] = call({"counter.add", R"({"n":4})", "--key", "cli-k"});
  CHECK(c1 == 0);
  auto [c2, o2, e2] = call({"counter.get", "null", "--key", "cli-k"});
  CHECK(c2 == 0);
  CHECK_THAT(o2, Catch::Contains(R"("value": 4)"));
}

TEST_CASE_METHOD(node_fixture, "cohort call prints the error code and exits non-zero", "[integration][cli]") {
  auto [code, out, err] = call({"nosuch.method", "{}"});
  CHECK(code == 1);
  CHECK_THAT(err, Catch::Contains("error: unknown_service:"));
  auto [code2, out2, err2] = call({"greeter.sleep", R"({"ms":500})", "--timeout", "50"});
  CHECK(code2 == 1);
  CHECK_THAT(err2, Catch::Contains("error: timeout"));
}

TEST_CASE_METHOD(node_fixture, "cohort call rejects invalid JSON and a malformed target", "[integration][cli]") {
  auto [code, out, err] = call({"greeter.hello", "{name:"});
  CHECK(code == 2);
  CHECK_THAT(err, Catch::Contains("not valid JSON"));
  auto [code2, out2, err2] = call({"greeterhello", "{}"});
  CHECK(code2 == 2);
  CHECK_THAT(err2, Catch::Contains("SERVICE.METHOD"));
}

TEST_CASE("cohort restore puts a backup in place for a stopped node, and refuses while it runs", "[integration][cli][restore]") {
  auto n = std::make_unique<node_process>("[services.counter]\n");
  auto dir = n->dir.path();
  auto cohort = [&](std::vector<std::string> args) {
    std::vector<std::string> argv{COHORT_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv);
  };
  auto add = [&](const std::string& n_json) {
    REQUIRE(std::get<0>(cohort({"call", "counter.add", n_json, "--key", "r", "--endpoint", n->endpoint})) == 0);
  };
  add(R"({"n":2})");
  child_process backup({COHORTCTL_BINARY, "--endpoint", n->admin, "--keys", n->keys, "backup", "counter", "b1"});
  REQUIRE(backup.wait() == 0);
  add(R"({"n":40})");
  auto [busy, bout, berr] = cohort({"restore", "--config", dir + "/n.toml", "counter", "b1"});
  CHECK(busy == 1);
  CHECK_THAT(berr, Catch::Contains("running"));
  // Stop the node, keeping its directory.
  n->proc->signal(SIGTERM);
  REQUIRE(n->proc->wait(std::chrono::seconds(10)) == 0);
  auto [code, out, err] = cohort({"restore", "--config", dir + "/n.toml", "counter", "b1"});
  CHECK(code == 0);
  CHECK_THAT(out, Catch::Contains("restored"));
  child_process again({COHORT_BINARY, "run", "--config", dir + "/n.toml"});
  auto ep = again.endpoint();
  REQUIRE(ep);
  REQUIRE(again.wait_for_line("ready"));
  auto [gcode, gout, gerr] = cohort({"call", "counter.get", "null", "--key", "r", "--endpoint", *ep});
  CHECK(gcode == 0);
  CHECK_THAT(gout, Catch::Contains("\"value\": 2"));
}
