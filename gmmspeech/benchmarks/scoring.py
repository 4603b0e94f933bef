"""``gmmspeech bench scoring``: trials per second of exact, top-C and linear scoring.

A random UBM (K x D) and MAP-like mean-only speaker models (the UBM means plus small random
offsets) score synthetic test utterances drawn from the UBM. Every model is tried against
every test utterance (M x U trials), which is how trial lists are scored: each test
utterance's UBM pass is shared by all its models. Exact scoring is slow, so it is timed on
the first ``--exact-utts`` utterances only and reported as trials/s like the others. Peak
memory is measured per method and, for top-C, for a quarter and for all of the trials, to
show that it does not grow with the number of trials.
"""

from __future__ import annotations

import argparse
import platform
import time
from typing import Any

import numpy as np

from ..decisions.scoring import ModelBank, score_trials
from ..errors import ConfigError
from ..mixture.speakermodels import SpeakerModels
from .common import add_output_arguments, write_figures
from .em import draw_frames, random_gmm
from .memory import PeakRSS

HELP = "trials/s and peak memory of exact, top-C and linear LLR scoring"
EXAMPLE = "gmmspeech bench scoring --models 100 --utts 1000 --frames 300 --k 1024 --d 60"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", type=int, default=100, help="speaker models (default 100)")
    p.add_argument("--utts", type=int, default=1000, help="test utterances (default 1000)")
    p.add_argument("--frames", type=int, default=300, help="frames per utterance (default 300)")
    p.add_argument("--k", type=int, default=1024, help="UBM components (default 1024)")
    p.add_argument("--d", type=int, default=60, help="feature dimension (default 60)")
    p.add_argument("--top-c", type=int, default=5, help="C of top-C scoring (default 5)")
    p.add_argument(
        "--exact-utts", type=int, default=50, help="utterances timed for exact (default 50)"
    )
    add_output_arguments(p)


def _trials(models: list[str], utts: list[str]) -> list[tuple[str, str]]:
    return [(m, u) for u in utts for m in models]


def _time(
    ubm: Any,
    bank: ModelBank,
    feats: dict[str, np.ndarray],
    trials: list[tuple[str, str]],
    method: str,
    top_c: int,
) -> tuple[float, float, np.ndarray]:
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        s = score_trials(ubm, bank, feats, trials, method=method, top_c=top_c)
        dt = time.perf_counter() - t0
    return dt, mem.peak - mem.start, s


def run(args: argparse.Namespace) -> int:
    for name in ("models", "utts", "frames", "k", "d", "top_c", "exact_utts"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')}: must be >= 1")
    rng = np.random.default_rng(args.seed)
    ubm = random_gmm(args.k, args.d, rng)
    ids = [f"spk{i:04d}" for i in range(args.models)]
    offsets = 0.1 * rng.standard_normal((args.models, args.k, args.d))
    models = SpeakerModels(ubm, ids, means=ubm.means[None] + offsets)
    del offsets
    utts = [f"utt{j:05d}" for j in range(args.utts)]
    frames = draw_frames(ubm, args.utts * args.frames, rng)
    feats = {u: frames[j * args.frames : (j + 1) * args.frames] for j, u in enumerate(utts)}
    bank = ModelBank(ubm, models)
    bank.by_component()
    # warm-up (BLAS threads, caches)
    score_trials(ubm, bank, feats, _trials(ids, utts[:2]), method="topc", top_c=args.top_c)
    n_exact = min(args.exact_utts, args.utts)
    result: dict[str, Any] = {
        "benchmark": "scoring",
        "models": args.models,
        "utts": args.utts,
        "frames": args.frames,
        "k": args.k,
        "d": args.d,
        "top_c": args.top_c,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
    }
    print(
        f"LLR scoring, {args.models} models x {args.utts} utts of {args.frames} frames, "
        f"K={args.k} D={args.d}"
    )
    runs = [
        ("topc", utts, f"top-{args.top_c}"),
        ("linear", utts, "linear"),
        ("exact", utts[:n_exact], "exact"),
        ("topc", utts[: max(1, args.utts // 4)], f"top-{args.top_c} (1/4 of trials)"),
    ]
    exact_scores = topc_scores = None
    for method, subset, label in runs:
        trials = _trials(ids, subset)
        dt, mem, s = _time(ubm, bank, feats, trials, method, args.top_c)
        rate = len(trials) / dt
        key = label.split(" ")[0].replace("-", "")
        if "1/4" in label:
            key = "topc_quarter"
        result[f"{key}_trials"] = len(trials)
        result[f"{key}_seconds"] = dt
        result[f"{key}_trials_per_second"] = rate
        result[f"{key}_peak_extra_rss_mib"] = mem
        print(
            f"  {label:<22s} {len(trials):8d} trials {dt:8.2f} s {rate:10.0f} trials/s   "
            f"peak extra RSS {mem:7.1f} MiB"
        )
        if method == "exact":
            exact_scores = s
        elif method == "topc" and topc_scores is None:
            topc_scores = s
    if exact_scores is None or topc_scores is None:
        raise ConfigError("bench scoring: needs both the exact and the top-C method")
    speedup = (
        result["top" + str(args.top_c) + "_trials_per_second"] / result["exact_trials_per_second"]
    )
    diff = np.abs(topc_scores[: exact_scores.size] - exact_scores)
    result["topc_speedup_vs_exact"] = speedup
    result["topc_vs_exact_max_abs_score_diff"] = float(diff.max())
    print(
        f"  top-{args.top_c} is {speedup:.1f}x faster than exact; max |top-C - exact| score "
        f"difference {diff.max():.4g} on the shared trials"
    )
    if args.json:
        write_figures(args.json, result)
    return 0
