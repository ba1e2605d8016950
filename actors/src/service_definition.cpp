// service_definition is header-only (templates); this unit checks the header compiles alone.
#include "cohort/actors/service_definition.hpp"
