#!/usr/bin/env bash
# The README's two commands:
#   scripts/quickstart.sh serve   set up, build, and start fourbit on the default model
#   scripts/quickstart.sh test    set up, build, and run the whole test suite (ctest)
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-}
case "$mode" in
    serve|test) ;;
    *) echo "usage: $0 serve|test" >&2; exit 2 ;;
esac

bash scripts/setup.sh
build_dir=${FOURBIT_BUILD_DIR:-build}
bash scripts/build.sh "$build_dir"

if [ "$mode" = test ]; then
    cd "$build_dir"
    exec ctest --output-on-failure --timeout 900 -j "$(nproc)"
fi

# Until the server and the bundled demo model exist, the default model is the tiny preset made
# here, and the command generates from it.
model_dir="$build_dir/models/tiny"
[ -f "$model_dir/config.json" ] || "$build_dir/fourbit" make-model --preset tiny --out "$model_dir"
exec "$build_dir/fourbit" generate --model "$model_dir" --prompt-ids 1,2,3 --max-tokens 32 \
    --temperature 0 --output json
