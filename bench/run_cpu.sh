#!/usr/bin/env bash
# CPU benchmarks, recorded in bench/results/:
#   - the forward pass on the `small` preset with BF16 weights, NVFP4 with the seed ignore list
#     (first and last layer BF16) and NVFP4 in every layer (the shape of llama.cpp's figures):
#     <date>-cpu_forward-<weights>.json and a row each in cpu_forward.md;
#   - the NVFP4 GEMV at M2.7's shapes against BF16: <date>-nvfp4_gemv.json and nvfp4_gemv.md;
#   - the engine's aggregate decode rate at concurrency 1, 4 and 16 on small NVFP4 (seed):
#     <date>-engine.json and engine.md.
# Needs a build (scripts/build.sh); makes the models once under $build_dir/bench-models.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${FOURBIT_BUILD_DIR:-build}
cmake --build "$build_dir" --target fourbit cpu_forward_bench nvfp4_gemv_bench engine_bench \
    >/dev/null
date=$(date +%Y-%m-%d)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)
cores=$(nproc)
machine="$cpu, $cores cores"

for weights in bf16 nvfp4-seed nvfp4-all; do
    model="$build_dir/bench-models/small-$weights"
    if [ ! -f "$model/config.json" ]; then
        case $weights in
            bf16) flags=() ;;
            nvfp4-seed) flags=(--quant nvfp4) ;;
            nvfp4-all) flags=(--quant nvfp4 --nvfp4-layers all) ;;
        esac
        "$build_dir/fourbit" make-model --preset small --out "$model" "${flags[@]}" >/dev/null
    fi
    out=bench/results/$date-cpu_forward-$weights.json
    FOURBIT_BENCH_MODEL_DIR=$model "$build_dir/bench/cpu_forward_bench" \
        --benchmark_out="$out" --benchmark_out_format=json \
        --benchmark_context=machine="$machine" --benchmark_context=date="$date" \
        --benchmark_context=weights="$weights"
    python3 - "$out" "$machine" "$date" "$weights" <<'PY' | tee -a bench/results/cpu_forward.md
import json, sys
path, machine, date, weights = sys.argv[1:]
runs = {b["name"].split("/min_time")[0]: b for b in json.load(open(path))["benchmarks"]}
bandwidth = runs["memory_read_bandwidth/iterations:1/manual_time"]["GB/s"]
decode = runs["small/decode/64"]
print(f"| {date} | {machine} | {weights} | {runs['small/prefill/128']['tok/s']:.0f} | "
      f"{runs['small/prefill/512']['tok/s']:.0f} | {decode['tok/s']:.0f} | "
      f"{decode['weight_MB/token']:.0f} | {decode['weight_GB/s']:.1f} | {bandwidth:.1f} | "
      f"{decode['weight_GB/s'] / bandwidth:.2f} |")
PY
done

out=bench/results/$date-nvfp4_gemv.json
"$build_dir/bench/nvfp4_gemv_bench" --benchmark_out="$out" --benchmark_out_format=json \
    --benchmark_context=machine="$machine" --benchmark_context=date="$date" >/dev/null
python3 - "$out" "$machine" "$date" <<'PY' | tee -a bench/results/nvfp4_gemv.md
import json, sys
path, machine, date = sys.argv[1:]
runs = {b["name"].split("/min_time")[0]: b for b in json.load(open(path))["benchmarks"]}
for name, run in runs.items():
    if not name.startswith("nvfp4/"):
        continue
    bf16 = runs[name.replace("nvfp4/", "bf16/")]
    shape, tokens = name.split("/")[1:3]
    print(f"| {date} | {machine} | {shape} | {tokens} | {run['real_time']:.0f} | "
          f"{bf16['real_time']:.0f} | {bf16['real_time'] / run['real_time']:.2f} | "
          f"{run['weight_GB/s']:.1f} | {run['bandwidth_GB/s']:.1f} | "
          f"{run['weight_GB/s'] / run['bandwidth_GB/s']:.2f} |")
PY

out=bench/results/$date-engine.json
FOURBIT_BENCH_MODEL_DIR="$build_dir/bench-models/small-nvfp4-seed" "$build_dir/bench/engine_bench" \
    --benchmark_out="$out" --benchmark_out_format=json \
    --benchmark_context=machine="$machine" --benchmark_context=date="$date" >/dev/null
python3 - "$out" "$machine" "$date" <<'PY' | tee -a bench/results/engine.md
import json, sys
path, machine, date = sys.argv[1:]
runs = [b for b in json.load(open(path))["benchmarks"] if b["name"].startswith("engine/decode")]
single = next(r["tok/s"] for r in runs if r["concurrency"] == 1)
for run in runs:
    print(f"| {date} | {machine} | small nvfp4-seed | {run['concurrency']:.0f} | "
          f"{run['tok/s']:.0f} | {run['tok/s'] / single:.2f} |")
PY
