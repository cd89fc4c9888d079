#!/usr/bin/env python3
"""Write the fixtures of paradiff's VAE, scheduler and generator tests, computed by diffusers/torch.

  tests/fixtures/vae/<case>/        vae/ (save_pretrained folder), inputs.safetensors, outputs.safetensors
  tests/fixtures/scheduler/         cases.json, step.safetensors, <config>/scheduler_config.json
  tests/fixtures/generator/         cases.json, values.safetensors

Run from the repository root (about half a minute; one thread):
  nice -n 10 .venv-tools/bin/python tools/make_fixtures/make_vae_scheduler_fixtures.py [--only vae|scheduler|generator]

Deterministic: every random value comes from a torch.Generator seeded from the tables below, in a
fixed order, so a rerun reproduces every file byte for byte. See tools/make_fixtures/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "tests" / "fixtures"

# ------------------------------------------------------------------------------------------------
# Generator

# (name, seed, calls): each call is (shape, dtype) drawn in order from ONE generator; the values
# of every call are checked. Seeds are written to JSON as decimal strings (uint64 range).
GENERATOR_CASES = [
    ("sizes_seed0", 0, [((1,), "float32"), ((7,), "float32"), ((15,), "float32"),
                        ((16,), "float32"), ((17,), "float32"), ((33,), "float32"),
                        ((1000,), "float32")]),
    ("scalar_cache", 42, [((7,), "float32"), ((7,), "float32"), ((3,), "float32"),
                          ((33,), "float32"), ((5,), "float32")]),
    ("flux_512", 1234, [((1, 16, 64, 64), "float32")]),
    ("flux_1024_batch2", 2**32 + 7, [((2, 16, 128, 128), "float32")]),
    ("big_seed", 2**63 + 5, [((1, 16, 12, 10), "float32"), ((31,), "float32")]),
    ("default_seed", None, [((40,), "float32")]),  # torch.Generator() without manual_seed
    ("bf16", 7, [((1,), "bfloat16"), ((17,), "bfloat16"), ((1000,), "bfloat16"),
                 ((1, 16, 64, 64), "bfloat16")]),
    ("f16", 8, [((9,), "float16"), ((1001,), "float16")]),
]
# Cases also recorded with torch's DEFAULT CPU kernel (ATEN_CPU_CAPABILITY=default, libm math).
GENERATOR_DEFAULT_KERNEL_CASES = ["sizes_seed0", "flux_512", "bf16"]
# diffusers' randn_tensor with a list of generators (one per batch entry).
GENERATOR_LIST_CASE = ("list_of_generators", [11, 12, 13], (3, 16, 6, 4))
FULL_LIMIT = 4096  # tensors up to this many elements are stored whole; larger: head, tail, hash
PART = 256


def fnv1a64(t: torch.Tensor) -> str:
    """FNV-1a (64-bit) over the tensor's bytes, as the C++ test computes it."""
    h = 0xCBF29CE484222325
    for b in t.contiguous().view(torch.uint8).numpy().tobytes():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def draw_generator_cases() -> dict:
    """Runs the table in this process and returns {case: [tensor per call]}."""
    out = {}
    for name, seed, calls in GENERATOR_CASES:
        g = torch.Generator() if seed is None else torch.Generator().manual_seed(seed)
        out[name] = [torch.randn(shape, generator=g, dtype=getattr(torch, dt)) for shape, dt in calls]
    return out


