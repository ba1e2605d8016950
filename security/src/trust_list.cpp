#include "cohort/security/trust_list.hpp"

#include <algorithm>
#include <filesystem>
#include <set>

#include "cohort/security/keys.hpp"
#include "cohort/security/peer_reader.hpp"

namespace cohort::security {

std::string_view to_string(role r) noexcept {
  switch (r) {
    case role::node: return "node";
    case role::operator_: return "operator";
    case role::client: return "client";
  }
  return "client";
}

bool trusted_peer::may_call(std::string_view service) const {
  // Names starting with '_' are the runtime's own (the registry): never a client's.
  if (!service.empty() && service.front() == '_') return false;
  return std::any_of(services.begin(), services.end(), [&](const std::string& s) { return s == "*" || s == service; });
}

result<trust_list> trust_list::make(std::vector<trusted_peer> peers) {
  trust_list t;
  std::set<std::string> names;
  for (std::size_t i = 0; i < peers.size(); ++i) {
    const auto& p = peers[i];
    if (!names.insert(p.name).second) return error_info{errc::bad_request, "trust list: the name '" + p.name + "' appears twice"};
    if (!t.by_key_.emplace(p.public_key, i).second)
      return error_info{errc::bad_request, "trust list: '" + p.name + "' has the key of another entry"};
    for (const auto& ep : p.endpoints)
      if (!t.by_endpoint_.emplace(ep, i).second)
        return error_info{errc::bad_request, "trust list: endpoint " + ep + " is named by two nodes"};
  }
  t.peers_ = std::move(peers);
  return t;
}

const trusted_peer* trust_list::by_key(std::string_view z85) const {
  auto it = by_key_.find(std::string(z85));
  return it == by_key_.end() ? nullptr : &peers_[it->second];
}

const trusted_peer* trust_list::by_endpoint(std::string_view endpoint) const {
  auto it = by_endpoint_.find(std::string(endpoint));
  return it == by_endpoint_.end() ? nullptr : &peers_[it->second];
}

namespace {

struct peer_error {
  std::string message;
};

std::string line_of(const std::string& source, const toml::node& n) {
  return source + ":" + std::to_string(n.source().begin.line);
}

std::vector<std::string> strings_at(const toml::table& t, const char* key, const std::string& where, const std::string& source) {
  std::vector<std::string> out;
  const toml::node* n = t.get(key);
  if (!n) return out;
  const auto* arr = n->as_array();
  if (!arr) throw peer_error{line_of(source, *n) + ": '" + where + "." + key + "' must be an array of strings"};
  for (const auto& e : *arr) {
    if (!e.is_string()) throw peer_error{line_of(source, e) + ": '" + where + "." + key + "' must be an array of strings"};
    out.push_back(*e.value<std::string>());
  }
  return out;
}

std::string string_at(const toml::table& t, const char* key, const std::string& where, const std::string& source) {
  const toml::node* n = t.get(key);
  if (!n) return {};
  if (!n->is_string()) throw peer_error{line_of(source, *n) + ": '" + where + "." + key + "' must be a string"};
  return *n->value<std::string>();
}

}  // namespace

result<std::vector<trusted_peer>> read_peers(const toml::array& tables, const std::string& source,
                                             const std::string& key_path, const std::string& base_dir) {
  static const std::set<std::string> known{"name", "role", "key", "key_file", "services", "access", "endpoints"};
  std::vector<trusted_peer> out;
  try {
    for (const auto& entry : tables) {
      const auto* t = entry.as_table();
      if (!t) throw peer_error{line_of(source, entry) + ": '" + key_path + "' must be an array of tables ([[" + key_path + "]])"};
      const std::string where = key_path;
      for (const auto& [k, v] : *t)
        if (!known.count(std::string(k.str())))
          throw peer_error{line_of(source, v) + ": unknown key '" + where + "." + std::string(k.str()) + "'"};
      trusted_peer p;
      p.name = string_at(*t, "name", where, source);
      if (p.name.empty()) throw peer_error{line_of(source, entry) + ": '" + where + "' needs a name"};
      const std::string named = where + " '" + p.name + "'";
      auto r = string_at(*t, "role", where, source);
      if (r == "node") p.kind = role::node;
      else if (r == "operator") p.kind = role::operator_;
      else if (r == "client") p.kind = role::client;
      else throw peer_error{line_of(source, entry) + ": " + named + ": 'role' must be \"node\", \"operator\" or \"client\""};
      auto key = string_at(*t, "key", where, source);
      auto key_file = string_at(*t, "key_file", where, source);
      if (key.empty() == key_file.empty())
        throw peer_error{line_of(source, entry) + ": " + named + " needs exactly one of 'key' (Z85) or 'key_file'"};
      if (!key_file.empty()) {
        auto path = std::filesystem::path(key_file);
        if (path.is_relative() && !base_dir.empty()) path = std::filesystem::path(base_dir) / path;
        auto read = read_public_key(path.string());
        if (!read) throw peer_error{line_of(source, entry) + ": " + named + ": " + read.error().message};
        key = *read;
      }
      if (!is_curve_key(key)) throw peer_error{line_of(source, entry) + ": " + named + ": 'key' is not a 40-character Z85 CURVE key"};
      p.public_key = key;
      p.services = strings_at(*t, "services", where, source);
      if (!p.services.empty() && p.kind != role::client)
        throw peer_error{line_of(source, entry) + ": " + named + ": 'services' is for clients (nodes may call every service)"};
      auto access = string_at(*t, "access", where, source);
      if (!access.empty() && p.kind != role::operator_)
        throw peer_error{line_of(source, entry) + ": " + named + ": 'access' is for operators"};
      if (access == "control") p.access = admin_access::control;
      else if (access.empty() || access == "read") p.access = admin_access::read;
      else throw peer_error{line_of(source, entry) + ": " + named + ": 'access' must be \"read\" or \"control\""};
      p.endpoints = strings_at(*t, "endpoints", where, source);
      if (!p.endpoints.empty() && p.kind != role::node)
        throw peer_error{line_of(source, entry) + ": " + named + ": 'endpoints' is for nodes"};
      out.push_back(std::move(p));
    }
  } catch (const peer_error& e) {
    return error_info{errc::bad_request, e.message};
  }
  return out;
}

result<std::vector<trusted_peer>> read_trust_file(const std::string& path) {
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return error_info{errc::bad_request, path + ":" + std::to_string(e.source().begin.line) + ": invalid TOML: " +
                                             std::string(e.description())};
  }
  for (const auto& [k, v] : root)
    if (k.str() != "peer")
      return error_info{errc::bad_request, path + ":" + std::to_string(v.source().begin.line) + ": unknown key '" +
                                               std::string(k.str()) + "' (a trust file holds [[peer]] tables)"};
  const auto* arr = root["peer"].as_array();
  if (!arr) return std::vector<trusted_peer>{};
  return read_peers(*arr, path, "peer", std::filesystem::path(path).parent_path().string());
}

}  // namespace cohort::security
