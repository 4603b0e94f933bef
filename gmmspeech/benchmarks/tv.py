"""``gmmspeech bench tv``: one total-variability EM iteration, against a per-utterance one.

The statistics are synthetic (drawn batch by batch from a seed, so they are never all in
memory): each utterance spreads its frames over a few hundred components as a real UBM's
posteriors do, and its centred first-order statistics are ``sqrt(N_k S_k)`` times normal
noise. The straightforward implementation builds each utterance's ``L`` explicitly from the
full ``(K, R, R)`` array of ``T_k' S_k^-1 T_k``, calls ``np.linalg.solve`` for ``w`` and for
``L^-1``, and adds ``N_k (L^-1 + w w')`` to a full ``(K, R, R)`` accumulator. Its cost is
the same for every utterance, so it runs on ``--naive-utts`` of them and is scaled to all.

A second, instrumented pass times the phases one by one (precompute, building L, the linear
terms ``T' S^-1 F``, the solves, the accumulations, the M-step) against their necessary
flops. The GEMM lower bound is all those flops at the best rate of a plain ``np.dot``
measured in the same run (a 2000^3 product and the ``(b, K) @ (K, R(R+1)/2)`` product that
builds L), just after the timed iteration and again at the end, under the same load.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import threadpool_info

from ..errors import ConfigError, GmmSpeechError
from ..ivector.stats import load_task
from ..ivector.tv import (
    Accumulators,
    TotalVariability,
    build_precisions,
    linear_terms,
    m_step,
    precompute,
    solve_precisions,
)
from ..mixture.gmm import DiagGMM
from .common import add_output_arguments, write_figures
from .memory import PeakRSS

HELP = "time one total-variability iteration against a per-utterance implementation"
EXAMPLE = "gmmspeech bench tv --k 512 --d 60 --rank 400 --n 2500 --frames 300 --json tv.json"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--k", type=int, default=512, help="UBM components (default 512)")
    p.add_argument("--d", type=int, default=60, help="feature dimension (default 60)")
    p.add_argument("--rank", type=int, default=400, help="i-vector dimension (default 400)")
    p.add_argument("--n", type=int, default=2500, help="utterances (default 2500)")
    p.add_argument("--frames", type=int, default=300, help="frames per utterance (default 300)")
    p.add_argument("--batch-size", type=int, default=100, help="utterances per batch")
    p.add_argument(
        "--naive-utts",
        type=int,
        default=40,
        help="utterances the per-utterance implementation runs on (default 40; scaled to --n)",
    )
    add_output_arguments(p)


POOL = 200  # distinct synthetic utterances, reused cyclically


@dataclass
class SyntheticSlice:
    """Utterances ``start:stop`` of the synthetic set (rows of a pool, reused cyclically)."""

    zeroth: np.ndarray
    first: np.ndarray
    start: int
    stop: int

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        rows = np.arange(self.start, self.stop) % self.zeroth.shape[0]
        return self.zeroth[rows], self.first[rows]


class SyntheticStats:
    """A statistics source (see :class:`gmmspeech.ivector.tv.StatsSource`) of synthetic data.

    A pool of distinct utterances is drawn once and reused, so that drawing random numbers
    is not timed and memory does not grow with ``n``.
    """

    def __init__(self, ubm: DiagGMM, n: int, frames: int, seed: int) -> None:
        self.ubm = ubm
        self.feature_config: dict[str, Any] | None = None
        self.n = n
        rng = np.random.default_rng(seed)
        p, var = min(POOL, n), ubm.variances
        # a few dominant components per utterance, like the posteriors of real speech
        self.zeroth = frames * rng.dirichlet(np.full(ubm.n_components, 0.05), size=p)
        noise = rng.standard_normal((p, *var.shape))
        self.first = noise * np.sqrt(self.zeroth[:, :, None] * var)

    def __len__(self) -> int:
        return self.n

    def tasks(self, batch_size: int) -> list[Any]:
        return [
            SyntheticSlice(self.zeroth, self.first, s, min(s + batch_size, self.n))
            for s in range(0, self.n, batch_size)
        ]


PHASES = ("precompute", "build_L", "linear_terms", "solves", "accumulate", "m_step")


def time_phases(
    tv: TotalVariability, src: SyntheticStats, per_batch: list[float] | None = None
) -> dict[str, float]:
    """The steps of an iteration (as in the E-step task), timed one by one; each batch's
    E-step seconds are appended to ``per_batch`` when given (the first batch also touches
    the fresh accumulators' pages: a cost per task, not per utterance)."""
    t: dict[str, float] = dict.fromkeys(PHASES, 0.0)
    t0 = time.perf_counter()
    pre = precompute(tv.T_, tv.ubm_.variances)
    t["precompute"] = time.perf_counter() - t0
    kd, r = pre.ts.shape
    acc = Accumulators.zeros(kd, pre.packed.shape[0], r)
    buf = np.empty((tv.batch_size, pre.layout.size))
    for task in src.tasks(tv.batch_size):
        n, f = load_task(task)
        t0 = time.perf_counter()
        lp = build_precisions(n, pre, buf)
        t1 = time.perf_counter()
        lin = linear_terms(f, pre)
        t2 = time.perf_counter()
        w, second, aux = solve_precisions(lp, lin, pre.layout, True)
        t3 = time.perf_counter()
        if second is None:  # asked for above: never None
            raise GmmSpeechError("solve_precisions gave no second-order statistics")
        acc.add_batch(n, f, w, second, aux)
        t4 = time.perf_counter()
        t["build_L"] += t1 - t0
        t["linear_terms"] += t2 - t1
        t["solves"] += t3 - t2
        t["accumulate"] += t4 - t3
        if per_batch is not None:
            per_batch.append(t4 - t0)
    t0 = time.perf_counter()
    m_step(acc, tv.T_, tv.min_divergence)
    t["m_step"] = time.perf_counter() - t0
    return t


def naive_iteration(
    t: np.ndarray,
    variances: np.ndarray,
    batches: list[tuple[np.ndarray, np.ndarray]],
    min_divergence: bool,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-utterance E-step and per-component M-step; returns (w of all, new T, E-step s)."""
    k, d, r = t.shape
    full = np.empty((k, r, r))
    for j in range(k):
        full[j] = t[j].T @ (t[j] / variances[j][:, None])
    ts = (t / variances[:, :, None]).reshape(k * d, r)
    c = np.zeros((k, r, r))
    a = np.zeros((k * d, r))
    m = np.zeros((r, r))
    ws = []
    t0 = time.perf_counter()
    for n_b, f_b in batches:
        for n, f in zip(n_b, f_b, strict=True):
            lmat = np.eye(r) + np.tensordot(n, full, axes=1)
            w = np.linalg.solve(lmat, ts.T @ f.ravel())
            q = np.linalg.solve(lmat, np.eye(r)) + np.outer(w, w)
            c += n[:, None, None] * q
            a += np.outer(f.ravel(), w)
            m += q
            ws.append(w)
    elapsed = time.perf_counter() - t0
    a3 = a.reshape(k, d, r)
    new = np.stack([np.linalg.solve(c[j], a3[j].T).T for j in range(k)])
    if min_divergence:
        new = new @ np.linalg.cholesky(m / len(ws))
    return np.array(ws), new, elapsed


def gemm_rate(m: int, k: int, n: int, repeats: int = 3) -> float:
    """This machine's float64 rate (flop/s) of a plain ``np.dot`` (m, k) @ (k, n), best of
    ``repeats``."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.dot(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * m * k * n / best


def gemm_rates(batch: int, k: int, r: int) -> dict[str, float]:
    """DGEMM rates (flop/s): a 2000^3 product and the shape of building L, ``(b, K) @ (K, Rp)``."""
    return {
        "square_2000": gemm_rate(2000, 2000, 2000),
        "build_L_shape": gemm_rate(batch, k, r * (r + 1) // 2),
    }


def flops(k: int, d: int, r: int, n: int) -> dict[str, float]:
    """Floating-point operations of the necessary products and factorisations."""
    rp = r * (r + 1) / 2
    return {
        "precompute": 2.0 * k * d * rp,  # the symmetric T_k' S_k^-1 T_k
        "build_L": 2.0 * n * k * rp,
        "linear_terms": 2.0 * n * k * d * r,
        "solves": n * (r**3 + 3.0 * r * r),  # pftrf + pftri (r^3/3 + 2r^3/3), pftrs, w w'
        "accumulate": 2.0 * n * k * rp + 2.0 * n * k * d * r,  # C and A
        "m_step": k * (r**3 / 3 + 2.0 * r * r * d) + 2.0 * k * d * r * r,
    }


def _print(res: dict[str, Any]) -> None:
    split, fl = res["split_seconds"], res["flops"]
    ours, naive = res["seconds_per_iteration"], res["naive_seconds_per_iteration_scaled"]
    print(
        f"TV iteration, K={res['k']} D={res['d']} R={res['rank']}, {res['n']} utterances of "
        f"{res['frames']} frames"
    )
    print(f"  gmmspeech  {ours:8.2f} s/it   peak RSS {res['peak_rss_mib']:7.1f} MiB")
    total = sum(split.values())
    print(f"  split (a second, instrumented pass of the same steps: {total:.2f} s)")
    for key, v in split.items():
        rate = fl[key] / max(v, 1e-9) / 1e9
        print(
            f"    {key:<12s} {v:8.2f} s  {100 * v / total:5.1f} %  ({fl[key] / 1e9:7.1f} GFLOP, "
            f"{rate:6.1f} GFLOP/s = {100 * rate / res['gemm_gflops']:3.0f} % of DGEMM)"
        )
    print(
        f"  per-utterance {naive:8.2f} s/it (timed on {res['naive_utterances_timed']} "
        f"utterances, {res['naive_seconds_per_utterance'] * 1e3:.1f} ms each)  -> gmmspeech is "
        f"{naive / ours:.1f}x faster"
    )
    rates = ", ".join(f"{k} {v:.1f}" for k, v in res["gemm_gflops_measured"].items())
    print(
        f"  GEMM lower bound {res['gemm_lower_bound_seconds']:.2f} s (all the flops at the best "
        f"np.dot rate measured in this run, {res['gemm_gflops']:.1f} GFLOP/s; {rates}) -> "
        f"{res['times_gemm_lower_bound']:.2f}x the bound"
    )
    blas = "; ".join(
        f"{b['internal_api']} {b['version']} {b['architecture']} kernels, {b['num_threads']} threads"
        for b in res["blas"]
    )
    print(f"  BLAS: {blas}")
    print(
        f"  i-vectors agree with the per-utterance ones to "
        f"{res['ivector_max_relative_difference_vs_naive']:.1e} relative; load average "
        f"{res['load_average_start']:.2f} at the start, {res['load_average_end']:.2f} at the end"
    )


def run(args: argparse.Namespace) -> int:
    for name in ("k", "d", "rank", "n", "frames", "batch_size", "naive_utts"):
        if getattr(args, name) < 1:
            raise ConfigError(
                f"--{name.replace('_', '-')}: must be >= 1, got {getattr(args, name)}"
            )
    load_start = os.getloadavg()[0]
    rng = np.random.default_rng(args.seed)
    k, d, r = args.k, args.d, args.rank
    ubm = DiagGMM(np.full(k, 1.0 / k), rng.normal(size=(k, d)), rng.uniform(0.5, 1.5, (k, d)))
    src = SyntheticStats(ubm, args.n, args.frames, args.seed)
    tv = TotalVariability(rank=r, n_iter=1, batch_size=args.batch_size)
    tv.ubm_, tv.feature_config_ = ubm, None
    tv.T_ = tv._init(ubm)
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        new_t, _ = tv.iterate(src)
        ours = time.perf_counter() - t0
    rates = gemm_rates(args.batch_size, k, r)  # right after, under the same load
    split = time_phases(tv, src)
    n_naive = min(args.naive_utts, args.n)
    sub = SyntheticStats(ubm, n_naive, args.frames, args.seed)
    batches = [load_task(task) for task in sub.tasks(args.batch_size)]
    ours_w = np.concatenate(
        [tv.transform(sub)]  # the same code path as fit's E-step, on the naive subset
    )
    ref_w, ref_t, naive_e = naive_iteration(tv.T_, ubm.variances, batches, tv.min_divergence)
    # with every utterance in the naive run, the two iterations must give the same model
    t_diff = float(np.abs(new_t - ref_t).max() / np.abs(ref_t).max()) if n_naive == args.n else None
    del new_t, ref_t
    naive_total = naive_e * args.n / n_naive + split["m_step"]
    for key, v in gemm_rates(args.batch_size, k, r).items():
        rates[key] = max(rates[key], v)
    rate = max(rates.values())
    fl = flops(k, d, r, args.n)
    bound = sum(fl.values()) / rate
    result: dict[str, Any] = {
        "benchmark": "tv",
        "k": k,
        "d": d,
        "rank": r,
        "n": args.n,
        "frames": args.frames,
        "batch_size": args.batch_size,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "seconds_per_iteration": ours,
        "peak_rss_mib": mem.peak,
        "rss_before_mib": mem.start,
        "split_seconds": split,
        "naive_utterances_timed": n_naive,
        "naive_seconds_per_utterance": naive_e / n_naive,
        "naive_seconds_per_iteration_scaled": naive_total,
        "speedup_vs_naive": naive_total / ours,
        "ivector_max_relative_difference_vs_naive": float(
            np.abs(ours_w - ref_w).max() / np.abs(ref_w).max()
        ),
        "model_max_relative_difference_vs_naive": t_diff,
        "gemm_gflops": rate / 1e9,
        "gemm_gflops_measured": {key: v / 1e9 for key, v in rates.items()},
        "blas": [
            {key: i.get(key) for key in ("internal_api", "version", "architecture", "num_threads")}
            for i in threadpool_info()
            if i.get("user_api") == "blas"
        ],
        "load_average_start": load_start,
        "load_average_end": os.getloadavg()[0],
        "flops": fl,
        "gemm_lower_bound_seconds": bound,
        "times_gemm_lower_bound": ours / bound,
    }
    _print(result)
    if args.json:
        write_figures(args.json, result)
    return 0
