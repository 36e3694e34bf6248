#!/usr/bin/env python3
"""Trains the bundled demo model, a small MiniMax-M2, with transformers' MiniMaxM2ForCausalLM
on one GPU (torch + transformers 5.x: the GPU machine; never in CI), then writes everything the
repository keeps and tests:

  --out/model-0000N-of-00002.safetensors, model.safetensors.index.json   BF16 weights (router
        gate and routing bias F32, as MiniMax ships them) under the official tensor names
  --out/meta.tar   config.json (official layout: rotary_dim), generation_config.json,
        config.transformers.json, reference.json (versions, margins, perplexities)
  --out/reference.safetensors   float64-computed logits of prompts, a greedy continuation and
        per-window held-out losses, on the bf16-rounded weights (as make_minimax_m2_reference.py)
  --out/report.json   loss curve, held-out perplexity, samples, tool-call rates on held-out
        prompts, timings

Model: MiniMax-M2's architecture at small size (partial rotary, per-layer QK-norm, sigmoid
router with a routing bias trained by aux-loss-free balancing, GQA). Training: AdamW, bf16
autocast, warmup then cosine decay, random 1024-token windows of the pre-tokenized stream, a
fixed seed. The step count is fixed by --steps, or (--time-budget) chosen after the first
--probe-steps steps so that training ends within the budget; report.json records the count
so that `--steps N` reproduces the run.
"""
import argparse
import io
import json
import lzma
import math
import os
import sys
import tarfile
import time
import traceback

import torch
import transformers
from safetensors.torch import save_file
from transformers import MiniMaxM2Config, MiniMaxM2ForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_minimax_m2_reference import RoutingMargins, from_official, to_official  # noqa: E402

SPEC = dict(vocab_size=8192, hidden_size=256, intermediate_size=96, num_hidden_layers=6,
            num_attention_heads=8, num_key_value_heads=2, head_dim=32, rotary_dim=16,
            num_local_experts=16, num_experts_per_tok=4, fp8=False)
ROPE_THETA = 5e6
MAX_POSITIONS = 4096


def hf_config(spec, attention):
    config = MiniMaxM2Config(
        vocab_size=spec["vocab_size"], hidden_size=spec["hidden_size"],
        intermediate_size=spec["intermediate_size"], num_hidden_layers=spec["num_hidden_layers"],
        num_attention_heads=spec["num_attention_heads"],
        num_key_value_heads=spec["num_key_value_heads"], head_dim=spec["head_dim"],
        num_local_experts=spec["num_local_experts"],
        num_experts_per_tok=spec["num_experts_per_tok"], rms_norm_eps=1e-6,
        max_position_embeddings=MAX_POSITIONS, tie_word_embeddings=False,
        bos_token_id=spec["bos_token_id"], eos_token_id=spec["eos_token_id"],
        router_jitter_noise=0.0,
        rope_parameters={"rope_type": "default", "rope_theta": ROPE_THETA,
                         "partial_rotary_factor": spec["rotary_dim"] / spec["head_dim"]})
    config._attn_implementation = attention
    return config


def official_config(spec):
    """config.json as MiniMax publishes it (minimax_m2.md §1.1), at the demo's size."""
    n = spec["num_hidden_layers"]
    return {
        "architectures": ["MiniMaxM2ForCausalLM"], "model_type": "minimax_m2",
        "vocab_size": spec["vocab_size"], "hidden_size": spec["hidden_size"],
        "intermediate_size": spec["intermediate_size"], "num_hidden_layers": n,
        "num_attention_heads": spec["num_attention_heads"],
        "num_key_value_heads": spec["num_key_value_heads"], "head_dim": spec["head_dim"],
        "num_local_experts": spec["num_local_experts"],
        "num_experts_per_tok": spec["num_experts_per_tok"], "rotary_dim": spec["rotary_dim"],
        "rope_theta": ROPE_THETA, "rms_norm_eps": 1e-6, "hidden_act": "silu",
        "max_position_embeddings": MAX_POSITIONS, "scoring_func": "sigmoid",
        "use_routing_bias": True, "use_qk_norm": True, "qk_norm_type": "per_layer",
        "shared_intermediate_size": 0, "attn_type_list": [1] * n, "sliding_window": None,
        "tie_word_embeddings": False, "use_mtp": False, "bos_token_id": None,
        "eos_token_id": None, "torch_dtype": "bfloat16",
        "transformers_version": transformers.__version__,
    }


