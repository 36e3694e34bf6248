#!/usr/bin/env bash
# On the GPU machine, from the repository root, with .quant-carry carried (made here by
# tools/reference/make_quantize_carry.sh): installs the carried wheels the machine lacks into a
# private directory (it has no network) and runs check_quantize.py; results land in $OUT.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
carry=.quant-carry
pylib=/tmp/quant-pylib
python3 --version
for wheel in "$carry"/wheels/*.whl; do
    name=$(basename "$wheel" | cut -d- -f1)
    # compressed-tensors and llmcompressor always come from the carry (pinned together); the
    # rest only when the machine lacks them.
    if [ "$name" != compressed_tensors ] && [ "$name" != llmcompressor ] &&
        python3 -c "import $name" 2>/dev/null; then
        continue
    fi
    python3 -m pip install -q --no-index --no-deps --target "$pylib" "$wheel" 2>&1 | tail -2
done
export PYTHONPATH="$pylib${PYTHONPATH:+:$PYTHONPATH}"
# Arguments: BF16 CT MO (default: the carried tiny model and its two exports; MO "-" skips
# the compressed-tensors step).
python3 "$here/check_quantize.py" "${1:-$carry/bf16}" "${2:-$carry/ct}" "${3:-$carry/mo}" \
    "${OUT:-/tmp/out}"
