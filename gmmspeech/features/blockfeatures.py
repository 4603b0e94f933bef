"""Features of a long signal that arrives in blocks, with memory bounded by a block.

A 60-minute signal at 16 kHz is 230 MB of float32 samples, its log-mel frames 58 MB and its
features 86 MB. The functions here read the signal once, keeping a few thousand samples at
a time, and compute what :func:`gmmspeech.features.frontend.extract_features_with_info` computes on
the whole signal, in two passes:

1. the first frames the signal and keeps, per frame, the raw energy (for the VAD), the log
   energy and the unclipped log-mel values (in memory, or in a file beside the spilled
   features), plus their maximum: ``power_to_db``'s ``top_db`` clip needs the maximum of
   the whole file;
2. the second clips the log-mel frames at that maximum, takes their DCT and deltas (with
   ``delta_window`` frames of context across block edges, so the filter sees what it sees
   on the whole matrix), keeps the VAD's frames and hands them on.

Framing is exact across blocks: pre-emphasis carries the last sample of each block into the
next, and librosa's centred framing pads ``n_fft // 2`` zeros at the true start and end of
the signal only; in between, each frame's samples are cut from a running buffer.

:func:`extract_features_blockwise` returns the features in memory (then normalised as the
whole-signal path does); :func:`spill_features_blockwise` writes them to a raw file and
returns CMN/CMVN as a shift and a scale (:class:`~gmmspeech.features.spill.SpilledFrames`), so
neither the log-mel frames nor the features are ever all in memory. Sliding normalisation
and feature warping need windows of normalised frames; with them the spilled features are
read back and normalised in memory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from ..config.sections import FeatureConfig
from ..errors import AudioError, DataError
from .frontend import (
    MIN_PEAK_TO_PEAK,
    fill_features,
    frame_energy_db,
    frame_log_energy,
    frame_view,
    kept_frames,
    pre_emphasis,
)
from .melspec import log_mel_cepstra, mel_power, power_to_db
from .normalize import STD_FLOOR, mean_var_norm, normalize
from .spill import SpilledFrames

#: Log-mel frames read back per run from a spill file in the second pass.
_LOGMEL_RUN = 4096


class _Framer:
    """Running buffers of raw and pre-emphasised samples, cut into librosa's frames."""

    def __init__(self, cfg: FeatureConfig) -> None:
        self.cfg = cfg
        # the blocks are framed without librosa's padding: this object pads the true ends
        self.flat = dataclasses.replace(cfg, center=False)
        self.pad = cfg.fft_size // 2 if cfg.center else 0
        self.raw = np.zeros(self.pad, dtype=np.float32)
        self.emph = np.zeros(self.pad, dtype=np.float32)
        self.prev: float | None = None

    def push(self, block: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The complete frames so far: (raw frame samples view, unclipped log-mel)."""
        emph = pre_emphasis(block, self.cfg.pre_emphasis, self.prev)
        self.prev = float(block[-1])
        self.raw = np.concatenate([self.raw, block])
        self.emph = np.concatenate([self.emph, emph])
        return self._frames()

    def close(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        tail = np.zeros(self.pad, dtype=np.float32)
        self.raw = np.concatenate([self.raw, tail])
        self.emph = np.concatenate([self.emph, tail])
        return self._frames()

    def _frames(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        n_fft, hop = self.cfg.fft_size, self.cfg.hop_length
        if self.raw.shape[0] < n_fft:
            return
        n = 1 + (self.raw.shape[0] - n_fft) // hop
        end = (n - 1) * hop + n_fft
        logmel = power_to_db(mel_power(self.emph[:end], self.flat, center=False), None)
        yield self.raw[:end], logmel
        self.raw = self.raw[n * hop :].copy()
        self.emph = self.emph[n * hop :].copy()


def _frames_of(
    blocks: Iterable[np.ndarray], cfg: FeatureConfig
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every frame of the signal, in runs: (raw samples of the run, unclipped log-mel),
    after the whole-signal path's checks on the samples."""
    framer = _Framer(cfg)
    check = _SignalCheck(cfg)
    for block in blocks:
        y = np.ascontiguousarray(block, dtype=np.float32)
        check.see(y)
        if y.size:
            yield from framer.push(y)
    check.finish()
    yield from framer.close()


@dataclasses.dataclass
class _Scan:
    """What the first pass learns: frame energies, the log-mel maximum, the frame count."""

    energy_db: np.ndarray  #: (n_frames,) float32
    log_energy: np.ndarray | None  #: (n_frames,) float32, energy="log_energy" only
    top: np.float32  #: loudest unclipped log-mel value


class _SignalCheck:
    """The whole-signal path's checks on the samples (shape, NaN, length, constant),
    made block by block."""

    def __init__(self, cfg: FeatureConfig) -> None:
        self.cfg = cfg
        self.n_samples, self.lo, self.hi, self.first = 0, np.inf, -np.inf, 0.0

    def see(self, y: np.ndarray) -> None:
        if y.ndim != 1:
            raise DataError(f"signal block: expected a 1-D array, got shape {y.shape}")
        if not y.size:
            return
        if not np.isfinite(y).all():
            at = self.n_samples + int(np.argmax(~np.isfinite(y)))
            raise DataError(f"signal: NaN or infinite samples (first at sample {at})")
        if not self.n_samples:
            self.first = float(y[0])
        self.lo, self.hi = min(self.lo, float(y.min())), max(self.hi, float(y.max()))
        self.n_samples += y.size

    def finish(self) -> None:
        cfg, n = self.cfg, self.n_samples
        need = cfg.win_length if cfg.center else cfg.fft_size
        if n < need:
            raise AudioError(
                f"signal is shorter than one frame: {n} samples at {cfg.sample_rate} Hz "
                f"< {need} samples; drop the clip or use shorter frames"
            )
        if self.hi - self.lo < MIN_PEAK_TO_PEAK and (self.first != 0 or cfg.vad == "none"):
            raise AudioError(
                f"the signal is constant (every sample {self.first:.6g}, peak-to-peak "
                f"{self.hi - self.lo:.3g}): no usable variation; drop the file"
            )


def _scan(
    blocks: Iterable[np.ndarray], cfg: FeatureConfig, keep_logmel: Callable[[np.ndarray], None]
) -> _Scan:
    """First pass: frame energies and the log-mel maximum; each run of unclipped log-mel
    frames (n_mels, n) goes to ``keep_logmel``."""
    energy: list[np.ndarray] = []
    log_energy: list[np.ndarray] = []
    top = np.float32(-np.inf)
    flat = dataclasses.replace(cfg, center=False)
    for raw, logmel in _frames_of(blocks, cfg):
        top = max(top, logmel.max())
        keep_logmel(logmel)
        energy.append(frame_energy_db(raw, flat))
        if cfg.energy == "log_energy":
            log_energy.append(frame_log_energy(frame_view(raw, flat)).astype(np.float32))
    return _Scan(
        np.concatenate(energy),
        np.concatenate(log_energy) if log_energy else None,
        np.float32(top),
    )


def _rows(
    logmels: Iterable[np.ndarray], cfg: FeatureConfig, scan: _Scan, keep: np.ndarray
) -> Iterator[np.ndarray]:
    """Second pass: from the runs of unclipped log-mel frames (n_mels, n) of the first (may
    be clipped in place), the kept frames' features before normalisation, as
    (n, n_features) blocks in order."""
    ctx = int(cfg.delta_window) if cfg.deltas else 0
    width = 2 * ctx + 1
    n_total = keep.shape[0]
    buf = np.empty((cfg.n_mfcc, 0), dtype=np.float32)  # static cepstra of frames b0 ..
    b0 = e0 = 0  # first frame in buf; first frame not yet handed on
    runs = iter(logmels)
    while e0 < n_total:
        run = next(runs, None)
        if run is not None:
            logmel = run
            if cfg.top_db is not None:  # as power_to_db: the float32 maximum minus top_db
                np.maximum(logmel, scan.top - cfg.top_db, out=logmel)
            static = log_mel_cepstra(logmel, cfg)
            if scan.log_energy is not None:
                at = b0 + buf.shape[1]
                static[0] = scan.log_energy[at : at + static.shape[1]]
            buf = np.concatenate([buf, static], axis=1)
        end = b0 + buf.shape[1]
        e1 = end if run is None else end - ctx  # frames whose deltas see all they need
        if run is None and end != n_total:
            raise RuntimeError("blockwise features: log-mel frames lost between passes")
        # librosa's mode="interp" needs a whole filter width of frames
        lo = max(min(e0 - ctx, end - width), 0)
        if e1 <= e0 or (ctx and end - lo < width):
            continue
        cols = np.flatnonzero(keep[e0:e1]) + (e0 - lo)
        out = np.empty((cols.size, cfg.n_features), dtype=np.float32)
        fill_features(buf[:, lo - b0 : end - b0], cols, cfg, out)
        yield out
        e0 = e1
        cut = max(e0 - width, 0) - b0
        buf, b0 = buf[:, cut:].copy(), b0 + cut


def extract_features_blockwise(
    blocks: Iterable[np.ndarray], config: FeatureConfig
) -> tuple[np.ndarray, int]:
    """:func:`~gmmspeech.features.frontend.extract_features_with_info` of a signal given in blocks.

    Holds the unclipped log-mel frames (a quarter of the signal's size at the defaults)
    and the features in memory; :func:`spill_features_blockwise` holds neither.

    Parameters
    ----------
    blocks : iterable of ndarray, shape (n_i,)
        Consecutive mono blocks at ``config.sample_rate`` (any sizes; see
        :func:`gmmspeech.features.audio.iter_audio_blocks`), read once.
    config : FeatureConfig

    Returns
    -------
    features : ndarray, shape (n_kept, config.n_features), float32
        The whole-signal features, to float32 rounding.
    n_frames_total : int

    Raises
    ------
    DataError
        A block is not a 1-D real array or holds NaN/infinite samples.
    AudioError
        As :func:`~gmmspeech.features.frontend.extract_features`.
    """
    cfg = config
    logmels: list[np.ndarray] = []
    scan = _scan(blocks, cfg, logmels.append)
    keep = kept_frames(scan.energy_db, cfg)
    feats = np.empty((int(keep.sum()), cfg.n_features), dtype=np.float32)
    at = 0
    for rows in _rows(logmels, cfg, scan, keep):
        feats[at : at + rows.shape[0]] = rows
        at += rows.shape[0]
    del logmels
    if cfg.normalization in ("cmn", "cmvn"):
        feats = mean_var_norm(feats, cfg.normalization == "cmvn")
    else:
        feats = normalize(feats, cfg.normalization, cfg.norm_window)
    return feats, int(keep.shape[0])


def _read_logmel(path: str, n_mels: int) -> Iterator[np.ndarray]:
    """Runs of the log-mel frames written by :func:`spill_features_blockwise`'s first pass,
    as (n_mels, n) views."""
    with open(path, "rb") as fh:
        while True:
            run = np.fromfile(fh, dtype=np.float32, count=_LOGMEL_RUN * n_mels)
            if not run.size:
                return
            yield run.reshape(-1, n_mels).T


def spill_features_blockwise(
    blocks: Iterable[np.ndarray], config: FeatureConfig, path: str
) -> tuple[SpilledFrames | np.ndarray, int]:
    """:func:`extract_features_blockwise`, with the features written to a raw file.

    Parameters
    ----------
    blocks : iterable of ndarray, shape (n_i,)
        As :func:`extract_features_blockwise`.
    config : FeatureConfig
    path : str
        The spill file to create (the caller removes it, through
        :meth:`~gmmspeech.features.spill.SpilledFrames.remove`, once the rows are stored). The
        log-mel frames pass through ``path + ".logmel"``, removed before returning.

    Returns
    -------
    features : SpilledFrames, or ndarray (n_kept, n_features) float32
        The spilled features with CMN/CMVN as its shift and scale (the arithmetic of the
        in-memory CMN/CMVN); for sliding normalisation and warping, the normalised array
        (the file is then removed).
    n_frames_total : int
    """
    cfg = config
    logmel_path = path + ".logmel"
    total = np.zeros(cfg.n_features)
    try:
        with open(logmel_path, "wb") as lm:
            scan = _scan(blocks, cfg, lambda run: np.ascontiguousarray(run.T).tofile(lm))
        keep = kept_frames(scan.energy_db, cfg)
        with open(path, "wb") as fh:
            for rows in _rows(_read_logmel(logmel_path, cfg.n_mels), cfg, scan, keep):
                rows.tofile(fh)
                total += rows.sum(axis=0, dtype=np.float64)
        SpilledFrames(logmel_path, (0, 0)).remove()
        spilled = SpilledFrames(path, (int(keep.sum()), cfg.n_features))
        mode = cfg.normalization
        if mode in ("cmn", "cmvn"):
            spilled.shift = (total / spilled.shape[0]).astype(np.float32)
            if mode == "cmvn":
                spilled.scale = _spilled_scale(spilled)
        elif mode != "none":
            feats = normalize(spilled.to_array(), mode, cfg.norm_window)
            spilled.remove()
            return feats, int(keep.shape[0])
    except BaseException:
        SpilledFrames(logmel_path, (0, 0)).remove()
        SpilledFrames(path, (0, 0)).remove()
        raise
    return spilled, int(keep.shape[0])


def _spilled_scale(spilled: SpilledFrames) -> np.ndarray:
    """CMVN's float32 scale of spilled (mean-shifted) frames, as the in-memory CMVN:
    the float64 mean of squares of the shifted float32 rows, then ``1 / max(std, floor)``."""
    sq = np.zeros(spilled.shape[1])
    for _, block in spilled.blocks():
        sq += np.einsum("ij,ij->j", block, block, dtype=np.float64)
    var = sq / spilled.shape[0]
    scale: np.ndarray = (1.0 / np.maximum(np.sqrt(var), STD_FLOOR)).astype(np.float32)
    return scale


__all__ = ["extract_features_blockwise", "spill_features_blockwise"]
