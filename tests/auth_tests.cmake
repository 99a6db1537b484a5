# Token authentication, TLS and `sweep watch`, with the coordinator, workers and the CLI
# started as separate programs on loopback.

sweep_add_test(auth_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/auth_test.cc
  LIBRARIES sweep_test_support sweep_client absl::strings GTest::gmock
  LABELS integration)
add_dependencies(auth_test sweep-coordinator sweep-worker sweep)

# Runs `sweep watch` in a pseudo-terminal; forkpty comes from libutil.
sweep_add_test(watch_pty_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/watch_pty_test.cc
  LIBRARIES sweep_test_support sweep_client absl::strings GTest::gmock util
  LABELS integration)
add_dependencies(watch_pty_test sweep-coordinator sweep-worker sweep)
