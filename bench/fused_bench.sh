#!/usr/bin/env bash
# Measures the aggregate training throughput of K trials of one architecture trained as one
# fused group (FusedTrainer) against the same trials trained one after another (the
# unfused trainer), for K = 1, 4, 16 and 64.
#
# Each run trains the LeNet-5 with conv 32/64, dense 1024 and batch 128 on 10,000
# Fashion-MNIST images: every trial takes --warmup-steps untimed steps, then --steps timed
# steps, and stops. The script alternates fused and unfused runs --repeats times and
# prints, per K, the median images/s of each and the speed-up (fused / unfused).
#
# Defaults: on the CPU 1 warm-up and 4 timed steps per trial; on CUDA 10 and 50.
#
# Usage: bench/fused_bench.sh [--build-dir DIR] [--device cpu|cuda|cuda:N] [--threads N]
#                             [--repeats N] [--trials "1 4 16 64"] [--steps N]
#                             [--warmup-steps N]
set -euo pipefail

build_dir=build
device=cpu
threads=2
repeats=3
trials_list="1 4 16 64"
steps=
warmup_steps=
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) build_dir=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --trials) trials_list=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --warmup-steps) warmup_steps=$2; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fused_bench.sh: unknown option $1; see --help" >&2; exit 2 ;;
  esac
done
if [[ "$device" == cpu ]]; then
  steps=${steps:-4}
  warmup_steps=${warmup_steps:-1}
else
  steps=${steps:-50}
  warmup_steps=${warmup_steps:-10}
fi

bench="$build_dir/bench/fused_bench"
if [[ ! -x "$bench" ]]; then
  echo "fused_bench.sh: $bench not found; build it with" \
    "cmake -S . -B $build_dir -G Ninja && ninja -C $build_dir fused_bench" >&2
  exit 1
fi

# Prints the median of the numbers given as arguments.
median() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# Prints the value of key $1 from the key=value line on stdin.
field() {
  tr ' ' '\n' | awk -F= -v key="$1" '$1 == key { value = $2 } END { print value }'
}

echo "machine: $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p'); load average:" \
  "$(cut -d' ' -f1-3 /proc/loadavg)"
if [[ "$device" != cpu ]] && command -v nvidia-smi > /dev/null; then
  echo "GPU: $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | head -1)"
fi
echo "device=$device threads=$threads warmup_steps=$warmup_steps steps=$steps repeats=$repeats"

common=(--device "$device" --threads "$threads" --steps "$steps" --warmup-steps "$warmup_steps")
summary=()
for trials in $trials_list; do
  fused_rates=()
  unfused_rates=()
  for ((i = 1; i <= repeats; ++i)); do
    fused_rates+=("$("$bench" "${common[@]}" --mode fused --trials "$trials" |
      field images_per_second)")
    unfused_rates+=("$("$bench" "${common[@]}" --mode unfused --trials "$trials" |
      field images_per_second)")
    echo "K=$trials run $i: fused ${fused_rates[-1]} images/s, unfused ${unfused_rates[-1]} images/s"
  done
  summary+=("$(awk -v k="$trials" -v f="$(median "${fused_rates[@]}")" \
    -v u="$(median "${unfused_rates[@]}")" \
    'BEGIN { printf "%6d %14.0f %16.0f %9.2f", k, f, u, f / u }')")
done

echo "medians of $repeats runs, aggregate training images/s:"
printf '%6s %14s %16s %9s\n' K fused unfused speed-up
printf '%s\n' "${summary[@]}"
