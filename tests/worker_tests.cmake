# Tests of the worker's data reader, augmentation and LibTorch trainer.
find_package(Torch REQUIRED)
find_package(ZLIB REQUIRED)

sweep_add_test(idx_reader_test
  SOURCES idx_reader_test.cc
  LIBRARIES sweep_idx ZLIB::ZLIB GTest::gmock
  LABELS unit)

sweep_add_test(augmentation_test
  SOURCES augmentation_test.cc
  LIBRARIES sweep_trainer ${TORCH_LIBRARIES}
  LABELS unit)
target_compile_options(augmentation_test PRIVATE ${TORCH_CXX_FLAGS})

sweep_add_test(trainer_test
  SOURCES trainer_test.cc
  LIBRARIES sweep_trainer ${TORCH_LIBRARIES} GTest::gmock
  LABELS unit)
target_compile_options(trainer_test PRIVATE ${TORCH_CXX_FLAGS})
