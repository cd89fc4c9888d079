#!/usr/bin/env python3
"""A bounded load test of `paradiff serve` on loopback: C concurrent clients each send R
requests (fixed count), every answer is checked (200 with a PNG of the asked size, or, with a
queue smaller than the clients, 429 and a retry after a pause), and the figures are printed:
latency percentiles, throughput, the server's own metrics.

    load_test.py [--launch "scripts/paradiff-run -n 2"] [--serve-args "..."] BINARY MODEL
                 [--clients C] [--requests R] [--size WxH] [--steps S]

Exits non-zero if a request is lost (no answer, a wrong answer, a connection error) or the
metrics disagree with what the clients saw. Speed is reported, never asserted.
"""

import argparse
import base64
import json
import os
import re
import shlex
import statistics
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request


def post(url, body, timeout):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def png_size(data):
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    return struct.unpack(">II", data[16:24])


def percentile(values, p):
    values = sorted(values)
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("binary")
    parser.add_argument("model")
    parser.add_argument("--launch", default="", help="launcher before the binary, e.g. 'scripts/paradiff-run -n 2'")
    parser.add_argument("--serve-args", default="", help="extra serve flags (parallelism, limits, dtype)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=2, help="requests per client")
    parser.add_argument("--size", default="64x64")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--max-sequence-length", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=600, help="seconds one request may take")
    args = parser.parse_args()

    launch = shlex.split(args.launch)
    command = [*launch, args.binary] if launch else [args.binary]
    if launch and launch[0].endswith("paradiff-run"):
        command = launch  # paradiff-run takes the binary from PARADIFF_BIN
        os.environ["PARADIFF_BIN"] = args.binary
    command += ["serve", "--model", args.model, "--port", "0", *shlex.split(args.serve_args)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        base = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and base is None:
            line = server.stdout.readline()
            if not line and server.poll() is not None:
                break
            lines.append(line)
            match = re.search(r"listening on (http://[0-9.:]+)/", line)
            if match:
                base = match.group(1)
        if base is None:
            raise SystemExit("the server did not start:\n" + "".join(lines))
        threading.Thread(target=lambda: [lines.append(l) for l in server.stdout], daemon=True).start()

        width, height = map(int, args.size.split("x"))
        url = base + "/v1/images/generations"
        # One request first: the components load on it, so the figures below are the steady state.
        warm = post(url, {"prompt": "warm up", "size": args.size, "num_inference_steps": args.steps,
                          "max_sequence_length": args.max_sequence_length}, args.timeout)
        if warm[0] != 200:
            raise SystemExit(f"warm-up request answered {warm}")

        latencies, problems, retries = [], [], [0]
        lock = threading.Lock()

        def client(c):
            for r in range(args.requests):
                body = {"prompt": f"client {c} request {r}", "size": args.size, "seed": c * 1000 + r,
                        "num_inference_steps": args.steps, "max_sequence_length": args.max_sequence_length}
                start = time.monotonic()
                while True:
                    try:
                        status, answer = post(url, body, args.timeout)
                    except OSError as e:
                        with lock:
                            problems.append(f"client {c} request {r}: {e}")
                        return
                    if status != 429:
                        break
                    with lock:
                        retries[0] += 1
                    time.sleep(0.2)
                took = time.monotonic() - start
                try:
                    assert status == 200, f"status {status}: {answer}"
                    size = png_size(base64.b64decode(answer["data"][0]["b64_json"]))
                    assert size == (width, height), f"PNG {size}, asked {width}x{height}"
                except (AssertionError, KeyError, ValueError) as e:
                    with lock:
                        problems.append(f"client {c} request {r}: {e}")
                    continue
                with lock:
                    latencies.append(took)

        threads = [threading.Thread(target=client, args=(c,)) for c in range(args.clients)]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - start
        with urllib.request.urlopen(base + "/metrics", timeout=30) as response:
            metrics = response.read().decode()

        total = args.clients * args.requests
        print(f"load: {total} requests from {args.clients} clients, {args.size}, {args.steps} steps: "
              f"{len(latencies)} answered 200, {len(problems)} lost, {retries[0]} retries after 429")
        if latencies:
            print(f"load: latency s p50 {percentile(latencies, 50):.2f} p90 {percentile(latencies, 90):.2f} "
                  f"p99 {percentile(latencies, 99):.2f} max {max(latencies):.2f} mean {statistics.mean(latencies):.2f}")
            print(f"load: throughput {len(latencies) / wall:.3f} images/s over {wall:.1f} s")
        images = re.search(r"^paradiff_images_generated_total (\d+)", metrics, re.M)
        print("load: server metrics: " + "; ".join(
            l for l in metrics.splitlines() if l and not l.startswith("#") and "bucket" not in l)[:600])
        for p in problems[:10]:
            print("load: LOST " + p)
        if problems or len(latencies) != total:
            return 1
        if images and int(images.group(1)) != total + 1:
            print(f"load: the server counted {images.group(1)} images, the clients {total + 1}")
            return 1
        return 0
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    sys.exit(main())
