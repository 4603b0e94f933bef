"""``gmmspeech bench scale``: out-of-core UBM memory and engine throughput.

(a) memory: a UBM grown to K components while streaming a synthetic feature store from disk,
    with the driver's and every Dask worker's peak RSS, for one or more store sizes;
(b) throughput: one EM iteration over a store with the in-process engine, 1 and 2 local
    Dask workers (one BLAS thread each), and the in-memory ``em_step`` on the same frames.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..config.sections import UBMConfig
from ..engine import DaskEngine, Engine, LocalEngine, map_reduce
from ..errors import ConfigError
from ..features.framesource import as_source
from ..features.store import FeatureStore, write_store
from ..mixture.gmm import DiagGMM
from ..mixture.ubm import accumulate_shard, em_step, train_ubm
from .common import add_output_arguments, write_figures
from .em import random_gmm
from .memory import PeakRSS

HELP = "out-of-core UBM memory (driver and workers) and EM throughput per engine"
EXAMPLE = "gmmspeech bench scale --memory-frames 2500000,5000000 --throughput-frames 1000000"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--memory-frames",
        default="2500000,5000000",
        help="store sizes (frames) for the memory part, comma-separated; '' skips it",
    )
    p.add_argument(
        "--throughput-frames",
        type=int,
        default=1_000_000,
        help="store size for the throughput part (0 skips it)",
    )
    p.add_argument("--d", type=int, default=60, help="feature dimension (default 60)")
    p.add_argument("--k", type=int, default=1024, help="UBM components (default 1024)")
    p.add_argument("--utt-frames", type=int, default=1000, help="frames per utterance")
    p.add_argument("--workers", type=int, default=2, help="Dask workers for the memory part")
    p.add_argument(
        "--workdir", default=None, help="where to write the stores (default: a temp dir)"
    )
    add_output_arguments(p)


def _utterances(gmm: DiagGMM, n: int, per_utt: int, seed: int) -> Iterator[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    for i, start in enumerate(range(0, n, per_utt)):
        x, _ = gmm.sample(min(per_utt, n - start), rng)
        yield f"utt{i:07d}", x.astype(np.float32)


def _make_store(folder: Path, n: int, d: int, k: int, per_utt: int, seed: int) -> Path:

    path = folder / f"synthetic_{n}x{d}.h5"
    if not path.exists():
        truth = random_gmm(k, d, np.random.default_rng(seed))
        t0 = time.perf_counter()
        write_store(path, _utterances(truth, n, per_utt, seed + 1))
        print(
            f"  wrote {path} ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t0:.0f} s"
        )
    return path


def _worker_peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _memory_part(path: Path, k: int, workers: int) -> dict[str, Any]:

    with DaskEngine(n_workers=workers, threads_per_worker=1) as engine, FeatureStore(path) as store:
        engine.client.wait_for_workers(workers)
        with PeakRSS(interval=0.05) as mem:
            t0 = time.perf_counter()
            ubm = train_ubm(
                store,
                k,
                engine=engine,
                iterations_per_stage=(1,),
                final_max_iterations=0,
                progress=False,
            )
            elapsed = time.perf_counter() - t0
        worker_peaks = engine.client.run(_worker_peak_mib)
    return {
        "frames": store.n_frames,
        "k": ubm.n_components,
        "em_iterations": len(ubm.history_),
        "seconds": elapsed,
        "driver_peak_rss_mib": mem.peak,
        "worker_peak_rss_mib": sorted(worker_peaks.values()),
    }


def _one_iteration(store: FeatureStore, gmm: DiagGMM, engine: Engine) -> float:

    cfg = UBMConfig()
    shards = as_source(store).shards(cfg.shard_frames)
    t0 = time.perf_counter()
    map_reduce(engine, accumulate_shard, shards, (gmm, cfg.chunk_size))
    return time.perf_counter() - t0


def _throughput_part(path: Path, k: int, d: int, seed: int) -> dict[str, Any]:
    gmm = random_gmm(k, d, np.random.default_rng(seed + 7))
    out: dict[str, Any] = {}
    with FeatureStore(path) as store:
        n = store.n_frames
        out["frames"] = n
        x = np.concatenate([store[u] for u in store])
        em_step(gmm, x[:20000])  # warm-up
        t0 = time.perf_counter()
        em_step(gmm, x)
        out["in_memory_em_step_s"] = time.perf_counter() - t0
        del x
        out["local_streaming_s"] = _one_iteration(store, gmm, LocalEngine())
        for workers in (1, 2):
            with DaskEngine(n_workers=workers, threads_per_worker=1) as engine:
                engine.client.wait_for_workers(workers)
                _one_iteration(store, gmm, engine)  # warm-up: imports, BLAS, file cache
                out[f"dask_{workers}_workers_s"] = _one_iteration(store, gmm, engine)
    out["dask_2_over_1_speedup"] = out["dask_1_workers_s"] / out["dask_2_workers_s"]
    out["streaming_over_in_memory_time"] = out["local_streaming_s"] / out["in_memory_em_step_s"]
    return out


def run(args: argparse.Namespace) -> int:
    for name in ("d", "k", "utt_frames", "workers"):
        if getattr(args, name) < 1:
            raise ConfigError(
                f"--{name.replace('_', '-')}: must be >= 1, got {getattr(args, name)}"
            )
    try:
        sizes = [int(s) for s in str(args.memory_frames).split(",") if s.strip()]
    except ValueError:
        raise ConfigError(
            f"--memory-frames: expected comma-separated integers, got {args.memory_frames!r}"
        ) from None
    tmp = None
    if args.workdir:
        folder = Path(args.workdir)
        folder.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="gmmspeech-bench-scale-")
        folder = Path(tmp.name)
    result: dict[str, Any] = {"benchmark": "scale", "k": args.k, "d": args.d, "memory": []}
    try:
        for n in sizes:
            print(
                f"(a) memory: UBM to {args.k} components streaming {n} frames, "
                f"{args.workers} Dask workers"
            )
            path = _make_store(folder, n, args.d, args.k, args.utt_frames, args.seed)
            m = _memory_part(path, args.k, args.workers)
            result["memory"].append(m)
            print(
                f"    {m['seconds']:.0f} s, {m['em_iterations']} EM iterations; driver peak "
                f"RSS {m['driver_peak_rss_mib']:.0f} MiB; worker peaks "
                f"{', '.join(f'{w:.0f}' for w in m['worker_peak_rss_mib'])} MiB"
            )
        if args.throughput_frames > 0:
            n = args.throughput_frames
            print(f"(b) throughput: one EM iteration over {n} frames, K={args.k}")
            path = _make_store(folder, n, args.d, args.k, args.utt_frames, args.seed)
            t = _throughput_part(path, args.k, args.d, args.seed)
            result["throughput"] = t
            rate = {key: n / t[key] for key in t if key.endswith("_s")}
            for key, value in rate.items():
                print(f"    {key[:-2]:<22s} {t[key]:7.2f} s  {value:10.0f} frames/s")
            print(
                f"    2 Dask workers vs 1: {t['dask_2_over_1_speedup']:.2f}x; in-process "
                f"streaming takes {t['streaming_over_in_memory_time']:.2f}x the in-memory time"
            )
    finally:
        if tmp is not None:
            tmp.cleanup()
    if args.json:
        write_figures(args.json, result)
    return 0
