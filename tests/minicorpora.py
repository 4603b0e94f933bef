"""Generated miniatures of standard corpora: the exact folder layout, file naming and list
formats of VoxCeleb1, LibriSpeech, TIMIT and a Kaldi-data-dir corpus, with a second or two
of synthetic "voice" per file (noise through speaker-specific resonances).

Each ``make_*`` returns the root folder and what an oracle needs (the generated protocol),
computed here from the generated file names, never from gmmspeech.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import lfilter

SR = 16000


def voice(spk: int, seed: int, seconds: float = 1.5, *, stride: int = 7919) -> np.ndarray:
    """A speaker-specific two-resonance filter over noise, with quiet edges for the VAD.

    The noise is seeded by ``stride * spk + seed``; the pipeline tests use ``stride=1000``
    (their corpora and expected figures were built with it)."""
    rng = np.random.default_rng(stride * spk + seed)
    n = int(seconds * SR)
    x = rng.standard_normal(n)
    for f in (300 + 170 * spk, 1400 + 230 * spk):
        r, w = 0.97, 2 * np.pi * f / SR
        x = lfilter([1.0], [1.0, -2 * r * np.cos(w), r * r], x)
    x = 0.1 * x / np.abs(x).max()
    env = np.ones(n)
    env[: n // 8] = 1e-3
    env[-n // 8 :] = 1e-3
    return (x * env).astype(np.float32)


def write_sphere(path: Path, x: np.ndarray) -> None:
    """A NIST SPHERE file as on the TIMIT CD: a 1024-byte ASCII header, then 16-bit PCM
    little-endian samples (``sample_byte_format 01``), uncompressed."""
    pcm = np.clip(np.round(x * 32767), -32768, 32767).astype("<i2")
    fields = [
        "database_id -s5 TIMIT",
        "database_version -s3 1.0",
        "utterance_id -s8 aks0_sa1",
        "channel_count -i 1",
        f"sample_count -i {pcm.size}",
        f"sample_rate -i {SR}",
        f"sample_min -i {int(pcm.min())}",
        f"sample_max -i {int(pcm.max())}",
        "sample_n_bytes -i 2",
        "sample_byte_format -s2 01",
        "sample_sig_bits -i 16",
        "end_head",
    ]
    head = ("NIST_1A\n   1024\n" + "\n".join(fields) + "\n").encode("ascii")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(head + b" " * (1024 - len(head)) + pcm.tobytes())


def _wav(path: Path, x: np.ndarray, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x, SR, format=fmt)


# ------------------------------------------------------------------------- VoxCeleb1
def make_voxceleb1(root: Path) -> tuple[Path, list[tuple[int, str, str]]]:
    """``dev/wav`` (6 speakers) and ``test/wav`` (4 speakers, 2 videos x 2 utterances) as
    unzipped from vox1_dev_wav.zip / vox1_test_wav.zip, and ``veri_test2.txt``: the first
    utterance of each test speaker is a model against every other test utterance (so, as in
    the real list, model utterances are test utterances of other trials)."""
    videos = ["x6uYqmx31kE", "8jEAjG6SegY", "Zx-3_aB9kQe", "_p0Lq9-Wz1A"]
    for s in range(6):
        for v in range(2):
            for u in range(2):
                rel = f"id100{s + 1:02d}/{videos[v]}/{u + 1:05d}.wav"
                _wav(root / "dev/wav" / rel, voice(s, 10 * v + u))
    test: list[str] = []
    for s in range(4):
        for v in range(2):
            for u in range(2):
                rel = f"id102{70 + s}/{videos[(s + v) % 4]}/{u + 1:05d}.wav"
                _wav(root / "test/wav" / rel, voice(10 + s, 10 * v + u))
                test.append(rel)
    (root / "dev/wav/readme.txt").write_text("not audio\n")
    models = sorted({next(t for t in test if t.startswith(r[:7])) for r in test})
    trials = [(int(m[:7] == t[:7]), m, t) for m in models for t in test if t != m]
    (root / "veri_test2.txt").write_text("".join(f"{y} {m} {t}\n" for y, m, t in trials))
    return root, trials


# ----------------------------------------------------------------------- LibriSpeech
def make_librispeech(root: Path) -> tuple[Path, dict[str, list[str]]]:
    """``LibriSpeech/train-clean-100`` (6 speakers) and ``LibriSpeech/test-clean`` (4
    speakers x 2 chapters x 4 utterances), each chapter with its ``.trans.txt``. Returns the
    root and, per test speaker, its utterance ids."""
    ls = root / "LibriSpeech"
    test: dict[str, list[str]] = {}
    for subset, spks, n_ch, n_utt, base in (
        ("train-clean-100", [19, 26, 27, 32, 39, 40], 1, 3, 0),
        ("test-clean", [121, 237, 260, 908], 2, 4, 20),
    ):
        for i, spk in enumerate(spks):
            for c in range(n_ch):
                chapter = 1000 * spk + 17 * c + 5
                folder = ls / subset / str(spk) / str(chapter)
                lines = []
                for u in range(n_utt):
                    uid = f"{spk}-{chapter}-{u:04d}"
                    _wav(folder / f"{uid}.flac", voice(base + i, 10 * c + u), "FLAC")
                    lines.append(f"{uid.upper()} SOME WORDS\n")
                    if subset == "test-clean":
                        test.setdefault(str(spk), []).append(uid)
                (folder / f"{spk}-{chapter}.trans.txt").write_text("".join(lines))
    return root, {k: sorted(v) for k, v in test.items()}


# ----------------------------------------------------------------------------- TIMIT
TIMIT_SENTENCES = ["SA1", "SA2", "SI1027", "SI1657", "SI648", "SX127", "SX217", "SX307"]
TIMIT_SENTENCES += ["SX37", "SX397"]


def make_timit(root: Path) -> tuple[Path, dict[str, list[str]]]:
    """``TRAIN`` and ``TEST`` in the NIST layout ``DR*/<spk>/<utt>.WAV`` (SPHERE headers,
    upper-case names), with the ``.PHN``/``.TXT``/``.WRD`` files beside each sentence.
    TEST speakers have TIMIT's 10 sentences (2 SA, 3 SI, 5 SX). Returns the root and the
    TEST speakers' sentence names."""
    test: dict[str, list[str]] = {}
    for part, spks, base in (
        ("TRAIN", [("DR1", "FCJF0"), ("DR1", "MDAC0"), ("DR2", "FAEM0"), ("DR3", "MABC0")], 0),
        ("TEST", [("DR1", "FAKS0"), ("DR2", "MBJK0"), ("DR4", "FCAL1"), ("DR7", "MRJO0")], 20),
    ):
        for i, (dr, spk) in enumerate(spks):
            sentences = TIMIT_SENTENCES if part == "TEST" else TIMIT_SENTENCES[::3]
            for j, sent in enumerate(sentences):
                folder = root / part / dr / spk
                write_sphere(folder / f"{sent}.WAV", voice(base + i, j, seconds=1.2))
                for ext in ("PHN", "TXT", "WRD"):
                    (folder / f"{sent}.{ext}").write_text("0 100 h#\n")
                if part == "TEST":
                    test.setdefault(spk, []).append(sent)
    return root, test


