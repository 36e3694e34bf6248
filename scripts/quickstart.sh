#!/usr/bin/env bash
# The README's two commands:
#   scripts/quickstart.sh serve [FLAGS]   set up, build, and serve the default model (OpenAI API
#                                         on 127.0.0.1:8000; FLAGS go to `fourbit serve`)
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

# The default model is the bundled demo model (models/minimax-m2-demo, trained by the project:
# tools/demo-model/); the server answers OpenAI requests on http://127.0.0.1:8000/v1 until
# Ctrl-C. Arguments after `serve` go to `fourbit serve` (e.g. --port 9000, --api-key K).
shift
exec "$build_dir/fourbit" serve --model models/minimax-m2-demo --served-model-name minimax-m2-demo \
    --max-model-len 4096 --enable-auto-tool-choice "$@"
