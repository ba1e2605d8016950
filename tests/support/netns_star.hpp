// netns_star: a hub namespace with a bridge and N host namespaces, each
// joined to the bridge by its own veth pair (10.233.X.k/24; the hub is .100),
// made by a test and removed when it ends (root only; CI runs as root). A
// host's link can be cut and healed on the hub side: it then reaches nobody
// (not etcd, not the other hosts) and nobody reaches it.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <string>
#include <vector>

#include "netns.hpp"

namespace cohort::test {

struct netns_star {
  std::string tag, hub;
  std::vector<std::string> hosts;
  int net;
  netns_star(const std::string& t, int count) : tag(t) {
    const auto pid = std::to_string(::getpid());
    net = static_cast<int>(::getpid() % 200) + 20;
    hub = "cohort-" + tag + "-" + pid + "-hub";
    REQUIRE(sh("ip netns add " + hub) == 0);
    REQUIRE(sh(in(hub, "ip link set lo up")) == 0);
    REQUIRE(sh(in(hub, "ip link add br0 type bridge")) == 0);
    REQUIRE(sh(in(hub, "ip addr add " + ip(100) + "/24 dev br0")) == 0);
    REQUIRE(sh(in(hub, "ip link set br0 up")) == 0);
    for (int k = 1; k <= count; ++k) {
      auto ns = "cohort-" + tag + "-" + pid + "-" + std::to_string(k);
      REQUIRE(sh("ip netns add " + ns) == 0);
      REQUIRE(sh("ip link add " + veth(k, 'h') + " netns " + hub + " type veth peer name " + veth(k, 'n') + " netns " +
                 ns) == 0);
      REQUIRE(sh(in(hub, "ip link set " + veth(k, 'h') + " master br0 up")) == 0);
      REQUIRE(sh(in(ns, "ip addr add " + ip(k) + "/24 dev " + veth(k, 'n'))) == 0);
      REQUIRE(sh(in(ns, "ip link set " + veth(k, 'n') + " up")) == 0);
      REQUIRE(sh(in(ns, "ip link set lo up")) == 0);
      hosts.push_back(ns);
    }
  }
  ~netns_star() {
    for (const auto& h : hosts) sh("ip netns del " + h);
    sh("ip netns del " + hub);
  }
  netns_star(const netns_star&) = delete;
  netns_star& operator=(const netns_star&) = delete;

  [[nodiscard]] std::string ip(int k) const { return "10.233." + std::to_string(net) + "." + std::to_string(k); }
  [[nodiscard]] std::string veth(int k, char side) const {
    return "c" + tag.substr(0, 2) + std::to_string(::getpid()) + side + std::to_string(k);
  }
  [[nodiscard]] static std::string in(const std::string& ns, const std::string& c) { return "ip netns exec " + ns + " " + c; }
  /// Cuts (or heals) host k's link at the bridge.
  void link(int k, bool up) { REQUIRE(sh(in(hub, "ip link set " + veth(k, 'h') + (up ? " up" : " down"))) == 0); }
};

/// Moves the calling thread into a namespace until the end of the scope:
/// sockets it (and threads it starts) makes live there.
class inside_namespace {
 public:
  explicit inside_namespace(const std::string& ns) {
    home_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    int target = ::open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(home_ >= 0);
    REQUIRE(target >= 0);
    REQUIRE(::setns(target, CLONE_NEWNET) == 0);
    ::close(target);
  }
  ~inside_namespace() {
    ::setns(home_, CLONE_NEWNET);
    ::close(home_);
  }
  inside_namespace(const inside_namespace&) = delete;
  inside_namespace& operator=(const inside_namespace&) = delete;

 private:
  int home_ = -1;
};

}  // namespace cohort::test
