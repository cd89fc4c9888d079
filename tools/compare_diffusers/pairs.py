"""Alternating pairs for the compare tools' --pairs N (README.md in this folder): each pair is one
timed diffusers forward followed at once by one paradiff process, so that a drift of the
machine's speed over minutes moves both halves of a pair alike."""

from __future__ import annotations

import statistics
import time


def time_pairs(diffusers_forward, paradiff_once, pairs: int) -> tuple[list, dict]:
    """Runs `pairs` times diffusers_forward() (timed) then paradiff_once() (a dict with median_ms,
    or with error). Returns diffusers' times in ms, and paradiff's last result with median_ms
    replaced by the median over the pairs, plus runs (its times) and pair_ratios (diffusers /
    paradiff per pair). Stops at the first paradiff error, which the result then carries."""
    dtimes, ptimes, ratios, last = [], [], [], {}
    for _ in range(pairs):
        t0 = time.perf_counter()
        diffusers_forward()
        dtimes.append((time.perf_counter() - t0) * 1e3)
        last = paradiff_once()
        if "error" in last:
            break
        ptimes.append(last["median_ms"])
        ratios.append(dtimes[-1] / ptimes[-1])
    para = dict(last)
    if ratios:
        para.update(median_ms=statistics.median(ptimes), runs=ptimes, pair_ratios=ratios)
    return dtimes, para
