#!/usr/bin/env bash
# One call on the GPU machine: build with the CUDA backend, run the tests (GPU tests included;
# they skip only where no GPU is present), a compute-sanitizer memcheck of the CUDA op suite,
# the GPU kernel benchmarks and an ncu profile of the one-token GEMV; then print a short table
# last. Logs and results go to $OUT (or /tmp): build.log (configure too), test.log, gpu_tests.log,
# memcheck.log, cuda_kernels.md, cuda_kernels.json, model_bench.md and ncu.log (8 files: the run
# tool's limit).
# Usage: here, tools/gpu/fetch_deps.sh once; then on the GPU machine, from the repository
# root, with `.gpu-deps` carried:
#   bash tools/gpu/check.sh          everything: the whole project and every test
#   bash tools/gpu/check.sh cuda     the CUDA backend only: tensor and op tests, benchmarks
# FOURBIT_MODEL_BENCH=none skips the model benchmarks, FOURBIT_NCU=none the ncu profiles.
# FOURBIT_COMMIT names the commit in the results where the tree has no .git (a copied tree).
set -uo pipefail
cd "$(dirname "$0")/../.."
scope=${1:-all}
build_dir=build-gpu
log_dir=${OUT:-/tmp}
start=$(date +%s)
commit=${FOURBIT_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}

# shellcheck source=tools/gpu/use_deps.sh
source tools/gpu/use_deps.sh

# sm_90a only: the card here is a Hopper (the default list adds the Blackwell targets).
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFOURBIT_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90a \
    >"$log_dir/build.log" 2>&1
configure=$?
build=1
targets=()
[ "$scope" = cuda ] && targets=(--target tensor_test ops_test cuda_parity_test engine_cuda_test cli_test cuda_kernels_bench fourbit)
if [ $configure -eq 0 ]; then
    # -k 0: every error in one call, not just the first.
    cmake --build "$build_dir" "${targets[@]}" -j "$(nproc)" -- -k 0 >>"$log_dir/build.log" 2>&1
    build=$?
fi

tests="not run"
gpu_tests="not run"
if [ $build -eq 0 ]; then
    if [ "$scope" = cuda ]; then
        : >"$log_dir/test.log"
        for binary in tests/tensor/tensor_test tests/ops/ops_test tests/model/cuda_parity_test \
            tests/runtime/engine_cuda_test; do
            OMP_NUM_THREADS=4 "$build_dir/$binary" >>"$log_dir/test.log" 2>&1
        done
        # The CLI's device tests (the binary on the GPU: --device, --kv-cache-dtype, bench-model).
        OMP_NUM_THREADS=4 "$build_dir/tests/integration/cli_test" --gtest_filter='DeviceCli.*' \
            >>"$log_dir/test.log" 2>&1
        passed=$(grep -c '^\[       OK \]' "$log_dir/test.log")
        failed=$(grep -c '^\[  FAILED  \] .*(' "$log_dir/test.log")
        tests="$passed passed, $failed failed"
    else
        # Four test processes of four OpenMP threads each: no oversubscription of the host's
        # cores. Fuzzing (clang, label "fuzz") is CI's job; the Python-driven tests skip where
        # the GPU machine has no project venv (it has no network to make one).
        (cd "$build_dir" && OMP_NUM_THREADS=4 ctest --output-on-failure -j 4 -LE fuzz \
            >"$log_dir/test.log" 2>&1)
        tests=$(grep -E "tests passed|tests failed" "$log_dir/test.log" | tail -1)
    fi
    # The GPU cases: every device-parameterized op case and the device memory tests, none of
    # which may skip here.
    "$build_dir/tests/ops/ops_test" --gtest_filter='*DeviceOps*/cuda' >"$log_dir/gpu_tests.log" 2>&1
    "$build_dir/tests/tensor/tensor_test" --gtest_filter='Device.Cuda*:Device.Copy*:Device.Failed*' \
        >>"$log_dir/gpu_tests.log" 2>&1
    # End to end: CUDA against the CPU on the golden, tiny, small and demo models.
    "$build_dir/tests/model/cuda_parity_test" >>"$log_dir/gpu_tests.log" 2>&1
    # The serving engine on the device: batching, preemption, speculative decoding.
    "$build_dir/tests/runtime/engine_cuda_test" >>"$log_dir/gpu_tests.log" 2>&1
    # The binary on the device: bench-model's refusal of a KV cache the card cannot hold.
    "$build_dir/tests/integration/cli_test" --gtest_filter='DeviceCli.BenchModelRefuses*' \
        >>"$log_dir/gpu_tests.log" 2>&1
    gpu_passed=$(grep -c '^\[       OK \]' "$log_dir/gpu_tests.log")
    gpu_failed=$(grep -c '^\[  FAILED  \] .*(' "$log_dir/gpu_tests.log")
    gpu_skipped=$(grep -c '^\[  SKIPPED \] .*(' "$log_dir/gpu_tests.log")
    gpu_tests="$gpu_passed passed, $gpu_failed failed, $gpu_skipped skipped"
