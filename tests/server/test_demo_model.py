"""Tool calling end to end on the bundled demo model (models/minimax-m2-demo): the real
`fourbit serve`, driven by the official openai SDK, answers held-out requests
(tools/demo-model/heldout_requests.py: phrasings the model never trained on).

- 20 requests that need the weather tool: at least 80% must come back as a parsed `tool_calls`
  naming get_weather with a `city` argument (and the city must be the one asked about in at
  least 80% too: the model copies it from the request);
- 20 requests that no tool serves, with the weather tool listed: at most 20% may call a tool.

Greedy decoding (temperature 0) with a fixed seed, so the rates are reproducible. The measured
rates are printed and recorded as properties (ctest --output-on-failure, or pytest -s).
"""

import json
import os
import sys

import openai
import pytest

from conftest import API_KEY, binary, start_server_on, stop_server

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL_DIR = os.path.join(ROOT, "models", "minimax-m2-demo")
sys.path.insert(0, os.path.join(ROOT, "tools", "demo-model"))
import heldout_requests  # noqa: E402
import make_conversations  # noqa: E402

NAME = "minimax-m2-demo"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    if not os.path.exists(os.path.join(MODEL_DIR, "config.json")):
        pytest.fail(f"the demo model is missing: {MODEL_DIR}")
    server = start_server_on(MODEL_DIR, str(tmp_path_factory.mktemp("demo")), NAME)
    try:
        yield openai.OpenAI(base_url=server.base_url + "/v1", api_key=API_KEY, max_retries=0,
                            timeout=120)
    finally:
        stop_server(server)


def ask(client, text):
    response = client.chat.completions.create(
        model=NAME, messages=[{"role": "user", "content": text}],
        tools=[heldout_requests.WEATHER_TOOL], temperature=0, seed=6, max_tokens=160)
    return response.choices[0]


def test_requests_are_held_out():
    """No test phrasing is a training phrasing (so the rates below are on unseen prompts)."""
    trained = set()
    for name in dir(make_conversations):
        value = getattr(make_conversations, name)
        if name.endswith("_TEMPLATES") and isinstance(value, list):
            trained.update(value)
    trained.update(text for text, _ in make_conversations.GREETINGS)
    trained.update(text for text, _ in make_conversations.WEATHER_KNOWLEDGE)
    assert len(trained) > 50
    for template in heldout_requests.HELDOUT_WEATHER + heldout_requests.HELDOUT_NO_TOOL:
        assert template not in trained, template


def test_weather_requests_call_the_tool(client, record_property):
    calls = cities = 0
    requests = heldout_requests.weather_requests()
    assert len(requests) == 20
    for request in requests:
        choice = ask(client, request["text"])
        tool_calls = choice.message.tool_calls or []
        named = [c for c in tool_calls if c.function.name == "get_weather"]
        arguments = json.loads(named[0].function.arguments) if named else {}
        if named and isinstance(arguments.get("city"), str) and arguments["city"]:
            calls += 1
            cities += arguments["city"].strip().lower() == request["city"].lower()
        print(f"weather: {request['text']!r} -> {[(c.function.name, c.function.arguments) for c in tool_calls]}"
              f" {choice.message.content!r}")
    rate, city_rate = calls / len(requests), cities / len(requests)
    print(f"weather requests with a parsed get_weather call and a city: {rate:.0%}; "
          f"with the requested city: {city_rate:.0%}")
    record_property("weather_tool_call_rate", rate)
    record_property("weather_right_city_rate", city_rate)
    assert rate >= 0.8
    assert city_rate >= 0.8


def test_requests_without_a_tool_rarely_call_one(client, record_property):
    calls = 0
    requests = heldout_requests.no_tool_requests()
    assert len(requests) == 20
    for request in requests:
        choice = ask(client, request["text"])
        calls += bool(choice.message.tool_calls)
        print(f"no tool: {request['text']!r} -> tool_calls={bool(choice.message.tool_calls)} "
              f"{choice.message.content!r}")
    rate = calls / len(requests)
    print(f"requests needing no tool that called one: {rate:.0%}")
    record_property("no_tool_call_rate", rate)
    assert rate <= 0.2
