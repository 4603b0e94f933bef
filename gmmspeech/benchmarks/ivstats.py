"""``gmmspeech bench ivstats``: disk size and TV cost of pruned i-vector statistics.

Cuts the utterances of a feature store into pieces of ``--frames`` frames (a corpus's
utterance length after VAD: about 640 for VoxCeleb1, 8.2 s on average at 100 frames/s with
the 0.78 of frames our VAD keeps on LibriSpeech), writes them as a feature store, and
computes their statistics under a UBM three ways: dense, ``min_post``-pruned statistics of
the touched components (``layout: sparse``, what arrays give) and ``min_post``-pruned
posteriors (``layout: posteriors``, what a feature store gives, read back into statistics
with its frames). Prints each file's size against the dense one, the seconds of one
total-variability EM iteration on each (same initial ``T``, in one run), and how far the
statistics read back from the posteriors are from those computed directly with the same
pruning.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import ConfigError
from ..features.store import FeatureStore, write_store
from ..ivector.stats import StatsFile, compute_stats, load_task
from ..ivector.tv import TotalVariability
from ..mixture.gmm import DiagGMM
from ..mixture.ubm import train_ubm
from .common import add_json_argument, write_figures

HELP = "disk size and TV iteration time of dense against pruned (min_post) i-vector statistics"
EXAMPLE = "gmmspeech bench ivstats --features feats.h5 --k 512 --frames 640"
LAYOUTS = ("dense", "sparse", "posteriors")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--features", required=True, metavar="H5", help="a feature store")
    p.add_argument("--ubm", default=None, metavar="H5", help="a UBM (default: train one)")
    p.add_argument("--k", type=int, default=512, help="components of a trained UBM (512)")
    p.add_argument("--frames", type=int, default=640, help="frames per utterance (640)")
    p.add_argument("--min-post", type=float, default=0.025, help="pruning threshold (0.025)")
    p.add_argument("--rank", type=int, default=400, help="TV rank of the timed iteration (400)")
    p.add_argument("--repeat", type=int, default=3, help="rounds of timed iterations (3)")
    add_json_argument(p)


def _read_all(src: StatsFile) -> tuple[np.ndarray, np.ndarray, float]:
    """All statistics of a file as arrays, and the seconds reading them took."""
    t0 = time.perf_counter()
    parts = [load_task(t) for t in src.tasks(100)]
    sec = time.perf_counter() - t0
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), sec


def _data_bytes(path: str) -> int:
    """Bytes of the utterances' data (logical sizes, not the chunks allocated): the file
    without its fixed part (header, UBM record), which many utterances make negligible."""
    with h5py.File(path, "r") as h:
        return sum(
            h[name].nbytes for name in h if isinstance(h[name], h5py.Dataset) and name != "utt_ids"
        )


def _pieces(utts: list[np.ndarray], step: int) -> dict[str, np.ndarray]:
    """Consecutive pieces of ``step`` frames (a last piece of at least half that too)."""
    cut = [x[s : s + step] for x in utts for s in range(0, x.shape[0], step)]
    return {f"u{i:06d}": x for i, x in enumerate(y for y in cut if y.shape[0] >= step // 2)}


def run(args: argparse.Namespace) -> int:
    for name in ("frames", "repeat"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name}: must be >= 1, got {getattr(args, name)}")
    with FeatureStore(args.features) as fs:
        utts = [np.asarray(fs[u], dtype=np.float32) for u in fs.keys()]
    if args.ubm is not None:
        ubm = DiagGMM.load(args.ubm)
    else:
        ubm = train_ubm(np.concatenate(utts), args.k, progress=False)
    step = args.frames
    pieces = _pieces(utts, step)
    n_frames = sum(x.shape[0] for x in pieces.values())
    res: dict[str, Any] = {"benchmark": "ivstats", "utterances": len(pieces), "frames": n_frames}
    res.update(k=ubm.n_components, d=ubm.n_features, min_post=args.min_post, rank=args.rank)
    sizes, stats_sec = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "pieces.h5"
        write_store(store, pieces)
        sources: dict[str, tuple[Any, float | None]] = {
            "dense": (store, None),
            "sparse": (pieces, args.min_post),
            "posteriors": (store, args.min_post),
        }
        files: dict[str, StatsFile] = {}
        for name, (feats, mp) in sources.items():
            path = Path(tmp) / f"{name}.h5"
            t0 = time.perf_counter()
            files[name] = compute_stats(ubm, feats, min_post=mp, out=path, batch_size=100)
            stats_sec[name] = time.perf_counter() - t0
            sizes[name] = path.stat().st_size
        direct = compute_stats(ubm, pieces, min_post=args.min_post, batch_size=100)
        n_post, f_post, _ = _read_all(files["posteriors"])
        scale = float(np.abs(direct.first).max())
        res["max_abs_diff_n"] = float(np.abs(n_post - direct.zeroth).max())
        res["max_rel_diff_f"] = float(np.abs(f_post - direct.first).max()) / scale
        with h5py.File(files["posteriors"].path, "r") as h:
            res["kept_per_frame"] = int(h["components"].shape[0]) / n_frames
        # n_iter=0: the initial T only, then one timed iteration per layout from it
        tv = TotalVariability(rank=args.rank, n_iter=0, batch_size=100).fit(files["dense"])
        t_init = tv.T_
        times: dict[str, list[float]] = {name: [] for name in LAYOUTS}
        reads: dict[str, list[float]] = {name: [] for name in LAYOUTS}
        for _ in range(args.repeat):  # rounds of the layouts in turn, each from the same T
            for name in LAYOUTS:
                reads[name].append(_read_all(files[name])[2])
                tv.T_ = t_init
                t0 = time.perf_counter()
                tv.iterate(files[name])
                times[name].append(time.perf_counter() - t0)
        tv_sec = {name: float(np.median(v)) for name, v in times.items()}
        read_sec = {name: float(np.median(v)) for name, v in reads.items()}
        data = {name: _data_bytes(files[name].path) for name in LAYOUTS}
    res.update(sizes=sizes, stats_seconds=stats_sec, read_seconds=read_sec, tv_seconds=tv_sec)
    res["data_bytes"] = data
    res["ratio"] = {name: sizes[name] / sizes["dense"] for name in LAYOUTS}
    res["data_ratio"] = {name: data[name] / data["dense"] for name in LAYOUTS}
    res["tv_ratio"] = {name: tv_sec[name] / tv_sec["dense"] for name in LAYOUTS}
    _print(res)
    write_figures(args.json, res)
    return 0


def _print(r: dict[str, Any]) -> None:
    print(
        f"{r['utterances']} utterances of {r['frames'] / r['utterances']:.0f} frames on average, "
        f"K={r['k']}, D={r['d']}, min_post={r['min_post']} (renormalised): "
        f"{r['kept_per_frame']:.2f} components kept per frame"
    )
    head = ("layout", "file MiB", "of dense", "data of dense", "stats s", "read s", "TV iter s")
    print("  " + " ".join(f"{h:>13}" for h in head))
    for name in LAYOUTS:
        row = (
            name,
            f"{r['sizes'][name] / 2**20:.2f}",
            f"{r['ratio'][name]:.3f}",
            f"{r['data_ratio'][name]:.3f}",
            f"{r['stats_seconds'][name]:.2f}",
            f"{r['read_seconds'][name]:.2f}",
            f"{r['tv_seconds'][name]:.2f} ({r['tv_ratio'][name]:.2f}x)",
        )
        print("  " + " ".join(f"{v:>13}" for v in row))
    print(
        "  (data: the utterances' datasets without the fixed header and UBM record; TV iter: "
        "median of the rounds, and its ratio to dense)"
    )
    print(
        f"  statistics read back from the posteriors against those computed directly: max "
        f"|dN| {r['max_abs_diff_n']:.2e}, max |dF| / max |F| {r['max_rel_diff_f']:.2e}"
    )
