"""DET curves and score histograms (needs the ``plot`` extra: matplotlib, imported lazily).

DET axes are normal deviates: a miss or false-alarm rate ``p`` is drawn at
``scipy.stats.ndtri(p)``, with the ticks labelled in percent, so that Gaussian score
distributions give straight lines.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.special import ndtri

from ..errors import GmmSpeechError
from ..storage.atomic import atomic_path
from .metrics import det_curve, eer

_TICKS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 0.98, 0.99]


def _save(fig: Any, path: str | os.PathLike[str]) -> None:
    """Save a figure atomically; the format follows the extension of ``path`` (PNG when it
    names no format matplotlib writes)."""
    ext = os.path.splitext(os.fspath(path))[1][1:].lower()
    fmt = ext if ext in fig.canvas.get_supported_filetypes() else "png"
    with atomic_path(path, suffix=f".{fmt}") as tmp:
        fig.savefig(tmp, format=fmt, dpi=120, bbox_inches="tight")


def load_pyplot() -> Any:
    try:
        import matplotlib

        if not os.environ.get("DISPLAY") and not os.environ.get("MPLBACKEND"):
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise GmmSpeechError(
            "plots need matplotlib, a dependency of gmmspeech: reinstall it (pip install gmmspeech)"
        ) from None
    return plt


def det_points(scores: Any, is_target: Any, clip: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """DET curve in normal-deviate coordinates ``(ppf(p_fa), ppf(p_miss))``, clipped."""

    p_miss, p_fa, _ = det_curve(scores, is_target)
    lo, hi = clip, 1.0 - clip
    return ndtri(np.clip(p_fa, lo, hi)), ndtri(np.clip(p_miss, lo, hi))


def plot_det(
    systems: Mapping[str, tuple[Any, Any]],
    path: str | os.PathLike[str] | None = None,
    *,
    ax: Any = None,
    title: str = "DET curve",
    limits: tuple[float, float] = (0.001, 0.6),
) -> Any:
    """Plot the DET curves of several systems on one figure.

    Parameters
    ----------
    systems : mapping name -> (scores (n,), is_target (n,))
        One curve per system; the legend shows each system's EER.
    path : path-like, optional
        Save the figure there (PNG, PDF, SVG, ... by extension).
    ax : matplotlib Axes, optional
        Draw into these axes instead of a new figure.
    title : str
    limits : (float, float)
        Error-rate range of both axes.

    Returns
    -------
    matplotlib.figure.Figure
    """

    plt = load_pyplot()
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 5.5))
    else:
        fig = ax.figure
    for name, (scores, is_target) in systems.items():
        x, y = det_points(scores, is_target)
        ax.plot(x, y, label=f"{name} (EER {100 * eer(scores, is_target):.2f}%)")
    ticks = [t for t in _TICKS if limits[0] <= t <= limits[1]]
    pos = ndtri(ticks)
    labels = [f"{100 * t:g}" for t in ticks]
    ax.set_xticks(pos, labels)
    ax.set_yticks(pos, labels)
    lo, hi = ndtri(limits[0]), ndtri(limits[1])
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.plot([lo, hi], [lo, hi], color="0.7", lw=0.8, ls=":")
    ax.set_xlabel("False alarm rate (%)")
    ax.set_ylabel("Miss rate (%)")
    ax.set_title(title)
    ax.grid(True, color="0.9")
    ax.legend(loc="upper right", fontsize="small")
    if path is not None:
        _save(fig, path)
    return fig


def plot_score_histograms(
    scores: Any,
    is_target: Any,
    path: str | os.PathLike[str] | None = None,
    *,
    ax: Any = None,
    bins: int = 50,
    title: str = "Scores",
) -> Any:
    """Overlaid, density-normalised histograms of target and non-target scores.

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = load_pyplot()
    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(is_target).astype(bool)
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 4))
    else:
        fig = ax.figure
    edges = np.histogram_bin_edges(s, bins=bins)
    ax.hist(s[~t], bins=edges, density=True, alpha=0.6, label=f"non-target ({(~t).sum()})")
    ax.hist(s[t], bins=edges, density=True, alpha=0.6, label=f"target ({t.sum()})")
    ax.set_xlabel("score")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend()
    if path is not None:
        _save(fig, path)
    return fig
