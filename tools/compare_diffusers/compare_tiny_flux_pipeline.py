#!/usr/bin/env python3
"""diffusers vs paradiff on a whole FLUX pipeline folder (default: the bundled tiny-flux-shapes).

For each prompt: diffusers' FluxPipeline (fp32, CPU) with output_type="latent" writes the final
packed latents; paradiff generate writes its own with --save-latents, single process and under
mpirun with 2 ranks (Ulysses and ring); `paradiff compare` prints the relative error and fails
above --tolerance. Run by hand with the tools venv; never part of the build or the tests.

    .venv-tools/bin/python tools/compare_diffusers/compare_tiny_flux_pipeline.py \
        [--model models/tiny-flux-shapes] [--paradiff build/paradiff] [--steps 28] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import save_file

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROMPTS = [
    "a large red circle at the top left on a white background",
    "a large blue square at the bottom right on a white background",
    "a black background with a large yellow star in the center",
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(REPO, "models", "tiny-flux-shapes"))
    ap.add_argument("--paradiff", default=os.path.join(REPO, "build", "paradiff"))
    ap.add_argument("--steps", type=int, default=28)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--max-sequence-length", type=int, default=32)
    ap.add_argument("--tolerance", type=float, default=1e-3)
    a = ap.parse_args()

    from diffusers import FluxPipeline

    torch.set_num_threads(2)
    pipe = FluxPipeline.from_pretrained(a.model, torch_dtype=torch.float32, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    common = ["--height", str(a.size), "--width", str(a.size), "--num-inference-steps", str(a.steps),
              "--max-sequence-length", str(a.max_sequence_length), "--seed", str(a.seed), "--quiet"]
    modes = {
        "1 process": [],
        "2 ranks ulysses": ["-n", "2", "--ulysses-degree", "2"],
        "2 ranks ring": ["-n", "2", "--ring-degree", "2"],
    }
    ok = True
    with tempfile.TemporaryDirectory() as td:
        for i, prompt in enumerate(PROMPTS):
            lat = pipe(prompt, height=a.size, width=a.size, num_inference_steps=a.steps,
                       max_sequence_length=a.max_sequence_length,
                       generator=torch.Generator().manual_seed(a.seed), output_type="latent").images
            ref = os.path.join(td, f"diffusers_{i}.safetensors")
            save_file({"latents": lat.float().contiguous()}, ref)
            for mode, extra in modes.items():
                out = os.path.join(td, f"paradiff_{i}.safetensors")
                if extra:
                    n, cp = extra[:2], extra[2:]
                    cmd = [os.path.join(REPO, "scripts", "paradiff-run"), *n, "generate", *cp]
                    env = dict(os.environ, PARADIFF_BIN=a.paradiff, PARADIFF_THREADS="1")
                else:
                    cmd, env = [a.paradiff, "generate"], dict(os.environ)
                cmd += ["--model", a.model, "--prompt", prompt, *common, "--output",
                        os.path.join(td, "x.png"), "--save-latents", out]
                subprocess.run(cmd, check=True, env=env)
                r = subprocess.run([a.paradiff, "compare", out, ref, "--tolerance", str(a.tolerance)],
                                   capture_output=True, text=True)
                print(f"[{mode:16s}] {prompt!r}: {r.stdout.strip()}", flush=True)
                ok = ok and r.returncode == 0
    print("all within tolerance" if ok else "SOME ABOVE TOLERANCE")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
