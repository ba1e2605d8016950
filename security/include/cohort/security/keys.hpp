// keys: CURVE key pairs (ZeroMQ's, Curve25519) and the files that hold them.
// The cryptography is libzmq's (libsodium underneath); this file only names,
// writes and reads keys.
#pragma once

#include <string>
#include <string_view>

#include "cohort/transport/result.hpp"

namespace cohort::security {

/// A CURVE key pair in Z85 text (40 characters each).
struct key_pair {
  std::string public_key;
  std::string secret_key;
};

/// A fresh key pair from libzmq's generator.
[[nodiscard]] key_pair generate_key_pair();

/// True for a 40-character Z85 string that decodes to a 32-byte key.
[[nodiscard]] bool is_curve_key(std::string_view z85);

/// Writes `pair` to `path` (mode 0600: it holds the secret) and its public
/// half to `path` + ".pub" (mode 0644). Both are small TOML files:
///   public = "<z85>"        secret = "<z85>"
/// Refuses to overwrite an existing key file.
[[nodiscard]] result<std::string> write_key_pair(const std::string& path, const key_pair& pair,
                                                 const std::string& name);

/// Reads a key file written by write_key_pair. A secret file readable by
/// group or others is refused (as ssh does).
[[nodiscard]] result<key_pair> read_key_pair(const std::string& path);

/// Reads the public key of a ".pub" file or of a key file.
[[nodiscard]] result<std::string> read_public_key(const std::string& path);

/// The key pair at `path`, made (with its directory, mode 0700) when there is
/// none yet: the way Erlang makes its cookie on first start.
[[nodiscard]] result<key_pair> load_or_create_key_pair(const std::string& path, const std::string& name);

}  // namespace cohort::security
