// admin_json: calls a node's admin endpoint as its operator (the key the node
// made under its data directory) and returns the answer as JSON.
#pragma once

#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "cohort/runtime/node.hpp"
#include "cohort/security/client_keys.hpp"
#include "cohort/transport/client.hpp"
#include "cohort/transport/json_bridge.hpp"

namespace cohort::test {

inline nlohmann::json admin_json(const node& n, const std::string& data_dir, const std::string& verb) {
  security::key_choice ops;
  ops.keys_dir = data_dir + "/keys";
  ops.own_name = "operator";
  auto keys = security::find_client_keys(n.admin_endpoint(), ops);
  REQUIRE(keys);
  client admin(n.admin_endpoint(), {}, {}, *keys);
  auto r = admin.call("admin", verb, *json_to_msgpack("{}"));
  REQUIRE(r.ok());
  return nlohmann::json::parse(*msgpack_to_json(r.payload));
}

}  // namespace cohort::test
