"""Writes tests/fixtures/num_images/{cases.json,expected.safetensors}: diffusers' final latents
(output_type="latent") with num_images_per_prompt=2 on the committed tiny FluxPipeline
(tests/fixtures/flux_pipeline/tiny) and QwenImagePipeline (tests/fixtures/qwen_image_pipeline/tiny)
folders, for paradiff's num_images_per_prompt tests. The folders are read, not rewritten.

Each pipeline has two cases:
  single: one prompt, generator=manual_seed(seed): diffusers draws the starting latents of both
          images in ONE randn over (2, ...), so image k starts from row k of that draw.
  pair:   a list of two prompts, which pins diffusers' image order (prompt 0's images first)
          and the repeat of each prompt's embeddings. paradiff starts every prompt from the seed
          as a call per prompt would, so the starting latents are given: each prompt's rows are
          the single-prompt draw of 2 rows (checked to be what the generator gives). Qwen: the
          prompts differ in length, and the expected rows are one call per prompt, because
          diffusers' batched call repeats the mask in another order than the embeddings (see
          qwen_pair).
expected.safetensors: <pipeline>.<case>.final_latents, (B * 2, tokens, channels), in diffusers'
order.

Run by hand (never by CI), from the repository root:
    nice -n 10 .venv-tools/bin/python tools/make_fixtures/make_num_images_fixtures.py
"""
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import safetensors.torch as st  # noqa: E402
import torch  # noqa: E402
from diffusers import FluxPipeline, QwenImagePipeline  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures")
OUT = os.path.join(FIX, "num_images")
N = 2

PIPELINES = {
    "flux": dict(cls=FluxPipeline, folder="flux_pipeline/tiny", height=32, width=48, steps=2,
                 max_sequence_length=16, seed=5, extra=dict(guidance_scale=3.5)),
    "qwen_image": dict(cls=QwenImagePipeline, folder="qwen_image_pipeline/tiny", height=24,
                       width=40, steps=2, max_sequence_length=512, seed=9, extra={}),
}
PROMPTS = {
    "single": ["a red fox in the snow"],
    "pair": ["a small blue house by a lake at dawn, with mountains", "a cat"],
}


def qwen_pair(pipe, prompts, generator, common, batched):
    """QwenImagePipeline.encode_prompt repeats prompt_embeds prompt-major (p0, p0, p1, p1) but
    prompt_embeds_mask, 2-D, with .repeat(1, n, 1): (B, seq) -> (1, n*B, seq) -> rows p0, p1, p0,
    p1. With prompts of different lengths a batched call thus gives image 1 of prompt 0 and
    image 0 of prompt 1 the other prompt's mask. paradiff's images of prompt p are those of one
    call with prompt=p, where every row's mask is p's own: the expected latents are those calls,
    in prompt-major order. Checked here: the batched call agrees on the rows whose mask is right
    and differs on the two whose mask is not."""
    mask = pipe.encode_prompt(prompts, device="cpu", num_images_per_prompt=N,
                              max_sequence_length=common["max_sequence_length"])[1]
    lengths = [int(m.sum()) for m in mask]
    assert lengths[0] == lengths[2] != lengths[1] == lengths[3], lengths
    per_prompt = torch.cat([pipe(prompt=p, generator=generator(), **common)[0] for p in prompts])
    err = [((batched[j] - per_prompt[j]).norm() / per_prompt[j].norm()).item() for j in range(4)]
    print(f"qwen_image pair: batched diffusers call vs one call per prompt, per row: {err}")
    assert err[0] < 1e-4 and err[3] < 1e-4 and err[1] > 1e-2 and err[2] > 1e-2, err
    return per_prompt


@torch.no_grad()
def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    tensors, cases = {}, []
    for name, p in PIPELINES.items():
        pipe = p["cls"].from_pretrained(os.path.join(FIX, p["folder"]), torch_dtype=torch.float32)
        pipe.set_progress_bar_config(disable=True)
        common = dict(height=p["height"], width=p["width"], num_inference_steps=p["steps"],
                      max_sequence_length=p["max_sequence_length"], num_images_per_prompt=N,
                      output_type="latent", return_dict=False, **p["extra"])

        def generator():
            return torch.Generator().manual_seed(p["seed"])

        # The single-prompt draw of N rows, as prepare_latents makes it (packed).
        start = pipe.prepare_latents(N, pipe.transformer.config.in_channels // 4, p["height"],
                                     p["width"], torch.float32, "cpu", generator())
        if isinstance(start, tuple):  # FluxPipeline's also returns the latent image ids
            start = start[0]
        assert start.ndim == 3 and start.shape[0] == N, start.shape
        for case, prompts in PROMPTS.items():
            if case == "single":
                final = pipe(prompt=prompts[0], generator=generator(), **common)[0]
                given = pipe(prompt=prompts[0], latents=start.clone(), **common)[0]
                # Giving the draw is the same call: the pair case below relies on it.
                assert torch.equal(final, given), (final - given).abs().max()
            else:
                final = pipe(prompt=prompts, latents=torch.cat([start] * len(prompts)),
                             **common)[0]
                if name == "qwen_image":
                    final = qwen_pair(pipe, prompts, generator, common, final)
            assert final.shape[0] == len(prompts) * N, final.shape
            tensors[f"{name}.{case}.final_latents"] = final.contiguous().float()
            cases.append(dict(pipeline=name, case=case, folder=p["folder"], prompts=prompts,
                              num_images_per_prompt=N, seed=p["seed"], height=p["height"],
                              width=p["width"], num_inference_steps=p["steps"],
                              max_sequence_length=p["max_sequence_length"], **p["extra"]))
        f = tensors[f"{name}.pair.final_latents"]
        print(f"{name}: |image 0 - image 1| / |image 0| = {(f[0] - f[1]).norm() / f[0].norm():.3f}, "
              f"|prompt 0 - prompt 1| / |prompt 0| = {(f[0] - f[2]).norm() / f[0].norm():.3f}")
    st.save_file(tensors, os.path.join(OUT, "expected.safetensors"))
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(cases, f, indent=2, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
