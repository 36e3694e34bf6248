#!/usr/bin/env python3
"""Golden data for fourbit's MiniMax-M2 chat renderer (src/text/chat_template.cpp).

Renders the shipped template (models/templates/minimax_m2_chat_template.jinja) with jinja2
configured as transformers' `render_jinja_template` configures it (ImmutableSandboxedEnvironment,
trim_blocks, lstrip_blocks, the loopcontrols extension, `tojson` = json.dumps without ASCII
escaping, `raise_exception`), after the request preprocessing servers do before rendering:
  - vLLM: each tool call's `arguments` JSON string becomes a dict ("" or null: {});
    `content: null` (or no content) becomes "";
  - transformers: `reasoning_content` is filled from `thinking` or `reasoning` when it is absent.

Writes, under tests/golden/chat/:
  cases.json            request bodies (as JSON text, parsed here with json.loads exactly as a
                        server would) with the prompt the template renders, or the error it raises
  json_dumps.json       JSON texts with what json.dumps(json.loads(text), ensure_ascii=False)
                        makes of them (numbers, escapes, unicode, key order)
  m2_7/chat_template.jinja        the shipped template with the M2.7 default identity
  quoted_identity/tokenizer_config.json
                        the template inside tokenizer_config.json, its identity a single-quoted
                        literal with escapes
  named_templates/tokenizer_config.json
                        a list of named templates ("default" and "tool_use")

Run: build/venv/bin/python tools/reference/make_chat_reference.py
With --check-binary build/fourbit --random N it instead renders N random conversations (random
roles, reasoning, think tags, parts, tool calls and tools) with both jinja2 and `fourbit render`
and reports every difference.
"""
import argparse
import subprocess
import tempfile
import copy
import json
import os
import random
import struct
import sys

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEMPLATE_PATH = os.path.join(ROOT, "models", "templates", "minimax_m2_chat_template.jinja")
OUT = os.path.join(ROOT, "tests", "golden", "chat")

SHIPPED_IDENTITY_LINE = '{%- set model_identity = "You are a helpful assistant." -%}'
M27_IDENTITY = "You are a helpful assistant. Your name is MiniMax-M2.7 and is built by MiniMax."
# A single-quoted Jinja literal: \' \" \\ \n \t \u00e9 \x41 escapes and a raw non-ASCII character.
QUOTED_IDENTITY_LITERAL = (
    r"'You are \"Ké\" \u00e9\x41 l\'assistant,\tcalled \\MiniMax\\.\nBe brief. 你好'")


def make_environment():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent,
                          separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env


def preprocess(messages):
    """What vLLM and transformers do to OpenAI messages before the template sees them."""
    messages = copy.deepcopy(messages)
    for message in messages:
        if message.get("content") is None:
            message["content"] = ""
        if message.get("reasoning_content") is None:
            for alias in ("thinking", "reasoning"):
                if message.get(alias) is not None:
                    message["reasoning_content"] = message[alias]
                    break
        if message.get("role") == "assistant" and isinstance(message.get("tool_calls"), list):
            for call in message["tool_calls"]:
                arguments = call["function"].get("arguments")
                if isinstance(arguments, str):
                    arguments = json.loads(arguments) if arguments.strip() else {}
                elif arguments is None:
                    arguments = {}
                call["function"]["arguments"] = arguments
    return messages


def render(template_text, body):
    env = make_environment()
    template = env.from_string(template_text)
    kwargs = {}
    for key, value in (body.get("chat_template_kwargs") or {}).items():
        if key == "model_identity":
            kwargs[key] = value
    return template.render(messages=preprocess(body["messages"]), tools=body.get("tools"),
                           documents=None,
                           add_generation_prompt=body.get("add_generation_prompt", True),
                           **kwargs)


# --- the conversations --------------------------------------------------------------------

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search_files",
        "description": "Search the repository.",
        "parameters": {"type": "object",
                       "properties": {"pattern": {"type": "string"},
                                      "max_results": {"type": "integer", "default": 20}},
                       "required": ["pattern"]},
    },
}

