"""Makes tests/bench/golden/llama_benchy_streams.json: recorded streams (seeded, synthetic but of
every shape the formulas care about) and the figures llama-benchy 0.4.0's own code computes from
them (its LLMClient._finalize_stream_tokens for token times, BenchmarkResults.add for the cell).
bench_test checks fourbit's formulas against these numbers.

Run with llama-benchy 0.4.0 installed (bench/llama-benchy-requirements.txt, e.g.
build/venv-benchy/bin/python tests/bench/make_llama_benchy_golden.py).
"""

import json
import os
import random

from llama_benchy import __version__
from llama_benchy.client import LLMClient, RequestResult
from llama_benchy.results import BenchmarkResults

METRICS = ["pp_throughput", "pp_req_throughput", "tg_throughput", "tg_req_throughput",
           "peak_throughput", "peak_req_throughput", "ttfr", "est_ppt", "e2e_ttft"]


def make_stream(rng, start, ttfr, n_tokens, gap, max_ids, usage, role_early=False):
    """One request: chunks of 1..max_ids token ids at random gaps around `gap` seconds."""
    first = start + ttfr
    chunks, t, left = [], first, n_tokens
    while left > 0:
        k = min(left, rng.randint(1, max_ids))
        chunks.append([round(t, 6), k])
        left -= k
        t += gap * k * rng.uniform(0.5, 1.5)
    return {"start": round(start, 6),
            "first_response": round(start + ttfr * (0.3 if role_early else 1.0), 6),
            "end": round(chunks[-1][0] + 0.004, 6), "usage_prompt_tokens": usage, "chunks": chunks}


def llama_benchy_result(stream):
    client = LLMClient("http://unused/v1", "k", "m")
    result = RequestResult(start_ts=stream["start"], end_ts=stream["end"],
                           first_response_ts=stream["first_response"],
                           first_token_ts=stream["chunks"][0][0],
                           prompt_tokens=stream["usage_prompt_tokens"])
    chunks = [{"text": "x", "timestamp": t, "token_ids": [7] * k} for t, k in stream["chunks"]]
    client._finalize_stream_tokens(result, chunks, None, None)
    return result


def case(rng, name, concurrency, runs, latency, expected, make):
    run_streams = [[make(rng, i) for i in range(concurrency)] for _ in range(runs)]
    results = BenchmarkResults()
    results.add("m", 0, 0, 0, concurrency,
                [[llama_benchy_result(s) for s in batch] for batch in run_streams],
                latency, expected)
    run = results.runs[0]
    figures = {}
    for metric in METRICS:
        value = getattr(run, metric)
        figures[metric] = None if value is None else {"mean": value.mean, "std": value.std}
    return {"name": name, "concurrency": concurrency, "latency_s": latency,
            "expected_prompt_tokens": expected, "runs": run_streams, "llama_benchy": figures}


def main():
    rng = random.Random(20261126)
    cases = [
        case(rng, "one token per chunk", 1, 3, 0.002, 512,
             lambda r, i: make_stream(r, 100.0, r.uniform(0.2, 0.4), 40, 0.03, 1, 512 + r.randint(-3, 3))),
        case(rng, "speculative chunks of 1-4 tokens over seconds", 1, 3, 0.0015, 1024,
             lambda r, i: make_stream(r, 200.0, r.uniform(0.5, 0.9), 90, 0.04, 4, 1030)),
        case(rng, "concurrency 3 with staggered starts, one usage off by more than 20%", 3, 2, 0.003, 256,
             lambda r, i: make_stream(r, 300.0 + 0.01 * i, r.uniform(0.1, 0.3), 30, 0.05, 2,
                                      400 if i == 1 else 256)),
        case(rng, "concurrency 2, bursts shorter than a second", 2, 2, 0.001, 128,
             lambda r, i: make_stream(r, 400.0 + 0.02 * i, 0.05, 12, 0.01, 1, 130)),
        case(rng, "role chunk long before the first token", 1, 2, 0.002, 2048,
             lambda r, i: make_stream(r, 500.0, 1.2, 20, 0.05, 1, 2050, role_early=True)),
        case(rng, "latency larger than the time to first response", 1, 2, 0.5, 64,
             lambda r, i: make_stream(r, 600.0, 0.1, 10, 0.02, 1, 64)),
    ]
    path = os.path.join(os.path.dirname(__file__), "golden", "llama_benchy_streams.json")
    with open(path, "w") as f:
        json.dump({"made_by": f"tests/bench/make_llama_benchy_golden.py with llama-benchy {__version__}",
                   "cases": cases}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
