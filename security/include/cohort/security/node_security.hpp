// node_security: a node's security at run time. It holds the node's key pair
// and the current trust list (read again when the trust file changes), runs
// the ZAP handler that admits connections, sets CURVE on sockets, and admits
// each request: who sent it (never taken from the sender's header, except
// from a trusted node that vouches for its own caller) and whether that
// caller may make it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <zmq.hpp>

#include "cohort/security/file_version.hpp"
#include "cohort/security/keys.hpp"
#include "cohort/security/security_config.hpp"
#include "cohort/security/trust_list.hpp"
#include "cohort/security/zap_handler.hpp"
#include "cohort/transport/client.hpp"
#include "cohort/transport/envelope.hpp"
#include "cohort/transport/result.hpp"

namespace cohort::security {

/// Which door a request came through.
enum class front {
  clients,  ///< the native front ([node] listen): nodes, clients, keyless loopback clients
  admin,    ///< the admin endpoint: operators
};

/// How a listening socket was secured.
enum class listener_mode {
  curve,    ///< CURVE + ZAP: every peer has a trusted key
  keyless,  ///< loopback without keys (development): peers are anonymous clients
  local,    ///< ipc:// or inproc://: only this node's processes reach it (file permissions)
  open,     ///< insecure = true: no authentication at all
};

/// True for tcp://127.x, tcp://[::1], tcp://localhost, ipc:// and inproc://.
[[nodiscard]] bool is_loopback_endpoint(const std::string& endpoint);
/// True for ipc:// and inproc://.
[[nodiscard]] bool is_local_endpoint(const std::string& endpoint);

/// The caller identity of a request that came in with no authentication
/// (keyless loopback clients, insecure nodes).
inline constexpr const char* anonymous_caller = "anonymous";

class node_security {
 public:
  /// Loads (or, by default, makes) the key pair, reads the trust list and
  /// starts the ZAP handler in `ctx`. Unless turned off (local_operator) the
  /// node also makes <data_dir>/keys/operator.key, trusted as a control
  /// operator, and puts its own public key beside it (node.key.pub), so that
  /// a local cohortctl works with no setup.
  [[nodiscard]] static result<std::unique_ptr<node_security>> start(zmq::context_t& ctx, const security_config& cfg,
                                                                    const std::string& data_dir);
  ~node_security();

  [[nodiscard]] bool insecure() const noexcept { return cfg_.insecure; }
  [[nodiscard]] const key_pair& keys() const noexcept { return keys_; }
  [[nodiscard]] const std::string& key_file() const noexcept { return key_file_; }

  /// Refuses a public (non-loopback) endpoint unless the node has a key file
  /// and a trust list of its own, or is insecure on purpose.
  [[nodiscard]] std::optional<error_info> check_public(const std::string& endpoint, const std::string& what) const;

  /// Secures a listening socket for `endpoint` (before bind) and says how.
  listener_mode secure_listener(zmq::socket_t& socket, const std::string& endpoint, front f) const;

  /// The CURVE keys to connect to `endpoint` with: the server key is
  /// `server_key` when known (a registered instance), else the key of the
  /// trusted node that lists the endpoint. None for local endpoints, insecure
  /// nodes and keyless loopback peers; an error for a public endpoint of
  /// unknown key (this node will not talk to it in plain text).
  [[nodiscard]] result<std::optional<curve_client_keys>> client_keys(const std::string& endpoint,
                                                                      const std::string& server_key = {}) const;

  /// Admits one request: sets `env.caller` and says why it is refused, if it
  /// is. `user_id` is the connection's "User-Id" (the peer's key in Z85; empty
  /// for keyless peers). `from_node` is set when the sender is a trusted node
  /// (the registry accepts only those). An `internal` method (fault
  /// injection, maintenance) is refused to keyed clients; nodes, this node's
  /// processes and keyless loopback developers may call it.
  [[nodiscard]] std::optional<error_info> admit(listener_mode mode, front f, std::string_view user_id, envelope& env,
                                                bool* from_node = nullptr, bool internal = false) const;

  /// Reads the trust file again now (it is also read whenever it changes).
  [[nodiscard]] std::optional<error_info> reload();

  /// True when `public_key` (Z85) is in the trust list with role node (a
  /// cluster member this node may send to and take requests from).
  [[nodiscard]] bool trusts_node(const std::string& public_key) const;

  [[nodiscard]] std::uint64_t refused_connections() const noexcept { return zap_ ? zap_->refused() : 0; }
  [[nodiscard]] std::uint64_t refused_requests() const noexcept { return refused_requests_.load(); }

 private:
  node_security(zmq::context_t& ctx, security_config cfg);
  [[nodiscard]] std::shared_ptr<const trust_list> trust() const;
  zap_verdict decide(const zap_request& r) const;
  void watch();

  zmq::context_t& ctx_;
  security_config cfg_;
  key_pair keys_;
  std::string key_file_;
  std::optional<trusted_peer> local_operator_;  ///< <keys>/operator.key, when the keys are the default ones
  mutable std::mutex trust_mutex_;
  std::shared_ptr<const trust_list> trust_;
  file_version trust_version_{};
  mutable std::atomic<std::uint64_t> refused_requests_{0};
  std::unique_ptr<zap_handler> zap_;
  std::mutex watch_mutex_;
  std::condition_variable watch_cv_;
  bool stopping_ = false;
  std::thread watcher_;
};

}  // namespace cohort::security
