"""Synthetic audio and data directories for the feature / data / store tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000


def sine(freq: float, seconds: float, amp: float = 0.5, sr: int = SR) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def noise(seconds: float, amp: float, seed: int, sr: int = SR) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (amp * rng.standard_normal(int(round(seconds * sr)))).astype(np.float32)


def bursts(
    layout: list[tuple[str, float]],
    seed: int = 0,
    sr: int = SR,
    loud: float = 0.2,
    quiet: float = 1e-3,
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Concatenate ("speech"|"silence", seconds) segments of loud / very quiet noise.

    Returns the signal and the sample ranges of the "speech" segments.
    """
    parts = []
    spans = []
    pos = 0
    for i, (kind, sec) in enumerate(layout):
        seg = noise(sec, loud if kind == "speech" else quiet, seed + i, sr)
        if kind == "speech":
            spans.append((pos, pos + seg.size))
        parts.append(seg)
        pos += seg.size
    return np.concatenate(parts), spans


def utterance(seed: int, seconds: float = 0.6, sr: int = SR) -> np.ndarray:
    """A short speech-like clip: silence, a loud noise burst with a formant-ish tone, silence."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    x = 1e-3 * rng.standard_normal(n)
    a, b = n // 5, 4 * n // 5
    t = np.arange(b - a) / sr
    f0 = 120 + 10 * (seed % 7)
    x[a:b] += 0.2 * rng.standard_normal(b - a) * (0.5 + 0.5 * np.sin(2 * np.pi * f0 * t))
    return x.astype(np.float32)


def write_wav(path: Path, x: np.ndarray, sr: int = SR, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr, subtype=subtype)
    return path


def make_datadir(
    root: Path, n_utts: int = 12, n_spk: int = 3, seconds: float = 0.6, sr: int = SR
) -> Path:
    """A data dir of ``n_utts`` synthetic WAV clips over ``n_spk`` speakers (paths with spaces).

    Returns the data dir folder (``root / "data"``).
    """
    audio = root / "audio dir"
    wav = {}
    utt2spk = {}
    for i in range(n_utts):
        spk = f"spk{i % n_spk}"
        utt = f"{spk}-utt{i:04d}"
        p = write_wav(audio / spk / f"clip {i:04d}.wav", utterance(i, seconds, sr), sr)
        wav[utt] = str(p)
        utt2spk[utt] = spk
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    keys = sorted(wav)
    (data / "wav.scp").write_text("".join(f"{u} {wav[u]}\n" for u in keys))
    (data / "utt2spk").write_text("".join(f"{u} {utt2spk[u]}\n" for u in keys))
    return data