def read_stream(path):
    with lzma.open(path, "rb") as f:
        data = f.read()
    return torch.frombuffer(bytearray(data), dtype=torch.int16).to(torch.int32) & 0xFFFF


class Balancer:
    """Aux-loss-free load balancing (DeepSeek-V3 style, which MiniMax-M2's routing bias comes
    from): after each step, raise the bias of experts that got fewer tokens than the mean and
    lower it for those that got more. The bias changes selection only, never the weights."""

    def __init__(self, model, rate):
        self.rate = rate
        self.counts = {}
        self.layers = [layer.mlp for layer in model.model.layers]
        for i, moe in enumerate(self.layers):
            moe.gate.register_forward_hook(self.hook(i))

    def hook(self, i):
        def record(module, inputs, output):
            index = output[2]
            count = torch.bincount(index.flatten(), minlength=module.num_experts)
            self.counts[i] = self.counts.get(i, 0) + count
        return record

    @torch.no_grad()
    def step(self, measure=False):
        """Updates the biases; with `measure`, returns the largest load / mean load of a layer
        in this step (1 = perfectly balanced)."""
        imbalance = 0.0
        for i, moe in enumerate(self.layers):
            count = self.counts[i].float()
            moe.e_score_correction_bias += self.rate * torch.sign(count.mean() - count)
            if measure:
                imbalance = max(imbalance, (count.max() / count.mean()).item())
        self.counts = {}
        return imbalance


def lr_at(step, total, peak, warmup, floor=0.1):
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def batches(stream, batch, length, generator):
    while True:
        starts = torch.randint(0, stream.numel() - length - 1, (batch,), generator=generator)
        rows = torch.stack([stream[s:s + length + 1] for s in starts.tolist()])
        yield rows.long()


@torch.no_grad()
def heldout_loss(model, stream, length, device, limit=None):
    """Mean next-token loss over consecutive non-overlapping windows (each from scratch)."""
    model.eval()
    total, count = 0.0, 0
    windows = (stream.numel() - 1) // length
    if limit:
        windows = min(windows, limit)
    for w in range(0, windows, 32):
        rows = torch.stack([stream[i * length:i * length + length + 1]
                            for i in range(w, min(windows, w + 32))]).long().to(device)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(rows[:, :-1], use_cache=False).logits.float()
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                 rows[:, 1:].reshape(-1), reduction="sum")
        total += loss.item()
        count += rows[:, 1:].numel()
    model.train()
    return total / count


@torch.no_grad()
def init_weights(model, spec, generator):
    """GPT-2 style: N(0, 0.02) matrices and embeddings, the residual outputs (o_proj, expert
    down projections) scaled by 1/sqrt(2 * layers), unit norms, zero routing bias. Explicit,
    so that the run does not depend on a transformers version's defaults."""
    residual = 0.02 / math.sqrt(2 * spec["num_hidden_layers"])
    for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
        if "rotary_emb" in name:
            continue
        if name.endswith("norm.weight"):
            tensor.fill_(1.0)
        elif name.endswith("e_score_correction_bias"):
            tensor.zero_()
        elif name.endswith(("o_proj.weight", "experts.down_proj")):
            tensor.copy_(torch.randn(tensor.shape, generator=generator) * residual)
        elif tensor.dim() >= 2:
            tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.02)
        else:
            raise SystemExit(f"no initialisation for {name} {tuple(tensor.shape)}")


