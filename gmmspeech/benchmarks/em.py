"""``gmmspeech bench em``: time one EM iteration, optionally against scikit-learn, and
(``--fit``) a whole ``GaussianMixture.fit`` against scikit-learn's fit to the same
log-likelihood.

Data are drawn from a random diagonal GMM with the benchmark's K and D; the timed model is
another random GMM of the same size, so responsibilities are spread like mid-training.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import warnings
from typing import Any

import numpy as np

from ..errors import ConfigError, ConvergenceWarning
from ..mixture.estimator import GaussianMixture
from ..mixture.gmm import DiagGMM
from ..mixture.ubm import em_step
from .common import add_output_arguments, write_figures
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
        default="kmeans",
        help="--fit: gmmspeech inits to time, comma-separated, e.g. kmeans,split "
        "(default kmeans, the estimator's default)",
    )
    p.add_argument(
        "--max-iter", type=int, default=100, help="--fit: max_iter of both fits (default 100)"
    )
    add_output_arguments(p)


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


def _fit_ours(
    X: np.ndarray, args: argparse.Namespace, init: str, max_iter: int | None = None
) -> tuple[tuple[float, float], GaussianMixture]:
    est = GaussianMixture(
        args.k, init=init, tol=args.tol, max_iter=max_iter or args.max_iter, random_state=args.seed
    )
    t0, c0 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the max_iter sweep stops early
        est.fit(X)
    return (time.perf_counter() - t0, time.process_time() - c0), est


def _ours_to_reach(
    X: np.ndarray,
    args: argparse.Namespace,
    init: str,
    full: tuple[tuple[float, float], GaussianMixture],
    target: float,
) -> tuple[tuple[float, float], int]:
    """Seconds of the shortest fit (max_iter = 1, 2, ...) whose last E-step reaches
    ``target``, and that max_iter. The fits are seeded, so each repeats the full fit's path."""
    t_full, est = full
    hit = next((i for i, ll in enumerate(est.lower_bounds_) if ll >= target), None)
    if hit is None or hit + 1 == est.n_iter_:
        return t_full, est.n_iter_
    return _fit_ours(X, args, init, max_iter=hit + 1)[0], hit + 1


def _fit_sklearn(
    X: np.ndarray, args: argparse.Namespace
) -> tuple[list[tuple[float, float, float]], float]:
    """scikit-learn's ``fit`` loop (``BaseMixture.fit_predict``, one init), step by step.

    Returns ``(wall seconds, CPU seconds since the start, mean log-likelihood of the
    E-step)`` per iteration and the wall seconds of the k-means initialisation. Stops at convergence (``tol``) or
    ``max_iter``, as its ``fit`` does.
    """
    from sklearn.mixture import GaussianMixture as SkGaussianMixture
    from sklearn.utils import check_random_state

    gm = SkGaussianMixture(
        args.k, covariance_type="diag", tol=args.tol, max_iter=args.max_iter, random_state=args.seed
    )
    Xs = X.astype(np.float64)
    t0, c0 = time.perf_counter(), time.process_time()
    gm._initialize_parameters(Xs, check_random_state(args.seed))
    t_init = time.perf_counter() - t0
    trace: list[tuple[float, float, float]] = []
    prev = -np.inf
    for _ in range(args.max_iter):
        ll, log_resp = gm._e_step(Xs)
        gm._m_step(Xs, log_resp)
        trace.append((time.perf_counter() - t0, time.process_time() - c0, float(ll)))
        if abs(ll - prev) < args.tol:
            break
        prev = ll
    return trace, t_init


def _fit_line(X: np.ndarray, args: argparse.Namespace, result: dict[str, Any]) -> None:
    """Time both fits to the same log-likelihood: the lower of the two final mean
    log-likelihoods per frame (at an E-step). Each clock stops at the end of the first
    iteration whose E-step reaches it: scikit-learn's from its trace, gmmspeech's by
    re-running its seeded fit with a smaller max_iter."""
    ours = []
    for init in [s.strip() for s in args.init.split(",") if s.strip()]:
        ours.append((init, _fit_ours(X, args, init)))
    trace, t_init = _fit_sklearn(X, args)
    sk_final = trace[-1][2]
    print(f"GaussianMixture.fit to the same log-likelihood (tol={args.tol}; wall s, CPU s)")
    print(
        f"  sklearn fit (f64)   {trace[-1][0]:8.2f} s  {trace[-1][1]:8.2f} cpu-s   kmeans init "
        f"{t_init:.2f} s + {len(trace)} EM iterations, final mean log-likelihood/frame "
        f"{sk_final:.5f}"
    )
    result["fit_sklearn_seconds"] = trace[-1][0]
    result["fit_sklearn_cpu_seconds"] = trace[-1][1]
    result["fit_sklearn_kmeans_init_seconds"] = t_init
    result["fit_sklearn_em_iterations"] = len(trace)
    result["fit_sklearn_log_likelihood"] = sk_final
    for init, full in ours:
        (t_full, c_full), est = full
        final = float(est.lower_bound_)
        target = min(final, sk_final)
        hit = next(i for i, row in enumerate(trace) if row[2] >= target or i == len(trace) - 1)
        t_sk, c_sk = trace[hit][0], trace[hit][1]
        (t_ours, c_ours), it_ours = _ours_to_reach(X, args, init, full, target)
        print(
            f"  gmmspeech {init:<9s} {t_full:8.2f} s  {c_full:8.2f} cpu-s   {est.n_iter_} EM "
            f"iterations at full size, final {final:.5f}"
        )
        print(
            f"    to {target:.5f}: gmmspeech {t_ours:.2f} s / {c_ours:.2f} cpu-s ({it_ours} it), "
            f"sklearn {t_sk:.2f} s / {c_sk:.2f} cpu-s ({hit + 1} it) -> gmmspeech is "
            f"{t_sk / t_ours:.1f}x faster (wall), {c_sk / c_ours:.1f}x (CPU)"
        )
        result[f"fit_gmmspeech_{init}"] = {
            "seconds": t_full,
            "cpu_seconds": c_full,
            "em_iterations": est.n_iter_,
            "log_likelihood": final,
            "common_log_likelihood": target,
            "seconds_to_common": t_ours,
            "cpu_seconds_to_common": c_ours,
            "sklearn_seconds_to_common": t_sk,
            "sklearn_cpu_seconds_to_common": c_sk,
            "speedup_vs_sklearn": t_sk / t_ours,
            "cpu_speedup_vs_sklearn": c_sk / c_ours,
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
        write_figures(args.json, result)
    return 0
