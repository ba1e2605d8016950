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
    child_process p(argv);
    auto code = p.wait();
    REQUIRE(code);
    return {*code, p.out(), p.err()};
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
