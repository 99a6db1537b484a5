sweep_add_test(store_test
  SOURCES store_test.cc
  LIBRARIES sweep_server sweep_test_support
  LABELS unit)
