#!/usr/bin/env bash
# Measures the training speed of the worker's LibTorch trainer.
#
# On the CPU it trains the LeNet-5 (conv 32/64, dense 1024, batch 128, 1 epoch on 10,000
# images) with the trainer (build/bench/train_bench) and with an idiomatic PyTorch loop
# (bench/train_pytorch.py on /usr/bin/python3), alternating, with the same thread count.
# It prints the median images/s of each and their ratio. It also prints the trainer's
# share of the CPU's peak float32 rate. That share is an estimate: it counts 82 MFLOP per
# training image (forward 27.8 MFLOP, backward about twice that) against a peak measured
# with an FMA loop (train_bench --measure-peak).
#
# On CUDA (--device cuda) it reports the trainer's images/s with one trial and with
# --trials concurrent trials (each a trainer on its own thread) on the same GPU.
#
# Usage: bench/train_bench.sh [--build-dir DIR] [--device cpu|cuda|cuda:N] [--threads N]
#                             [--repeats N] [--trials N] [--images N]
set -euo pipefail

build_dir=build
device=cpu
threads=2
repeats=3
trials=4
images=10000
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) build_dir=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --trials) trials=$2; shift 2 ;;
    --images) images=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "train_bench.sh: unknown option $1; see --help" >&2; exit 2 ;;
  esac
done

repo_dir=$(cd "$(dirname "$0")/.." && pwd)
bench="$build_dir/bench/train_bench"
if [[ ! -x "$bench" ]]; then
  echo "train_bench.sh: $bench not found; build it with" \
    "cmake -S . -B $build_dir -G Ninja && ninja -C $build_dir train_bench" >&2
  exit 1
fi

# Prints the median of the numbers given as arguments.
median() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# Prints the value of key $1 from the key=value line on stdin (the last match).
field() {
  tr ' ' '\n' | awk -F= -v key="$1" '$1 == key { value = $2 } END { print value }'
}

common=(--device "$device" --threads "$threads" --train-images "$images")
echo "machine: $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p'); load average:" \
  "$(cut -d' ' -f1-3 /proc/loadavg)"
if awk '{ exit !($1 > 0.5) }' /proc/loadavg; then
  echo "warning: other processes are using the CPU, so the results will be low" >&2
fi

if [[ "$device" == cpu ]]; then
  trainer_rates=()
  pytorch_rates=()
  for ((i = 1; i <= repeats; ++i)); do
    trainer_rates+=("$("$bench" "${common[@]}" | grep '^trial=0 ' | field images_per_second)")
    pytorch_rates+=("$(/usr/bin/python3 "$repo_dir/bench/train_pytorch.py" --threads "$threads" \
      --train-images "$images" | field images_per_second)")
    echo "run $i: trainer ${trainer_rates[-1]} images/s, PyTorch loop ${pytorch_rates[-1]} images/s"
  done
  trainer=$(median "${trainer_rates[@]}")
  pytorch=$(median "${pytorch_rates[@]}")
  peak=$("$bench" --measure-peak --threads "$threads" | field peak_gflops)
  awk -v t="$trainer" -v p="$pytorch" -v peak="$peak" -v n="$repeats" -v threads="$threads" \
    'BEGIN {
      printf "median of %d, %d threads: trainer %.0f images/s, PyTorch loop %.0f images/s, ratio %.2f\n",
        n, threads, t, p, t / p
      if (peak > 0)
        printf "trainer: %.1f GFLOP/s at 82 MFLOP per image = %.0f%% of the measured peak %.0f GFLOP/s\n",
          t * 0.082, 100 * t * 0.082 / peak, peak
    }'
else
  single_rates=()
  total_rates=()
  for ((i = 1; i <= repeats; ++i)); do
    single_rates+=("$("$bench" "${common[@]}" --trials 1 | grep '^trial=0 ' | field images_per_second)")
    total_rates+=("$("$bench" "${common[@]}" --trials "$trials" | field total_images_per_second)")
    echo "run $i: 1 trial ${single_rates[-1]} images/s, $trials trials ${total_rates[-1]} images/s in total"
  done
  echo "median of $repeats on $device: 1 trial $(median "${single_rates[@]}") images/s," \
    "$trials concurrent trials $(median "${total_rates[@]}") images/s in total"
fi
