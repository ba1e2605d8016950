#include "cohort/plugins/plugin_loader.hpp"

#include <dlfcn.h>

#include <map>
#include <set>

#include "cohort/actors/plugin.hpp"

namespace cohort::plugins {

namespace {

error_info refuse(const std::string& path, const std::string& why) {
  return {errc::bad_request, "plugin '" + path + "': " + why};
}

}  // namespace

result<std::vector<service_definition>> load(const std::string& path) {
  // RTLD_NOW: an unresolved symbol is an error here, not a crash at its
  // first call; RTLD_LOCAL: two plugins' own symbols do not mix.
  void* lib = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) return refuse(path, std::string("cannot load it: ") + ::dlerror());
  using entry_fn = const plugin_info* (*)();
  auto entry = reinterpret_cast<entry_fn>(::dlsym(lib, plugin_entry_point));
  if (!entry)
    return refuse(path, std::string("it has no '") + plugin_entry_point +
                            "' function: is it a Cohort plugin (COHORT_PLUGIN(...) in one of its files)?");
  const plugin_info* info = entry();
  if (!info) return refuse(path, "its entry point returned nothing");
  // The library stays loaded even when refused: unloading code whose static
  // objects may have registered destructors is not safe; the program exits anyway.
  if (info->abi != plugin_abi)
    return refuse(path, "it was built for plugin ABI " + std::to_string(info->abi) + ", this program has " +
                            std::to_string(plugin_abi) + ": rebuild it against this Cohort");
  if (info->version_major != COHORT_VERSION_MAJOR || info->version_minor != COHORT_VERSION_MINOR)
    return refuse(path, "it was built against Cohort " + std::to_string(info->version_major) + "." +
                            std::to_string(info->version_minor) + ", this program is Cohort " +
                            COHORT_VERSION_STRING + ": rebuild it against this Cohort");
  if (info->definition_size != sizeof(service_definition) || info->cxx11_string_abi != _GLIBCXX_USE_CXX11_ABI)
    return refuse(path, "it was built with another layout of cohort::service_definition (" +
                            std::to_string(info->definition_size) + " bytes, string ABI " +
                            std::to_string(info->cxx11_string_abi) + "; here " +
                            std::to_string(sizeof(service_definition)) + ", " +
                            std::to_string(_GLIBCXX_USE_CXX11_ABI) + "): rebuild it with this program's compiler and headers");
  if (!info->services) return refuse(path, "it names no service factory");
  try {
    return info->services();
  } catch (const std::exception& e) {
    return refuse(path, std::string("its service factory threw: ") + e.what());
  }
}

result<std::vector<service_definition>> load_configured(const node_config& cfg) {
  std::map<std::string, std::vector<service_definition>> by_library;
  std::vector<service_definition> out;
  std::set<std::string> taken;
  for (const auto& s : cfg.services) {
    if (s.plugin.empty()) continue;
    auto it = by_library.find(s.plugin);
    if (it == by_library.end()) {
      auto loaded = load(s.plugin);
      if (!loaded) return loaded.error();
      it = by_library.emplace(s.plugin, std::move(*loaded)).first;
    }
    const service_definition* found = nullptr;
    std::string provided;
    for (const auto& d : it->second) {
      provided += (provided.empty() ? "" : ", ") + d.name;
      if (d.name == s.name) found = &d;
    }
    if (!found)
      return error_info{errc::bad_request, "services." + s.name + ": plugin '" + s.plugin +
                                               "' does not provide a service '" + s.name + "' (it provides: " +
                                               (provided.empty() ? "none" : provided) + ")"};
    if (taken.insert(s.name).second) out.push_back(*found);
  }
  return out;
}

}  // namespace cohort::plugins
