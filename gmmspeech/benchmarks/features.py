"""``gmmspeech bench features``: feature extraction speed, parallel speed-up, memory.

1. Real-time factor (seconds of audio per second of compute) of
   :func:`gmmspeech.extract_features` (MFCC + deltas + VAD + CMVN) against a bare
   ``librosa.feature.mfcc`` call with the same framing and filterbank, on the same signals,
   timed interleaved after a warm-up (librosa's lazy imports and numba caches).
2. Wall time of ``gmmspeech extract DATADIR OUT.h5 --jobs 1`` and ``--jobs N``, each run as
   a fresh command-line process (so both pay the same start-up), and the speed-up; with the
   peak resident memory of each process, and of runs on half of the data dir: memory
   should not grow with the number of utterances, and ``full - half`` is the cost of
   utterances without a run's fixed start-up and finishing, whose ratio between 1 and N
   jobs is the speed-up a large data dir approaches.

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
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path
from ..config import FeatureConfig
from ..datadir import DataDir
from ..errors import ConfigError

HELP = "feature extraction: real-time factor vs bare librosa MFCC, --jobs speed-up, memory"
EXAMPLE = "gmmspeech bench features --n-utts 500 --seconds 8 --jobs 2 --json feats.json"


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
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, metavar="PATH", help="write the figures as JSON")


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
    folder: Path, n_utts: int, seconds: float, sr: int = 16000, seed: int = 0
) -> Path:
    """Write ``n_utts`` synthetic WAV utterances and a data dir over them; returns the dir."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    wav, spk = {}, {}
    for i in range(n_utts):
        s = f"spk{i % 20:02d}"
        u = f"{s}-utt{i:05d}"
        p = folder / "audio" / s / f"{u}.wav"
        p.parent.mkdir(parents=True, exist_ok=True)
        length = seconds * rng.uniform(0.75, 1.25)
        sf.write(str(p), synthetic_signal(length, sr, rng), sr, subtype="PCM_16")
        wav[u], spk[u] = str(p), s
    data = folder / "data"
    DataDir(wav, spk).write(data)
    return data


def _time_rtf(signals: list[np.ndarray], sr: int, repeat: int) -> dict[str, Any]:
    import librosa

    from ..features import extract_features, mfcc

    cfg = FeatureConfig(sample_rate=sr)

    def bare(y: np.ndarray) -> Any:
        return librosa.feature.mfcc(
            y=y,
            sr=sr,
            n_mfcc=cfg.n_mfcc,
            n_fft=cfg.fft_size,
            hop_length=cfg.hop_length,
            win_length=cfg.win_length,
            window=cfg.window,
            center=False,
            n_mels=cfg.n_mels,
            fmin=cfg.fmin,
        )

    def ours(y: np.ndarray) -> Any:
        return extract_features(y, sr, cfg)

    def core(y: np.ndarray) -> Any:
        return mfcc(y, cfg)

    fns = {"librosa_mfcc": bare, "extract_features": ours, "mfcc_only": core}
    for fn in fns.values():  # warm-up: lazy imports, numba, FFT plans, filterbank cache
        for y in signals[:3]:
            fn(y)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for name, fn in fns.items():  # interleaved, so load changes hit all alike
            t0 = time.perf_counter()
            for y in signals:
                fn(y)
            times[name].append(time.perf_counter() - t0)
    audio = sum(y.size for y in signals) / sr
    best = {k: min(v) for k, v in times.items()}
    return {
        "audio_seconds": audio,
        "n_signals": len(signals),
        "seconds_best": best,
        "seconds_all": times,
        "rtf": {k: audio / v for k, v in best.items()},
        "overhead_vs_librosa": best["extract_features"] / best["librosa_mfcc"] - 1.0,
    }