# Tools written as JSON text so that number literals, escapes and key order reach the parser
# exactly as a client sent them.
TOOLS_TEXT = r"""[
  {"type": "function", "function": {
    "name": "plan_trip",
    "description": "Plane une reise — 计划旅行 🚀 with \"quotes\", a back\\slash, a \/ slash, tab\there, bell\u0007 and \u00e9\ud83d\ude00",
    "parameters": {
      "type": "object",
      "properties": {
        "zeta": {"type": "number", "minimum": 1.0, "maximum": 1e-7, "multipleOf": 0.1,
                 "default": 1E+300, "examples": [-0.0, 2.50, 1e16, 1e15, 0.0001, 0.00001, 123456.789e3]},
        "alpha": {"type": "integer", "minimum": -9223372036854775808, "maximum": 18446744073709551615,
                  "big": 123456789012345678901234567890, "neg_big": -98765432109876543210, "zero": -0},
        "nested": {"type": "object", "properties": {"deep": {"type": "array",
                   "items": {"type": ["string", "null"], "enum": [true, false, null, "x"]}}},
                   "additionalProperties": false},
        "empty_object": {}, "empty_array": [],
        "control": "\u0000\u001f\b\f\n\r\t\u007f\u2028\u2029"
      },
      "required": ["zeta", "alpha"]
    }
  }},
  {"type": "function", "function": {"name": "no_params", "description": ""}},
  {"type": "function", "function": {"parameters": {"type": "object"}, "name": "params_first", "strict": true}}
]"""

ALL_TYPES_ARGUMENTS = (
    r'{"text": "plain text, not JSON-quoted", "empty": "", '
    r'"quoted": "she said \"hi\"\nnew line \\ back\/slash", "unicode": "naïve 日本 \ud83d\ude00", '
    r'"int": 42, "negative": -7, "zero": -0, "big": 12345678901234567890123, '
    r'"float": 1.0, "exp": 1E5, "tiny": 1e-7, "pi": 3.14159265358979323846, "underflow": 1e-400, '
    r'"yes": true, "no": false, "nothing": null, '
    r'"list": [1, "two", 3.0, null, [true]], "object": {"b": 1, "a": {"c": [ ]}}, '
    r'"empty_list": [], "empty_object": {}}')


def user(text):
    return {"role": "user", "content": text}


def assistant(text, **extra):
    return dict({"role": "assistant", "content": text}, **extra)


def call(call_id, name, arguments):
    return {"id": call_id, "type": "function",
            "function": {"name": name, "arguments": arguments}}


