// plugin: services in a shared library that `cohort run` loads from config
// (`[services.NAME] plugin = "libname.so"`), in process or in process
// isolation, with no main of the author's own (docs/services.md, Plugins).
//
// A plugin exports one function, made by COHORT_PLUGIN(factory), that
// describes what it was built against. Service definitions hold C++ objects
// (std::function, std::string, maps) that cross the library boundary, so
// the loader refuses a plugin whose build does not match the program's:
// another plugin ABI, another Cohort minor version, another layout of
// service_definition, or another standard library ABI. The plugin calls
// into the program for Cohort's own functions (the program exports them).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "cohort/actors/service_definition.hpp"
#include "cohort/version.hpp"

namespace cohort {

/// Raised whenever what a plugin hands over changes shape.
inline constexpr std::uint32_t plugin_abi = 1;

/// What the exported function describes; read by the loader before it
/// touches anything else in the library.
struct plugin_info {
  std::uint32_t abi;                 ///< plugin_abi the plugin was built with
  int version_major, version_minor;  ///< the Cohort it was built against
  std::size_t definition_size;       ///< sizeof(service_definition) in its build
  int cxx11_string_abi;              ///< _GLIBCXX_USE_CXX11_ABI in its build
  std::vector<service_definition> (*services)();
};

/// The name of the function a plugin exports.
inline constexpr const char* plugin_entry_point = "cohort_plugin_v1";

}  // namespace cohort

/// In one .cpp file of the plugin: COHORT_PLUGIN(my_services), where
/// `std::vector<cohort::service_definition> my_services()` lists them.
#define COHORT_PLUGIN(factory)                                                                         \
  extern "C" __attribute__((visibility("default"))) const ::cohort::plugin_info* cohort_plugin_v1() { \
    static const ::cohort::plugin_info info{::cohort::plugin_abi,                                      \
                                            COHORT_VERSION_MAJOR,                                      \
                                            COHORT_VERSION_MINOR,                                      \
                                            sizeof(::cohort::service_definition),                      \
                                            _GLIBCXX_USE_CXX11_ABI,                                    \
                                            &(factory)};                                               \
    return &info;                                                                                      \
  }
