// client_keys: how a program on this host (cohortctl, `cohort call`) finds
// the keys to reach a node with, so that the default setup needs no flags.
#pragma once

#include <optional>
#include <string>

#include "cohort/transport/client.hpp"
#include "cohort/transport/result.hpp"

namespace cohort::security {

/// The folder a local tool looks in: $COHORT_KEYS, else "cohort-data/keys"
/// (the default node's keys, made on its first start).
[[nodiscard]] std::string default_keys_dir();

struct key_choice {
  std::string keys_dir;    ///< folder of the defaults below
  std::string key_file;    ///< this side's key pair; default <keys_dir>/<own_name>.key
  std::string server_key;  ///< the node's public key: Z85 text or a file; default <keys_dir>/node.key.pub
  std::string own_name;    ///< "operator" for cohortctl
  /// A loopback endpoint may be reached without keys (the native front's keyless mode).
  bool keyless_loopback_ok = false;
};

/// The CURVE keys for `endpoint`: none for ipc:// and inproc://, and none on
/// loopback when allowed and no key file is there; otherwise the key pair and
/// server key, or an error that says which file is missing and which flag names it.
[[nodiscard]] result<std::optional<curve_client_keys>> find_client_keys(const std::string& endpoint, const key_choice& choice);

}  // namespace cohort::security
