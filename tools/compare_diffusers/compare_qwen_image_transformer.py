#!/usr/bin/env python3
"""Time one QwenImageTransformer2DModel forward in diffusers (PyTorch, CPU) and in paradiff.

1. Builds a mid-size random Qwen-Image transformer (default: inner 1024 = 8 heads x 128, 6
   dual-stream blocks, axes_dims_rope [16,56,56], in_channels 64, out_channels 16, patch 2,
   joint_attention_dim 3584 as the released model) with weights drawn as
   tools/make_fixtures/make_qwen_image_transformer_fixtures.py draws them, and saves it with
   save_pretrained into MODEL_DIR/transformer, plus MODEL_DIR/inputs.safetensors (a 32x32 grid =
   1024 image tokens + 128 text tokens, batch 1, no text mask: every token valid). An existing
   MODEL_DIR with the same settings is reused.
2. For every dtype x threads: diffusers' model(...) with torch.set_num_threads(T), fp32 or bf16
   (bf16 = model.to(torch.bfloat16), float inputs cast to bf16), W warm-up runs then the median
   of N; then
       BIN transformer-forward --model MODEL_DIR/transformer --inputs MODEL_DIR/inputs.safetensors
           --output OUT --dtype fp32|bf16 --threads T --repeat N
   (its `forward_ms:` line is the median of N after one warm-up). Both run back to back for each
   cell, so a change in the machine's load between cells moves both. With --pairs N each cell
   alternates N times instead: one timed diffusers forward, then one paradiff process with
   --repeat 1; the ratio is the median of the pairs' ratios.
3. Prints one table: both medians, the ratio diffusers/paradiff (> 1: paradiff faster) and
   paradiff's relative error ||paradiff - diffusers|| / ||diffusers|| in the same dtype.

Typical use (minutes): nice -n 10 .venv-tools/bin/python \\
    tools/compare_diffusers/compare_qwen_image_transformer.py --paradiff build/release/paradiff
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

import diffusers  # noqa: E402
from diffusers import QwenImageTransformer2DModel  # noqa: E402
from pairs import time_pairs  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
FORWARD_MS = re.compile(r"^forward_ms:\s*([0-9.eE+-]+)\s*$", re.M)


def model_config(args) -> dict:
    return dict(patch_size=2, in_channels=64, out_channels=16, num_layers=args.layers,
                attention_head_dim=128, num_attention_heads=args.heads,
                joint_attention_dim=args.joint_attention_dim, guidance_embeds=False,
                axes_dims_rope=[16, 56, 56])


def count_flops(cfg: dict, s_img: int, s_txt: int) -> float:
    """As QwenImageTransformerConfig::forward_flops (and FLUX's): token GEMMs and attention;
    norms, pointwise work, the per-sample modulation and timestep GEMMs not counted. Batch 1."""
    c = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    s = s_img + s_txt
    per_block = 24 * s * c * c + 4 * s * s * c
    embed = 2 * (s_img * cfg["in_channels"] + s_txt * cfg["joint_attention_dim"]) * c
    out = 2 * s_img * c * cfg["patch_size"] ** 2 * cfg["out_channels"]
    return cfg["num_layers"] * per_block + embed + out


@torch.no_grad()
def randomize_(model: torch.nn.Module, gen: torch.Generator) -> None:
    """As the fixture script: Linear N(0, 1/fan_in); biases N(0, 0.1^2), modulation biases
    N(0, 1); q/k RMSNorm weights 2 + N(0, 0.3^2); txt_norm 1 + N(0, 0.15^2)."""
    params = dict(model.named_parameters())
    for name in sorted(params):
        p = params[name]
        if name.endswith(".weight") and p.ndim == 2:
            v = torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[1])
        elif name.endswith(".bias") and p.ndim == 1:
            std = 1.0 if ("_mod." in name or name.startswith("norm_out.")) else 0.1
            v = std * torch.randn(p.shape, generator=gen)
        elif name.endswith(("norm_q.weight", "norm_k.weight", "norm_added_q.weight",
                            "norm_added_k.weight")):
            v = 2.0 + 0.3 * torch.randn(p.shape, generator=gen)
        elif name == "txt_norm.weight":
            v = 1.0 + 0.15 * torch.randn(p.shape, generator=gen)
        else:
            raise RuntimeError(f"unexpected parameter {name} {tuple(p.shape)}")
        p.copy_(v.to(p.dtype))


def prepare_model_dir(args, cfg: dict) -> None:
    mdir = args.model_dir
    stamp = {"config": cfg, "grid": args.grid, "txt_len": args.txt_len, "seed": args.seed}
    stamp_path = mdir / "compare_stamp.json"
    if (stamp_path.exists() and json.loads(stamp_path.read_text()) == stamp
            and (mdir / "transformer" / "config.json").exists()
            and (mdir / "inputs.safetensors").exists()):
        print(f"reusing {mdir}")
        return
    print(f"building the random model into {mdir} ...", flush=True)
    mdir.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(args.seed)
    model = QwenImageTransformer2DModel(**cfg)
    randomize_(model, gen)
    h = w = args.grid
    inputs = {
        "hidden_states": torch.randn(1, h * w, cfg["in_channels"], generator=gen),
        "encoder_hidden_states": torch.randn(1, args.txt_len, cfg["joint_attention_dim"],
                                             generator=gen),
        # 0.5 is exact in bf16 too, so fp32 and bf16 runs see the same timestep.
        "timestep": torch.tensor([0.5], dtype=torch.float32),
        "img_shapes": torch.tensor([[[1, h, w]]], dtype=torch.float32),
    }
    model.save_pretrained(mdir / "transformer", safe_serialization=True, max_shard_size="100GB")
    save_file(inputs, str(mdir / "inputs.safetensors"))
    stamp_path.write_text(json.dumps(stamp, indent=1) + "\n")
    print(f"  {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters")


def warm_up(args, model, inputs: dict, dtype, threads: int):
    """Sets the thread count, runs args.warmup untimed forwards; returns the forward's keyword
    arguments and the last output."""
    torch.set_num_threads(threads)
    img_shapes = [[tuple(int(v) for v in s) for s in sample] for sample in inputs["img_shapes"]]
    kw = dict(hidden_states=inputs["hidden_states"].to(dtype),
              encoder_hidden_states=inputs["encoder_hidden_states"].to(dtype),
              timestep=inputs["timestep"].to(dtype), img_shapes=img_shapes, return_dict=True)
    for _ in range(args.warmup):
        out = model(**kw).sample
    return kw, out


@torch.no_grad()
def time_diffusers(args, model, inputs: dict, dtype, threads: int):
    kw, out = warm_up(args, model, inputs, dtype, threads)
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        out = model(**kw).sample
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), out.float()


@torch.no_grad()
def time_alternating(args, model, inputs: dict, dname: str, threads: int):
    """--pairs N: after the diffusers warm-ups, N alternating pairs (pairs.py). Returns
    diffusers' median, its output, paradiff's result (median_ms over the pairs) and the pairs'
    ratios."""
    kw, out = warm_up(args, model, inputs, DTYPES[dname], threads)
    dtimes, para = time_pairs(lambda: model(**kw),
                              lambda: run_paradiff(args, dname, threads, repeat=1), args.pairs)
    return statistics.median(dtimes), out.float(), para, para.get("pair_ratios", [])


def run_paradiff(args, dname: str, threads: int, repeat: int | None = None) -> dict:
    out_path = Path(args.paradiff_output)
    out_path.unlink(missing_ok=True)
    cmd = [str(args.paradiff), "transformer-forward",
           "--model", str(args.model_dir / "transformer"),
           "--inputs", str(args.model_dir / "inputs.safetensors"), "--output", str(out_path),
           "--dtype", dname, "--threads", str(threads),
           "--repeat", str(args.runs if repeat is None else repeat)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    res = {"cmd": " ".join(cmd), "rc": proc.returncode}
    m = FORWARD_MS.findall(proc.stdout)
    if proc.returncode != 0 or not m:
        res["error"] = ((proc.stderr or proc.stdout).strip().splitlines() or ["(no output)"])[-1]
        return res
    res["median_ms"] = float(m[-1])
    res["sample"] = load_file(str(out_path))["sample"].float()
    return res


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def parse_list(text: str, conv=str) -> list:
    return [conv(x) for x in text.split(",") if x]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=Path("/tmp/paradiff-qwen-midsize"))
    ap.add_argument("--joint-attention-dim", type=int, default=3584)
    ap.add_argument("--heads", type=int, default=8, help="attention heads (head_dim is 128)")
    ap.add_argument("--layers", type=int, default=6, help="dual-stream blocks")
    ap.add_argument("--grid", type=int, default=32, help="image tokens = grid x grid")
    ap.add_argument("--txt-len", type=int, default=128)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=lambda s: parse_list(s, int), default=[1, 2])
    ap.add_argument("--dtypes", type=parse_list, default=["fp32", "bf16"])
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3, help="timed runs; the median is reported")
    ap.add_argument("--pairs", type=int, default=0,
                    help="time N alternating pairs (one diffusers forward, one paradiff process) "
                         "per cell instead of each side's runs back to back")
    ap.add_argument("--paradiff", type=Path, required=True, help="the paradiff binary")
    ap.add_argument("--paradiff-output", default="/tmp/paradiff-qwen-out.safetensors")
    args = ap.parse_args(argv)
    for d in args.dtypes:
        if d not in DTYPES:
            ap.error(f"unknown dtype {d!r}; use fp32 and/or bf16")
    if args.pairs < 0:
        ap.error("--pairs must be >= 0")
    if args.warmup < 1:
        ap.error("--warmup must be >= 1")

    cfg = model_config(args)
    s_img, s_txt = args.grid * args.grid, args.txt_len
    gf = count_flops(cfg, s_img, s_txt) / 1e9
    print(f"torch {torch.__version__} diffusers {diffusers.__version__} on {cpu_name()} "
          f"({os.cpu_count()} logical CPUs), load average {os.getloadavg()[0]:.2f}")
    print(f"QwenImageTransformer2DModel: inner {cfg['num_attention_heads'] * 128} "
          f"({cfg['num_attention_heads']} heads x 128), {cfg['num_layers']} blocks, "
          f"joint_attention_dim {cfg['joint_attention_dim']}; {s_img} image + {s_txt} text "
          f"tokens, batch 1; {gf:.1f} GFLOP per forward")
    prepare_model_dir(args, cfg)
    inputs = load_file(str(args.model_dir / "inputs.safetensors"))

    rows = []
    for dname in args.dtypes:
        model = QwenImageTransformer2DModel.from_pretrained(
            str(args.model_dir / "transformer"), torch_dtype=DTYPES[dname]).eval()
        for p in model.parameters():  # own, aligned memory instead of mmapped file views
            p.data = p.data.clone()
        for threads in args.threads:
            load_before = os.getloadavg()[0]
            ratios = []
            if args.pairs:
                dms, ref, para, ratios = time_alternating(args, model, inputs, dname, threads)
            else:
                dms, ref = time_diffusers(args, model, inputs, DTYPES[dname], threads)
                para = run_paradiff(args, dname, threads)
            err = None
            if "sample" in para:
                err = ((para["sample"] - ref).norm() / ref.norm()).item()
            pms = para.get("median_ms")
            ratio = statistics.median(ratios) if ratios else (dms / pms if pms else None)
            rows.append((dname, threads, dms, pms, ratio, err, load_before, para.get("error")))
            print(f"  {dname} threads={threads}: diffusers {dms:.0f} ms, paradiff "
                  f"{para.get('median_ms', float('nan')):.0f} ms (load {load_before:.2f})"
                  + (" pairs " + " ".join(f"{r:.2f}" for r in ratios) if ratios else ""),
                  flush=True)
        del model

    if args.pairs:
        print(f"\nQwen-Image transformer forward, {gf:.1f} GFLOP; ms = median of {args.pairs} "
              f"alternating pairs, diffusers / paradiff = median of the pairs' ratios; load "
              f"average now {os.getloadavg()[0]:.2f}")
    else:
        print(f"\nQwen-Image transformer forward, {gf:.1f} GFLOP; ms = median of {args.runs} "
              f"after {args.warmup} warm-up (paradiff: 1); load average now "
              f"{os.getloadavg()[0]:.2f}")
    print("| dtype | threads | diffusers ms | paradiff ms | diffusers / paradiff | rel. error | "
          "load avg |")
    print("|---|---|---|---|---|---|---|")
    for dname, threads, dms, pms, ratio, err, load, error in rows:
        if pms is None:
            print(f"| {dname} | {threads} | {dms:.0f} | FAILED: {error} | - | - | {load:.2f} |")
            continue
        print(f"| {dname} | {threads} | {dms:.0f} | {pms:.0f} | {ratio:.2f}x | {err:.1e} | "
              f"{load:.2f} |")
    print("rel. error: ||paradiff - diffusers|| / ||diffusers||, same dtype (diffusers' bf16 "
          "keeps norms in bf16, paradiff in fp32, so bf16 rows differ more)")
    return 0 if all(r[3] is not None for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
