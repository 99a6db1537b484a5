#!/usr/bin/env bash
# Runs the seed grid twice on a subset of Fashion-MNIST, once with the median stopping rule
# and once without, with the same seed, and prints the epochs each sweep trained.
#
# Usage: bench/early_stopping_run.sh [GRID_SIZE] [BUILD_DIR]
# Each trial trains on TRAIN_IMAGES - 1,000 images (default 3,000), validates on 1,000 and
# tests on 2,000; one worker, so trials run one after another in sample order.
set -euo pipefail
cd "$(dirname "$0")/.."
grid_size=${1:-6}
build=${2:-build}
run_dir=$(mktemp -d /tmp/sweep-stopping-XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

"$build/server/sweep-coordinator" --listen 127.0.0.1:0 --port-file "$run_dir/port" \
  --db "$run_dir/sweep.db" >"$run_dir/coordinator.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [[ -s "$run_dir/port" ]] && break; sleep 0.1; done
export SWEEP_COORDINATOR="127.0.0.1:$(cat "$run_dir/port")"
"$build/worker/sweep-worker" --max-train-images "${TRAIN_IMAGES:-4000}" --validation-images 1000 \
  --max-test-images 2000 >"$run_dir/worker.log" 2>&1 &
pids+=($!)

sweep="$build/client/sweep"
started=$SECONDS
stopped_id=$("$sweep" submit examples/seed-grid.json --grid-size "$grid_size" --seed 5 \
  --name median --stop median --grace-epochs 1 --min-trials 2)
"$sweep" watch "$stopped_id" >/dev/null || true
stopped_seconds=$((SECONDS - started))
started=$SECONDS
full_id=$("$sweep" submit examples/seed-grid.json --grid-size "$grid_size" --seed 5 --name full)
"$sweep" watch "$full_id" >/dev/null || true
full_seconds=$((SECONDS - started))

echo "== sweep $stopped_id: median stopping rule (${stopped_seconds} s)"
"$sweep" trials "$stopped_id"
echo "== sweep $full_id: no stopping (${full_seconds} s)"
"$sweep" trials "$full_id"
epochs() { sqlite3 "file:$run_dir/sweep.db?mode=ro" "SELECT SUM(epoch) FROM trials WHERE sweep_id = $1"; }
echo "epochs trained: $(epochs "$stopped_id") with the median rule, $(epochs "$full_id") without"
