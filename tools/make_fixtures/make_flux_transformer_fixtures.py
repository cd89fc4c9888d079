#!/usr/bin/env python3
"""Write tiny random FluxTransformer2DModel fixtures computed by diffusers.

For every case in CASES this writes tests/fixtures/flux_transformer/<case>/:
  transformer/            save_pretrained folder (config.json + diffusion_pytorch_model.safetensors)
  inputs.safetensors      forward's arguments, all f32 (guidance only when guidance_embeds)
  output.safetensors      `sample`: diffusers' fp32 output (eval mode, no_grad)
and, for some cases, extra files (see the case table and README.md):
  output_bf16.safetensors `sample`: diffusers' output with the model and inputs in bf16 (as f32)
  bfl/flux-bfl.safetensors the same weights in the original Black Forest Labs single-file layout

Run from the repository root (takes well under a minute):
  nice -n 10 .venv-tools/bin/python tools/make_fixtures/make_flux_transformer_fixtures.py

Everything is deterministic: one torch.Generator per case, seeded from the case table, one thread.
After writing, every case is checked by reloading it through diffusers (from_pretrained, and
from_single_file for the BFL file) and recomputing the output from inputs.safetensors.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import sys
import types
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything here is local; never touch the network
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

import diffusers  # noqa: E402
from diffusers import FluxTransformer2DModel  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "tests" / "fixtures" / "flux_transformer"

# One entry per fixture case. `config` is passed verbatim to FluxTransformer2DModel (patch_size=1
# always, like every released FLUX.1 transformer); the rest describes the inputs.
CASES = [
    {
        "name": "tiny_noguidance",
        "seed": 1001,
        "config": dict(
            patch_size=1,
            in_channels=12,
            out_channels=20,
            num_layers=2,
            num_single_layers=2,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=40,
            pooled_projection_dim=28,
            guidance_embeds=False,
            axes_dims_rope=[4, 6, 6],
        ),
        "batch": 1,
        "grid": (5, 7),  # latent-token grid h x w -> S_img = 35
        "txt_len": 13,
        "timestep": [0.73],
        "guidance": None,
        "weights_dtype": "float32",
        "bfl": False,
        "bf16_output": False,
    },
    {
        "name": "guidance_batch2",
        "seed": 2002,
        "config": dict(
            patch_size=1,
            in_channels=16,
            out_channels=16,
            num_layers=1,
            num_single_layers=3,
            attention_head_dim=24,
            num_attention_heads=3,
            joint_attention_dim=56,
            pooled_projection_dim=32,
            guidance_embeds=True,
            axes_dims_rope=[8, 8, 8],
        ),
        "batch": 2,
        "grid": (6, 9),  # S_img = 54
        "txt_len": 7,
        "timestep": [0.73, 0.215],
        "guidance": [3.5, 5.0],
        "weights_dtype": "float32",
        "bfl": False,
        "bf16_output": False,
    },
    {
        "name": "in64_outnull",
        "seed": 3003,
        "config": dict(
            patch_size=1,
            in_channels=64,
            out_channels=None,
            num_layers=1,
            num_single_layers=2,
            attention_head_dim=12,
            num_attention_heads=4,
            joint_attention_dim=36,
            pooled_projection_dim=20,
            guidance_embeds=False,
            axes_dims_rope=[4, 4, 4],
        ),
        "batch": 1,
        "grid": (4, 6),  # S_img = 24
        "txt_len": 11,
        "timestep": [0.5],
        "guidance": None,
        "weights_dtype": "float32",
        "bfl": False,
        "bf16_output": False,
    },
    {
        "name": "bf16_weights_bfl",
        "seed": 4004,
        "config": dict(
            patch_size=1,
            in_channels=32,
            out_channels=None,
            num_layers=2,
            num_single_layers=2,
            attention_head_dim=24,
            num_attention_heads=2,
            joint_attention_dim=72,
            pooled_projection_dim=40,
            guidance_embeds=True,
            axes_dims_rope=[4, 10, 10],
        ),
        "batch": 1,
        "grid": (3, 11),  # S_img = 33
        "txt_len": 5,
        # bf16-exact on purpose: diffusers computes timestep*1000 and guidance*1000 in the model's
        # dtype, so a bf16 run turns e.g. 3.5 -> 3504 and 0.73 -> 732 (see README). 0.25 -> 250 and
        # 4.0 -> 4000 are exact, so output_bf16 differs from output only by bf16 arithmetic.
        "timestep": [0.25],
        "guidance": [4.0],
        "weights_dtype": "bfloat16",
        "bfl": True,
        "bf16_output": True,
    },
    {
        # Not what FluxPipeline passes: position ids that are non-zero on every axis, so that the
        # first RoPE axis and the text tokens' rotation are exercised too (with pipeline ids both
        # are the identity: txt_ids are zeros and img_ids[:, 0] is 0). Axes are deliberately
        # unequal and out of order. img_ids rows: [1, y + 2, x + 5] (a FLUX-Kontext-like
        # reference-image marker on axis 0); txt_ids: integers in [0, 24) drawn from the generator.
        "name": "nonzero_ids",
        "seed": 5005,
        "config": dict(
            patch_size=1,
            in_channels=8,
            out_channels=None,
            num_layers=1,
            num_single_layers=1,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=24,
            pooled_projection_dim=12,
            guidance_embeds=False,
            axes_dims_rope=[6, 4, 6],
        ),
        "batch": 1,
        "grid": (3, 5),  # S_img = 15
        "txt_len": 6,
        "timestep": [0.41],
        "guidance": None,
        "ids": "nonzero",
        "weights_dtype": "float32",
        "bfl": False,
        "bf16_output": False,
    },
]

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


# --------------------------------------------------------------------------------------------
# Model construction and randomisation
# --------------------------------------------------------------------------------------------

def is_qk_norm_weight(name: str) -> bool:
    return name.endswith(("norm_q.weight", "norm_k.weight", "norm_added_q.weight", "norm_added_k.weight"))


@torch.no_grad()
def randomize_(model: torch.nn.Module, gen: torch.Generator) -> None:
    """Overwrite every parameter so that no code path is a no-op.

    Linear weights: N(0, 1/fan_in) (unit gain); biases: N(0, 0.1^2);
    RMSNorm weights: 1 + N(0, 0.15^2). Anything else would be a surprise and fails loudly.
    Parameters are visited in sorted-name order so the result depends only on the seed.
    """
    params = dict(model.named_parameters())
    for name in sorted(params):
        p = params[name]
        if name.endswith(".weight") and p.ndim == 2:
            fan_in = p.shape[1]
            v = torch.randn(p.shape, generator=gen) / math.sqrt(fan_in)
        elif name.endswith(".bias") and p.ndim == 1:
            v = 0.1 * torch.randn(p.shape, generator=gen)
        elif is_qk_norm_weight(name) and p.ndim == 1:
            v = 1.0 + 0.15 * torch.randn(p.shape, generator=gen)
        else:
            raise RuntimeError(f"unexpected parameter {name} {tuple(p.shape)}")
        p.copy_(v.to(p.dtype))


def build_model(case: dict, gen: torch.Generator) -> FluxTransformer2DModel:
    model = FluxTransformer2DModel(**case["config"])
    randomize_(model, gen)
    if case["weights_dtype"] == "bfloat16":
        # Round every weight to bf16 and keep computing in fp32: the checkpoint is then saved in
        # bf16 exactly (no information lost), and the fp32 reference uses the very same values.
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.to(torch.bfloat16).to(torch.float32))
    model.eval()
    return model


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------

def image_ids(h: int, w: int) -> torch.Tensor:
    """Rows [0, y, x], row-major over an h x w grid (y outer), like FluxPipeline."""
    ys = torch.arange(h, dtype=torch.float32)[:, None].expand(h, w)
    xs = torch.arange(w, dtype=torch.float32)[None, :].expand(h, w)
    ids = torch.stack([torch.zeros(h, w), ys, xs], dim=-1)
    return ids.reshape(h * w, 3).contiguous()


def make_inputs(case: dict, gen: torch.Generator) -> dict[str, torch.Tensor]:
    cfg = case["config"]
    b = case["batch"]
    h, w = case["grid"]
    s_img, s_txt = h * w, case["txt_len"]
    assert len(case["timestep"]) == b
    inputs = {
        "hidden_states": torch.randn(b, s_img, cfg["in_channels"], generator=gen),
        "encoder_hidden_states": torch.randn(b, s_txt, cfg["joint_attention_dim"], generator=gen),
        "pooled_projections": torch.randn(b, cfg["pooled_projection_dim"], generator=gen),
        "timestep": torch.tensor(case["timestep"], dtype=torch.float32),
        "img_ids": image_ids(h, w),
        "txt_ids": torch.zeros(s_txt, 3, dtype=torch.float32),
    }
    if case.get("ids", "pipeline") == "nonzero":
        inputs["img_ids"] = inputs["img_ids"] + torch.tensor([1.0, 2.0, 5.0])
        inputs["txt_ids"] = torch.randint(0, 24, (s_txt, 3), generator=gen).to(torch.float32)
    else:
        assert case.get("ids", "pipeline") == "pipeline"
    if cfg["guidance_embeds"]:
        assert case["guidance"] is not None and len(case["guidance"]) == b
        inputs["guidance"] = torch.tensor(case["guidance"], dtype=torch.float32)
    else:
        assert case["guidance"] is None
    return inputs


@torch.no_grad()
def forward(model: FluxTransformer2DModel, inputs: dict[str, torch.Tensor],
            dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """model(...).sample with the float inputs cast to `dtype` (ids stay f32)."""
    kw = {}
    for k, v in inputs.items():
        kw[k] = v if k in ("img_ids", "txt_ids") else v.to(dtype)
    out = model(**kw, return_dict=True).sample
    return out


# --------------------------------------------------------------------------------------------
# diffusers -> Black Forest Labs single-file layout
# --------------------------------------------------------------------------------------------

def diffusers_to_bfl(sd: dict[str, torch.Tensor], num_layers: int, num_single_layers: int,
                     guidance: bool) -> dict[str, torch.Tensor]:
    """Rename/fuse a diffusers FluxTransformer2DModel state dict into BFL's flux naming.

    Every diffusers key must be consumed exactly once; leftovers are an error.
    """
    src = dict(sd)
    out: dict[str, torch.Tensor] = {}

    def take(name: str) -> torch.Tensor:
        return src.pop(name)

    def linear(bfl: str, dif: str) -> None:
        out[f"{bfl}.weight"] = take(f"{dif}.weight")
        out[f"{bfl}.bias"] = take(f"{dif}.bias")

    def fused(bfl: str, difs: list[str]) -> None:
        out[f"{bfl}.weight"] = torch.cat([take(f"{d}.weight") for d in difs], dim=0)
        out[f"{bfl}.bias"] = torch.cat([take(f"{d}.bias") for d in difs], dim=0)

    linear("img_in", "x_embedder")
    linear("txt_in", "context_embedder")
    linear("time_in.in_layer", "time_text_embed.timestep_embedder.linear_1")
    linear("time_in.out_layer", "time_text_embed.timestep_embedder.linear_2")
    linear("vector_in.in_layer", "time_text_embed.text_embedder.linear_1")
    linear("vector_in.out_layer", "time_text_embed.text_embedder.linear_2")
    if guidance:
        linear("guidance_in.in_layer", "time_text_embed.guidance_embedder.linear_1")
        linear("guidance_in.out_layer", "time_text_embed.guidance_embedder.linear_2")

    for i in range(num_layers):
        d, t = f"double_blocks.{i}", f"transformer_blocks.{i}"
        linear(f"{d}.img_mod.lin", f"{t}.norm1.linear")
        linear(f"{d}.txt_mod.lin", f"{t}.norm1_context.linear")
        fused(f"{d}.img_attn.qkv", [f"{t}.attn.to_q", f"{t}.attn.to_k", f"{t}.attn.to_v"])
        fused(f"{d}.txt_attn.qkv", [f"{t}.attn.add_q_proj", f"{t}.attn.add_k_proj", f"{t}.attn.add_v_proj"])
        out[f"{d}.img_attn.norm.query_norm.scale"] = take(f"{t}.attn.norm_q.weight")
        out[f"{d}.img_attn.norm.key_norm.scale"] = take(f"{t}.attn.norm_k.weight")
        out[f"{d}.txt_attn.norm.query_norm.scale"] = take(f"{t}.attn.norm_added_q.weight")
        out[f"{d}.txt_attn.norm.key_norm.scale"] = take(f"{t}.attn.norm_added_k.weight")
        linear(f"{d}.img_attn.proj", f"{t}.attn.to_out.0")
        linear(f"{d}.txt_attn.proj", f"{t}.attn.to_add_out")
        linear(f"{d}.img_mlp.0", f"{t}.ff.net.0.proj")
        linear(f"{d}.img_mlp.2", f"{t}.ff.net.2")
        linear(f"{d}.txt_mlp.0", f"{t}.ff_context.net.0.proj")
        linear(f"{d}.txt_mlp.2", f"{t}.ff_context.net.2")

    for i in range(num_single_layers):
        s, t = f"single_blocks.{i}", f"single_transformer_blocks.{i}"
        fused(f"{s}.linear1", [f"{t}.attn.to_q", f"{t}.attn.to_k", f"{t}.attn.to_v", f"{t}.proj_mlp"])
        linear(f"{s}.linear2", f"{t}.proj_out")
        out[f"{s}.norm.query_norm.scale"] = take(f"{t}.attn.norm_q.weight")
        out[f"{s}.norm.key_norm.scale"] = take(f"{t}.attn.norm_k.weight")
        linear(f"{s}.modulation.lin", f"{t}.norm.linear")

    linear("final_layer.linear", "proj_out")
    # diffusers' norm_out.linear emits (scale, shift); BFL's adaLN_modulation.1 emits (shift, scale).
    for suffix in ("weight", "bias"):
        scale, shift = take(f"norm_out.linear.{suffix}").chunk(2, dim=0)
        out[f"final_layer.adaLN_modulation.1.{suffix}"] = torch.cat([shift, scale], dim=0)

    if src:
        raise RuntimeError(f"diffusers keys not converted: {sorted(src)}")
    return {k: v.contiguous() for k, v in out.items()}


@contextlib.contextmanager
def flux_single_file_converter_for_inner_dim(inner_dim: int):
    """Let diffusers' own BFL->diffusers converter handle a non-3072 inner dim.

    diffusers.loaders.single_file_utils.convert_flux_transformer_checkpoint_to_diffusers hard-codes
    `inner_dim = 3072` (it splits single_blocks.N.linear1 with fixed sizes), so from_single_file
    cannot load any FLUX that is not full size. We run the very same function with that single
    constant replaced (a copy of its code object with 3072 -> inner_dim) and register the copy in
    SINGLE_FILE_LOADABLE_CLASSES for the duration of the `with` block.
    """
    from diffusers.loaders import single_file_model as sfm
    from diffusers.loaders import single_file_utils as sfu

    orig = sfu.convert_flux_transformer_checkpoint_to_diffusers
    code = orig.__code__
    hits = [c for c in code.co_consts if type(c) is int and c == 3072]
    if len(hits) != 1:
        raise RuntimeError(f"expected one 3072 constant in diffusers' flux converter, found {len(hits)}")
    consts = tuple(inner_dim if (type(c) is int and c == 3072) else c for c in code.co_consts)
    patched = types.FunctionType(code.replace(co_consts=consts), orig.__globals__, orig.__name__,
                                 orig.__defaults__, orig.__closure__)
    patched.__kwdefaults__ = orig.__kwdefaults__
    entry = sfm.SINGLE_FILE_LOADABLE_CLASSES["FluxTransformer2DModel"]
    saved = entry["checkpoint_mapping_fn"]
    entry["checkpoint_mapping_fn"] = patched
    try:
        yield patched
    finally:
        entry["checkpoint_mapping_fn"] = saved


# --------------------------------------------------------------------------------------------
# Writing and verifying one case
# --------------------------------------------------------------------------------------------

def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))


def describe(x: torch.Tensor) -> str:
    x = x.double()
    return (f"norm={x.norm().item():.4f} rms={x.pow(2).mean().sqrt().item():.4f} "
            f"max|x|={x.abs().max().item():.4f}")


def check_magnitude(name: str, sample: torch.Tensor) -> None:
    rms = sample.double().pow(2).mean().sqrt().item()
    if not (0.05 < rms < 50.0) or not torch.isfinite(sample).all():
        raise RuntimeError(f"{name}: output magnitude looks unhealthy (rms={rms})")


def assert_same(what: str, a: torch.Tensor, b: torch.Tensor, atol: float = 0.0) -> float:
    if a.shape != b.shape or a.dtype != b.dtype:
        raise RuntimeError(f"{what}: shape/dtype {tuple(a.shape)}/{a.dtype} vs {tuple(b.shape)}/{b.dtype}")
    diff = (a.double() - b.double()).abs().max().item()
    if diff > atol:
        raise RuntimeError(f"{what}: max |diff| {diff} > {atol}")
    return diff


def write_case(case: dict, out_root: Path) -> dict:
    name = case["name"]
    cfg = case["config"]
    case_dir = out_root / name
    if case_dir.exists():
        shutil.rmtree(case_dir)
    case_dir.mkdir(parents=True)

    gen = torch.Generator().manual_seed(case["seed"])
    model = build_model(case, gen)
    inputs = make_inputs(case, gen)

    sample = forward(model, inputs).contiguous()
    check_magnitude(name, sample)
    print(f"[{name}] sample {tuple(sample.shape)} {describe(sample)}")

    weights_dtype = DTYPES[case["weights_dtype"]]
    model_to_save = model if weights_dtype == torch.float32 else \
        FluxTransformer2DModel.from_config(model.config).to(weights_dtype)
    if model_to_save is not model:
        model_to_save.load_state_dict({k: v.to(weights_dtype) for k, v in model.state_dict().items()})
    model_to_save.save_pretrained(case_dir / "transformer", safe_serialization=True)

    save_tensors(case_dir / "inputs.safetensors", inputs)
    save_tensors(case_dir / "output.safetensors", {"sample": sample})

    if case["bf16_output"]:
        # What diffusers computes when the model and the float inputs are bf16 (as a bf16
        # pipeline runs it). Stored as f32 for convenience; compare loosely (bf16 tolerance).
        for k in ("timestep", "guidance"):
            if k in inputs:
                v = inputs[k]
                assert torch.equal((v.to(torch.bfloat16) * 1000).float(), v * 1000), f"{k} not bf16-exact"
        m16 = FluxTransformer2DModel.from_config(model.config)
        m16.load_state_dict(model.state_dict())
        m16 = m16.to(torch.bfloat16).eval()
        s16 = forward(m16, inputs, torch.bfloat16).float().contiguous()
        rel = ((s16 - sample).norm() / sample.norm()).item()
        print(f"[{name}] bf16 sample {describe(s16)} rel.err vs fp32 {rel:.3e}")
        save_tensors(case_dir / "output_bf16.safetensors", {"sample": s16})

    if case["bfl"]:
        bfl = diffusers_to_bfl({k: v.to(weights_dtype) for k, v in model.state_dict().items()},
                               cfg["num_layers"], cfg["num_single_layers"], cfg["guidance_embeds"])
        (case_dir / "bfl").mkdir()
        save_tensors(case_dir / "bfl" / "flux-bfl.safetensors", bfl)
        print(f"[{name}] BFL checkpoint: {len(bfl)} tensors")

    return {"name": name, "dir": case_dir, "model": model, "inputs": inputs, "sample": sample}


@torch.no_grad()
def realign_(model: torch.nn.Module) -> None:
    """Copy every parameter into fresh (64-byte aligned) memory.

    Weights loaded from a safetensors file may be mmapped views at unaligned addresses; PyTorch's
    CPU GEMMs then take another code path and fp32 results differ in the last bits (~1e-6 here).
    With fresh copies the computation is bitwise the one that produced the fixture.
    """
    for p in model.parameters():
        p.data = p.data.clone()


def check_reloaded(what: str, model: torch.nn.Module, inputs: dict[str, torch.Tensor],
                   expected: torch.Tensor) -> None:
    got = forward(model, inputs)
    scale = expected.abs().max().item()
    diff = assert_same(f"{what} output (as loaded)", got, expected, atol=1e-5 * scale)
    realign_(model)
    assert_same(f"{what} output (re-aligned weights)", forward(model, inputs), expected)
    print(f"[{what}] output as loaded: max|diff| {diff:.2e} (max|ref| {scale:.2f}); "
          f"with re-aligned weights: bitwise identical")


def verify_case(case: dict, out_root: Path) -> None:
    name = case["name"]
    case_dir = out_root / name
    inputs = load_file(str(case_dir / "inputs.safetensors"))
    expected = load_file(str(case_dir / "output.safetensors"))["sample"]

    # 1. diffusers folder -> from_pretrained (fp32 compute, whatever the stored dtype).
    model = FluxTransformer2DModel.from_pretrained(str(case_dir / "transformer"), torch_dtype=torch.float32)
    model.eval()
    stored = {p.dtype for p in model.parameters()}
    assert stored == {torch.float32}, stored
    check_reloaded(f"{name}: from_pretrained", model, inputs, expected)

    if case["bf16_output"]:
        exp16 = load_file(str(case_dir / "output_bf16.safetensors"))["sample"]
        m16 = FluxTransformer2DModel.from_pretrained(str(case_dir / "transformer"), torch_dtype=torch.bfloat16)
        realign_(m16)
        got16 = forward(m16.eval(), inputs, torch.bfloat16).float()
        assert_same(f"{name}: bf16 output", got16, exp16)
        print(f"[{name}] verify bf16 from_pretrained: output bitwise identical")

    if case["bfl"]:
        verify_bfl(case, case_dir, model, inputs, expected)


def verify_bfl(case: dict, case_dir: Path, ref_model: FluxTransformer2DModel,
               inputs: dict[str, torch.Tensor], expected: torch.Tensor) -> None:
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type

    name = case["name"]
    cfg = case["config"]
    path = case_dir / "bfl" / "flux-bfl.safetensors"
    bfl = load_file(str(path))
    kind = infer_diffusers_model_type(bfl)
    want = "flux-dev" if cfg["guidance_embeds"] else "flux-schnell"
    if kind != want:
        raise RuntimeError(f"{name}: diffusers infers model type {kind!r} for the BFL file, want {want!r}")
    print(f"[{name}] diffusers infer_diffusers_model_type(BFL file) = {kind!r}")

    load_kw = dict(config=str(case_dir), subfolder="transformer", local_files_only=True,
                   torch_dtype=torch.float32)
    # Unpatched diffusers is expected to fail on any inner dim != 3072 (see the context manager).
    try:
        FluxTransformer2DModel.from_single_file(str(path), **load_kw)
        print(f"[{name}] note: unpatched from_single_file loaded the tiny BFL file")
    except Exception as e:  # noqa: BLE001
        print(f"[{name}] unpatched from_single_file fails as expected: {type(e).__name__}: {e}")

    inner = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    with flux_single_file_converter_for_inner_dim(inner):
        model = FluxTransformer2DModel.from_single_file(str(path), **load_kw)
    model.eval()
    ref_sd = ref_model.state_dict()
    got_sd = model.state_dict()
    if set(ref_sd) != set(got_sd):
        raise RuntimeError(f"{name}: key sets differ after from_single_file")
    for k in ref_sd:
        assert_same(f"{name}: from_single_file param {k}", got_sd[k], ref_sd[k])
    check_reloaded(f"{name}: from_single_file(BFL)", model, inputs, expected)
    print(f"[{name}] verify from_single_file(BFL, config=<case dir>, subfolder='transformer'): "
          f"all {len(ref_sd)} params bitwise identical to the diffusers model")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="fixture root (default: %(default)s)")
    ap.add_argument("--cases", nargs="*", help="only these case names")
    ap.add_argument("--verify-only", action="store_true", help="do not write, only verify what is there")
    args = ap.parse_args(argv)

    torch.set_num_threads(1)
    torch.manual_seed(0)  # nothing should draw from the global generator; this pins it anyway
    print(f"torch {torch.__version__}, diffusers {diffusers.__version__}")

    cases = [c for c in CASES if not args.cases or c["name"] in args.cases]
    if args.cases and len(cases) != len(args.cases):
        raise SystemExit(f"unknown case in {args.cases}; known: {[c['name'] for c in CASES]}")

    args.out.mkdir(parents=True, exist_ok=True)
    for case in cases:
        if not args.verify_only:
            write_case(case, args.out)
        verify_case(case, args.out)

    print("all fixtures written and verified" if not args.verify_only else "all fixtures verified")
    return 0


if __name__ == "__main__":
    sys.exit(main())
