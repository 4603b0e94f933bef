"""``gmmspeech bench ivstats``: the disk size of pruned, sparse i-vector statistics.

Cuts the utterances of a feature store into pieces of ``--frames`` frames (the length of a
corpus's utterances, e.g. about 800 for VoxCeleb1), computes their statistics under a UBM
densely and with ``min_post`` pruning, writes both files and compares their sizes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..features.store import FeatureStore
from ..ivector.stats import compute_stats
from ..mixture.gmm import DiagGMM
from ..mixture.ubm import train_ubm
from .common import add_json_argument, write_figures

HELP = "disk size of dense against pruned (min_post), sparse i-vector statistics"
EXAMPLE = "gmmspeech bench ivstats --features feats.h5 --k 512 --frames 800"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--features", required=True, metavar="H5", help="a feature store")
    p.add_argument("--ubm", default=None, metavar="H5", help="a UBM (default: train one)")
    p.add_argument("--k", type=int, default=512, help="components of a trained UBM (512)")
    p.add_argument("--frames", type=int, default=800, help="frames per utterance (800)")
    p.add_argument("--min-post", type=float, default=0.025, help="pruning threshold (0.025)")
    add_json_argument(p)


def run(args: argparse.Namespace) -> int:
    if args.frames < 1:
        raise ConfigError(f"--frames: must be >= 1, got {args.frames}")
    with FeatureStore(args.features) as fs:
        utts = [np.asarray(fs[u], dtype=np.float32) for u in fs.keys()]
    if args.ubm is not None:
        ubm = DiagGMM.load(args.ubm)
    else:
        ubm = train_ubm(np.concatenate(utts), args.k, progress=False)
    step = args.frames
    pieces = {
        f"u{i:06d}": x[s : s + step]
        for i, x in enumerate(utts)
        for s in range(0, x.shape[0], step)
        if x[s : s + step].shape[0] >= step // 2
    }
    with tempfile.TemporaryDirectory() as tmp:
        sizes, seconds = {}, {}
        for name, mp in (("dense", None), ("sparse", args.min_post)):
            path = Path(tmp) / f"{name}.h5"
            t0 = time.perf_counter()
            compute_stats(ubm, pieces, min_post=mp, out=path)
            seconds[name] = time.perf_counter() - t0
            sizes[name] = path.stat().st_size
    ratio = sizes["sparse"] / sizes["dense"]
    print(
        f"{len(pieces)} utterances of {step // 2}-{step} frames, K={ubm.n_components}, "
        f"D={ubm.n_features}: dense {sizes['dense'] / 2**20:.1f} MiB ({seconds['dense']:.1f} s), "
        f"min_post={args.min_post} sparse {sizes['sparse'] / 2**20:.1f} MiB "
        f"({seconds['sparse']:.1f} s): {ratio:.3f} of the dense size"
    )
    if args.json:
        result = {"benchmark": "ivstats", "sizes": sizes, "seconds": seconds, "ratio": ratio}
        write_figures(args.json, result)
    return 0
