#!/usr/bin/env python3
"""Checks fourbit's NVFP4 exports with the compressed-tensors library itself (PyPI 0.20.0, which
vLLM uses to read them). It needs torch, so it runs on the GPU machine, not in CI:

  fourbit make-model --preset tiny --seed 1 --quant nvfp4 --format compressed-tensors --out CT
  fourbit make-model --preset tiny --seed 1 --quant nvfp4 --format modelopt --out MO
  fourbit make-model --preset tiny --seed 1 --out BF16
  check_compressed_tensors.py CT MO BF16

1. compressed-tensors' own QuantizationConfig accepts CT's quantization_config (pydantic
   schema) and sees NVFP4 W4A4 with our ignore list.
2. compressed-tensors' ModelOptNvfp4Converter, run on MO's tensors, gives exactly CT's tensors
   (names, dtypes, bytes): our two writers agree with the library's own conversion.
3. compressed-tensors' NVFP4PackedCompressor.decompress of every CT module gives the weights
   ModelOpt's formula reads from MO (up to bfloat16 rounding, in which the library computes), within NVFP4's rounding of the BF16
   model of the same seed: the library reads our codes and scales as we mean them.
"""
import fnmatch
import glob
import json
import os
import sys

import torch
from safetensors.torch import load_file


def load_dir(directory):
    tensors = {}
    for path in sorted(glob.glob(os.path.join(directory, "*.safetensors"))):
        tensors.update(load_file(path))
    return tensors


def main():
    ct_dir, mo_dir, bf16_dir = sys.argv[1:4]
    from compressed_tensors.compressors.nvfp4.base import NVFP4PackedCompressor
    from compressed_tensors.entrypoints.convert.converters.modelopt_nvfp4 import (
        ModelOptNvfp4Converter)
    from compressed_tensors.quantization import QuantizationConfig

    with open(os.path.join(ct_dir, "config.json")) as f:
        ct_config = json.load(f)["quantization_config"]
    config = QuantizationConfig.model_validate(ct_config)
    scheme = config.config_groups["group_0"]
    assert config.format == "nvfp4-pack-quantized", config.format
    assert scheme.weights.num_bits == 4 and scheme.weights.group_size == 16
    assert scheme.input_activations is not None and scheme.input_activations.num_bits == 4
    print("1. QuantizationConfig accepted:", config.format, "ignore", config.ignore)

    with open(os.path.join(mo_dir, "hf_quant_config.json")) as f:
        mo_ignore = json.load(f)["quantization"]["exclude_modules"]
    ct = load_dir(ct_dir)
    # The converter matches exact names and `re:` patterns; ModelOpt's are fnmatch wildcards.
    ignore = ["re:" + fnmatch.translate(pattern) for pattern in mo_ignore]
    converted = ModelOptNvfp4Converter(ignore=ignore, targets=["re:.*"]).process(
        load_dir(mo_dir))
    assert sorted(converted) == sorted(ct), sorted(set(converted) ^ set(ct))[:10]
    for name, tensor in ct.items():
        other = converted[name]
        assert tensor.dtype == other.dtype, (name, tensor.dtype, other.dtype)
        if name.endswith("global_scale"):
            # ModelOpt's scalar (shape []) becomes compressed-tensors' [1]; 1/x in float32, as
            # the library computes it, must be exactly what fourbit stored.
            assert torch.equal(tensor.flatten(), other.flatten()), (name, tensor, other)
        else:
            assert tensor.shape == other.shape, name
            assert torch.equal(tensor.view(torch.uint8), other.view(torch.uint8)), name
    print(f"2. ModelOptNvfp4Converter(MO) == CT for all {len(ct)} tensors")

    bf16 = load_dir(bf16_dir)
    mo = load_dir(mo_dir)
    e2m1 = torch.tensor([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6])
    modules = sorted(n[: -len(".weight_packed")] for n in ct if n.endswith(".weight_packed"))
    worst_relative, worst_steps = 0.0, 0.0
    for module in modules:
        state = {k: ct[f"{module}.{k}"] for k in ("weight_packed", "weight_scale",
                                                   "weight_global_scale")}
        weight = NVFP4PackedCompressor.decompress(state, scheme)["weight"].float()
        # ModelOpt's meaning of the MO export: e2m1(code) * e4m3(block scale) * weight_scale_2,
        # the codes unpacked low nibble first; written here, not taken from either library.
        packed = mo[f"{module}.weight"]
        codes = torch.stack([packed & 0xF, packed >> 4], dim=-1).flatten(1).long()
        scales = mo[f"{module}.weight_scale"].float().repeat_interleave(16, dim=1)
        meant = e2m1[codes] * scales * mo[f"{module}.weight_scale_2"].float()
        # Equal up to rounding: the library unpacks to bfloat16 and dequantizes in it (dividing
        # by the reciprocal global scale), so each value carries bf16 roundings (2^-9 each).
        relative = ((weight - meant).abs() / meant.abs().clamp(min=1e-30)).max().item()
        worst_relative = max(worst_relative, relative)
        assert relative <= 2.0 ** -7, (module, relative)
        # And near the BF16 weights of the same seed: within one E2M1 unit of its block plus
        # the block scale's own rounding (E2M1's widest gap, 4 to 6, leaves at most one unit;
        # a block scale rounded down to E4M3 lets the block maximum exceed 6 units by < 7%).
        step = scales * mo[f"{module}.weight_scale_2"].float()
        steps = ((weight - bf16[f"{module}.weight"].float()).abs() / step).max().item()
        worst_steps = max(worst_steps, steps)
        assert steps <= 1.07, (module, steps)
    print(f"3. NVFP4PackedCompressor.decompress of all {len(modules)} modules equals ModelOpt's "
          f"reading of the MO export (worst relative difference {worst_relative:.1e}) and lies "
          f"within NVFP4 rounding of the BF16 weights (worst {worst_steps:.3f} block steps)")

if __name__ == "__main__":
    main()
