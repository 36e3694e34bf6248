#!/usr/bin/env python3
"""Turns the gathered documents and generated conversations into the token streams the GPU
training reads: little-endian uint16 ids, each document led by `]~!b[` (MiniMax-M2's
begin-of-document token; a rendered conversation already starts with it).

Writes under --out:
  train.u16.xz     training documents and conversations, interleaved in a seeded order
  heldout.u16.xz   held-out documents (gather_corpus.py's split), for perplexity
  heldout.txt      the same held-out documents as text (fourbit's perplexity test reads it)
  streams.json     token counts per kind, the tokenizer's sha256
"""
import argparse
import array
import hashlib
import json
import lzma
import os
import random
import sys

from tokenizers import Tokenizer

BEGIN = "]~!b["


def write_stream(path, ids):
    data = array.array("H", ids)
    if sys.byteorder != "little":
        data.byteswap()
    with lzma.open(path, "wb", preset=6) as f:
        f.write(data.tobytes())


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--conversations", required=True)
    parser.add_argument("--tokenizer", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=6)
    args = parser.parse_args()
    tokenizer = Tokenizer.from_file(args.tokenizer)
    assert tokenizer.get_vocab_size() <= 65536
    train, heldout = [], []
    with open(os.path.join(args.corpus, "documents.jsonl"), encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            (heldout if doc["split"] == "heldout" else train).append((doc["kind"], BEGIN + doc["text"]))
    with open(args.conversations, encoding="utf-8") as f:
        train += [("chat", json.loads(line)) for line in f]
    random.Random(args.seed).shuffle(train)
    os.makedirs(args.out, exist_ok=True)
    counts = {}

    def encode(items, name):
        ids = []
        for start in range(0, len(items), 512):
            batch = items[start:start + 512]
            for (kind, _), encoding in zip(batch, tokenizer.encode_batch(
                    [text for _, text in batch], add_special_tokens=False)):
                ids += encoding.ids
                key = f"{name}.{kind}"
                counts[key] = counts.get(key, 0) + len(encoding.ids)
            print(f"\r{name}: {len(ids)} tokens", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        return ids

    write_stream(os.path.join(args.out, "train.u16.xz"), encode(train, "train"))
    write_stream(os.path.join(args.out, "heldout.u16.xz"), encode(heldout, "heldout"))
    with open(os.path.join(args.out, "heldout.txt"), "w", encoding="utf-8") as f:
        f.write("".join(text for _, text in heldout))
    with open(args.tokenizer, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    summary = {"tokens": counts, "tokenizer_sha256": digest, "seed": args.seed}
    with open(os.path.join(args.out, "streams.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