# Runs the command line and reports its own peak memory on stderr: measured from outside,
# a child started by fork + exec from this (large) process would report this one's size.
_CLI_WITH_PEAK = (
    "import sys\n"
    "from gmmspeech.cli import main\n"
    "from gmmspeech.benchmarks.memory import max_rss_mib\n"
    "code = main(sys.argv[1:])\n"
    "print(f'peak_rss_mib={max_rss_mib():.2f}', file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def _run_cli(datadir: Path, out: Path, jobs: int) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (the process and its workers) and peak RSS (MiB, the
    process itself) of one ``gmmspeech extract`` run."""
    import resource

    cmd = [
        sys.executable,
        "-c",
        _CLI_WITH_PEAK,
        "extract",
        str(datadir),
        str(out),
        "--jobs",
        str(jobs),
        "--no-progress",
        "--log-level",
        "ERROR",
        "--max-failed",
        "1.0",
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    wall = time.perf_counter() - t0
    err = proc.stderr.decode(errors="replace")
    if proc.returncode != 0:
        raise ConfigError(f"`gmmspeech extract` failed ({proc.returncode}): {err.strip()[-500:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    peak = [float(x.split("=")[1]) for x in err.split() if x.startswith("peak_rss_mib=")]
    return wall, cpu, peak[-1] if peak else float("nan")


def run(args: argparse.Namespace) -> int:
    for name in ("n_utts", "rtf_utts", "repeat", "jobs"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')}: must be >= 1")
    if args.seconds <= 0.05:
        raise ConfigError("--seconds: must be > 0.05")
    from ..audio import load_audio

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
        from ..extraction_worker import _one_blas_thread

        with _one_blas_thread():  # both sides alike, as extraction itself runs
            rtf = _time_rtf(signals, sr, args.repeat)
        result: dict[str, Any] = {
            "benchmark": "features",
            "data": source,
            "n_utterances": len(data),
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
            "cpu_count": os.cpu_count(),
            "rtf": rtf,
        }
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        result["load_average_1min"] = load
        print(
            f"Real-time factor on {rtf['n_signals']} utterances ({rtf['audio_seconds']:.1f} s "
            f"of audio, best of {args.repeat}, after warm-up; load average {load:.2f} on "
            f"{os.cpu_count()} CPUs):"
        )
        for name in ("librosa_mfcc", "mfcc_only", "extract_features"):
            print(
                f"  {name:17s} {rtf['seconds_best'][name] * 1e3:9.1f} ms   "
                f"{rtf['rtf'][name]:9.0f}x real time"
            )
        print(
            f"  extract_features (MFCC + deltas + VAD + CMVN) vs bare librosa.feature.mfcc: "
            f"{100 * rtf['overhead_vs_librosa']:+.1f}%"
        )
        if not args.skip_jobs:
            half = data.subset(ids[: max(1, len(ids) // 2)])
            half_dir = tmp / "half"
            half.write(half_dir)
            runs = {}
            for label, dd, jobs in (
                ("jobs1", data_dir, 1),
                (f"jobs{args.jobs}", data_dir, args.jobs),
                ("jobs1_half", half_dir, 1),
                (f"jobs{args.jobs}_half", half_dir, args.jobs),
            ):
                out = tmp / f"{label}.h5"
                wall, cpu, rss = _run_cli(dd, out, jobs)
                runs[label] = {
                    "seconds": wall,
                    "cpu_seconds": cpu,
                    "peak_rss_mib": rss,
                    "store_bytes": out.stat().st_size,
                }
                out.unlink()
            n = f"jobs{args.jobs}"
            speedup = runs["jobs1"]["seconds"] / runs[n]["seconds"]
            # The second half of the utterances cost (full - half): what each extra
            # utterance costs, without the fixed start-up and finishing of a run.
            extra1 = runs["jobs1"]["seconds"] - runs["jobs1_half"]["seconds"]
            extra_n = runs[n]["seconds"] - runs[f"{n}_half"]["seconds"]
            marginal = extra1 / extra_n if extra_n > 0 else float("nan")
            fixed = {
                "jobs1": runs["jobs1_half"]["seconds"] - extra1,
                n: runs[f"{n}_half"]["seconds"] - extra_n,
            }
            result["extract"] = runs
            result["speedup"] = speedup
            result["marginal_speedup"] = marginal
            result["fixed_seconds"] = fixed
            print(f"`gmmspeech extract` of {len(data)} utterances (fresh processes):")
            for label, r in runs.items():
                print(
                    f"  {label:11s} {r['seconds']:7.2f} s wall {r['cpu_seconds']:7.2f} s CPU   "
                    f"peak RSS {r['peak_rss_mib']:6.1f} MiB   "
                    f"store {r['store_bytes'] / 2**20:7.1f} MiB"
                )
            print(f"  --jobs {args.jobs} is {speedup:.2f}x faster than --jobs 1")
            noisy = min(fixed.values()) < 0  # the halves differ, or the machine was busy
            print(
                f"  estimated fixed cost (start-up, finishing): {fixed['jobs1']:.2f} s with "
                f"--jobs 1, {fixed[n]:.2f} s with --jobs {args.jobs}; per extra utterance "
                f"--jobs {args.jobs} is {marginal:.2f}x faster (the speed-up of large data dirs)"
                + (
                    "; a negative estimate means the two halves of the data dir are unlike or "
                    "the timings are noisy: rerun, or use a synthetic data dir"
                    if noisy
                    else ""
                )
            )
            print(
                f"  memory: {runs['jobs1_half']['peak_rss_mib']:.1f} MiB for {len(half)} "
                f"utterances vs {runs['jobs1']['peak_rss_mib']:.1f} MiB for {len(data)}"
            )
        if args.json:
            with atomic_path(args.json) as tmp:
                tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
            print(f"  figures written to {args.json}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0
