#!/usr/bin/env python3
"""Write a tiny random QwenImagePipeline and diffusers' outputs on it.

tests/fixtures/qwen_image_pipeline/:
  tiny/                  QwenImagePipeline.save_pretrained: the committed tiny components
                         (tokenizers/qwen2, qwen2_5_vl/tiny text encoder, qwen_image_vae/tests_like
                         VAE), a tiny random transformer sized to fit them, and Qwen-Image's own
                         scheduler config (dynamic shift, max_shift 0.9, shift_terminal 0.02)
  cases.json             each call's arguments
  expected.safetensors   case<i>.initial_latents (prepare_latents from the seed, packed),
                         case<i>.final_latents (output_type="latent"), case<i>.image
                         (output_type="pt", (1, 3, H, W) in [0, 1])

Run from the repository root (a few seconds):
  nice -n 10 .venv-tools/bin/python tools/make_fixtures/make_qwen_image_pipeline_fixtures.py

The cases cover no CFG, true CFG (negative prompt, true_cfg_scale > 1, whose norm rescaling
matters only then), non-square sizes and a max_sequence_length that cuts the prompt.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2Tokenizer  # noqa: E402

from diffusers import (  # noqa: E402
    AutoencoderKLQwenImage,
    FlowMatchEulerDiscreteScheduler,
    QwenImagePipeline,
    QwenImageTransformer2DModel,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_qwen_image_transformer_fixtures import randomize_  # noqa: E402

FIXTURES = REPO_ROOT / "tests" / "fixtures"
OUT = FIXTURES / "qwen_image_pipeline"

# Qwen/Qwen-Image's scheduler_config.json values (see shared/reference/qwen-image.md §1.1).
SCHEDULER = dict(base_image_seq_len=256, base_shift=0.5, invert_sigmas=False,
                 max_image_seq_len=8192, max_shift=0.9, num_train_timesteps=1000, shift=1.0,
                 shift_terminal=0.02, stochastic_sampling=False, time_shift_type="exponential",
                 use_beta_sigmas=False, use_dynamic_shifting=True, use_exponential_sigmas=False,
                 use_karras_sigmas=False)

# in_channels = 4 · the VAE's z_dim (4); joint_attention_dim = the text encoder's hidden size (32).
TRANSFORMER = dict(patch_size=2, in_channels=16, out_channels=4, num_layers=2,
                   attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                   guidance_embeds=False, axes_dims_rope=(8, 4, 4))

# Sizes are multiples of vae_scale_factor · 2 = 8 (the VAE downsamples twice).
CASES = [
    dict(prompt="a red fox in the snow", negative_prompt=None, true_cfg_scale=1.0,
         height=24, width=40, num_inference_steps=3, max_sequence_length=512, seed=0),
    dict(prompt="a small blue house by a lake", negative_prompt="blurry, low quality",
         true_cfg_scale=4.0, height=32, width=24, num_inference_steps=3,
         max_sequence_length=512, seed=42),
    dict(prompt="Café naïve, 東京 — a much longer prompt than the cut allows", negative_prompt=" ",
         true_cfg_scale=2.5, height=16, width=32, num_inference_steps=2, max_sequence_length=9,
         seed=7),
]


def build_pipeline() -> QwenImagePipeline:
    gen = torch.Generator().manual_seed(1405)
    transformer = QwenImageTransformer2DModel(**TRANSFORMER)
    randomize_(transformer, gen)
    transformer.eval()
    return QwenImagePipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**SCHEDULER),
        vae=AutoencoderKLQwenImage.from_pretrained(FIXTURES / "qwen_image_vae/tests_like/vae").eval(),
        text_encoder=Qwen2_5_VLForConditionalGeneration.from_pretrained(
            FIXTURES / "qwen2_5_vl/tiny/text_encoder", dtype=torch.float32).eval(),
        tokenizer=Qwen2Tokenizer.from_pretrained(FIXTURES / "tokenizers/qwen2"),
        transformer=transformer,
    )


def call(pipe: QwenImagePipeline, case: dict, output_type: str) -> torch.Tensor:
    return pipe(prompt=case["prompt"], negative_prompt=case["negative_prompt"],
                true_cfg_scale=case["true_cfg_scale"], height=case["height"],
                width=case["width"], num_inference_steps=case["num_inference_steps"],
                max_sequence_length=case["max_sequence_length"],
                generator=torch.Generator().manual_seed(case["seed"]),
                output_type=output_type, return_dict=False)[0]


@torch.no_grad()
def main() -> None:
    torch.set_num_threads(1)
    if OUT.exists():
        shutil.rmtree(OUT)
    build_pipeline().save_pretrained(OUT / "tiny")
    # Everything below runs on the saved folder, as paradiff reads it.
    pipe = QwenImagePipeline.from_pretrained(OUT / "tiny", torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    expected = {}
    for i, case in enumerate(CASES):
        h = 2 * (case["height"] // (pipe.vae_scale_factor * 2))
        w = 2 * (case["width"] // (pipe.vae_scale_factor * 2))
        expected[f"case{i}.initial_latents"] = pipe.prepare_latents(
            1, pipe.transformer.config.in_channels // 4, case["height"], case["width"],
            torch.float32, "cpu", torch.Generator().manual_seed(case["seed"]))
        assert expected[f"case{i}.initial_latents"].shape == (1, (h // 2) * (w // 2), 16)
        expected[f"case{i}.final_latents"] = call(pipe, case, "latent")
        expected[f"case{i}.image"] = call(pipe, case, "pt")
        if case["negative_prompt"] is not None:
            # The fixture must see the guidance: without it the latents move far beyond 1e-3.
            plain = call(pipe, dict(case, negative_prompt=None), "latent")
            diff = ((plain - expected[f"case{i}.final_latents"]).norm() /
                    expected[f"case{i}.final_latents"].norm()).item()
            print(f"case {i}: relative effect of true CFG on the final latents {diff:.3g}")
            assert diff > 1e-2, diff
    save_file({k: v.contiguous().float() for k, v in expected.items()},
              OUT / "expected.safetensors")
    (OUT / "cases.json").write_text(json.dumps(CASES, indent=2, ensure_ascii=False) + "\n")
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"wrote {OUT} ({total / 1e6:.2f} MB)")
    assert total < 2e6, total


if __name__ == "__main__":
    main()
