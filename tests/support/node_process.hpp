// node_process: a `cohort run` process on ephemeral loopback ports with its own
// data dir, started from a config made of a [node] section plus `extra` TOML.
#pragma once

#include <fstream>
#include <memory>
#include <string>

#include <catch2/catch.hpp>

#include "child_process.hpp"
#include "temp_dir.hpp"

namespace cohort::test {

struct node_process {
  temp_dir dir;
  std::unique_ptr<child_process> proc;
  std::string endpoint, admin;

  /// `node_keys` go into [node]; `sections` follow it (e.g. "[services.greeter]\n").
  /// The stores go to `data_dir`, by default a folder of `dir`. Waits for
  /// "ready" (or "not ready": a node whose store cannot open still runs).
  explicit node_process(const std::string& sections, const std::string& node_keys = "", std::string data_dir = "") {
    auto cfg = dir / "n.toml";
    if (data_dir.empty()) data_dir = dir / "d";
    std::ofstream(cfg) << "[node]\nlisten = [\"tcp://127.0.0.1:*\"]\nadmin = \"tcp://127.0.0.1:*\"\ndata_dir = \""
                       << data_dir << "\"\n" << node_keys << sections;
    proc = std::make_unique<child_process>(std::vector<std::string>{COHORT_BINARY, "run", "--config", cfg});
    auto ep = proc->endpoint();
    REQUIRE(ep);
    endpoint = *ep;
    auto line = proc->wait_for_line("admin endpoint ");
    REQUIRE(line);
    admin = line->substr(line->find("admin endpoint ") + 15);
    REQUIRE(proc->wait_for_line("ready"));
  }
};

}  // namespace cohort::test
