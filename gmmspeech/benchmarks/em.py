"""``gmmspeech bench em``: time one EM iteration, optionally against scikit-learn, and
(``--fit``) a whole ``GaussianMixture.fit`` against scikit-learn's fit to the same
log-likelihood.

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
from ..mixture.estimator import GaussianMixture
from ..mixture.gmm import DiagGMM
from ..mixture.ubm import em_step
from ..storage.atomic import atomic_path
from .memory import PeakRSS

HELP = "time one EM iteration (seconds, frames x components per second, peak RSS)"
EXAMPLE = (
    "gmmspeech bench em --n 200000 --d 60 --k 1024 --vs sklearn --json em.json\n"
    "  gmmspeech bench em --n 200000 --d 60 --k 256 --repeat 1 --fit"
)


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
    p.add_argument(
        "--fit",
        action="store_true",
        help="also time gmmspeech.GaussianMixture.fit against scikit-learn's fit "
        "(kmeans init, same tol) until it reaches the same log-likelihood",
    )
    p.add_argument("--tol", type=float, default=1e-3, help="--fit: tol of both fits")
    p.add_argument(
        "--init",
        default="split,kmeans",
        help="--fit: gmmspeech inits to time, comma-separated (default split,kmeans)",
    )
    p.add_argument(
        "--max-iter", type=int, default=100, help="--fit: max_iter of both fits (default 100)"
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


def _fit_ours(X: np.ndarray, args: argparse.Namespace, init: str) -> tuple[float, GaussianMixture]:
    est = GaussianMixture(
        args.k, init=init, tol=args.tol, max_iter=args.max_iter, random_state=args.seed
    )
    t0 = time.perf_counter()
    est.fit(X)
    return time.perf_counter() - t0, est


def _fit_sklearn(
    X: np.ndarray, args: argparse.Namespace
) -> tuple[list[tuple[float, float]], float]:
    """scikit-learn's ``fit`` loop (``BaseMixture.fit_predict``, one init), step by step.

    Returns ``(seconds since the start, mean log-likelihood of the E-step)`` per iteration
    and the seconds of the k-means initialisation. Stops at convergence (``tol``) or
    ``max_iter``, as its ``fit`` does.
    """
    from sklearn.mixture import GaussianMixture as SkGaussianMixture
    from sklearn.utils import check_random_state

    gm = SkGaussianMixture(
        args.k, covariance_type="diag", tol=args.tol, max_iter=args.max_iter, random_state=args.seed
    )
    Xs = X.astype(np.float64)
    t0 = time.perf_counter()
    gm._initialize_parameters(Xs, check_random_state(args.seed))
    t_init = time.perf_counter() - t0
    trace: list[tuple[float, float]] = []
    prev = -np.inf
    for _ in range(args.max_iter):
        ll, log_resp = gm._e_step(Xs)
        gm._m_step(Xs, log_resp)
        trace.append((time.perf_counter() - t0, float(ll)))
        if abs(ll - prev) < args.tol:
            break
        prev = ll
    return trace, t_init


def _fit_line(X: np.ndarray, args: argparse.Namespace, result: dict[str, Any]) -> None:
    """Time both fits. "Same log-likelihood" is the mean log-likelihood per frame at an
    E-step: scikit-learn's clock stops at the end of the first iteration whose E-step is at
    or above gmmspeech's last; if none is, its whole fit is timed and both values shown."""
    ours = []
    for init in [s.strip() for s in args.init.split(",") if s.strip()]:
        t_ours, est = _fit_ours(X, args, init)
        ours.append((init, t_ours, est))
    trace, t_init = _fit_sklearn(X, args)
    print(f"GaussianMixture.fit to the same log-likelihood (tol={args.tol})")
    print(
        f"  sklearn fit (f64)   {trace[-1][0]:8.2f} s   kmeans init {t_init:.2f} s + "
        f"{len(trace)} EM iterations, mean log-likelihood/frame {trace[-1][1]:.5f}"
    )
    result["fit_sklearn_seconds"] = trace[-1][0]
    result["fit_sklearn_kmeans_init_seconds"] = t_init
    result["fit_sklearn_em_iterations"] = len(trace)
    result["fit_sklearn_log_likelihood"] = trace[-1][1]
    for init, t_ours, est in ours:
        target = float(est.lower_bound_)
        hit = next((i for i, (_, ll) in enumerate(trace) if ll >= target), None)
        t_sk = trace[-1 if hit is None else hit][0]
        if hit is None:
            how = f"sklearn never reached it; its whole fit took {t_sk:.2f} s"
        else:
            how = f"sklearn reached it at iteration {hit + 1}, {t_sk:.2f} s"
        print(
            f"  gmmspeech {init:<9s} {t_ours:8.2f} s   {est.n_iter_} EM iterations at full "
            f"size, {target:.5f}; {how} -> gmmspeech is {t_sk / t_ours:.1f}x faster"
        )
        result[f"fit_gmmspeech_{init}"] = {
            "seconds": t_ours,
            "em_iterations": est.n_iter_,
            "log_likelihood": target,
            "sklearn_reached": hit is not None,
            "sklearn_seconds_to_reach": t_sk,
            "speedup_vs_sklearn": t_sk / t_ours,
        }


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
    if args.fit:
        _fit_line(X, args, result)
    if args.json:
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"  figures written to {args.json}")
    return 0
