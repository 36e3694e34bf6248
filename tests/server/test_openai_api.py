"""`fourbit serve` driven by the official openai SDK: chat (whole and streamed), usage, tools,
n, logprobs, stop strings, every error status through the SDK's exception classes, and the
utility routes (/v1/models, /health, /metrics, /tokenize, /detokenize)."""

import json

import openai
import pytest

from conftest import API_KEY, MAX_MODEL_LEN, MAX_REQUEST_BYTES

MESSAGES = [{"role": "system", "content": "You are terse."},
            {"role": "user", "content": "What is the capital of France?"}]
TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                        "days": {"type": "integer"}},
                       "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "add", "parameters": {"type": "object",
                                      "properties": {"a": {"type": "number"}, "b": {"type": "number"}}}}},
]


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key=API_KEY, max_retries=0, timeout=120)


def extra(**kwargs):
    return {"extra_body": kwargs}


def prompt_tokens(server, messages, **body):
    response = server.post("/tokenize", json={"messages": messages, **body})
    assert response.status_code == 200, response.text
    return response.json()["count"]


def token_ids(choice):
    return choice.model_extra["token_ids"]


# --- utility routes ---------------------------------------------------------------------------

def test_health_is_open_and_ok(server):
    response = server.get("/health", auth=False)
    assert response.status_code == 200


def test_models(client):
    models = client.models.list()
    assert [m.id for m in models.data] == ["tiny"]
    assert models.data[0].model_extra["max_model_len"] == MAX_MODEL_LEN
    assert models.data[0].object == "model"


def test_tokenize_detokenize_round_trip(server):
    text = "Héllo, wörld! 世界 🤖 <think> tabs\tand\nnewlines"
    response = server.post("/tokenize", json={"prompt": text, "return_token_strs": True})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == len(body["tokens"]) > 0
    assert body["max_model_len"] == MAX_MODEL_LEN
    assert len(body["token_strs"]) == body["count"]
    back = server.post("/detokenize", json={"tokens": body["tokens"]})
    assert back.status_code == 200, back.text
    assert back.json() == {"prompt": text}

    bad = server.post("/detokenize", json={"tokens": [1, 999999]})
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "tokens"


def test_metrics_names(server, client):
    client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=3)
    samples = server.metrics()
    names = {series.split("{")[0] for series in samples}
    for name in ["fourbit:num_requests_running", "fourbit:num_requests_waiting",
                 "fourbit:kv_cache_usage_perc", "fourbit:prompt_tokens_total",
                 "fourbit:generation_tokens_total", "fourbit:request_success_total",
                 "fourbit:prefix_cache_queries_total", "fourbit:prefix_cache_hits_total",
                 "fourbit:time_to_first_token_seconds_bucket", "fourbit:time_to_first_token_seconds_count",
                 "fourbit:inter_token_latency_seconds_bucket", "fourbit:inter_token_latency_seconds_sum"]:
        assert name in names, name
    label = 'model_name="tiny"'
    assert samples[f"fourbit:prompt_tokens_total{{{label}}}"] > 0
    assert samples[f"fourbit:generation_tokens_total{{{label}}}"] >= 3
    assert samples[f"fourbit:num_requests_running{{{label}}}"] == 0
    assert samples[f"fourbit:num_requests_waiting{{{label}}}"] == 0
    assert samples[f"fourbit:prefix_cache_hits_total{{{label}}}"] == 0
    assert samples[f"fourbit:time_to_first_token_seconds_count{{{label}}}"] >= 1
    finished = sum(v for k, v in samples.items() if k.startswith("fourbit:request_success_total"))
    assert finished >= 1


# --- chat --------------------------------------------------------------------------------------

