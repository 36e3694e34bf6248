#!/usr/bin/env python3
"""Checks `fourbit quantize` against independent references. Needs torch and transformers 5.x,
so it runs on the GPU machine (tools/reference/run_quantize_check.sh), not in CI:

  fourbit make-model --preset tiny --seed 1 --out BF16
  fourbit quantize --model BF16 --out CT --dataset ... (compressed-tensors)
  fourbit quantize --model BF16 --out MO --dataset ... --format modelopt   (same data)
  check_quantize.py BF16 CT MO OUT_DIR      (MO "-": skip B)

A. Calibration amax: transformers' MiniMaxM2ForCausalLM (float64, the same bf16 weights) runs
   the very tokens fourbit calibrated (CT/calibration/queue.jsonl) with forward hooks; every
   Linear's input amax (per expert: the rows routed to it; w2: silu(w1 x) * w3 x of them) and
   the tokens per expert are compared with fourbit's report (amax within 1%).
B. compressed-tensors (check_compressed_tensors.py): its schema accepts our config, its
   ModelOpt converter turns MO into CT byte for byte, its decompressor reads our codes as meant.
C. llmcompressor side by side: its model-free NVFP4 weight quantizer on BF16 with the same
   ignore list, tensor by tensor against CT; and compressed-tensors' generate_gparam (the
   static_minmax observer's global scale) on the reference amax against our input scales.
"""
import glob
import importlib
import json
import math
import os
import subprocess
import sys
import types

import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_minimax_m2_reference import from_official  # noqa: E402


def load_dir(directory):
    tensors = {}
    for path in sorted(glob.glob(os.path.join(directory, "*.safetensors"))):
        tensors.update(load_file(path))
    return tensors


def hf_model(bf16_dir):
    from transformers import MiniMaxM2Config, MiniMaxM2ForCausalLM
    with open(os.path.join(bf16_dir, "config.json")) as f:
        c = json.load(f)
    config = MiniMaxM2Config(
        vocab_size=c["vocab_size"], hidden_size=c["hidden_size"],
        intermediate_size=c["intermediate_size"], num_hidden_layers=c["num_hidden_layers"],
        num_attention_heads=c["num_attention_heads"],
        num_key_value_heads=c["num_key_value_heads"], head_dim=c["head_dim"],
        num_local_experts=c["num_local_experts"], num_experts_per_tok=c["num_experts_per_tok"],
        rms_norm_eps=c["rms_norm_eps"], max_position_embeddings=c["max_position_embeddings"],
        tie_word_embeddings=False, bos_token_id=None, eos_token_id=None,
        rope_parameters={"rope_type": "default", "rope_theta": c["rope_theta"],
                         "partial_rotary_factor": c["rotary_dim"] / c["head_dim"]})
    config._attn_implementation = "eager"
    if hasattr(config, "_experts_implementation"):
        config._experts_implementation = "eager"
    model = MiniMaxM2ForCausalLM(config).double().eval()
    official = {k: v.double() for k, v in load_dir(bf16_dir).items()}
    inter = c["intermediate_size"]
    # The official names onto transformers' fused experts, as the golden reference maps them.
    state = from_official(official, model, None)
    model.load_state_dict(state)
    return model, c, inter


