#!/usr/bin/env bash
# The agentic profile (adaptive n-gram speculation) against the throughput profile (none) on
# the bundled demo model, through `fourbit serve` and `fourbit bench`: the agentic suite and a
# low-repetition prose set (bench/suites/low_repetition.json, speculation's worst case), each
# profile's server alone on the machine, one after the other; then `fourbit generate` of 400
# greedy tokens after three prompts (the demo model's greedy text repeats itself: the copy case),
# each profile 5 times, median decode tok/s. Writes the JSON results and the tables under
# bench/results/speculation/<date>/ and prints the tables.
# Usage: bench/speculation_compare.sh [extra `fourbit serve` flags, e.g. --model DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${FOURBIT_BUILD_DIR:-build}
fourbit="$build_dir/fourbit"
port=${FOURBIT_BENCH_PORT:-8811}
out=${FOURBIT_BENCH_OUT:-bench/results/speculation/$(date +%Y-%m-%d)}
mkdir -p "$out"
for profile in throughput agentic; do
    "$fourbit" serve --port "$port" --profile "$profile" --enable-auto-tool-choice \
        --max-model-len 4096 "$@" >"$out/server-$profile.log" 2>&1 &
    server=$!
    trap 'kill $server 2>/dev/null || true' EXIT
    for _ in $(seq 120); do
        curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
        sleep 1
    done
    for suite in agentic bench/suites/low_repetition.json; do
        name=$(basename "$suite" .json)
        "$fourbit" bench --base-url "http://127.0.0.1:$port/v1" --suite "$suite" \
            --max-tokens 1024 --format json --save "$out/$name-$profile.json" >/dev/null
    done
    curl -s "http://127.0.0.1:$port/metrics" | grep '^fourbit:spec_decode' \
        >"$out/metrics-$profile.txt" || true
    kill "$server"
    wait "$server" || true
    trap - EXIT
done
for name in agentic low_repetition; do
    echo "## $name: A = throughput, B = agentic"
    "$fourbit" bench --compare "$out/$name-throughput.json" "$out/$name-agentic.json"
    echo
done | tee "$out/compare.md"

# The copy case: greedy continuations, which this model repeats.
model_dir=models/minimax-m2-demo
{
    echo "## greedy continuation, 400 tokens, median of 5 runs (decode tok/s)"
    echo
    echo "| prompt | throughput | agentic | speed-up | drafts accepted (agentic) |"
    echo "|:--|--:|--:|--:|--:|"
    for text in "The kernel module" "def parse_args(argv):" "The weather in Paris"; do
        ids=$("$fourbit" tokenize --tokenizer "$model_dir/tokenizer.json" --text "$text" | tr -d '[] ')
        declare -A rate=()
        accepted=""
        for profile in throughput agentic; do
            runs=()
            for _ in 1 2 3 4 5; do
                line=$("$fourbit" generate --model "$model_dir" --prompt-ids "$ids" --temperature 0 \
                    --max-tokens 400 --ignore-eos --profile "$profile" 2>&1 >/dev/null | grep decoded)
                runs+=("$(sed -E 's/.*\(([0-9.]+) tok\/s\).*/\1/' <<<"$line")")
                [ "$profile" = agentic ] && accepted=$(grep -oE '[0-9]+ of [0-9]+ draft' <<<"$line" || echo "none")
            done
            rate[$profile]=$(printf '%s\n' "${runs[@]}" | sort -g | sed -n 3p)
        done
        speedup=$(python3 -c "print(f'{${rate[agentic]} / ${rate[throughput]}:.2f}x')")
        echo "| \`$text\` | ${rate[throughput]} | ${rate[agentic]} | $speedup | ${accepted% draft} |"
    done
} | tee -a "$out/compare.md"
