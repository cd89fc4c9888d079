"""Writes tests/fixtures/flux_pipeline/true_cfg.{json,safetensors}: what diffusers' FluxPipeline
computes with true classifier-free guidance (negative_prompt + true_cfg_scale > 1) on the
committed tiny pipeline folder (tests/fixtures/flux_pipeline/tiny, made by
make_pipeline_fixtures.py), for paradiff's CFG and CFG-parallel tests. The folder is read, not
rewritten.

Run by hand (never by CI), from the repository root:
    nice -n 10 .venv-tools/bin/python tools/make_fixtures/make_true_cfg_fixtures.py
"""
import json
import os

import safetensors.torch as st
import torch
from diffusers import FluxPipeline

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures", "flux_pipeline")

CASES = [
    # prompt, negative prompt, true_cfg_scale, seed, height, width, steps, guidance
    ("a large red circle at the top left on a white background", "a blue square", 4.0, 3, 64, 48,
     3, 3.5),
    ("a green triangle", "", 1.5, 11, 32, 48, 2, 2.0),
]
MAX_SEQUENCE_LENGTH = 16


def main():
    torch.set_num_threads(1)
    pipe = FluxPipeline.from_pretrained(os.path.join(FIX, "tiny"))
    tensors, cases = {}, []
    for i, (prompt, negative, scale, seed, h, w, steps, guidance) in enumerate(CASES):
        final = pipe(prompt=prompt, negative_prompt=negative, true_cfg_scale=scale, height=h,
                     width=w, num_inference_steps=steps, guidance_scale=guidance,
                     max_sequence_length=MAX_SEQUENCE_LENGTH,
                     generator=torch.Generator().manual_seed(seed), output_type="latent").images
        # The same call without CFG, so the test can show that guidance changed the result.
        plain = pipe(prompt=prompt, height=h, width=w, num_inference_steps=steps,
                     guidance_scale=guidance, max_sequence_length=MAX_SEQUENCE_LENGTH,
                     generator=torch.Generator().manual_seed(seed), output_type="latent").images
        tensors[f"case{i}.final_latents"] = final.contiguous()
        tensors[f"case{i}.final_latents_without_cfg"] = plain.contiguous()
        cases.append(dict(prompt=prompt, negative_prompt=negative, true_cfg_scale=scale,
                          seed=seed, height=h, width=w, num_inference_steps=steps,
                          guidance_scale=guidance, max_sequence_length=MAX_SEQUENCE_LENGTH))
        print(f"case {i}: |cfg - plain| / |plain| = {(final - plain).norm() / plain.norm():.4f}")
    st.save_file(tensors, os.path.join(FIX, "true_cfg.safetensors"))
    with open(os.path.join(FIX, "true_cfg.json"), "w") as f:
        json.dump(cases, f, indent=2, ensure_ascii=False)


if __name__ == "__main__":
    main()
