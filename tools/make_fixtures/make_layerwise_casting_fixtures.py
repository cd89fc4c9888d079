#!/usr/bin/env python3
"""Write diffusers' outputs with layerwise casting for committed transformer fixtures.

For FLUX (tests/fixtures/flux_transformer/guidance_batch2), this loads the fixture's transformer
folder in fp32, calls diffusers' `enable_layerwise_casting(storage_dtype=torch.bfloat16,
compute_dtype=torch.float32)` (its default skip patterns and the model's own), runs the fixture's
inputs and writes `sample` to <case>/output_bf16_storage.safetensors; the same with
`storage_dtype=torch.float8_e4m3fn` to <case>/output_fp8_storage.safetensors. paradiff's
`--storage-dtype bf16` / `fp8` must reproduce them to fp32 tolerance
(tests/models/flux_transformer_test.cc).

bf16 compute: the transformer loaded in bf16 (`torch_dtype=torch.bfloat16`), then
`enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=torch.bfloat16)`, run
on the inputs with hidden_states, encoder_hidden_states and pooled_projections rounded to bf16
(what a bf16 GEMM does to them anyway). diffusers' forward rounds `timestep` and `guidance` to
the model dtype and multiplies by 1000 in it: with the fixture's 0.73 that is 728 instead of 730
and moves a bf16 run 28% from fp32, so this case uses timestep (0.5, 0.25) and guidance (4, 2),
whose bf16 roundings and times 1000 are exact. Written to
<case>/output_fp8_storage_bf16_compute.safetensors: `sample` (fp32, exact), those `timestep` and
`guidance`, and `sample_fp32`, the fp32 model's output on the same inputs. paradiff's
`--dtype bf16 --storage-dtype fp8` must match `sample` to a bf16 tolerance that its plain bf16
output and the fp32 output miss. The Qwen-Image fixtures' weights are bf16 values
already, so bf16 storage would not move their outputs: no case there.

fp8 checkpoint (tests/fixtures/flux_transformer/fp8_checkpoint): the `nonzero_ids` transformer
loaded in fp32 with `enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn,
compute_dtype=torch.float32)`, its state dict saved by safetensors as it is (narrowed weights and
biases F8_E4M3, skipped layers F32) with the config beside it: `transformer/`. diffusers loads
that folder in fp32 (widening the fp8 tensors) and runs `nonzero_ids/inputs.safetensors`:
`output.safetensors`. `e4m3_codes.safetensors` holds all 256 codes (`codes`, F8_E4M3) and torch's
float32 values of them (`values`).

Run from the repository root (a few seconds, CPU, no network, deterministic):
  nice -n 10 .venv-tools/bin/python tools/make_fixtures/make_layerwise_casting_fixtures.py
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from diffusers import FluxTransformer2DModel  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

ROOT = Path(__file__).resolve().parents[2] / "tests" / "fixtures"


@torch.no_grad()
def flux_sample(model: FluxTransformer2DModel, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    return model(**inputs, return_dict=True).sample


CASES = [
    (FluxTransformer2DModel, flux_sample, ROOT / "flux_transformer" / "guidance_batch2"),
]


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def write_fp8_bf16_compute(cls, run, case: Path, inputs: dict[str, torch.Tensor]) -> None:
    inputs = dict(inputs, timestep=torch.tensor([0.5, 0.25]), guidance=torch.tensor([4.0, 2.0]))
    full = run(cls.from_pretrained(case / "transformer", torch_dtype=torch.float32).eval(), inputs)
    rounded = {k: (v.to(torch.bfloat16) if k in ("hidden_states", "encoder_hidden_states",
                                                 "pooled_projections") else v)
               for k, v in inputs.items()}
    plain = run(cls.from_pretrained(case / "transformer", torch_dtype=torch.bfloat16).eval(), rounded)
    model = cls.from_pretrained(case / "transformer", torch_dtype=torch.bfloat16).eval()
    model.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=torch.bfloat16)
    narrow = run(model, rounded)
    kinds = {p.dtype for p in model.parameters()}
    assert kinds == {torch.float8_e4m3fn, torch.bfloat16}, kinds
    assert narrow.dtype == torch.bfloat16, narrow.dtype
    # fp8 storage must move the output well beyond bf16's own noise.
    noise, moved = relative(plain, full), relative(narrow, plain)
    assert moved > 4 * noise, (moved, noise)
    save_file({"sample": narrow.float().contiguous(), "sample_fp32": full.contiguous(),
               "timestep": inputs["timestep"], "guidance": inputs["guidance"]},
              case / "output_fp8_storage_bf16_compute.safetensors")
    print(f"{case.relative_to(ROOT)}: bf16 compute is {noise:.3g} from fp32; fp8 storage moves it "
          f"by {moved:.3g} ({relative(narrow, full):.3g} from fp32)")


def write_fp8_checkpoint(cls, run) -> None:
    source = ROOT / "flux_transformer" / "nonzero_ids"
    out = ROOT / "flux_transformer" / "fp8_checkpoint"
    (out / "transformer").mkdir(parents=True, exist_ok=True)
    model = cls.from_pretrained(source / "transformer", torch_dtype=torch.float32).eval()
    model.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=torch.float32)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    kinds = {v.dtype for v in state.values()}
    assert kinds == {torch.float8_e4m3fn, torch.float32}, kinds
    save_file(state, out / "transformer" / "diffusion_pytorch_model.safetensors")
    shutil.copy(source / "transformer" / "config.json", out / "transformer" / "config.json")
    loaded = cls.from_pretrained(out / "transformer", torch_dtype=torch.float32).eval()
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}
    sample = run(loaded, load_file(source / "inputs.safetensors"))
    full = load_file(source / "output.safetensors")["sample"]
    moved = relative(sample, full)
    assert 1e-3 < moved < 2e-1, moved
    save_file({"sample": sample.contiguous()}, out / "output.safetensors")
    codes = torch.arange(256, dtype=torch.uint8).view(torch.float8_e4m3fn)
    save_file({"codes": codes, "values": codes.float()}, out / "e4m3_codes.safetensors")
    fp8 = sum(v.dtype == torch.float8_e4m3fn for v in state.values())
    print(f"{out.relative_to(ROOT)}: {fp8} of {len(state)} tensors F8_E4M3; the output moves "
          f"{moved:.3g} from the fp32 checkpoint's")


def main() -> int:
    torch.set_num_threads(1)
    for cls, run, case in CASES:
        model = cls.from_pretrained(case / "transformer", torch_dtype=torch.float32).eval()
        inputs = load_file(case / "inputs.safetensors")
        full = load_file(case / "output.safetensors")["sample"]
        plain = run(model, inputs)
        drift = ((plain - full).norm() / full.norm()).item()
        assert drift < 1e-5, f"{case}: the fp32 output drifted from output.safetensors by {drift:.3g}"
        for storage, name, limit in ((torch.bfloat16, "bf16", 2e-2),
                                     (torch.float8_e4m3fn, "fp8", 2e-1)):
            model = cls.from_pretrained(case / "transformer", torch_dtype=torch.float32).eval()
            model.enable_layerwise_casting(storage_dtype=storage, compute_dtype=torch.float32)
            narrow = run(model, inputs)
            # The storage must really be narrow (and some layers skipped), and the output move.
            kinds = {p.dtype for p in model.parameters()}
            assert kinds == {storage, torch.float32}, kinds
            moved = ((narrow - full).norm() / full.norm()).item()
            assert 1e-5 < moved < limit, moved
            save_file({"sample": narrow.contiguous()}, case / f"output_{name}_storage.safetensors")
            print(f"{case.relative_to(ROOT)}: {name} storage moves the output by {moved:.3g}")
        if cls is FluxTransformer2DModel:
            write_fp8_bf16_compute(cls, run, case, inputs)
    write_fp8_checkpoint(FluxTransformer2DModel, flux_sample)
    return 0


if __name__ == "__main__":
    sys.exit(main())