def choose_experts_implementation(model, sample):
    """grouped_mm when transformers offers it and it matches eager here; else eager."""
    config = model.config
    results = {}
    for name in ("eager", "grouped_mm"):
        try:
            config._experts_implementation = name
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = model(sample, labels=sample).loss
            loss.backward()  # the backward pass must work too
            model.zero_grad(set_to_none=True)
            results[name] = loss.item()
        except Exception as error:  # noqa: BLE001 (any failure: stay with eager)
            print(f"experts implementation {name}: {error}", flush=True)
    if "grouped_mm" in results and abs(results["grouped_mm"] - results["eager"]) < 1e-2:
        config._experts_implementation = "grouped_mm"
    else:
        config._experts_implementation = "eager"
    print(f"experts implementation: {config._experts_implementation} {results}", flush=True)
    return config._experts_implementation


def train(args, spec, device):
    torch.manual_seed(args.seed)
    stream = read_stream(os.path.join(args.data, "train.u16.xz"))
    heldout = read_stream(os.path.join(args.data, "heldout.u16.xz"))
    print(f"train tokens {stream.numel()}, held-out tokens {heldout.numel()}", flush=True)
    model = MiniMaxM2ForCausalLM(hf_config(spec, "sdpa"))
    init_weights(model, spec, torch.Generator().manual_seed(args.seed))
    model = model.to(device)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    generator = torch.Generator().manual_seed(args.seed)
    data = batches(stream, args.batch, args.length, generator)
    sample = next(batches(stream, 4, 256, torch.Generator().manual_seed(1))).to(device)
    experts = choose_experts_implementation(model, sample)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embed" not in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=args.lr, betas=(0.9, 0.95), eps=1e-8, fused=True)
    balancer = Balancer(model, args.bias_rate)
    total = args.steps or 10**9
    log, start = [], time.time()
    step = 0
    while step < total:
        rows = next(data).to(device, non_blocking=True)
        lr = lr_at(step, total, args.lr, args.warmup)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = next_token_loss(model, rows)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        imbalance = balancer.step(measure=step % args.log_every == 0 or step == total)
        if step == args.probe_steps and not args.steps:
            per_step = (time.time() - start) / step
            total = max(args.warmup + 100, int(args.time_budget / per_step))
            print(f"{per_step * 1000:.1f} ms/step: training {total} steps", flush=True)
        if step % args.log_every == 0 or step == total:
            entry = {"step": step, "loss": round(loss.item(), 4), "lr": lr,
                     "grad_norm": round(norm.item(), 3), "max_expert_load": round(imbalance, 2),
                     "seconds": round(time.time() - start, 1),
                     "tokens": step * args.batch * args.length}
            if step % (args.log_every * 10) == 0 or step == total:
                entry["heldout_loss"] = round(heldout_loss(model, heldout, args.length, device,
                                                           limit=64), 4)
            log.append(entry)
            print(json.dumps(entry), flush=True)
    seconds = time.time() - start
    final = heldout_loss(model, heldout, args.length, device)
    summary = {"parameters": n_params, "steps": step, "train_seconds": round(seconds, 1),
               "experts_implementation": experts, "train_tokens_in_stream": stream.numel(),
               "heldout_tokens": heldout.numel(), "heldout_loss_bf16": final,
               "heldout_perplexity_bf16": math.exp(final), "window": args.length}
    print(json.dumps(summary), flush=True)
    return model, heldout, log, summary


def next_token_loss(model, rows):
    logits = model(rows[:, :-1], use_cache=False).logits
    return torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                                             rows[:, 1:].reshape(-1))


