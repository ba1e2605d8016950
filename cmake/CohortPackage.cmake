# The installed package: `cmake --install` puts the libraries, the public
# headers and a CMake package in a prefix; a service written outside this tree
# uses it with
#   find_package(Cohort 0.2 CONFIG REQUIRED)
#   target_link_libraries(my_service PRIVATE Cohort::runtime)   # Cohort::testing for tests
# (docs/services.md; examples/standalone-service is built against it by the tests).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# Every library the public ones link (static: their link closure goes along),
# exported as Cohort::<room>.
set(COHORT_EXPORTED
  cohort_msgpack:msgpack cohort_transport:transport cohort_storage:storage cohort_actors:actors
  cohort_log:log cohort_observability:observability cohort_security:security
  cohort_scheduler:scheduler cohort_supervision:supervision cohort_config:config cohort_core:core cohort_net:net
  cohort_isolation:isolation cohort_admin:admin cohort_gateway:gateway cohort_cluster:cluster cohort_runtime:runtime
  cohort_testing:testing cohort_plugins:plugins cohort_allocator:allocator)
set(COHORT_EXPORTED_TARGETS "")
foreach(pair IN LISTS COHORT_EXPORTED)
  string(REPLACE ":" ";" parts "${pair}")
  list(GET parts 0 target)
  list(GET parts 1 name)
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${name})
  list(APPEND COHORT_EXPORTED_TARGETS ${target})
endforeach()

install(TARGETS ${COHORT_EXPORTED_TARGETS} EXPORT CohortTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS cohort cohortctl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# Public headers only: the service API, the node, its config and status, the
# client, and what those include. The runtime's inner rooms (core's actors and
# requests, the ZeroMQ edge, the gateway, isolation, admin) keep CAF and their
# internals to themselves: their libraries are installed, their headers not.
foreach(room transport storage actors security observability observability/log runtime/supervision
             runtime/config runtime/node testing plugins)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${room}/include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
endforeach()
install(FILES ${PROJECT_SOURCE_DIR}/runtime/core/include/cohort/runtime/status.hpp
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/cohort/runtime)
install(FILES ${PROJECT_BINARY_DIR}/generated/include/cohort/version.hpp DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/cohort)

# Cohort::plugin: what a plugin (a shared library `cohort run` loads) builds
# with: the service API's headers only. It links none of Cohort's libraries:
# the program that loads it provides them (cohort exports its symbols).
add_library(cohort_plugin_api INTERFACE)
target_include_directories(cohort_plugin_api INTERFACE
  $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/actors/include> $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/transport/include>
  $<BUILD_INTERFACE:${PROJECT_BINARY_DIR}/generated/include> $<INSTALL_INTERFACE:include>)
target_link_libraries(cohort_plugin_api INTERFACE cohort_msgpack cppzmq)
set_target_properties(cohort_plugin_api PROPERTIES EXPORT_NAME plugin)
install(TARGETS cohort_plugin_api EXPORT CohortTargets)

set(COHORT_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/Cohort)
install(EXPORT CohortTargets NAMESPACE Cohort:: DESTINATION ${COHORT_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/CohortConfig.cmake.in
  ${PROJECT_BINARY_DIR}/CohortConfig.cmake INSTALL_DESTINATION ${COHORT_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/CohortConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/CohortConfig.cmake ${PROJECT_BINARY_DIR}/CohortConfigVersion.cmake
  ${PROJECT_SOURCE_DIR}/cmake/FindCAF.cmake ${PROJECT_SOURCE_DIR}/cmake/FindRocksDB.cmake
  DESTINATION ${COHORT_CMAKE_DIR})
