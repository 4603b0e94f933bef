"""Per-utterance normalisation of feature frames: CMN, CMVN, their sliding forms, warping.

Statistics are accumulated in float64 and applied in float32; standard deviations are
floored at :data:`STD_FLOOR`, so a constant dimension becomes 0 rather than NaN.
"""

from __future__ import annotations

import functools
import statistics

import numpy as np

from ..errors import ConfigError

#: Floor of a standard deviation before dividing by it.
STD_FLOOR = 1e-6


def _window_bounds(n_frames: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Start/end of a ``window``-frame window centred on each frame, shifted inside the data."""
    t = np.arange(n_frames)
    if n_frames <= window:
        return np.zeros(n_frames, dtype=np.intp), np.full(n_frames, n_frames, dtype=np.intp)
    start = np.clip(t - window // 2, 0, n_frames - window)
    return start, start + window


def normalize(x: np.ndarray, mode: str = "cmvn", window: int = 301) -> np.ndarray:
    """Mean / variance normalisation or feature warping of one utterance's frames.

    Parameters
    ----------
    x : ndarray, shape (n_frames, d)
    mode : {"none", "cmn", "cmvn", "sliding_cmn", "sliding_cmvn", "warp"}
        ``cmn``/``cmvn`` use the whole utterance; ``sliding_*`` a window of ``window``
        frames centred on each frame (shifted at the edges to stay inside the utterance; the
        whole utterance when it is shorter); ``warp`` maps each value to the standard-normal
        quantile of its rank within that window.
    window : int
        Window length in frames for the sliding modes and warping.

    Returns
    -------
    ndarray, shape (n_frames, d), float32
        Standard deviations are floored at 1e-6, so constant dimensions become 0.
    """
    x = np.asarray(x, dtype=np.float32)
    if mode == "none" or x.shape[0] == 0:
        return x
    if mode in ("cmn", "cmvn"):
        return mean_var_norm(x.copy(), mode == "cmvn")
    if mode in ("sliding_cmn", "sliding_cmvn"):
        x64 = x.astype(np.float64)
        start, end = _window_bounds(x.shape[0], window)
        zero = np.zeros((1, x.shape[1]))
        cs = np.concatenate([zero, np.cumsum(x64, axis=0)])
        n = (end - start)[:, None].astype(np.float64)
        mean = (cs[end] - cs[start]) / n
        if mode == "sliding_cmn":
            return (x64 - mean).astype(np.float32)
        cs2 = np.concatenate([zero, np.cumsum(x64 * x64, axis=0)])
        var = np.maximum((cs2[end] - cs2[start]) / n - mean**2, 0.0)
        return ((x64 - mean) / np.maximum(np.sqrt(var), STD_FLOOR)).astype(np.float32)
    if mode == "warp":
        return _warp(x, window)
    raise ConfigError(f"normalization: unknown mode {mode!r}")


def mean_var_norm(x: np.ndarray, variance: bool) -> np.ndarray:
    """CMN / CMVN of ``x`` (float32, C-contiguous) in place; returns ``x``.

    Statistics are accumulated in float64, the subtraction and scaling done in float32.
    """
    mean = x.mean(axis=0, dtype=np.float64)
    x -= mean.astype(np.float32)
    if variance:
        var = np.einsum("ij,ij->j", x, x, dtype=np.float64) / x.shape[0]
        x *= (1.0 / np.maximum(np.sqrt(var), STD_FLOOR)).astype(np.float32)
    return x


@functools.lru_cache(maxsize=16)
def _normal_quantiles(width: int) -> np.ndarray:
    """``Phi^-1(k / (2 width))`` for ``k = 0 .. 2 width``, shape ``(2 width + 1,)``.

    A frame's rank in a window of ``width`` values is ``(less + equal / 2) / width``, a multiple
    of ``1 / (2 width)``, so warping is a lookup in this table indexed by ``2 less + equal``.
    The table comes from the standard library (``NormalDist.inv_cdf``, accurate to double
    precision) so that extraction does not import ``scipy.special`` (0.13 s per process).
    The ends (``k = 0`` and ``2 width``) never occur: a frame is always equal to itself.
    """
    inv = statistics.NormalDist().inv_cdf
    k = np.arange(1, 2 * width)
    inner = np.array([inv(float(v)) for v in k / (2.0 * width)])
    return np.concatenate(([-np.inf], inner, [np.inf]))


def _warp(x: np.ndarray, window: int, block: int = 128) -> np.ndarray:
    n_frames, dim = x.shape
    start, end = _window_bounds(n_frames, window)
    width = int(end[0] - start[0])
    table = _normal_quantiles(width)
    out = np.empty_like(x)
    if width == n_frames:
        # One window for every frame: ranks within the whole utterance.
        for s in range(0, n_frames, block):
            c = x[s : s + block]
            less = (x[None, :, :] < c[:, None, :]).sum(axis=1)
            equal = (x[None, :, :] == c[:, None, :]).sum(axis=1)
            out[s : s + block] = table[2 * less + equal]
        return out
    windows = np.lib.stride_tricks.sliding_window_view(x, width, axis=0)  # (T-w+1, d, w)
    for s in range(0, n_frames, block):
        c = x[s : s + block]  # (b, d)
        win = windows[start[s : s + block]]  # (b, d, w)
        less = (win < c[:, :, None]).sum(axis=2)
        equal = (win == c[:, :, None]).sum(axis=2)
        out[s : s + block] = table[2 * less + equal]
    return out


__all__ = ["STD_FLOOR", "mean_var_norm", "normalize"]
