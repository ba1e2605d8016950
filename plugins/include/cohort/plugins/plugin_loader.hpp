// plugin_loader: loads the shared libraries of services a config names
// (`[services.NAME] plugin = "..."`) and checks each was built to match this
// program (cohort/actors/plugin.hpp) before any of its code runs.
#pragma once

#include <string>
#include <vector>

#include "cohort/actors/service_definition.hpp"
#include "cohort/runtime/node_config.hpp"
#include "cohort/transport/result.hpp"

namespace cohort::plugins {

/// Loads one plugin (kept loaded for the life of the process: its code runs
/// in the services) and returns its services. Errors (`bad_config`): no such
/// file, not a shared library, no entry point, or built for another plugin
/// ABI, Cohort version, service_definition layout or string ABI — each named.
[[nodiscard]] result<std::vector<service_definition>> load(const std::string& path);

/// Loads every plugin `cfg` names (each library once) and checks that each
/// service configured with a plugin is one its library provides. Returns
/// the definitions to add to the program's catalog.
[[nodiscard]] result<std::vector<service_definition>> load_configured(const node_config& cfg);

}  // namespace cohort::plugins