def test_chat_whole_answer_and_exact_usage(server, client):
    response = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=8,
                                              temperature=0)
    assert response.object == "chat.completion"
    assert response.model == "tiny"
    assert response.id.startswith("chatcmpl-")
    choice = response.choices[0]
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert choice.finish_reason in ("stop", "length")
    ids = token_ids(choice)
    assert 1 <= len(ids) <= 8
    assert response.usage.completion_tokens == len(ids)
    assert response.usage.prompt_tokens == prompt_tokens(server, MESSAGES)
    assert response.usage.total_tokens == response.usage.prompt_tokens + len(ids)
    if choice.finish_reason == "length":
        assert len(ids) == 8


def test_max_tokens_gives_length(client):
    response = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=5,
                                              **extra(ignore_eos=True))
    assert response.choices[0].finish_reason == "length"
    assert response.usage.completion_tokens == 5
    # max_completion_tokens is the newer name.
    response = client.chat.completions.create(model="tiny", messages=MESSAGES,
                                              max_completion_tokens=4, **extra(ignore_eos=True))
    assert response.usage.completion_tokens == 4


def test_default_max_tokens_is_the_rest_of_the_context(server, client):
    # With ignore_eos nothing but the context ends the output. A prompt that leaves ~100
    # tokens of the context keeps the test quick.
    filler = "lorem ipsum dolor sit amet " * 10
    messages = [{"role": "user", "content": filler}]
    per_filler = prompt_tokens(server, messages) - prompt_tokens(server, [{"role": "user", "content": ""}])
    repeats = (MAX_MODEL_LEN - 100) // max(per_filler, 1)
    messages = [{"role": "user", "content": filler * repeats}]
    assert MAX_MODEL_LEN - 400 < prompt_tokens(server, messages) < MAX_MODEL_LEN
    response = client.chat.completions.create(model="tiny", messages=messages, temperature=0,
                                              **extra(ignore_eos=True))
    assert response.choices[0].finish_reason == "length"
    assert response.usage.total_tokens == MAX_MODEL_LEN


def stream_chat(client, **kwargs):
    chunks = list(client.chat.completions.create(model="tiny", stream=True, **kwargs))
    return chunks


def test_streaming_one_chunk_per_token_with_usage(client):
    kwargs = dict(messages=MESSAGES, max_tokens=12, temperature=0, **extra(ignore_eos=True))
    chunks = stream_chat(client, stream_options={"include_usage": True}, **kwargs)
    whole = client.chat.completions.create(model="tiny", **kwargs)

    usage_chunks = [c for c in chunks if not c.choices]
    assert len(usage_chunks) == 1 and chunks[-1] is usage_chunks[0], "usage comes last, alone"
    usage = usage_chunks[0].usage
    token_chunks = [c for c in chunks if c.choices and c.choices[0].model_extra["token_ids"]]
    assert len(token_chunks) == 12 == usage.completion_tokens
    assert all(len(c.choices[0].model_extra["token_ids"]) == 1 for c in token_chunks)
    assert usage.prompt_tokens == whole.usage.prompt_tokens
    assert usage.total_tokens == usage.prompt_tokens + 12
    # The first chunk carries the role (and a token: no role-only chunk before prefill ends).
    first = chunks[0].choices[0]
    assert first.delta.role == "assistant"
    assert first.model_extra["token_ids"]
    assert chunks[0].id == chunks[-1].id and chunks[0].object == "chat.completion.chunk"
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["length"]
    # Streamed and whole answers agree (greedy): same ids, same text.
    streamed_ids = [i for c in token_chunks for i in c.choices[0].model_extra["token_ids"]]
    assert streamed_ids == token_ids(whole.choices[0])
    reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
                        for c in chunks if c.choices)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    message = whole.choices[0].message
    assert reasoning == (message.model_extra.get("reasoning_content") or "")
    assert content == (message.content or "")


def test_streaming_without_include_usage_has_no_usage_chunk(client):
    chunks = stream_chat(client, messages=MESSAGES, max_tokens=3)
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


