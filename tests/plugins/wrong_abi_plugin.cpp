// A library that claims another plugin ABI: the loader must refuse it before
// calling anything else in it.
#include "cohort/actors/plugin.hpp"

namespace {
std::vector<cohort::service_definition> none() { return {}; }
}  // namespace

extern "C" __attribute__((visibility("default"))) const cohort::plugin_info* cohort_plugin_v1() {
  static const cohort::plugin_info info{999, COHORT_VERSION_MAJOR, COHORT_VERSION_MINOR,
                                        sizeof(cohort::service_definition), _GLIBCXX_USE_CXX11_ABI, &none};
  return &info;
}
