"""``gmmspeech bench features``: feature extraction speed, parallel speed-up, memory.

1. Per utterance, in this process: :func:`gmmspeech.extract_features` (MFCC + deltas + VAD
   + CMVN) against bare librosa calls on the same signals with the same STFT options -
   ``librosa.feature.mfcc`` alone, and ``librosa.feature.mfcc`` plus
   ``librosa.feature.delta`` of orders 1 and 2 - timed (CPU time of this process)
   interleaved after a warm-up, with one BLAS thread on every side (as extraction runs).
2. Extraction runs (``extract_to_store`` as ``gmmspeech extract`` calls it), each in a
   fresh process: in-process (``compute.backend: local``), ``--jobs 1`` and ``--jobs N``
   (the processes backend). Each run reports its fixed start-up (interpreter and imports,
   librosa's included; the engine's workers started from the forkserver) apart from the
   per-utterance work (``extract_to_store``), the CPU seconds of the parent and its workers
   (the forkserver's one-off imports not counted), the peak resident memory of the parent
   and of each worker process (shared pages of the forkserver's imports included), and the
   store's size. The speed-up of ``--jobs N`` over
   ``--jobs 1`` is given on the per-utterance work and end to end.

Ratios are measured within one run, so a busy machine slows both sides alike; absolute
times are only comparable on a quiet machine.

Without ``--datadir`` a synthetic data dir of noise-burst "utterances" is written to a
temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import librosa
import numpy as np
import soundfile as sf

from ..config.sections import FeatureConfig
from ..corpus.datadir import DataDir
from ..engine import blas_threads
from ..errors import ConfigError
from ..features.audio import load_audio
from ..features.frontend import extract_features, mfcc
from .common import add_output_arguments, write_figures
from .memory import max_rss_mib

HELP = "feature extraction: per-utterance cost vs bare librosa, --jobs speed-up, start-up, memory"
EXAMPLE = "gmmspeech bench features --n-utts 500 --seconds 8 --jobs 2 --json feats.json"
#: The front end's cost per utterance, at most this many times librosa's MFCC plus deltas.
RATIO_TARGET = 1.25


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--datadir",
        default=None,
        help="data dir to use (default: a synthetic one written to a temporary folder)",
    )
    p.add_argument("--n-utts", type=int, default=500, help="synthetic utterances (default 500)")
    p.add_argument(
        "--seconds", type=float, default=8.0, help="length of synthetic utterances (default 8)"
    )
    p.add_argument(
        "--rtf-utts",
        type=int,
        default=40,
        help="utterances used for the real-time-factor comparison (default 40)",
    )
    p.add_argument("--repeat", type=int, default=5, help="timed repetitions (default 5)")
    p.add_argument("--jobs", type=int, default=2, help="jobs compared with 1 (default 2)")
    p.add_argument("--skip-jobs", action="store_true", help="only the real-time factor")
    add_output_arguments(p)


def synthetic_signal(seconds: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Speech-like test audio: noise bursts modulated at syllable rate, with pauses."""
    n = int(seconds * sr)
    t = np.arange(n) / sr
    carrier = rng.standard_normal(n) * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(90, 200) * t))
    envelope = np.clip(np.sin(2 * np.pi * rng.uniform(2.5, 4.5) * t), 0.0, None) ** 0.5
    pauses = (np.sin(2 * np.pi * 0.3 * t + rng.uniform(0, 6.28)) > -0.6).astype(float)
    x = 0.15 * carrier * envelope * pauses + 3e-4 * rng.standard_normal(n)
    return x.astype(np.float32)


def write_synthetic_datadir(
    folder: Path, n_utts: int, seconds: float, sr: int = 16000, seed: int = 0, ext: str = "wav"
) -> Path:
    """Write ``n_utts`` synthetic 16-bit utterances (``ext``: wav or flac) and a data dir
    over them; returns the dir."""
    rng = np.random.default_rng(seed)
    wav, spk = {}, {}
    for i in range(n_utts):
        s = f"spk{i % 20:02d}"
        u = f"{s}-utt{i:05d}"
        p = folder / "audio" / s / f"{u}.{ext}"
        p.parent.mkdir(parents=True, exist_ok=True)
        length = seconds * rng.uniform(0.75, 1.25)
        sf.write(str(p), synthetic_signal(length, sr, rng), sr, subtype="PCM_16")
        wav[u], spk[u] = str(p), s
    data = folder / "data"
    DataDir(wav, spk).write(data)
    return data


