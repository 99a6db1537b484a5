#!/usr/bin/env bash
# Prepares the LibTorch that deploy/Dockerfile.worker builds the worker against. It runs in the
# image's build stage, as root.
#
#   install-libtorch.sh debian|cuda INPUT_DIR PREFIX
#
# debian: Debian's CPU LibTorch 1.13 (libtorch-dev, from scripts/install-deps.sh). Nothing to
#         do but create an empty PREFIX/lib, which the image's runtime stage copies.
# cuda:   unpacks INPUT_DIR/libtorch.zip, a cxx11-ABI "shared-with-deps" LibTorch zip for
#         CUDA, into PREFIX, and installs Debian's CUDA toolkit (nvidia-cuda-toolkit, from
#         the non-free component), because find_package(Torch) on a CUDA LibTorch needs it.
#
# NOTE: the cuda path has never been run, so expect to adjust it on the first GPU build.
set -euo pipefail

if (($# != 3)); then
  echo "usage: install-libtorch.sh debian|cuda INPUT_DIR PREFIX" >&2
  exit 2
fi
variant=$1
input_dir=$2
prefix=$3
mkdir -p "$prefix/lib"

case $variant in
  debian) exit 0 ;;
  cuda) ;;
  *)
    echo "install-libtorch: LIBTORCH=$variant is invalid; use debian (the default) or cuda" >&2
    exit 2
    ;;
esac

zip=$input_dir/libtorch.zip
if [[ ! -f $zip ]]; then
  cat >&2 <<'EOF'
install-libtorch: LIBTORCH=cuda needs a CUDA LibTorch zip at deploy/libtorch/libtorch.zip in
the build context, and that file is missing. Download the cxx11-ABI "shared-with-deps"
LibTorch 1.13.1 zip for CUDA 11.7 from pytorch.org (the API version the worker is written
for), save it as deploy/libtorch/libtorch.zip and build again. docs/deploy.md has the steps.
EOF
  exit 1
fi

# nvidia-cuda-toolkit is in Debian's non-free component, which the base image does not enable.
# The base image lists its sources in one of two formats, so both are extended.
for sources in /etc/apt/sources.list /etc/apt/sources.list.d/debian.sources; do
  if [[ -f $sources ]]; then
    sed -Ei -e 's/^(Components:.*\bmain)$/\1 contrib non-free/' \
      -e 's/^(deb .*\bmain)$/\1 contrib non-free/' "$sources"
  fi
done
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  nvidia-cuda-toolkit unzip
rm -rf /var/lib/apt/lists/*

unpacked=$(mktemp -d)
unzip -q "$zip" -d "$unpacked"
if [[ ! -f $unpacked/libtorch/share/cmake/Torch/TorchConfig.cmake ]]; then
  echo "install-libtorch: $zip has no libtorch/share/cmake/Torch/TorchConfig.cmake, so it is" \
    "not a LibTorch C++ zip; download the LibTorch zip for C++" >&2
  exit 1
fi
# Debian's gRPC and spdlog use the C++11 string ABI, so a pre-cxx11-ABI LibTorch would not link.
if ! nm -D "$unpacked/libtorch/lib/libc10.so" | grep -q cxx11; then
  echo "install-libtorch: $zip is a pre-cxx11-ABI build, which cannot link with Debian's" \
    "gRPC; download the cxx11-ABI zip" >&2
  exit 1
fi
cp -a "$unpacked/libtorch/." "$prefix/"
rm -rf "$unpacked"
echo "install-libtorch: unpacked $(basename "$zip") into $prefix"
