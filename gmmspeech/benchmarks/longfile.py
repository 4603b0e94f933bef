"""``gmmspeech bench longfile``: peak memory of extracting one long file.

A synthetic WAV of ``--minutes`` minutes (speech-like noise bursts, see
:func:`~gmmspeech.benchmarks.features.synthetic_signal`) is written at each ``--rates`` rate
and extracted with the default feature config (16 kHz, so other rates are resampled) in a
fresh process, as ``gmmspeech extract`` does: in-process, then with ``--jobs N`` worker
processes. Each run reports the peak resident memory of the extracting process (and of
each worker), the wall time and the frames stored. ``/usr/bin/time -f '%M KB' gmmspeech
extract DATA OUT.h5`` on the same data dir reports the same in-process peak.

A ``--baseline-seconds`` file (10 s by default) is extracted the same way first, and the
growth of the peak from it to the long file is printed against the target: memory stays
flat in the file's length, whatever librosa's import floor is.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from ..corpus.datadir import DataDir
from ..errors import ConfigError
from .common import add_output_arguments, write_figures
from .features import _run_child, synthetic_signal

HELP = "peak memory of extracting one long file (in-process and with --jobs N)"
EXAMPLE = "gmmspeech bench longfile --minutes 60 --rates 16000 8000 --jobs 2"

_CHUNK_SECONDS = 60.0
#: Peak RSS growth allowed from the baseline file to the long one, in MB (10^6 bytes).
GROWTH_TARGET_MB = 25.0


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
    p.add_argument(
        "--baseline-seconds",
        type=float,
        default=10.0,
        help="length of the short file the growth is measured from (default 10; 0: none)",
    )
    add_output_arguments(p)


def write_long_wav(path: Path, minutes: float, sr: int, seed: int) -> None:
    """A 16-bit WAV of ``minutes`` minutes of synthetic speech, written a minute at a time."""
    rng = np.random.default_rng(seed)
    left = int(round(minutes * 60.0 * sr))
    with sf.SoundFile(str(path), "w", samplerate=sr, channels=1, subtype="PCM_16") as f:
        while left > 0:
            n = min(left, int(_CHUNK_SECONDS * sr))
            f.write(synthetic_signal(n / sr, sr, rng)[:n])
            left -= n


def _extract(
    folder: Path, seconds: float, sr: int, seed: int, backend: str, n: int
) -> dict[str, Any]:
    """One ``extract`` run of a synthetic file of ``seconds`` in a fresh process."""
    wav = folder / f"{seconds:g}s.wav"
    data = folder / f"data-{seconds:g}s"
    if not wav.exists():
        write_long_wav(wav, seconds / 60.0, sr, seed)
        DataDir({"long": str(wav)}, {"long": "spk"}).write(data)
    out = folder / f"{backend}-{seconds:g}s.h5"
    got = _run_child(data, out, backend, n)
    out.unlink()
    return got


def run(args: argparse.Namespace) -> int:
    if args.minutes <= 0:
        raise ConfigError(f"--minutes: must be > 0, got {args.minutes}")
    if args.jobs < 0:
        raise ConfigError(f"--jobs: must be >= 0, got {args.jobs}")
    if args.baseline_seconds < 0:
        raise ConfigError(f"--baseline-seconds: must be >= 0, got {args.baseline_seconds}")
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="gmmspeech-bench-longfile-") as tmp:
        for sr in args.rates:
            folder = Path(tmp) / f"{sr}"
            folder.mkdir()
            runs = [("local", 1)] + ([("processes", args.jobs)] if args.jobs else [])
            for backend, n in runs:
                label = backend if backend == "local" else f"--jobs {n}"
                base = None
                if args.baseline_seconds:
                    base = _extract(folder, args.baseline_seconds, sr, args.seed, backend, n)
                got = _extract(folder, args.minutes * 60.0, sr, args.seed, backend, n)
                row: dict[str, Any] = {
                    "rate": sr,
                    "minutes": args.minutes,
                    "backend": label,
                    "peak_rss_mib": got["peak_rss_mib"],
                    "worker_peak_rss_mib": max(got["worker_peak_rss_mib"].values(), default=0.0),
                    "seconds": got["seconds"],
                    "store_bytes": got["store_bytes"],
                }
                workers = (
                    f", largest worker {row['worker_peak_rss_mib']:.0f} MiB"
                    if backend != "local"
                    else ""
                )
                print(
                    f"{args.minutes:g} min at {sr} Hz, {label}: peak RSS "
                    f"{row['peak_rss_mib']:.0f} MiB{workers}; {row['seconds']:.1f} s; store "
                    f"{row['store_bytes'] / 2**20:.1f} MiB",
                    flush=True,
                )
                if base is not None:
                    row.update(_growth(base, got, backend != "local"))
                    print(
                        f"  peak RSS growth from {args.baseline_seconds:g} s to "
                        f"{args.minutes:g} min at {sr} Hz, {label}: "
                        f"{row['peak_rss_growth_mb']:+.1f} MB (baseline "
                        f"{row['baseline_peak_rss_mib']:.0f} MiB; target <= "
                        f"{GROWTH_TARGET_MB:g} MB: "
                        f"{'met' if row['peak_rss_growth_mb'] <= GROWTH_TARGET_MB else 'MISSED'})",
                        flush=True,
                    )
                results.append(row)
    if args.json:
        write_figures(args.json, {"benchmark": "longfile", "runs": results})
    return 0


def _growth(base: dict[str, Any], got: dict[str, Any], workers: bool) -> dict[str, float]:
    """Peak RSS growth (MB) from the baseline run to the long one: of the extracting process
    (the largest worker with ``--jobs``, the parent in-process)."""
    if workers:
        before = max(base["worker_peak_rss_mib"].values(), default=0.0)
        after = max(got["worker_peak_rss_mib"].values(), default=0.0)
    else:
        before, after = base["peak_rss_mib"], got["peak_rss_mib"]
    return {
        "baseline_peak_rss_mib": before,
        "peak_rss_growth_mb": (after - before) * 2**20 / 1e6,
    }
