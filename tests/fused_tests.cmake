# Tests of the fused trainer, which trains a group of trials of one architecture as one
# model; they compare it against the unfused LibTorch trainer on real Fashion-MNIST data.
find_package(Torch REQUIRED)

sweep_add_test(fused_trainer_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/fused_trainer_test.cc
  LIBRARIES sweep_trainer ${TORCH_LIBRARIES} GTest::gmock
  LABELS unit)
target_compile_options(fused_trainer_test PRIVATE ${TORCH_CXX_FLAGS})
