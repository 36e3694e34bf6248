"""16 concurrent streaming clients (the official SDK), about half leaving early at random: every
request either completes (all its tokens, usage and [DONE]) or is cancelled, the server stays
up, and afterwards /metrics shows nothing running or waiting and one finished request per
submitted one."""

import random
import tempfile
import threading
import time

import openai
import pytest

from conftest import API_KEY, start_server, stop_server

CLIENTS = 16
MODEL = "small"  # the model for this test: hidden 1024, 8 layers, 32 experts
LABEL = f'model_name="{MODEL}"'


def finished_total(samples):
    return sum(v for k, v in samples.items() if k.startswith("fourbit:request_success_total{"))


@pytest.fixture(scope="module")
def server():
    with tempfile.TemporaryDirectory(prefix="fourbit_concurrency_") as workdir:
        running = start_server(workdir, preset=MODEL)
        try:
            yield running
        finally:
            stop_server(running)


def test_concurrent_streams_with_early_disconnects(server):
    before = server.metrics()
    rng = random.Random(20261126)
    # Clients that leave ask for long answers (they must still be running when they go); the
    # others read short ones to the end.
    plans = [{"max_tokens": rng.randint(2000, 4000) if i % 2 else rng.randint(40, 120),
              "leave_after": rng.randint(1, 6) if i % 2 else None, "seed": i}
             for i in range(CLIENTS)]
    results = [None] * CLIENTS
    start_gate = threading.Barrier(CLIENTS)

    def run(i):
        plan = plans[i]
        client = openai.OpenAI(base_url=server.base_url + "/v1", api_key=API_KEY, max_retries=0,
                               timeout=300)
        start_gate.wait()
        try:
            stream = client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": f"client {i}: tell a story"}],
                max_tokens=plan["max_tokens"], temperature=1.0, seed=plan["seed"], stream=True,
                stream_options={"include_usage": True}, extra_body={"ignore_eos": True})
            tokens, usage, finish = 0, None, None
            with stream:
                for chunk in stream:
                    if chunk.usage is not None and not chunk.choices:
                        usage = chunk.usage
                    for choice in chunk.choices:
                        tokens += len(choice.model_extra["token_ids"])
                        finish = choice.finish_reason or finish
                    if plan["leave_after"] is not None and tokens >= plan["leave_after"]:
                        break  # leaving: closing the stream drops the connection
            results[i] = {"tokens": tokens, "usage": usage, "finish": finish}
        except Exception as error:  # noqa: BLE001 - reported below
            results[i] = {"error": repr(error)}

    threads = [threading.Thread(target=run, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads), "a client hung"

    left = 0
    for plan, result in zip(plans, results):
        assert result is not None and "error" not in result, result
        if plan["leave_after"] is None:
            # Completed: every token, then the usage chunk.
            assert result["finish"] == "length", result
            assert result["tokens"] == plan["max_tokens"], result
            assert result["usage"].completion_tokens == plan["max_tokens"]
        else:
            left += 1
            assert result["tokens"] >= plan["leave_after"]

    # The server is up and idle again: nothing running or waiting, every request accounted for.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        samples = server.metrics()
        if (samples[f"fourbit:num_requests_running{{{LABEL}}}"] == 0 and
                samples[f"fourbit:num_requests_waiting{{{LABEL}}}"] == 0 and
                finished_total(samples) - finished_total(before) == CLIENTS):
            break
        time.sleep(0.1)
    assert samples[f"fourbit:num_requests_running{{{LABEL}}}"] == 0
    assert samples[f"fourbit:num_requests_waiting{{{LABEL}}}"] == 0
    assert samples[f"fourbit:kv_cache_usage_perc{{{LABEL}}}"] == 0
    assert finished_total(samples) - finished_total(before) == CLIENTS
    aborted = (samples[f'fourbit:request_success_total{{finished_reason="abort",{LABEL}}}'] -
               before[f'fourbit:request_success_total{{finished_reason="abort",{LABEL}}}'])
    assert aborted == left, (aborted, left)
    assert server.process.poll() is None

    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key=API_KEY, max_retries=0)
    again = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "ok?"}],
                                           max_tokens=4, extra_body={"ignore_eos": True})
    assert again.usage.completion_tokens == 4