def write_outputs(model, spec, args, heldout, prompts):
    official, exact = to_official(model.cpu().float(), spec)
    # MiniMax ships the router gate and routing bias in F32 (minimax_m2.md §2.4): keep them so.
    for name, tensor in model.state_dict().items():
        if ".mlp.gate.weight" in name or ".mlp.e_score_correction_bias" in name:
            target = name.replace(".mlp.", ".block_sparse_moe.")
            official[target] = tensor.detach().float().contiguous()
            exact[target] = tensor.detach().float().double()
    # Two shards of about equal bytes, each under the transfer limit.
    names = sorted(official)
    sizes = {n: official[n].numel() * official[n].element_size() for n in names}
    half, running, first = sum(sizes.values()) / 2, 0, []
    for n in names:
        if running < half:
            first.append(n)
            running += sizes[n]
    shards = [first, [n for n in names if n not in set(first)]]
    weight_map = {}
    for i, shard in enumerate(shards):
        file = f"model-{i + 1:05d}-of-00002.safetensors"
        save_file({n: official[n] for n in shard}, os.path.join(args.out, file),
                  metadata={"format": "pt"})
        weight_map.update({n: file for n in shard})
    index = {"metadata": {"total_size": sum(sizes.values())}, "weight_map": weight_map}

    # The float64 reference on exactly the saved values.
    reference_model = MiniMaxM2ForCausalLM(hf_config(spec, "eager")).double().eval()
    if hasattr(reference_model.config, "_experts_implementation"):
        reference_model.config._experts_implementation = "eager"
    reference_model.load_state_dict(from_official(exact, reference_model, spec), strict=True)
    margins = RoutingMargins(reference_model, spec["num_experts_per_tok"])
    reference, greedy_gaps = {}, []
    with torch.no_grad():
        for i, ids in enumerate(prompts["logit_prompts"]):
            prompt = torch.tensor(ids, dtype=torch.int64)
            logits = reference_model(prompt[None], use_cache=False).logits[0]
            reference[f"prompt.{i}"] = prompt
            reference[f"logits.{i}"] = logits.float().contiguous()
        greedy = list(prompts["logit_prompts"][0])
        for _ in range(args.greedy_tokens):
            logits = reference_model(torch.tensor([greedy]), use_cache=False).logits[0, -1]
            top = torch.topk(logits, 2).values
            greedy_gaps.append((top[0] - top[1]).item())
            greedy.append(int(torch.argmax(logits)))
        reference["greedy.0"] = torch.tensor(greedy[len(prompts["logit_prompts"][0]):])
        # Per-window held-out losses (float64) for fourbit's perplexity test.
        length = args.ppl_window
        losses = []
        for w in range(args.ppl_windows):
            row = heldout[w * length:w * length + length + 1].long()
            logits = reference_model(row[None, :-1], use_cache=False).logits[0]
            losses.append(torch.nn.functional.cross_entropy(logits, row[1:], reduction="sum").item())
        reference["ppl.tokens"] = heldout[:args.ppl_windows * length + 1].long()
    save_file(reference, os.path.join(args.out, "reference.safetensors"))
    ppl_reference = math.exp(sum(losses) / (args.ppl_windows * length))
    ref_json = {
        "made_by": "tools/demo-model/train_model.py", "torch": torch.__version__,
        "transformers": transformers.__version__, "spec": spec,
        "prompt_lengths": [len(p) for p in prompts["logit_prompts"]],
        "greedy_tokens": args.greedy_tokens, "greedy_prompt": 0,
        "smallest_routing_gap": margins.smallest, "smallest_greedy_logit_gap": min(greedy_gaps),
        "largest_abs_logit": max(reference[f"logits.{i}"].abs().max().item()
                                 for i in range(len(prompts["logit_prompts"]))),
        "ppl_window": length, "ppl_windows": args.ppl_windows, "ppl_window_nll": losses,
        "ppl_float64": ppl_reference,
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        def add(name, obj):
            data = (json.dumps(obj, indent=2) + "\n").encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        add("config.json", official_config(spec))
        add("generation_config.json", {"bos_token_id": spec["bos_token_id"],
                                       "eos_token_id": spec["eos_token_id"], "do_sample": True,
                                       "temperature": 1.0, "top_p": 0.95, "top_k": 40})
        add("model.safetensors.index.json", index)
        add("config.transformers.json", json.loads(reference_model.config.to_json_string()))
        add("reference.json", ref_json)
    with open(os.path.join(args.out, "meta.tar"), "wb") as f:
        f.write(buffer.getvalue())
    return ref_json


@torch.no_grad()
def samples(model, spec, prompts, device):
    """Greedy continuations (transformers' generate, f32) of the text prompts and of the
    held-out chat requests, for MODEL_CARD.md and a first look at the tool-call rates."""
    model = model.to(device).float().eval()
    out = {"text": [], "chat": []}

    def continue_ids(ids, n):
        prompt = torch.tensor([ids], device=device)
        result = model.generate(prompt, attention_mask=torch.ones_like(prompt),
                                max_new_tokens=n, do_sample=False,
                                eos_token_id=spec["eos_token_id"],
                                pad_token_id=spec["eos_token_id"])
        return result[0, len(ids):].tolist()

    for text, ids in prompts["text_prompts"]:
        out["text"].append({"prompt": text, "ids": continue_ids(ids, 48)})
    for case in prompts["chat_prompts"]:
        out["chat"].append({"kind": case["kind"], "request": case["request"],
                            "ids": continue_ids(case["ids"], 96)})
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="encode_corpus.py's --out")
    parser.add_argument("--prompts", required=True, help="make_prompts.py's output (JSON)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--steps", type=int, default=0, help="0: as many as --time-budget allows")
    parser.add_argument("--time-budget", type=float, default=420, help="seconds of training")
    parser.add_argument("--probe-steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--length", type=int, default=1024)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--weight-decay", type=float, default=0.1)
    parser.add_argument("--bias-rate", type=float, default=1e-3)
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--greedy-tokens", type=int, default=32)
    parser.add_argument("--ppl-window", type=int, default=256)
    parser.add_argument("--ppl-windows", type=int, default=8)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    with open(args.prompts, encoding="utf-8") as f:
        prompts = json.load(f)
    spec = dict(SPEC, bos_token_id=prompts["bos_token_id"], eos_token_id=prompts["eos_token_id"])
    assert prompts["vocab_size"] == spec["vocab_size"]
    device = torch.device("cuda")
    torch.set_num_threads(16)
    torch.backends.cuda.matmul.allow_tf32 = True
    model, heldout, log, summary = train(args, spec, device)
    report = {"args": vars(args), "summary": summary, "loss_curve": log,
              "torch": torch.__version__, "transformers": transformers.__version__,
              "device": torch.cuda.get_device_name(0)}

    def save_report():
        with open(os.path.join(args.out, "report.json"), "w") as f:
            json.dump(report, f, indent=1)

    save_report()
    started = time.time()
    try:
        report["reference"] = write_outputs(model, spec, args, heldout, prompts)
    except Exception:
        # Keep the trained weights (two bf16 halves, under the transfer limit per file) so a
        # second run can finish the job without training again.
        traceback.print_exc()
        state = {n: t.detach().cpu().to(torch.bfloat16 if t.dim() >= 2 else torch.float32)
                 for n, t in model.state_dict().items()}
        names = sorted(state)
        for i, part in enumerate((names[:len(names) // 2], names[len(names) // 2:])):
            torch.save({n: state[n] for n in part}, os.path.join(args.out, f"state.{i}.pt"))
        raise
    report["reference_seconds"] = round(time.time() - started, 1)
    save_report()
    print(json.dumps(report["reference"]), flush=True)
    started = time.time()
    try:
        report["samples"] = samples(model, spec, prompts, device)
    except Exception:
        traceback.print_exc()
    report["samples_seconds"] = round(time.time() - started, 1)
    save_report()
    print("done", json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