class AmaxHooks:
    """max |x| of every Linear's input, as ModelOpt's max calibrator collects it."""

    def __init__(self, model, c, inter):
        self.amax, self.tokens = {}, {}
        self.k, self.inter = c["num_experts_per_tok"], inter
        for l, layer in enumerate(model.model.layers):
            p = f"model.layers.{l}."
            layer.self_attn.q_proj.register_forward_pre_hook(
                self.put([p + "self_attn.q_proj", p + "self_attn.k_proj", p + "self_attn.v_proj"]))
            layer.self_attn.o_proj.register_forward_pre_hook(self.put([p + "self_attn.o_proj"]))
            layer.mlp.gate.register_forward_pre_hook(self.put([p + "block_sparse_moe.gate"]))
            layer.mlp.experts.register_forward_pre_hook(self.experts(l, layer.mlp.experts))

    def record(self, name, value):
        self.amax[name] = max(self.amax.get(name, 0.0), value)

    def put(self, names):
        def hook(module, args):
            value = args[0].abs().max().item()
            for name in names:
                self.record(name, value)
        return hook

    def experts(self, l, experts):
        # transformers' own routing decides which rows reach each expert: the experts module
        # is called with (hidden_states [T, H], top_k_index [T, k], top_k_weights).
        def hook(module, args):
            h, chosen = args[0], args[1]
            p = f"model.layers.{l}.block_sparse_moe.experts."
            gate_up = experts.gate_up_proj
            for e in range(gate_up.shape[0]):
                rows = h[(chosen == e).any(dim=-1)]
                self.tokens[(l, e)] = self.tokens.get((l, e), 0) + rows.shape[0]
                if rows.shape[0] == 0:
                    continue
                x = rows.abs().max().item()
                self.record(f"{p}{e}.w1", x)
                self.record(f"{p}{e}.w3", x)
                hidden = torch.nn.functional.silu(rows @ gate_up[e, :self.inter].T) * (
                    rows @ gate_up[e, self.inter:].T)
                self.record(f"{p}{e}.w2", hidden.abs().max().item())
        return hook


def check_amax(bf16_dir, ct_dir, log):
    model, c, inter = hf_model(bf16_dir)
    hooks = AmaxHooks(model, c, inter)
    with open(os.path.join(ct_dir, "calibration", "queue.jsonl")) as f:
        samples = [json.loads(line) for line in f if line.strip()]
    with torch.no_grad():
        for sample in samples:
            model(torch.tensor([sample["input_ids"]]))
    with open(os.path.join(ct_dir, "calibration", "report.json")) as f:
        report = json.load(f)
    worst, worst_name, compared = 0.0, "", 0
    for name, entry in report["amax"].items():
        ours = entry["input_amax_observed"]
        if name not in hooks.amax:
            if ours > 0:
                raise SystemExit(f"A. {name}: fourbit observed {ours}, the reference nothing")
            continue
        reference = hooks.amax[name]
        relative = abs(ours - reference) / reference
        compared += 1
        if relative > worst:
            worst, worst_name = relative, name
    assert worst <= 0.01, (worst_name, worst)
    token_mismatch = 0
    for layer in report["expert_tokens"]["layers"]:
        for e, n in enumerate(layer["tokens"]):
            token_mismatch += n != hooks.tokens.get((layer["layer"], e), 0)
    log(f"A. {len(samples)} samples, {sum(len(s['input_ids']) for s in samples)} tokens: input amax of "
        f"{compared} modules within {worst:.2e} relative of transformers' hooks (worst {worst_name}); "
        f"tokens per expert differ for {token_mismatch} of {len(hooks.tokens)} experts")
    return hooks.amax


def import_model_free(log):
    """llmcompressor's model-free quantizer without its package __init__ (which pulls datasets,
    accelerate and the rest of the training stack this check has no use for)."""
    try:
        import llmcompressor  # noqa: F401
        from llmcompressor.entrypoints.model_free import model_free_ptq
        return model_free_ptq
    except Exception as error:  # missing optional dependencies: load the pieces directly
        log(f"   (import llmcompressor: {type(error).__name__}: {error}; loading model_free alone)")
    for name in list(sys.modules):
        if name.startswith("llmcompressor"):
            del sys.modules[name]
    root = os.path.dirname(importlib.util.find_spec("compressed_tensors").origin)
    base = os.path.join(os.path.dirname(root), "llmcompressor")
    for package in ["llmcompressor", "llmcompressor.entrypoints", "llmcompressor.modifiers",
                    "llmcompressor.modifiers.quantization", "llmcompressor.observers"]:
        module = types.ModuleType(package)
        module.__path__ = [os.path.join(base, *package.split(".")[1:])]
        sys.modules[package] = module
    observers = sys.modules["llmcompressor.observers"]
    for sub in ["fusion", "helpers", "base", "min_max"]:
        loaded = importlib.import_module(f"llmcompressor.observers.{sub}")
        for key in getattr(loaded, "__all__", []):
            setattr(observers, key, getattr(loaded, key))
    from llmcompressor.entrypoints.model_free import model_free_ptq
    return model_free_ptq


