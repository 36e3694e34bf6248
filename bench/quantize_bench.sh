#!/usr/bin/env bash
# Calibration throughput of `fourbit quantize` on this machine: the `small` preset (BF16) and
# synthetic data in the recipe's layouts, against the same machine's plain forward on the same
# samples (`fourbit eval`'s forward time, every position's logits: the ceiling calibration
# approaches, since it is that forward plus the observers). Prints one markdown row for
# bench/results/quantize.md. Usage: bench/quantize_bench.sh [BUILD_DIR] [RECORDS] [WORDS]
set -euo pipefail
build=${1:-build}
records=${2:-6}
words=${3:-240}
fourbit=$(realpath "$build/fourbit")
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$fourbit" make-model --preset small --seed 1 --out "$work/small" >/dev/null 2>&1
python3 "$here/tools/reference/make_quantize_data.py" "$work/data" "$records" "$words"
data=()
eval_data=()
for f in "$work"/data/*.jsonl; do data+=(--dataset "$f"); eval_data+=(--data "$f"); done
"$fourbit" eval --model "$work/small" "${eval_data[@]}" --max-samples "$records" \
    --max-tokens 100000 --output json >"$work/eval.json" 2>/dev/null
"$fourbit" quantize --model "$work/small" --out "$work/out" "${data[@]}" \
    --samples-per-dataset "$records" --held-out-samples 0 >/dev/null 2>&1
python3 - "$work/out/calibration/report.json" "$work/eval.json" <<'PY'
import json, platform, subprocess, sys, datetime
report = json.load(open(sys.argv[1]))
evaluated = json.load(open(sys.argv[2]))
t = report["timings"]
tokens = t["tokens_run"]
forward_tps = evaluated["model_tokens_per_second"]
cpu = subprocess.run(["sh", "-c", "lscpu | sed -n 's/^Model name: *//p'"], capture_output=True,
                     text=True).stdout.strip()
cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
print(f"| {datetime.date.today()} | {cpu}, {cores} cores | small bf16 | "
      f"{report['samples']['done']} | {tokens} | {t['tokens_per_second']:.0f} | "
      f"{forward_tps:.0f} | {t['tokens_per_second'] / forward_tps:.2f} | {t['export_seconds']:.1f} |")
PY
