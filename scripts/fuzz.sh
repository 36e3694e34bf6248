#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and sanitizers (in build/fuzz) and runs them.
#   scripts/fuzz.sh build                 build only
#   scripts/fuzz.sh TARGET [SECONDS]      run one target (default 60 s), e.g. parser_fuzz
#   scripts/fuzz.sh all [SECONDS]         run every target
# Targets: tokenizer_fuzz (encode/decode arbitrary bytes), tokenizer_json_fuzz (load arbitrary
# tokenizer.json text), parser_fuzz (streaming reasoning and tool-call parsers under arbitrary
# chunking). Seeds: tests/fuzz/corpus/TARGET; findings land in build/fuzz/findings/TARGET.
# CI runs each for a few seconds (ctest label "fuzz"); run longer by hand, e.g.
#   scripts/fuzz.sh parser_fuzz 3600
set -euo pipefail
cd "$(dirname "$0")/.."
fuzz_dir=${FOURBIT_FUZZ_DIR:-build/fuzz}
targets=(tokenizer_fuzz tokenizer_json_fuzz parser_fuzz)

build() {
    if [ ! -f "$fuzz_dir/build.ninja" ]; then
        cmake -S . -B "$fuzz_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
            -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang -DFOURBIT_FUZZ=ON \
            -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >/dev/null
    fi
    cmake --build "$fuzz_dir" -j "$(nproc)" >/dev/null
}

run() {
    local target=$1 seconds=$2
    local findings="$fuzz_dir/findings/$target" work="$fuzz_dir/corpus/$target"
    mkdir -p "$findings" "$work"
    # The tokenizer targets load a real vocabulary (decompressed by the main build's tests).
    export FOURBIT_FUZZ_TOKENIZER=${FOURBIT_FUZZ_TOKENIZER:-$(tokenizer_file)}
    local dictionary=()
    [ -f "tests/fuzz/$target.dict" ] && dictionary=(-dict="tests/fuzz/$target.dict")
    "$fuzz_dir/tests/fuzz/$target" "$work" "tests/fuzz/corpus/$target" "${dictionary[@]}" \
        -max_total_time="$seconds" -artifact_prefix="$findings/" -print_final_stats=1 \
        -rss_limit_mb=4096 2>&1 | tail -n 12
}

tokenizer_file() {
    local file="$fuzz_dir/gpt4o.tokenizer.json"
    [ -f "$file" ] || xz -dkc tests/golden/tokenizers/gpt4o.tokenizer.json.xz >"$file"
    echo "$file"
}

case "${1:-}" in
    build) build ;;
    all) build; for t in "${targets[@]}"; do run "$t" "${2:-60}"; done ;;
    # ctest builds once (test fuzz.build) and sets FOURBIT_FUZZ_NO_BUILD for the runs, which
    # may go in parallel.
    tokenizer_fuzz|tokenizer_json_fuzz|parser_fuzz)
        [ -n "${FOURBIT_FUZZ_NO_BUILD:-}" ] || build
        run "$1" "${2:-60}" ;;
    *) echo "usage: $0 build | all [SECONDS] | TARGET [SECONDS] (${targets[*]})" >&2; exit 2 ;;
esac
