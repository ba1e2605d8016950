#include "cohort/security/client_keys.hpp"

#include <cstdlib>
#include <filesystem>

#include "cohort/security/keys.hpp"
#include "cohort/security/node_security.hpp"

namespace cohort::security {

namespace fs = std::filesystem;

std::string default_keys_dir() {
  if (const char* env = std::getenv("COHORT_KEYS"); env && *env) return env;
  return (fs::path("cohort-data") / "keys").string();
}

result<std::optional<curve_client_keys>> find_client_keys(const std::string& endpoint, const key_choice& choice) {
  if (is_local_endpoint(endpoint)) return std::optional<curve_client_keys>{};
  const fs::path dir = choice.keys_dir.empty() ? fs::path(default_keys_dir()) : fs::path(choice.keys_dir);
  const std::string key_file = choice.key_file.empty() ? (dir / (choice.own_name + ".key")).string() : choice.key_file;
  std::error_code ec;
  if (choice.key_file.empty() && choice.keyless_loopback_ok && is_loopback_endpoint(endpoint) && !fs::exists(key_file, ec))
    return std::optional<curve_client_keys>{};
  auto pair = read_key_pair(key_file);
  if (!pair)
    return error_info{errc::unauthenticated, pair.error().message + " (the " + choice.own_name +
                                                 " key: --key FILE, or --keys DIR holding " + choice.own_name +
                                                 ".key; COHORT_KEYS names the default folder)"};
  std::string server = choice.server_key;
  if (server.empty()) server = (dir / "node.key.pub").string();
  if (!is_curve_key(server)) {
    auto read = read_public_key(server);
    if (!read)
      return error_info{errc::unauthenticated,
                        read.error().message + " (the node's public key: --server-key KEY|FILE, or --keys DIR holding node.key.pub)"};
    server = *read;
  }
  return std::optional<curve_client_keys>{curve_client_keys{server, pair->public_key, pair->secret_key}};
}

}  // namespace cohort::security
