// etcd_server: a real etcd (Debian's etcd-server) for a test, on free
// loopback ports with its own data dir, waited for until healthy; killed,
// reaped and removed at scope exit. Can be stopped and started again on the
// same ports and data (an etcd outage).
#pragma once

#include <memory>
#include <string>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <catch2/catch.hpp>

#include "child_process.hpp"
#include "temp_dir.hpp"

namespace cohort::test {

/// A TCP port nothing listens on now (the kernel's pick).
inline int free_tcp_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t n = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &n);
  ::close(fd);
  return ntohs(a.sin_port);
}

class etcd_server {
 public:
  etcd_server() : client_port_(free_tcp_port()), peer_port_(free_tcp_port()) { start(); }

  /// "http://127.0.0.1:<port>"
  [[nodiscard]] std::string url() const { return "http://127.0.0.1:" + std::to_string(client_port_); }

  void start() {
    const auto peer = "http://127.0.0.1:" + std::to_string(peer_port_);
    proc_ = std::make_unique<child_process>(std::vector<std::string>{
        "/usr/bin/etcd", "--name", "t", "--data-dir", dir_ / "data", "--listen-client-urls", url(),
        "--advertise-client-urls", url(), "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
        "--initial-cluster", "t=" + peer, "--logger=zap", "--log-outputs=" + (dir_ / "etcd.log")});
    // Healthy within 20 s (bounded), asked over its own HTTP endpoint.
    bool healthy = false;
    for (int i = 0; i < 200 && !healthy; ++i) {
      auto [rc, out, err] = run_command({"/usr/bin/curl", "-s", "-m", "1", url() + "/health"});
      healthy = rc == 0 && out.find("\"health\":\"true\"") != std::string::npos;
      if (!healthy) ::usleep(100000);
    }
    REQUIRE(healthy);
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
