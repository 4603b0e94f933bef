"""The sections of model training: the UBM (EM with splitting) and MAP enrolment.

The MAP rules (:func:`check_adapt`, :func:`check_relevance_factor`) are stated here once and
called by the library too.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from ..errors import ConfigError, short_repr
from .base import check as _check
from .base import check_choice, check_in, check_min, normalise

ADAPT_LETTERS = "mwv"


def check_adapt(adapt: str) -> str:
    """The canonical form (letters in the order ``mwv``) of a MAP ``adapt`` string: a
    non-empty combination of ``m`` (means), ``w`` (weights) and ``v`` (variances), each at
    most once; a :class:`ConfigError` for anything else (e.g. ``"mm"``)."""
    text = adapt if isinstance(adapt, str) else ""
    if not text or not set(text) <= set(ADAPT_LETTERS) or len(set(text)) != len(text):
        raise ConfigError(
            f"adapt: expected a non-empty combination of 'm' (means), 'w' (weights) and "
            f"'v' (variances), each at most once, e.g. 'm' or 'mwv'; got {short_repr(adapt)}"
        )
    return "".join(ch for ch in ADAPT_LETTERS if ch in text)


def check_relevance_factor(relevance_factor: float) -> float:
    """A MAP relevance factor ``r`` (``alpha_k = n_k / (n_k + r)``) as a float: ``r >= 0``
    (0 gives the ML estimate under the UBM's responsibilities, ``inf`` the UBM itself); a
    :class:`ConfigError` for NaN, negative or non-numbers."""
    ok = isinstance(relevance_factor, numbers.Real) and not isinstance(relevance_factor, bool)
    r = float(relevance_factor) if ok else math.nan
    if not r >= 0.0:
        rule = "a number >= 0 (16 is usual; .inf keeps the UBM)"
        raise ConfigError(f"relevance_factor: must be {rule}, got {short_repr(relevance_factor)}")
    return r


@dataclass(frozen=True)
class UBMConfig:
    """Options of UBM training (:func:`gmmspeech.train_ubm`).

    Parameters
    ----------
    n_components : int
        Target number of Gaussians. Binary splitting up to the largest power of two below
        it, then the heaviest components only (never rounded).
    iterations_per_stage : tuple of int
        EM iterations after each split: stage ``j`` runs entry ``j - 1``, the last repeats.
    final_max_iterations, tolerance : int, float
        At the target size EM then runs until the relative change of the mean log-likelihood
        per frame is below ``tolerance``, at most ``final_max_iterations`` more iterations.
        The change shrinks by about 12 % per iteration: the recipes' 512-component UBMs pass
        2e-4 after about 8 final iterations, so a ConvergenceWarning (the cap reached) is
        news, not routine.
    split_epsilon : float
        Split offset: means ``mu -/+ split_epsilon * sigma`` along the highest-variance axis.
    var_floor_ratio : float
        Variance floor, a fraction of the data's global per-dimension variance (every M-step).
    min_count, min_weight : float
        A component with fewer (soft) frames or a smaller weight is dead and re-seeded.
    chunk_size : int
        Frames per block in the E-step (memory O(chunk_size x K)).
    shard_frames : int
        Frames per map-reduce task (the split never depends on the number of workers).
    max_frames : int or None
        If in-memory data has more frames, train on a seeded random subset of this many.
    subsample_every : int
        Train on every k-th frame of each utterance (1: all frames).
    subsample_fraction : float or None
        Train on a seeded random fraction of each utterance's frames.
    random_state : int
        Seed of ``max_frames`` and ``subsample_fraction`` (training is otherwise deterministic).
    selection : {"dense", "auto"}
        ``auto``: Gaussian selection from 256 components on (:mod:`gmmspeech.mixture.selection`);
        opt-in until it meets its speed and accuracy targets.
    """

    n_components: int = 512
    iterations_per_stage: tuple[int, ...] = (1, 2, 2, 4, 4, 4, 4, 8, 8, 8, 8)
    final_max_iterations: int = 20
    tolerance: float = 2e-4
    split_epsilon: float = 0.5
    var_floor_ratio: float = 1e-2
    min_count: float = 10.0
    min_weight: float = 1e-5
    chunk_size: int = 2048
    shard_frames: int = 262_144
    max_frames: int | None = None
    subsample_every: int = 1
    subsample_fraction: float | None = None
    random_state: int = 0
    selection: str = "dense"

    def __post_init__(self) -> None:
        normalise(self)
        check_min(self, "n_components", 1)
        check_choice(self, "selection", ("auto", "dense"))
        its = self.iterations_per_stage
        ok = len(its) >= 1 and all(int(i) >= 0 for i in its)
        _check(ok, "iterations_per_stage", "a non-empty list of iteration counts >= 0", its)
        for name in ("final_max_iterations", "tolerance", "min_count"):
            check_min(self, name, 0)
        for name in ("chunk_size", "shard_frames", "subsample_every"):
            check_min(self, name, 1)
        check_min(self, "max_frames", 1, optional=True)
        check_in(self, "split_epsilon", "(0, 5]")
        check_in(self, "var_floor_ratio", "[0, 1)")
        check_in(self, "min_weight", "[0, 1)")
        check_in(self, "subsample_fraction", "(0, 1]", optional=True)


@dataclass(frozen=True)
class EnrollConfig:
    """MAP adaptation of speaker (or class) models (:func:`gmmspeech.enroll`).

    Parameters
    ----------
    relevance_factor : float
        MAP relevance factor ``r`` (Reynolds et al. 2000).
    adapt : str
        Parameters adapted: a combination of ``m`` (means), ``w`` (weights), ``v``
        (variances).
    """

    relevance_factor: float = 16.0
    adapt: str = "m"

    def __post_init__(self) -> None:
        object.__setattr__(self, "relevance_factor", check_relevance_factor(self.relevance_factor))
        object.__setattr__(self, "adapt", check_adapt(self.adapt))
