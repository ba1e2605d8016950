#include "cohort/runtime/node_config.hpp"

#include <filesystem>

namespace cohort {

node_config default_node_config(const std::vector<service_definition>& hosted) {
  node_config cfg;
  cfg.http.listen = "127.0.0.1:8080";  // the embedded default is also a gateway, on loopback
  for (const auto& def : hosted) {
    service_config s;
    s.name = def.name;
    cfg.services.push_back(s);
  }
  return cfg;
}

std::string store_dir(const node_config& cfg, const std::string& service) {
  return (std::filesystem::path(cfg.data_dir) / (cfg.instance.empty() ? service : service + "-" + cfg.instance)).string();
}

std::string backup_root(const node_config& cfg) {
  return cfg.backup_root.empty() ? (std::filesystem::path(cfg.data_dir) / "backups").string() : cfg.backup_root;
}

}  // namespace cohort
