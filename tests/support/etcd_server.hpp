// etcd_server: a real etcd (Debian's etcd-server) for a test, on free
// loopback ports with its own data dir, waited for until healthy; killed,
// reaped and removed at scope exit. Can be stopped and started again on the
// same ports and data (an etcd outage).
#pragma once

#include <memory>
#include <string>

#include <catch2/catch.hpp>

#include "etcd_launch.hpp"
#include "temp_dir.hpp"

namespace cohort::test {

class etcd_server {
 public:
  etcd_server() : client_port_(free_tcp_port()), peer_port_(free_tcp_port()) { start(); }

  /// "http://127.0.0.1:<port>"
  [[nodiscard]] std::string url() const { return "http://127.0.0.1:" + std::to_string(client_port_); }

  void start() {
    const auto peer = "http://127.0.0.1:" + std::to_string(peer_port_);
    proc_ = std::make_unique<child_process>(etcd_command(dir_ / "data", url(), peer, dir_ / "etcd.log"));
    REQUIRE(etcd_healthy(url()));  // within 20 s, asked over its own HTTP endpoint
  }

  /// Stops it (SIGKILL): clients see it unreachable.
  void stop() { proc_.reset(); }

  /// Reads a key with etcdctl.
  [[nodiscard]] std::string get(const std::string& key) const {
    auto [rc, out, err] = run_command({"/usr/bin/etcdctl", "--endpoints", url(), "get", key, "--print-value-only"});
    return out;
  }

 private:
  temp_dir dir_;
  int client_port_, peer_port_;
  std::unique_ptr<child_process> proc_;
};

}  // namespace cohort::test
