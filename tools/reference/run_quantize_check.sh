#!/usr/bin/env bash
# On the GPU machine, from the repository root, with .quant-carry carried (made here by
# tools/reference/make_quantize_carry.sh): installs the carried wheels into a private
# directory (no network there) and runs check_quantize.py; results land in $OUT.
set -uo pipefail
carry=.quant-carry
pylib=/tmp/quant-pylib
python3 -m pip install -q --no-index --no-deps --target "$pylib" "$carry"/wheels/*.whl 2>&1 | tail -3
export PYTHONPATH="$pylib${PYTHONPATH:+:$PYTHONPATH}"
python3 tools/reference/check_quantize.py "$carry/bf16" "$carry/ct" "$carry/mo" "${OUT:-/tmp/out}"
