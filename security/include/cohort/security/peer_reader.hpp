// peer_reader: trust entries from TOML, for the config loader ([[security.peer]])
// and for trust files ([[peer]]). Apart from trust_list.hpp so that toml++
// is compiled only where TOML is read.
#pragma once

#include <string>
#include <vector>

#include <toml++/toml.h>

#include "cohort/security/trust_list.hpp"

namespace cohort::security {

/// Reads an array of peer tables (keys: name, role, key or key_file,
/// services, access, endpoints). Every error names the file, line and key;
/// relative key files are taken from `base_dir`.
[[nodiscard]] result<std::vector<trusted_peer>> read_peers(const toml::array& tables, const std::string& source,
                                                           const std::string& key_path, const std::string& base_dir);

}  // namespace cohort::security
