// handoff_payloads: the msgpack payloads of the `_cluster` handoff calls
// between nodes: JSON text as a string, file chunks as bin, and the manifest
// with small files inline. A peer is authenticated, but what it sends is
// still read within limits (depth, container sizes), as any payload is.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cohort/transport/wire_limits.hpp"

namespace cohort::cluster {

[[nodiscard]] std::string pack_string(const std::string& s);
[[nodiscard]] std::string pack_bin(const char* data, std::size_t n);

/// The manifest with the export's files inline: {"manifest": text, "files": {name: bytes}}.
[[nodiscard]] std::string pack_inline(const std::string& manifest,
                                      const std::vector<std::pair<std::string, std::string>>& files);

/// What `_cluster.manifest` answered: the manifest's text, and the files
/// that came inline (an older node answers the text alone).
struct manifest_answer {
  std::string text;
  std::map<std::string, std::string> files;
};
/// nullopt for anything else, or past the limits.
[[nodiscard]] std::optional<manifest_answer> unpack_manifest(std::string_view payload);

/// The string or bin in a msgpack payload; nullopt for anything else.
[[nodiscard]] std::optional<std::string> unpack_bytes(std::string_view payload);

/// The limits a peer's handoff payload is read with: the usual depth and
/// container bounds, strings and bins up to the whole payload (which the
/// transport already bounded).
[[nodiscard]] wire_limits handoff_limits(std::string_view payload);

}  // namespace cohort::cluster
