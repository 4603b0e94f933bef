"""``gmmspeech bench ubm``: train a whole UBM by splitting on synthetic frames."""

from __future__ import annotations

import argparse
import time

import numpy as np

from ..errors import ConfigError
from ..mixture.ubm import train_ubm
from .common import add_output_arguments, write_figures
from .em import draw_frames, random_gmm
from .memory import PeakRSS

HELP = "time a full UBM training (splitting + EM) on frames drawn from a random GMM"
EXAMPLE = "gmmspeech bench ubm --n 1000000 --d 60 --k 1024"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n", type=int, default=1_000_000, help="frames (default 1000000)")
    p.add_argument("--d", type=int, default=60, help="feature dimension (default 60)")
    p.add_argument("--k", type=int, default=1024, help="UBM components (default 1024)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_output_arguments(p)


def run(args: argparse.Namespace) -> int:
    for name in ("n", "d", "k"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name}: must be >= 1, got {getattr(args, name)}")
    rng = np.random.default_rng(args.seed)
    X = draw_frames(random_gmm(args.k, args.d, rng), args.n, rng)
    with PeakRSS(interval=0.01) as mem:
        t0 = time.perf_counter()
        ubm = train_ubm(X, args.k, progress=not args.no_progress)
        elapsed = time.perf_counter() - t0
    result = {
        "benchmark": "ubm",
        "n": args.n,
        "d": args.d,
        "k": args.k,
        "seconds": elapsed,
        "em_iterations": len(ubm.history_),
        "final_log_likelihood_per_frame": ubm.history_[-1]["log_likelihood"],
        "peak_rss_mib": mem.peak,
        "frames_mib": X.nbytes / 2**20,
    }
    print(
        f"UBM N={args.n} D={args.d} K={args.k}: {elapsed:.1f} s, {len(ubm.history_)} EM "
        f"iterations, final log-likelihood/frame {result['final_log_likelihood_per_frame']:.4f}, "
        f"peak RSS {mem.peak:.0f} MiB (frames {result['frames_mib']:.0f} MiB)"
    )
    if args.json:
        write_figures(args.json, result)
    return 0