def tool(call_id, content):
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def cases():
    c = []

    def add(name, body, model_dir=None, body_text=None):
        c.append({"name": name, "model_dir": model_dir,
                  "request": body_text if body_text is not None
                  else json.dumps(body, ensure_ascii=False, indent=1)})

    add("user_only", {"messages": [user("Hello!")]})
    add("system_string", {"messages": [{"role": "system", "content": "You are a pirate."},
                                       user("Ahoy?")]})
    add("system_parts", {"messages": [
        {"role": "system", "content": [{"type": "text", "text": "Part one. "},
                                       {"type": "text", "text": "Part two."}]},
        {"role": "user", "content": [{"type": "text", "text": "first "}, "plain string part",
                                     {"type": "text", "text": " last"}]}]})
    add("system_empty_uses_identity", {"messages": [{"role": "system", "content": ""},
                                                    user("Who are you?")]})
    add("system_null_uses_identity", {"messages": [{"role": "system", "content": None},
                                                   user("Who are you?")]})
    add("system_empty_part_renders_nothing", {"messages": [
        {"role": "system", "content": [{"type": "text", "text": ""}]}, user("Hi")]})
    add("system_date_location", {"messages": [
        {"role": "system", "content": "Be concise.", "current_date": "2025-11-19",
         "current_location": "Shanghai, China"}, user("What day is it?")]})
    add("later_system_message_dropped", {"messages": [
        user("one"), {"role": "system", "content": "ignored by the template"}, user("two")]})
    add("multi_turn", {"messages": [
        {"role": "system", "content": "You are terse."}, user("2+2?"), assistant("4"),
        user("And 3+3?"), assistant("6", name="calc"), user("Thanks. Привет, 你好! 👋")]})
    add("unicode_escapes_and_markers", {"messages": [
        user("tab\there \"quoted\" back\\slash \u0001 ctrl, ]~b]ai fake header, [e~[ fake end, "
             "<think>not reasoning</think> in a user turn, \u2028 sep, emoji 🧪, RTL שלום")]})
    add("tools_basic", {"messages": [user("Weather in Paris?")], "tools": [WEATHER_TOOL]})
    add("tools_empty_list", {"messages": [user("No tools here")], "tools": []})
    add("tools_literals_and_unicode", None, body_text='{"messages": [{"role": "user", '
        '"content": "Plan it"}], "tools": ' + TOOLS_TEXT + '}')
    add("tool_call_all_json_types", {"messages": [
        user("Do it"),
        assistant("", tool_calls=[call("call_1", "do_everything", ALL_TYPES_ARGUMENTS)])],
        "tools": [WEATHER_TOOL], "add_generation_prompt": False})
    add("tool_call_arguments_object_and_empty", {"messages": [
        user("Go"),
        assistant(None, tool_calls=[
            call("a", "as_object", {"k": "v", "n": 1.5}),
            call("b", "empty_string", ""),
            call("c", "null_arguments", None),
            call("d", "duplicate_keys", '{"x": 1, "y": 2, "x": {"replaced": true}}')]),
        tool("a", "ok a"), tool("b", "ok b"), tool("c", "ok c"), tool("d", "ok d")]})
    add("parallel_calls_and_results", {"messages": [
        {"role": "system", "content": "You can call tools."},
        user("Weather in Paris and Tokyo?"),
        assistant("Checking both.", tool_calls=[
            call("call_p", "get_weather", '{"city": "Paris", "unit": "celsius"}'),
            call("call_t", "get_weather", '{"city": "Tokyo"}')]),
        tool("call_p", "18 C, sunny"), tool("call_t", "{\"temp\": 22, \"sky\": \"rain\"}"),
        assistant("Paris 18 C and sunny; Tokyo 22 C with rain.")],
        "tools": [WEATHER_TOOL]})
    add("tool_results_list_content", {"messages": [
        user("Search twice"),
        assistant(None, tool_calls=[call("s1", "search_files", '{"pattern": "TODO"}'),
                                    call("s2", "search_files", '{"pattern": "FIXME"}')]),
        tool("s1", [{"type": "text", "text": "a.cpp:1: TODO"},
                    {"type": "text", "text": "b.cpp:9: TODO"}]),
        tool("s2", "no matches"),
        tool("s2", []),
        tool("s2", ["a bare string part", {"type": "text", "text": ""}])],
        "tools": [SEARCH_TOOL]})
    add("reasoning_content_kept_after_last_user", {"messages": [
        user("Think first."),
        assistant("The answer is 42.", reasoning_content="Let me think.\nIt is 42.")]})
    add("reasoning_content_dropped_before_last_user", {"messages": [
        user("Q1"), assistant("A1", reasoning_content="secret reasoning 1"),
        user("Q2"), assistant("A2", reasoning_content="kept reasoning 2")],
        "add_generation_prompt": False})
    add("think_in_content", {"messages": [
        user("Q1"), assistant("<think>\nold thoughts\n</think>\n\nOld answer."),
        user("Q2"), assistant("<think>\n\nnew thoughts\n\n</think>\n\n\nNew answer.\n")]})
    add("think_in_content_edge_cases", {"messages": [
        user("Q"),
        assistant("no opening tag</think>answer"),
        assistant("<think>a</think><think>b</think>\ntail"),
        assistant("prefix <think>x\n<think>\ny\n</think>rest"),
        assistant("</think>"),
        assistant("<think>only open, no close"),
        assistant([{"type": "text", "text": "<think>from "},
                   {"type": "text", "text": "parts</think>\n\nparts answer"}])],
        "add_generation_prompt": False})
    add("reasoning_field_wins_over_think_in_content", {"messages": [
        user("Q"),
        assistant("<think>inline</think>visible", reasoning_content=""),
        assistant("<think>inline 2</think>visible 2", reasoning_content="field 2")]})
    add("reasoning_aliases", {"messages": [
        user("Q"), assistant("A", reasoning="from the reasoning field"),
        assistant("B", thinking="from the thinking field", reasoning="not this one"),
        assistant("C", reasoning_content=None, reasoning="null reasoning_content falls back")]})
    add("interleaved_thinking_tool_loop", {"messages": [
        {"role": "system", "content": "Agent."},
        user("Find and fix the bug"),
        assistant("", reasoning_content="I should search first.",
                  tool_calls=[call("t1", "search_files", '{"pattern": "bug", "max_results": 5}')]),
        tool("t1", "src/x.cpp:10: bug"),
        assistant(None, reasoning_content="Found it; read the file.",
                  tool_calls=[call("t2", "search_files", '{"pattern": "x.cpp"}')]),
        tool("t2", "int main() { return 1; }")],
        "tools": [SEARCH_TOOL]})
    add("interleaved_thinking_next_user_turn", {"messages": [
        user("Find and fix the bug"),
        assistant("", reasoning_content="I should search first.",
                  tool_calls=[call("t1", "search_files", '{"pattern": "bug"}')]),
        tool("t1", "src/x.cpp:10: bug"),
        assistant("Fixed.", reasoning_content="Done; report."),
        user("Thanks! Now run the tests.")],
        "tools": [SEARCH_TOOL]})
    add("empty_content_with_tool_calls", {"messages": [
        user("Call"),
        assistant("", tool_calls=[call("e1", "get_weather", '{"city": "Oslo"}')]),
        tool("e1", "cold"),
        {"role": "assistant", "tool_calls": [call("e2", "get_weather", '{"city": "Rome"}')]},
        tool("e2", None),
        assistant(None, tool_calls=[])],
        "tools": [WEATHER_TOOL]})
    add("tool_after_user_keeps_last_call", {"messages": [
        user("Call"),
        assistant("", tool_calls=[call("k1", "get_weather", '{"city": "Oslo"}')]),
        user("interjection"),
        tool("k1", "late result")]})
    add("raw_names_and_keys", {"messages": [
        user("Go"),
        assistant("", tool_calls=[call("r", 'odd "name" <x> & y',
                                       '{"k\\"ey <b>": "v</parameter>", "ünï": [1]}')])],
        "add_generation_prompt": False})
    add("system_only", {"messages": [{"role": "system", "content": "Only a system turn."}]})
    add("no_generation_prompt", {"messages": [user("Hi"), assistant("Hello!")],
                                 "add_generation_prompt": False})
    add("identity_from_request_kwargs", {"messages": [user("Who are you?")],
                                         "chat_template_kwargs": {"model_identity": "I am X.",
                                                                  "enable_thinking": False}})
    add("identity_m2_7_template", {"messages": [user("Привет, 你好!")]}, model_dir="m2_7")
    add("identity_quoted_literal", {"messages": [user("Who are you?")], "tools": [WEATHER_TOOL]},
        model_dir="quoted_identity")
    add("identity_named_templates", {"messages": [user("Who are you?")]},
        model_dir="named_templates")
    add("identity_system_overrides_template", {"messages": [
        {"role": "system", "content": "Custom system."}, user("Who are you?")]}, model_dir="m2_7")

    # The template raises on these.
    add("error_tool_first", {"messages": [tool("x", "orphan result")]})
    add("error_tool_after_plain_assistant", {"messages": [
        user("Call"), assistant("", tool_calls=[call("z", "get_weather", "{}")]),
        tool("z", "ok"), assistant("done"), tool("z", "again")]})
    return c


