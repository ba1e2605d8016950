#include "cohort/runtime/node_config.hpp"

#include "cohort/actors/example_services.hpp"

namespace cohort {

node_config default_node_config() {
  node_config cfg;
  cfg.http.listen = "127.0.0.1:8080";  // the embedded default is also a gateway, on loopback
  for (const auto& def : example_services()) {
    service_config s;
    s.name = def.name;
    cfg.services.push_back(s);
  }
  return cfg;
}

}  // namespace cohort
