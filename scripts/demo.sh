#!/usr/bin/env bash
# Installs what is missing, builds, starts a coordinator and one worker on loopback, runs a
# small real sweep on Fashion-MNIST (4 trials, 1 epoch, 10,000 training images each) and
# prints its trials table. Everything lives in runs/demo-TIMESTAMP/; both servers stop at
# the end.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh

run_dir="runs/demo-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$run_dir"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

build/server/sweep-coordinator --listen 127.0.0.1:0 --port-file "$run_dir/port" \
  --db "$run_dir/sweep.db" >"$run_dir/coordinator.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [[ -s "$run_dir/port" ]] && break; sleep 0.1; done
[[ -s "$run_dir/port" ]] || { cat "$run_dir/coordinator.log"; exit 1; }
export SWEEP_COORDINATOR="127.0.0.1:$(cat "$run_dir/port")"

build/worker/sweep-worker --max-train-images 12000 --validation-images 2000 \
  --artifacts-dir "$run_dir/artifacts" >"$run_dir/worker.log" 2>&1 &
pids+=($!)

sweep_id=$(build/client/sweep submit examples/demo-grid.json --grid-size 4 --seed 7 --name demo)
echo "submitted sweep $sweep_id to $SWEEP_COORDINATOR; logs in $run_dir"
build/client/sweep watch "$sweep_id" | cat || true
build/client/sweep trials "$sweep_id"
