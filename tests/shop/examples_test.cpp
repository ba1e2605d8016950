// The example configs in examples/ are valid for this build, and the shop
// split names every shop service exactly once across its nodes.
#include <filesystem>
#include <map>

#include <catch2/catch.hpp>

#include "cohort/examples/example_services.hpp"
#include "cohort/runtime/node_config.hpp"
#include "cohort/shop/shop.hpp"

using namespace cohort;

TEST_CASE("every example config loads, and the shop split hosts each shop service once", "[shop][config]") {
  std::vector<std::string> names = shop::shop_service_names();
  for (const auto& d : example_services()) names.push_back(d.name);
  std::map<std::string, int> shop_hosted;
  int files = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(COHORT_SOURCE_DIR "/examples")) {
    if (entry.path().extension() != ".toml") continue;
    ++files;
    auto cfg = load_node_config(entry.path().string(), names);
    INFO(entry.path());
    REQUIRE(cfg);
    if (entry.path().parent_path().filename() == "shop-split")
      for (const auto& s : cfg->services) shop_hosted[s.name]++;
  }
  CHECK(files >= 5);
  for (const auto& name : shop::shop_service_names()) CHECK(shop_hosted[name] == 1);
}