fi

memcheck="not run"
if [ $build -eq 0 ] && command -v compute-sanitizer >/dev/null; then
    # The op suite's small cases under memcheck (the MiniMax-sized ones take minutes there).
    compute-sanitizer --tool memcheck --error-exitcode 9 "$build_dir/tests/ops/ops_test" \
        --gtest_filter='*DeviceOps*/cuda:-*MiniMax*' >"$log_dir/memcheck.log" 2>&1
    status=$?
    # And a small model end to end (tiny NVFP4: grouped, dense edge layers, paged attention).
    compute-sanitizer --tool memcheck --error-exitcode 9 "$build_dir/tests/model/cuda_parity_test" \
        --gtest_filter='*tiny_nvfp4*' >>"$log_dir/memcheck.log" 2>&1
    status=$((status + $?))
    memcheck=$(grep "ERROR SUMMARY" "$log_dir/memcheck.log" | sort -u | tr '\n' ' ' || echo "exit $status")
    [ $status -eq 0 ] || memcheck="FAILED ($memcheck), see memcheck.log"
fi

bench="not run"
if [ $build -eq 0 ]; then
    FOURBIT_COMMIT=$commit FOURBIT_DATE=$(date +%Y-%m-%d) \
        "$build_dir/bench/cuda_kernels_bench" "$log_dir/cuda_kernels.json" >"$log_dir/cuda_kernels.md" 2>&1
    bench=$([ $? -eq 0 ] && echo "ok, see cuda_kernels.md" || echo "FAILED, see cuda_kernels.md")
fi
# The model's own speed (fourbit bench-model, synthetic NVFP4 weights made on the GPU): the 4-
# and 8-layer M2.7 slices as llama.cpp's figures use them (every layer NVFP4), then the whole
# 62-layer M2.7 where the card holds it (H200).
model_bench="not run"
if [ $build -eq 0 ] && [ "${FOURBIT_MODEL_BENCH:-all}" != none ]; then
    : >"$log_dir/model_bench.md"
    for layers in 4 8; do
        echo "## m2.7 slice, $layers layers, every layer NVFP4" >>"$log_dir/model_bench.md"
        "$build_dir/fourbit" bench-model --synthetic-weights m2.7-slice --layers $layers \
            --all-layers-nvfp4 --device cuda -p 512,4096 -b 1 -n 128 --context 0 \
            >>"$log_dir/model_bench.md" 2>&1
    done
    # Long prompts and long contexts, where attention (not the weights) dominates.
    echo "## m2.7 slice, 4 layers, every layer NVFP4, 16K tokens" >>"$log_dir/model_bench.md"
    "$build_dir/fourbit" bench-model --synthetic-weights m2.7-slice --layers 4 --all-layers-nvfp4 \
        --device cuda -p 16384 -b 1 -n 64 --context 16384 >>"$log_dir/model_bench.md" 2>&1
    # The KV cache: bf16 (auto on a GPU, every run above) against f32, the same slice and tests.
    echo "## m2.7 slice, 4 layers, every layer NVFP4, f32 KV cache (the runs above: bf16)" >>"$log_dir/model_bench.md"
    "$build_dir/fourbit" bench-model --synthetic-weights m2.7-slice --layers 4 --all-layers-nvfp4 \
        --device cuda --kv-cache-dtype f32 -p 4096,16384 -b 1 -n 64 --context 16384 \
        >>"$log_dir/model_bench.md" 2>&1
    echo "## m2.7 slice, 4 layers: where the time goes (each op waited for, no graphs)" >>"$log_dir/model_bench.md"
    "$build_dir/fourbit" bench-model --synthetic-weights m2.7-slice --layers 4 --all-layers-nvfp4 \
        --device cuda -p 512,4096 -b 1 -n 32 --context 512 -r 1 --profile-ops \
        >>"$log_dir/model_bench.md" 2>&1
    # The same decode as it runs (CUDA graphs), kernel by kernel, from CUPTI's records.
    echo "## m2.7 slice, 8 layers: the decode step's kernels as they ran" >>"$log_dir/model_bench.md"
    "$build_dir/fourbit" bench-model --synthetic-weights m2.7-slice --layers 8 --all-layers-nvfp4 \
        --device cuda -p 16 -b 1,8 -n 64 --context 512 -r 1 --trace-kernels \
        >>"$log_dir/model_bench.md" 2>&1
    memory_mib=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits 2>/dev/null | head -1)
    if [ "${memory_mib:-0}" -gt 130000 ]; then
        echo "## m2.7, 62 layers, every layer NVFP4" >>"$log_dir/model_bench.md"
        "$build_dir/fourbit" bench-model --synthetic-weights m2.7 --all-layers-nvfp4 --device cuda \
            -p 4096 -b 1,8,16,32 -n 64 --context 512 -r 2 \
            >>"$log_dir/model_bench.md" 2>&1
        # A coding agent's long context: decode where the KV cache is a large part of the bytes.
        echo "## m2.7, 62 layers, every layer NVFP4, 32K context" >>"$log_dir/model_bench.md"
        "$build_dir/fourbit" bench-model --synthetic-weights m2.7 --all-layers-nvfp4 --device cuda \
            -p 16 -b 1 -n 32 --context 32768 -r 1 >>"$log_dir/model_bench.md" 2>&1
    fi
    model_bench=$([ $? -eq 0 ] && echo "ok, see model_bench.md" || echo "FAILED, see model_bench.md")
