#!/usr/bin/env bash
# Here (no torch needed): makes the inputs run_quantize_check.sh uses on the GPU machine under
# .quant-carry of the given tree (default: this one): the tiny BF16 model, its quantization in
# both layouts on the same calibration data, and the PyPI wheels the GPU machine lacks.
# Usage: make_quantize_carry.sh FOURBIT_BINARY [TREE]
set -euo pipefail
fourbit=$(realpath "$1")
tree=$(realpath "${2:-.}")
here=$(cd "$(dirname "$0")/../.." && pwd)
carry="$tree/.quant-carry"
rm -rf "$carry" && mkdir -p "$carry/wheels" "$carry/data"
"$fourbit" make-model --preset tiny --seed 1 --out "$carry/bf16" >/dev/null
python3 "$here/tools/reference/make_quantize_data.py" "$carry/data"
data=()
for f in "$carry"/data/*.jsonl; do data+=(--dataset "$f"); done
"$fourbit" quantize --model "$carry/bf16" --out "$carry/ct" "${data[@]}" --samples-per-dataset 4 >/dev/null
"$fourbit" quantize --model "$carry/bf16" --out "$carry/mo" "${data[@]}" --samples-per-dataset 4 \
    --format modelopt >/dev/null
# compressed-tensors 0.19.0 is the version llmcompressor 0.14 pins.
"$here/build/venv/bin/pip" download -q --no-deps -d "$carry/wheels" llmcompressor==0.14.0.1 \
    compressed-tensors==0.19.0 loguru==0.7.3 pydantic==2.12.5 pydantic-core==2.41.5 \
    annotated-types==0.7.0 typing-inspection==0.4.2 typing-extensions==4.15.0 psutil==7.1.3 \
    --python-version 3.12 --platform manylinux2014_x86_64 --only-binary=:all:
du -sh "$carry"