def write_generator(out_dir: Path) -> None:
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    avx = draw_generator_cases()
    # The DEFAULT kernel, from a fresh interpreter with torch's dispatch forced to it.
    env = dict(os.environ, ATEN_CPU_CAPABILITY="default")
    code = (
        "import sys, torch; sys.path.insert(0, %r); import make_vae_scheduler_fixtures as m; "
        "torch.set_num_threads(1); r = m.draw_generator_cases(); "
        "torch.save({k: r[k] for k in m.GENERATOR_DEFAULT_KERNEL_CASES}, sys.argv[1])"
    ) % str(Path(__file__).parent)
    tmp = out_dir / "_default.pt"
    subprocess.run([sys.executable, "-c", code, str(tmp)], env=env, check=True)
    default = torch.load(tmp)
    tmp.unlink()

    tensors = {}
    cases = []

    def record(name: str, kernel: str, seed, calls, values) -> None:
        entries = []
        for k, ((shape, dt), t) in enumerate(zip(calls, values)):
            key = f"{name}.{kernel}.{k}"
            stored = t.float() if t.dtype != torch.float32 else t  # safetensors holds f32 copies
            entry = {"shape": list(shape), "dtype": dt, "fnv1a64": fnv1a64(t)}
            if t.numel() <= FULL_LIMIT:
                tensors[key] = stored.reshape(-1).clone()
                entry["stored"] = "full"
            else:
                flat = stored.reshape(-1)
                tensors[key + ".head"] = flat[:PART].clone()
                tensors[key + ".tail"] = flat[-PART:].clone()
                entry["stored"] = "head_tail"
            entries.append(entry)
        cases.append({"name": name, "kernel": kernel,
                      "seed": None if seed is None else str(seed), "calls": entries})

    for name, seed, calls in GENERATOR_CASES:
        record(name, "avx2", seed, calls, avx[name])
        if name in GENERATOR_DEFAULT_KERNEL_CASES:
            record(name, "default", seed, calls, default[name])
            differ = sum(int((a != b).sum()) for a, b in zip(avx[name], default[name]))
            print(f"  generator {name}: the DEFAULT kernel differs in {differ} values")

    from diffusers.utils.torch_utils import randn_tensor

    name, seeds, shape = GENERATOR_LIST_CASE
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    listed = randn_tensor(shape, generator=gens, dtype=torch.float32)
    tensors[f"{name}.avx2.0"] = listed.reshape(-1).clone()
    cases.append({"name": name, "kernel": "avx2", "seeds": [str(s) for s in seeds],
                  "calls": [{"shape": list(shape), "dtype": "float32", "stored": "full",
                             "fnv1a64": fnv1a64(listed)}]})
    save_file(tensors, str(out_dir / "values.safetensors"))
    (out_dir / "cases.json").write_text(json.dumps({"cases": cases}, indent=1) + "\n")
    print(f"  generator: {len(cases)} cases, {len(tensors)} tensors")


# ------------------------------------------------------------------------------------------------
# Scheduler

FLUX_DEV = dict(base_image_seq_len=256, base_shift=0.5, max_image_seq_len=4096, max_shift=1.15,
                num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True)
FLUX_SCHNELL = dict(base_image_seq_len=256, base_shift=0.5, max_image_seq_len=4096, max_shift=1.15,
                    num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=False)
SCHEDULER_CONFIGS = {
    "flux_dev": FLUX_DEV,
    "flux_schnell": FLUX_SCHNELL,
    "static_shift3": dict(num_train_timesteps=1000, shift=3.0),
    "linear_terminal": dict(FLUX_DEV, time_shift_type="linear", shift_terminal=0.02),
    "inverted": dict(FLUX_DEV, invert_sigmas=True, base_shift=0.3, max_shift=1.4),
    "karras": dict(FLUX_DEV, use_karras_sigmas=True),
    "exponential_static": dict(num_train_timesteps=800, shift=2.5, use_exponential_sigmas=True),
}
# (config, mode, steps, image_seq_len or sigmas). mode "flux": what FluxPipeline does
# (sigmas = linspace(1, 1/N, N), mu = calculate_shift(image_seq_len)); "default":
# scheduler.set_timesteps(N, mu=mu) without sigmas; "sigmas": custom sigmas, mu from seq len.
SCHEDULER_CASES = [
    ("flux_dev", "flux", 28, 4096),
    ("flux_dev", "flux", 50, 1024),
    ("flux_dev", "flux", 1, 256),
    ("flux_dev", "flux", 4, 3600),
    ("flux_dev", "flux", 7, 77),
    ("flux_dev", "default", 28, 4096),
    ("flux_dev", "sigmas", 5, 2025, [1.0, 0.8, 0.55, 0.3, 0.05]),
    ("flux_schnell", "flux", 4, 4096),
    ("flux_schnell", "default", 4, 4096),
    ("static_shift3", "flux", 28, 1024),
    ("static_shift3", "default", 20, 1024),
    ("linear_terminal", "flux", 12, 2048),
    ("linear_terminal", "default", 12, 2048),
    ("inverted", "flux", 9, 1500),
    ("karras", "flux", 10, 4096),
    ("karras", "default", 10, 1024),
    ("exponential_static", "flux", 8, 1024),
    ("exponential_static", "default", 8, 1024),
]
STEP_SHAPE = (2, 35, 64)  # (B, tokens, 64) packed latents