def test_seed_repeats_and_n_choices_differ(client):
    kwargs = dict(model="tiny", messages=MESSAGES, max_tokens=10, temperature=1.0, seed=1234,
                  **extra(ignore_eos=True))
    a = client.chat.completions.create(**kwargs)
    b = client.chat.completions.create(**kwargs)
    assert token_ids(a.choices[0]) == token_ids(b.choices[0])

    two = client.chat.completions.create(n=2, **kwargs)
    assert [c.index for c in two.choices] == [0, 1]
    assert token_ids(two.choices[0]) == token_ids(a.choices[0]), "choice 0 uses the seed itself"
    assert token_ids(two.choices[0]) != token_ids(two.choices[1])
    assert two.usage.completion_tokens == 20
    assert two.usage.prompt_tokens == a.usage.prompt_tokens, "the prompt is counted once"


def test_n_streamed(client):
    chunks = stream_chat(client, messages=MESSAGES, max_tokens=4, n=2, stream_options={"include_usage": True},
                         **extra(ignore_eos=True))
    per_choice = {0: 0, 1: 0}
    finished = {}
    for chunk in chunks:
        for choice in chunk.choices:
            per_choice[choice.index] += len(choice.model_extra["token_ids"])
            if choice.finish_reason:
                finished[choice.index] = choice.finish_reason
    assert per_choice == {0: 4, 1: 4}
    assert finished == {0: "length", 1: "length"}
    assert chunks[-1].usage.completion_tokens == 8


def test_logprobs(client):
    response = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=6,
                                              temperature=0, logprobs=True, top_logprobs=3,
                                              **extra(ignore_eos=True))
    content = response.choices[0].logprobs.content
    assert len(content) == 6 == response.usage.completion_tokens
    for entry in content:
        assert entry.logprob <= 0
        assert len(entry.top_logprobs) == 3
        values = [t.logprob for t in entry.top_logprobs]
        assert values == sorted(values, reverse=True)
        # Greedy: the chosen token is the most likely one.
        assert entry.top_logprobs[0].logprob == pytest.approx(entry.logprob)
        assert bytes(entry.bytes).decode("utf-8", errors="replace") == entry.token

    streamed = stream_chat(client, messages=MESSAGES, max_tokens=3, logprobs=True, top_logprobs=1)
    entries = [c.choices[0].logprobs.content for c in streamed
               if c.choices and c.choices[0].model_extra["token_ids"]]
    assert len(entries) == 3 and all(len(e) == 1 for e in entries)

    without = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=2)
    assert without.choices[0].logprobs is None


