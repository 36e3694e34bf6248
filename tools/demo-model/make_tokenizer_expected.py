#!/usr/bin/env python3
"""Writes tests/golden/demo/tokenizer_expected.json: the ids Hugging Face `tokenizers` gives
every text of the tokenizer test corpus (tests/golden/tokenizers/corpus.json: edge cases of
whitespace, digits, scripts, emoji, added tokens) with the demo model's tokenizer.json, and
the text it decodes them back to. tests/model/demo_model_test.cpp checks fourbit against it.

Run from the repository root: build/venv/bin/python tools/demo-model/make_tokenizer_expected.py
"""
import json
import os

import tokenizers
from tokenizers import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    tokenizer = Tokenizer.from_file(os.path.join(ROOT, "models", "minimax-m2-demo", "tokenizer.json"))
    with open(os.path.join(ROOT, "tests", "golden", "tokenizers", "corpus.json"), encoding="utf-8") as f:
        corpus = json.load(f)
    cases = []
    for case in corpus:
        ids = tokenizer.encode(case["text"], add_special_tokens=False).ids
        cases.append({"name": case["name"], "text": case["text"], "ids": ids,
                      "decoded": tokenizer.decode(ids, skip_special_tokens=False)})
    out = {"generator": "tools/demo-model/make_tokenizer_expected.py",
           "tokenizers_version": tokenizers.__version__, "cases": cases}
    with open(os.path.join(ROOT, "tests", "golden", "demo", "tokenizer_expected.json"), "w",
              encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=0)
        f.write("\n")
    print(len(cases), "cases")


if __name__ == "__main__":
    main()
