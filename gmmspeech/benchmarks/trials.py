"""``gmmspeech bench trials``: peak memory of ``gmmspeech score`` against the number of trials.

A small random UBM, mean-only models and a feature store of short synthetic utterances are
written to a temporary folder with a trials file of every model against every utterance
(model-major, as corpora ship them), cut to ``--trials`` lines. ``gmmspeech score`` runs as
a child process on the whole list and on a tenth of it; the child's peak resident memory
(``ru_maxrss`` from ``wait4``) is reported with the growth per trial between the two, which
is what stays flat when trials are streamed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..config.sections import FeatureConfig, to_dict
from ..errors import ConfigError
from ..features.store import write_store
from ..mixture.speakermodels import SpeakerModels
from .common import add_output_arguments, write_figures
from .em import draw_frames, random_gmm

HELP = "peak RSS of `gmmspeech score` on a long trials list, and its growth per trial"
EXAMPLE = "gmmspeech bench trials --trials 10000000 --models 1000 --utts 10000"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trials", type=int, default=10_000_000, help="trials (default 10M)")
    p.add_argument("--models", type=int, default=1000, help="speaker models (default 1000)")
    p.add_argument("--utts", type=int, default=10000, help="test utterances (default 10000)")
    p.add_argument("--frames", type=int, default=20, help="frames per utterance (default 20)")
    p.add_argument("--k", type=int, default=8, help="UBM components (default 8)")
    p.add_argument("--d", type=int, default=8, help="feature dimension (default 8)")
    add_output_arguments(p)


def _write_inputs(args: argparse.Namespace, tmp: Path) -> None:
    rng = np.random.default_rng(args.seed)
    ubm = random_gmm(args.k, args.d, rng)
    ubm.feature_config = to_dict(FeatureConfig())
    ubm.save(tmp / "ubm.h5")
    ids = [f"spk{i:05d}" for i in range(args.models)]
    means = ubm.means[None] + 0.1 * rng.standard_normal((args.models, args.k, args.d))
    SpeakerModels(ubm, ids, means=means).save(tmp / "models.h5")
    utts = [f"utt{j:06d}" for j in range(args.utts)]
    frames = draw_frames(ubm, args.frames * args.utts, rng)
    write_store(
        tmp / "feats.h5",
        ((u, frames[j * args.frames : (j + 1) * args.frames]) for j, u in enumerate(utts)),
    )
    with open(tmp / "trials", "w", encoding="utf-8") as f:
        n = 0
        for i, m in enumerate(ids):
            if n >= args.trials:
                break
            take = utts[: args.trials - n]
            f.writelines(
                f"{m} {u} {'target' if j % args.models == i else 'nontarget'}\n"
                for j, u in enumerate(take)
            )
            n += len(take)
    with open(tmp / "trials", "rb") as src, open(tmp / "trials10", "wb") as dst:
        for k, line in enumerate(src):
            if k >= max(1, args.trials // 10):
                break
            dst.write(line)


def _score(tmp: Path, trials: str) -> tuple[float, float]:
    """Run ``gmmspeech score`` on ``trials``; (peak RSS MiB, seconds)."""
    cmd = [sys.executable, "-m", "gmmspeech.cli.main", "score", "ubm.h5", "models.h5", "feats.h5"]
    cmd += [trials, f"scores_{trials}.txt", "--no-progress"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=tmp, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise ConfigError(f"gmmspeech score exited with {proc.returncode}: {' '.join(cmd)}")
    return usage.ru_maxrss / 1024.0, time.perf_counter() - t0


def run(args: argparse.Namespace) -> int:
    for name in ("trials", "models", "utts", "frames", "k", "d"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name}: must be >= 1")
    if args.trials > args.models * args.utts:
        raise ConfigError(
            f"--trials: at most --models x --utts = {args.models * args.utts} distinct trials"
        )
    with tempfile.TemporaryDirectory(prefix="gmmspeech-bench-trials-") as d:
        tmp = Path(d)
        _write_inputs(args, tmp)
        n_small = max(1, args.trials // 10)
        small_mib, small_s = _score(tmp, "trials10")
        peak_mib, seconds = _score(tmp, "trials")
        size_mib = (tmp / "trials").stat().st_size / 2**20
    per_trial = (peak_mib - small_mib) * 2**20 / max(1, args.trials - n_small)
    result: dict[str, Any] = {
        "benchmark": "trials",
        "trials": args.trials,
        "models": args.models,
        "utts": args.utts,
        "k": args.k,
        "d": args.d,
        "trials_file_mib": size_mib,
        "peak_rss_mib": peak_mib,
        "seconds": seconds,
        "tenth_trials": n_small,
        "tenth_peak_rss_mib": small_mib,
        "tenth_seconds": small_s,
        "bytes_per_extra_trial": per_trial,
    }
    print(
        f"gmmspeech score, K={args.k} D={args.d}, {args.models} models x {args.utts} utts:\n"
        f"  {n_small:10d} trials: peak RSS {small_mib:7.1f} MiB, {small_s:6.1f} s\n"
        f"  {args.trials:10d} trials: peak RSS {peak_mib:7.1f} MiB, {seconds:6.1f} s "
        f"(trials file {size_mib:.0f} MiB)\n"
        f"  growth: {per_trial:.1f} bytes per trial"
    )
    if args.json:
        write_figures(args.json, result)
    return 0
