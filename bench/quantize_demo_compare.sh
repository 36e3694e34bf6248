#!/usr/bin/env bash
# The recipe's claim at small scale, on the demo model: calibrate once on a code and tool-call
# mix and once on chat only (same number of samples), then compare each NVFP4 (W4A4 emulated)
# model with the BF16 one on held-out tool-call conversations, chat and code: perplexity,
# mean KL and top-1 agreement. Prints markdown for bench/results/quantize.md.
# Usage: bench/quantize_demo_compare.sh [BUILD_DIR] [DEMO_DIR] [DEMO_TOOLS_DIR] [N]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
demo=$(realpath "${2:-$here/models/minimax-m2-demo}")
tools=$(realpath "${3:-$here/tools/demo-model}")
n=${4:-32}
fourbit=$(realpath "$build/fourbit")
python=${PYTHON:-$here/build/venv/bin/python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$python" "$here/bench/quantize_demo_data.py" "$tools" "$work/data" "$((2 * n))" "$n"
d=$work/data
"$fourbit" quantize --model "$demo" --out "$work/mix" --dataset "$d/code.jsonl" \
    --dataset "$d/tools.jsonl" --samples-per-dataset "$n" --held-out-samples 0 >/dev/null 2>&1
"$fourbit" quantize --model "$demo" --out "$work/chat" --dataset "$d/chat.jsonl" \
    --samples-per-dataset "$((2 * n))" --held-out-samples 0 >/dev/null 2>&1
for variant in mix chat; do
    "$fourbit" eval --model "$work/$variant" --reference "$demo" --data "$d/tools_eval.jsonl" \
        --data "$d/chat_eval.jsonl" --data "$d/code_eval.jsonl" --max-samples "$n" \
        --max-tokens 1024 --output json >"$work/$variant.json" 2>/dev/null
done
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
print("| calibration | eval set | tokens | BF16 ppl | NVFP4 ppl | delta | mean KL | top-1 |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
names = {"mix": "code + tool calls", "chat": "chat only"}
for variant in ("mix", "chat"):
    result = json.load(open(f"{work}/{variant}.json"))
    for name in ("tools_eval", "chat_eval", "code_eval"):
        m = result["datasets"][name]
        print(f"| {names[variant]} | {name.replace('_eval', '')} | {m['predictions']} | "
              f"{m['reference_perplexity']:.4f} | {m['perplexity']:.4f} | "
              f"{m['perplexity_delta']:+.4f} | {m['mean_kl']:.5f} | "
              f"{100 * m['top1_agreement']:.2f}% |")
PY
