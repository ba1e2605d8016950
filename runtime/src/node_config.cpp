#include "cohort/runtime/node_config.hpp"

#include "cohort/actors/example_services.hpp"

namespace cohort {

node_config default_node_config() { return default_node_config(example_services()); }

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

}  // namespace cohort