def json_dumps_cases():
    texts = [
        "0", "-0", "7", "-9223372036854775808", "18446744073709551615",
        "18446744073709551616", "123456789012345678901234567890", "-98765432109876543210",
        "1.0", "-0.0", "0.0", "1e-7", "1E+300", "1e16", "1e15", "123456789012345680000.0",
        "0.0001", "0.00001", "0.1", "0.3", "2.5e-5", "1.7976931348623157e308", "5e-324",
        "2.2250738585072014e-308", "1e-400", "100", "1.5e2", "9007199254740993",
        "9007199254740993.0", "3.14159265358979323846264338327950288",
        '"plain"', '""', r'"\u0000\u0001\u001f\u007f\u0080\u00ff\u2028\u2029\ufeff"',
        r'"\"\\\/\b\f\n\r\t"', r'"\ud83d\ude00 😀 é 日本語"', r'"</script> <tag> & \u003c"',
        "true", "false", "null", "[]", "{}", "[[], {}, [{}]]",
        '{"b": 1, "a": 2, "c": {"z": [1, 2.0, "3"], "y": null}}',
        '{"dup": 1, "other": 2, "dup": 3}', ' { "spaces" :  [ 1 ,2 ] } ',
    ]
    rng = random.Random(20251119)
    for _ in range(300):
        bits = rng.getrandbits(64)
        value = struct.unpack("<d", struct.pack("<Q", bits))[0]
        if value != value or value in (float("inf"), float("-inf")):
            continue
        texts.append("%.17g" % value)
    for _ in range(100):
        texts.append(repr(rng.uniform(-1000, 1000)))
        texts.append("%.3f" % rng.uniform(-1e6, 1e6))
        texts.append(str(rng.randint(-10**30, 10**30)))
    return [{"json": text, "python": json.dumps(json.loads(text), ensure_ascii=False)}
            for text in texts]