def _time_rtf(signals: list[np.ndarray], sr: int, repeat: int) -> dict[str, Any]:
    cfg = FeatureConfig(sample_rate=sr)

    def bare(y: np.ndarray) -> np.ndarray:
        return np.asarray(
            librosa.feature.mfcc(
                y=y,
                sr=sr,
                n_mfcc=cfg.n_mfcc,
                n_fft=cfg.fft_size,
                hop_length=cfg.hop_length,
                win_length=cfg.win_length,
                window=cfg.window,
                center=cfg.center,
                n_mels=cfg.n_mels,
                fmin=cfg.fmin,
            )
        )

    def bare_deltas(y: np.ndarray) -> np.ndarray:
        m = bare(y)
        width = 2 * cfg.delta_window + 1
        return np.vstack(
            [
                m,
                librosa.feature.delta(m, width=width, order=1),
                librosa.feature.delta(m, width=width, order=2),
            ]
        )

    fns: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "librosa_mfcc": bare,
        "librosa_mfcc_deltas": bare_deltas,
        "mfcc_only": lambda y: mfcc(y, cfg),
        "extract_features": lambda y: extract_features(y, sr, cfg),
    }
    for fn in fns.values():  # warm-up: lazy imports, FFT plans, filterbank caches
        for y in signals[:3]:
            fn(y)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for name, fn in fns.items():  # interleaved, so load changes hit all alike
            # CPU time of this process (one BLAS thread): other processes on a shared
            # machine lengthen wall time, much less the CPU time of the work itself
            t0 = time.process_time()
            for y in signals:
                fn(y)
            times[name].append(time.process_time() - t0)
    audio = sum(y.size for y in signals) / sr
    best = {k: min(v) for k, v in times.items()}
    return {
        "audio_seconds": audio,
        "n_signals": len(signals),
        "seconds_best": best,
        "seconds_all": times,
        "rtf": {k: audio / v for k, v in best.items()},
        "overhead_vs_librosa": best["extract_features"] / best["librosa_mfcc"] - 1.0,
        "overhead_vs_librosa_deltas": best["extract_features"] / best["librosa_mfcc_deltas"] - 1.0,
        "ratio_vs_librosa_deltas": best["extract_features"] / best["librosa_mfcc_deltas"],
    }


def worker_peak(_: object, __: object) -> tuple[int, tuple[float, float]]:
    """Engine task: (pid, (peak RSS in MiB, CPU seconds)) of the worker that runs it."""
    t = os.times()
    return os.getpid(), (max_rss_mib(), t.user + t.system)


# One extraction run in a fresh interpreter, timed from inside: imports, engine start-up,
# the per-utterance work; then the peak memory of the parent and of each worker.
_CHILD = """
import json, os, sys, time
t0 = time.perf_counter()
from gmmspeech.benchmarks.features import worker_peak
from gmmspeech.benchmarks.memory import max_rss_mib
from gmmspeech.config.sections import ComputeConfig
from gmmspeech.engine import ProcessEngine, make_engine
from gmmspeech.features.extraction import extract_to_store
from gmmspeech.features.extraction_worker import keep_freed_memory
t1 = time.perf_counter()
backend, n, data, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
keep_freed_memory()
engine = make_engine(ComputeConfig(backend=backend, n_workers=n if backend != "local" else None))
if isinstance(engine, ProcessEngine):
    engine.start()
t2 = time.perf_counter()
report = extract_to_store(data, out, engine=engine, max_failed_fraction=1.0)
t3 = time.perf_counter()
workers = dict(engine.map(worker_peak, range(8 * n))) if backend != "local" else {}
engine.close()
me = os.times()
print(json.dumps({"import_seconds": t1 - t0, "engine_start_seconds": t2 - t1,
                  "work_seconds": t3 - t2, "n_extracted": report.n_extracted,
                  "peak_rss_mib": max_rss_mib(),
                  "worker_peak_rss_mib": {p: w[0] for p, w in workers.items()},
                  "cpu_seconds": me.user + me.system + sum(w[1] for w in workers.values())}))
"""


