#!/usr/bin/env python3
"""Time one FluxTransformer2DModel forward in diffusers (PyTorch, CPU) and, optionally, in paradiff.

1. Builds a mid-size random FLUX transformer (inner 1024 = 8 heads x 128, 4 double + 8 single
   blocks, axes_dims_rope [16,56,56], in_channels 64, guidance off) and saves it with
   save_pretrained into MODEL_DIR/transformer, plus MODEL_DIR/inputs.safetensors (64x64 = 4096
   image tokens + 256 text tokens, batch 1). An existing MODEL_DIR with the same settings is reused.
2. Times model(...) on CPU for every threads x dtype combination: torch.set_num_threads(T),
   fp32 or bf16 (bf16 = model.to(torch.bfloat16) and the float inputs cast to bf16), W warm-up
   runs then the median of N runs. Saves diffusers' outputs as MODEL_DIR/output_<dtype>.safetensors
   and the timings as MODEL_DIR/diffusers_timings.json.
3. With --paradiff BIN, runs for each combination
       BIN transformer-forward --model MODEL_DIR/transformer --inputs MODEL_DIR/inputs.safetensors
           --output OUT --dtype fp32|bf16 --threads T --repeat N
   reads its `forward_ms: <median>` line and its output, and prints both timings, the ratio
   diffusers/paradiff and paradiff's relative error against diffusers in one table.
   With --pairs N instead, each cell alternates N times: one timed diffusers forward, then one
   paradiff process with --repeat 1; the ratio is the median of the pairs' ratios, so a drift of
   the machine's speed during the run moves both sides alike.

See README.md in this folder for the paradiff CLI contract. Typical use (takes minutes):
  nice -n 10 .venv-tools/bin/python tools/compare_diffusers/compare_flux_transformer.py
  nice -n 10 .venv-tools/bin/python tools/compare_diffusers/compare_flux_transformer.py \\
      --skip-diffusers --paradiff build/release/paradiff
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
from diffusers import FluxTransformer2DModel  # noqa: E402
from pairs import time_pairs  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def model_config(args) -> dict:
    return dict(
        patch_size=1,
        in_channels=64,
        out_channels=None,
        num_layers=args.double_layers,
        num_single_layers=args.single_layers,
        attention_head_dim=128,
        num_attention_heads=args.heads,
        joint_attention_dim=args.joint_attention_dim,
        pooled_projection_dim=768,
        guidance_embeds=False,
        axes_dims_rope=[16, 56, 56],
    )


# --------------------------------------------------------------------------------------------
# FLOP count
# --------------------------------------------------------------------------------------------

def count_flops(cfg: dict, batch: int, s_img: int, s_txt: int) -> dict:
    """FLOPs of one forward: every nn.Linear 2*M*K*N, attention 4*B*H*S^2*D per call.

    Elementwise work (norms, RoPE, softmax, GELU, modulation) is not counted.
    """
    d = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    h, hd = cfg["num_attention_heads"], cfg["attention_head_dim"]
    out_ch = cfg["out_channels"] or cfg["in_channels"]
    s = s_img + s_txt
    b = batch

    def lin(m, k, n):
        return 2 * m * k * n

    emb = (lin(b, 256, d) + lin(b, d, d)            # timestep_embedder
           + lin(b, cfg["pooled_projection_dim"], d) + lin(b, d, d))         # text_embedder
    if cfg["guidance_embeds"]:
        emb += lin(b, 256, d) + lin(b, d, d)
    embed_in = lin(b * s_img, cfg["in_channels"], d) + lin(b * s_txt, cfg["joint_attention_dim"], d)
    double_lin = (2 * lin(b, d, 6 * d)                                       # norm1, norm1_context
                  + lin(b * s_img, d, 3 * d) + lin(b * s_txt, d, 3 * d)     # q,k,v / add_*_proj
                  + lin(b * s_img, d, d) + lin(b * s_txt, d, d)             # to_out.0 / to_add_out
                  + lin(b * s_img, d, 4 * d) + lin(b * s_img, 4 * d, d)     # ff
                  + lin(b * s_txt, d, 4 * d) + lin(b * s_txt, 4 * d, d))    # ff_context
    single_lin = (lin(b, d, 3 * d) + lin(b * s, d, 3 * d) + lin(b * s, d, 4 * d)
                  + lin(b * s, 5 * d, d))
    attn = 4 * b * h * s * s * hd
    final = lin(b, d, 2 * d) + lin(b * s_img, d, out_ch)
    nd, ns = cfg["num_layers"], cfg["num_single_layers"]
    linear_total = emb + embed_in + nd * double_lin + ns * single_lin + final
    attn_total = (nd + ns) * attn
    return {"linear": linear_total, "attention": attn_total, "total": linear_total + attn_total}


class FlopCounter:
    """Counts the same FLOPs with forward hooks, to cross-check count_flops on a real forward."""

    def __init__(self, model: torch.nn.Module):
        from diffusers.models.transformers.transformer_flux import FluxAttention

        self.linear = 0
        self.attention = 0
        self.handles = []
        for mod in model.modules():
            if isinstance(mod, torch.nn.Linear):
                self.handles.append(mod.register_forward_hook(self._linear_hook))
            elif isinstance(mod, FluxAttention):
                self.handles.append(mod.register_forward_hook(self._attn_hook, with_kwargs=True))

    def _linear_hook(self, mod, inp, out):
        x = inp[0]
        m = x.numel() // x.shape[-1]
        self.linear += 2 * m * mod.in_features * mod.out_features

    def _attn_hook(self, mod, args, kwargs, out):
        hs = kwargs.get("hidden_states", args[0] if args else None)
        enc = kwargs.get("encoder_hidden_states")
        s = hs.shape[1] + (enc.shape[1] if enc is not None else 0)
        self.attention += 4 * hs.shape[0] * mod.heads * s * s * mod.head_dim

    def remove(self):
        for h in self.handles:
            h.remove()


# --------------------------------------------------------------------------------------------
# Model and inputs on disk
# --------------------------------------------------------------------------------------------

@torch.no_grad()
def randomize_(model: torch.nn.Module, gen: torch.Generator) -> None:
    """Same scheme as tools/make_fixtures: weights N(0, 1/fan_in), biases N(0, 0.1^2), RMSNorm 1 +- 0.15."""
    params = dict(model.named_parameters())
    for name in sorted(params):
        p = params[name]
        if name.endswith(".weight") and p.ndim == 2:
            p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[1]))
        elif name.endswith(".bias"):
            p.copy_(0.1 * torch.randn(p.shape, generator=gen))
        else:
            p.copy_(1.0 + 0.15 * torch.randn(p.shape, generator=gen))


def make_inputs(cfg: dict, grid: int, s_txt: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    h = w = grid
    ys = torch.arange(h, dtype=torch.float32)[:, None].expand(h, w)
    xs = torch.arange(w, dtype=torch.float32)[None, :].expand(h, w)
    img_ids = torch.stack([torch.zeros(h, w), ys, xs], dim=-1).reshape(h * w, 3).contiguous()
    return {
        "hidden_states": torch.randn(1, h * w, cfg["in_channels"], generator=gen),
        "encoder_hidden_states": torch.randn(1, s_txt, cfg["joint_attention_dim"], generator=gen),
        "pooled_projections": torch.randn(1, cfg["pooled_projection_dim"], generator=gen),
        # 0.5 -> 500 is exact in bf16 too, so fp32 and bf16 runs see the same timestep.
        "timestep": torch.tensor([0.5], dtype=torch.float32),
        "img_ids": img_ids,
        "txt_ids": torch.zeros(s_txt, 3, dtype=torch.float32),
    }


def prepare_model_dir(args, cfg: dict) -> None:
    mdir = args.model_dir
    stamp = {"config": cfg, "grid": args.grid, "txt_len": args.txt_len, "seed": args.seed}
    stamp_path = mdir / "compare_stamp.json"
    if (not args.regenerate and stamp_path.exists()
            and json.loads(stamp_path.read_text()) == stamp
            and (mdir / "transformer" / "config.json").exists()
            and (mdir / "inputs.safetensors").exists()):
        print(f"reusing {mdir}")
        return
    print(f"building the random model into {mdir} ...", flush=True)
    t0 = time.perf_counter()
    mdir.mkdir(parents=True, exist_ok=True)
    for stale in ["diffusers_timings.json", "output_fp32.safetensors", "output_bf16.safetensors",
                  "compare_stamp.json"]:
        (mdir / stale).unlink(missing_ok=True)
    gen = torch.Generator().manual_seed(args.seed)
    model = FluxTransformer2DModel(**cfg)
    randomize_(model, gen)
    inputs = make_inputs(cfg, args.grid, args.txt_len, gen)
    model.save_pretrained(mdir / "transformer", safe_serialization=True, max_shard_size="100GB")
    save_file(inputs, str(mdir / "inputs.safetensors"))
    stamp_path.write_text(json.dumps(stamp, indent=1) + "\n")
    n = sum(p.numel() for p in model.parameters())
    print(f"  {n / 1e6:.1f} M parameters, written in {time.perf_counter() - t0:.1f} s")


# --------------------------------------------------------------------------------------------
# diffusers timing
# --------------------------------------------------------------------------------------------

def check_flop_count(counter, flops: dict) -> None:
    """Removes the hooks and compares what they counted in one forward with the formula."""
    counter.remove()
    got = {"linear": counter.linear, "attention": counter.attention}
    for k in got:
        if got[k] != flops[k]:
            raise RuntimeError(f"FLOP count mismatch ({k}): hooks {got[k]} vs formula {flops[k]}")


def load_model(mdir: Path, dname: str, inputs: dict):
    """diffusers' model in `dname` and its forward's keyword arguments (float inputs in that
    dtype, ids as they are)."""
    dtype = DTYPES[dname]
    model = FluxTransformer2DModel.from_pretrained(str(mdir / "transformer"), torch_dtype=dtype).eval()
    for p in model.parameters():  # own, aligned memory instead of mmapped file views
        p.data = p.data.clone()
    kw = {k: (v if k in ("img_ids", "txt_ids") else v.to(dtype)) for k, v in inputs.items()}
    return model, kw


def warm_up(args, model, kw: dict, flops: dict, check_flops: bool):
    """args.warmup untimed forwards (the first also checks the FLOP formula if asked); returns the
    last output."""
    counter = FlopCounter(model) if check_flops else None
    for _ in range(args.warmup):
        out = model(**kw).sample
        if counter is not None:
            check_flop_count(counter, flops)
            counter = None
    return out


@torch.no_grad()
def run_diffusers(args, flops: dict) -> dict:
    mdir = args.model_dir
    inputs = load_file(str(mdir / "inputs.safetensors"))
    results = {}
    for dname in args.dtypes:
        model, kw = load_model(mdir, dname, inputs)
        for threads in args.threads:
            torch.set_num_threads(threads)
            out = warm_up(args, model, kw, flops, check_flops=not results)
            times = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                out = model(**kw).sample
                times.append((time.perf_counter() - t0) * 1e3)
            med = statistics.median(times)
            results[f"{dname}/{threads}"] = {"dtype": dname, "threads": threads, "median_ms": med,
                                             "min_ms": min(times), "max_ms": max(times), "runs": times}
            print(f"  diffusers {dname} threads={threads}: median {med:.0f} ms "
                  f"(min {min(times):.0f}, max {max(times):.0f}, {args.runs} runs) "
                  f"{flops['total'] / med / 1e6:.1f} GFLOP/s", flush=True)
        save_file({"sample": out.float().contiguous()}, str(mdir / f"output_{dname}.safetensors"))
        del model
    meta = {"torch": torch.__version__, "diffusers": diffusers.__version__,
            "cpu": cpu_name(), "results": results}
    (mdir / "diffusers_timings.json").write_text(json.dumps(meta, indent=1) + "\n")
    return results


@torch.no_grad()
def run_alternating(args, flops: dict) -> tuple[dict, dict]:
    """--pairs N: for each cell, after the warm-ups, N alternating pairs (pairs.py); the table's
    ratio is the median of the pairs' ratios."""
    mdir = args.model_dir
    inputs = load_file(str(mdir / "inputs.safetensors"))
    diff, para = {}, {}
    for dname in args.dtypes:
        model, kw = load_model(mdir, dname, inputs)
        for threads in args.threads:
            torch.set_num_threads(threads)
            out = warm_up(args, model, kw, flops, check_flops=not diff)
            # paradiff's relative error is taken against this output.
            save_file({"sample": out.float().contiguous()}, str(mdir / f"output_{dname}.safetensors"))
            dtimes, result = time_pairs(lambda: model(**kw),
                                        lambda: run_paradiff(args, dname, threads, repeat=1),
                                        args.pairs)
            key = f"{dname}/{threads}"
            diff[key] = {"dtype": dname, "threads": threads, "median_ms": statistics.median(dtimes),
                         "runs": dtimes}
            para[key] = result
            print(f"  {dname} threads={threads}: diffusers/paradiff per pair "
                  + " ".join(f"{r:.2f}" for r in result.get("pair_ratios", [])), flush=True)
        del model
    return diff, para


