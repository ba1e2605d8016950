// etcd_launch: how tests and benchmarks start a real etcd (Debian's
// etcd-server) of their own: free loopback ports, the command line (one
// member, logs to a file so its output never fills a pipe) and the health
// check. No test framework here: the bench uses it too.
#pragma once

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "child_process.hpp"

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

/// The command line of a one-member etcd serving clients at `client_url`.
inline std::vector<std::string> etcd_command(const std::string& data_dir, const std::string& client_url,
                                             const std::string& peer_url, const std::string& log_file) {
  return {"/usr/bin/etcd", "--name", "m", "--data-dir", data_dir, "--listen-client-urls", client_url,
          "--advertise-client-urls", client_url, "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls",
          peer_url, "--initial-cluster", "m=" + peer_url, "--logger=zap", "--log-outputs=" + log_file};
}

/// Waits (at most `limit`) until etcd at `client_url` says it is healthy; `prefix` runs curl elsewhere
/// (e.g. {"ip", "netns", "exec", NS}).
inline bool etcd_healthy(const std::string& client_url, std::chrono::milliseconds limit = std::chrono::seconds(20),
                         std::vector<std::string> prefix = {}) {
  const auto until = std::chrono::steady_clock::now() + limit;
  for (;;) {
    auto argv = prefix;
    for (const char* a : {"/usr/bin/curl", "-s", "-m", "1"}) argv.emplace_back(a);
    argv.push_back(client_url + "/health");
    auto [rc, out, err] = run_command(argv);
    if (rc == 0 && out.find("\"health\":\"true\"") != std::string::npos) return true;
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace cohort::test