def random_conversation(rng):
    pieces = ["a", "b c", "\n", "\n\n", "<think>", "</think>", "é", "😀", " ", "\"", "\\",
              "]~b]", "[e~[", "<response>", "\t", "\u0001", "x" * 5]

    def text():
        return "".join(rng.choice(pieces) for _ in range(rng.randint(0, 6)))

    def content():
        kind = rng.random()
        if kind < 0.6:
            return text()
        if kind < 0.7:
            return None
        return [rng.choice([{"type": "text", "text": text()}, text()])
                for _ in range(rng.randint(0, 3))]

    def value(depth=0):
        makers = [text, lambda: rng.randint(-10**20, 10**20),
                  lambda: rng.uniform(-1e6, 1e6) * 10 ** rng.randint(-12, 12),
                  lambda: rng.choice([True, False]), lambda: None]
        if depth < 2:
            makers += [lambda: [value(depth + 1) for _ in range(rng.randint(0, 3))],
                       lambda: {text() or "k": value(depth + 1) for _ in range(rng.randint(0, 3))}]
        return rng.choice(makers)()

    messages = []
    if rng.random() < 0.5:
        system = {"role": "system", "content": content()}
        if rng.random() < 0.2:
            system["current_date"] = text()
        messages.append(system)
    after_call = False
    for _ in range(rng.randint(1, 8)):
        role = rng.choice(["user", "assistant", "assistant", "tool"] + (["tool"] * 2 if after_call else []))
        if role == "tool" and not after_call and rng.random() < 0.9:
            role = "user"  # mostly valid; the rest checks that both refuse
        message = {"role": role, "content": content()}
        if role == "assistant":
            field = rng.choice([None, None, "reasoning_content", "reasoning", "thinking"])
            if field:
                message[field] = rng.choice([text(), None])
            after_call = rng.random() < 0.5
            if after_call:
                message["tool_calls"] = [
                    call(f"c{i}", text() or "f",
                         json.dumps({text() or "k": value() for _ in range(rng.randint(0, 4))},
                                    ensure_ascii=rng.random() < 0.5))
                    for i in range(rng.randint(1, 3))]
        messages.append(message)
    body = {"messages": messages}
    if rng.random() < 0.4:
        body["tools"] = [{"type": "function", "function": {"name": text() or "t", "description": text(),
                                                            "parameters": {"type": "object", text() or "p": value()}}}
                         for _ in range(rng.randint(0, 3))]
    if rng.random() < 0.3:
        body["add_generation_prompt"] = rng.random() < 0.5
    return body


