# Tests of the metrics registry, its text rendering and its HTTP endpoint. Included from
# tests/CMakeLists.txt.
sweep_add_test(metrics_test
  SOURCES "${CMAKE_CURRENT_LIST_DIR}/metrics_test.cc"
  LIBRARIES sweep_metrics PkgConfig::cpp_httplib
  LABELS unit)
