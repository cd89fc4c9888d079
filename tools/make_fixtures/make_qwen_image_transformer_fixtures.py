#!/usr/bin/env python3
"""Write tiny random QwenImageTransformer2DModel fixtures computed by diffusers.

For every case in CASES this writes tests/fixtures/qwen_image_transformer/<case>/:
  transformer/            save_pretrained folder (config.json + safetensors, sharded for some cases)
  inputs.safetensors      forward's arguments, all f32: hidden_states, encoder_hidden_states,
                          timestep, img_shapes (B, N, 3) = (frame, height, width) of each of a
                          sample's N images, and encoder_hidden_states_mask (1 valid, 0 padding)
                          when the case has one
  output.safetensors      `sample`: diffusers' fp32 output (eval mode, no_grad)

Run from the repository root (takes a few seconds):
  nice -n 10 .venv-tools/bin/python tools/make_fixtures/make_qwen_image_transformer_fixtures.py

Deterministic: one torch.Generator per case, one thread. Every case is then reloaded through
diffusers' from_pretrained and recomputed, and its sensitivity is checked: changing the prompt,
the image positions (img_shapes transposed) or the masked-out text must move the output well
beyond the fp32 tolerance (or, for the masked text, not at all).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

import diffusers  # noqa: E402
from diffusers import QwenImageTransformer2DModel  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "tests" / "fixtures" / "qwen_image_transformer"

# `config` goes verbatim to QwenImageTransformer2DModel. `grid` is the packed latent grid
# (height, width) of the single t2i image; `masks` gives, per batch element, the valid text
# positions (None: no mask is passed at all, as the pipeline does when nothing is padded).
CASES = [
    {
        # diffusers' own transformer test config (tests/models/transformers/...qwenimage.py).
        "name": "tiny",
        "seed": 1401,
        "config": dict(patch_size=2, in_channels=16, out_channels=4, num_layers=2,
                       attention_head_dim=16, num_attention_heads=2, joint_attention_dim=16,
                       guidance_embeds=False, axes_dims_rope=(8, 4, 4)),
        "grid": (4, 4),
        "txt_len": 8,
        "masks": [list(range(8))],  # a mask of ones, as that test passes
        "timestep": [1.0],
        "weights_dtype": "float32",
        "max_shard_size": None,
    },
    {
        # Three heads (divides neither 2 nor 4), an odd non-square grid, no mask, sharded weights.
        "name": "heads3_nonsquare",
        "seed": 1402,
        "config": dict(patch_size=2, in_channels=12, out_channels=3, num_layers=1,
                       attention_head_dim=12, num_attention_heads=3, joint_attention_dim=20,
                       guidance_embeds=False, axes_dims_rope=(4, 4, 4)),
        "grid": (5, 7),
        "txt_len": 9,
        "masks": None,
        "timestep": [0.731],
        "weights_dtype": "float32",
        "max_shard_size": "60KB",
    },
    {
        # Batch 3 with a padded mask each: trailing padding, holes, and nothing valid at all.
        # Five heads, out_channels null (= in_channels), bf16 weights.
        "name": "mask_batch3",
        "seed": 1403,
        "config": dict(patch_size=2, in_channels=8, out_channels=None, num_layers=1,
                       attention_head_dim=8, num_attention_heads=5, joint_attention_dim=24,
                       guidance_embeds=False, axes_dims_rope=(2, 2, 4)),
        "grid": (6, 3),
        "txt_len": 11,
        "masks": [list(range(7)), [0, 1, 3, 4, 6, 9, 10], []],
        "timestep": [0.9, 0.4375, 0.05],
        "weights_dtype": "bfloat16",
        "max_shard_size": None,
    },
    {
        # Realistic positions: a 32 x 24 grid (heights -16..15, text from 16) and 300 padded
        # text tokens reaching position 315, 260 of them valid.
        "name": "large_positions",
        "seed": 1404,
        "config": dict(patch_size=2, in_channels=4, out_channels=1, num_layers=1,
                       attention_head_dim=16, num_attention_heads=2, joint_attention_dim=8,
                       guidance_embeds=False, axes_dims_rope=(4, 6, 6)),
        "grid": (32, 24),
        "txt_len": 300,
        "masks": [list(range(260))],
        "timestep": [0.6],
        "weights_dtype": "float32",
        "max_shard_size": None,
    },
]

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@torch.no_grad()
def randomize_(model: torch.nn.Module, gen: torch.Generator) -> None:
    """Overwrite every parameter so that text, positions and modulation all matter.

    Linear weights N(0, 1/fan_in); biases N(0, 0.1^2), except the modulation biases (img_mod,
    txt_mod, norm_out) N(0, 1); q/k RMSNorm weights 2 + N(0, 0.3^2) (sharper attention, so RoPE
    and the prompt move the output); txt_norm weight 1 + N(0, 0.15^2). Sorted-name order.
    """
    params = dict(model.named_parameters())
    for name in sorted(params):
        p = params[name]
        if name.endswith(".weight") and p.ndim == 2:
            v = torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[1])
        elif name.endswith(".bias") and p.ndim == 1:
            std = 1.0 if ("_mod." in name or name.startswith("norm_out.")) else 0.1
            v = std * torch.randn(p.shape, generator=gen)
        elif name.endswith(("norm_q.weight", "norm_k.weight", "norm_added_q.weight",
                            "norm_added_k.weight")):
            v = 2.0 + 0.3 * torch.randn(p.shape, generator=gen)
        elif name == "txt_norm.weight":
            v = 1.0 + 0.15 * torch.randn(p.shape, generator=gen)
        else:
            raise RuntimeError(f"unexpected parameter {name} {tuple(p.shape)}")
        p.copy_(v.to(p.dtype))


def build_model(case: dict, gen: torch.Generator) -> QwenImageTransformer2DModel:
    model = QwenImageTransformer2DModel(**case["config"])
    randomize_(model, gen)
    if case["weights_dtype"] == "bfloat16":
        # Weights rounded to bf16, computed in fp32: the bf16 checkpoint holds exactly them.
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.to(torch.bfloat16).to(torch.float32))
    return model.eval()


def make_inputs(case: dict, gen: torch.Generator) -> dict[str, torch.Tensor]:
    cfg = case["config"]
    b = len(case["timestep"])
    h, w = case["grid"]
    s_txt = case["txt_len"]
    inputs = {
        "hidden_states": torch.randn(b, h * w, cfg["in_channels"], generator=gen),
        "encoder_hidden_states": torch.randn(b, s_txt, cfg["joint_attention_dim"], generator=gen),
        "timestep": torch.tensor(case["timestep"], dtype=torch.float32),
        "img_shapes": torch.tensor([[[1, h, w]]] * b, dtype=torch.float32),
    }
    if case["masks"] is not None:
        assert len(case["masks"]) == b
        mask = torch.zeros(b, s_txt, dtype=torch.float32)
        for i, valid in enumerate(case["masks"]):
            mask[i, valid] = 1.0
        inputs["encoder_hidden_states_mask"] = mask
        # What a padded pipeline batch holds there: zero rows (any value must do).
        inputs["encoder_hidden_states"] *= mask[:, :, None]
    return inputs


@torch.no_grad()
def forward(model: QwenImageTransformer2DModel, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    img_shapes = [[tuple(int(v) for v in s) for s in sample] for sample in inputs["img_shapes"]]
    mask = inputs.get("encoder_hidden_states_mask")
    return model(hidden_states=inputs["hidden_states"],
                 encoder_hidden_states=inputs["encoder_hidden_states"],
                 encoder_hidden_states_mask=None if mask is None else mask.to(torch.int64),
                 timestep=inputs["timestep"], img_shapes=img_shapes, return_dict=True).sample


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def check_sensitivity(case: dict, model, inputs: dict, sample: torch.Tensor) -> None:
    """The output must depend on the prompt and the positions, and not on masked-out text."""
    name = case["name"]
    alt = dict(inputs)
    alt["encoder_hidden_states"] = inputs["encoder_hidden_states"].flip(1)
    prompt = relative(forward(model, alt), sample)
    alt = dict(inputs)
    h, w = case["grid"]
    # Same token count, other positions: the grid transposed, or for a square one reshaped.
    other = (w, h) if h != w else (2 * h, w // 2)
    alt["img_shapes"] = torch.tensor([[[1, *other]]] * len(inputs["timestep"]), dtype=torch.float32)
    positions = relative(forward(model, alt), sample)
    print(f"[{name}] sensitivity: prompt flipped {prompt:.2f}, positions moved {positions:.2f}")
    if prompt < 0.05 or positions < 0.05:
        raise RuntimeError(f"{name}: the output barely depends on the prompt or the positions")
    if "encoder_hidden_states_mask" in inputs:
        alt = dict(inputs)
        noise = torch.randn(inputs["encoder_hidden_states"].shape, generator=torch.Generator().manual_seed(7))
        keep = inputs["encoder_hidden_states_mask"][:, :, None]
        alt["encoder_hidden_states"] = inputs["encoder_hidden_states"] + noise * (1 - keep)
        masked = relative(forward(model, alt), sample)
        print(f"[{name}] masked-out text replaced by noise: relative change {masked:.2e}")
        if masked > 1e-6:
            raise RuntimeError(f"{name}: masked-out text changes the output")


def write_case(case: dict, out_root: Path) -> None:
    name = case["name"]
    case_dir = out_root / name
    if case_dir.exists():
        shutil.rmtree(case_dir)
    case_dir.mkdir(parents=True)
    gen = torch.Generator().manual_seed(case["seed"])
    model = build_model(case, gen)
    inputs = make_inputs(case, gen)
    sample = forward(model, inputs).contiguous()
    rms = sample.pow(2).mean().sqrt().item()
    if not (0.05 < rms < 50) or not torch.isfinite(sample).all():
        raise RuntimeError(f"{name}: unhealthy output rms {rms}")
    print(f"[{name}] sample {tuple(sample.shape)} rms {rms:.4f}")
    check_sensitivity(case, model, inputs, sample)

    wdt = DTYPES[case["weights_dtype"]]
    to_save = model
    if wdt != torch.float32:
        to_save = QwenImageTransformer2DModel.from_config(model.config).to(wdt)
        to_save.load_state_dict({k: v.to(wdt) for k, v in model.state_dict().items()})
    kw = {"max_shard_size": case["max_shard_size"]} if case["max_shard_size"] else {}
    to_save.save_pretrained(case_dir / "transformer", safe_serialization=True, **kw)
    save_file({k: v.contiguous() for k, v in inputs.items()}, str(case_dir / "inputs.safetensors"))
    save_file({"sample": sample}, str(case_dir / "output.safetensors"))


def verify_case(case: dict, out_root: Path) -> None:
    case_dir = out_root / case["name"]
    inputs = load_file(str(case_dir / "inputs.safetensors"))
    expected = load_file(str(case_dir / "output.safetensors"))["sample"]
    model = QwenImageTransformer2DModel.from_pretrained(str(case_dir / "transformer"),
                                                        torch_dtype=torch.float32).eval()
    err = relative(forward(model, inputs), expected)
    print(f"[{case['name']}] reloaded through from_pretrained: relative difference {err:.2e}")
    if err > 1e-6:
        raise RuntimeError(f"{case['name']}: reloaded model differs ({err})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--verify-only", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, diffusers {diffusers.__version__}")
    args.out.mkdir(parents=True, exist_ok=True)
    for case in CASES:
        if not args.verify_only:
            write_case(case, args.out)
        verify_case(case, args.out)
    print("all fixtures written and verified")
    return 0


if __name__ == "__main__":
    sys.exit(main())
