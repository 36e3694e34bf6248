#!/usr/bin/env python3
"""Writes models/minimax-m2-demo/MODEL_CARD.md from the folder's config.json and training.json
(assemble_model.py) and tests/golden/demo/reference.json: every number in the card comes from
those files. --serve-rates adds the tool-call rates measured through `fourbit serve`
(tests/server/test_demo_model.py) with --serve-weather, --serve-no-tool and --serve-machine."""
import argparse
import collections
import json
import os

from tokenizers import Tokenizer

from make_conversations import ROOT

MODEL = os.path.join(ROOT, "models", "minimax-m2-demo")
GOLDEN = os.path.join(ROOT, "tests", "golden", "demo")


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def tool_rates(chat):
    weather = [c for c in chat if c["kind"] == "weather"]
    other = [c for c in chat if c["kind"] != "weather"]
    called = sum('<invoke name="get_weather">' in c["completion"] for c in weather)
    wrongly = sum("<minimax:tool_call>" in c["completion"] for c in other)
    return called, len(weather), wrongly, len(other)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve-weather", default="", help="e.g. 100%%")
    parser.add_argument("--serve-no-tool", default="", help="e.g. 0%%")
    parser.add_argument("--serve-machine", default="")
    parser.add_argument("--other-run", help="another train_model.py --out, not shipped")
    parser.add_argument("--other-tokenizer", help="that run's tokenizer.json")
    parser.add_argument("--other-note", default="", help="what that run changed, and why not")
    args = parser.parse_args()
    config = load(os.path.join(MODEL, "config.json"))
    training = load(os.path.join(MODEL, "training.json"))
    reference = load(os.path.join(GOLDEN, "reference.json"))
    summary, run = training["summary"], training["args"]
    data = training["data"]
    tokens = data["streams"]["tokens"]
    chars = data["corpus"]["chars"]
    total_chars = sum(entry["chars"] for entry in data["licences"].values())
    licence_count = collections.Counter()
    for entry in data["licences"].values():
        for name in entry["licences"]:
            licence_count[name] += 1
    serve = {"weather": args.serve_weather, "no_tool": args.serve_no_tool,
             "machine": args.serve_machine} if args.serve_weather else {}
    called, n_weather, wrongly, n_other = tool_rates(training["samples"]["chat"])
    bytes_total = sum(os.path.getsize(os.path.join(MODEL, f)) for f in os.listdir(MODEL)
                      if f.endswith(".safetensors"))

    out = []
    w = out.append
    w("# minimax-m2-demo\n")
    w("A small model of the exact MiniMax-M2 architecture (`MiniMaxM2ForCausalLM`), trained by the "
      "fourbit project itself so that fourbit works out of the box and its tests run on a model "
      "that writes text rather than noise. It is the default model of `fourbit serve` and of "
      "`scripts/quickstart.sh serve`. It is a demo: it writes recognisable but often repetitive "
      "English and code, knows the chat and tool-call format well, and gets arithmetic wrong.\n")
    w("Made by `tools/demo-model/` (this card by `write_model_card.py` from `training.json`).\n")
    w("## Architecture\n")
    w("| field | value |\n|---|---|")
    for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "head_dim", "rotary_dim", "rope_theta",
                "num_local_experts", "num_experts_per_tok", "intermediate_size", "scoring_func",
                "use_routing_bias", "qk_norm_type", "max_position_embeddings"):
        w(f"| {key} | {config[key]} |")
    w(f"\n{summary['parameters']:,} parameters; {bytes_total / 1e6:.1f} MB of safetensors (BF16, the "
      "router gate and routing bias F32 as MiniMax ships them), official tensor names, "
      "config.json in the official layout (`rotary_dim`), generation_config.json with "
      "`]~b]`/`[e~[` as bos/eos. The routing bias is trained by aux-loss-free balancing "
      f"(bias += {run['bias_rate']} * sign(mean load - load) after each step), so it changes "
      "which experts are chosen.\n")
    w("Tokenizer: a byte-level BPE of 8,128 learned tokens, trained with Hugging Face "
      "`tokenizers` 0.23.3 on a sample of the training text, with MiniMax-M2's pre-tokenizer "
      "regex and byte-level decoder, and MiniMax-M2's 64 added tokens (`]~!b[`, `]~b]`, `[e~[`, "
      "`<think>`, `</think>`, `<minimax:tool_call>`, `</minimax:tool_call>`, ...) at ids "
      "8128-8191 in fourbit's order. tokenizer_config.json holds the official MiniMax-M2 chat "
      "template.\n")
    w("## Data and licences\n")
    w("Nothing of the corpus is committed; `gather_corpus.py` collects it from the Debian 12 "
      "machine the project builds on, `make_conversations.py` generates the conversations.\n")
    w("| part | characters (train) | tokens (train) | held-out tokens |\n|---|---|---|---|")
    names = {"man": "man pages (groff-rendered, sections 1/5/7/8)",
             "doc": "/usr/share/doc (README, NEWS, *.txt/md/rst)",
             "python": "Python 3.11 standard library sources", "c": "C headers (/usr/include)",
             "licence": "/usr/share/common-licenses"}
    for kind, label in names.items():
        w(f"| {label} | {chars.get(kind + '.train', 0):,} | {tokens.get('train.' + kind, 0):,} | "
          f"{tokens.get('heldout.' + kind, 0):,} |")
    conv = data["conversations"]
    w(f"| generated conversations ({sum(conv['conversations'].values()):,}: "
      + ", ".join(f"{k} {v:,}" for k, v in conv["conversations"].items())
      + f") | {conv['chars']:,} | {tokens.get('train.chat', 0):,} | - |")
    w("\nDocuments are deduplicated (sha256); a document is held out when the first byte of its "
      "sha256 is below 5 (about 2%). The conversations are in MiniMax-M2's chat format, rendered "
      "with the official template: system prompts, tool definitions, user requests, `<think>` "
      "reasoning, `<minimax:tool_call>` calls whose arguments are copied from the request, tool "
      "results and final answers, and requests where the right answer is not to call a tool "
      "(general questions, arithmetic, what a command does, weather knowledge, a weather or time "
      "question when no such tool is listed).\n")
    w(f"The text comes from {len(data['licences'])} Debian packages; their copyright files name, "
      "most often: " + ", ".join(f"{name} ({n})" for name, n in licence_count.most_common(12))
      + ". The largest shares of the text: " + ", ".join(
          f"{name} {entry['chars'] / total_chars:.0%}" for name, entry in sorted(
              data["licences"].items(), key=lambda item: -item[1]["chars"])[:5])
      + " (google-cloud-cli, installed on the build machine from Google's own repository "
      "under Apache-2.0, owns 16,631 of the 18,022 section-1 man pages here, so most of the man "
      "page sample is its reference pages: capping pages per package is the obvious next "
      "step). The per-package list is in training.json (`data.licences`). The weights are a "
      "statistical summary of that text, made for testing software; treat them as derived from "
      "free-software documentation and code under those licences.\n")
    w("## Training\n")
    w(f"One run on one {training['device']} (torch {training['torch']}, transformers "
      f"{training['transformers']}, experts implementation `{summary['experts_implementation']}`): "
      f"{summary['steps']} steps of {run['batch']} x {run['length']} tokens "
      f"({summary['steps'] * run['batch'] * run['length'] / 1e6:.0f}M tokens, about "
      f"{summary['steps'] * run['batch'] * run['length'] / (sum(v for k, v in tokens.items() if k.startswith('train.'))):.0f} "
      f"passes over the {summary['train_tokens_in_stream']:,}-token stream) in "
      f"{summary['train_seconds']} s; AdamW (betas 0.9/0.95, weight decay {run['weight_decay']} "
      f"on matrices), peak learning rate {run['lr']}, {run['warmup']} warmup steps then cosine "
      f"decay to 10%, gradient clipping 1.0, bf16 autocast with f32 weights, random windows of "
      f"the token stream, seed {run['seed']}.\n")
    w("Loss curve (train loss of the step's batch; held-out loss on 64 windows of 1024 tokens):\n")
    w("| step | tokens | train loss | held-out loss |\n|---|---|---|---|")
    for entry in training["loss_curve"]:
        if "heldout_loss" in entry:
            w(f"| {entry['step']} | {entry['tokens'] / 1e6:.0f}M | {entry['loss']} | "
              f"{entry['heldout_loss']} |")
    w("\nThe train loss is lower than the held-out loss mostly because half the training tokens "
      "are the very regular generated conversations; the held-out loss stops improving after "
      "about 2,000 steps (the text has been seen many times).\n")
    w("## Held-out perplexity\n")
    w(f"- {summary['heldout_perplexity_bf16']:.2f}: all {summary['heldout_tokens']:,} held-out "
      f"tokens (man pages, docs, Python, C), windows of {summary['window']} tokens each from "
      "scratch, bf16 autocast on the GPU (train_model.py).")
    w(f"- {reference['ppl_float64']:.3f}: the first {reference['ppl_windows']} windows of "
      f"{reference['ppl_window']} tokens, transformers in float64 on the saved weights "
      "(tests/golden/demo/reference.json); fourbit gives the same number within 1e-4 relative "
      "(tests/model/demo_model_test.cpp, HeldOutPerplexityMatchesTransformers).\n")
    w("## Sample outputs\n")
    w("Greedy continuations by transformers right after training (fourbit's are the same: "
      "`GreedyContinuationMatchesTransformers`):\n")
    for sample in training["samples"]["text"]:
        w(f"**{json.dumps(sample['prompt'])}**\n\n~~~~\n{sample['prompt']}{sample['completion']}\n~~~~\n")
    w("## Tool calling\n")
    w(f"Held-out requests (tools/demo-model/heldout_requests.py, phrasings never trained on), the "
      f"get_weather tool listed, greedy: transformers right after training called get_weather in "
      f"{called}/{n_weather} weather requests and a tool in {wrongly}/{n_other} requests needing "
      "none." + (
          f" Through `fourbit serve` and the openai client (tests/server/test_demo_model.py, "
          f"{serve.get('machine', '')}): {serve['weather']} of the weather requests came back as a "
          f"parsed get_weather call with the requested city; {serve['no_tool']} of the no-tool "
          "requests called a tool." if serve else ""))
    example = next(c for c in training["samples"]["chat"] if c["kind"] == "weather")
    w(f"\nFor example, {json.dumps(example['request'])} after the generation prompt "
      f"`]~b]ai\\n<think>\\n`:\n\n```\n{example['completion']}\n```\n")
    if args.other_run:
        other = load(os.path.join(args.other_run, "report.json"))
        tokenizer = Tokenizer.from_file(args.other_tokenizer)
        for sample in other["samples"]["chat"]:
            sample["completion"] = tokenizer.decode(sample["ids"], skip_special_tokens=False)
        o_called, o_weather, o_wrongly, o_other = tool_rates(other["samples"]["chat"])
        o = other["summary"]
        w("## Another run, not shipped\n")
        w(f"{args.other_note} Same script and settings, {o['steps']} steps in "
          f"{o['train_seconds']} s on the {o['train_tokens_in_stream']:,}-token stream: held-out "
          f"perplexity {o['heldout_perplexity_bf16']:.2f} over its own {o['heldout_tokens']:,} "
          f"held-out tokens (its own tokenizer); get_weather called in {o_called}/{o_weather} "
          f"weather requests and a tool in {o_wrongly}/{o_other} requests needing none.\n")
    w("## Reproduce\n")
    w("On the build machine (Debian 12, `bash scripts/setup.sh` done), from the repository root:\n")
    w("```sh\nV=build/venv/bin/python; W=tools/demo-model/work; cd tools/demo-model\n"
      "python3 gather_corpus.py --out work/corpus --man-mb 6 --doc-mb 10\n"
      "../../$V make_conversations.py --out work/conversations.jsonl --count 24000\n"
      "../../$V train_tokenizer.py --corpus work/corpus --conversations work/conversations.jsonl --out work/tokenizer\n"
      "../../$V encode_corpus.py --corpus work/corpus --conversations work/conversations.jsonl "
      "--tokenizer work/tokenizer/tokenizer.json --out work/data\n"
      "../../$V make_prompts.py --tokenizer work/tokenizer/tokenizer.json --heldout-text work/data/heldout.txt --out work/prompts.json\n"
      "```\n")
    w("Then on a GPU machine with torch and transformers 5.x, with train_model.py, "
      "../reference/make_minimax_m2_reference.py, work/prompts.json and work/data/*.xz beside "
      f"each other:\n\n```sh\npython3 train_model.py --data data --prompts prompts.json --out OUT "
      f"--steps {summary['steps']} --seed {run['seed']}\n```\n")
    w("and back here: `assemble_model.py --gpu-out OUT ...` and `write_model_card.py`. The corpus "
      "depends on the packages installed on the machine; the seeds fix everything else.")
    with open(os.path.join(MODEL, "MODEL_CARD.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")
    print("wrote", os.path.join(MODEL, "MODEL_CARD.md"))


if __name__ == "__main__":
    main()
