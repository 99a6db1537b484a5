#!/usr/bin/env bash
# Installs the Debian 12 packages that sweep needs to build, test and run.
# Idempotent: when every package is present it only checks and returns.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config ccache zlib1g-dev libgmp-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libtorch-dev libopenblas0-openmp
  libspdlog-dev libsqlite3-dev sqlite3
  googletest libgtest-dev libgmock-dev
  nlohmann-json3-dev libcli11-dev
  dataset-fashion-mnist
  clang-14 libclang-rt-14-dev python3-yaml openssl libcpp-httplib-dev
  python3-torch python3-optuna python3-grpcio
)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages are installed"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
if ((EUID != 0)); then
  sudo_cmd=(sudo)
fi
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
  "${missing[@]}"
