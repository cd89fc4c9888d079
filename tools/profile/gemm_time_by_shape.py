#!/usr/bin/env python3
"""Where a paradiff forward spends its GEMM time: oneDNN's matmul calls grouped by shape.

Runs a paradiff command with ONEDNN_VERBOSE=1 (oneDNN then prints one line per primitive
execution with its shape and its time in ms), sums the matmul lines by implementation and shape,
and prints per forward: calls, ms, GFLOP/s and the share of the forward's time (forward_ms, the
median the command prints). The rest of the forward (attention tiles, norms, RoPE, elementwise,
memory) is the time not in the table.

    python3 tools/profile/gemm_time_by_shape.py -- build/paradiff transformer-forward \\
        --model /tmp/paradiff-qwen-midsize/transformer \\
        --inputs /tmp/paradiff-qwen-midsize/inputs.safetensors --output /tmp/out.safetensors \\
        --dtype fp32 --threads 1 --repeat 3

The per-forward figures divide the sums by the number of forwards the command ran:
`transformer-forward --repeat N` runs N + 1 (one warm-up), which is assumed unless --forwards
says otherwise. ONEDNN_VERBOSE's own timing adds a little to each call. Meant for one process:
under mpirun every rank's lines would be summed together. Needs only the Python standard library.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys

# As oneDNN 2.6 (Debian 12) prints it, optionally after a timestamp, and with the "v1,primitive,"
# markers of later versions:
#   onednn_verbose,exec,cpu,matmul,<impl>,<prop>,<memory descs>,<attrs>,<aux>,<shape>,<ms>
EXEC = re.compile(r"^onednn_verbose,(?:[0-9.]+,)?(?:v1,)?(?:primitive,)?exec,cpu,matmul,([^,]+),.*,"
                  r"([0-9x:]+),([0-9.]+)\s*$")
SHAPE = re.compile(r"^(\d+)x(\d+):(\d+)x(\d+):(\d+)x(\d+)$")
FORWARD_MS = re.compile(r"^forward_ms: ([0-9.]+)", re.M)


def forwards_of(cmd: list[str]) -> int | None:
    """transformer-forward runs --repeat N timed forwards after one warm-up."""
    if "transformer-forward" not in cmd:
        return None
    for i, arg in enumerate(cmd):
        value = cmd[i + 1] if arg == "--repeat" and i + 1 < len(cmd) else (
            arg.split("=", 1)[1] if arg.startswith("--repeat=") else None)
        if value is not None:
            return int(value) + 1 if value.isdigit() else None
    return 2  # the default --repeat is 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--forwards", type=int, help="forwards the command runs (default: from transformer-forward's --repeat)")
    ap.add_argument("cmd", nargs=argparse.REMAINDER, help="-- then the paradiff command")
    args = ap.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        ap.error("give the command to profile after --")
    forwards = args.forwards or forwards_of(cmd)
    if not forwards or forwards < 1:
        ap.error("--forwards N (N >= 1) is needed unless the command is transformer-forward with a "
                 "whole --repeat")

    env = dict(os.environ, ONEDNN_VERBOSE="1")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        print(f"the command failed with exit status {proc.returncode}", file=sys.stderr)
        return 1

    calls: dict[tuple[str, str], list[float]] = {}
    for line in proc.stdout.splitlines():
        m = EXEC.match(line)
        if m:
            calls.setdefault((m.group(1), m.group(2)), []).append(float(m.group(3)))
    if not calls:
        print("no oneDNN matmul executions in the output (is this a oneDNN build, and did it run a forward?)",
              file=sys.stderr)
        return 1
    fms = [float(x) for x in FORWARD_MS.findall(proc.stdout)]
    forward_ms = statistics.median(fms) if fms else None

    rows = []
    for (impl, shape), times in calls.items():
        s = SHAPE.match(shape)
        if not s:
            continue
        mm, k, n = int(s.group(1)), int(s.group(2)), int(s.group(4))
        total = sum(times)
        gflops = 2.0 * mm * k * n * len(times) / (total / 1e3) / 1e9 if total > 0 else float("nan")
        rows.append((total / forwards, len(times) / forwards, f"{mm} x {k} -> {n}", impl, gflops))
    rows.sort(reverse=True)

    print(f"command: {' '.join(cmd)}")
    print(f"forwards: {forwards}" + (f"; forward_ms (the command's median): {forward_ms:.1f}" if forward_ms else ""))
    print("| M x K -> N | oneDNN implementation | calls per forward | ms per forward | GFLOP/s | share of the forward |")
    print("|---|---|---|---|---|---|")
    gemm_ms = 0.0
    for ms, n_calls, shape, impl, gflops in rows:
        gemm_ms += ms
        share = f"{ms / forward_ms:.1%}" if forward_ms else "-"
        print(f"| {shape} | {impl} | {n_calls:g} | {ms:.1f} | {gflops:.0f} | {share} |")
    if forward_ms:
        print(f"all matmuls: {gemm_ms:.1f} ms per forward, {gemm_ms / forward_ms:.1%} of forward_ms; "
              f"the rest: {forward_ms - gemm_ms:.1f} ms")
    else:
        print(f"all matmuls: {gemm_ms:.1f} ms per forward")
    return 0


if __name__ == "__main__":
    sys.exit(main())
