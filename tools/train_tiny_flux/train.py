#!/usr/bin/env python3
"""Train "tiny-flux-shapes": a tiny text-to-image model with exactly the FLUX.1 diffusers pipeline
architecture (FluxPipeline: CLIPTextModel + T5EncoderModel + FluxTransformer2DModel + AutoencoderKL
with 16 latent channels + FlowMatchEulerDiscreteScheduler), trained from scratch on procedurally
drawn scenes of coloured shapes. CPU only, deterministic given --seed (and the thread count).

Stages (each resumes from / reuses what earlier stages left in --workdir):
  tokenizers   CLIP BPE vocab.json/merges.txt + T5 SentencePiece spiece.model from the captions
  vae          AutoencoderKL (16 latent channels, factor 8) on 128x128 crops, then full 256x256
  latents      render a fixed dataset of captioned scenes, encode once, pick shift/scaling factors
  transformer  FluxTransformer2DModel + both text encoders, rectified flow (FLUX objective)
  export       FluxPipeline(...).save_pretrained(--out) in bf16, tokenizer files, offline reload check
  eval         16 fixed prompts through diffusers.FluxPipeline loaded from --out, automatic
               colour/position/shape check, sample grid + PNGs + loss plot into --images
  all          everything above in order

See README.md next to this file.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time

# On a shared, busy machine OpenMP's default spin-waiting burns most of a niced process's CPU share
# (a thread spins while its partner is descheduled); passive waiting is ~2-3x faster there and does
# not change the numerics. Must be set before torch (libgomp) is loaded.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import shapes  # noqa: E402
import build_tokenizers  # noqa: E402

REPO = os.path.abspath(os.path.join(HERE, "..", ".."))

# ------------------------------------------------------------------------------------------------
# Configuration (the exact configs the shipped folder gets).

IMAGE_SIZE = 256
T5_MAX_LEN = 32          # max_sequence_length the model is trained with; pass it to FluxPipeline
CLIP_MAX_LEN = 77

VAE_CONFIG = dict(
    in_channels=3, out_channels=3,
    down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
    block_out_channels=[32, 32, 64, 64], layers_per_block=1, act_fn="silu",
    latent_channels=16, norm_num_groups=8, sample_size=IMAGE_SIZE,
    force_upcast=True, use_quant_conv=False, use_post_quant_conv=False, mid_block_add_attention=True,
)

TRANSFORMER_CONFIG = dict(
    patch_size=1, in_channels=64, out_channels=None, num_layers=2, num_single_layers=4,
    attention_head_dim=32, num_attention_heads=4, joint_attention_dim=64, pooled_projection_dim=64,
    guidance_embeds=False, axes_dims_rope=[8, 12, 12],
)

T5_CONFIG = dict(
    d_model=64, d_kv=16, d_ff=256, num_layers=2, num_heads=4, relative_attention_num_buckets=32,
    relative_attention_max_distance=128, dropout_rate=0.0, layer_norm_epsilon=1e-6,
    feed_forward_proj="gated-gelu", is_encoder_decoder=False, use_cache=False,
    pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, tie_word_embeddings=False,
)

CLIP_CONFIG = dict(
    hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
    max_position_embeddings=CLIP_MAX_LEN, hidden_act="quick_gelu", layer_norm_eps=1e-5,
    projection_dim=64, attention_dropout=0.0,
)

# FLUX.1-dev's scheduler config: dynamic (resolution-dependent) shifting. At 256x256 (256 image
# tokens) mu = base_shift = 0.5, i.e. sigma' = e^0.5 s / (1 + (e^0.5 - 1) s).
SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
    base_image_seq_len=256, max_image_seq_len=4096,
)

EVAL_PROMPTS: list[tuple[str, dict]] = []


def _p(shape, color, size, position, bg):
    s = shapes.ShapeSpec(shape, color, size, position, 0, 0, 0, 0)
    cap = shapes.make_caption(bg, [s], [True], False, True)
    EVAL_PROMPTS.append((cap, dict(shape=shape, color=color, size=size, position=position, bg=bg)))


for _args in [
    ("circle", "red", "large", "top left", "white"),
    ("square", "blue", "large", "bottom right", "white"),
    ("triangle", "yellow", "large", "center", "black"),
    ("star", "green", "large", "top right", "gray"),
    ("circle", "purple", "medium", "bottom left", "white"),
    ("square", "orange", "large", "top left", "black"),
    ("circle", "white", "large", "bottom right", "black"),
    ("triangle", "red", "large", "top right", "light blue"),
    ("star", "yellow", "large", "bottom left", "black"),
    ("square", "green", "medium", "center", "white"),
    ("circle", "blue", "large", "center", "gray"),
    ("triangle", "black", "large", "bottom right", "white"),
    ("star", "purple", "large", "top left", "light blue"),
    ("square", "red", "large", "bottom left", "gray"),
    ("circle", "orange", "large", "top right", "white"),
    ("triangle", "green", "large", "bottom left", "light blue"),
]:
    _p(*_args)

EXTRA_PROMPTS = [  # not scored; shown in the docs to illustrate two-shape scenes / phrasing
    "a red circle at the top left and a blue square at the bottom right on a white background",
    "a black background with a large yellow star in the center",
    "a small green triangle at the top on a white background",
    "a large blue circle on the left on a light blue background",
]


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def set_threads(n: int):
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass


def atomic_save(obj, path: str):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def cosine_lr(step: int, total: int, base: float, warmup: int, final_frac: float = 0.05) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (final_frac + (1 - final_frac) * 0.5 * (1 + math.cos(math.pi * p)))


def to_tensor(imgs: np.ndarray) -> torch.Tensor:
    """(B,H,W,3) uint8 -> (B,3,H,W) float in [-1,1]"""
    return torch.from_numpy(imgs).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def round_bf16_(module: torch.nn.Module):
    """Round parameters to bf16 and back: what the shipped (bf16) weights will be."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    return module


