#!/usr/bin/env python3
"""Cuts tests/quantize/golden/llmcompressor_tiny.safetensors out of llmcompressor's model-free
NVFP4 quantization of the tiny preset (make-model --preset tiny --seed 1), as
check_quantize.py step C writes it on the GPU machine (OUT/llmcompressor_nvfp4a16): one fused
q/k/v group and one expert's w1/w2/w3, every tensor as llmcompressor stored it. Pure Python (no
torch): safetensors is a JSON header and raw bytes.
Usage: make_llmcompressor_golden.py LLMCOMPRESSOR_DIR OUT_FILE"""
import glob
import json
import os
import struct
import sys

MODULES = ["model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.k_proj",
           "model.layers.1.self_attn.v_proj", "model.layers.2.block_sparse_moe.experts.5.w1",
           "model.layers.2.block_sparse_moe.experts.5.w2",
           "model.layers.2.block_sparse_moe.experts.5.w3"]
SUFFIXES = ["weight_packed", "weight_scale", "weight_global_scale"]


def read(path):
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    base = 8 + length
    return {name: (entry["dtype"], entry["shape"], data[base + entry["data_offsets"][0]:
                                                        base + entry["data_offsets"][1]])
            for name, entry in header.items() if name != "__metadata__"}


def main():
    source, out = sys.argv[1], sys.argv[2]
    tensors = {}
    for path in sorted(glob.glob(os.path.join(source, "*.safetensors"))):
        tensors.update(read(path))
    header, blobs, offset = {}, [], 0
    for module in MODULES:
        for suffix in SUFFIXES:
            name = f"{module}.{suffix}"
            dtype, shape, blob = tensors[name]
            header[name] = {"dtype": dtype, "shape": shape,
                            "data_offsets": [offset, offset + len(blob)]}
            blobs.append(blob)
            offset += len(blob)
    header["__metadata__"] = {"source": "llmcompressor 0.14.0.1 model_free_ptq NVFP4A16, "
                                        "compressed-tensors 0.19.0, tiny preset seed 1"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


if __name__ == "__main__":
    main()
