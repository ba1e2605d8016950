// The same services as a plugin: `cohort run` loads them from a config line
// ([services.tally] plugin = "libtally_plugin.so"), no main of our own.
#include <cohort/actors/plugin.hpp>

#include "tally/services.hpp"

COHORT_PLUGIN(tally::all_services)