def test_completions_endpoint(client):
    response = client.completions.create(model="tiny", prompt="The engine", max_tokens=6,
                                         temperature=0, logprobs=2, extra_body={"ignore_eos": True})
    choice = response.choices[0]
    assert response.object == "text_completion"
    assert choice.finish_reason == "length"
    assert response.usage.completion_tokens == 6
    assert len(choice.logprobs.tokens) == 6
    offsets = choice.logprobs.text_offset
    assert offsets[0] == 0 and offsets == sorted(offsets) and offsets[-1] <= len(choice.text)
    assert all(len(t) <= 2 for t in choice.logprobs.top_logprobs)

    chunks = list(client.completions.create(model="tiny", prompt="The engine", max_tokens=6,
                                            temperature=0, stream=True,
                                            stream_options={"include_usage": True},
                                            extra_body={"ignore_eos": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == choice.text
    assert chunks[-1].usage.completion_tokens == 6

    by_ids = client.completions.create(model="tiny", prompt=[5, 6, 7], max_tokens=2)
    assert by_ids.usage.prompt_tokens == 3
    batch = client.completions.create(model="tiny", prompt=["one", "two"], max_tokens=2, n=2)
    assert sorted(c.index for c in batch.choices) == [0, 1, 2, 3]


# --- stop strings ------------------------------------------------------------------------------

def test_stop_strings_cut_the_text(client):
    kwargs = dict(model="tiny", prompt="The scheduler", max_tokens=40, temperature=0,
                  extra_body={"ignore_eos": True})
    full = client.completions.create(**kwargs).choices[0].text
    assert len(full) > 20
    stop = full[12:16]
    at = full.find(stop)
    cut = client.completions.create(stop=[stop, "never-appears"], **kwargs)
    assert cut.choices[0].text == full[:at]
    assert cut.choices[0].finish_reason == "stop"
    assert cut.usage.completion_tokens < 40
    assert cut.usage.completion_tokens == len(cut.choices[0].model_extra["token_ids"])

    streamed = list(client.completions.create(stop=stop, stream=True, **kwargs))
    assert "".join(c.choices[0].text for c in streamed if c.choices) == full[:at]
    assert streamed[-1].choices[0].finish_reason == "stop"

    # include_stop_str_in_output (vLLM) keeps the matched string.
    kept = client.completions.create(stop=[stop], **{**kwargs, "extra_body": {
        "ignore_eos": True, "include_stop_str_in_output": True}})
    assert kept.choices[0].text == full[:at] + stop


def test_stop_strings_in_chat(client):
    kwargs = dict(model="tiny", messages=MESSAGES, max_tokens=40, temperature=0,
                  **extra(ignore_eos=True))
    full = client.chat.completions.create(**kwargs).choices[0].message
    reasoning = full.model_extra.get("reasoning_content") or ""
    if len(reasoning) < 12:
        pytest.skip("the random model ended its reasoning too early for this test")
    stop = reasoning[8:12]
    cut = client.chat.completions.create(stop=stop, **kwargs)
    assert cut.choices[0].finish_reason == "stop"
    got = cut.choices[0].message.model_extra.get("reasoning_content") or ""
    assert got == reasoning[:reasoning.find(stop)].rstrip("\n")


# --- tools -------------------------------------------------------------------------------------

def test_named_tool_choice_forces_the_call(server, client):
    response = client.chat.completions.create(
        model="tiny", messages=MESSAGES, tools=TOOLS, max_tokens=48, temperature=0,
        tool_choice={"type": "function", "function": {"name": "get_weather"}})
    choice = response.choices[0]
    assert choice.finish_reason in ("tool_calls", "length")
    if choice.finish_reason == "tool_calls":
        call = choice.message.tool_calls[0]
        assert call.function.name == "get_weather"
        assert call.id.startswith("call_")
        assert isinstance(json.loads(call.function.arguments), dict)
    else:
        assert not choice.message.tool_calls, "a call cut off is never reported"
    # The forced prefix counts as prompt.
    assert response.usage.prompt_tokens > prompt_tokens(server, MESSAGES, tools=TOOLS)

    chunks = list(client.chat.completions.create(
        model="tiny", messages=MESSAGES, tools=TOOLS, max_tokens=16, stream=True,
        tool_choice={"type": "function", "function": {"name": "add"}}))
    first = chunks[0].choices[0].delta
    assert first.role == "assistant"
    assert first.tool_calls and first.tool_calls[0].function.name == "add"
    assert first.tool_calls[0].id.startswith("call_") and first.tool_calls[0].index == 0
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish in (["tool_calls"], ["length"])


def test_required_tool_choice(client):
    response = client.chat.completions.create(model="tiny", messages=MESSAGES, tools=TOOLS,
                                              max_tokens=32, tool_choice="required")
    assert response.choices[0].finish_reason in ("tool_calls", "length")


def test_auto_and_none_tool_choice_and_tool_results(client):
    history = MESSAGES + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"},
    ]
    auto = client.chat.completions.create(model="tiny", messages=history, tools=TOOLS, max_tokens=8)
    assert auto.choices[0].finish_reason in ("stop", "length", "tool_calls")
    none = client.chat.completions.create(model="tiny", messages=history, tools=TOOLS,
                                          tool_choice="none", max_tokens=8)
    assert not none.choices[0].message.tool_calls
    assert none.choices[0].finish_reason in ("stop", "length")


# --- errors through the SDK's exception classes -----------------------------------------------

def assert_error(excinfo, status, param=None):
    error = excinfo.value
    assert error.status_code == status
    assert error.type in ("invalid_request_error", "authentication_error")
    if param is not None:
        assert error.param == param, error.message
    return error


def test_wrong_types_are_400_naming_the_field(client):
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.chat.completions.create(model="tiny", messages=MESSAGES, temperature="hot")
    assert "temperature" in assert_error(excinfo, 400, "temperature").message
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens="ten")
    assert_error(excinfo, 400, "max_tokens")
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.chat.completions.create(model="tiny", messages="hello")
    assert_error(excinfo, 400, "messages")
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.chat.completions.create(model="tiny", messages=MESSAGES, n=0)
    assert_error(excinfo, 400, "n")


def test_missing_messages_is_400(client):
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.post("/chat/completions", body={"model": "tiny"}, cast_to=object)
    assert_error(excinfo, 400, "messages")


def test_context_overflow_is_400_with_both_numbers(server, client):
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=MAX_MODEL_LEN)
    message = assert_error(excinfo, 400).message
    assert str(MAX_MODEL_LEN) in message
    assert str(MAX_MODEL_LEN + prompt_tokens(server, MESSAGES)) in message
    long_text = "word " * (MAX_MODEL_LEN + 100)
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": long_text}])
    assert str(MAX_MODEL_LEN) in assert_error(excinfo, 400).message


