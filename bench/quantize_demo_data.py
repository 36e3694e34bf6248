#!/usr/bin/env python3
"""Calibration and evaluation sets for the demo model (models/minimax-m2-demo), drawn from the
same generators and text sources it was trained on but with seeds and files of their own:
  tools.jsonl / tools_eval.jsonl   conversations with tool calls (weather_call, other_call)
  chat.jsonl / chat_eval.jsonl     conversations without a tool call (no_tool,
                                   weather_without_tool)
  code.jsonl / code_eval.jsonl     Python 3.11 standard library sources, 2,000-character pieces
Each record is {"text": ...}: the conversations already rendered with the official template.
Usage: quantize_demo_data.py DEMO_TOOLS_DIR OUT_DIR [N_CALIBRATION] [N_EVAL]"""
import glob
import json
import os
import random
import sys


def main():
    tools_dir, out = sys.argv[1], sys.argv[2]
    n_calibration = int(sys.argv[3]) if len(sys.argv) > 3 else 64
    n_eval = int(sys.argv[4]) if len(sys.argv) > 4 else 32
    sys.path.insert(0, tools_dir)
    import make_conversations as mc
    with open(mc.TEMPLATE_PATH, encoding="utf-8") as f:
        template = mc.make_environment().from_string(f.read())
    # A seed the demo model's training (2026) did not use.
    maker = mc.Maker(random.Random(99), mc.whatis_commands())
    sets = {"tools": [], "chat": []}
    while min(len(v) for v in sets.values()) < n_calibration + n_eval:
        kind, tools, messages = maker.conversation()
        target = sets["tools"] if kind.endswith("_call") else sets["chat"]
        target.append(mc.render(template, tools, messages))
    files = sorted(glob.glob("/usr/lib/python3.11/*.py"))
    random.Random(5).shuffle(files)
    code = []
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        code.extend(text[i:i + 2000] for i in range(0, min(len(text), 8000), 2000))
        if len(code) >= n_calibration + n_eval:
            break
    sets["code"] = code
    os.makedirs(out, exist_ok=True)
    for name, texts in sets.items():
        for suffix, part in (("", texts[:n_calibration]),
                             ("_eval", texts[n_calibration:n_calibration + n_eval])):
            with open(os.path.join(out, f"{name}{suffix}.jsonl"), "w", encoding="utf-8") as f:
                for text in part:
                    f.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
