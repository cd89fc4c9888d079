"""paradiff.QwenImagePipeline against diffusers' QwenImagePipeline outputs (true CFG included)."""

import json

import numpy as np
import pytest

import paradiff
from conftest import QWEN, read_safetensors


@pytest.fixture(scope="module")
def pipe(qwen_folder):
    p = paradiff.QwenImagePipeline.from_pretrained(qwen_folder)
    p.set_progress_bar_config(disable=True)
    return p


def test_matches_diffusers(pipe):
    cases = json.loads((QWEN / "cases.json").read_text())
    expected = read_safetensors(QWEN / "expected.safetensors")
    for k, case in enumerate(cases):
        out = pipe(case["prompt"], negative_prompt=case["negative_prompt"],
                   true_cfg_scale=case["true_cfg_scale"], height=case["height"], width=case["width"],
                   num_inference_steps=case["num_inference_steps"],
                   max_sequence_length=case["max_sequence_length"],
                   generator=paradiff.Generator().manual_seed(case["seed"]), output_type="np")
        want = expected[f"case{k}.image"].transpose(0, 2, 3, 1)
        assert out.images.shape == want.shape
        assert np.abs(out.images - want).max() <= 1e-3, f"case {k}"


def test_staged_with_true_cfg_equals_one_call(pipe):
    kw = dict(height=16, width=16, num_inference_steps=2, true_cfg_scale=3.0, output_type="latent")
    embeds, mask = pipe.encode_prompt("a fox")
    neg_embeds, neg_mask = pipe.encode_prompt("blurry")
    assert mask.dtype == np.int64 and mask.shape == embeds.shape[:2]
    staged = pipe(prompt_embeds=embeds, prompt_embeds_mask=mask, negative_prompt_embeds=neg_embeds,
                  negative_prompt_embeds_mask=neg_mask, generator=paradiff.Generator().manual_seed(2), **kw)
    whole = pipe("a fox", negative_prompt="blurry", generator=paradiff.Generator().manual_seed(2), **kw)
    assert np.array_equal(staged.images, whole.images)