# ------------------------------------------------------------------ your own corpus
def make_own_corpus(root: Path) -> tuple[Path, list[tuple[str, str, bool]]]:
    """Kaldi data dirs ``train`` and ``test`` whose ``wav.scp`` paths are relative to the
    corpus root, ``lists/enroll.txt`` with ``<model> <utt>`` lines (models named apart
    from speakers, enrolled on three sessions each) and ``lists/trials.txt``."""
    sets = {
        "train": (["bob", "carl", "dana", "erin", "fay"], 0),
        "test": (["ann", "ian", "joe"], 20),
    }
    for name, (spks, base) in sets.items():
        wav, u2s = [], []
        for i, spk in enumerate(spks):
            for n in range(6 if name == "test" else 3):
                rel = f"audio/{spk}/{spk}_{n}.wav"
                _wav(root / rel, voice(base + i, n))
                wav.append(f"{spk}_{n} {rel}\n")
                u2s.append(f"{spk}_{n} {spk}\n")
        (root / name).mkdir(parents=True, exist_ok=True)
        (root / name / "wav.scp").write_text("".join(sorted(wav)))
        (root / name / "utt2spk").write_text("".join(sorted(u2s)))
    spks = sets["test"][0]
    enroll = [f"model_{s.upper()} {s}_{n}\n" for s in spks for n in range(3)]
    trials = [
        (f"model_{m.upper()}", f"{s}_{n}", m == s) for m in spks for s in spks for n in (3, 4, 5)
    ]
    (root / "lists").mkdir()
    (root / "lists/enroll.txt").write_text("".join(enroll))
    lines = [f"{m} {t} {'target' if y else 'nontarget'}\n" for m, t, y in trials]
    (root / "lists/trials.txt").write_text("".join(lines))
    return root, trials
