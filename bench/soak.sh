#!/usr/bin/env bash
# Soak test of the orchestration: 16 simulated workers (the test double that trains
# nothing) run a 400-trial sweep while workers are killed at random and the coordinator is
# killed and restarted twice. Prints the final counts and exits non-zero when a trial is
# not in a final state, a trial's parameters repeat, or a completed trial lacks rows.
#
# Usage: bench/soak.sh [WORKERS] [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
workers=${1:-16}
build=${2:-build}
epochs=2
steps=10
run_dir=$(mktemp -d /tmp/sweep-soak-XXXXXX)
db="$run_dir/sweep.db"
declare -A worker_pids
coordinator_pid=""

cleanup() {
  for pid in "${worker_pids[@]}" $coordinator_pid; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

start_coordinator() {
  local listen=$1
  rm -f "$run_dir/port"
  "$build/server/sweep-coordinator" --listen "$listen" --db "$db" --port-file "$run_dir/port" \
    --lease-seconds 3 --heartbeat-seconds 0.5 --max-attempts 10 \
    >>"$run_dir/coordinator.log" 2>&1 &
  coordinator_pid=$!
  for _ in $(seq 100); do [[ -s "$run_dir/port" ]] && return; sleep 0.1; done
  echo "coordinator did not start" >&2
  exit 1
}

start_worker() {
  "$build/worker/sweep-worker" --coordinator "$address" --simulated-trainer \
    --simulated-step-ms 50 --simulated-steps-per-epoch "$steps" --acquire-wait-seconds 1 \
    --host "soak-$1" --log-level warn >>"$run_dir/worker-$1.log" 2>&1 &
  worker_pids[$1]=$!
  disown "$!"
}

start_coordinator 127.0.0.1:0
address="127.0.0.1:$(cat "$run_dir/port")"
grid='{"conv1_depth": [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20],
       "conv2_depth": [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20], "num_epochs": [2]}'
echo "$grid" >"$run_dir/grid.json"
sweep_id=$("$build/client/sweep" --coordinator "$address" submit "$run_dir/grid.json" \
  --grid-size 400 --seed 11)
for i in $(seq "$workers"); do start_worker "$i"; done

kills=0
restarts=0
started=$SECONDS
while true; do
  sleep 2
  elapsed=$((SECONDS - started))
  victim=$((RANDOM % workers + 1))
  kill -KILL "${worker_pids[$victim]}" 2>/dev/null || true
  kills=$((kills + 1))
  start_worker "$victim"
  if ((restarts < 2 && elapsed >= (restarts + 1) * 8)); then
    kill -KILL "$coordinator_pid"
    wait "$coordinator_pid" 2>/dev/null || true
    sleep 1
    start_coordinator "$address"
    restarts=$((restarts + 1))
    echo "coordinator restarted ($restarts) at ${elapsed}s"
  fi
  open=$(sqlite3 "file:$db?mode=ro" "SELECT COUNT(*) FROM trials WHERE state IN (1, 2)")
  ((open == 0)) && break
  if ((elapsed > 600)); then echo "soak timed out with $open open trials" >&2; exit 1; fi
done

query() { sqlite3 "file:$db?mode=ro" "$1"; }
expected_rows=$((epochs * (steps + 4)))
total=$(query "SELECT COUNT(*) FROM trials")
completed=$(query "SELECT COUNT(*) FROM trials WHERE state = 3")
failed=$(query "SELECT COUNT(*) FROM trials WHERE state = 4")
not_final=$(query "SELECT COUNT(*) FROM trials WHERE state NOT IN (3, 4, 5, 6)")
duplicates=$(query "SELECT COUNT(*) - COUNT(DISTINCT params_json) FROM trials")
short=$(query "SELECT COUNT(*) FROM trials t WHERE t.state = 3 AND (SELECT COUNT(*) FROM metrics m
               WHERE m.trial_id = t.id AND m.attempt = t.attempt) != $expected_rows")
rows=$(query "SELECT COUNT(*) FROM metrics")
retried=$(query "SELECT COUNT(*) FROM trials WHERE attempt > 1")
echo "soak: ${workers} workers, $((SECONDS - started)) s, ${kills} worker kills, ${restarts} coordinator restarts"
echo "soak: trials ${total} (completed ${completed}, failed ${failed}, not final ${not_final}), retried ${retried}"
echo "soak: duplicate parameter sets ${duplicates}; completed trials missing rows ${short}; metric rows ${rows}"
[[ $total -eq 400 && $not_final -eq 0 && $duplicates -eq 0 && $short -eq 0 ]]
