#!/usr/bin/env python3
"""Writes a random-weight FluxTransformer2DModel folder with FLUX.1-dev's exact configuration
(19 double + 38 single blocks, 24 heads of 128, joint dim 4096, guidance embedding), in bf16 and
sharded with an index as diffusers saves it, plus matching inputs for `paradiff
transformer-forward` beside the folder (`<out>-inputs.safetensors`).

The checkpoint is about 23.8 GB: write it into a scratch folder, never into the repository.
`--double-layers/--single-layers` write a smaller model of the same width.

The parameter names and shapes come from diffusers' own FluxTransformer2DModel built on the meta
device (no memory), so the folder loads in diffusers unchanged. Values are drawn with numpy in
chunks and written straight into the shard files, so memory stays at a few hundred MB whatever
the model's size: Linear weights uniform in +-1/sqrt(fan_in) (PyTorch's default Linear bound),
biases uniform in +-0.02, RMSNorm weights 1. Deterministic for a given --seed.

Needs the tool virtualenv (torch and diffusers for the meta model, numpy):
    .venv-tools/bin/python tools/big_model/write_random_flux_checkpoint.py --out /scratch/flux-dev-random
"""

import argparse
import json
import os
import struct
import sys
import time

import numpy as np

FLUX_DEV_CONFIG = {
    "_class_name": "FluxTransformer2DModel",
    "attention_head_dim": 128,
    "axes_dims_rope": [16, 56, 56],
    "guidance_embeds": True,
    "in_channels": 64,
    "joint_attention_dim": 4096,
    "num_attention_heads": 24,
    "num_layers": 19,
    "num_single_layers": 38,
    "out_channels": None,
    "patch_size": 1,
    "pooled_projection_dim": 768,
}


def meta_parameters(config):
    """(name, shape) of every tensor in diffusers' state dict for `config`, in its order."""
    import torch
    from diffusers import FluxTransformer2DModel

    kwargs = {k: v for k, v in config.items() if not k.startswith("_")}
    with torch.device("meta"):
        model = FluxTransformer2DModel(**kwargs)
    return [(name, tuple(t.shape)) for name, t in model.state_dict().items()]


def bf16_bits(values_f32):
    """Round-to-nearest-even float32 -> bfloat16 bit patterns (finite inputs)."""
    bits = values_f32.view(np.uint32)
    rounded = bits + (0x7FFF + ((bits >> 16) & 1))
    return (rounded >> 16).astype(np.uint16)


def fill_tensor(name, shape, rng, out_file, chunk=1 << 24):
    """Writes one tensor's bf16 bytes, drawn in chunks of `chunk` values."""
    count = int(np.prod(shape))
    if name.endswith(".weight") and len(shape) == 1 and "norm_" in name:
        out_file.write(np.full(count, 0x3F80, dtype=np.uint16).tobytes())  # 1.0
        return
    if name.endswith(".weight") and len(shape) == 2:
        bound = 1.0 / np.sqrt(shape[1])
    elif name.endswith(".bias"):
        bound = 0.02
    else:
        raise SystemExit(f"unexpected parameter {name} {shape}: extend fill_tensor")
    done = 0
    while done < count:
        n = min(chunk, count - done)
        v = rng.random(n, dtype=np.float32)
        v *= np.float32(2.0 * bound)
        v -= np.float32(bound)
        out_file.write(bf16_bits(v).tobytes())
        done += n


def write_shard(path, tensors, rng, progress):
    header = {}
    offset = 0
    for name, shape in tensors:
        nbytes = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    header["__metadata__"] = {"format": "pt"}
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path + ".partial", "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for name, shape in tensors:
            fill_tensor(name, shape, rng, f)
            progress(int(np.prod(shape)) * 2)
    os.replace(path + ".partial", path)
    return offset


