#!/usr/bin/env python3
"""Puts the GPU run's outputs (train_model.py --out) and the tokenizer made here together into
the committed model folder and its test reference:

  models/minimax-m2-demo/   config.json, generation_config.json, the two BF16 safetensors
                            shards and their index, tokenizer.json, tokenizer_config.json
                            (with the official MiniMax-M2 chat template), training.json (loss
                            curve, perplexities, samples, corpus and licence summary)
  tests/golden/demo/        reference.safetensors + reference.json (transformers, float64),
                            config.transformers.json, heldout.txt (the held-out text whose
                            first windows the perplexity reference covers)

Then write_model_card.py writes MODEL_CARD.md from training.json.
"""
import argparse
import json
import os
import shutil
import struct
import tarfile

from tokenizers import Tokenizer

from make_conversations import ROOT, TEMPLATE_PATH

MODEL = os.path.join(ROOT, "models", "minimax-m2-demo")
GOLDEN = os.path.join(ROOT, "tests", "golden", "demo")
HELDOUT_CHARS = 60000
KEEP_ROWS = 16  # logits rows kept of a long prompt (its end)


def trim_reference(source, target):
    """Copies a safetensors file keeping only the last KEEP_ROWS rows of each `logits.N` longer
    than that (the rows where a long prompt ends), so the committed reference stays small.
    Returns, per prompt, the first row kept."""
    with open(source, "rb") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(size))
        data = f.read()
    tensors, first_rows = {}, {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        blob, shape = data[begin:end], list(entry["shape"])
        if name.startswith("logits.") and shape[0] > KEEP_ROWS:
            row_bytes = len(blob) // shape[0]
            first_rows[int(name.split(".")[1])] = shape[0] - KEEP_ROWS
            blob, shape = blob[-KEEP_ROWS * row_bytes:], [KEEP_ROWS] + shape[1:]
        elif name.startswith("logits."):
            first_rows[int(name.split(".")[1])] = 0
        tensors[name] = (entry["dtype"], shape, blob)
    out_header, offset = {}, 0
    for name in sorted(tensors):
        dtype, shape, blob = tensors[name]
        out_header[name] = {"dtype": dtype, "shape": shape,
                            "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
    encoded = json.dumps(out_header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(target, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)) + encoded)
        for name in sorted(tensors):
            f.write(tensors[name][2])
    return [first_rows[i] for i in sorted(first_rows)]


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu-out", required=True)
    parser.add_argument("--tokenizer", required=True)
    parser.add_argument("--data", required=True, help="encode_corpus.py's --out")
    parser.add_argument("--corpus", required=True, help="gather_corpus.py's --out")
    parser.add_argument("--conversations-summary", required=True,
                        help="make_conversations.py's printed summary, saved as JSON")
    args = parser.parse_args()
    os.makedirs(MODEL, exist_ok=True)
    os.makedirs(GOLDEN, exist_ok=True)
    with tarfile.open(os.path.join(args.gpu_out, "meta.tar")) as tar:
        meta = {m.name: json.load(tar.extractfile(m)) for m in tar.getmembers()}
    for name in ("config.json", "generation_config.json", "model.safetensors.index.json"):
        with open(os.path.join(MODEL, name), "w") as f:
            json.dump(meta[name], f, indent=2)
            f.write("\n")
    for name in ("config.transformers.json",):
        with open(os.path.join(GOLDEN, name), "w") as f:
            json.dump(meta[name], f, indent=2)
            f.write("\n")
    for shard in sorted(set(meta["model.safetensors.index.json"]["weight_map"].values())):
        shutil.copyfile(os.path.join(args.gpu_out, shard), os.path.join(MODEL, shard))
    meta["reference.json"]["logit_rows_from"] = trim_reference(
        os.path.join(args.gpu_out, "reference.safetensors"),
        os.path.join(GOLDEN, "reference.safetensors"))
    with open(os.path.join(GOLDEN, "reference.json"), "w") as f:
        json.dump(meta["reference.json"], f, indent=2)
        f.write("\n")
    shutil.copyfile(args.tokenizer, os.path.join(MODEL, "tokenizer.json"))
    with open(TEMPLATE_PATH, encoding="utf-8") as f:
        template = f.read()
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "]~!b[", "eos_token": "[e~[",
        "unk_token": "]!d~[", "add_bos_token": False, "add_eos_token": False,
        "add_prefix_space": False, "clean_up_tokenization_spaces": False,
        "model_max_length": 4096, "tool_parser_type": "minimax_m2", "chat_template": template,
    }
    with open(os.path.join(MODEL, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer_config, f, indent=2, ensure_ascii=False)
        f.write("\n")

    with open(os.path.join(args.data, "heldout.txt"), encoding="utf-8") as f:
        heldout = f.read(HELDOUT_CHARS)
    with open(os.path.join(GOLDEN, "heldout.txt"), "w", encoding="utf-8") as f:
        f.write(heldout)

    with open(os.path.join(args.gpu_out, "report.json")) as f:
        report = json.load(f)
    tokenizer = Tokenizer.from_file(args.tokenizer)
    for sample in report["samples"]["text"] + report["samples"]["chat"]:
        sample["completion"] = tokenizer.decode(sample["ids"], skip_special_tokens=False)
    with open(os.path.join(args.data, "streams.json")) as f:
        streams = json.load(f)
    with open(os.path.join(args.corpus, "summary.json")) as f:
        corpus = json.load(f)
    with open(os.path.join(args.corpus, "licences.json")) as f:
        licences = json.load(f)
    with open(args.conversations_summary) as f:
        conversations = json.load(f)
    report["data"] = {"streams": streams, "corpus": corpus, "conversations": conversations,
                      "licences": licences}
    with open(os.path.join(MODEL, "training.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print("assembled", MODEL, GOLDEN)


if __name__ == "__main__":
    main()
