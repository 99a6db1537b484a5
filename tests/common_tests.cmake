# Tests of the shared library: values, the search space, hyperparameters and refinement.
sweep_add_test(value_test
  SOURCES value_test.cc
  LIBRARIES sweep_common
  LABELS unit)

sweep_add_test(grid_parse_test
  SOURCES grid_parse_test.cc
  LIBRARIES sweep_common GTest::gmock
  LABELS unit)

sweep_add_test(sampling_test
  SOURCES sampling_test.cc
  LIBRARIES sweep_common
  LABELS unit)

sweep_add_test(hyperparameters_test
  SOURCES hyperparameters_test.cc
  LIBRARIES sweep_common
  LABELS unit)

sweep_add_test(refine_test
  SOURCES refine_test.cc
  LIBRARIES sweep_common
  LABELS unit)
