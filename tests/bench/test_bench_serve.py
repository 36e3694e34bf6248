"""`fourbit bench` end to end against the real `fourbit serve` on a fresh tiny model.

A small grid (two depths, two prompt sizes, concurrency 1 and 2), a prefix-caching grid and the
agentic suite run through the real binary; the JSON must hold every cell with positive figures,
and the prompt tokens the bench says it sent must equal what the server counted (/metrics), so
the usage the bench reports is the server's own.
"""

import json
import os
import subprocess
import sys


sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "server"))
# The server tests' module fixture: a fresh tiny model served for this module.
from conftest import API_KEY, binary, server  # noqa: E402,F401

PP = [64, 128]
TG = 16
DEPTHS = [0, 128]
CONCURRENCY = [1, 2]
RUNS = 2


def counters(server) -> dict:
    samples = server.metrics()
    prompt = sum(v for k, v in samples.items() if k.startswith("fourbit:prompt_tokens_total"))
    requests = sum(v for k, v in samples.items() if k.startswith("fourbit:request_success_total"))
    return {"prompt_tokens": prompt, "requests": requests}


def run_bench(server, args, tmp_path, name):
    out = tmp_path / f"{name}.json"
    result = subprocess.run(
        [binary(), "bench", "--base-url", server.base_url + "/v1", "--api-key", API_KEY,
         "--format", "json", "--save", str(out), *args],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(out.read_text()), result


def positive(metric) -> bool:
    return metric is not None and metric["mean"] > 0 and all(v > 0 for v in metric["values"])


def test_grid_every_cell_present_positive_and_usage_matches_server(server, tmp_path):
    before = counters(server)
    grid, result = run_bench(server, [
        "--pp", ",".join(map(str, PP)), "--tg", str(TG), "--depth", ",".join(map(str, DEPTHS)),
        "--concurrency", ",".join(map(str, CONCURRENCY)), "--runs", str(RUNS),
        "--plot", str(tmp_path / "grid.svg")], tmp_path, "grid")
    after = counters(server)

    assert grid["kind"] == "grid" and grid["model"] == "tiny"
    assert grid["seed"] > 0  # drawn fresh, recorded so the prompts can be repeated
    assert grid["prompt_calibration"]["method"] == "tokenize"
    assert grid["latency_ms"] > 0
    cells = {(c["context_size"], c["prompt_size"], c["response_size"], c["concurrency"]): c
             for c in grid["benchmarks"]}
    expected_keys = {(d, p, TG, c) for d in DEPTHS for p in PP for c in CONCURRENCY}
    assert set(cells) == expected_keys and len(grid["benchmarks"]) == len(expected_keys)
    for key, cell in cells.items():
        depth, pp, tg, concurrency = key
        assert not cell["is_context_prefill_phase"]
        assert cell["failed_requests"] == 0, cell["errors"]
        for metric in ("pp_throughput", "pp_req_throughput", "tg_throughput", "tg_req_throughput",
                       "peak_throughput", "ttfr", "est_ppt", "e2e_ttft"):
            assert positive(cell[metric]), (key, metric, cell[metric])
        # Under concurrency the "total" figures are one per run (batch totals), else one per request.
        assert len(cell["pp_throughput"]["values"]) == (RUNS if concurrency > 1 else RUNS * concurrency)
        assert cell["token_count_source"] == "token_ids"
        assert len(cell["usage_prompt_tokens"]) == RUNS * concurrency
        # Prompt sizing (cut from the server's own tokens): the server counted pp + depth tokens
        # for every request, give or take a merge across a cut.
        for tokens in cell["usage_prompt_tokens"]:
            assert abs(tokens - (pp + depth)) <= max(4, 0.02 * (pp + depth)), (key, tokens)
        assert all(0 < n <= tg for n in cell["generated_tokens"]), cell["generated_tokens"]
        assert len(cell["throughput_over_time"]) == RUNS

    # Every request the bench sent, and the prompt tokens its usage reported, are what the
    # server itself counted.
    assert after["requests"] - before["requests"] == grid["requests_sent"]
    assert after["prompt_tokens"] - before["prompt_tokens"] == grid["usage_prompt_tokens_sent"]

    svg = (tmp_path / "grid.svg").read_text()
    assert svg.startswith("<svg") and ">Decode<" in svg and "depth 128" in svg
    assert "bench: latency (api)" in result.stderr


def test_prefix_caching_grid_has_context_rows(server, tmp_path):
    grid, _ = run_bench(server, ["--pp", "32", "--tg", "8", "--depth", "128", "--runs", "1",
                                 "--prefix-caching", "--no-warmup", "--latency-mode", "none"],
                        tmp_path, "ctx")
    assert grid["seed"] > 0
    phases = sorted(c["is_context_prefill_phase"] for c in grid["benchmarks"])
    assert phases == [False, True]
    assert grid["latency_ms"] == 0
    for cell in grid["benchmarks"]:
        assert positive(cell["pp_throughput"]) and positive(cell["tg_throughput"])


def test_markdown_output_names_tests_like_llama_benchy(server, tmp_path):
    def bench_md(latency_mode):
        result = subprocess.run(
            [binary(), "bench", "--base-url", server.base_url + "/v1", "--api-key", API_KEY,
             "--pp", "32", "--tg", "8", "--runs", "1", "--latency-mode", latency_mode],
            capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        return result.stdout

    table = bench_md("none")
    assert "| tiny | pp32 |" in table and "| tiny | tg8 |" in table, table
    # With generation latency (a 1-token request's time to first bytes) the pp row may be left
    # out, as llama-benchy leaves it out, when that latency exceeds the prompt's TTFR.
    assert "latency mode: generation" in bench_md("generation")


def test_agentic_suite_json(server, tmp_path):
    report, result = run_bench(server, ["--suite", "agentic", "--max-tokens", "24"], tmp_path, "agentic")
    assert report["kind"] == "agentic" and report["max_tokens_cap"] == 24
    assert len(report["tasks"]) == 12
    for task in report["tasks"]:
        assert task["errors"] == [], task
        assert task["wall_s"] > 0 and task["prompt_tokens"] > 0
        assert 0 < task["completion_tokens"] <= 24 * task["turns"]
        assert task["generated_tokens"] == task["completion_tokens"], task
        assert task["token_count_source"] == "token_ids"
        assert task["decode_tps"] is None or task["decode_tps"] > 0
        for call in task["tool_calls"]:
            assert call["valid"] == (call["problem"] == "")
        if task["expected_calls"] is not None:
            assert isinstance(task["tool_calls_expected"], bool)
    totals = report["totals"]
    assert totals["failed_tasks"] == 0
    assert totals["completion_tokens"] == sum(t["completion_tokens"] for t in report["tasks"])
    assert abs(totals["wall_s"] - sum(t["wall_s"] for t in report["tasks"])) < 1e-6

    # The comparison of a run with itself: every speed-up is 1.00x.
    table = subprocess.run([binary(), "bench", "--compare", str(tmp_path / "agentic.json"),
                            str(tmp_path / "agentic.json")], capture_output=True, text=True)
    assert table.returncode == 0, table.stderr
    assert table.stdout.count("| 1.00x |") >= 12


def test_bad_input_is_a_clear_error(server, tmp_path):
    for args, needle in [
        (["--pp", "0"], "--pp: 0"),
        (["--latency-mode", "fast"], "--latency-mode: fast"),
        (["--suite", str(tmp_path / "missing.json")], "missing.json"),
    ]:
        argv = [binary(), "bench", "--base-url", server.base_url + "/v1", "--api-key", API_KEY, *args]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert result.returncode == 1, (args, result.stderr)
        assert needle in result.stderr, (args, result.stderr)
    bad_url = subprocess.run([binary(), "bench", "--base-url", "localhost:1"],
                             capture_output=True, text=True, timeout=60)
    assert bad_url.returncode == 1 and "--base-url localhost:1" in bad_url.stderr, bad_url.stderr
    wrong_key = subprocess.run([binary(), "bench", "--base-url", server.base_url + "/v1",
                                "--api-key", "nope", "--pp", "8", "--tg", "2", "--runs", "1"],
                               capture_output=True, text=True, timeout=60)
    assert wrong_key.returncode == 1 and "401" in wrong_key.stderr, wrong_key.stderr
