// test_keys: CURVE key pairs written to a test's folder, and the TOML that
// trusts them, for tests of authenticated nodes, operators and clients.
#pragma once

#include <string>

#include <catch2/catch.hpp>

#include "cohort/security/keys.hpp"
#include "cohort/transport/client.hpp"

namespace cohort::test {

struct test_key {
  std::string name;
  std::string file;  ///< the key pair (mode 0600); file + ".pub" holds the public half
  security::key_pair pair;

  /// A trust entry for this key: role "node", "operator" or "client"; `extra` adds keys (services, access, endpoints).
  [[nodiscard]] std::string trust_entry(const std::string& role, const std::string& extra = "",
                                        const std::string& table = "security.peer") const {
    return "[[" + table + "]]\nname = \"" + name + "\"\nrole = \"" + role + "\"\nkey = \"" + pair.public_key + "\"\n" +
           extra;
  }
  /// Client keys to reach a node whose public key is `server`.
  [[nodiscard]] curve_client_keys to(const std::string& server) const { return {server, pair.public_key, pair.secret_key}; }
  [[nodiscard]] curve_client_keys to(const test_key& server) const { return to(server.pair.public_key); }
};

/// Writes DIR/NAME.key and DIR/NAME.key.pub.
inline test_key make_key(const std::string& dir, const std::string& name) {
  test_key k{name, dir + "/" + name + ".key", security::generate_key_pair()};
  auto written = security::write_key_pair(k.file, k.pair, name);
  REQUIRE(written);
  return k;
}

}  // namespace cohort::test
