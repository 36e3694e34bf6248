#!/usr/bin/env python3
"""Differential check of the tokenizer `fourbit make-model` writes into checkpoints: Hugging
Face `tokenizers` (the reference) and `fourbit tokenize` must give identical ids for every
text of the tokenizer golden corpus and for a rendered chat, for the tiny and small presets. Run by ctest (test text.checkpoint_tokenizer_matches_hf) with the project's venv.

usage: check_checkpoint_tokenizer.py FOURBIT_BINARY REPO_ROOT
"""
import json
import os
import subprocess
import sys
import tempfile

from tokenizers import Tokenizer


def main():
    binary, root = sys.argv[1], sys.argv[2]
    with open(os.path.join(root, "tests/golden/tokenizers/corpus.json")) as f:
        corpus = json.load(f)
    texts = [entry["text"] if isinstance(entry, dict) else entry for entry in corpus]
    texts += ["]~!b[]~b]system\nYou are a helpful assistant.[e~[\n]~b]user\nhi[e~[\n]~b]ai\n"
              "<think>\nok</think>\n<minimax:tool_call>\n<invoke name=\"f\">\n"
              "<parameter name=\"x\">1</parameter>\n</invoke>\n</minimax:tool_call>[e~["]
    failures = 0
    with tempfile.TemporaryDirectory() as work:
        # tiny and small: the two vocabulary sizes of the presets a test can afford to write
        # (the m2.7 sizes share the code path; their added-token ids are checked in C++).
        for preset in ["tiny", "small"]:
            model = os.path.join(work, preset)
            subprocess.run([binary, "make-model", "--preset", preset, "--layers", "1",
                            "--out", model], check=True, capture_output=True)
            path = os.path.join(model, "tokenizer.json")
            reference = Tokenizer.from_file(path)
            for i, text in enumerate(texts):
                text_file = os.path.join(work, "text.txt")
                with open(text_file, "w", encoding="utf-8", newline="") as f:
                    f.write(text)
                ours = json.loads(subprocess.run(
                    [binary, "tokenize", "--tokenizer", path, "--text-file", text_file],
                    check=True, capture_output=True, text=True).stdout)
                expected = reference.encode(text, add_special_tokens=False).ids
                if ours != expected:
                    failures += 1
                    print(f"{preset} text {i}: {text[:60]!r}\n  ours     {ours[:20]}\n"
                          f"  expected {expected[:20]}")
            print(f"{preset}: {len(texts)} texts compared")
    if failures:
        print(f"{failures} texts differ")
        sys.exit(1)


if __name__ == "__main__":
    main()
