// libFuzzer harness: the TOML config loader (strict keys, types, lines).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "cohort/runtime/node_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::vector<std::string> known{"greeter", "counter", "visits", "ledger"};
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)cohort::parse_node_config(text, "fuzz.toml", known);
  return 0;
}
