// node_process: a `cohort run` process on ephemeral loopback ports with its own
// data dir, started from a config made of a [node] section plus `extra` TOML.
#pragma once

#include <filesystem>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "child_process.hpp"
#include "cohort/security/client_keys.hpp"
#include "cohort/transport/client.hpp"
#include "cohort/transport/json_bridge.hpp"
#include "temp_dir.hpp"

namespace cohort::test {

struct node_process {
  temp_dir dir;
  std::unique_ptr<child_process> proc;
  std::string endpoint, admin;
  /// The node's key folder (<data_dir>/keys, made on its first start): cohortctl's --keys.
  std::string keys;

  /// The CURVE keys of the node's local operator (made beside its own key on
  /// first start), for a client of the admin endpoint.
  std::optional<curve_client_keys> operator_keys() const {
    security::key_choice choice;
    choice.keys_dir = keys;
    choice.own_name = "operator";
    auto found = security::find_client_keys(admin, choice);
    REQUIRE(found);
    return *found;
  }

  /// One service's entry of the node's admin `status` (state, pid, in_flight, restarts, ...).
  nlohmann::json service_status(const std::string& name) const {
    client c(admin, {}, {}, operator_keys());
    auto r = c.call("admin", "status", *json_to_msgpack("{}"));
    INFO("admin status: " << (r.ok() ? std::string("ok") : r.error->code + ": " + r.error->message));
    REQUIRE(r.ok());
    auto j = nlohmann::json::parse(*msgpack_to_json(r.payload));
    for (auto& s : j["services"])
      if (s["name"] == name) return s;
    FAIL("no service " << name);
    return {};
  }

  /// `node_keys` go into [node]; `sections` follow it (e.g. "[services.greeter]\n").
  /// The stores go to `data_dir`, by default a folder of `dir`. Waits for
  /// "ready" (or "not ready": a node whose store cannot open still runs).
  /// `tmp` is the node's TMPDIR, where a node with isolated services makes its
  /// runtime directory (by default a folder of `dir`: a test's SIGKILL of the
  /// node at scope exit leaves nothing behind in /tmp).
  explicit node_process(const std::string& sections, const std::string& node_keys = "", std::string data_dir = "",
                        std::string tmp = "") {
    auto cfg = dir / "n.toml";
    if (tmp.empty()) tmp = dir / "tmp";
    std::filesystem::create_directories(tmp);
    if (data_dir.empty()) data_dir = dir / "d";
    keys = data_dir + "/keys";
    // COHORT_TEST_SCHEDULER_POLICY runs every node of a test run under one
    // scheduler policy (a whole suite under "affinity", say).
    std::string policy;
    if (const char* p = std::getenv("COHORT_TEST_SCHEDULER_POLICY"); p && *p && node_keys.find("scheduler_policy") == std::string::npos)
      policy = std::string("scheduler_policy = \"") + p + "\"\n";
    std::ofstream(cfg) << "[node]\nlisten = [\"tcp://127.0.0.1:*\"]\nadmin = \"tcp://127.0.0.1:*\"\ndata_dir = \""
                       << data_dir << "\"\n" << policy << node_keys << sections;
    proc = std::make_unique<child_process>(
        std::vector<std::string>{"/usr/bin/env", "TMPDIR=" + tmp, COHORT_BINARY, "run", "--config", cfg});
    auto ep = proc->endpoint();
    REQUIRE(ep);
    endpoint = *ep;
    auto line = proc->wait_for_line("admin endpoint ");
    REQUIRE(line);
    admin = line->substr(line->find("admin endpoint ") + 15);
    REQUIRE(proc->wait_for_line("ready"));
  }
};

/// The HTTP front's endpoint as the node printed it ("http://..." or "https://...").
inline std::string http_endpoint(node_process& n) {
  auto line = n.proc->wait_for_line("http listening on ", std::chrono::milliseconds(0));
  if (!line) {
    // It was printed before the admin line that node_process waited for: scan what was read.
    auto all = n.proc->out();
    auto at = all.find("http listening on ");
    REQUIRE(at != std::string::npos);
    return all.substr(at + 18, all.find('\n', at) - at - 18);
  }
  return line->substr(line->find("http listening on ") + 18);
}

/// Runs a command, returns (exit code, stdout).
inline std::pair<int, std::string> run(std::vector<std::string> argv) {
  auto [code, out, err] = run_command(std::move(argv));
  return {code, out};
}

}  // namespace cohort::test
