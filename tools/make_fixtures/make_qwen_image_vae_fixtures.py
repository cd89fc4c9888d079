#!/usr/bin/env python3
"""Write the fixtures of paradiff's AutoencoderKLQwenImage tests, computed by diffusers.

  tests/fixtures/qwen_image_vae/<case>/  vae/ (save_pretrained folder), inputs.safetensors,
                                         outputs.safetensors

Run from the repository root (a few seconds; one thread):
  nice -n 10 .venv-tools/bin/python tools/make_fixtures/make_qwen_image_vae_fixtures.py

Per case: a tiny random AutoencoderKLQwenImage, every parameter overwritten from a seeded
torch.Generator (by sorted name), so a rerun reproduces every file byte for byte. The parameters
are rounded to bf16 (and back) before anything is computed and saved as bf16, which halves the
files: the outputs are the fp32 forward over exactly the stored values.

inputs.safetensors:
  latents      (B, z_dim, 1, h, w)  normalised latents, as the transformer produces them
  z            (B, z_dim, 1, h, w)  the pipeline's un-normalisation: latents / (1 / std) + mean
  image        (B, 3, 1, H, W)      in [-1, 1]
outputs.safetensors:
  decoded      (B, 3, 1, 8h, 8w)    vae.decode(z).sample (one frame, clamped to [-1, 1])
  mean         (B, z_dim, 1, H/8, W/8) vae.encode(image).latent_dist.mean
  normalized   (B, z_dim, 1, ...)   (mean - latents_mean) * (1 / latents_std), as the img2img
                                    pipeline normalises encoded images
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
OUT = REPO_ROOT / "tests" / "fixtures" / "qwen_image_vae"

CASES = [
    {
        # The shape of diffusers' pipeline-test VAE (dim_mult [1, 2, 4], one res block, one
        # temporal downsampling), narrower so that the files stay small.
        "name": "tests_like",
        "seed": 4101,
        "config": dict(base_dim=6, z_dim=4, dim_mult=[1, 2, 4], num_res_blocks=1,
                       temperal_downsample=[False, True]),
        "latents": (1, 4, 1, 6, 6),
        "image": (1, 3, 1, 24, 24),
    },
    {
        # Odd one: non-square and odd sizes, batch 2, two res blocks, three stages with the
        # temporal flags at other positions, attention-free mid block widths not a power of 2.
        "name": "odd_nonsquare",
        "seed": 4102,
        "config": dict(base_dim=6, z_dim=5, dim_mult=[1, 2, 3, 2], num_res_blocks=2,
                       temperal_downsample=[True, False, True]),
        "latents": (2, 5, 1, 3, 5),
        "image": (2, 3, 1, 21, 35),
    },
]


def randomize_(model: torch.nn.Module, gen: torch.Generator) -> None:
    """Overwrites every parameter, by sorted name, so that every path of the model matters."""
    params = dict(model.named_parameters())
    for name in sorted(params):
        p = params[name]
        with torch.no_grad():
            if name.endswith(".weight") and p.ndim in (4, 5):
                # fan_in of one temporal tap: only one tap sees data for a single frame.
                fan_in = p.shape[1] * p.shape[-1] * p.shape[-2]
                p.copy_(torch.randn(p.shape, generator=gen) / fan_in**0.5)
                if name.endswith("to_qkv.weight"):
                    c = p.shape[1]
                    p[: 2 * c] *= 2.0  # sharper attention: q and k matter
            elif name.endswith(".gamma"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            else:
                raise ValueError(f"unexpected parameter {name} {tuple(p.shape)}")


def check_rms(what: str, t: torch.Tensor) -> None:
    rms = t.float().pow(2).mean().sqrt().item()
    print(f"    {what}: shape {tuple(t.shape)} rms {rms:.4g} max|x| {t.abs().max().item():.4g}")
    assert torch.isfinite(t).all() and 0.05 < rms < 50, (what, rms)


def write_case(case: dict) -> None:
    from diffusers import AutoencoderKLQwenImage

    out_dir = OUT / case["name"]
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    gen = torch.Generator().manual_seed(case["seed"])
    z_dim = case["config"]["z_dim"]
    mean_list = [round(v, 4) for v in (0.8 * torch.randn(z_dim, generator=gen)).tolist()]
    std_list = [round(v, 4) for v in (0.5 + 2.5 * torch.rand(z_dim, generator=gen)).tolist()]
    config = dict(case["config"], latents_mean=mean_list, latents_std=std_list)
    model = AutoencoderKLQwenImage(**config).eval()
    randomize_(model, gen)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    latents = torch.randn(case["latents"], generator=gen)
    image = torch.rand(case["image"], generator=gen) * 2 - 1

    # QwenImagePipeline's un-normalisation before decode (fp32 here).
    mean = torch.tensor(model.config.latents_mean).view(1, z_dim, 1, 1, 1)
    rstd = 1.0 / torch.tensor(model.config.latents_std).view(1, z_dim, 1, 1, 1)
    with torch.no_grad():
        z = latents / rstd + mean
        decoded = model.decode(z).sample
        enc_mean = model.encode(image).latent_dist.mean
        normalized = (enc_mean - mean) * rstd
        # A float64 run bounds diffusers' own fp32 rounding.
        model64 = AutoencoderKLQwenImage(**config).eval()
        model64.load_state_dict(model.state_dict())
        model64 = model64.double()
        decoded64 = model64.decode(z.double()).sample
        mean64 = model64.encode(image.double()).latent_dist.mean
    for what, a, b in (("decode", decoded, decoded64), ("encode mean", enc_mean, mean64)):
        rel = ((a.double() - b).norm() / b.norm()).item()
        print(f"    {what}: fp32 vs fp64 relative difference {rel:.3g}")
        assert rel < 1e-5, rel
    check_rms("decoded", decoded)
    check_rms("encoded mean", enc_mean)
    # Some decoded values must reach the clamp, and not all of them.
    clamped = (decoded.abs() == 1.0).float().mean().item()
    print(f"    decoded: {100 * clamped:.1f}% clamped")
    # Sensitivity: the unused temporal taps must not matter, the used one must.
    with torch.no_grad():
        probe = AutoencoderKLQwenImage(**config).eval()
        probe.load_state_dict(model.state_dict())
        w = probe.decoder.conv_in.weight
        w[:, :, :2] += torch.randn(w[:, :, :2].shape, generator=gen)
        same = probe.decode(z).sample
        assert torch.equal(same, decoded) or (same - decoded).abs().max() < 1e-6
        w[:, :, 2] *= 1.1
        moved = ((probe.decode(z).sample - decoded).norm() / decoded.norm()).item()
        print(f"    decode sensitivity to conv_in's last tap (x1.1): {moved:.3g}")
        assert moved > 1e-3

    bf16 = AutoencoderKLQwenImage(**config).eval()
    bf16.load_state_dict(model.state_dict())
    bf16.to(torch.bfloat16).save_pretrained(str(out_dir / "vae"), safe_serialization=True)
    save_file({"latents": latents.contiguous(), "z": z.contiguous(), "image": image.contiguous()},
              str(out_dir / "inputs.safetensors"))
    save_file({"decoded": decoded.contiguous(), "mean": enc_mean.contiguous(),
               "normalized": normalized.contiguous()}, str(out_dir / "outputs.safetensors"))
    reloaded = AutoencoderKLQwenImage.from_pretrained(str(out_dir / "vae"),
                                                      torch_dtype=torch.float32).eval()
    assert next(iter(reloaded.parameters())).dtype == torch.float32
    with torch.no_grad():
        again = reloaded.decode(z).sample
    diff = (again - decoded).abs().max().item()
    print(f"    reload: max|decode difference| {diff:.3g}")
    assert diff <= 1e-5


def main() -> None:
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    for case in CASES:
        print(f"  qwen_image_vae {case['name']}")
        write_case(case)
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"  total {total / 1e6:.2f} MB")
    assert total < 1.5e6, total


if __name__ == "__main__":
    main()
