"""A mid-size random FLUX pipeline for serving figures (docs/serving.md): the tiny test pipeline's
text encoders, tokenizers, scheduler and VAE, with the mid-size transformer of
docs/benchmarks.md (8 heads x 128 = 1024 wide, 4 double + 8 single blocks, bf16 weights) drawn
at random by diffusers. Written into a scratch folder, never committed.

    .venv-tools/bin/python tools/serve_load/make_midsize_pipeline.py OUT_DIR
"""

import json
import pathlib
import shutil
import sys

import torch
from diffusers import FluxTransformer2DModel

root = pathlib.Path(__file__).resolve().parents[2]
tiny = root / "tests/fixtures/flux_pipeline/tiny"
out = pathlib.Path(sys.argv[1])
if out.exists():
    shutil.rmtree(out)
shutil.copytree(tiny, out, ignore=shutil.ignore_patterns("transformer"))
tiny_config = json.loads((tiny / "transformer/config.json").read_text())
torch.manual_seed(0)
model = FluxTransformer2DModel(
    patch_size=1, in_channels=tiny_config["in_channels"], num_layers=4, num_single_layers=8,
    attention_head_dim=128, num_attention_heads=8,
    joint_attention_dim=tiny_config["joint_attention_dim"],
    pooled_projection_dim=tiny_config["pooled_projection_dim"],
    guidance_embeds=tiny_config["guidance_embeds"], axes_dims_rope=[16, 56, 56],
).to(torch.bfloat16)
model.save_pretrained(out / "transformer")
params = sum(p.numel() for p in model.parameters())
print(f"wrote {out}: transformer {params / 1e6:.1f} M parameters (bf16)")
