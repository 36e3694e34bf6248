"""Automatic prefix caching through the real server: a prompt that repeats a long prefix (what
an agent sends every turn) is served from cached KV blocks. /metrics counts the queried and hit
tokens exactly, and the time to first token of the repeat is far below that of a cold prompt of
the same length."""

import random
import time

from conftest import http_request

LABEL = 'model_name="tiny"'
BLOCK = 32  # the server's default --block-size
PREFIX_TOKENS = 3000


def completion_seconds(server, prompt_ids):
    """Wall time of a one-token completion: prefill plus one sample, i.e. the TTFT."""
    start = time.monotonic()
    reply = http_request(server.port, "POST", "/v1/completions", server.headers(),
                         json_body={"model": "tiny", "prompt": prompt_ids, "max_tokens": 1,
                                    "temperature": 0}, timeout=120)
    elapsed = time.monotonic() - start
    assert reply.status_code == 200, reply.text
    assert reply.json()["usage"]["prompt_tokens"] == len(prompt_ids)
    return elapsed


def counter(samples, name):
    return samples[f"fourbit:{name}{{{LABEL}}}"]


def test_repeated_prefix_hits_the_cache_and_cuts_ttft(server):
    rng = random.Random(20261126)
    prefixes = [[rng.randrange(10, 500) for _ in range(PREFIX_TOKENS)] for _ in range(3)]
    before = server.metrics()
    cold = [completion_seconds(server, prefixes[0] + [5, 6, 7]),
            completion_seconds(server, prefixes[1] + [5, 6, 7])]
    warm = [completion_seconds(server, prefixes[0] + [8, 9, 10, 11]),
            completion_seconds(server, prefixes[1] + [12, 13])]
    after = server.metrics()

    queried = counter(after, "prefix_cache_queries_total") - \
        counter(before, "prefix_cache_queries_total")
    hits = counter(after, "prefix_cache_hits_total") - counter(before, "prefix_cache_hits_total")
    assert queried == 2 * (PREFIX_TOKENS + 3) + (PREFIX_TOKENS + 4) + (PREFIX_TOKENS + 2)
    # Each repeat finds every full block of the shared prefix (the cold prompts share none:
    # their tokens differ from the first block on).
    assert hits == 2 * (PREFIX_TOKENS // BLOCK * BLOCK)
    print(f"time to first token: cold {cold} s, warm {warm} s")
    assert max(warm) < 0.5 * min(cold), f"warm {warm} vs cold {cold}"

    # A prefix never seen is cold again: no hit.
    completion_seconds(server, prefixes[2])
    final = server.metrics()
    assert counter(final, "prefix_cache_hits_total") == counter(after, "prefix_cache_hits_total")
    # Finished requests hold no blocks (cached ones count as free); the engine publishes its
    # stats just after the step that answered, so give it a moment.
    deadline = time.monotonic() + 5
    while counter(final, "kv_cache_usage_perc") != 0 and time.monotonic() < deadline:
        time.sleep(0.05)
        final = server.metrics()
    assert counter(final, "kv_cache_usage_perc") == 0
