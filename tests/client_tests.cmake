# Tests of the command-line client.

# Formatting, views, exit codes, the dry run and command-line parsing, without a server.
sweep_add_test(cli_test
  SOURCES cli_test.cc
  LIBRARIES sweep_client GTest::gmock
  LABELS unit)
target_include_directories(cli_test PRIVATE "${PROJECT_SOURCE_DIR}")

# Runs the `sweep` binary against the coordinator binary on loopback.
sweep_add_test(cli_integration_test
  SOURCES cli_integration_test.cc support/process.cc
  LIBRARIES sweep_proto absl::strings nlohmann_json::nlohmann_json GTest::gmock
  LABELS integration)
target_include_directories(cli_integration_test PRIVATE "${PROJECT_SOURCE_DIR}")
add_dependencies(cli_integration_test sweep sweep-coordinator)
