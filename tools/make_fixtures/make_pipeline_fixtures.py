"""Writes tests/fixtures/flux_pipeline/tiny: a complete, tiny, random diffusers FluxPipeline and
what diffusers computes with it, for paradiff's end-to-end tests.

The folder is assembled from the other fixtures' components (tests/fixtures/text_encoders: tiny
CLIP and T5 with real tokenizer files; tests/fixtures/vae/tiny_flux) plus a tiny random
FluxTransformer2DModel sized to fit them, and saved with FluxPipeline.save_pretrained, so it is a
genuine diffusers FLUX folder. For each case it records the starting latents (torch's generator),
the final latents (output_type="latent") and, for the first case, the decoded image
(output_type="np").

Run by hand (never by CI), from the repository root:
    nice -n 10 .venv-tools/bin/python tools/make_fixtures/make_pipeline_fixtures.py
"""
import json
import os
import shutil

import safetensors.torch as st
import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
from transformers import CLIPTextModel, CLIPTokenizer, T5EncoderModel, T5TokenizerFast

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures")
OUT = os.path.join(FIX, "flux_pipeline", "tiny")

CASES = [
    # prompt, seed, height, width, steps, guidance
    ("a large red circle at the top left on a white background", 0, 64, 48, 3, 3.5),
    ("Café naïve, 東京 — punctuation!? and more words than the T5 limit allows here", 42, 48, 64, 2, 5.0),
    ("", 7, 32, 32, 2, 1.0),
]
MAX_SEQUENCE_LENGTH = 16


def main():
    torch.manual_seed(1234)
    torch.set_num_threads(1)
    te = os.path.join(FIX, "text_encoders")
    text_encoder = CLIPTextModel.from_pretrained(os.path.join(te, "clip_tiny", "text_encoder"))
    tokenizer = CLIPTokenizer.from_pretrained(os.path.join(te, "clip_tiny", "tokenizer"))
    text_encoder_2 = T5EncoderModel.from_pretrained(os.path.join(te, "t5_tiny", "text_encoder_2"))
    tokenizer_2 = T5TokenizerFast.from_pretrained(os.path.join(te, "t5_tiny", "tokenizer_2"))
    vae = AutoencoderKL.from_pretrained(os.path.join(FIX, "vae", "tiny_flux", "vae"))
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=64, num_layers=1, num_single_layers=2, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=text_encoder_2.config.d_model,
        pooled_projection_dim=text_encoder.config.hidden_size, guidance_embeds=True,
        axes_dims_rope=[4, 6, 6])
    with torch.no_grad():  # every parameter random, so every path matters
        for name, p in transformer.named_parameters():
            if p.ndim == 2:
                p.normal_(0.0, p.shape[1] ** -0.5)
            elif "norm" in name:
                p.normal_(1.0, 0.15)
            else:
                p.normal_(0.0, 0.1)
    scheduler = FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, base_shift=0.5,
        max_shift=1.15, base_image_seq_len=256, max_image_seq_len=4096)
    pipe = FluxPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                        text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2, transformer=transformer)
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    pipe.save_pretrained(OUT, safe_serialization=True)
    # Real FLUX folders ship the tokenizers' source files (tokenizer/: vocab.json + merges.txt,
    # tokenizer_2/: spiece.model); transformers 5 saves only tokenizer.json. Put the sources in
    # and drop tokenizer.json, so diffusers and paradiff both read exactly those files.
    for src, dst in [(os.path.join(te, "clip_tiny", "tokenizer"), "tokenizer"),
                     (os.path.join(te, "t5_tiny", "tokenizer_2"), "tokenizer_2")]:
        target = os.path.join(OUT, dst)
        shutil.rmtree(target)
        shutil.copytree(src, target)
    pipe = FluxPipeline.from_pretrained(OUT)  # what is on disk is what is tested

    tensors, cases = {}, []
    for i, (prompt, seed, h, w, steps, guidance) in enumerate(CASES):
        kwargs = dict(prompt=prompt, height=h, width=w, num_inference_steps=steps,
                      guidance_scale=guidance, max_sequence_length=MAX_SEQUENCE_LENGTH)
        start = pipe.prepare_latents(1, 16, h, w, torch.float32, "cpu",
                                     torch.Generator().manual_seed(seed))[0]
        final = pipe(**kwargs, generator=torch.Generator().manual_seed(seed), output_type="latent").images
        tensors[f"case{i}.initial_latents"] = start.contiguous()
        tensors[f"case{i}.final_latents"] = final.contiguous()
        if i == 0:
            image = pipe(**kwargs, generator=torch.Generator().manual_seed(seed), output_type="np").images
            tensors[f"case{i}.image"] = torch.from_numpy(image).permute(0, 3, 1, 2).contiguous()
        cases.append(dict(prompt=prompt, seed=seed, height=h, width=w, num_inference_steps=steps,
                          guidance_scale=guidance, max_sequence_length=MAX_SEQUENCE_LENGTH))
        print(f"case {i}: final latents {tuple(final.shape)} norm {final.norm():.4f}")
    st.save_file(tensors, os.path.join(FIX, "flux_pipeline", "expected.safetensors"))
    with open(os.path.join(FIX, "flux_pipeline", "cases.json"), "w") as f:
        json.dump(cases, f, indent=2, ensure_ascii=False)


if __name__ == "__main__":
    main()
