#!/usr/bin/env bash
# Coordinator throughput against Optuna on the same workload, then acquire latency with
# 64 workers. Each run starts a fresh coordinator on a fresh SQLite file (load_gen) or a
# fresh Optuna study (optuna_load.py) in a temporary directory. Prints every run and the
# medians over RUNS runs.
#
# Per run:
#   1. load_gen, WORKERS workers, TRIALS trials of EPOCHS x METRICS rows, back to back;
#   2. optuna_load.py, the same workers and rows, OPTUNA_TRIALS trials (Optuna is slow);
#   3. load_gen, WIDE_WORKERS workers back to back, which saturates the coordinator;
#   4. load_gen, WIDE_WORKERS workers that each spend PACED_EPOCH_MS (+-50%) per epoch,
#      the acquire latency of a coordinator that is busy but not saturated.
#
# Usage: bench/load_bench.sh [BUILD_DIR]   (default build; needs load_gen and
#        sweep-coordinator built there, and /usr/bin/python3 with python3-optuna)
# Settings by environment: RUNS=3 WORKERS=16 TRIALS=2000 OPTUNA_TRIALS=100 EPOCHS=5
#        METRICS=8 WIDE_WORKERS=64 PACED_EPOCH_MS=40 SKIP_OPTUNA=0
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
runs=${RUNS:-3}
workers=${WORKERS:-16}
trials=${TRIALS:-2000}
optuna_trials=${OPTUNA_TRIALS:-100}
epochs=${EPOCHS:-5}
metrics=${METRICS:-8}
wide_workers=${WIDE_WORKERS:-64}
paced_epoch_ms=${PACED_EPOCH_MS:-40}
skip_optuna=${SKIP_OPTUNA:-0}

load_gen="$build/bench/load_gen"
coordinator="$build/server/sweep-coordinator"
for program in "$load_gen" "$coordinator"; do
  if [[ ! -x $program ]]; then
    echo "load_bench: $program not found; build it with: ninja -C $build load_gen sweep-coordinator" >&2
    exit 1
  fi
done

out_dir=$(mktemp -d /tmp/sweep-load-bench-XXXXXX)
trap 'rm -rf "$out_dir"' EXIT

# Prints the value of KEY=VALUE on the first output line that starts with PREFIX.
field() {
  local file=$1 prefix=$2 key=$3
  grep "^$prefix" "$file" | head -1 | grep -o "$key=[0-9.]*" | cut -d= -f2
}

median() {
  sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2];
                                       else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

run_load_gen() {
  local name=$1
  shift
  "$load_gen" --coordinator-binary "$coordinator" --epochs "$epochs" \
    --metrics-per-epoch "$metrics" "$@" >"$out_dir/$name" 2>&1 || {
    cat "$out_dir/$name" >&2
    echo "load_bench: load_gen $* failed" >&2
    exit 1
  }
  sed "s/^/  /" "$out_dir/$name"
}

declare -a sweep_tps optuna_tps saturated_p99 paced_p99 sweep_cpu
for run in $(seq "$runs"); do
  echo "== run $run of $runs; $(uptime | sed 's/.*load/load/')"
  echo "sweep, $workers workers, $trials trials:"
  run_load_gen "sweep-$run" --workers "$workers" --trials "$trials"
  sweep_tps+=("$(field "$out_dir/sweep-$run" throughput: trials_per_s)")
  sweep_cpu+=("$(field "$out_dir/sweep-$run" coordinator: cpu_ms_per_trial)")

  if [[ $skip_optuna != 1 ]]; then
    echo "optuna, $workers processes, $optuna_trials trials:"
    /usr/bin/python3 bench/optuna_load.py --workers "$workers" --trials "$optuna_trials" \
      --epochs "$epochs" --metrics-per-epoch "$metrics" >"$out_dir/optuna-$run"
    sed "s/^/  /" "$out_dir/optuna-$run"
    optuna_tps+=("$(field "$out_dir/optuna-$run" throughput: trials_per_s)")
  fi

  echo "sweep, $wide_workers workers back to back, $trials trials:"
  run_load_gen "saturated-$run" --workers "$wide_workers" --trials "$trials"
  saturated_p99+=("$(field "$out_dir/saturated-$run" acquire_ms: p99)")

  echo "sweep, $wide_workers workers at ${paced_epoch_ms} ms per epoch, $trials trials:"
  run_load_gen "paced-$run" --workers "$wide_workers" --trials "$trials" \
    --epoch-ms "$paced_epoch_ms"
  paced_p99+=("$(field "$out_dir/paced-$run" acquire_ms: p99)")
done

sweep_median=$(printf "%s\n" "${sweep_tps[@]}" | median)
echo "== medians of $runs runs"
echo "sweep trials/s ($workers workers, $trials trials): $sweep_median" \
  "(runs: ${sweep_tps[*]}); coordinator CPU ms/trial: $(printf "%s\n" "${sweep_cpu[@]}" | median)"
if [[ $skip_optuna != 1 ]]; then
  optuna_median=$(printf "%s\n" "${optuna_tps[@]}" | median)
  echo "optuna trials/s ($workers processes, $optuna_trials trials): $optuna_median" \
    "(runs: ${optuna_tps[*]})"
  echo "ratio sweep/optuna: $(awk -v a="$sweep_median" -v b="$optuna_median" \
    'BEGIN { printf "%.0f\n", a / b }')"
fi
echo "acquire p99 ms, $wide_workers workers back to back: $(printf "%s\n" "${saturated_p99[@]}" | median)" \
  "(runs: ${saturated_p99[*]})"
echo "acquire p99 ms, $wide_workers workers at ${paced_epoch_ms} ms per epoch:" \
  "$(printf "%s\n" "${paced_p99[@]}" | median) (runs: ${paced_p99[*]})"
