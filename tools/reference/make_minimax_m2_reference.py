#!/usr/bin/env python3
"""Reference data for fourbit's MiniMax-M2 forward pass, made by transformers' own
MiniMaxM2ForCausalLM (run where torch and transformers 5.x are installed: the GPU machine).

For each of two small random models it writes, under --out:
  <name>/config.json, generation_config.json     the official MiniMax layout (rotary_dim, ...)
  <name>/config.transformers.json                 the same config as transformers saves it
                                                  (rope_parameters.partial_rotary_factor)
  <name>/model-0000N-of-00002.safetensors + index the weights under the official tensor names
  <name>/reference.safetensors                     prompts, float64-computed logits, greedy ids
  <name>/reference.json                            versions, margins, how it was made

  bf16: 4 layers, 16 experts top-4, GQA 4/2 heads of 32 with rotary 16 (partial RoPE),
        q width 128 != hidden 72 (72 is not a multiple of 16: SIMD tails), BF16 weights.
  fp8:  2 layers, 4 experts top-2, MiniMax's published format: F8_E4M3 attention and expert
        weights with 128x128 `weight_scale_inv` block multipliers (hidden 160 and FFN 136 make
        partial blocks), F32 router gate and routing bias, BF16 norms and embeddings.

Weights are rounded to bf16 (or to fp8 blocks, then dequantized) and the model then runs in
float64, so the reference is the exact math of those weights up to the few places where
transformers itself computes in float32 (RMSNorm statistics, RoPE angles, router sigmoid).
The greedy continuation recomputes the whole sequence at every step (no cache).
"""
import argparse
import json
import math
import os

import torch
import transformers
from safetensors.torch import save_file
from transformers import MiniMaxM2Config, MiniMaxM2ForCausalLM

MODELS = {
    "bf16": dict(vocab_size=1000, hidden_size=72, intermediate_size=40, num_hidden_layers=4,
                 num_attention_heads=4, num_key_value_heads=2, head_dim=32, rotary_dim=16,
                 num_local_experts=16, num_experts_per_tok=4, fp8=False, seed=1234),
    "fp8": dict(vocab_size=512, hidden_size=160, intermediate_size=136, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, head_dim=64, rotary_dim=32,
                num_local_experts=4, num_experts_per_tok=2, fp8=True, seed=99),
}
PROMPT_LENGTHS = [7, 19, 12, 64]
GREEDY_TOKENS = 32
ROPE_THETA = 5e6
FP8_BLOCK = 128


def hf_config(spec):
    config = MiniMaxM2Config(
        vocab_size=spec["vocab_size"], hidden_size=spec["hidden_size"],
        intermediate_size=spec["intermediate_size"], num_hidden_layers=spec["num_hidden_layers"],
        num_attention_heads=spec["num_attention_heads"],
        num_key_value_heads=spec["num_key_value_heads"], head_dim=spec["head_dim"],
        num_local_experts=spec["num_local_experts"],
        num_experts_per_tok=spec["num_experts_per_tok"], rms_norm_eps=1e-6,
        max_position_embeddings=4096, tie_word_embeddings=False, bos_token_id=None,
        eos_token_id=None,
        rope_parameters={"rope_type": "default", "rope_theta": ROPE_THETA,
                         "partial_rotary_factor": spec["rotary_dim"] / spec["head_dim"]})
    config._attn_implementation = "eager"
    if hasattr(config, "_experts_implementation"):
        config._experts_implementation = "eager"
    return config


def official_config(spec):
    """config.json as MiniMax publishes it (minimax_m2.md §1.1)."""
    config = {
        "architectures": ["MiniMaxM2ForCausalLM"], "model_type": "minimax_m2",
        "vocab_size": spec["vocab_size"], "hidden_size": spec["hidden_size"],
        "intermediate_size": spec["intermediate_size"],
        "num_hidden_layers": spec["num_hidden_layers"],
        "num_attention_heads": spec["num_attention_heads"],
        "num_key_value_heads": spec["num_key_value_heads"], "head_dim": spec["head_dim"],
        "num_local_experts": spec["num_local_experts"],
        "num_experts_per_tok": spec["num_experts_per_tok"], "rotary_dim": spec["rotary_dim"],
        "rope_theta": ROPE_THETA, "rms_norm_eps": 1e-6, "hidden_act": "silu",
        "max_position_embeddings": 4096, "scoring_func": "sigmoid", "use_routing_bias": True,
        "use_qk_norm": True, "qk_norm_type": "per_layer", "shared_intermediate_size": 0,
        "attn_type_list": [1] * spec["num_hidden_layers"], "sliding_window": None,
        "tie_word_embeddings": False, "use_mtp": True, "num_mtp_modules": 3,
        "mlp_intermediate_size": 8192, "torch_dtype": "bfloat16",
    }
    if spec["fp8"]:
        config["quantization_config"] = {
            "quant_method": "fp8", "fmt": "float8_e4m3fn", "activation_scheme": "dynamic",
            "weight_block_size": [FP8_BLOCK, FP8_BLOCK],
            "modules_to_not_convert": ["gate", "e_score_correction_bias", "lm_head"]}
    return config