fi
# The agentic profile against the throughput profile on the demo model, served from the GPU
# (FOURBIT_SPECULATION=1; the tables come back as speculation_compare.md).
speculation="not run"
if [ $build -eq 0 ] && [ "${FOURBIT_SPECULATION:-0}" = 1 ]; then
    FOURBIT_BUILD_DIR=$build_dir FOURBIT_BENCH_OUT=/tmp/speculation \
        bash bench/speculation_compare.sh --device cuda >"$log_dir/speculation_compare.md" 2>&1
    speculation=$([ $? -eq 0 ] && echo "ok, see speculation_compare.md" || echo "FAILED, see speculation_compare.md")
fi
profile="not run"
if [ $build -eq 0 ] && command -v ncu >/dev/null && [ "${FOURBIT_NCU:-all}" != none ]; then
    # Hardware counters of the q_proj GEMV at one token (clocks left alone, METHOD.md): where its
    # time goes (issue slots, stalls, achieved bandwidth) for the next kernel change.
    ncu --clock-control none --kernel-name regex:linear_kernel --launch-skip 1 --launch-count 1 \
        --section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats \
        --section SchedulerStats --section Occupancy --section LaunchStats \
        "$build_dir/bench/cuda_kernels_bench" --profile >"$log_dir/ncu.log" 2>&1
    profile=$([ $? -eq 0 ] && echo "ok, see ncu.log" || echo "FAILED, see ncu.log")
    # Where a forward's time goes: every kernel of the 4-layer slice's prefill of 512 tokens and
    # of two decode steps (graphs off, so that each kernel is profiled alone), summed per kernel:
    # its time, warp instructions, issue slots busy and DRAM use, which tell a kernel bound by
    # its instruction stream from one waiting on memory (the decode GEMVs were the former:
    # bench/results/cuda_model.md).
    echo "## per-kernel summary: m2.7 slice, 4 layers, pp512 then tg2" >>"$log_dir/ncu.log"
    metrics=gpu__time_duration.sum,smsp__inst_executed.sum
    metrics+=,smsp__issue_active.avg.pct_of_peak_sustained_active
    metrics+=,dram__throughput.avg.pct_of_peak_sustained_elapsed
    FOURBIT_CUDA_GRAPHS=0 ncu --clock-control none --print-summary per-kernel --metrics "$metrics" \
        "$build_dir/fourbit" bench-model --synthetic-weights m2.7-slice --layers 4 --all-layers-nvfp4 \
        --device cuda -p 512 -b 1 -n 2 --context 64 -r 0 >>"$log_dir/ncu.log" 2>&1 ||
        profile="$profile; per-kernel summary FAILED"
fi
gpu=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)

echo
if [ -f "$log_dir/cuda_kernels.md" ]; then
    # The headline numbers: ceilings, M = 1 decode GEMVs beside a bare read of their bytes, the
    # MoE layer.
    grep -E "^card|bandwidth" "$log_dir/cuda_kernels.md"
    echo "| kind | shape | variant | tokens | us | MB | GB/s | of copy BW |"
    echo "|---|---|---|---:|---:|---:|---:|---:|"
    grep -E "production \| 1 \||read only|moe" "$log_dir/cuda_kernels.md"
    echo
fi
if [ -s "$log_dir/model_bench.md" ]; then
    grep -E "^##|^\| (pp|tg)" "$log_dir/model_bench.md"
    echo
fi
grep -h "^\[ parity \]" "$log_dir/gpu_tests.log" "$log_dir/test.log" 2>/dev/null | sort -u
echo "| step | result |"
echo "|---|---|"
echo "| gpu | ${gpu:-none found} |"
echo "| commit | $commit |"
echo "| configure (CUDA on) | $([ $configure -eq 0 ] && echo ok || echo "FAILED, see build.log") |"
echo "| build ($scope) | $([ $build -eq 0 ] && echo ok || echo "FAILED, see build.log") |"
echo "| tests | $tests |"
echo "| GPU tests | $gpu_tests |"
echo "| memcheck | $memcheck |"
echo "| GPU benchmarks | $bench |"
echo "| model benchmarks | $model_bench |"
echo "| speculation profiles | $speculation |"
echo "| ncu profile (q_proj, 1 token) | $profile |"
echo "| wall time | $(($(date +%s) - start)) s |"
[ $configure -eq 0 ] && [ $build -eq 0 ] && [ "${gpu_failed:-1}" -eq 0 ] && [ "${gpu_skipped:-1}" -eq 0 ]
