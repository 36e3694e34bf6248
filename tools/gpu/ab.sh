#!/usr/bin/env bash
# A/B of kernel variants in one GPU call: builds the working tree ("tree") and each variant, runs
# the GPU op cases of every variant, then times them in turn, round after round, so that all
# builds meet the same card, clocks and neighbours (METHOD.md: compare only within one call).
# A variant is a folder .gpu-deps/ab/<name>/ of files laid over the tree at their repository
# paths (.gpu-deps/ab/base/src/ops/cuda/nvfp4_gemv.cuh replaces src/ops/cuda/nvfp4_gemv.cuh).
# A variant from a branch (here, before the call), e.g. experiment/persistent-moe as "stream":
#   for f in $(git diff --name-only main...experiment/persistent-moe); do
#     mkdir -p .gpu-deps/ab/stream/$(dirname $f); git show experiment/persistent-moe:$f >.gpu-deps/ab/stream/$f; done
# The overlays travel with `.gpu-deps` from this checkout at each call: add or remove variant
# folders here (an `rm` in the device command changes only the device's copy).
# Run on the GPU machine from the repository root, `.gpu-deps` carried; the env picks the work:
#   VARIANTS  names to build (default: tree and every folder under .gpu-deps/ab)
#   FILTER    gtest filter of the op cases run once per build ('' skips; default '*DeviceOps*/cuda')
#   KB        cuda_kernels_bench arguments ('' skips; ' ' runs all of it; e.g. --moe), KB_GREP the
#             lines kept
#   LAYERS    the m2.7 slice's layers for bench-model (0 skips; default 8), BATCHES its -b
#             (comma-separated: "1,8"; a bench-model error prints instead of its rows); TRACE=1
#             adds each decode kernel's time as it ran in the step's graph (--trace-kernels):
#             the kernel bench launches a kernel back to back, which can rank variants otherwise
#             (session 20: o_proj in chunks of 6 won there by 0.3-0.5 us and lost 0.24 in the graph)
#   CONTEXTS  the decode's context lengths, one bench-model run each (default 512)
#   PROMPTS   bench-model's prompt lengths, its -p (default 16; e.g. "16,4096" adds a prefill
#             timing, whose pp rows print beside the decode's)
#   ROUNDS    timing rounds (default 2)
#   TARGETS   what to build (default: fourbit ops_test cuda_kernels_bench; fourbit alone is
#             enough for bench-model, and builds faster)
#   ENVS      environments each build is timed under, space-separated; each NAME=VALUE, or several
#             joined by commas (A=0,B=0), "-" for none (default "-"): variants of one build
#             chosen at run time need no build of their own
# Prints one block per round and build; logs go to $OUT.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp}
# shellcheck source=tools/gpu/use_deps.sh
source tools/gpu/use_deps.sh
variants=${VARIANTS:-tree $(ls .gpu-deps/ab 2>/dev/null | tr '\n' ' ')}
filter=${FILTER-'*DeviceOps*/cuda'}
kb=${KB-}
layers=${LAYERS:-8}
trace=()
[ "${TRACE:-0}" = 1 ] && trace=(--trace-kernels)
rounds=${ROUNDS:-2}

build() {  # $1: variant name -> /tmp/ab/$1/build-gpu
    local root=/tmp/ab/$1
    mkdir -p "$root"
    tar --exclude=./.gpu-deps --exclude='./build*' -cf - . | tar -xf - -C "$root"
    [ "$1" = tree ] || cp -r ".gpu-deps/ab/$1/." "$root/"
    cmake -S "$root" -B "$root/build-gpu" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFOURBIT_CUDA=ON \
        -DCMAKE_CUDA_ARCHITECTURES=90a >"$out/build_$1.log" 2>&1 &&
        cmake --build "$root/build-gpu" --target ${TARGETS:-fourbit ops_test cuda_kernels_bench} \
            -j "$(nproc)" >>"$out/build_$1.log" 2>&1
}

for v in $variants; do
    start=$(date +%s)
    if build "$v"; then
        echo "built $v in $(($(date +%s) - start)) s"
    else
        echo "BUILD FAILED: $v"
        tail -30 "$out/build_$v.log"
    fi
done
if [ -n "$filter" ]; then
    for v in $variants; do
        binary=/tmp/ab/$v/build-gpu/tests/ops/ops_test
        [ -x "$binary" ] || continue
        "$binary" --gtest_filter="$filter" >"$out/ops_$v.log" 2>&1
        echo "ops $v: $(grep -c '^\[       OK \]' "$out/ops_$v.log") passed," \
            "$(grep -c '^\[  FAILED  \] .*(' "$out/ops_$v.log") failed"
        grep '^\[  FAILED  \] .*(' "$out/ops_$v.log" | head -5
    done
fi
for round in $(seq "$rounds"); do
    for v in $variants; do
        for e in ${ENVS:--}; do
            dir=/tmp/ab/$v/build-gpu
            # Each timing needs its own binary (TARGETS may have built only one of them).
            [ -x "$dir/fourbit" ] || [ -x "$dir/bench/cuda_kernels_bench" ] || continue
            environment=()
            [ "$e" = - ] || IFS=, read -ra environment <<<"$e"
            echo "== round $round: $v${environment:+ $e}"
            if [ -n "$kb" ] && [ -x "$dir/bench/cuda_kernels_bench" ]; then
                # shellcheck disable=SC2086
                env "${environment[@]}" "$dir/bench/cuda_kernels_bench" $kb 2>&1 |
                    grep -E "${KB_GREP:-.}" | head -40
            fi
            if [ "$layers" != 0 ] && [ -x "$dir/fourbit" ]; then
                for context in ${CONTEXTS:-512}; do
                    env "${environment[@]}" "$dir/fourbit" bench-model --synthetic-weights \
                        m2.7-slice --layers "$layers" --all-layers-nvfp4 --device cuda -p "${PROMPTS:-16}" \
                        -b "${BATCHES:-1}" -n 64 --context "$context" -r 1 "${trace[@]}" 2>&1 |
                        grep -E "^\| tg|^\| pp[0-9]{3}|^\| [a-z_]+kernel|[Ee]rror"
                done
            fi
        done
    done
done
