# Tests of the TensorBoard event file writer. Included from tests/CMakeLists.txt.
sweep_add_test(tensorboard_test
  SOURCES "${CMAKE_CURRENT_LIST_DIR}/tensorboard_test.cc"
  LIBRARIES sweep_tensorboard sweep_server
  LABELS unit)
