"""Speculative decoding through the real server: two servers on the same tiny checkpoint, one
plain and one drafting eagerly (single-token n-gram matches, no adaptivity). Greedy streams are
token for token the same, every accepted token arrives in its own chunk with its id, usage
counts them exactly, and /metrics shows drafts verified and accepted."""

import os
import tempfile

import openai
import pytest

from conftest import API_KEY, start_server, stop_server

EAGER = ('{"method":"ngram","num_speculative_tokens":4,"prompt_lookup_min":1,'
         '"prompt_lookup_max":3,"adaptive":false}')
LABEL = 'model_name="tiny"'


@pytest.fixture(scope="module")
def servers():
    with tempfile.TemporaryDirectory(prefix="fourbit_spec_") as workdir:
        for name in ("plain", "spec"):
            os.mkdir(os.path.join(workdir, name))
        plain = start_server(os.path.join(workdir, "plain"))
        spec = start_server(os.path.join(workdir, "spec"),
                            extra_args=("--speculative-config", EAGER))
        try:
            yield plain, spec
        finally:
            stop_server(spec)
            stop_server(plain)


def stream_ids(server, content, max_tokens):
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key=API_KEY, max_retries=0,
                           timeout=120)
    chunks = list(client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": content}], max_tokens=max_tokens,
        temperature=0, stream=True, stream_options={"include_usage": True},
        extra_body={"ignore_eos": True}))
    ids = []
    for chunk in chunks:
        if chunk.choices:
            token_ids = chunk.choices[0].model_extra.get("token_ids") or []
            assert len(token_ids) <= 1, "one token per chunk"
            ids += token_ids
    return ids, chunks[-1].usage


def test_streams_are_identical_with_exact_usage(servers):
    plain, spec = servers
    before = spec.metrics()
    for content in ["count: one two three one two three one two", "hello", "a b a b a b a"]:
        expected, plain_usage = stream_ids(plain, content, 64)
        got, usage = stream_ids(spec, content, 64)
        assert got == expected
        assert usage.completion_tokens == len(got) == 64
        assert usage.prompt_tokens == plain_usage.prompt_tokens
    after = spec.metrics()

    def delta(name):
        return after[f"fourbit:{name}{{{LABEL}}}"] - before[f"fourbit:{name}{{{LABEL}}}"]

    assert delta("spec_decode_num_draft_tokens_total") > 0
    assert 0 < delta("spec_decode_num_accepted_tokens_total") <= \
        delta("spec_decode_num_draft_tokens_total")
    assert delta("generation_tokens_total") == 3 * 64
    first_position = f'fourbit:spec_decode_num_accepted_tokens_per_pos_total{{position="0",{LABEL}}}'
    assert first_position in after