def write_inputs(path, config, height, width, text_tokens, seed):
    """FLUX transformer inputs for a height x width image: latents packed 2x2 (16x downscale)."""
    rng = np.random.default_rng(seed + 1)
    h, w = height // 16, width // 16
    tensors = {
        "hidden_states": rng.standard_normal((1, h * w, config["in_channels"]), dtype=np.float32),
        "encoder_hidden_states": rng.standard_normal(
            (1, text_tokens, config["joint_attention_dim"]), dtype=np.float32),
        "pooled_projections": rng.standard_normal(
            (1, config["pooled_projection_dim"]), dtype=np.float32),
        "timestep": np.array([0.75], dtype=np.float32),
        "guidance": np.array([3.5], dtype=np.float32),
        "img_ids": np.stack(
            [np.zeros(h * w), np.repeat(np.arange(h), w), np.tile(np.arange(w), h)], axis=1
        ).astype(np.float32),
        "txt_ids": np.zeros((text_tokens, 3), dtype=np.float32),
    }
    header, offset, datas = {}, 0, []
    for name, t in tensors.items():
        data = np.ascontiguousarray(t).tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        datas.append(data)
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for d in datas:
            f.write(d)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder to create (must not exist, or be empty)")
    p.add_argument("--double-layers", type=int, default=19)
    p.add_argument("--single-layers", type=int, default=38)
    p.add_argument("--shard-gb", type=float, default=5.0, help="shard size limit, GB (1e9 bytes)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--height", type=int, default=256, help="inputs.safetensors: image height")
    p.add_argument("--width", type=int, default=256, help="inputs.safetensors: image width")
    p.add_argument("--text-tokens", type=int, default=512, help="inputs: T5 tokens (FLUX.1-dev: 512)")
    a = p.parse_args()
    if a.height % 16 or a.width % 16:
        raise SystemExit(f"--height/--width must be multiples of 16, got {a.height}x{a.width}")
    if os.path.exists(a.out) and os.listdir(a.out):
        raise SystemExit(f"--out {a.out} exists and is not empty; remove it or pick another folder")

    config = dict(FLUX_DEV_CONFIG, num_layers=a.double_layers, num_single_layers=a.single_layers)
    params = meta_parameters(config)
    total = sum(int(np.prod(s)) * 2 for _, s in params)
    free = os.statvfs(os.path.dirname(os.path.abspath(a.out)) or ".")
    if free.f_bavail * free.f_frsize < total * 1.05:
        raise SystemExit(f"{a.out}: {total / 1e9:.1f} GB needed, "
                         f"{free.f_bavail * free.f_frsize / 1e9:.1f} GB free")

    shards, current, size = [], [], 0
    limit = int(a.shard_gb * 1e9)
    for name, shape in params:
        nbytes = int(np.prod(shape)) * 2
        if current and size + nbytes > limit:
            shards.append(current)
            current, size = [], 0
        current.append((name, shape))
        size += nbytes
    shards.append(current)

    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(dict(config, _diffusers_version="0.42.1"), f, indent=2)
    rng = np.random.default_rng(a.seed)
    written, start = [0], time.time()

    def progress(nbytes):
        written[0] += nbytes
        if written[0] // (1 << 30) != (written[0] - nbytes) // (1 << 30) or written[0] == total:
            rate = written[0] / max(time.time() - start, 1e-9) / 1e6
            print(f"\r{written[0] / 1e9:6.1f} / {total / 1e9:.1f} GB written ({rate:.0f} MB/s)",
                  end="", file=sys.stderr, flush=True)

    weight_map = {}
    n = len(shards)
    for i, tensors in enumerate(shards):
        file = "diffusion_pytorch_model.safetensors" if n == 1 else \
            f"diffusion_pytorch_model-{i + 1:05d}-of-{n:05d}.safetensors"
        write_shard(os.path.join(a.out, file), tensors, rng, progress)
        for name, _ in tensors:
            weight_map[name] = file
    print(file=sys.stderr)
    if n > 1:
        with open(os.path.join(a.out, "diffusion_pytorch_model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    inputs = a.out.rstrip("/") + "-inputs.safetensors"
    write_inputs(inputs, config, a.height, a.width,
                 a.text_tokens, a.seed)
    print(f"{a.out}: {len(params)} tensors, {total / 1e9:.2f} GB in {n} shard(s), "
          f"{sum(int(np.prod(s)) for _, s in params) / 1e9:.2f} B parameters; "
          f"{inputs} for {a.height}x{a.width} and {a.text_tokens} text tokens "
          f"({time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