# --------------------------------------------------------------------------------------------
# paradiff timing
# --------------------------------------------------------------------------------------------

FORWARD_MS = re.compile(r"^forward_ms:\s*([0-9.eE+-]+)\s*$", re.M)


def run_paradiff(args, dname: str, threads: int, repeat: int | None = None) -> dict:
    mdir = args.model_dir
    out_path = Path(args.paradiff_output)
    out_path.unlink(missing_ok=True)
    cmd = [str(args.paradiff), "transformer-forward",
           "--model", str(mdir / "transformer"),
           "--inputs", str(mdir / "inputs.safetensors"),
           "--output", str(out_path),
           "--dtype", dname, "--threads", str(threads),
           "--repeat", str(args.runs if repeat is None else repeat)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = (time.perf_counter() - t0) * 1e3
    res = {"cmd": " ".join(cmd), "wall_ms": wall, "rc": proc.returncode}
    if proc.returncode != 0:
        res["error"] = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        return res
    m = FORWARD_MS.findall(proc.stdout)
    if not m:
        res["error"] = ["no 'forward_ms: <median>' line in stdout"]
        return res
    res["median_ms"] = float(m[-1])
    ref_path = mdir / f"output_{dname}.safetensors"
    ref32_path = mdir / "output_fp32.safetensors"
    if out_path.exists():
        got = load_file(str(out_path))["sample"].float()
        for tag, path in (("rel_err", ref_path), ("rel_err_vs_fp32", ref32_path)):
            if path.exists():
                ref = load_file(str(path))["sample"].float()
                if ref.shape == got.shape:
                    res[tag] = ((got - ref).norm() / ref.norm()).item()
    return res


# --------------------------------------------------------------------------------------------

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
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=Path("/tmp/paradiff-midsize"))
    ap.add_argument("--joint-attention-dim", type=int, default=4096)
    ap.add_argument("--heads", type=int, default=8, help="attention heads (head_dim is 128)")
    ap.add_argument("--double-layers", type=int, default=4)
    ap.add_argument("--single-layers", type=int, default=8)
    ap.add_argument("--grid", type=int, default=64, help="image tokens = grid x grid")
    ap.add_argument("--txt-len", type=int, default=256)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=lambda s: parse_list(s, int), default=[1, 2], help="e.g. 1,2")
    ap.add_argument("--dtypes", type=lambda s: parse_list(s), default=["fp32", "bf16"], help="e.g. fp32,bf16")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3, help="timed runs; the median is reported")
    ap.add_argument("--pairs", type=int, default=0,
                    help="with --paradiff: time N alternating pairs (one diffusers forward, one "
                         "paradiff process) per cell instead of each side's runs back to back")
    ap.add_argument("--regenerate", action="store_true", help="rebuild MODEL_DIR even if it matches")
    ap.add_argument("--skip-diffusers", action="store_true",
                    help="reuse MODEL_DIR/diffusers_timings.json instead of timing diffusers again")
    ap.add_argument("--paradiff", type=Path, help="paradiff binary; omit to time diffusers only")
    ap.add_argument("--paradiff-output", default="/tmp/out.safetensors")
    args = ap.parse_args(argv)
    for d in args.dtypes:
        if d not in DTYPES:
            ap.error(f"unknown dtype {d!r}; use fp32 and/or bf16")
    if args.warmup < 1:
        ap.error("--warmup must be >= 1 (the first run also checks the FLOP count)")
    if args.pairs < 0 or (args.pairs and (not args.paradiff or args.skip_diffusers)):
        ap.error("--pairs N needs N >= 0, --paradiff and diffusers' timing (no --skip-diffusers)")

    cfg = model_config(args)
    s_img, s_txt = args.grid * args.grid, args.txt_len
    flops = count_flops(cfg, 1, s_img, s_txt)
    print(f"torch {torch.__version__} diffusers {diffusers.__version__} on {cpu_name()} "
          f"({os.cpu_count()} logical CPUs), load average {os.getloadavg()[0]:.2f}")
    print(f"model: inner {cfg['num_attention_heads'] * cfg['attention_head_dim']} "
          f"({cfg['num_attention_heads']} heads x {cfg['attention_head_dim']}), "
          f"{cfg['num_layers']} double + {cfg['num_single_layers']} single, "
          f"joint_attention_dim {cfg['joint_attention_dim']}; tokens {s_img} image + {s_txt} text, batch 1")
    print(f"FLOP per forward: {flops['total'] / 1e9:.1f} GFLOP "
          f"(linear {flops['linear'] / 1e9:.1f}, attention {flops['attention'] / 1e9:.1f})")

    prepare_model_dir(args, cfg)

    timings_path = args.model_dir / "diffusers_timings.json"
    para = {}
    if args.pairs:
        print(f"timing {args.pairs} alternating pairs per cell after {args.warmup} diffusers "
              "warm-up(s) ...", flush=True)
        diff, para = run_alternating(args, flops)
    elif args.skip_diffusers:
        if not timings_path.exists():
            raise SystemExit(f"--skip-diffusers: {timings_path} does not exist; run once without it")
        diff = json.loads(timings_path.read_text())["results"]
    else:
        print(f"timing diffusers: warm-up {args.warmup}, median of {args.runs} ...", flush=True)
        diff = run_diffusers(args, flops)

    if args.paradiff and not args.pairs:
        for dname in args.dtypes:
            for threads in args.threads:
                r = run_paradiff(args, dname, threads)
                para[f"{dname}/{threads}"] = r
                if "error" in r:
                    print(f"  paradiff {dname} threads={threads}: FAILED rc={r['rc']}: {r['error'][0]}")

    gf = flops["total"] / 1e9
    print(f"load average now {os.getloadavg()[0]:.2f} (other processes on these cores skew the timings)")
    print()
    if args.pairs:
        print(f"FLUX transformer forward, {gf:.1f} GFLOP; ms = median of {args.pairs} alternating "
              f"pairs; diff/para = median of the pairs' ratios")
    else:
        print(f"FLUX transformer forward, {gf:.1f} GFLOP; ms = median of {args.runs} after "
              f"{args.warmup} warm-up")
    hdr = f"{'dtype':<6} {'thr':>3} | {'diffusers ms':>12} {'GFLOP/s':>8}"
    if args.paradiff:
        hdr += f" | {'paradiff ms':>11} {'GFLOP/s':>8} | {'diff/para':>9} | {'rel.err':>8}"
    print(hdr)
    print("-" * len(hdr))
    for dname in args.dtypes:
        for threads in args.threads:
            key = f"{dname}/{threads}"
            d = diff.get(key)
            dms = d["median_ms"] if d else None
            row = f"{dname:<6} {threads:>3} | "
            row += f"{dms:>12.0f} {gf / dms * 1e3:>8.1f}" if dms else f"{'-':>12} {'-':>8}"
            if args.paradiff:
                p = para.get(key, {})
                pms = p.get("median_ms")
                row += " | " + (f"{pms:>11.1f} {gf / pms * 1e3:>8.1f}" if pms else f"{'FAILED':>11} {'-':>8}")
                ratio = statistics.median(p["pair_ratios"]) if p.get("pair_ratios") else (
                    dms / pms if (pms and dms) else None)
                row += " | " + (f"{ratio:>9.2f}" if ratio else f"{'-':>9}")
                err = p.get("rel_err")
                row += " | " + (f"{err:>8.1e}" if err is not None else f"{'-':>8}")
            print(row)
    if args.paradiff:
        print("rel.err: ||paradiff - diffusers|| / ||diffusers|| for the same dtype "
              "(diffusers' bf16 keeps norms etc. in bf16, so bf16 rows differ more)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
