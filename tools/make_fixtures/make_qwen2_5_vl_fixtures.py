#!/usr/bin/env python3
"""Write the Qwen2.5-VL text encoder fixtures (QwenImagePipeline's text_encoder).

Writes tests/fixtures/qwen2_5_vl/:
  tiny/text_encoder/        a tiny random Qwen2_5_VLForConditionalGeneration (GQA 4 heads / 2 KV
                            heads, a tiny vision tower whose weights are in the file) saved by
                            transformers 5 with save_pretrained, sharded in 2 files (index.json);
                            the config holds a nested text_config with rope_parameters
  tiny_new_prefix/text_encoder/  the same tensors under transformers >= 4.52's module names
                            (model.language_model.*, model.visual.*), one file
  flat/text_encoder/        another (6 heads / 2 KV heads, rope_theta 1e4, eps 1e-5, 1 layer,
                            bf16 weights) with a flat legacy config.json as older hub files have
                            it (rope_scaling {"type": "mrope", ...}, no text_config)
  README.md                 (kept) what the fixtures hold
  expected.safetensors      input ids and masks, transformers' last hidden states, and
                            QwenImagePipeline.encode_prompt's prompt_embeds / mask

The tokenizer is tests/fixtures/tokenizers/qwen2 (700 BPE tokens + Qwen2.5-VL's added tokens).

Run from the repository root (a few seconds):
  nice -n 10 .venv-tools/bin/python tools/make_fixtures/make_qwen2_5_vl_fixtures.py

Deterministic: fixed seeds, one thread; a rerun rewrites every file byte for byte.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything here is local; never touch the network
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import (  # noqa: E402
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2Tokenizer,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "tests" / "fixtures" / "qwen2_5_vl"
TOKENIZER = REPO_ROOT / "tests" / "fixtures" / "tokenizers" / "qwen2"
VOCAB = 720  # the tokenizer's 718 ids, and two more that it never produces

VISION = {"depth": 1, "hidden_size": 16, "intermediate_size": 16, "num_heads": 2,
          "patch_size": 2, "temporal_patch_size": 2, "spatial_merge_size": 2, "window_size": 8,
          "fullatt_block_indexes": [0]}

# Prompts: short, long, empty, with braces; batched with padding.
PROMPTS = [
    "a red fox in the snow",
    "A highly detailed oil painting of a quiet harbour town at dawn, fishing boats and gulls.",
    "",
    "東京 {night} 🚀",
]


def randomize(model: torch.nn.Module, seed: int) -> None:
    """Every parameter drawn again (sorted by name): matrices N(0, 1/fan_in), biases N(0, 0.1^2)
    (q/k/v biases N(0, 0.5^2) so that they matter), norm weights 1 + N(0, 0.1^2), embeddings
    N(0, 1); conv kernels of the vision tower N(0, 1/fan_in)."""
    g = torch.Generator().manual_seed(seed)
    for name, p in sorted(model.named_parameters()):
        if ("norm" in name or "ln_q" in name) and name.endswith("weight") and p.dim() == 1:
            v = 1 + 0.1 * torch.randn(p.shape, generator=g)
        elif name.endswith("bias") and p.dim() == 1:
            v = (0.5 if "self_attn" in name else 0.1) * torch.randn(p.shape, generator=g)
        elif "embed_tokens" in name:
            v = torch.randn(p.shape, generator=g)
        elif p.dim() >= 2:
            v = torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5
        else:
            raise SystemExit(f"unexpected parameter {name} {tuple(p.shape)}")
        with torch.no_grad():
            p.copy_(v)


def report(name: str, t: torch.Tensor) -> None:
    rms = t.float().pow(2).mean().sqrt().item()
    print(f"  {name}: {tuple(t.shape)} rms {rms:.3f} max|x| {t.abs().max().item():.3f}")
    assert torch.isfinite(t).all() and 0.05 < rms < 50, name


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def tokenize(tok, prompts, padding_side):
    tok.padding_side = padding_side
    template = ("<|im_start|>system\nDescribe the image by detailing the color, shape, size, texture, "
                "quantity, text, spatial relationships of the objects and background:<|im_end|>\n"
                "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n")
    t = tok([template.format(p) for p in prompts], max_length=1024 + 34, padding=True,
            truncation=True, return_tensors="pt")
    tok.padding_side = "right"
    return t.input_ids, t.attention_mask


def last_hidden(model, ids, mask):
    """What QwenImagePipeline takes: hidden_states[-1] (checked equal to the last hidden state,
    i.e. after the final norm)."""
    with torch.no_grad():
        o = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        base = model.model(input_ids=ids, attention_mask=mask)
    h = o.hidden_states[-1]
    assert torch.equal(h, base.last_hidden_state)
    assert len(o.hidden_states) == model.config.text_config.num_hidden_layers + 1
    return h.float().contiguous()


def rename_new_prefix(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in sd.items():
        if k.startswith("visual."):
            out["model." + k] = v
        elif k.startswith("model."):
            out["model.language_model." + k[len("model."):]] = v
        else:
            out[k] = v
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for entry in out.iterdir():  # README.md is kept
        if entry.is_dir():
            shutil.rmtree(entry)
        elif entry.name != "README.md":
            entry.unlink()
    expected: dict[str, torch.Tensor] = {}
    tok = Qwen2Tokenizer.from_pretrained(TOKENIZER)
    assert len(tok) <= VOCAB

    # --- the tiny model: transformers 5 config, sharded save -----------------------------------
    text = {"vocab_size": VOCAB, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-6,
            "max_position_embeddings": 2048,
            "rope_parameters": {"rope_type": "default", "mrope_section": [1, 1, 2],
                                "rope_theta": 1000000.0},
            "bos_token_id": 700, "eos_token_id": 702, "pad_token_id": 700}
    config = Qwen2_5_VLConfig(text_config=text, vision_config={**VISION, "out_hidden_size": 32},
                              vision_start_token_id=710, vision_end_token_id=711,
                              image_token_id=714, video_token_id=715)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    randomize(model, 301)
    tiny = out / "tiny" / "text_encoder"
    total_bytes = sum(p.numel() * 4 for p in model.parameters())
    model.save_pretrained(tiny, max_shard_size=int(total_bytes * 0.75))
    shards = sorted(p.name for p in tiny.glob("*.safetensors"))
    assert len(shards) == 2 and (tiny / "model.safetensors.index.json").exists(), shards
    names = set()
    for s in shards:
        names |= set(load_file(tiny / s).keys())
    # transformers 5 saves the older names; the vision tower is in the file.
    assert "model.embed_tokens.weight" in names and any(n.startswith("visual.") for n in names)
    assert "lm_head.weight" in names

    newp = out / "tiny_new_prefix" / "text_encoder"
    newp.mkdir(parents=True)
    shutil.copy(tiny / "config.json", newp / "config.json")
    sd = {}
    for s in shards:
        sd.update(load_file(tiny / s))
    save_file(rename_new_prefix(sd), newp / "model.safetensors", metadata={"format": "pt"})
    reloaded = Qwen2_5_VLForConditionalGeneration.from_pretrained(newp).eval()

    # inputs: one prompt, the batch right-padded (the tokenizer's side), the batch left-padded
    cases = {"single": tokenize(tok, PROMPTS[:1], "right"),
             "batch": tokenize(tok, PROMPTS, "right"),
             "batch_left": tokenize(tok, PROMPTS, "left")}
    for key, (ids, mask) in cases.items():
        expected[f"{key}.input_ids"] = ids
        expected[f"{key}.attention_mask"] = mask
        h = last_hidden(model, ids, mask)
        expected[f"tiny.{key}.last_hidden_state"] = h
        report(f"tiny {key} {tuple(ids.shape)}", h)
        assert rel(last_hidden(reloaded, ids, mask), h) == 0.0
    # Without a mask (every token valid) for the single prompt.
    ids, mask = cases["single"]
    with torch.no_grad():
        nomask = model.model(input_ids=ids).last_hidden_state
    assert torch.equal(nomask, expected["tiny.single.last_hidden_state"])

    # Sensitivity: the fixtures must see RoPE positions, the causal mask and padding.
    ids, mask = cases["batch"]
    with torch.no_grad():
        # RoPE is relative, so a shift changes nothing: stretch the positions instead.
        pos = torch.arange(ids.shape[1]).view(1, 1, -1).expand(3, ids.shape[0], -1) * 2
        shifted = model.model(input_ids=ids, attention_mask=mask, position_ids=pos).last_hidden_state
    m = mask.bool()
    base = expected["tiny.batch.last_hidden_state"]
    print(f"  positions x 2 change valid rows by {rel(shifted[m], base[m]):.3g}")
    assert rel(shifted[m], base[m]) > 1e-2
    left = expected["tiny.batch_left.last_hidden_state"]
    lm = cases["batch_left"][1].bool()
    # Left padding shifts positions (transformers 5 uses the padded index): valid rows differ.
    print(f"  left vs right padding, valid rows: {rel(left[lm], base[m]):.3g}")

    # QwenImagePipeline's encode_prompt on the same tokenizer and encoder.
    from diffusers import QwenImagePipeline
    pipe = QwenImagePipeline(scheduler=None, vae=None, text_encoder=model, tokenizer=tok,
                             transformer=None)
    for key, prompts, msl in (("pipe_batch", PROMPTS, 1024), ("pipe_batch_msl8", PROMPTS, 8),
                              ("pipe_single", PROMPTS[:1], 512)):
        with torch.no_grad():
            embeds, emask = pipe.encode_prompt(prompts, device="cpu", max_sequence_length=msl)
        if emask is None:  # diffusers' encode_prompt drops a mask of all ones
            emask = torch.ones(embeds.shape[:2], dtype=torch.long)
            expected[f"{key}.mask_was_none"] = torch.ones(1, dtype=torch.long)
        expected[f"{key}.prompt_embeds"] = embeds.float().contiguous()
        expected[f"{key}.prompt_embeds_mask"] = emask.contiguous()
        report(f"{key} prompt_embeds", embeds)
    assert expected["pipe_batch_msl8.prompt_embeds"].shape[1] == 8

    # --- the flat legacy config, bf16 weights -------------------------------------------------
    flat = {"architectures": ["Qwen2_5_VLForConditionalGeneration"], "model_type": "qwen2_5_vl",
            "torch_dtype": "bfloat16", "vocab_size": VOCAB, "hidden_size": 48,
            "intermediate_size": 40, "num_hidden_layers": 1, "num_attention_heads": 6,
            "num_key_value_heads": 2, "hidden_act": "silu", "rms_norm_eps": 1e-5,
            "rope_theta": 10000.0, "max_position_embeddings": 4096,
            "rope_scaling": {"type": "mrope", "mrope_section": [1, 1, 2]},
            "use_sliding_window": False, "sliding_window": 4096, "max_window_layers": 1,
            "attention_dropout": 0.0, "tie_word_embeddings": False, "bos_token_id": 700,
            "eos_token_id": 702, "vision_start_token_id": 710, "vision_end_token_id": 711,
            "vision_token_id": 712, "image_token_id": 714, "video_token_id": 715,
            "vision_config": {**VISION, "out_hidden_size": 48}}
    fconfig = Qwen2_5_VLConfig(**{k: v for k, v in flat.items() if k != "torch_dtype"})
    tc = fconfig.text_config
    assert (tc.hidden_size, tc.num_attention_heads, tc.num_key_value_heads, tc.rms_norm_eps,
            tc.rope_parameters["rope_theta"], tc.num_hidden_layers) == (48, 6, 2, 1e-5, 10000.0, 1)
    fmodel = Qwen2_5_VLForConditionalGeneration(fconfig).eval()
    randomize(fmodel, 302)
    with torch.no_grad():
        for p in fmodel.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    fdir = out / "flat" / "text_encoder"
    # A copy: .to() would also round the rotary inv_freq buffer of the model computing outputs.
    copy.deepcopy(fmodel).to(torch.bfloat16).save_pretrained(fdir)
    (fdir / "config.json").write_text(json.dumps(flat, indent=2) + "\n")
    freloaded = Qwen2_5_VLForConditionalGeneration.from_pretrained(fdir, dtype=torch.float32).eval()
    for key, (ids, mask) in cases.items():
        h = last_hidden(fmodel, ids, mask)
        expected[f"flat.{key}.last_hidden_state"] = h
        report(f"flat {key}", h)
        assert rel(last_hidden(freloaded, ids, mask), h) == 0.0

    save_file({k: v.contiguous() for k, v in sorted(expected.items())}, out / "expected.safetensors",
              metadata={"prompts": json.dumps(PROMPTS, ensure_ascii=False)})
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"wrote {out} ({total / 1e6:.2f} MB)")
    assert total < 2e6


if __name__ == "__main__":
    main()
