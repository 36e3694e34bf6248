#!/usr/bin/env python3
"""Writes tests/golden/tokenizers/expected.json (and tiny.tokenizer.json): what Hugging Face
`tokenizers` gives for every corpus text on every reference vocabulary, the reference for
src/text/tokenizer.* (tests/text/tokenizer_test.cpp).

Run from the repository root with the project's venv:
    build/venv/bin/python tools/reference/make_tokenizer_reference.py
Deterministic: the random texts and id sequences come from a fixed seed.
"""
import copy
import json
import lzma
import random
import sys
from pathlib import Path

import tokenizers
from tokenizers import Tokenizer

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "tokenizers"
VOCABULARIES = ["qwen3", "llama3", "deepseek_v3", "gpt4o"]
SEED = 20261126


def load_json(name):
    with lzma.open(GOLDEN / f"{name}.tokenizer.json.xz", "rt", encoding="utf-8") as f:
        return f.read()


def random_texts(rng, count):
    """Seeded mixtures of the character classes the pre-tokenizers care about."""
    pools = [
        "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789",
        " ", "  ", "\n", "\r\n", "\t", "'s", "'LL", "'t", ".,;:!?-_/\\\"'()[]{}<>@#$%^&*+=|~`",
        "\u00e9\u00fc\u00df\u00e7\u0131\u0130", "e\u0301a\u0308\u0323", "\u4f60\u597d\u4e16\u754c\u4e2d\u6587",
        "\u3053\u3093\u306b\u3061\u306f\u30ab\u30bf", "\uc548\ub155\ud558\uc138\uc694", "\u0645\u0631\u062d\u0628\u0627",
        "\u041f\u0440\u0438\u0432\u0435\u0442", "\U0001F600\U0001F44D\U0001F3FD\u200d\U0001F468\u2764\ufe0f",
        "\u00a0\u3000\u2028\u0085\u200b\ufeff", "\u0661\u0662\uff11\u00b2\u2160\u00bd",
        "<|im_end|>", "<|endoftext|>", "<think>", "<|eot_id|>", "<\uff5cUser\uff5c>", "<|im_", "|>",
        "\x00\x01\x7f", "\ufffd\uffff\U0010FFFF\ue000",
    ]
    texts = []
    for _ in range(count):
        n = rng.randint(1, 60)
        texts.append("".join(rng.choice(rng.choice(pools)) if rng.random() < 0.7
                             else rng.choice(pools) for _ in range(n)))
    return texts


def random_id_sequences(rng, tokenizer, count):
    """Random ids (byte tokens included, so decodes meet broken UTF-8), each sequence also as
    ids of a real text with a few dropped, to split multi-byte characters."""
    size = tokenizer.get_vocab_size(with_added_tokens=True)
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    valid = sorted(vocab.values())
    byte_tokens = [vocab[c] for c in BYTE_CHARS if c in vocab]
    sequences = []
    for i in range(count):
        n = rng.randint(1, 24)
        if i % 2 == 0:
            seq = [rng.choice(byte_tokens) if rng.random() < 0.5 else rng.choice(valid)
                   for _ in range(n)]
        else:
            text = "".join(rng.choice("\u4f60\u597d\U0001F600\u00e9ab <|im_end|>") for _ in range(n))
            seq = tokenizer.encode(text, add_special_tokens=False).ids
            seq = [t for t in seq if rng.random() < 0.8]
        sequences.append(seq)
    assert max(max(s, default=0) for s in sequences) < size
    return sequences


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


BYTE_CHARS = list(bytes_to_unicode().values())


# Byte strings that are not UTF-8: fourbit encodes them as their U+FFFD-replaced form, which is
# what Python's errors="replace" makes (one U+FFFD per maximal invalid subpart).
INVALID_UTF8 = [
    b"\xff", b"abc\xe4\xb8", b"\xe4\xb8abc", b"\xc0\xaf", b"\xed\xa0\x80x", b"\xf4\x90\x80\x80",
    b"\xf0\x9f\x98", b"a\x80\x80b", b"\xe0\x80\xaf", b"hi <|im_end|>\xfe\xff",
    b"\xf0\x9f\x98\x80\xf0\x9f", b"\xc3", b"caf\xc3 \xa9", b"\xf8\x88\x80\x80\x80",
    b"\xe2\x82\xe2\x82\xac", b"\xf0\x90\x80\xf0\x90\x80\x80 x",
]