def check_llmcompressor(bf16_dir, ct_dir, out_dir, reference_amax, log):
    model_free_ptq = import_model_free(log)
    from compressed_tensors.quantization.utils import generate_gparam
    with open(os.path.join(ct_dir, "config.json")) as f:
        ignore = json.load(f)["quantization_config"]["ignore"]
    lc_dir = os.path.join(out_dir, "llmcompressor_nvfp4a16")
    model_free_ptq(bf16_dir, lc_dir, scheme="NVFP4A16", ignore=ignore, device="cuda:0"
                   if torch.cuda.is_available() else "cpu")
    lc, ours = load_dir(lc_dir), load_dir(ct_dir)
    modules = sorted(n[:-len(".weight_packed")] for n in ours if n.endswith(".weight_packed"))
    missing = [m for m in modules if m + ".weight_packed" not in lc]
    assert not missing, ("llmcompressor did not quantize", missing[:5])
    packed_diff = scale_diff = global_diff = 0
    total_packed = total_scales = 0
    worst_global = worst_input = 0.0
    for m in modules:
        a, b = ours[m + ".weight_packed"], lc[m + ".weight_packed"]
        total_packed += a.numel()
        packed_diff += (a != b).sum().item()
        a, b = ours[m + ".weight_scale"].view(torch.uint8), lc[m + ".weight_scale"].view(torch.uint8)
        total_scales += a.numel()
        scale_diff += (a != b).sum().item()
        g_ours = ours[m + ".weight_global_scale"].float().item()
        g_lc = lc[m + ".weight_global_scale"].float().item()
        global_diff += g_ours != g_lc
        worst_global = max(worst_global, abs(g_ours - g_lc) / g_lc)
        amax = reference_amax[m]
        gparam = generate_gparam(torch.tensor([-amax]), torch.tensor([amax])).item()
        worst_input = max(worst_input, abs(ours[m + ".input_global_scale"].item() - gparam) / gparam)
    log(f"C. llmcompressor model_free_ptq NVFP4A16 vs fourbit on {len(modules)} modules: "
        f"packed bytes differ {packed_diff}/{total_packed}, block scales differ "
        f"{scale_diff}/{total_scales}, weight global scales differ {global_diff} "
        f"(worst relative {worst_global:.2e}); input global scale vs compressed-tensors "
        f"generate_gparam(reference amax): worst relative {worst_input:.2e}")


def main():
    bf16_dir, ct_dir, mo_dir, out_dir = sys.argv[1:5]
    os.makedirs(out_dir, exist_ok=True)
    lines = []

    def log(line):
        print(line, flush=True)
        lines.append(line)

    import transformers
    log(f"torch {torch.__version__}, transformers {transformers.__version__}")
    reference_amax = {}
    steps = [
        ("A", lambda: check_amax(bf16_dir, ct_dir, log)),
        ("B", lambda: subprocess.run(
            [sys.executable, os.path.join(os.path.dirname(__file__), "check_compressed_tensors.py"),
             ct_dir, mo_dir, bf16_dir], check=True, capture_output=True, text=True)),
        ("C", lambda: check_llmcompressor(bf16_dir, ct_dir, out_dir, reference_amax, log)),
    ]
    if mo_dir == "-":  # no ModelOpt export given: skip B
        steps = [step for step in steps if step[0] != "B"]
    for step, run in steps:
        try:
            result = run()
            if step == "A":
                reference_amax.update(result)
            if step == "B":
                log("B. " + result.stdout.strip().replace("\n", "\n   "))
        except Exception as error:  # report every step, whatever fails
            detail = getattr(error, "stderr", "") or ""
            log(f"{step}. FAILED: {type(error).__name__}: {error} {detail[-2000:]}")
    with open(os.path.join(out_dir, "check_quantize.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
