// netns: two network namespaces joined by a veth pair, made by a test and
// removed when it ends (root only; CI runs as root). Hosts a (10.231.N.1)
// and b (.2); the link can be cut loudly (link down: both ends see it) or
// silently (frames to a MAC nobody has: packets vanish, as in a real partition).
#pragma once

#include <cstdlib>
#include <string>

#include <unistd.h>

#include <catch2/catch.hpp>

namespace cohort::test {

/// False (with a warning) where the test cannot make namespaces: not root.
inline bool namespaces_available() {
  if (::geteuid() == 0) return true;
  WARN("skipped: network namespaces need root (CI runs as root)");
  return false;
}

inline int sh(const std::string& command) { return std::system((command + " >/dev/null 2>&1").c_str()); }

struct namespace_pair {
  std::string a, b;
  std::string veth_a, veth_b;
  int net;
  /// `tag` (a few letters) keeps names apart between tests running at once.
  explicit namespace_pair(const std::string& tag = "dl") {
    const auto pid = std::to_string(::getpid());
    net = static_cast<int>((::getpid() + static_cast<int>(tag[0]) * 7) % 200) + 20;
    a = "cohort-" + tag + "-" + pid + "-a";
    b = "cohort-" + tag + "-" + pid + "-b";
    veth_a = "c" + tag.substr(0, 2) + pid + "a";
    veth_b = "c" + tag.substr(0, 2) + pid + "b";
    REQUIRE(sh("ip netns add " + a) == 0);
    REQUIRE(sh("ip netns add " + b) == 0);
    REQUIRE(sh("ip link add " + veth_a + " netns " + a + " type veth peer name " + veth_b + " netns " + b) == 0);
    REQUIRE(sh(in_a("ip addr add " + ip(1) + "/24 dev " + veth_a)) == 0);
    REQUIRE(sh(in_b("ip addr add " + ip(2) + "/24 dev " + veth_b)) == 0);
    REQUIRE(sh(in_a("ip link set lo up")) == 0);
    REQUIRE(sh(in_b("ip link set lo up")) == 0);
    link(true);
  }
  ~namespace_pair() {
    sh("ip netns del " + a);  // removes its end of the veth, and so the pair
    sh("ip netns del " + b);
  }
  namespace_pair(const namespace_pair&) = delete;
  namespace_pair& operator=(const namespace_pair&) = delete;

  [[nodiscard]] std::string ip(int host) const { return "10.231." + std::to_string(net) + "." + std::to_string(host); }
  [[nodiscard]] std::string in_a(const std::string& c) const { return "ip netns exec " + a + " " + c; }
  [[nodiscard]] std::string in_b(const std::string& c) const { return "ip netns exec " + b + " " + c; }
  /// Link down or up on both ends: the hosts see the cut.
  void link(bool up) {
    REQUIRE(sh(in_a("ip link set " + veth_a + (up ? " up" : " down"))) == 0);
    REQUIRE(sh(in_b("ip link set " + veth_b + (up ? " up" : " down"))) == 0);
  }
  /// Silent loss both ways: each host sends the other's packets to a MAC
  /// address nobody has, so the frames leave (the sender's TCP sees a
  /// normal send) and the peer's interface discards them: no error, no RST,
  /// no ICMP, as in a real partition. (A blackhole route or a link down is
  /// reported to the sender's stack, which then recovers fast for the wrong
  /// reason.)
  void drop_silently(bool on) {
    if (on) {
      REQUIRE(sh(in_a("ip neigh replace " + ip(2) + " lladdr 02:00:00:00:de:ad nud permanent dev " + veth_a)) == 0);
      REQUIRE(sh(in_b("ip neigh replace " + ip(1) + " lladdr 02:00:00:00:de:ad nud permanent dev " + veth_b)) == 0);
    } else {
      REQUIRE(sh(in_a("ip neigh del " + ip(2) + " dev " + veth_a)) == 0);
      REQUIRE(sh(in_b("ip neigh del " + ip(1) + " dev " + veth_b)) == 0);
    }
  }
};

}  // namespace cohort::test
