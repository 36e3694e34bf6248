#!/usr/bin/env python3
"""Bit-exact reference vectors for fourbit's NVFP4 codec (src/nvfp4/), made with torch
implementing ModelOpt's formulas (nvfp4.md §1.4, §1.5) independently of the C++ code: E2M1 by
ModelOpt's bisect rule, E4M3 by torch's own float8_e4m3fn cast. Run where torch is (the GPU
machine); computes on the CPU in float32 so that every operation is IEEE-exact.

Writes --out/reference.safetensors with, per weight case C:
  C.weight f32 [N, K], C.global_scale f32 [1] (weight_scale_2), C.packed u8 [N, K/2],
  C.block_scales u8 [N, K/16] (float8_e4m3fn bits), C.dequant f32 [N, K]
and per activation case A: A.x f32 [R, K], A.input_scale f32 [1], A.fake_quant f32 [R, K].
"""
import argparse
import json
import os

import torch
from safetensors.torch import save_file

BLOCK = 16
E2M1_BOUNDS = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0])
E2M1_VALUES = torch.tensor([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6])


def e2m1_codes(x):
    """ModelOpt's _cast_fp4: left bisect of |x| on the midpoints, +1 on the exact midpoints
    0.75, 1.75, 3.5 (ties to even), saturating at 6; sign bit for x < 0."""
    a = x.abs()
    order = torch.searchsorted(E2M1_BOUNDS, a.contiguous(), right=False)
    order = order + ((a == 0.75) | (a == 1.75) | (a == 3.5)).to(order.dtype)
    return (order + 8 * (x < 0).to(order.dtype)).to(torch.uint8)


def e4m3(x):
    return x.to(torch.float8_e4m3fn)


def quantize_weight(w, global_scale):
    n, k = w.shape
    blocks = w.reshape(n, k // BLOCK, BLOCK)
    block_amax = blocks.abs().amax(dim=-1)
    block_scale = block_amax / (torch.tensor(6.0) * global_scale)
    block_scale = torch.where(block_scale == 0, torch.ones_like(block_scale), block_scale)
    scale8 = e4m3(block_scale.clamp(min=2.0 ** -9, max=448.0))
    step = scale8.float() * global_scale
    codes = e2m1_codes(blocks / step.unsqueeze(-1)).reshape(n, k)
    packed = codes[:, 0::2] | (codes[:, 1::2] << 4)
    values = E2M1_VALUES[codes.long()].reshape(n, k // BLOCK, BLOCK)
    dequant = (values * scale8.float().unsqueeze(-1) * global_scale).reshape(n, k)
    return packed, scale8.view(torch.uint8), dequant


def global_scale_of(amax):
    return torch.tensor(amax / 2688.0 if amax > 0 else 1.0, dtype=torch.float32)


def fake_quant_activation(x, input_scale):
    r, k = x.shape
    blocks = x.reshape(r, k // BLOCK, BLOCK)
    block_amax = blocks.abs().amax(dim=-1)
    wanted = (1.0 / input_scale) * block_amax / 6.0
    scale8 = e4m3(wanted.clamp(max=448.0))   # the kernels' cast saturates to finite
    step = (scale8.float() * input_scale).unsqueeze(-1)
    codes = e2m1_codes(torch.where(step == 0, torch.zeros_like(blocks), blocks / step))
    out = E2M1_VALUES[codes.long()] * step
    return torch.where(step == 0, torch.zeros_like(out), out).reshape(r, k)


def weight_cases(generator):
    def randn(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float32)

    cases = {}
    # Exact midpoints: global amax 2688 gives global scale 1, and a block max of 6 gives block
    # scale 1, so each value below is its own quotient.
    ties = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 6.0,
                         -0.25, -0.75, -1.25, -1.75, -2.5, -3.5, -5.0, -6.0])
    near = torch.tensor([0.2499, 0.2501, 0.7499, 0.7501, 2.4999, 2.5001, 4.9999, 5.0001,
                         0.1, -0.1, 0.0, -0.0, 5.5, -5.5, 6.0, -6.0])
    top = torch.zeros(16)
    top[0] = 2688.0
    cases["ties"] = (torch.stack([ties, near, top]), None)
    # Zero blocks next to ordinary ones, and an all-zero tensor (amax 0).
    mixed = randn(4, 64)
    mixed[1, 16:32] = 0
    mixed[3, :] = 0
    cases["zero_blocks"] = (mixed, None)
    cases["all_zero"] = (torch.zeros(2, 32), None)
    # Tiny and huge magnitudes: block scales far below 2^-9 clamp, huge tensors keep ratios.
    tiny = randn(4, 32) * 1e-6
    tiny[0, :16] = randn(16) * 1e3
    tiny[2, :16] = 1e-30
    cases["tiny_and_huge_blocks"] = (tiny, None)
    cases["huge"] = (randn(3, 48) * 1e30, None)
    cases["subnormal_f32"] = (randn(2, 32) * 1e-39, None)
    cases["all_negative_blocks"] = (-randn(4, 32).abs() - 0.01, None)
    outliers = randn(16, 128)
    outliers[:, 7] *= 100.0
    outliers[:, 90] *= -50.0
    cases["outlier_columns"] = (outliers, None)
    cases["random_64x256"] = (randn(64, 256) * 0.02, None)
    cases["random_bf16_grid"] = (randn(32, 96).to(torch.bfloat16).float(), None)
    # A fused group (q/k/v, or an expert's w1/w3): members share the group's global scale.
    q, k = randn(8, 64), randn(4, 64) * 3.0
    group_amax = max(q.abs().max().item(), k.abs().max().item())
    cases["fused_q"] = (q, group_amax)
    cases["fused_k"] = (k, group_amax)
    return cases


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(2026)
    tensors, summary = {}, {}
    for name, (weight, group_amax) in weight_cases(generator).items():
        amax = group_amax if group_amax is not None else weight.abs().max().item()
        global_scale = global_scale_of(amax)
        packed, scales, dequant = quantize_weight(weight, global_scale)
        tensors[f"{name}.weight"] = weight.contiguous()
        tensors[f"{name}.global_scale"] = global_scale.reshape(1)
        tensors[f"{name}.packed"] = packed.contiguous()
        tensors[f"{name}.block_scales"] = scales.contiguous()
        tensors[f"{name}.dequant"] = dequant.contiguous()
        summary[name] = {"shape": list(weight.shape), "amax": amax,
                         "global_scale": global_scale.item()}
    rows = torch.randn(6, 64, generator=generator)
    amax = rows[:4].abs().max().item()     # rows 4-5 exceed it: clipping
    rows[4] *= 3.0
    rows[5, :16] = 0
    for name, x, scale in [("act_calibrated", rows, amax / 2688.0),
                           ("act_small_scale", rows * 1e-3, amax / 2688.0)]:
        tensors[f"{name}.x"] = x.contiguous()
        tensors[f"{name}.input_scale"] = torch.tensor([scale], dtype=torch.float32)
        tensors[f"{name}.fake_quant"] = fake_quant_activation(
            x, torch.tensor(scale, dtype=torch.float32)).contiguous()
    os.makedirs(args.out, exist_ok=True)
    save_file(tensors, os.path.join(args.out, "reference.safetensors"))
    with open(os.path.join(args.out, "reference.json"), "w") as f:
        json.dump({"made_by": "tools/reference/make_nvfp4_reference.py",
                   "torch": torch.__version__, "cases": summary}, f, indent=2)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