def describe(tokenizer, text):
    encoding = tokenizer.encode(text, add_special_tokens=False)
    ids = encoding.ids
    normalized = tokenizer.normalizer.normalize_str(text) if tokenizer.normalizer else text
    pieces = [p for p, _ in tokenizer.pre_tokenizer.pre_tokenize_str(normalized)]
    return {
        "ids": ids,
        "decode": tokenizer.decode(ids, skip_special_tokens=False),
        "decode_skip_special": tokenizer.decode(ids, skip_special_tokens=True),
        "pieces": pieces,
    }


def make_tiny(qwen_json):
    """A small byte-level BPE: the 256 byte characters and Qwen3's first 3000 merges."""
    source = json.loads(qwen_json)
    vocab = {c: i for i, c in enumerate(BYTE_CHARS)}
    merges = []
    for a, b in source["model"]["merges"][:3000]:
        merges.append(f"{a} {b}")
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
    n = len(vocab)
    added = [
        {"id": n, "content": "<|end|>", "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True},
        {"id": n + 1, "content": "<tool>", "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": False},
    ]
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": copy.deepcopy(source["pre_tokenizer"]),
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }


def byte_level(add_prefix_space=False, use_regex=False):
    return {"type": "ByteLevel", "add_prefix_space": add_prefix_space, "trim_offsets": False,
            "use_regex": use_regex}


def split(pattern, behavior, invert=False, kind="Regex"):
    return {"type": "Split", "pattern": {kind: pattern}, "behavior": behavior, "invert": invert}


def added(id_, content, special=False, normalized=False, lstrip=False, rstrip=False,
          single_word=False):
    return {"id": id_, "content": content, "single_word": single_word, "lstrip": lstrip,
            "rstrip": rstrip, "normalized": normalized, "special": special}


def tiny_variants(tiny):
    """Each variant: top-level keys replaced (`set`) and model fields replaced (`model`)."""
    n = len(tiny["model"]["vocab"])
    words = r"\p{L}+|\p{N}+|[^\s\p{L}\p{N}]+"
    return [
        {"name": "base", "set": {}, "model": {}},
        {"name": "ignore_merges", "set": {}, "model": {"ignore_merges": True}},
        {"name": "gpt2_byte_level", "model": {},
         "set": {"pre_tokenizer": byte_level(add_prefix_space=True, use_regex=True)}},
        {"name": "byte_level_regex_no_prefix", "model": {},
         "set": {"pre_tokenizer": byte_level(use_regex=True)}},
        {"name": "split_then_prefix_space", "model": {},
         "set": {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
             split(words, "Isolated"), byte_level(add_prefix_space=True)]}}},
        {"name": "split_removed", "model": {},
         "set": {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
             split(r"\s+", "Removed"), byte_level()]}}},
        {"name": "split_merged_with_previous", "model": {},
         "set": {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
             split(r"[\s,.]", "MergedWithPrevious"), byte_level()]}}},
        {"name": "split_merged_with_next", "model": {},
         "set": {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
             split(r"\s", "MergedWithNext"), byte_level()]}}},
        {"name": "split_contiguous", "model": {},
         "set": {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
             split(r"[\s\p{P}]", "Contiguous"), byte_level()]}}},
        {"name": "split_isolated_invert", "model": {},
         "set": {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
             split(r"\p{L}+", "Isolated", invert=True), byte_level()]}}},
        {"name": "split_string_pattern", "model": {},
         "set": {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
             split(". ", "MergedWithPrevious", kind="String"), split(" ", "Removed", kind="String"),
             byte_level()]}}},
        {"name": "single_split_no_sequence", "model": {},
         "set": {"pre_tokenizer": byte_level(use_regex=True)}},
        {"name": "nfc_sequence_and_added_flags", "model": {},
         "set": {"normalizer": {"type": "Sequence", "normalizers": [{"type": "NFC"}]},
                 "added_tokens": tiny["added_tokens"] + [
                     added(n + 2, "<ls>", lstrip=True),
                     added(n + 3, "<rs>", rstrip=True, special=True),
                     added(n + 4, "<both>", lstrip=True, rstrip=True),
                     added(n + 5, "swz", single_word=True),
                     added(n + 6, "cafe\u0301", normalized=True),
                     added(n + 7, "e\u0301x", normalized=False),
                     added(n + 8, "<tool>x", normalized=True),
                     added(n + 9, "Hello", normalized=True, special=True),
                 ]}},
    ]


