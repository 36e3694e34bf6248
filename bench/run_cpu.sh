#!/usr/bin/env bash
# Runs the CPU forward benchmark on the `small` preset and records it in bench/results/ as
# <date>-cpu_forward.json (Google Benchmark's JSON, with the machine in its context) plus a
# line in bench/results/cpu_forward.md. Needs a build (scripts/build.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${FOURBIT_BUILD_DIR:-build}
cmake --build "$build_dir" --target cpu_forward_bench >/dev/null
date=$(date +%Y-%m-%d)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)
cores=$(nproc)
out=bench/results/$date-cpu_forward.json
export FOURBIT_BENCH_MODEL_DIR=${FOURBIT_BENCH_MODEL_DIR:-$build_dir/bench-models/small}
"$build_dir/bench/cpu_forward_bench" --benchmark_out="$out" --benchmark_out_format=json \
    --benchmark_context=machine="$cpu, $cores cores" --benchmark_context=date="$date"
python3 - "$out" "$cpu" "$cores" "$date" <<'PY' | tee -a bench/results/cpu_forward.md
import json, sys
path, cpu, cores, date = sys.argv[1:]
runs = {b["name"].split("/min_time")[0]: b for b in json.load(open(path))["benchmarks"]}
bandwidth = runs["memory_read_bandwidth/iterations:1/manual_time"]["GB/s"]
decode = runs["small/decode/64"]
print(f"| {date} | {cpu}, {cores} cores | {runs['small/prefill/128']['tok/s']:.0f} | "
      f"{runs['small/prefill/512']['tok/s']:.0f} | {decode['tok/s']:.0f} | "
      f"{decode['weight_GB/s']:.1f} | {bandwidth:.1f} | "
      f"{decode['weight_GB/s'] / bandwidth:.2f} |")
PY
