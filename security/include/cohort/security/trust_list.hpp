// trust_list: which public keys this node trusts, as what, and for what.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "cohort/transport/result.hpp"

namespace cohort::security {

/// What a key may do.
enum class role {
  node,      ///< another node: registry heartbeats, forwarding (it vouches for its callers)
  operator_, ///< the admin endpoint (read or control)
  client,    ///< the native front, for the services it is allowed
};

[[nodiscard]] std::string_view to_string(role r) noexcept;

/// An operator's admin rights.
enum class admin_access { read, control };

/// One entry of the trust list ([[security.peer]] or [[peer]] in a trust file).
struct trusted_peer {
  std::string name;         ///< who it is, in logs and as the caller identity
  role kind = role::client;
  std::string public_key;   ///< Z85
  /// Clients: the services they may call; "*" = every public service.
  std::vector<std::string> services;
  /// Operators: read (status, tree, health, ...) or control (restart, stop, backup, ...).
  admin_access access = admin_access::read;
  /// Nodes: the endpoints they listen on, so that this node knows which
  /// server key to expect when it connects there.
  std::vector<std::string> endpoints;

  [[nodiscard]] bool may_call(std::string_view service) const;
};

/// An immutable set of trusted peers, looked up by key or by endpoint.
class trust_list {
 public:
  trust_list() = default;
  /// Fails on a duplicate name or key.
  static result<trust_list> make(std::vector<trusted_peer> peers);

  [[nodiscard]] const trusted_peer* by_key(std::string_view z85) const;
  [[nodiscard]] const trusted_peer* by_endpoint(std::string_view endpoint) const;
  [[nodiscard]] const std::vector<trusted_peer>& peers() const noexcept { return peers_; }

 private:
  std::vector<trusted_peer> peers_;
  std::unordered_map<std::string, std::size_t> by_key_;
  std::unordered_map<std::string, std::size_t> by_endpoint_;
};

/// Reads a trust file: a TOML file of [[peer]] tables (see peer_reader.hpp).
[[nodiscard]] result<std::vector<trusted_peer>> read_trust_file(const std::string& path);

}  // namespace cohort::security
