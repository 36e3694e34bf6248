#!/usr/bin/env python3
"""Small synthetic calibration sets in the layouts of the recipe's datasets (for reference
checks and benchmarks on random-weight models, where only the mechanics matter): code.jsonl
(instruction/output, evol-codealpaca), tools.jsonl (query/tools/answers as JSON text, xlam),
chat.jsonl (messages, ultrachat), agent.jsonl (messages with tool calls and tool results).
Deterministic. Usage: make_quantize_data.py DIR [RECORDS_PER_FILE] [WORDS]"""
import json
import os
import random
import sys

WORDS = ("the model returns a list of values when called with two numbers and prints them "
         "weather in Paris function code def class import return self value error file path "
         "json key query tool call result async await test assert").split()


def text(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n))


def main():
    out = sys.argv[1]
    n_records = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    n_words = int(sys.argv[3]) if len(sys.argv) > 3 else 60
    os.makedirs(out, exist_ok=True)
    rng = random.Random(7)
    files = {name: [] for name in ("code", "tools", "chat", "agent")}
    for i in range(n_records):
        n = rng.randint(n_words // 2, n_words)
        files["code"].append({"instruction": text(rng, n // 3), "output": text(rng, n)})
        tools = [{"name": f"tool_{j}", "description": text(rng, 6),
                  "parameters": {"city": {"type": "str", "description": text(rng, 3)}}}
                 for j in range(2)]
        answers = [{"name": "tool_0", "arguments": {"city": text(rng, 2)}}]
        files["tools"].append({"query": text(rng, n // 2), "tools": json.dumps(tools),
                               "answers": json.dumps(answers)})
        files["chat"].append({"messages": [{"role": "user", "content": text(rng, n // 2)},
                                           {"role": "assistant", "content": text(rng, n)}]})
        files["agent"].append({"messages": [
            {"role": "user", "content": text(rng, n // 4)},
            {"role": "assistant", "content": "", "tool_calls": [{"id": "c0", "type": "function",
             "function": {"name": "tool_1", "arguments": json.dumps({"path": text(rng, 2)})}}]},
            {"role": "tool", "tool_call_id": "c0", "content": text(rng, n // 2)},
            {"role": "assistant", "content": text(rng, n // 2)}],
            "tools": [{"type": "function", "function": {"name": "tool_1", "parameters": {
                "type": "object", "properties": {"path": {"type": "string"}}}}}]})
    for name, records in files.items():
        with open(os.path.join(out, name + ".jsonl"), "w") as f:
            for record in records:
                f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
