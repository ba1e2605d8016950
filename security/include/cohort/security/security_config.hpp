// security_config: the [security] section of a node's config (docs/security.md).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "cohort/security/trust_list.hpp"

namespace cohort::security {

struct security_config {
  /// This node's CURVE key pair. Default: "" (<data_dir>/keys/node.key, made on first start).
  std::string key_file;
  /// A trust file of [[peer]] tables, read again whenever it changes: keys are
  /// added and removed (rotated) without a restart. Default: "" (none).
  std::string trust_file;
  /// Trust entries written into the config itself ([[security.peer]]). Default: none.
  std::vector<trusted_peer> peers;
  /// Keyless native clients may connect to loopback endpoints (development):
  /// they are "anonymous" clients of every public service. Nodes and operators
  /// always authenticate. Default: true.
  bool keyless_loopback = true;
  /// Makes <data_dir>/keys/operator.key on first start and trusts it as a
  /// control operator, so that cohortctl on this host works with no setup
  /// (whoever reads the data dir could read the stores anyway). Default: true.
  bool local_operator = true;
  /// No CURVE and no ZAP at all, even on public addresses: everything that
  /// reaches a port is trusted. A warning at every start. Default: false.
  bool insecure = false;
  /// Keyless loopback clients may call internal methods (fault injection such
  /// as greeter.crash). Not in TOML: the node sets it from
  /// `[node] allow_fault_injection`, the switch for crash drills. Default: false.
  bool keyless_internal = false;
  /// How often the trust file is checked for changes. Default: 1000 ms.
  std::chrono::milliseconds reload_every{1000};
};

}  // namespace cohort::security
