sweep_add_test(store_test
  SOURCES store_test.cc
  LIBRARIES sweep_server sweep_test_support
  LABELS unit)
sweep_add_test(stopping_test
  SOURCES stopping_test.cc
  LIBRARIES sweep_server
  LABELS unit)