def fp8_blocks(weight):
    """DeepSeek/MiniMax block FP8: per 128x128 block, scale = amax / 448 (an f32 multiplier),
    codes = weight / scale in float8_e4m3fn. Returns codes, scales and the dequantized weight."""
    rows, cols = weight.shape
    br, bc = math.ceil(rows / FP8_BLOCK), math.ceil(cols / FP8_BLOCK)
    scales = torch.empty(br, bc, dtype=torch.float32)
    codes = torch.empty(rows, cols, dtype=torch.float8_e4m3fn)
    for i in range(br):
        for j in range(bc):
            block = weight[i * FP8_BLOCK:(i + 1) * FP8_BLOCK, j * FP8_BLOCK:(j + 1) * FP8_BLOCK]
            amax = block.abs().max().item()
            scale = torch.tensor(amax / 448.0 if amax > 0 else 1.0, dtype=torch.float32)
            scales[i, j] = scale
            codes[i * FP8_BLOCK:(i + 1) * FP8_BLOCK, j * FP8_BLOCK:(j + 1) * FP8_BLOCK] = (
                block / scale.double()).to(torch.float8_e4m3fn)
    expanded = scales.double().repeat_interleave(FP8_BLOCK, 0)[:rows].repeat_interleave(
        FP8_BLOCK, 1)[:, :cols]
    return codes, scales, codes.double() * expanded


def init_weights(model, spec, generator):
    """N(0, 1/fan_in) matrices (activations stay of order 1), norms in (0.5, 1.5), routing
    bias N(0, 0.1^2) so that it changes selections, N(0, 1) embeddings."""
    def normal(shape, std):
        return torch.randn(shape, generator=generator, dtype=torch.float64) * std

    with torch.no_grad():
        for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
            if "rotary_emb" in name:
                continue
            if name.endswith("norm.weight"):
                value = 0.5 + torch.rand(tensor.shape, generator=generator, dtype=torch.float64)
            elif name.endswith("e_score_correction_bias"):
                value = normal(tensor.shape, 0.1)
            elif name == "model.embed_tokens.weight":
                value = normal(tensor.shape, 1.0)
            elif tensor.dim() >= 2:
                value = normal(tensor.shape, 1.0 / math.sqrt(tensor.shape[-1]))
            else:
                raise SystemExit(f"unexpected tensor {name} {tuple(tensor.shape)}")
            tensor.copy_(value)


def to_official(model, spec):
    """The model's state under the official names; returns (tensors to save, the float64
    values the reference must use)."""
    official, exact = {}, {}
    inter = spec["intermediate_size"]
    quantized = ("q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight")

    def put(name, value, kind):
        value = value.detach().double()
        if kind == "fp8":
            codes, scales, dequantized = fp8_blocks(value)
            official[name] = codes
            official[name[:-len(".weight")] + ".weight_scale_inv"] = scales
            exact[name] = dequantized
        elif kind == "f32":
            official[name] = value.float().contiguous()
            exact[name] = value.float().double()
        else:
            official[name] = value.to(torch.bfloat16).contiguous()
            exact[name] = value.to(torch.bfloat16).double()

    fp8 = "fp8" if spec["fp8"] else "bf16"
    router = "f32" if spec["fp8"] else "bf16"
    for name, tensor in list(model.state_dict().items()):
        if "rotary_emb" in name:
            continue
        if ".mlp.experts.gate_up_proj" in name:
            prefix = name.replace(".mlp.experts.gate_up_proj", ".block_sparse_moe.experts")
            for e in range(tensor.shape[0]):
                put(f"{prefix}.{e}.w1.weight", tensor[e, :inter], fp8)
                put(f"{prefix}.{e}.w3.weight", tensor[e, inter:], fp8)
        elif ".mlp.experts.down_proj" in name:
            prefix = name.replace(".mlp.experts.down_proj", ".block_sparse_moe.experts")
            for e in range(tensor.shape[0]):
                put(f"{prefix}.{e}.w2.weight", tensor[e], fp8)
        elif ".mlp.gate.weight" in name:
            put(name.replace(".mlp.gate.", ".block_sparse_moe.gate."), tensor, router)
        elif ".mlp.e_score_correction_bias" in name:
            put(name.replace(".mlp.", ".block_sparse_moe."), tensor, router)
        elif name.endswith(quantized):
            put(name, tensor, fp8)
        elif name.endswith("norm.weight") or name in ("model.embed_tokens.weight",
                                                      "lm_head.weight"):
            put(name, tensor, "bf16")
        else:
            raise SystemExit(f"no official name for {name}")
    return official, exact


