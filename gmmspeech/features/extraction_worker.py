"""What an extraction task runs on an engine worker: features of (utt_id, audio path) pairs.

Kept apart from :mod:`gmmspeech.features.extraction` (the job: work list, failures, lock, store) so
that a worker imports only what computing features needs.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..config.sections import FeatureConfig
from ..errors import GmmSpeechError
from .audio import audio_length, iter_audio_blocks, load_audio
from .blockfeatures import extract_features_blockwise, spill_features_blockwise
from .frontend import check_window, extract_features_with_info
from .spill import SpilledFrames

log = logging.getLogger(__name__)

#: Files longer than this (seconds, from the header) are read and framed in blocks: the
#: whole-signal path holds about 30 MB per minute of audio at its peak, the blockwise one
#: a few blocks (its features go to a spill file when the caller gives a folder for it).
#: Shorter files keep the whole-signal path, which reads the audio once, not twice.
BLOCKWISE_SECONDS = 120.0
#: Frames read from the file per block on the blockwise path (4 s at 16 kHz): the
#: transients of framing and FFTs a block (about 10 MB here) grow with it.
BLOCK_FRAMES = 1 << 16


class UttResult(NamedTuple):
    """The outcome of one utterance: features, or ``None`` and an error message."""

    utt_id: str
    #: (n_kept, n_features) float32; spilled to a file for a long file given a spill folder
    features: np.ndarray | SpilledFrames | None
    n_frames_total: int
    duration: float  #: seconds of audio
    orig_rate: int  #: the file's sample rate
    error: str


def keep_freed_memory() -> None:
    """Let glibc's malloc keep freed memory for reuse rather than give it back at once.

    Feature extraction allocates and frees tens of MB per minute of audio (signal copies,
    FFT blocks, feature matrices). With glibc's defaults most of it is returned to the
    kernel on ``free`` and page-faulted in again for the next utterance of another length:
    on one-minute utterances that was 30 % of the run time. Peak memory is unchanged;
    memory freed after the peak is kept (up to 256 MB) for the next utterance. Called by
    processes that extract or run whole experiments (the ``extract`` and ``run`` commands,
    and every extraction task); a no-op without glibc.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 32 * 2**20)  # blocks below 32 MB from the heap, reused
    mallopt(m_trim_threshold, 256 * 2**20)  # keep up to 256 MB free at the heap's top


def release_freed_memory() -> None:
    """Give the memory malloc keeps for reuse (:func:`keep_freed_memory`) back to the kernel
    now (``malloc_trim``), so that the resident set is what the process still uses: a block
    of work measured from here shows what it allocates, not what earlier work freed. A
    no-op without glibc."""
    if not sys.platform.startswith("linux"):
        return
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        return
    trim(0)


def extract_one(
    utt_id: str, path: str, cfg: FeatureConfig, spill_dir: str | None = None
) -> UttResult:
    """Features of one audio file; a per-utterance failure is returned, not raised.

    A file longer than :data:`BLOCKWISE_SECONDS` is read in blocks; with ``spill_dir`` its
    features are written to a spill file there (a :class:`~gmmspeech.features.spill.SpilledFrames`
    the caller stores and removes), otherwise returned in memory.
    """
    try:
        length = audio_length(path)
        if length is not None and length[0] > BLOCKWISE_SECONDS * length[1]:
            orig_rate = length[1]
            blocks = iter_audio_blocks(path, cfg.sample_rate, BLOCK_FRAMES)
            feats: np.ndarray | SpilledFrames
            if spill_dir is None:
                feats, n_total = extract_features_blockwise(blocks, cfg)
            else:
                fd, spill = tempfile.mkstemp(prefix=".part-spill-", suffix=".f32", dir=spill_dir)
                os.close(fd)
                feats, n_total = spill_features_blockwise(blocks, cfg, spill)
            duration = length[0] / orig_rate
            return UttResult(utt_id, feats, n_total, duration, orig_rate, "")
        signal, orig_rate = load_audio(path)
        duration = signal.shape[0] / orig_rate
        # resampled (once) inside; the parent counts and logs the rates
        feats, n_total = extract_features_with_info(signal, orig_rate, cfg)
        return UttResult(utt_id, feats, n_total, duration, orig_rate, "")
    except GmmSpeechError as exc:
        msg = str(exc)
        if not msg.startswith(path) and not msg.startswith(str(Path(path))):
            msg = f"{path}: {msg}"
        return UttResult(utt_id, None, 0, 0.0, 0, msg)
    except Exception as exc:  # a bug or an unexpected library error: count it, keep going
        log.debug("utterance %s failed", utt_id, exc_info=True)
        return UttResult(utt_id, None, 0, 0.0, 0, f"{path}: unexpected {type(exc).__name__}: {exc}")


def check_config(cfg: FeatureConfig, _: object = None) -> None:
    """Engine task: fail with a ConfigError if librosa does not know the window.

    Run where the features are computed, so this process need not load librosa's signal
    stack (about 150 MiB and a second) just to check a name.
    """
    check_window(cfg)


def extract_batch(
    batch: Sequence[tuple[str, str, str | None]], cfg: FeatureConfig
) -> list[UttResult]:
    """Engine task: features of a batch of ``(utt_id, audio path, spill folder or None)``."""
    keep_freed_memory()
    return [extract_one(u, p, cfg, d) for u, p, d in batch]


__all__ = [
    "UttResult",
    "check_config",
    "extract_batch",
    "extract_one",
    "keep_freed_memory",
    "release_freed_memory",
]
