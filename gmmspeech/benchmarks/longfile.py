"""``gmmspeech bench longfile``: peak memory of extracting one long file.

A synthetic WAV of ``--minutes`` minutes (speech-like noise bursts, see
:func:`~gmmspeech.benchmarks.features.synthetic_signal`) is written at each ``--rates`` rate
and extracted with the default feature config (16 kHz, so other rates are resampled) in a
fresh process, as ``gmmspeech extract`` does: in-process, then with ``--jobs N`` worker
processes. Each run reports the peak resident memory of the extracting process (and of
each worker), the wall time and the frames stored. ``/usr/bin/time -f '%M KB' gmmspeech
extract DATA OUT.h5`` on the same data dir reports the same in-process peak.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from ..corpus.datadir import DataDir
from ..errors import ConfigError
from ..storage.atomic import atomic_path
from .features import _run_child, synthetic_signal

HELP = "peak memory of extracting one long file (in-process and with --jobs N)"
EXAMPLE = "gmmspeech bench longfile --minutes 60 --rates 16000 8000 --jobs 2"

_CHUNK_SECONDS = 60.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--minutes", type=float, default=60.0, help="file length (default 60)")
    p.add_argument(
        "--rates",
        type=int,
        nargs="+",
        default=[16000, 8000],
        help="sample rates of the files (default 16000 8000)",
    )
    p.add_argument("--jobs", type=int, default=2, help="worker processes (0: in-process only)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, metavar="PATH", help="write the figures as JSON")


def write_long_wav(path: Path, minutes: float, sr: int, seed: int) -> None:
    """A 16-bit WAV of ``minutes`` minutes of synthetic speech, written a minute at a time."""
    rng = np.random.default_rng(seed)
    left = int(round(minutes * 60.0 * sr))
    with sf.SoundFile(str(path), "w", samplerate=sr, channels=1, subtype="PCM_16") as f:
        while left > 0:
            n = min(left, int(_CHUNK_SECONDS * sr))
            f.write(synthetic_signal(n / sr, sr, rng)[:n])
            left -= n


def run(args: argparse.Namespace) -> int:
    if args.minutes <= 0:
        raise ConfigError(f"--minutes: must be > 0, got {args.minutes}")
    if args.jobs < 0:
        raise ConfigError(f"--jobs: must be >= 0, got {args.jobs}")
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="gmmspeech-bench-longfile-") as tmp:
        for sr in args.rates:
            folder = Path(tmp) / f"{sr}"
            folder.mkdir()
            wav = folder / "long.wav"
            write_long_wav(wav, args.minutes, sr, args.seed)
            data = folder / "data"
            DataDir({"long": str(wav)}, {"long": "spk"}).write(data)
            runs = [("local", 1)] + ([("processes", args.jobs)] if args.jobs else [])
            for backend, n in runs:
                out = folder / f"{backend}.h5"
                got = _run_child(data, out, backend, n)
                row = {
                    "rate": sr,
                    "minutes": args.minutes,
                    "backend": backend if backend == "local" else f"--jobs {n}",
                    "peak_rss_mib": got["peak_rss_mib"],
                    "worker_peak_rss_mib": max(got["worker_peak_rss_mib"].values(), default=0.0),
                    "seconds": got["seconds"],
                    "store_bytes": got["store_bytes"],
                }
                results.append(row)
                workers = (
                    f", largest worker {row['worker_peak_rss_mib']:.0f} MiB"
                    if backend != "local"
                    else ""
                )
                print(
                    f"{args.minutes:g} min at {sr} Hz, {row['backend']}: peak RSS "
                    f"{row['peak_rss_mib']:.0f} MiB{workers}; {row['seconds']:.1f} s; store "
                    f"{row['store_bytes'] / 2**20:.1f} MiB",
                    flush=True,
                )
    if args.json:
        with atomic_path(args.json) as tmp_json:
            doc = {"benchmark": "longfile", "runs": results}
            Path(tmp_json).write_text(json.dumps(doc, indent=2) + "\n")
    return 0