def flux_mu(config: dict, seq: int) -> float:
    from diffusers.pipelines.flux.pipeline_flux import calculate_shift

    return calculate_shift(seq, config.get("base_image_seq_len", 256),
                           config.get("max_image_seq_len", 4096), config.get("base_shift", 0.5),
                           config.get("max_shift", 1.15))


def exact_floats(t: torch.Tensor) -> list:
    """float32 values as Python floats (exact in JSON: repr round-trips doubles)."""
    return [float(v) for v in t.to(torch.float32).tolist()]


def write_scheduler(out_dir: Path) -> None:
    from diffusers import FlowMatchEulerDiscreteScheduler
    from diffusers.pipelines.flux.pipeline_flux import retrieve_timesteps

    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    for name in ("flux_dev", "flux_schnell", "karras"):
        FlowMatchEulerDiscreteScheduler(**SCHEDULER_CONFIGS[name]).save_config(str(out_dir / name))

    cases = []
    for entry in SCHEDULER_CASES:
        cfg_name, mode, n, seq = entry[:4]
        config = SCHEDULER_CONFIGS[cfg_name]
        s = FlowMatchEulerDiscreteScheduler(**config)
        mu = flux_mu(config, seq)
        if mode == "flux":
            sigmas = np.linspace(1.0, 1 / n, n)
            retrieve_timesteps(s, n, "cpu", sigmas=sigmas, mu=mu)
        elif mode == "default":
            s.set_timesteps(n, device="cpu", mu=mu)
        else:
            s.set_timesteps(device="cpu", sigmas=entry[4], mu=mu)
        case = {"config": cfg_name, "mode": mode, "steps": n, "image_seq_len": seq, "mu": mu,
                "timesteps": exact_floats(s.timesteps), "sigmas": exact_floats(s.sigmas),
                "sigma_min": float(s.sigma_min), "sigma_max": float(s.sigma_max)}
        if mode == "sigmas":
            case["custom_sigmas"] = entry[4]
        if mode == "flux":
            # What FluxPipeline hands the transformer: t.expand(B).to(latents.dtype) / 1000.
            case["transformer_timestep_f32"] = exact_floats(
                torch.stack([t.expand(1).to(torch.float32) / 1000 for t in s.timesteps]).reshape(-1))
            case["transformer_timestep_bf16"] = exact_floats(
                torch.stack([t.expand(1).to(torch.bfloat16) / 1000 for t in s.timesteps]).reshape(-1))
        cases.append(case)

    # step(): f32 and bf16 model outputs, and stochastic sampling with a CPU generator.
    g = torch.Generator().manual_seed(2024)
    sample = torch.randn(STEP_SHAPE, generator=g)
    model_output = torch.randn(STEP_SHAPE, generator=g)
    step_tensors = {"sample": sample, "model_output": model_output}
    step_index = 1

    def scheduler_at_step(config: dict) -> FlowMatchEulerDiscreteScheduler:
        sched = FlowMatchEulerDiscreteScheduler(**config)
        retrieve_timesteps(sched, 4, "cpu", sigmas=np.linspace(1.0, 1 / 4, 4),
                           mu=flux_mu(config, 1024))
        sched.set_begin_index(step_index)
        return sched

    for dtype, key in ((torch.float32, "f32"), (torch.bfloat16, "bf16"), (torch.float16, "f16")):
        sched = scheduler_at_step(FLUX_DEV)
        prev = sched.step(model_output.to(dtype), sched.timesteps[step_index], sample.to(dtype),
                          return_dict=False)[0]
        assert prev.dtype == dtype
        step_tensors[f"prev_{key}"] = prev.float()
    sched = scheduler_at_step(dict(FLUX_DEV, stochastic_sampling=True))
    prev = sched.step(model_output, sched.timesteps[step_index], sample,
                      generator=torch.Generator().manual_seed(99), return_dict=False)[0]
    step_tensors["prev_stochastic_seed99"] = prev
    save_file(step_tensors, str(out_dir / "step.safetensors"))
    meta = {"configs": SCHEDULER_CONFIGS, "cases": cases,
            "step": {"config": "flux_dev", "steps": 4, "image_seq_len": 1024,
                     "step_index": step_index, "stochastic_seed": 99}}
    (out_dir / "cases.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"  scheduler: {len(cases)} cases")


# ------------------------------------------------------------------------------------------------
# VAE

VAE_CASES = [
    {
        # FLUX's VAE in miniature: 16 latent channels, scaling and shift factors, no quant convs.
        "name": "tiny_flux",
        "seed": 3001,
        "config": dict(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 2,
                       up_block_types=["UpDecoderBlock2D"] * 2, block_out_channels=[16, 32],
                       layers_per_block=1, act_fn="silu", latent_channels=16, norm_num_groups=8,
                       sample_size=32, scaling_factor=0.3611, shift_factor=0.1159,
                       force_upcast=True, use_quant_conv=False, use_post_quant_conv=False,
                       mid_block_add_attention=True),
        "latents": (1, 16, 12, 10),
        "image": (1, 3, 21, 19),
    },
    {
        # Three blocks, two layers per block, quant convs, batch 2, an output channel count of 4.
        "name": "quant_three_blocks",
        "seed": 3002,
        "config": dict(in_channels=3, out_channels=4, down_block_types=["DownEncoderBlock2D"] * 3,
                       up_block_types=["UpDecoderBlock2D"] * 3, block_out_channels=[8, 16, 24],
                       layers_per_block=2, act_fn="silu", latent_channels=4, norm_num_groups=4,
                       sample_size=32, scaling_factor=0.18215, shift_factor=None,
                       use_quant_conv=True, use_post_quant_conv=True,
                       mid_block_add_attention=True),
        "latents": (2, 4, 5, 7),
        "image": (2, 3, 17, 23),
    },
    {
        "name": "no_attention",
        "seed": 3003,
        "config": dict(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 2,
                       up_block_types=["UpDecoderBlock2D"] * 2, block_out_channels=[8, 16],
                       layers_per_block=1, latent_channels=16, norm_num_groups=4,
                       scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False,
                       use_post_quant_conv=False, mid_block_add_attention=False),
        "latents": (1, 16, 3, 9),
        "image": (1, 3, 8, 6),
    },
]


def randomize_vae_(model: torch.nn.Module, gen: torch.Generator) -> None:
    """Overwrites every parameter, by sorted name, so that every path of the model matters."""
    params = dict(model.named_parameters())
    for name in sorted(params):
        p = params[name]
        with torch.no_grad():
            if name.endswith(".weight") and p.ndim in (2, 4):
                fan_in = p[0].numel()
                gain = 2.0 if (".to_q." in name or ".to_k." in name) else 1.0
                p.copy_(torch.randn(p.shape, generator=gen) * (gain / fan_in**0.5))
            elif name.endswith(".weight") and p.ndim == 1 and "norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif name.endswith(".bias") and "norm" in name:
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            else:
                raise ValueError(f"unexpected parameter {name} {tuple(p.shape)}")


def check_rms(what: str, t: torch.Tensor) -> None:
    rms = t.float().pow(2).mean().sqrt().item()
    print(f"    {what}: shape {tuple(t.shape)} rms {rms:.4g} max|x| {t.abs().max().item():.4g}")
    assert torch.isfinite(t).all() and 0.05 < rms < 50, (what, rms)


def write_vae_case(case: dict, out_root: Path) -> None:
    from diffusers import AutoencoderKL

    out_dir = out_root / case["name"]
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    gen = torch.Generator().manual_seed(case["seed"])
    model = AutoencoderKL(**case["config"]).eval()
    randomize_vae_(model, gen)
    # Inputs: latents in the transformer's space (as the pipeline holds them), an image in [-1, 1].
    transformer_latents = torch.randn(case["latents"], generator=gen)
    image = torch.rand(case["image"], generator=gen) * 2 - 1
    sf, shift = model.config.scaling_factor, model.config.shift_factor
    with torch.no_grad():
        z = transformer_latents / sf
        if shift is not None:
            z = z + shift
        decoded = model.decode(z, return_dict=False)[0]
        posterior = model.encode(image).latent_dist
        mean, logvar = posterior.mean, posterior.logvar
        sampled = posterior.sample(generator=torch.Generator().manual_seed(7))
        # A float64 run of the same model bounds diffusers' own fp32 rounding.
        model64 = AutoencoderKL(**case["config"]).eval()
        model64.load_state_dict(model.state_dict())
        model64 = model64.double()
        decoded64 = model64.decode(z.double(), return_dict=False)[0]
        mean64 = model64.encode(image.double()).latent_dist.mean
    for what, a, b in (("decode", decoded, decoded64), ("encode mean", mean, mean64)):
        rel = ((a.double() - b).norm() / b.norm()).item()
        print(f"    {what}: fp32 vs fp64 relative difference {rel:.3g}")
        assert rel < 1e-5, rel
    check_rms("decoded", decoded)
    check_rms("encoded mean", mean)
    model.save_pretrained(str(out_dir / "vae"), safe_serialization=True)
    save_file({"transformer_latents": transformer_latents.contiguous(), "latents": z.contiguous(),
               "image": image.contiguous()}, str(out_dir / "inputs.safetensors"))
    save_file({"decoded": decoded.contiguous(), "mean": mean.contiguous(),
               "logvar": logvar.contiguous(), "sample_seed7": sampled.contiguous()},
              str(out_dir / "outputs.safetensors"))
    # Verification: diffusers reloads the folder and reproduces the outputs.
    reloaded = AutoencoderKL.from_pretrained(str(out_dir / "vae"), torch_dtype=torch.float32).eval()
    with torch.no_grad():
        again = reloaded.decode(z, return_dict=False)[0]
    diff = (again - decoded).abs().max().item()
    print(f"    reload: max|decode difference| {diff:.3g}")
    assert diff <= 1e-5 * decoded.abs().max().item()


def write_vae(out_root: Path) -> None:
    out_root.mkdir(parents=True, exist_ok=True)
    for case in VAE_CASES:
        print(f"  vae {case['name']}")
        write_vae_case(case, out_root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["vae", "scheduler", "generator"], action="append")
    args = parser.parse_args()
    torch.set_num_threads(1)
    parts = args.only or ["generator", "scheduler", "vae"]
    if "generator" in parts:
        write_generator(FIXTURES / "generator")
    if "scheduler" in parts:
        write_scheduler(FIXTURES / "scheduler")
    if "vae" in parts:
        write_vae(FIXTURES / "vae")


if __name__ == "__main__":
    main()
