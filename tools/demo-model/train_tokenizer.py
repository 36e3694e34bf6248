#!/usr/bin/env python3
"""The demo model's tokenizer: a byte-level BPE learned with Hugging Face `tokenizers` from the
gathered corpus and the generated conversations, with MiniMax-M2's pre-tokenizer and decoder
(copied, as data, from ../shared/testdata's GPT-4o tokenizer.json, whose regex is MiniMax-M2's:
minimax_m2.md §4) and MiniMax-M2's 64 added tokens at the top of the vocabulary, in the order
fourbit's make-model places them (src/text/minimax_special_tokens.cpp): offsets 19/20/34 are
`]~b]`, `[e~[`, `]~!b[`, 50-53 the think and tool-call tags (not special).

Writes --out/tokenizer.json. Run with build/venv/bin/python (tokenizers 0.23.3).
"""
import argparse
import json
import lzma
import os
import random

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GPT4O = os.path.join(os.path.dirname(ROOT), "shared", "testdata", "tokenizers",
                     "gpt4o.tokenizer.json.xz")

# MiniMax-M2's added tokens by offset from the first added id (minimax_m2.md §4): the known
# ids first, then tokenizer_config.json's extra_special_tokens in the order that file lists
# them in the free offsets, then <reserved_N>.
KNOWN = {0: ("]!p~[", True), 19: ("]~b]", True), 20: ("[e~[", True), 21: ("]!d~[", True),
         29: ("]<]start of image[>[", True), 30: ("]<]end of image[>[", True),
         33: ("]<]vision pad[>[", True), 34: ("]~!b[", True), 50: ("<think>", False),
         51: ("</think>", False), 52: ("<minimax:tool_call>", False),
         53: ("</minimax:tool_call>", False)}
REST = ["<code_interpreter>", "<commit_after>", "<commit_before>", "<commit_msg>",
        "<empty_output>", "<filename>", "<fim_middle>", "<fim_pad>", "<fim_prefix>",
        "<fim_suffix>", "<function_call>", "<gh_stars>", "]<]speech[>[", "]<]image[>[",
        "]<]video[>[", "]<]start of speech[>[", "]<]end of speech[>[", "]<]start of video[>[",
        "]<]end of video[>[", "<issue_closed>", "<issue_comment>", "<issue_start>",
        "<jupyter_code>", "<jupyter_output>", "<jupyter_start>", "<jupyter_text>", "<reponame>",
        "<jupyter_error>", "<add_file>", "<delete_file>", "<rename_file>", "<edit_file>",
        "<commit_message>", "<empty_source_file>", "<repo_struct>", "<code_context>",
        "<file_content>", "<source_files>", "<pr_start>", "<review_comment>", "<filepath>",
        "<file_sep>"] + [f"<reserved_{i}>" for i in range(10)]
ADDED_COUNT = 64


def added_tokens():
    rest = iter(REST)
    return [KNOWN[o] if o in KNOWN else (next(rest), True) for o in range(ADDED_COUNT)]


def texts(corpus_dir, conversations, sample_chars, seed):
    """A seeded sample of training documents and conversations (held-out text excluded)."""
    rng = random.Random(seed)
    docs = []
    with open(os.path.join(corpus_dir, "documents.jsonl"), encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            if doc["split"] == "train":
                docs.append(doc["text"])
    with open(conversations, encoding="utf-8") as f:
        chats = [json.loads(line) for line in f]
    rng.shuffle(docs)
    rng.shuffle(chats)
    taken = 0
    for doc, chat in zip(docs, chats[:len(docs)]):
        if taken > sample_chars:
            break
        taken += len(doc) + len(chat)
        yield doc
        yield chat


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", required=True, help="gather_corpus.py's --out")
    parser.add_argument("--conversations", required=True, help="make_conversations.py's --out")
    parser.add_argument("--out", required=True)
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--sample-mb", type=float, default=24)
    parser.add_argument("--seed", type=int, default=6)
    args = parser.parse_args()

    with lzma.open(GPT4O, "rt", encoding="utf-8") as f:
        reference = json.load(f)
    split = reference["pre_tokenizer"]["pretokenizers"][0]
    assert split["type"] == "Split" and split["invert"] and split["behavior"] == "Removed"
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(split["pattern"]["Regex"]), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tokenizer.decoder = decoders.ByteLevel()
    specials = [t for t, _ in added_tokens()]
    trainer = trainers.BpeTrainer(vocab_size=args.vocab_size - ADDED_COUNT, min_frequency=2,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=True)
    # The added tokens are matched before BPE, so they never become merges: strip them from
    # the training text the way the tokenizer will see it.
    def without_added(stream):
        for text in stream:
            for token in specials:
                text = text.replace(token, "\n")
            yield text
    tokenizer.train_from_iterator(
        without_added(texts(args.corpus, args.conversations, args.sample_mb * 1e6, args.seed)),
        trainer=trainer)
    learned = tokenizer.get_vocab_size()
    if learned != args.vocab_size - ADDED_COUNT:
        raise SystemExit(f"BPE learned {learned} tokens, wanted {args.vocab_size - ADDED_COUNT}")
    tokenizer.add_tokens([AddedToken(content, special=special, normalized=False)
                          for content, special in added_tokens()])
    data = json.loads(tokenizer.to_str())
    # The exact pre-tokenizer and decoder JSON of the reference (data, not code).
    data["pre_tokenizer"] = reference["pre_tokenizer"]
    data["decoder"] = reference["decoder"]
    for offset, (entry, (content, special)) in enumerate(zip(data["added_tokens"], added_tokens())):
        assert entry["content"] == content and entry["id"] == learned + offset
        entry["special"] = special
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "tokenizer.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1)
        f.write("\n")
    check = Tokenizer.from_file(path)
    sample = "]~b]ai\n<think>\nThe weather in São Paulo is 23°C.</think>\n\ndef f(x):\n    return x[e~["
    ids = check.encode(sample, add_special_tokens=False).ids
    assert check.decode(ids, skip_special_tokens=False) == sample, "round trip failed"
    print(json.dumps({"vocab_size": check.get_vocab_size(), "sample_ids": len(ids),
                      "eos_id": check.token_to_id("[e~["), "bos_id": check.token_to_id("]~b]")}))


if __name__ == "__main__":
    main()