def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError) as excinfo:
        client.chat.completions.create(model="gpt-nothing", messages=MESSAGES)
    assert assert_error(excinfo, 404, "model").code == "model_not_found"


def test_oversized_body_is_413(client):
    big = "x" * (MAX_REQUEST_BYTES + 1000)
    with pytest.raises(openai.APIStatusError) as excinfo:
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": big}])
    assert_error(excinfo, 413)


def test_bad_or_missing_api_key_is_401(server):
    for key in ("wrong-key", "test-key-012", API_KEY + "x"):
        bad = openai.OpenAI(base_url=server.base_url + "/v1", api_key=key, max_retries=0)
        with pytest.raises(openai.AuthenticationError) as excinfo:
            bad.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=2)
        assert_error(excinfo, 401)
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
    # Any of the configured keys is accepted.
    other = openai.OpenAI(base_url=server.base_url + "/v1", api_key="second-key", max_retries=0)
    assert other.models.list().data
    for path in ("/metrics", "/v1/models"):
        assert server.get(path, auth=False).status_code == 401
    assert server.post("/tokenize", json={"prompt": "x"}, auth=False).status_code == 401


def test_unsupported_fields_are_400(client):
    cases = [
        dict(response_format={"type": "json_object"}),
        dict(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}),
        dict(logit_bias={"5": 10}),
        dict(presence_penalty=0.5),
    ]
    for case in cases:
        with pytest.raises(openai.BadRequestError) as excinfo:
            client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=2, **case)
        assert_error(excinfo, 400, next(iter(case)))
    # Unknown fields are ignored; neutral values of unsupported ones are fine.
    ok = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=2,
                                        presence_penalty=0, logit_bias={},
                                        response_format={"type": "text"},
                                        extra_body={"cache_prompt": False, "whatever": [1, 2]})
    assert ok.choices


def test_bad_tool_choice_is_400(client):
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.chat.completions.create(model="tiny", messages=MESSAGES, tools=TOOLS,
                                       tool_choice={"type": "function", "function": {"name": "nope"}})
    assert_error(excinfo, 400, "tool_choice")
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.chat.completions.create(model="tiny", messages=MESSAGES, tool_choice="required")
    assert_error(excinfo, 400, "tool_choice")


def test_empty_user_message_is_fine(client):
    response = client.chat.completions.create(
        model="tiny", messages=[{"role": "system", "content": "ctx"}, {"role": "user", "content": ""}],
        max_tokens=1)
    assert response.usage.completion_tokens == 1
