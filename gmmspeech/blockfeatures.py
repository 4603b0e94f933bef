"""Features of a long signal that arrives in blocks, with memory bounded by the frames.

A 60-minute signal at 16 kHz is 230 MB of float32 samples; its 40 log-mel values per frame
are a quarter of that. :func:`extract_features_blockwise` keeps only a few thousand samples
of the signal at a time and computes, frame by frame, exactly what
:func:`gmmspeech.features.extract_features_with_info` computes on the whole signal:

- pre-emphasis carries the last sample of each block into the next;
- librosa's centred framing pads ``n_fft // 2`` zeros at the true start and end of the signal
  only; in between, each frame's samples are cut from the running buffer, so the frames are
  the whole-signal frames and ``librosa.feature.melspectrogram(center=False)`` of them gives
  the same spectra;
- ``power_to_db``'s ``top_db`` clip needs the loudest value of the whole file, so the log-mel
  frames are kept (unclipped) and clipped at the end, then transformed by the DCT;
- deltas, the VAD and normalisation then run on the (small) whole-utterance arrays.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np

from .config import FeatureConfig
from .errors import AudioError, DataError
from .features import (
    MIN_PEAK_TO_PEAK,
    features_from_cepstra,
    frame_energy_db,
    frame_log_energy,
    frame_view,
    n_frames_of,
    pre_emphasis,
)
from .melspec import log_mel_cepstra, mel_power, power_to_db


class _Framer:
    """Running buffers of raw and pre-emphasised samples, cut into librosa's frames."""

    def __init__(self, cfg: FeatureConfig, n_frames_hint: int) -> None:
        self.cfg = cfg
        # the blocks are framed without librosa's padding: this object pads the true ends
        self.flat = dataclasses.replace(cfg, center=False)
        self.pad = cfg.fft_size // 2 if cfg.center else 0
        self.raw = np.zeros(self.pad, dtype=np.float32)
        self.emph = np.zeros(self.pad, dtype=np.float32)
        self.prev: float | None = None
        # log-mel frames before the top_db clip, in one array sized from the expected length
        # (large arrays are mapped, not taken from the heap: freed, their memory is returned)
        self.logmel = np.empty((cfg.n_mels, max(n_frames_hint, 1)), dtype=np.float32)
        self.n_frames = 0
        self.energy_db: list[np.ndarray] = []
        self.log_energy: list[np.ndarray] = []

    def push(self, block: np.ndarray) -> None:
        emph = pre_emphasis(block, self.cfg.pre_emphasis, self.prev)
        self.prev = float(block[-1])
        self.raw = np.concatenate([self.raw, block])
        self.emph = np.concatenate([self.emph, emph])
        self._frames()

    def close(self) -> None:
        tail = np.zeros(self.pad, dtype=np.float32)
        self.raw = np.concatenate([self.raw, tail])
        self.emph = np.concatenate([self.emph, tail])
        self._frames()

    def _frames(self) -> None:
        n_fft, hop = self.cfg.fft_size, self.cfg.hop_length
        if self.raw.shape[0] < n_fft:
            return
        n = 1 + (self.raw.shape[0] - n_fft) // hop
        end = (n - 1) * hop + n_fft
        mel = mel_power(self.emph[:end], self.flat, center=False)
        self._keep(power_to_db(mel, None))
        raw = self.raw[:end]
        self.energy_db.append(frame_energy_db(raw, self.flat))
        if self.cfg.energy == "log_energy":
            self.log_energy.append(frame_log_energy(frame_view(raw, self.flat)))
        self.raw = self.raw[n * hop :].copy()
        self.emph = self.emph[n * hop :].copy()

    def _keep(self, logmel: np.ndarray) -> None:
        end = self.n_frames + logmel.shape[1]
        if end > self.logmel.shape[1]:  # longer than its header said
            grown = np.empty((self.logmel.shape[0], 2 * end), dtype=np.float32)
            grown[:, : self.n_frames] = self.logmel[:, : self.n_frames]
            self.logmel = grown
        self.logmel[:, self.n_frames : end] = logmel
        self.n_frames = end

    def cepstra(self) -> np.ndarray:
        """Static cepstra (n_mfcc, n_frames) float32, with the whole-signal top_db clip."""
        top = self.cfg.top_db
        logmel = self.logmel[:, : self.n_frames]
        self.logmel = np.empty((0, 0), dtype=np.float32)
        if top is not None:
            # as power_to_db: the float32 maximum minus top_db, in float32
            np.maximum(logmel, logmel.max() - top, out=logmel)
        static = np.empty((self.cfg.n_mfcc, self.n_frames), dtype=np.float32)
        step = 1 << 14
        for at in range(0, self.n_frames, step):
            static[:, at : at + step] = log_mel_cepstra(logmel[:, at : at + step], self.cfg)
        del logmel
        if self.cfg.energy == "log_energy":
            static[0] = np.concatenate(self.log_energy)
        return static


def extract_features_blockwise(
    blocks: Iterable[np.ndarray], config: FeatureConfig, n_samples_hint: int = 0
) -> tuple[np.ndarray, int]:
    """:func:`~gmmspeech.features.extract_features_with_info` of a signal given in blocks.

    Parameters
    ----------
    blocks : iterable of ndarray, shape (n_i,)
        Consecutive mono blocks at ``config.sample_rate`` (any sizes; see
        :func:`gmmspeech.audio.iter_audio_blocks`).
    config : FeatureConfig
    n_samples_hint : int
        The expected number of samples (e.g. from the file's header), to size the log-mel
        array once; a longer signal is still handled.

    Returns
    -------
    features : ndarray, shape (n_kept, config.n_features), float32
        The whole-signal features, to float32 rounding (the FFTs of a frame do not depend
        on the block it falls in).
    n_frames_total : int

    Raises
    ------
    DataError
        A block is not a 1-D real array or holds NaN/infinite samples.
    AudioError
        As :func:`~gmmspeech.features.extract_features`.
    """
    cfg = config
    framer = _Framer(cfg, n_frames_of(n_samples_hint, cfg))
    n_samples, lo, hi, first = 0, np.inf, -np.inf, 0.0
    for block in blocks:
        y = np.ascontiguousarray(block, dtype=np.float32)
        if y.ndim != 1:
            raise DataError(f"signal block: expected a 1-D array, got shape {y.shape}")
        if not y.size:
            continue
        if not np.isfinite(y).all():
            at = n_samples + int(np.argmax(~np.isfinite(y)))
            raise DataError(f"signal: NaN or infinite samples (first at sample {at})")
        if not n_samples:
            first = float(y[0])
        lo, hi = min(lo, float(y.min())), max(hi, float(y.max()))
        n_samples += y.size
        framer.push(y)
    need = cfg.win_length if cfg.center else cfg.fft_size
    if n_samples < need:
        raise AudioError(
            f"signal is shorter than one frame: {n_samples} samples at {cfg.sample_rate} Hz "
            f"< {need} samples; drop the clip or use shorter frames"
        )
    if hi - lo < MIN_PEAK_TO_PEAK and (first != 0 or cfg.vad == "none"):
        raise AudioError(
            f"the signal is constant (every sample {first:.6g}, peak-to-peak "
            f"{hi - lo:.3g}): no usable variation; drop the file"
        )
    framer.close()
    energy = np.concatenate(framer.energy_db)
    framer.energy_db.clear()
    return features_from_cepstra(framer.cepstra(), energy, cfg)


__all__ = ["extract_features_blockwise"]