def _run_child(datadir: Path, out: Path, backend: str, n: int) -> dict[str, Any]:
    """One extraction run in a fresh process; its figures plus wall seconds and store size."""
    cmd = [sys.executable, "-c", _CHILD, backend, str(n), str(datadir), str(out)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace")
        raise ConfigError(f"extraction run failed ({proc.returncode}): {err.strip()[-500:]}")
    got: dict[str, Any] = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    got["seconds"] = wall
    got["fixed_seconds"] = wall - got["work_seconds"]
    got["store_bytes"] = out.stat().st_size
    return got


def _print_rtf(rtf: dict[str, Any], repeat: int, load: float) -> None:
    print(
        f"Per utterance, {rtf['n_signals']} utterances ({rtf['audio_seconds']:.1f} s of audio, "
        f"CPU time, best of {repeat}, after warm-up, one BLAS thread; load average {load:.2f} on "
        f"{os.cpu_count()} CPUs):"
    )
    for name in ("librosa_mfcc", "librosa_mfcc_deltas", "mfcc_only", "extract_features"):
        print(
            f"  {name:20s} {rtf['seconds_best'][name] * 1e3:9.1f} ms   "
            f"{rtf['rtf'][name]:9.0f}x real time"
        )
    print(
        f"  extract_features (MFCC + deltas + VAD + CMVN) vs bare librosa.feature.mfcc: "
        f"{100 * rtf['overhead_vs_librosa']:+.1f}%; vs librosa mfcc + delta x2: "
        f"{100 * rtf['overhead_vs_librosa_deltas']:+.1f}%"
    )
    ratio = rtf["ratio_vs_librosa_deltas"]
    print(
        f"  ratio extract_features / (librosa.feature.mfcc + 2 librosa.feature.delta): "
        f"{ratio:.3f}x (target <= {RATIO_TARGET:g}x: {'met' if ratio <= RATIO_TARGET else 'MISSED'})"
    )


def _print_runs(runs: dict[str, dict[str, Any]], n_utts: int, jobs: int) -> dict[str, float]:
    n = f"jobs{jobs}"
    work = runs["jobs1"]["work_seconds"] / runs[n]["work_seconds"]
    end_to_end = runs["jobs1"]["seconds"] / runs[n]["seconds"]
    print(f"Extraction of {n_utts} utterances, each run in a fresh process:")
    for label, r in runs.items():
        workers = r["worker_peak_rss_mib"]
        per_worker = f"{max(workers.values()):6.1f}" if workers else "   -  "
        print(
            f"  {label:6s} {r['seconds']:7.2f} s wall = fixed {r['fixed_seconds']:5.2f} s "
            f"(imports {r['import_seconds']:.2f}, workers {r['engine_start_seconds']:.2f}) + "
            f"work {r['work_seconds']:7.2f} s; CPU {r['cpu_seconds']:6.2f} s; peak RSS parent "
            f"{r['peak_rss_mib']:6.1f} MiB, per worker {per_worker} MiB"
        )
    print(
        f"  --jobs {jobs} vs --jobs 1: {work:.2f}x faster on the per-utterance work, "
        f"{end_to_end:.2f}x end to end"
    )
    return {"work": work, "end_to_end": end_to_end}


def run(args: argparse.Namespace) -> int:
    for name in ("n_utts", "rtf_utts", "repeat", "jobs"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')}: must be >= 1")
    if args.seconds <= 0.05:
        raise ConfigError("--seconds: must be > 0.05")

    tmp = Path(tempfile.mkdtemp(prefix="gmmspeech-bench-"))
    try:
        if args.datadir:
            data_dir = Path(args.datadir)
            data = DataDir.read(data_dir)
            source = str(data_dir)
        else:
            t0 = time.perf_counter()
            data_dir = write_synthetic_datadir(tmp, args.n_utts, args.seconds, seed=args.seed)
            data = DataDir.read(data_dir)
            source = f"synthetic: {args.n_utts} x ~{args.seconds:g} s noise-burst WAVs"
            print(f"wrote {source} in {time.perf_counter() - t0:.1f} s")
        sr = FeatureConfig().sample_rate
        ids = data.utt_ids
        pick = [
            ids[i] for i in np.linspace(0, len(ids) - 1, min(args.rtf_utts, len(ids))).astype(int)
        ]
        signals = [load_audio(data.audio_path(u), sample_rate=sr)[0] for u in pick]
        with blas_threads(1):  # every side alike, as extraction itself runs
            rtf = _time_rtf(signals, sr, args.repeat)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        result: dict[str, Any] = {
            "benchmark": "features",
            "data": source,
            "n_utterances": len(data),
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
            "cpu_count": os.cpu_count(),
            "load_average_1min": load,
            "rtf": rtf,
        }
        _print_rtf(rtf, args.repeat, load)
        if not args.skip_jobs:
            runs = {}
            for label, backend, n in (
                ("local", "local", 1),
                ("jobs1", "processes", 1),
                (f"jobs{args.jobs}", "processes", args.jobs),
            ):
                out = tmp / f"{label}.h5"
                runs[label] = _run_child(data_dir, out, backend, n)
                out.unlink()
            result["extract"] = runs
            result["speedup"] = _print_runs(runs, len(data), args.jobs)
        if args.json:
            write_figures(args.json, result)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0
