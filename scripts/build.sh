#!/usr/bin/env bash
# Configures (once) and builds fourbit into the given folder (default: build), with ccache.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build}
build_type=${FOURBIT_BUILD_TYPE:-Release}
if [ ! -f "$build_dir/build.ninja" ]; then
    cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE="$build_type" \
        -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache
fi
cmake --build "$build_dir" -j "$(nproc)"
