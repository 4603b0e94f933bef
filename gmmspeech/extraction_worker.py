"""What an extraction worker runs: features of (utt_id, audio path) pairs, as arrays.

Kept apart from :mod:`gmmspeech.extraction` (the job: HDF5, locks, part files) so that a
worker process imports only what computing features needs (numpy, soundfile, scipy.fft);
a spawned worker is then ready in about 0.2 s.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .config import FeatureConfig
from .errors import GmmSpeechError

log = logging.getLogger(__name__)

_WORKER_CONFIG: FeatureConfig | None = None
_THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
)


def keep_freed_memory() -> None:
    """Let glibc's malloc keep freed memory for reuse rather than give it back at once.

    Feature extraction allocates and frees tens of MB per minute of audio (signal copies,
    FFT blocks, feature matrices). With glibc's defaults most of it is returned to the
    kernel on ``free`` and page-faulted in again for the next utterance of another length:
    on one-minute utterances that was 30 % of the run time (system time 1.18 s of 3.77 s
    for 100 utterances; 0.15 s after this call). Peak memory is unchanged; memory freed
    after the peak is kept (up to 256 MB) for the next utterance. Called by processes that
    extract or run whole experiments (the ``extract`` and ``run`` commands, and extraction
    workers); a no-op without glibc.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 32 * 2**20)  # blocks below 32 MB from the heap, reused
    mallopt(m_trim_threshold, 256 * 2**20)  # keep up to 256 MB free at the heap's top


def _init_worker(cfg_dict: dict[str, Any]) -> None:
    """Worker start-up: one BLAS/OpenMP thread each (the pool supplies the parallelism)."""
    global _WORKER_CONFIG
    for k in _THREAD_VARS:  # before a BLAS is first loaded in this process
        os.environ[k] = "1"
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1)  # numpy's BLAS is already loaded
    except ImportError:  # pragma: no cover - optional
        pass
    keep_freed_memory()
    _WORKER_CONFIG = FeatureConfig(**cfg_dict)


_Result = tuple[str, "np.ndarray | None", int, float, int, str]


def _extract_one(utt_id: str, path: str, cfg: FeatureConfig) -> _Result:
    """(utt_id, features or None, n_frames_total, duration, original rate, error message)."""
    from .audio import load_audio, resample
    from .features import extract_features_with_info

    try:
        signal, orig_rate = load_audio(path)
        duration = signal.shape[0] / orig_rate
        if orig_rate != cfg.sample_rate:  # counted and logged once by the parent
            signal = resample(signal, orig_rate, cfg.sample_rate)
        feats, n_total = extract_features_with_info(signal, cfg.sample_rate, cfg)
        return utt_id, feats, n_total, duration, orig_rate, ""
    except GmmSpeechError as exc:
        msg = str(exc)
        if not msg.startswith(path) and not msg.startswith(str(Path(path))):
            msg = f"{path}: {msg}"
        return utt_id, None, 0, 0.0, 0, msg
    except Exception as exc:  # a bug or an unexpected library error: count it, keep going
        log.debug("utterance %s failed", utt_id, exc_info=True)
        return utt_id, None, 0, 0.0, 0, f"{path}: unexpected {type(exc).__name__}: {exc}"


def _extract_batch(batch: Sequence[tuple[str, str]]) -> list[_Result]:
    cfg = _WORKER_CONFIG
    assert cfg is not None, "worker not initialised"
    return [_extract_one(u, p, cfg) for u, p in batch]


def _one_blas_thread() -> contextlib.AbstractContextManager[None]:
    """One BLAS thread here: feature matrices are small (40 x 257 filterbank products)."""
    from .threads import blas_threads

    return blas_threads(1)


def _extract_batch_on_engine(
    batch: Sequence[tuple[str, str]], cfg_dict: dict[str, Any]
) -> list[_Result]:
    """Engine map task: features of a batch of (utt_id, path)."""
    keep_freed_memory()
    cfg = FeatureConfig(**cfg_dict)
    return [_extract_one(u, p, cfg) for u, p in batch]
