#!/usr/bin/env bash
# Builds the grid parser fuzzer with libFuzzer, AddressSanitizer and
# UndefinedBehaviorSanitizer, then runs it.
#
# Usage: tests/fuzz/run-grid-fuzzer.sh [SECONDS]
#   SECONDS  how long to fuzz (default 20).
# The binary and the inputs it discovers go to build-fuzz/ (FUZZ_BUILD_DIR overrides);
# the seed corpus in tests/fuzz/corpus/grid/ is only read. A finding is written to the
# build directory as crash-* and the script exits non-zero.
#
# g++ has no libFuzzer, so this uses clang (Debian 12: clang-14) and compiles the
# sources directly instead of through CMake.
set -euo pipefail

seconds="${1:-20}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="${FUZZ_BUILD_DIR:-$root/build-fuzz}"

cxx=""
for candidate in clang++-14 clang++; do
  if command -v "$candidate" >/dev/null; then
    cxx="$candidate"
    break
  fi
done
if [[ -z "$cxx" ]]; then
  echo "run-grid-fuzzer: clang++ not found; install the Debian package clang-14" >&2
  exit 1
fi

mkdir -p "$out/corpus"
read -r -a absl_flags <<<"$(pkg-config --cflags --libs absl_status absl_statusor absl_strings)"
"$cxx" -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I"$root" \
  "$root/tests/fuzz/grid_parser_fuzzer.cc" \
  "$root/common/combinations.cc" \
  "$root/common/hyperparameters.cc" \
  "$root/common/search_space.cc" \
  "$root/common/value.cc" \
  "${absl_flags[@]}" -lgmpxx -lgmp \
  -o "$out/grid_parser_fuzzer"

# The first corpus directory receives new inputs; the seed directory is only read.
cd "$out"
./grid_parser_fuzzer -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 \
  -dict="$root/tests/fuzz/grid.dict" \
  "$out/corpus" "$root/tests/fuzz/corpus/grid"