def from_official(exact, model, spec):
    """Inverse of to_official on the exact values: proves the name mapping is faithful."""
    state = {}
    for name, tensor in model.state_dict().items():
        if "rotary_emb" in name:
            state[name] = tensor
        elif ".mlp.experts.gate_up_proj" in name:
            prefix = name.replace(".mlp.experts.gate_up_proj", ".block_sparse_moe.experts")
            state[name] = torch.stack([
                torch.cat([exact[f"{prefix}.{e}.w1.weight"], exact[f"{prefix}.{e}.w3.weight"]])
                for e in range(tensor.shape[0])])
        elif ".mlp.experts.down_proj" in name:
            prefix = name.replace(".mlp.experts.down_proj", ".block_sparse_moe.experts")
            state[name] = torch.stack([exact[f"{prefix}.{e}.w2.weight"]
                                       for e in range(tensor.shape[0])])
        elif ".mlp.gate.weight" in name:
            state[name] = exact[name.replace(".mlp.gate.", ".block_sparse_moe.gate.")]
        elif ".mlp.e_score_correction_bias" in name:
            state[name] = exact[name.replace(".mlp.", ".block_sparse_moe.")]
        else:
            state[name] = exact[name]
    return state


class RoutingMargins:
    """The smallest gap, over every token and layer, between the k-th and (k+1)-th biased
    router score: how far the reference is from a selection that float noise could flip."""

    def __init__(self, model, k):
        self.smallest = math.inf
        self.k = k
        for layer in model.model.layers:
            layer.mlp.gate.register_forward_hook(self.hook(layer.mlp))

    def hook(self, moe):
        def record(module, inputs, output):
            logits = output[0].double()
            choice = torch.sigmoid(logits) + moe.e_score_correction_bias.double()
            top = torch.topk(choice, self.k + 1, dim=-1).values
            gap = (top[:, self.k - 1] - top[:, self.k]).min().item()
            self.smallest = min(self.smallest, gap)
        return record


def write_checkpoint(directory, official, spec):
    names = sorted(official)
    half = len(names) // 2
    shards = [names[:half], names[half:]]
    weight_map, total = {}, 0
    for i, shard in enumerate(shards):
        file = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file({n: official[n] for n in shard}, os.path.join(directory, file),
                  metadata={"format": "pt"})
        for n in shard:
            weight_map[n] = file
            total += official[n].numel() * official[n].element_size()
    with open(os.path.join(directory, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2,
                  sort_keys=True)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(official_config(spec), f, indent=2)
    with open(os.path.join(directory, "generation_config.json"), "w") as f:
        json.dump({"do_sample": True, "temperature": 1.0, "top_p": 0.95, "top_k": 40}, f,
                  indent=2)


def make(name, spec, out):
    directory = os.path.join(out, name)
    os.makedirs(directory, exist_ok=True)
    generator = torch.Generator().manual_seed(spec["seed"])
    config = hf_config(spec)
    model = MiniMaxM2ForCausalLM(config).double().eval()
    inv_freq = model.model.rotary_emb.inv_freq
    if inv_freq.numel() != spec["rotary_dim"] // 2:
        raise SystemExit(f"transformers built {2 * inv_freq.numel()}-dim RoPE, "
                         f"wanted partial rotary_dim {spec['rotary_dim']}")
    init_weights(model, spec, generator)
    official, exact = to_official(model, spec)
    model.load_state_dict(from_official(exact, model, spec), strict=True)
    margins = RoutingMargins(model, spec["num_experts_per_tok"])

    prompts = [torch.randint(0, spec["vocab_size"], (n,), generator=generator)
               for n in PROMPT_LENGTHS]
    reference = {}
    with torch.no_grad():
        for i, prompt in enumerate(prompts):
            logits = model(prompt[None], use_cache=False).logits[0]
            reference[f"prompt.{i}"] = prompt.to(torch.int64)
            reference[f"logits.{i}"] = logits.float().contiguous()
        greedy, greedy_margins = prompts[0].tolist(), []
        for _ in range(GREEDY_TOKENS):
            logits = model(torch.tensor([greedy]), use_cache=False).logits[0, -1]
            top = torch.topk(logits, 2).values
            greedy_margins.append((top[0] - top[1]).item())
            greedy.append(int(torch.argmax(logits)))
        reference["greedy.0"] = torch.tensor(greedy[len(prompts[0]):], dtype=torch.int64)

    write_checkpoint(directory, official, spec)
    save_file(reference, os.path.join(directory, "reference.safetensors"))
    config.to_json_file(os.path.join(directory, "config.transformers.json"))
    summary = {
        "made_by": "tools/reference/make_minimax_m2_reference.py",
        "torch": torch.__version__, "transformers": transformers.__version__,
        "spec": spec, "prompt_lengths": PROMPT_LENGTHS, "greedy_tokens": GREEDY_TOKENS,
        "greedy_prompt": 0,
        "smallest_routing_gap": margins.smallest,
        "smallest_greedy_logit_gap": min(greedy_margins),
        "largest_abs_logit": max(reference[f"logits.{i}"].abs().max().item()
                                 for i in range(len(prompts))),
    }
    with open(os.path.join(directory, "reference.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(name, json.dumps(summary))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(8)
    for name, spec in MODELS.items():
        make(name, spec, args.out)


if __name__ == "__main__":
    main()
