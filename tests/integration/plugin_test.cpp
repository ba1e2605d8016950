// Services as plugins: `cohort run` loads a shared library named in its
// config and hosts its services, in process and in process isolation; a
// library built for something else is refused with a clear error before any
// of its code runs.
#include <catch2/catch.hpp>

#include <fstream>

#include <nlohmann/json.hpp>

#include "cohort/transport/client.hpp"
#include "cohort/transport/json_bridge.hpp"
#include "eventually.hpp"
#include "node_process.hpp"

using namespace cohort;
using namespace cohort::test;
using namespace std::chrono_literals;

namespace {

nlohmann::json call_json(client& c, const std::string& service, const std::string& method, const std::string& args,
                         const std::string& key = "") {
  call_options o;
  o.key = key;
  auto r = c.call(service, method, *json_to_msgpack(args), o);
  REQUIRE(r.ok());
  return nlohmann::json::parse(*msgpack_to_json(r.payload));
}

/// `cohort run` with the config `toml`: (exit code, stderr) of a node that refuses to start.
std::pair<int, std::string> refused_start(const std::string& toml) {
  temp_dir dir;
  std::ofstream(dir / "n.toml") << "[node]\nlisten = [\"tcp://127.0.0.1:*\"]\nadmin = \"\"\ndata_dir = \""
                                << (dir / "d") << "\"\n" << toml;
  auto [code, out, err] = run_command({COHORT_BINARY, "run", "--config", dir / "n.toml"}, 20s);
  return {code, err};
}

}  // namespace

TEST_CASE("cohort run hosts the services of a plugin named in its config, beside built-in ones",
          "[integration][plugins]") {
  node_process n(std::string("[services.tally]\nplugin = \"") + COHORT_TEST_PLUGIN +
                 "\"\n[services.words]\nplugin = \"" + COHORT_TEST_PLUGIN + "\"\n[services.greeter]\n");
  client c(n.endpoint);
  CHECK(call_json(c, "words", "count", R"({"body":"a plugin is loaded"})")["words"] == 4);
  CHECK(call_json(c, "tally", "add", R"({"n":2,"expire_after_ms":0})", "k")["value"] == 2);
  CHECK(call_json(c, "tally", "add", R"({"n":3,"expire_after_ms":0})", "k")["value"] == 5);
  CHECK(call_json(c, "greeter", "hello", R"({"name":"plugin"})")["greeting"] == "Hello, plugin!");
  // Supervised like any service: the tree shows it, the operator restarts it.
  CHECK(n.service_status("tally")["state"] == "up");
  auto [code, out, err] = run_command({COHORTCTL_BINARY, "--endpoint", n.admin, "--keys", n.keys, "restart", "tally"});
  CHECK(code == 0);
  CHECK(eventually([&] { return n.service_status("tally")["state"] == "up"; }));
  CHECK(call_json(c, "tally", "get", "null", "k")["value"] == 5);  // its state is in its store
}

TEST_CASE("a plugin's services run in process isolation too", "[integration][plugins][isolation]") {
  node_process n(std::string("[services.tally]\nplugin = \"") + COHORT_TEST_PLUGIN + "\"\n",
                 "isolation = \"process\"\n");
  REQUIRE(eventually([&] { return n.service_status("tally")["state"] == "up"; }, 10s, 20ms));
  CHECK(n.service_status("tally")["pid"].get<int>() > 0);
  client c(n.endpoint);
  CHECK(call_json(c, "tally", "add", R"({"n":7,"expire_after_ms":0})", "iso")["value"] == 7);
}

TEST_CASE("a library built for another plugin ABI, one without the entry point, and a missing file are refused clearly",
          "[integration][plugins]") {
  {
    auto [code, err] = refused_start(std::string("[services.tally]\nplugin = \"") + COHORT_WRONG_ABI_PLUGIN + "\"\n");
    CHECK(code == 2);
    CHECK_THAT(err, Catch::Contains("plugin ABI 999") && Catch::Contains("rebuild it"));
  }
  {
    auto [code, err] = refused_start(std::string("[services.tally]\nplugin = \"") + COHORT_NOT_A_PLUGIN + "\"\n");
    CHECK(code == 2);
    CHECK_THAT(err, Catch::Contains("cohort_plugin_v1") && Catch::Contains("Cohort plugin"));
  }
  {
    auto [code, err] = refused_start("[services.tally]\nplugin = \"/nonexistent/libtally.so\"\n");
    CHECK(code == 2);
    CHECK_THAT(err, Catch::Contains("/nonexistent/libtally.so") && Catch::Contains("cannot load"));
  }
  {
    auto [code, err] = refused_start(std::string("[services.ledger2]\nplugin = \"") + COHORT_TEST_PLUGIN + "\"\n");
    CHECK(code == 2);
    CHECK_THAT(err, Catch::Contains("does not provide a service 'ledger2'") && Catch::Contains("tally, words"));
  }
}
