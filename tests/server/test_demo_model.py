"""The bundled demo model (models/minimax-m2-demo) end to end: `fourbit generate` writes
recognisable English and code (see the section at the end), and the real `fourbit serve`,
driven by the official openai SDK, calls tools on held-out requests
(tools/demo-model/heldout_requests.py: phrasings the model never trained on):

- 20 requests that need the weather tool: at least 80% must come back as a parsed `tool_calls`
  naming get_weather with a `city` argument (and the city must be the one asked about in at
  least 80% too: the model copies it from the request);
- 20 requests that no tool serves, with the weather tool listed: at most 20% may call a tool.

Greedy decoding (temperature 0) with a fixed seed, so the rates are reproducible. The measured
rates are printed and recorded as properties (ctest --output-on-failure, or pytest -s).
"""

import ast
import json
import os
import random
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

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


def ask_all(client, requests):
    """The requests' first choices, asked 8 at a time (the server batches them)."""
    def ask(request):
        response = client.chat.completions.create(
            model=NAME, messages=[{"role": "user", "content": request["text"]}],
            tools=[heldout_requests.WEATHER_TOOL], temperature=0, seed=6, max_tokens=160)
        return response.choices[0]

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(ask, requests))


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
    for request, choice in zip(requests, ask_all(client, requests)):
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
    for request, choice in zip(requests, ask_all(client, requests)):
        calls += bool(choice.message.tool_calls)
        print(f"no tool: {request['text']!r} -> tool_calls={bool(choice.message.tool_calls)} "
              f"{choice.message.content!r}")
    rate = calls / len(requests)
    print(f"requests needing no tool that called one: {rate:.0%}")
    record_property("no_tool_call_rate", rate)
    assert rate <= 0.2


# --- `fourbit generate` writes recognisable English and code ----------------------------------
#
# English: the continuation's words (lower-cased runs of letters) must mostly be words of an
# independent English reference (the held-out text the model never trained on, and the
# project's design notes), and a fair share of its adjacent word pairs must occur in that
# reference too: pairs, unlike single words, only match when words come in an English order.
# Code: a continuation of a Python `def` must parse (ast) for at least two lines past the
# prompt. Controls keep the checks honest: the same continuation with its words shuffled, and
# the output of a random-weights model (`make-model --preset tiny`), must fail them.


ENGLISH_PROMPTS = ["If the file does not exist,", "The program", "This option is"]
CODE_PROMPT = "def read_config(path):\n"
SAMPLING = ["--temperature", "0.7", "--top-k", "40", "--seed", "1"]
MIN_KNOWN_WORDS = 0.7
MIN_KNOWN_PAIRS = 0.25


def words(text):
    return re.findall(r"[a-z]{2,}", text.lower())


def reference_text():
    parts = []
    for path in ("tests/golden/demo/heldout.txt", "models/tokenizer_corpus.txt"):
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            parts.append(f.read())
    return "\n".join(parts)


def english_scores(text, reference_words):
    vocabulary, pairs = set(reference_words), set(zip(reference_words, reference_words[1:]))
    found = words(text)
    if len(found) < 10:
        return 0.0, 0.0
    known = sum(w in vocabulary for w in found) / len(found)
    known_pairs = sum(p in pairs for p in zip(found, found[1:])) / (len(found) - 1)
    return known, known_pairs


def generate_text(model_dir, prompt, max_tokens=64):
    tokenizer = os.path.join(model_dir, "tokenizer.json")
    def run(*args):
        return subprocess.run([binary(), *args], check=True, capture_output=True, text=True,
                              timeout=300).stdout

    ids = ",".join(str(i) for i in json.loads(run("tokenize", "--tokenizer", tokenizer, "--text", prompt)))
    out = run("generate", "--model", model_dir, "--prompt-ids", ids, "--max-tokens",
              str(max_tokens), *SAMPLING).strip().replace(" ", ",")
    return run("detokenize", "--tokenizer", tokenizer, "--ids", out)


def parses_past_prompt(prompt, continuation, lines_needed=2):
    """Whether some prefix of whole lines of prompt + continuation, reaching at least
    `lines_needed` non-blank lines past the prompt, is valid Python."""
    lines = (prompt + continuation).split("\n")
    prompt_lines = prompt.count("\n")
    for end in range(len(lines), prompt_lines, -1):
        body = [l for l in lines[prompt_lines:end] if l.strip()]
        if len(body) < lines_needed:
            break
        try:
            ast.parse("\n".join(lines[:end]))
            return True
        except SyntaxError:
            continue
    return False


def test_generate_writes_recognisable_english_and_code(tmp_path, record_property):
    """Judged on the three English continuations together (one may be weaker than the others)."""
    reference_words = words(reference_text())
    control_model = str(tmp_path / "tiny")
    subprocess.run([binary(), "make-model", "--preset", "tiny", "--out", control_model],
                   check=True, capture_output=True, timeout=300)
    texts = [generate_text(MODEL_DIR, p) for p in ENGLISH_PROMPTS]
    # A few dozen tokens of the random model are enough to judge it.
    controls = [generate_text(control_model, p, max_tokens=32) for p in ENGLISH_PROMPTS]
    for prompt, text in zip(ENGLISH_PROMPTS, texts):
        print(f"{prompt!r} -> {text!r}")
    pooled = "\n".join(texts)
    known, known_pairs = english_scores(pooled, reference_words)
    shuffled = words(pooled)
    random.Random(0).shuffle(shuffled)
    _, shuffled_pairs = english_scores(" ".join(shuffled), reference_words)
    control = english_scores("\n".join(controls), reference_words)
    print(f"known words {known:.2f}, known pairs {known_pairs:.2f}; shuffled: pairs "
          f"{shuffled_pairs:.2f}; random model: words {control[0]:.2f}, pairs {control[1]:.2f}")
    record_property("known_words", known)
    record_property("known_pairs", known_pairs)
    assert known >= MIN_KNOWN_WORDS and known_pairs >= MIN_KNOWN_PAIRS
    assert not (control[0] >= MIN_KNOWN_WORDS and control[1] >= MIN_KNOWN_PAIRS), \
        "the check cannot tell a random model from English"
    assert shuffled_pairs < MIN_KNOWN_PAIRS, "word order does not matter to the check"

    code = generate_text(MODEL_DIR, CODE_PROMPT, max_tokens=96)
    print(f"{CODE_PROMPT!r} -> {code!r}")
    assert parses_past_prompt(CODE_PROMPT, code), code
    assert not parses_past_prompt(CODE_PROMPT, generate_text(control_model, CODE_PROMPT, 48))