TINY_TEXTS = [
    "hello  <ls>  world", "x<ls>y", "  <rs>  z", "a <both> b", "<both>", "<ls><rs><both>",
    "swz", "a swz b", "swzing", "answz", "swz.swz", "swz_swz", "(swz)", "swz1", "\u00e9swz",
    "swz\u0301", "swz\u00a0x", "x\u3000swz",
    "cafe\u0301 caf\u00e9", "e\u0301x ex \u00e9x", "<tool>x <tool>y <tool>", "Hello, world! Hello",
    "<|end|>Hello<|end|>", "Hello. World. Again.. end", "a,b, c. d", "  lead and trail  ",
    "one  two   three\n\nfour\tfive", "I'm here, aren't you?", "x\u3000y\u00a0z",
]


def apply_variant(base, variant):
    data = copy.deepcopy(base)
    data.update(copy.deepcopy(variant["set"]))
    data["model"].update(copy.deepcopy(variant["model"]))
    return data


def main():
    rng = random.Random(SEED)
    corpus = json.loads((GOLDEN / "corpus.json").read_text(encoding="utf-8"))
    cases = [{"name": c["name"], "text": c["text"]} for c in corpus]
    cases += [{"name": f"random_{i}", "text": t} for i, t in enumerate(random_texts(rng, 60))]

    result = {
        "generator": "tools/reference/make_tokenizer_reference.py",
        "tokenizers_version": tokenizers.__version__,
        "vocabularies": {},
        "cases": [],
        "invalid_utf8_cases": [],
        "decode_cases": {},
        "tiny_variants": [],
    }
    loaded = {}
    for name in VOCABULARIES:
        tokenizer = Tokenizer.from_str(load_json(name))
        loaded[name] = tokenizer
        vocab = tokenizer.get_vocab(with_added_tokens=True)
        result["vocabularies"][name] = {
            "file": f"{name}.tokenizer.json.xz",
            "vocab_size": max(vocab.values()) + 1,
        }
    for case in cases:
        entry = {"name": case["name"], "text": case["text"], "results": {}}
        for name, tokenizer in loaded.items():
            entry["results"][name] = describe(tokenizer, case["text"])
        result["cases"].append(entry)
    result["invalid_utf8_cases"] = []
    for raw in INVALID_UTF8:
        replaced = raw.decode("utf-8", errors="replace")
        result["invalid_utf8_cases"].append({
            "hex": raw.hex(), "replaced": replaced,
            "ids": {name: t.encode(replaced, add_special_tokens=False).ids
                    for name, t in loaded.items()}})
    for name, tokenizer in loaded.items():
        result["decode_cases"][name] = [
            {"ids": ids, "decode": tokenizer.decode(ids, skip_special_tokens=False),
             "decode_skip_special": tokenizer.decode(ids, skip_special_tokens=True)}
            for ids in random_id_sequences(rng, tokenizer, 40)]

    tiny = make_tiny(load_json("qwen3"))
    (GOLDEN / "tiny.tokenizer.json").write_text(json.dumps(tiny, ensure_ascii=False),
                                                 encoding="utf-8")
    tiny_texts = TINY_TEXTS + [c["text"] for c in corpus if len(c["text"]) < 400]
    for variant in tiny_variants(tiny):
        tokenizer = Tokenizer.from_str(json.dumps(apply_variant(tiny, variant)))
        variant = dict(variant)
        variant["cases"] = [dict(text=t, **describe(tokenizer, t)) for t in tiny_texts]
        result["tiny_variants"].append(variant)

    out = GOLDEN / "expected.json"
    out.write_text(json.dumps(result, ensure_ascii=False, indent=None, separators=(",", ":")),
                   encoding="utf-8")
    print(f"wrote {out} ({out.stat().st_size} bytes): {len(cases)} texts x "
          f"{len(VOCABULARIES)} vocabularies, {len(result['tiny_variants'])} tiny variants",
          file=sys.stderr)


if __name__ == "__main__":
    main()
