# Processes on loopback: the coordinator and workers started as separate programs.
add_library(sweep_test_support support/process.cc support/client.cc)
target_link_libraries(sweep_test_support PUBLIC sweep_proto SQLite::SQLite3 GTest::gtest)
target_compile_definitions(sweep_test_support PRIVATE SWEEP_BINARY_DIR="${PROJECT_BINARY_DIR}")
target_include_directories(sweep_test_support PUBLIC "${PROJECT_SOURCE_DIR}")

sweep_add_test(fault_tolerance_test
  SOURCES fault_tolerance_test.cc
  LIBRARIES sweep_test_support
  LABELS integration)
sweep_add_test(end_to_end_test
  SOURCES end_to_end_test.cc
  LIBRARIES sweep_test_support
  LABELS integration)
# The integration tests run the programs they test.
add_dependencies(fault_tolerance_test sweep-coordinator sweep-worker)
add_dependencies(end_to_end_test sweep-coordinator sweep-worker)
