# Processes on loopback: the coordinator and workers started as separate programs.

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
sweep_add_test(service_endpoints_test
  SOURCES service_endpoints_test.cc
  LIBRARIES sweep_test_support
  LABELS integration)
add_dependencies(service_endpoints_test sweep-coordinator sweep-health-probe)
sweep_add_test(early_stopping_test
  SOURCES early_stopping_test.cc
  LIBRARIES sweep_test_support
  LABELS integration)
add_dependencies(early_stopping_test sweep-coordinator sweep-worker)
