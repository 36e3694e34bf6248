#!/usr/bin/env bash
# One call on the GPU machine: build with the CUDA backend, run every test (GPU tests included;
# they skip only where no GPU is present) and the GPU benchmarks, then print a short table last.
# Usage: here, tools/gpu/fetch_deps.sh once; then on the GPU machine, from the repository
# root, with `.gpu-deps` carried: bash tools/gpu/check.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
build_dir=build-gpu
log_dir=${OUT:-/tmp}
start=$(date +%s)

# Packages the bare GPU machine lacks, carried from the dev machine (tools/gpu/fetch_deps.sh),
# unpacked into a private prefix whose pkg-config files are pointed at it.
deps=/tmp/gpu-deps
if compgen -G ".gpu-deps/*.deb" >/dev/null; then
    for deb in .gpu-deps/*.deb; do dpkg -x "$deb" "$deps"; done
    sed -i "s|^prefix=/usr|prefix=$deps/usr|" "$deps"/usr/lib/x86_64-linux-gnu/pkgconfig/*.pc
    export PKG_CONFIG_PATH="$deps/usr/lib/x86_64-linux-gnu/pkgconfig:${PKG_CONFIG_PATH:-}"
    export LD_LIBRARY_PATH="$deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
    export OPENSSL_ROOT_DIR="$deps/usr"
fi

cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFOURBIT_CUDA=ON \
    >"$log_dir/configure.log" 2>&1
configure=$?
build=1
if [ $configure -eq 0 ]; then
    # -k 0: every error in one call, not just the first.
    cmake --build "$build_dir" -j "$(nproc)" -- -k 0 >"$log_dir/build.log" 2>&1
    build=$?
fi
tests="not run"
if [ $build -eq 0 ]; then
    # Four test processes of four OpenMP threads each: no oversubscription of the host's cores.
    # Fuzzing (clang, label "fuzz") is CI's job; the Python-driven tests skip where the GPU
    # machine has no project venv (it has no network to make one).
    (cd "$build_dir" && OMP_NUM_THREADS=4 ctest --output-on-failure -j 4 -LE fuzz \
        >"$log_dir/ctest.log" 2>&1)
    tests=$(grep -E "tests passed|tests failed" "$log_dir/ctest.log" | tail -1)
fi
gpu=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)

echo
echo "| step | result |"
echo "|---|---|"
echo "| gpu | ${gpu:-none found} |"
echo "| configure (CUDA on) | $([ $configure -eq 0 ] && echo ok || echo "FAILED, see configure.log") |"
echo "| build | $([ $build -eq 0 ] && echo ok || echo "FAILED, see build.log") |"
echo "| ctest | $tests |"
echo "| GPU benchmarks | none yet (the CUDA backend lands with its own benchmarks) |"
echo "| wall time | $(($(date +%s) - start)) s |"
[ $configure -eq 0 ] && [ $build -eq 0 ] && grep -q "100% tests passed" "$log_dir/ctest.log"
