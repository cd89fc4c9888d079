#!/usr/bin/env python3
"""fp32 GEMM rates side by side: PyTorch's Linear (what diffusers runs) and paradiff's, against the
FMA-loop peak measured in the same run.

The fp32 cells of compare_flux_transformer.py / compare_qwen_image_transformer.py are bounded by
the fp32 GEMMs on both sides. This tool shows where that bound lies on the machine at hand: for
each Linear shape of the mid-size FLUX and Qwen-Image models (M x K -> N, with bias) and each
thread count,
  - torch.nn.functional.linear in fp32 (PyTorch's CPU GEMM: MKL in the PyPI wheels), the fastest
    of N calls after a warm-up;
  - BIN_DIR/linear_bench M K N (bench/linear_bench.cc): paradiff's Linear and oneDNN's standalone
    matmul, and that run's FMA-loop peak (the "vs peak" column), fastest of its runs;
and prints GFLOP/s and the share of the FMA-loop peak for each.

Typical use (a few minutes, on a quiet machine):
    .venv-tools/bin/python tools/compare_diffusers/compare_gemm_rates.py --bench-dir build/bench
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time

import torch

# (M, K, N, where): the token GEMMs of the mid-size models of the two compare tools.
SHAPES = [
    (4352, 1024, 1024, "FLUX mid-size: single-block q/k/v, out"),
    (4352, 1024, 4096, "FLUX mid-size: single-block MLP up"),
    (4352, 4096, 1024, "FLUX mid-size: single-block MLP part of proj_out"),
    (4096, 1024, 4096, "FLUX mid-size: double-block MLP up"),
    (1024, 1024, 1024, "Qwen-Image mid-size: q/k/v, out"),
    (1024, 1024, 4096, "Qwen-Image mid-size: MLP up"),
    (1024, 4096, 1024, "Qwen-Image mid-size: MLP down"),
]

ROW = re.compile(
    r"^f32\s+f32 \(\d+\)\s+(\d+)\s+(oneDNN standalone|paradiff linear)\s+([0-9.]+)\s+([0-9.]+)"
    r"\s+[0-9.]+%\s+([0-9.]+)%", re.M)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def torch_rate(m: int, k: int, n: int, threads: int, reps: int) -> float:
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(m, k, generator=gen) - 0.5
    w = (torch.rand(n, k, generator=gen) - 0.5) * 0.1
    b = torch.rand(n, generator=gen)
    with torch.inference_mode():
        torch.nn.functional.linear(x, w, b)
        best = float("inf")
        for _ in range(reps):
            t = time.perf_counter()
            torch.nn.functional.linear(x, w, b)
            best = min(best, time.perf_counter() - t)
    return 2.0 * m * k * n / best / 1e9


def paradiff_rates(bench: str, m: int, k: int, n: int) -> dict:
    """{(threads, case): (GFLOP/s, share of the FMA-loop peak)} from linear_bench M K N."""
    out = subprocess.run([bench, str(m), str(k), str(n)], check=True, capture_output=True,
                         text=True).stdout
    rates = {}
    for thr, case, _ms, gflops, peak in ROW.findall(out):
        rates[(int(thr), case)] = (float(gflops), float(peak) / 100.0)
    if not rates:
        sys.exit(f"no f32 rows in the output of {bench} {m} {k} {n}:\n{out}")
    return rates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench-dir", default="build/bench", help="folder holding linear_bench")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (1 and/or 2)")
    ap.add_argument("--reps", type=int, default=5, help="timed torch calls per cell (fastest kept)")
    args = ap.parse_args()
    bench = os.path.join(args.bench_dir, "linear_bench")
    if not os.access(bench, os.X_OK):
        sys.exit(f"{bench} not found: build the benchmarks first (cmake --build build)")
    threads = [int(t) for t in args.threads.split(",")]
    for t in threads:
        if t not in (1, 2):
            sys.exit(f"--threads: linear_bench measures 1 and 2 threads, got {t}")

    print(f"machine: {cpu_model()}, {os.cpu_count()} cpu(s); torch {torch.__version__} "
          f"(BLAS: {'MKL' if torch.backends.mkl.is_available() else 'not MKL'}); "
          f"load average {os.getloadavg()[0]:.2f}")
    print("| M x K -> N | layer | threads | torch GFLOP/s | paradiff GFLOP/s | oneDNN standalone "
          "| FMA-loop peak | torch / peak | paradiff / peak |")
    print("|---|---|---|---|---|---|---|---|---|")
    for m, k, n, where in SHAPES:
        ours = paradiff_rates(bench, m, k, n)
        for t in threads:
            theirs = torch_rate(m, k, n, t, args.reps)
            linear, share = ours[(t, "paradiff linear")]
            standalone, _ = ours[(t, "oneDNN standalone")]
            peak = linear / share
            print(f"| {m} x {k} -> {n} | {where} | {t} | {theirs:.0f} | {linear:.0f} | "
                  f"{standalone:.0f} | {peak:.0f} | {theirs / peak:.0%} | {share:.0%} |",
                  flush=True)
    print(f"load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
