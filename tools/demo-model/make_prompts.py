#!/usr/bin/env python3
"""The prompts train_model.py needs on the GPU machine (where no chat template renderer or
corpus is at hand), as token ids made here with the demo tokenizer:

  logit_prompts   token lists whose float64 logits become fourbit's parity reference: English
                  prose, code, a rendered chat request with a tool, held-out text
  text_prompts    (text, ids) continued greedily for MODEL_CARD.md's samples
  chat_prompts    the held-out requests (heldout_requests.py) rendered with the generation
                  prompt, for the tool-call rates measured right after training
"""
import argparse
import json

from tokenizers import Tokenizer

import heldout_requests
from make_chat_reference import make_environment
from make_conversations import TEMPLATE_PATH

TEXT_PROMPTS = [
    "The kernel", "To install the package, run", "def read_config(path):\n",
    "#include <stdio.h>\n\nint main(", "NAME\n       ls - ",
    "This program is free software; you can redistribute it",
    "The following options are available:", "import os\nimport sys\n\n",
]


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer", required=True)
    parser.add_argument("--heldout-text", required=True, help="encode_corpus.py's heldout.txt")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    tokenizer = Tokenizer.from_file(args.tokenizer)

    def ids(text):
        return tokenizer.encode(text, add_special_tokens=False).ids

    with open(TEMPLATE_PATH, encoding="utf-8") as f:
        template = make_environment().from_string(f.read())

    def chat(text, tools):
        return template.render(messages=[{"role": "user", "content": text}], tools=tools,
                               add_generation_prompt=True)

    with open(args.heldout_text, encoding="utf-8") as f:
        heldout = f.read(20000)
    logit_prompts = [
        ids("The quick brown fox jumps over the lazy dog."),
        ids("def main():\n    parser = argparse.ArgumentParser(description=__doc__)\n"),
        ids(chat("What's the weather like in Lisbon?", [heldout_requests.WEATHER_TOOL])),
        ids(heldout[:4000])[:64],
    ]
    chat_prompts = []
    for request in heldout_requests.weather_requests():
        chat_prompts.append({"kind": "weather", "request": request["text"],
                             "ids": ids(chat(request["text"], [heldout_requests.WEATHER_TOOL]))})
    for request in heldout_requests.no_tool_requests():
        chat_prompts.append({"kind": "no_tool", "request": request["text"],
                             "ids": ids(chat(request["text"], [heldout_requests.WEATHER_TOOL]))})
    prompts = {
        "vocab_size": tokenizer.get_vocab_size(),
        "bos_token_id": tokenizer.token_to_id("]~b]"),
        "eos_token_id": tokenizer.token_to_id("[e~["),
        "logit_prompts": logit_prompts,
        "text_prompts": [(text, ids(text)) for text in TEXT_PROMPTS],
        "chat_prompts": chat_prompts,
    }
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(prompts, f)
    print(json.dumps({k: prompts[k] for k in ("vocab_size", "bos_token_id", "eos_token_id")}),
          [len(p) for p in logit_prompts])


if __name__ == "__main__":
    main()
