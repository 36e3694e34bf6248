#!/usr/bin/env bash
# Tokenizer encode throughput, fourbit vs Hugging Face `tokenizers` (Rust, through its Python
# binding in build/venv), one thread each, the same ~1 MB text (bench/make_tokenizer_text.py),
# the four reference vocabularies, on this machine. Also checks that both give the same ids.
# Writes bench/results/<date>-tokenizer.md (and the raw Google Benchmark JSON beside it).
#
# MB/s are per CPU second (median of 5 runs each): on a shared machine CPU time is steadier
# than wall time; wall-time figures are in the table too. Needs a configured build folder
# (FOURBIT_BUILD_DIR, default build) and build/venv (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${FOURBIT_BUILD_DIR:-build}
python=${FOURBIT_PYTHON:-build/venv/bin/python}
cmake --build "$build_dir" --target tokenizer_bench tokenizer_json fourbit >/dev/null
work=$build_dir/bench-tokenizer
mkdir -p "$work" bench/results
"$python" bench/make_tokenizer_text.py "$work/text.txt"
date=$(date +%Y-%m-%d)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)
cores=$(nproc)
json_dir=$build_dir/tests/text/tokenizers
FOURBIT_TOKENIZER_JSON_DIR=$json_dir FOURBIT_BENCH_TOKENIZER_TEXT=$work/text.txt \
    "$build_dir/bench/tokenizer_bench" --benchmark_filter='^encode/' \
    --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
    --benchmark_out="$work/ours.json" --benchmark_out_format=json \
    --benchmark_context=machine="$cpu, $cores cores" --benchmark_context=date="$date" >/dev/null
cp "$work/ours.json" "bench/results/$date-tokenizer.json"
for vocabulary in qwen3 llama3 deepseek_v3 gpt4o; do
    "$build_dir/fourbit" tokenize --tokenizer "$json_dir/$vocabulary.tokenizer.json" \
        --text-file "$work/text.txt" >"$work/ours-$vocabulary.ids.json"
done
RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false "$python" - "$work" "$json_dir" "$cpu" "$cores" \
    "$date" <<'PY' | tee "bench/results/$date-tokenizer.md"
import json, statistics, sys, time
import tokenizers
from tokenizers import Tokenizer

work, json_dir, cpu, cores, date = sys.argv[1:]
with open(f"{work}/text.txt", encoding="utf-8", newline="") as f:  # keep CRLF
    text = f.read()
n_bytes = len(text.encode())
ours = {b["run_name"].split("/")[1]: b for b in json.load(open(f"{work}/ours.json"))["benchmarks"]
        if b.get("aggregate_name") == "median"}
print(f"# Tokenizer encode throughput, {date}\n")
print(f"Machine: {cpu}, {cores} cores. One thread each, warm caches, the same "
      f"{n_bytes / 1e6:.2f} MB text (bench/make_tokenizer_text.py: prose, C++, the multilingual "
      f"corpus). fourbit: `Tokenizer::encode` (bench/tokenizer_bench.cpp); Hugging Face: "
      f"`tokenizers` {tokenizers.__version__} `Tokenizer.encode(text, add_special_tokens=False)` "
      f"from Python, RAYON_NUM_THREADS=1. MB/s per CPU second, median of 5 runs (wall-clock "
      f"MB/s in brackets). Made by bench/run_tokenizer.sh.\n")
print("| vocabulary | fourbit MB/s | HF MB/s | fourbit / HF | tokens | same ids as HF |")
print("|---|---:|---:|---:|---:|---|")
for name in ["qwen3", "llama3", "deepseek_v3", "gpt4o"]:
    tokenizer = Tokenizer.from_file(f"{json_dir}/{name}.tokenizer.json")
    hf_ids = tokenizer.encode(text, add_special_tokens=False).ids  # warms HF's cache too
    cpu_s, wall_s = [], []
    for _ in range(5):
        c0, w0 = time.process_time(), time.perf_counter()
        tokenizer.encode(text, add_special_tokens=False)
        cpu_s.append(time.process_time() - c0)
        wall_s.append(time.perf_counter() - w0)
    hf_cpu = n_bytes / statistics.median(cpu_s) / 1e6
    hf_wall = n_bytes / statistics.median(wall_s) / 1e6
    b = ours[name]
    scale = {"ms": 1e-3, "us": 1e-6, "ns": 1e-9, "s": 1.0}[b["time_unit"]]
    our_cpu = n_bytes / (b["cpu_time"] * scale) / 1e6
    our_wall = n_bytes / (b["real_time"] * scale) / 1e6
    same = json.load(open(f"{work}/ours-{name}.ids.json")) == hf_ids
    print(f"| {name} | {our_cpu:.1f} ({our_wall:.1f}) | {hf_cpu:.2f} ({hf_wall:.2f}) | "
          f"{our_cpu / hf_cpu:.1f}x | {len(hf_ids)} | {'yes' if same else 'NO'} |")
PY
