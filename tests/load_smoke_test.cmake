# Runs bench/load_gen for a few seconds so the load generator cannot rot: 4 simulated
# workers against a real coordinator on loopback with a fresh SQLite file. load_gen
# exits non-zero unless all 200 trials of its sweep completed.
add_test(NAME load_gen_smoke
  COMMAND $<TARGET_FILE:load_gen> --workers 4 --trials 200 --acquire-wait-ms 1000
          --coordinator-binary $<TARGET_FILE:sweep-coordinator>)
set_tests_properties(load_gen_smoke PROPERTIES LABELS integration TIMEOUT 120)