# ------------------------------------------------------------------------------------------------
# Stage: tokenizers


def stage_tokenizers(a):
    tok_dir = os.path.join(a.workdir, "tokenizers")
    info = build_tokenizers.build(tok_dir, a.seed)
    meta = {"clip": info["clip"]}
    with open(os.path.join(tok_dir, "info.json"), "w") as f:
        json.dump(meta, f, indent=1)
    log("tokenizers:", meta)


def load_tokenizers(a):
    from transformers import CLIPTokenizer, T5Tokenizer

    tok_dir = os.path.join(a.workdir, "tokenizers")
    clip = CLIPTokenizer(vocab=os.path.join(tok_dir, "clip", "vocab.json"),
                         merges=os.path.join(tok_dir, "clip", "merges.txt"), model_max_length=CLIP_MAX_LEN)
    t5 = T5Tokenizer.from_pretrained(os.path.join(tok_dir, "t5"), extra_ids=0, model_max_length=512)
    with open(os.path.join(tok_dir, "info.json")) as f:
        info = json.load(f)
    return clip, t5, info


# ------------------------------------------------------------------------------------------------
# Stage: VAE


def make_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(**VAE_CONFIG, scaling_factor=1.0, shift_factor=0.0)


def vae_batch(seed: int, step: int, crop: int, bs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images in [-1,1] and per-pixel loss weights (1 on background, 1 + FG_WEIGHT on shapes).
    Half the batch are captioned-world scenes, half VAE-only scenes with any background colour;
    75% of crops are centred (with jitter) on a shape so crops are rarely plain background."""
    rng = np.random.default_rng([seed, 1, step])
    out = np.empty((bs, crop, crop, 3), np.uint8)
    wts = np.empty((bs, 1, crop, crop), np.float32)
    for i in range(bs):
        if i % 2 == 0:
            sc = shapes.sample_scene(rng, IMAGE_SIZE, p_two=0.5)
            bg = shapes.BACKGROUNDS[sc.background]
        else:
            sc, bg = shapes.sample_vae_scene(rng, IMAGE_SIZE)
        img = shapes.render(sc, IMAGE_SIZE, bg_rgb=bg)
        if crop < IMAGE_SIZE and rng.random() < 0.75:
            s = sc.shapes[int(rng.integers(len(sc.shapes)))]
            cx, cy = s.cx * IMAGE_SIZE + rng.uniform(-40, 40), s.cy * IMAGE_SIZE + rng.uniform(-40, 40)
            x = int(np.clip(round(cx - crop / 2), 0, IMAGE_SIZE - crop))
            y = int(np.clip(round(cy - crop / 2), 0, IMAGE_SIZE - crop))
        else:
            y, x = (int(v) for v in rng.integers(0, IMAGE_SIZE - crop + 1, size=2))
        out[i] = img[y:y + crop, x:x + crop]
        wts[i, 0] = 1.0 + FG_WEIGHT * shapes.foreground_mask(out[i], bg)
    return to_tensor(out), torch.from_numpy(wts)


FG_WEIGHT = 4.0


def stage_vae(a):
    torch.manual_seed(a.seed)
    vae = make_vae()
    n_params = sum(p.numel() for p in vae.parameters())
    opt = torch.optim.AdamW(vae.parameters(), lr=a.vae_lr, betas=(0.9, 0.99), weight_decay=0.0)
    ck = os.path.join(a.workdir, "vae_ckpt.pt")
    step, hist = 0, []
    if os.path.exists(ck):
        st = torch.load(ck, weights_only=False)
        vae.load_state_dict(st["model"]); opt.load_state_dict(st["opt"]); step, hist = st["step"], st["hist"]
        log(f"vae: resumed at step {step}")
    total = a.vae_steps
    full_from = int(total * 0.8)  # last 20% of steps on full 256x256 images (mid-block attention at 32x32)
    log(f"vae: {n_params} params, {total} steps ({full_from} at 128px crops x{a.vae_bs}, rest at 256px x{max(1, a.vae_bs // 4)})")
    t0 = time.time()
    run_l1 = []
    vae.train()
    while step < total:
        full = step >= full_from
        x, w = vae_batch(a.seed, step, IMAGE_SIZE if full else 128, max(1, a.vae_bs // 4) if full else a.vae_bs)
        w = w / w.mean()
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, total, a.vae_lr, 50)
        gen = torch.Generator().manual_seed(a.seed * 1_000_003 + step)
        post = vae.encode(x).latent_dist
        z = post.sample(generator=gen)
        y = vae.decode(z).sample
        l1 = ((y - x).abs() * w).mean()
        mse = ((y - x).pow(2) * w).mean()
        kl = post.kl().mean() / z[0].numel()
        loss = l1 + mse + a.vae_kl * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        step += 1
        run_l1.append((l1.item(), mse.item(), kl.item()))
        if step % 25 == 0 or step == total:
            m = np.mean(run_l1, axis=0)
            hist.append((step, float(m[0]), float(m[1]), float(m[2])))
            run_l1 = []
            el = time.time() - t0
            log(f"vae step {step}/{total} l1 {m[0]:.4f} mse {m[1]:.5f} kl/dim {m[2]:.3f} "
                f"lr {opt.param_groups[0]['lr']:.2e} {el:.0f}s")
        if step % 200 == 0 or step == total:
            atomic_save({"model": vae.state_dict(), "opt": opt.state_dict(), "step": step, "hist": hist}, ck)
    round_bf16_(vae)
    vae.eval()
    # held-out reconstruction check at full resolution
    rng = np.random.default_rng([a.seed, 9])
    imgs = np.stack([shapes.render(shapes.sample_scene(rng), IMAGE_SIZE) for _ in range(8)])
    x = to_tensor(imgs)
    with torch.no_grad():
        lat = vae.encode(x).latent_dist
        y = vae.decode(lat.mode()).sample
    err = (y - x).abs().mean().item() * 127.5
    log(f"vae: held-out 256px mean abs error {err:.2f}/255, posterior std mean {lat.std.mean().item():.4f}")
    torch.save(vae.state_dict(), os.path.join(a.workdir, "vae_final.pt"))
    rec = ((y.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    save_grid(np.concatenate([imgs[:4], rec[:4]]), 4, os.path.join(a.workdir, "vae_recon.png"))
    with open(os.path.join(a.workdir, "vae_hist.json"), "w") as f:
        json.dump({"hist": hist, "heldout_mae_255": err, "seconds_this_run": time.time() - t0}, f)


def load_vae(a):
    vae = make_vae()
    vae.load_state_dict(torch.load(os.path.join(a.workdir, "vae_final.pt")))
    return vae.eval()


# ------------------------------------------------------------------------------------------------
# Stage: latents


def dataset_scene(seed: int, i: int) -> shapes.Scene:
    return shapes.sample_scene(np.random.default_rng([seed, 2, i]), IMAGE_SIZE, p_two=0.2)


def stage_latents(a):
    vae = load_vae(a)
    N = a.num_scenes
    lat = torch.empty(N, 16, IMAGE_SIZE // 8, IMAGE_SIZE // 8, dtype=torch.float16)
    caps = []
    t0 = time.time()
    bs = 16
    with torch.no_grad():
        for s in range(0, N, bs):
            scs = [dataset_scene(a.seed, i) for i in range(s, min(N, s + bs))]
            caps += [sc.caption for sc in scs]
            x = to_tensor(np.stack([shapes.render(sc, IMAGE_SIZE) for sc in scs]))
            lat[s:s + len(scs)] = vae.encode(x).latent_dist.mode().half()
            if (s // bs) % 50 == 0:
                log(f"latents {s + len(scs)}/{N} {time.time() - t0:.0f}s")
    lf = lat.float()
    shift = float(lf.mean())
    scale = float(1.0 / (lf - shift).std())
    shift, scale = round(shift, 4), round(scale, 4)
    log(f"latents: mean {shift} std {1 / scale:.4f} -> shift_factor {shift} scaling_factor {scale} "
        f"({time.time() - t0:.0f}s)")
    torch.save({"latents": lat, "captions": caps, "shift_factor": shift, "scaling_factor": scale},
               os.path.join(a.workdir, "latents.pt"))


# ------------------------------------------------------------------------------------------------
# Stage: transformer (+ text encoders)


def make_text_encoders(info, t5_vocab: int):
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    c = info["clip"]
    clip = CLIPTextModel(CLIPTextConfig(vocab_size=c["vocab_size"], bos_token_id=c["bos_token_id"],
                                        eos_token_id=c["eos_token_id"], pad_token_id=c["eos_token_id"],
                                        **CLIP_CONFIG))
    t5 = T5EncoderModel(T5Config(vocab_size=t5_vocab, **T5_CONFIG))
    return clip, t5


def make_transformer():
    from diffusers import FluxTransformer2DModel

    m = FluxTransformer2DModel(**TRANSFORMER_CONFIG)
    # adaLN-Zero style init (as in DiT): every modulation and the output projection start at zero,
    # so each block starts as the identity and the model starts predicting zero velocity.
    with torch.no_grad():
        for name, mod in m.named_modules():
            if name.endswith("norm1.linear") or name.endswith("norm1_context.linear") or \
                    name.endswith("norm.linear") or name in ("norm_out.linear", "proj_out"):
                mod.weight.zero_()
                mod.bias.zero_()
    return m


def pack(lat: torch.Tensor) -> torch.Tensor:
    """(B,C,H,W) -> (B,(H/2)(W/2),C*4) with channel index c*4 + dy*2 + dx (FluxPipeline's packing)."""
    B, C, H, W = lat.shape
    return lat.view(B, C, H // 2, 2, W // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(B, (H // 2) * (W // 2), C * 4)


def image_ids(h: int, w: int) -> torch.Tensor:
    ids = torch.zeros(h, w, 3)
    ids[..., 1] = torch.arange(h)[:, None]
    ids[..., 2] = torch.arange(w)[None, :]
    return ids.reshape(h * w, 3)


def flux_mu(image_seq_len: int) -> float:
    c = SCHEDULER_CONFIG
    m = (c["max_shift"] - c["base_shift"]) / (c["max_image_seq_len"] - c["base_image_seq_len"])
    return image_seq_len * m + c["base_shift"] - m * c["base_image_seq_len"]


def encode_text(clip, t5, clip_ids, t5_ids):
    pooled = clip(clip_ids).pooler_output
    hidden = t5(t5_ids).last_hidden_state
    return hidden, pooled


def token_foreground(a, n: int) -> torch.Tensor:
    """(n, tokens) fraction of each 16x16-pixel image token covered by a shape, for the dataset's
    scenes (re-rendered: dataset_scene is deterministic). Cached in the workdir."""
    path = os.path.join(a.workdir, "token_fg.pt")
    if os.path.exists(path):
        fg = torch.load(path)
        if fg.shape[0] == n:
            return fg
    t0 = time.time()
    g = IMAGE_SIZE // 16
    fg = torch.empty(n, g * g)
    for i in range(n):
        sc = dataset_scene(a.seed, i)
        # without supersampling (the latents' renders had it): a mask this coarse does not need it
        m = shapes.foreground_mask(shapes.render(sc, IMAGE_SIZE, supersample=1),
                                   shapes.BACKGROUNDS[sc.background])
        fg[i] = torch.from_numpy(m.reshape(g, 16, g, 16).mean(axis=(1, 3)).reshape(-1).astype(np.float32))
    torch.save(fg, path)
    log(f"token foreground masks for {n} scenes in {time.time() - t0:.0f}s (mean {fg.mean():.3f})")
    return fg


def stage_transformer(a):
    set_threads(a.threads)
    clip_tok, t5_tok, info = load_tokenizers(a)
    data = torch.load(os.path.join(a.workdir, "latents.pt"))
    lat, caps = data["latents"], data["captions"]
    shift, scale = data["shift_factor"], data["scaling_factor"]
    N = lat.shape[0]
    token_fg = token_foreground(a, N)
    clip_ids = clip_tok(caps, padding="max_length", max_length=CLIP_MAX_LEN, truncation=True,
                        return_tensors="pt").input_ids
    t5_ids = t5_tok(caps, padding="max_length", max_length=T5_MAX_LEN, truncation=True,
                    return_tensors="pt").input_ids
    assert (t5_ids[:, -1] == t5_tok.pad_token_id).all(), "a caption fills all T5 positions"

    torch.manual_seed(a.seed + 1)
    clip, t5 = make_text_encoders(info, len(t5_tok))
    model = make_transformer()
    for m in (clip, t5, model):
        m.train()
    n_tr = sum(p.numel() for p in model.parameters())
    n_te = sum(p.numel() for p in clip.parameters()) + sum(p.numel() for p in t5.parameters())
    params = [{"params": list(model.parameters()), "lr": a.lr},
              {"params": list(clip.parameters()) + list(t5.parameters()), "lr": a.lr * a.te_lr_mult}]
    opt = torch.optim.AdamW(params, lr=a.lr, betas=(0.9, 0.99), weight_decay=0.01)
    ema = {k: v.detach().clone() for k, v in _prefixed_state(model, clip, t5).items()}

    ck = os.path.join(a.workdir, "transformer_ckpt.pt")
    step, hist = 0, []
    if a.init_from and not os.path.exists(ck):
        # continue training from another run's checkpoint: its weights and EMA, a fresh optimizer
        # and learning-rate schedule
        st = torch.load(a.init_from, weights_only=False)
        model.load_state_dict(st["model"]); clip.load_state_dict(st["clip"]); t5.load_state_dict(st["t5"])
        ema = st["ema"]
        log(f"transformer: initialised from {a.init_from} (trained {st['step']} steps)")
    if os.path.exists(ck):
        st = torch.load(ck, weights_only=False)
        model.load_state_dict(st["model"]); clip.load_state_dict(st["clip"]); t5.load_state_dict(st["t5"])
        opt.load_state_dict(st["opt"]); ema = st["ema"]; step, hist = st["step"], st["hist"]
        log(f"transformer: resumed at step {step}")
    total, B = a.steps, a.bs
    mu = flux_mu((IMAGE_SIZE // 16) ** 2)
    img_ids = image_ids(IMAGE_SIZE // 16, IMAGE_SIZE // 16)
    txt_ids = torch.zeros(T5_MAX_LEN, 3)
    log(f"transformer: {n_tr} params (+{n_te} text encoder params), {N} scenes, {total} steps x {B}, "
        f"mu {mu:.3f}, shift {shift} scale {scale}")
    t0, step0 = time.time(), step
    run = []
    steps_per_epoch = N // B
    while step < total:
        epoch, k = divmod(step, steps_per_epoch)
        perm = np.random.default_rng([a.seed, 3, epoch]).permutation(N)
        idx = torch.from_numpy(perm[k * B:(k + 1) * B])
        gen = torch.Generator().manual_seed(a.seed * 7_919 + step)
        x0 = pack((lat[idx].float() - shift) * scale)
        noise = torch.randn(x0.shape, generator=gen)
        # timesteps: a mix of uniform (a.t_uniform of the batch) and logit-normal(0, 1). Pure
        # logit-normal (SD3/FLUX) almost never draws s > 0.9, where the layout (which colour goes
        # where) is decided; a first run with it learned the backgrounds but poor layouts.
        u_ln = torch.sigmoid(torch.randn(B, generator=gen))
        u_un = torch.rand(B, generator=gen)
        u = torch.where(torch.rand(B, generator=gen) < a.t_uniform, u_un, u_ln)
        sigma = math.exp(mu) * u / (1 + (math.exp(mu) - 1) * u)   # FLUX resolution shift at 256px
        s = sigma[:, None, None]
        xt = (1 - s) * x0 + s * noise
        target = noise - x0
        for g, base in zip(opt.param_groups, (a.lr, a.lr * a.te_lr_mult)):
            g["lr"] = cosine_lr(step, total, base, a.warmup)
        # bf16 autocast: ~1.5x faster on a CPU with AVX512_BF16; weights, optimizer and loss stay fp32
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(a.bf16)):
            hidden, pooled = encode_text(clip, t5, clip_ids[idx], t5_ids[idx])
            pred = model(hidden_states=xt, encoder_hidden_states=hidden, pooled_projections=pooled,
                         timestep=sigma, img_ids=img_ids, txt_ids=txt_ids, return_dict=False)[0]
        # tokens covered by a shape weigh 1 + fg_weight: shapes are 1-12% of the pixels, and once the
        # background is right the plain mean leaves little signal for the object the caption names
        w = 1.0 + a.fg_weight * token_fg[idx]
        loss = (((pred.float() - target) ** 2).mean(-1) * (w / w.mean())).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], 1.0)
        opt.step()
        step += 1
        d = min(a.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for kk, v in _prefixed_state(model, clip, t5).items():
                if v.dtype.is_floating_point:
                    ema[kk].mul_(d).add_(v.detach(), alpha=1 - d)
                else:
                    ema[kk].copy_(v)
        run.append((loss.item(), float(gn)))
        if step % 25 == 0 or step == total:
            m = np.mean(run, axis=0)
            hist.append((step, float(m[0])))
            run = []
            el = time.time() - t0
            log(f"step {step}/{total} loss {m[0]:.4f} gnorm {m[1]:.2f} lr {opt.param_groups[0]['lr']:.2e} "
                f"{el:.0f}s ({el / (step - step0):.2f}s/step)")
        if step % a.ckpt_every == 0 or step == total:
            atomic_save({"model": model.state_dict(), "clip": clip.state_dict(), "t5": t5.state_dict(),
                         "opt": opt.state_dict(), "ema": ema, "step": step, "hist": hist}, ck)
    final = ema if a.ema > 0 else _prefixed_state(model, clip, t5)
    torch.save({k: v.clone() for k, v in final.items()}, os.path.join(a.workdir, "transformer_final.pt"))
    with open(os.path.join(a.workdir, "transformer_hist.json"), "w") as f:
        json.dump({"hist": hist, "seconds_this_run": time.time() - t0}, f)


def _prefixed_state(model, clip, t5) -> dict:
    out = {}
    for pre, m in (("transformer", model), ("clip", clip), ("t5", t5)):
        out.update({f"{pre}.{k}": v for k, v in m.state_dict().items()})
    return out


# ------------------------------------------------------------------------------------------------
# Stage: export


def stage_export(a):
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline

    clip_tok, t5_tok, info = load_tokenizers(a)
    data = torch.load(os.path.join(a.workdir, "latents.pt"))
    vae = load_vae(a)
    vae.register_to_config(shift_factor=data["shift_factor"], scaling_factor=data["scaling_factor"])
    clip, t5 = make_text_encoders(info, len(t5_tok))
    model = make_transformer()
    sd = torch.load(os.path.join(a.workdir, "transformer_final.pt"))
    for pre, m in (("transformer", model), ("clip", clip), ("t5", t5)):
        missing, unexpected = m.load_state_dict(
            {k[len(pre) + 1:]: v for k, v in sd.items() if k.startswith(pre + ".")}, strict=False)
        assert not unexpected and all("position_ids" in k for k in missing), (pre, missing, unexpected)
    sched = FlowMatchEulerDiscreteScheduler(**SCHEDULER_CONFIG)
    pipe = FluxPipeline(scheduler=sched, vae=vae.to(torch.bfloat16), text_encoder=clip.to(torch.bfloat16),
                        tokenizer=clip_tok, text_encoder_2=t5.to(torch.bfloat16), tokenizer_2=t5_tok,
                        transformer=model.to(torch.bfloat16))
    out = a.out
    card = os.path.join(out, "README.md")  # the model card is written by hand: keep it
    card_text = open(card).read() if os.path.exists(card) else None
    if os.path.isdir(out):
        shutil.rmtree(out)
    pipe.save_pretrained(out, safe_serialization=True)
    if card_text is not None:
        with open(card, "w") as f:
            f.write(card_text)
    # transformers 5 writes only tokenizer.json/tokenizer_config.json; add the original vocab files
    # (what the real FLUX repos ship and what a C++ tokenizer reads).
    tok_dir = os.path.join(a.workdir, "tokenizers")
    for f in ("vocab.json", "merges.txt"):
        shutil.copy(os.path.join(tok_dir, "clip", f), os.path.join(out, "tokenizer", f))
    shutil.copy(os.path.join(tok_dir, "t5", "spiece.model"), os.path.join(out, "tokenizer_2", "spiece.model"))
    # FLUX.1's model_index.json names tokenizer_2 "T5TokenizerFast"; transformers 5 saves the same
    # class under the name "T5Tokenizer" (T5TokenizerFast is an alias). Use the upstream name.
    mi_path = os.path.join(out, "model_index.json")
    with open(mi_path) as f:
        mi = json.load(f)
    mi["tokenizer_2"] = ["transformers", "T5TokenizerFast"]
    with open(mi_path, "w") as f:
        json.dump(mi, f, indent=2, sort_keys=True)
        f.write("\n")
    check_folder(out)


def check_folder(out: str):
    """Reload everything offline and check the tokenizers agree with their vocab files."""
    import tempfile

    from diffusers import FluxPipeline
    from transformers import CLIPTokenizer, T5Tokenizer, T5TokenizerFast

    pipe = FluxPipeline.from_pretrained(out, torch_dtype=torch.float32, local_files_only=True)
    caps = build_tokenizers.corpus(12345, 300) + [p for p, _ in EVAL_PROMPTS] + EXTRA_PROMPTS + \
        ["A Huge Red Circle, 42 zebras!", "  two   spaces\tand tab  "]
    with tempfile.TemporaryDirectory() as td:
        # CLIP from vocab.json + merges.txt only
        for f in ("vocab.json", "merges.txt", "tokenizer_config.json"):
            shutil.copy(os.path.join(out, "tokenizer", f), td)
        c2 = CLIPTokenizer.from_pretrained(td)
        # T5 from spiece.model only
        td2 = os.path.join(td, "t5")
        os.makedirs(td2)
        for f in ("spiece.model", "tokenizer_config.json"):
            shutil.copy(os.path.join(out, "tokenizer_2", f), td2)
        t2 = T5Tokenizer.from_pretrained(td2)
        t3 = T5TokenizerFast.from_pretrained(os.path.join(out, "tokenizer_2"))
        import sentencepiece as spm
        sp = spm.SentencePieceProcessor(model_file=os.path.join(out, "tokenizer_2", "spiece.model"))
        for c in caps:
            a1 = pipe.tokenizer(c).input_ids
            assert a1 == c2(c).input_ids, c
            b1 = pipe.tokenizer_2(c).input_ids
            assert b1 == t2(c).input_ids == t3(c).input_ids == sp.encode(c) + [1], (c, b1, sp.encode(c))
    assert len(pipe.tokenizer_2) == pipe.text_encoder_2.config.vocab_size
    assert len(pipe.tokenizer) == pipe.text_encoder.config.vocab_size
    size = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(out) for f in fs)
    log(f"export: {out} reloads offline with FluxPipeline; tokenizers agree with vocab.json/merges.txt and "
        f"spiece.model; folder size {size / 1e6:.2f} MB")


# ------------------------------------------------------------------------------------------------
# Stage: eval


def save_grid(imgs: np.ndarray, cols: int, path: str, pad: int = 4):
    from PIL import Image

    n, H, W, _ = imgs.shape
    rows = (n + cols - 1) // cols
    g = np.full((rows * H + (rows + 1) * pad, cols * W + (cols + 1) * pad, 3), 255, np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        g[pad + r * (H + pad):pad + r * (H + pad) + H, pad + c * (W + pad):pad + c * (W + pad) + W] = imgs[i]
    Image.fromarray(g).save(path, optimize=True)


def plot_losses(vae_hist, tr_hist, path: str):
    """Two-panel loss plot drawn with PIL (matplotlib is not installed)."""
    from PIL import Image, ImageDraw

    W, H, m = 900, 380, 60
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    panels = [("VAE L1 (per-pixel, [-1,1] scale)", [(s, l) for s, l, _, _ in vae_hist]),
              ("transformer rectified-flow MSE", [(s, l) for s, l in tr_hist])]
    pw = (W - 3 * m) // 2
    for pi, (title, pts) in enumerate(panels):
        x0, y0, x1, y1 = m + pi * (pw + m), 40, m + pi * (pw + m) + pw, H - 40
        d.rectangle([x0, y0, x1, y1], outline="black")
        d.text((x0, 15), title, fill="black")
        if not pts:
            continue
        xs = [p[0] for p in pts]
        ys = [math.log10(max(p[1], 1e-6)) for p in pts]
        lo, hi = min(ys), max(ys)
        if hi - lo < 1e-6:
            hi = lo + 1
        pl = [(x0 + (x - xs[0]) / max(1, xs[-1] - xs[0]) * (x1 - x0), y1 - (y - lo) / (hi - lo) * (y1 - y0))
              for x, y in zip(xs, ys)]
        d.line(pl, fill=(200, 30, 30), width=2)
        for frac in (0, 0.5, 1):
            yv = lo + frac * (hi - lo)
            yy = y1 - frac * (y1 - y0)
            d.text((x0 - 55, yy - 6), f"{10 ** yv:.3g}", fill="black")
        d.text((x0, y1 + 5), f"step {xs[0]}", fill="black")
        d.text((x1 - 70, y1 + 5), f"step {xs[-1]}", fill="black")
    d.text((W // 2 - 60, H - 18), "(log-scale y axis)", fill="gray")
    img.save(path)


def stage_eval(a):
    from diffusers import FluxPipeline

    set_threads(a.threads)
    t_load = time.time()
    pipe = FluxPipeline.from_pretrained(a.out, torch_dtype=torch.float32, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    log(f"eval: loaded {a.out} in {time.time() - t_load:.1f}s; scheduler {type(pipe.scheduler).__name__} "
        f"dynamic_shifting={pipe.scheduler.config.use_dynamic_shifting}; guidance_embeds="
        f"{pipe.transformer.config.guidance_embeds}")
    os.makedirs(a.images, exist_ok=True)

    def gen(prompt, seed):
        t = time.time()
        img = pipe(prompt, height=IMAGE_SIZE, width=IMAGE_SIZE, num_inference_steps=a.eval_steps,
                   max_sequence_length=T5_MAX_LEN, generator=torch.Generator().manual_seed(seed),
                   output_type="np").images[0]
        return (img * 255).round().astype(np.uint8), time.time() - t

    results, imgs, times = [], [], []
    for i, (prompt, want) in enumerate(EVAL_PROMPTS):
        img, dt = gen(prompt, i)
        times.append(dt)
        an = shapes.analyse(img)
        col_ok = an["color"] == want["color"]
        pos_ok = an["cx"] is not None and shapes.position_ok(want["position"], an["cx"], an["cy"])
        shape_ok = an["shape"] == want["shape"]
        bg_ok = an["bg_name"] == want["bg"]
        results.append(dict(prompt=prompt, seed=i, colour_ok=col_ok, position_ok=pos_ok, shape_ok=shape_ok,
                            background_ok=bg_ok, analysis=an))
        imgs.append(img)
        log(f"[{i:2d}] {'PASS' if col_ok and pos_ok else 'FAIL'} colour {'ok' if col_ok else 'NO'} "
            f"position {'ok' if pos_ok else 'NO'} shape {'ok' if shape_ok else 'NO'} bg {'ok' if bg_ok else 'NO'} "
            f"| got {an['color']} {an['shape']} at ({an['cx'] or 0:.2f},{an['cy'] or 0:.2f}) on {an['bg_name']} "
            f"| {prompt} ({dt:.1f}s)")
    n_cp = sum(r["colour_ok"] and r["position_ok"] for r in results)
    n_all = sum(r["colour_ok"] and r["position_ok"] and r["shape_ok"] for r in results)
    summary = dict(
        colour_and_position_ok=n_cp, colour_position_and_shape_ok=n_all,
        colour_ok=sum(r["colour_ok"] for r in results), position_ok=sum(r["position_ok"] for r in results),
        shape_ok=sum(r["shape_ok"] for r in results), background_ok=sum(r["background_ok"] for r in results),
        n=len(results), steps=a.eval_steps, seconds_per_image=float(np.median(times)))
    log(f"eval: colour+position right in {n_cp}/16 (with shape too: {n_all}/16); colour {summary['colour_ok']}, "
        f"position {summary['position_ok']}, shape {summary['shape_ok']}, background {summary['background_ok']}; "
        f"median {summary['seconds_per_image']:.2f}s per 256x256 image ({a.eval_steps} steps)")
    save_grid(np.stack(imgs), 4, os.path.join(a.images, "eval_grid.png"))
    from PIL import Image
    for i in (0, 2, 3, 7):
        Image.fromarray(imgs[i]).save(os.path.join(a.images, f"prompt{i:02d}.png"), optimize=True)
    extra = []
    for j, p in enumerate(EXTRA_PROMPTS):
        img, _ = gen(p, 100 + j)
        extra.append(img)
    save_grid(np.stack(extra), 4, os.path.join(a.images, "extra_prompts.png"))
    with open(os.path.join(a.workdir, "eval.json"), "w") as f:
        json.dump({"summary": summary, "results": results, "extra_prompts": EXTRA_PROMPTS}, f, indent=1)
    vh = os.path.join(a.workdir, "vae_hist.json")
    th = os.path.join(a.workdir, "transformer_hist.json")
    if os.path.exists(vh) and os.path.exists(th):
        plot_losses(json.load(open(vh))["hist"], json.load(open(th))["hist"], os.path.join(a.images, "loss.png"))
    rec = os.path.join(a.workdir, "vae_recon.png")
    if os.path.exists(rec):
        shutil.copy(rec, os.path.join(a.images, "vae_reconstruction.png"))
    return summary


# ------------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stage", choices=["tokenizers", "vae", "latents", "transformer", "export", "eval", "all"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default="/tmp/tiny-flux-work", help="checkpoints, latents, logs")
    ap.add_argument("--out", default=os.path.join(REPO, "models", "tiny-flux-shapes"))
    ap.add_argument("--images", default=os.path.join(REPO, "docs", "images", "tiny-flux-shapes"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--vae-steps", type=int, default=1000)
    ap.add_argument("--vae-bs", type=int, default=8)
    ap.add_argument("--vae-lr", type=float, default=8e-4)
    ap.add_argument("--vae-kl", type=float, default=1e-5, help="weight of the per-dim KL term")
    ap.add_argument("--num-scenes", type=int, default=8000)
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--bs", type=int, default=32)
    ap.add_argument("--lr", type=float, default=6e-4)
    ap.add_argument("--te-lr-mult", type=float, default=1.0, help="text encoder lr = lr x this")
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--t-uniform", type=float, default=0.75,
                    help="fraction of timesteps drawn uniformly (rest logit-normal), before the shift")
    ap.add_argument("--fg-weight", type=float, default=3.0,
                    help="extra loss weight of image tokens covered by a shape (x their coverage)")
    ap.add_argument("--bf16", type=int, default=1, help="bf16 autocast for the transformer stage")
    ap.add_argument("--init-from", default="", help="transformer_ckpt.pt of an earlier run to start from")
    ap.add_argument("--ema", type=float, default=0.995, help="EMA decay (0 = ship raw weights)")
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--eval-steps", type=int, default=28)
    a = ap.parse_args()
    set_threads(a.threads)
    torch.use_deterministic_algorithms(True)
    os.makedirs(a.workdir, exist_ok=True)
    stages = ["tokenizers", "vae", "latents", "transformer", "export", "eval"] if a.stage == "all" else [a.stage]
    t_all = time.time()
    timings = {}
    for s in stages:
        t = time.time()
        log(f"=== stage {s}")
        globals()[f"stage_{s}"](a)
        timings[s] = round(time.time() - t, 1)
        log(f"=== stage {s} done in {timings[s]:.0f}s")
    log(f"total {time.time() - t_all:.0f}s {timings}")
    tf = os.path.join(a.workdir, "timings.json")
    old = json.load(open(tf)) if os.path.exists(tf) else {}
    old.update(timings)
    json.dump(old, open(tf, "w"), indent=1)


if __name__ == "__main__":
    main()
