"""``gmmspeech bench em``: time one EM iteration, optionally against scikit-learn.

Data are drawn from a random diagonal GMM with the benchmark's K and D; the timed model is
another random GMM of the same size, so responsibilities are spread like mid-training.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..mixture.gmm import DiagGMM
from ..mixture.ubm import em_step
from ..storage.atomic import atomic_path
from .memory import PeakRSS

HELP = "time one EM iteration (seconds, frames x components per second, peak RSS)"
EXAMPLE = "gmmspeech bench em --n 200000 --d 60 --k 1024 --vs sklearn --json em.json"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n", type=int, default=200_000, help="frames (default 200000)")
    p.add_argument("--d", type=int, default=60, help="feature dimension (default 60)")
    p.add_argument("--k", type=int, default=1024, help="components (default 1024)")
    p.add_argument("--repeat", type=int, default=3, help="timed repetitions (default 3)")
    p.add_argument("--chunk-size", type=int, default=None, help="frames per block")
    p.add_argument(
        "--vs",
        choices=["sklearn"],
        default=None,
        help="also time scikit-learn's GaussianMixture(covariance_type='diag') in this run",
    )
    p.add_argument(
        "--sklearn-dtypes",
        default="float64,float32",
        help="dtypes to run scikit-learn in (default float64,float32)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, metavar="PATH", help="write the figures as JSON")


def random_gmm(k: int, d: int, rng: np.random.Generator) -> DiagGMM:
    """A random K x D diagonal GMM with well-spread means."""
    w = rng.dirichlet(np.full(k, 5.0))
    mu = rng.normal(0.0, 2.0, size=(k, d))
    var = rng.uniform(0.5, 1.5, size=(k, d))
    return DiagGMM(w, mu, var)


def draw_frames(gmm: DiagGMM, n: int, rng: np.random.Generator, block: int = 65536) -> np.ndarray:
    """Sample ``n`` float32 frames from ``gmm`` in blocks (low peak memory)."""
    out = np.empty((n, gmm.n_features), dtype=np.float32)
    for s in range(0, n, block):
        x, _ = gmm.sample(min(block, n - s), rng)
        out[s : s + x.shape[0]] = x
    return out


def _time_ours(
    gmm: DiagGMM, X: np.ndarray, repeat: int, chunk: int | None
) -> tuple[list[float], float, float]:
    em_step(gmm, X[: min(len(X), 20_000)], chunk_size=chunk)  # warm-up (BLAS threads, caches)
    times = []
    with PeakRSS() as mem:
        for _ in range(repeat):
            t0 = time.perf_counter()
            em_step(gmm, X, chunk_size=chunk)
            times.append(time.perf_counter() - t0)
    return times, mem.start, mem.peak


def _time_sklearn(gmm: DiagGMM, X: np.ndarray, dtype: str) -> tuple[float, float, float]:
    """One sklearn EM iteration (its own E-step and M-step) from ``gmm``'s parameters."""
    try:
        from sklearn.mixture import GaussianMixture
    except ImportError:
        raise ConfigError(
            "--vs sklearn needs scikit-learn: pip install scikit-learn (or gmmspeech[test])"
        ) from None
    dt = np.dtype(dtype)
    Xs = X.astype(dt)
    gm = GaussianMixture(
        n_components=gmm.n_components, covariance_type="diag", reg_covar=1e-6, max_iter=1
    )
    gm.weights_ = gmm.weights.astype(dt)
    gm.means_ = gmm.means.astype(dt)
    gm.covariances_ = gmm.variances.astype(dt)
    gm.precisions_cholesky_ = (1.0 / np.sqrt(gmm.variances)).astype(dt)
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        _, log_resp = gm._e_step(Xs)
        gm._m_step(Xs, log_resp)
        elapsed = time.perf_counter() - t0
        del log_resp
    return elapsed, mem.start, mem.peak


def run(args: argparse.Namespace) -> int:
    for name in ("n", "d", "k", "repeat"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name}: must be >= 1, got {getattr(args, name)}")
    rng = np.random.default_rng(args.seed)
    truth = random_gmm(args.k, args.d, rng)
    X = draw_frames(truth, args.n, rng)
    start = random_gmm(args.k, args.d, rng)
    times, rss0, rss_peak = _time_ours(start, X, args.repeat, args.chunk_size)
    t = statistics.median(times)
    result: dict[str, Any] = {
        "benchmark": "em",
        "n": args.n,
        "d": args.d,
        "k": args.k,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "gmmspeech_seconds_per_iteration": t,
        "gmmspeech_seconds_all": times,
        "gmmspeech_frames_x_components_per_second": args.n * args.k / t,
        "gmmspeech_peak_rss_mib": rss_peak,
        "rss_before_mib": rss0,
    }
    print(f"EM iteration, N={args.n} D={args.d} K={args.k} (median of {args.repeat})")
    print(
        f"  gmmspeech           {t:8.3f} s/it   {args.n * args.k / t:.3e} frame*comp/s   "
        f"peak RSS {rss_peak:7.1f} MiB (data+runtime before: {rss0:.1f} MiB)"
    )
    if args.vs == "sklearn":
        for dtype in [s.strip() for s in args.sklearn_dtypes.split(",") if s.strip()]:
            ts, s0, sp = _time_sklearn(start, X, dtype)
            result[f"sklearn_{dtype}_seconds_per_iteration"] = ts
            result[f"sklearn_{dtype}_peak_rss_mib"] = sp
            result[f"speedup_vs_sklearn_{dtype}"] = ts / t
            print(
                f"  sklearn {dtype:<10s} {ts:8.3f} s/it   {args.n * args.k / ts:.3e} "
                f"frame*comp/s   peak RSS {sp:7.1f} MiB   -> gmmspeech is {ts / t:.1f}x faster"
            )
    if args.json:
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"  figures written to {args.json}")
    return 0
