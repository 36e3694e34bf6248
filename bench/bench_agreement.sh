#!/usr/bin/env bash
# Agreement with the reference tool: llama-benchy 0.4.0 (PyPI, pinned in
# bench/llama-benchy-requirements.txt, own venv build/venv-benchy) and `fourbit bench` against
# the same `fourbit serve`, same grid, alternating benchy, fourbit, benchy, fourbit so each
# tool's run-to-run spread is measured as well. Writes bench/results/bench_agreement_*.
# Usage: bench/bench_agreement.sh [build_dir]; serves FOURBIT_BENCH_MODEL (default: the demo
# model, models/minimax-m2-demo), or with FOURBIT_BENCH_MODEL="" a
# `make-model --preset ${FOURBIT_BENCH_PRESET:-tiny}` one.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
fourbit=$build/fourbit
pp=(128 512)
tg=32
runs=3
rounds=${FOURBIT_BENCH_ROUNDS:-3}
# api: each tool subtracts its own client latency (llama-benchy's Python client measures ~30 ms
# here, fourbit's ~0.2 ms), which moves est_ppt and pp t/s; none compares the raw timings.
latency=${FOURBIT_BENCH_LATENCY:-api}

venv=$build/venv-benchy
requirements=bench/llama-benchy-requirements.txt
if [ ! -x "$venv/bin/llama-benchy" ] || ! cmp -s "$requirements" "$venv/requirements.txt"; then
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$venv/requirements.txt"
fi

work=$(mktemp -d)
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" || true
    rm -rf "$work"
}
trap cleanup EXIT

model_dir=${FOURBIT_BENCH_MODEL-models/minimax-m2-demo}
if [ -z "$model_dir" ]; then
    model_dir=$work/model
    "$fourbit" make-model --preset "${FOURBIT_BENCH_PRESET:-tiny}" --out "$model_dir" >/dev/null
fi
name=$(basename "$model_dir")
"$fourbit" serve --model "$model_dir" --port 0 --served-model-name "$name" --max-model-len 4096 \
    >"$work/server.log" 2>&1 &
server_pid=$!
port=
for _ in $(seq 600); do
    port=$(grep -oP 'listening on http://127\.0\.0\.1:\K[0-9]+' "$work/server.log" || true)
    [ -n "$port" ] && curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
    sleep 0.1
done
[ -n "$port" ] || { cat "$work/server.log"; exit 1; }
base=http://127.0.0.1:$port/v1

# llama-benchy downloads its book once and caches it under ~/.cache/llama-benchy/<md5 of URL>;
# this machine has no network, so the cache is seeded with the corpus fourbit's prose comes from.
export HOME=$work/home
book_url=https://fourbit.invalid/tokenizer_corpus.txt
mkdir -p "$HOME/.cache/llama-benchy"
cp models/tokenizer_corpus.txt "$HOME/.cache/llama-benchy/$(printf %s "$book_url" | md5sum | cut -d' ' -f1).txt"

out=bench/results/bench_agreement
for round in $(seq "$rounds"); do
    "$venv/bin/llama-benchy" --base-url "$base" --model "$name" --tokenizer "$model_dir/tokenizer.json" \
        --book-url "$book_url" --pp "${pp[@]}" --tg "$tg" --runs "$runs" --latency-mode "$latency" \
        --skip-coherence --format json --save-result "${out}_llama_benchy_$round.json" \
        >"$work/benchy_$round.log" 2>&1 || { cat "$work/benchy_$round.log"; exit 1; }
    "$fourbit" bench --base-url "$base" --model "$name" --pp "$(IFS=,; echo "${pp[*]}")" --tg "$tg" \
        --runs "$runs" --latency-mode "$latency" --format json --save "${out}_fourbit_$round.json" >/dev/null
done
{
    echo "# llama-benchy 0.4.0 vs fourbit bench, same fourbit serve, same grid"
    echo
    echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, shared with other"
    echo "work (load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)). Date: $(date -u '+%Y-%m-%d %H:%M UTC')."
    echo "Model: $model_dir, \`fourbit serve --max-model-len 4096\` (CPU). Grid: pp ${pp[*]}, tg $tg,"
    echo "$runs runs, latency mode $latency; $rounds rounds of llama-benchy then fourbit bench. Every run's"
    echo "values pooled per tool; \"within noise\": |difference of means| <= sqrt(std_a^2 + std_b^2)."
    echo
    benchy_files=() fourbit_files=()
    for round in $(seq "$rounds"); do
        benchy_files+=("${out}_llama_benchy_$round.json")
        fourbit_files+=("${out}_fourbit_$round.json")
    done
    python3 bench/agreement_summary.py "${benchy_files[@]}" -- "${fourbit_files[@]}"
    for round in $(seq "$rounds"); do
        echo; echo "## Round $round: llama-benchy"; echo
        "$fourbit" bench --from "${out}_llama_benchy_$round.json" --format md
        echo; echo "## Round $round: fourbit bench"; echo
        "$fourbit" bench --from "${out}_fourbit_$round.json" --format md
    done
} >"$out.md"
echo "wrote $out.md"
