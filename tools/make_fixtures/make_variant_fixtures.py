"""Writes tests/fixtures/flux_pipeline/tiny_fp16: the tiny FLUX pipeline folder
(tests/fixtures/flux_pipeline/tiny) saved again by diffusers as the "fp16" variant, and what
diffusers computes when it loads that variant, for paradiff's `--variant` tests.

The pipeline is loaded in float16 and written with
`FluxPipeline.save_pretrained(..., variant="fp16", max_shard_size=MAX_SHARD)`, so every model
component holds only variant files, named as diffusers and transformers name them:
`diffusion_pytorch_model.fp16.safetensors` / `model.fp16.safetensors` for a single file, and for a
component larger than MAX_SHARD the variant's sharded index
`<stem>.safetensors.index.fp16.json` with shards `<stem>.fp16-0000k-of-0000n.safetensors`.
The script then checks that diffusers itself loads the folder with `variant="fp16"` and reads
those files, and records case 0 of tests/fixtures/flux_pipeline/cases.json computed by diffusers
from the fp16 weights in float32 (`expected_fp16.safetensors`, key `case0.final_latents`).

Run by hand (never by CI), from the repository root:
    nice -n 10 .venv-tools/bin/python tools/make_fixtures/make_variant_fixtures.py
"""
import json
import os
import shutil

import safetensors.torch as st
import torch
from diffusers import FluxPipeline

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures", "flux_pipeline")
SOURCE = os.path.join(FIX, "tiny")
OUT = os.path.join(FIX, "tiny_fp16")
MAX_SHARD = "150KB"  # sharded: transformer, vae, text_encoder; one file: text_encoder_2


def main():
    torch.set_num_threads(1)
    pipe = FluxPipeline.from_pretrained(SOURCE, torch_dtype=torch.float16)
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    pipe.save_pretrained(OUT, safe_serialization=True, variant="fp16", max_shard_size=MAX_SHARD)
    # Same tokenizer files as the source folder (transformers 5 would write tokenizer.json only).
    for name in ("tokenizer", "tokenizer_2"):
        shutil.rmtree(os.path.join(OUT, name))
        shutil.copytree(os.path.join(SOURCE, name), os.path.join(OUT, name))
    for root, _, files in sorted(os.walk(OUT)):
        for f in sorted(files):
            if "fp16" in f:
                print(os.path.relpath(os.path.join(root, f), OUT))

    # diffusers reads the variant back; in float32 it computes over exactly the stored fp16 values.
    loaded = FluxPipeline.from_pretrained(OUT, variant="fp16", torch_dtype=torch.float32)
    for name in ("transformer", "vae", "text_encoder", "text_encoder_2"):
        assert getattr(loaded, name).dtype == torch.float32, name
    with open(os.path.join(FIX, "cases.json")) as f:
        case = json.load(f)[0]
    final = loaded(prompt=case["prompt"], height=case["height"], width=case["width"],
                   num_inference_steps=case["num_inference_steps"],
                   guidance_scale=case["guidance_scale"],
                   max_sequence_length=case["max_sequence_length"],
                   generator=torch.Generator().manual_seed(case["seed"]),
                   output_type="latent").images
    reference = st.load_file(os.path.join(FIX, "expected.safetensors"))["case0.final_latents"]
    err = ((final - reference).norm() / reference.norm()).item()
    print(f"case 0: fp16 variant vs fp32 folder, final latents relative error {err:.3g}")
    assert 0 < err < 2e-2, err
    st.save_file({"case0.final_latents": final.contiguous()},
                 os.path.join(FIX, "expected_fp16.safetensors"))

    # Without the variant, diffusers refuses this folder: it has no non-variant weights.
    try:
        FluxPipeline.from_pretrained(OUT)
        raise AssertionError("loaded a variant-only folder without variant=")
    except (OSError, ValueError, EnvironmentError) as e:
        print("without variant: refused:", str(e).splitlines()[0][:120])


if __name__ == "__main__":
    main()