def check_binary(binary, count, seed):
    with open(TEMPLATE_PATH, encoding="utf-8", newline="") as f:
        shipped = f.read()
    rng = random.Random(seed)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "request.json")
        for i in range(count):
            body = random_conversation(rng)
            try:
                expected = render(shipped, body)
            except jinja2.exceptions.TemplateError:
                expected = None
            with open(path, "w", encoding="utf-8") as f:
                json.dump(body, f, ensure_ascii=False)
            run = subprocess.run([binary, "render", "--request", path], capture_output=True)
            actual = run.stdout.decode("utf-8") if run.returncode == 0 else None
            if actual != expected:
                failures += 1
                print(f"--- conversation {i}: {json.dumps(body, ensure_ascii=False)}\n"
                      f"jinja2: {expected!r}\nfourbit: {actual!r} {run.stderr.decode()!r}")
    print(f"{count - failures} of {count} random conversations identical")
    return failures == 0


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check-binary", help="compare `BINARY render` on random conversations")
    parser.add_argument("--random", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.check_binary:
        sys.exit(0 if check_binary(args.check_binary, args.random, args.seed) else 1)

    with open(TEMPLATE_PATH, encoding="utf-8", newline="") as f:
        shipped = f.read()
    if shipped.count(SHIPPED_IDENTITY_LINE) != 1:
        sys.exit(f"{TEMPLATE_PATH}: expected one line {SHIPPED_IDENTITY_LINE!r}")

    templates = {None: shipped}
    templates["m2_7"] = shipped.replace(
        SHIPPED_IDENTITY_LINE, '{%- set model_identity = "' + M27_IDENTITY + '" -%}')
    write(os.path.join(OUT, "m2_7", "chat_template.jinja"), templates["m2_7"])

    templates["quoted_identity"] = shipped.replace(
        SHIPPED_IDENTITY_LINE, "{%- set model_identity = " + QUOTED_IDENTITY_LITERAL + " -%}")
    write(os.path.join(OUT, "quoted_identity", "tokenizer_config.json"),
          json.dumps({"model_max_length": 196608, "chat_template": templates["quoted_identity"],
                      "tokenizer_class": "GPT2Tokenizer"}, ensure_ascii=False, indent=2) + "\n")

    templates["named_templates"] = shipped.replace(
        SHIPPED_IDENTITY_LINE, "{%- set model_identity = 'Named default identity.' -%}")
    write(os.path.join(OUT, "named_templates", "tokenizer_config.json"),
          json.dumps({"chat_template": [
              {"name": "tool_use", "template": "{{ 'not the default' }}"},
              {"name": "default", "template": templates["named_templates"]}]},
              ensure_ascii=False, indent=2) + "\n")

    out = []
    for case in cases():
        body = json.loads(case["request"])
        try:
            case["expected"] = render(templates[case["model_dir"]], body)
        except jinja2.exceptions.TemplateError as error:
            case["error"] = str(error)
        out.append(case)
    write(os.path.join(OUT, "cases.json"), json.dumps(out, ensure_ascii=False, indent=1) + "\n")
    write(os.path.join(OUT, "json_dumps.json"),
          json.dumps(json_dumps_cases(), ensure_ascii=False, indent=0) + "\n")
    print(f"{len(out)} cases ({sum('error' in c for c in out)} raise), jinja2 {jinja2.__version__}")


if __name__ == "__main__":
    main()
