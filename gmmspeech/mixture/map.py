"""MAP adaptation of a UBM to one speaker (or class), after Reynolds, Quatieri & Dunn (2000).

With the UBM's sufficient statistics of the adaptation data, counts ``n_k``, data means
``E_k[x]`` and second moments ``E_k[x^2]``, and ``alpha_k = n_k / (n_k + r)`` (``r`` the
relevance factor):

* means      ``mu'_k  = alpha_k E_k[x] + (1 - alpha_k) mu_k``
* weights    ``w'_k   = alpha_k n_k / T + (1 - alpha_k) w_k``, then renormalised to sum to 1
* variances  ``var'_k = alpha_k E_k[x^2] + (1 - alpha_k)(var_k + mu_k^2) - mu'_k^2``, floored

The variance formula is computed in the equivalent form
``alpha E[(x - mu')^2] + (1 - alpha)(var + (mu - mu')^2)``; when the means are not adapted
(``adapt`` without ``m``, so ``mu' = mu``) this is the variance about the UBM mean,
``alpha E[(x - mu)^2] + (1 - alpha) var`` (Reynolds' form presumes adapted means and could go
negative otherwise).

The statistics are taken about a shift ``s`` (:class:`~gmmspeech.mixture.stats.SufficientStats`);
every formula above is invariant under ``x -> x - s`` (the variance one included: it is a
mixture of second moments minus the square of the mixed mean), so the computation is done in
shifted coordinates, which keeps the second moments small and accurate.

A component that saw no data (``n_k = 0``) has ``alpha_k = 0`` and keeps the UBM's values;
``r -> 0`` gives the maximum-likelihood estimate of the data under the UBM's
responsibilities, ``r -> infinity`` gives the UBM back.
"""

from __future__ import annotations

import logging

import numpy as np
from numpy.typing import ArrayLike

from ..config.sections import check_adapt, check_relevance_factor
from ..errors import ModelMismatchError
from .gmm import DiagGMM
from .stats import SufficientStats, accumulate

log = logging.getLogger(__name__)


def default_variance_floor(ubm: DiagGMM, ratio: float = 1e-2) -> np.ndarray:
    """Per-dimension variance floor for adapted models, shape (D,).

    ``ratio`` times the UBM's global (mixture) variance per dimension, but never above the
    smallest UBM variance of that dimension, so that the UBM itself is never changed by
    flooring (``r -> infinity`` gives the UBM back exactly).
    """
    c = ubm.weights @ ubm.means
    global_var = ubm.weights @ (ubm.variances + (ubm.means - c) ** 2)
    return np.minimum(ratio * global_var, ubm.variances.min(axis=0))


def map_adapt(
    ubm: DiagGMM,
    X_or_stats: ArrayLike | SufficientStats,
    *,
    relevance_factor: float = 16.0,
    adapt: str = "m",
    variance_floor: ArrayLike | None = None,
    chunk_size: int | None = None,
) -> DiagGMM:
    """MAP-adapt ``ubm`` to data (Reynolds, Quatieri & Dunn 2000).

    Parameters
    ----------
    ubm : DiagGMM
        The prior model (K components, D features).
    X_or_stats : array-like, shape (N, D), or list of such arrays, or SufficientStats
        Adaptation frames, or their statistics accumulated with ``ubm``
        (:func:`gmmspeech.accumulate`).
    relevance_factor : float
        ``r`` in ``alpha_k = n_k / (n_k + r)``; >= 0. Larger keeps the model closer to the UBM.
        ``np.inf`` returns the UBM's parameters.
    adapt : str
        Which parameters to adapt: any combination of ``"m"`` (means), ``"w"`` (weights),
        ``"v"`` (variances), e.g. ``"m"`` (the default, the usual choice for verification),
        ``"mw"``, ``"mv"``, ``"mwv"``.
    variance_floor : float or array-like of shape (D,), optional
        Floor of the adapted variances; default :func:`default_variance_floor`.
    chunk_size : int, optional
        Frames per block when accumulating statistics from frames.

    Returns
    -------
    DiagGMM
        The adapted model (the UBM's feature config carried over; ``config`` records ``r``
        and ``adapt``).

    Raises
    ------
    ModelMismatchError
        The frames or statistics do not have the UBM's dimensions.
    ConfigError
        Invalid ``relevance_factor`` or ``adapt``.

    Examples
    --------
    Sixteen frames at 3.0 move the nearby component halfway (``alpha = 16 / (16 + 16)``) from
    its UBM mean 2.0 and leave the far one where it was:

    >>> from gmmspeech import DiagGMM, map_adapt
    >>> ubm = DiagGMM([0.5, 0.5], [-2.0, 2.0], [1.0, 1.0])
    >>> spk = map_adapt(ubm, np.full((16, 1), 3.0), relevance_factor=16.0)
    >>> spk.means.round(3).ravel().tolist()
    [-2.0, 2.5]
    """
    adapt = check_adapt(adapt)
    r = check_relevance_factor(relevance_factor)
    stats = _as_stats(ubm, X_or_stats, chunk_size)
    weights, means, variances = map_parameters(
        ubm, stats, relevance_factor=r, adapt=adapt, variance_floor=variance_floor
    )
    cfg = dict(ubm.config or {})
    cfg["map"] = {"relevance_factor": r if np.isfinite(r) else "inf", "adapt": adapt}
    return DiagGMM(weights, means, variances, feature_config=ubm.feature_config, config=cfg)


def _as_stats(
    ubm: DiagGMM, X_or_stats: ArrayLike | SufficientStats, chunk_size: int | None
) -> SufficientStats:
    if isinstance(X_or_stats, SufficientStats):
        st = X_or_stats
        if st.n_components != ubm.n_components or st.n_features != ubm.n_features:
            raise ModelMismatchError(
                f"X_or_stats: statistics have K={st.n_components}, D={st.n_features} but the "
                f"UBM has K={ubm.n_components}, D={ubm.n_features}; accumulate them with this UBM"
            )
        return st
    if isinstance(X_or_stats, (list, tuple)):
        total = SufficientStats.zeros(ubm.n_components, ubm.n_features, ubm.center)
        for i, x in enumerate(X_or_stats):
            try:
                total = total + accumulate(ubm, x, chunk_size=chunk_size)
            except ModelMismatchError as exc:
                raise ModelMismatchError(f"X_or_stats[{i}]: {exc}") from None
        return total
    return accumulate(ubm, X_or_stats, chunk_size=chunk_size)


def map_parameters(
    ubm: DiagGMM,
    stats: SufficientStats,
    *,
    relevance_factor: float = 16.0,
    adapt: str = "m",
    variance_floor: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The MAP-adapted ``(weights (K,), means (K, D), variances (K, D))``, float64.

    Parameters not named in ``adapt`` are the UBM's (copies). See :func:`map_adapt`.
    """
    adapt = check_adapt(adapt)
    r = check_relevance_factor(relevance_factor)
    n = stats.zeroth
    s = stats.shift
    with np.errstate(invalid="ignore", divide="ignore"):
        if np.isinf(r):
            alpha = np.zeros_like(n)
        else:
            alpha = np.where(n > 0, n / (n + r), 0.0)
        safe_n = np.where(n > 0, n, 1.0)[:, None]
    a = alpha[:, None]
    ex = stats.first / safe_n  # E[x - s]
    mu_s = ubm.means - s  # UBM means in shifted coordinates
    means_s = a * ex + (1.0 - a) * mu_s if "m" in adapt else mu_s
    means = means_s + s
    if "w" in adapt:
        total = n.sum()
        frac = n / total if total > 0 else np.zeros_like(n)
        w = alpha * frac + (1.0 - alpha) * ubm.weights
        weights = w / w.sum()
    else:
        weights = ubm.weights.copy()
    if "v" in adapt:
        ex2 = stats.second / safe_n  # E[(x - s)^2]
        # a E[(x - mu')^2] + (1 - a)(var + (mu - mu')^2): equal to Reynolds'
        # a E[x^2] + (1 - a)(var + mu^2) - mu'^2 when mu' = a E[x] + (1 - a) mu, and the
        # variance about the kept UBM mean when the means are not adapted ("v", "wv")
        ex2_about_new = ex2 - 2.0 * means_s * ex + means_s**2
        var = a * ex2_about_new + (1.0 - a) * (ubm.variances + (mu_s - means_s) ** 2)
        floor = (
            default_variance_floor(ubm)
            if variance_floor is None
            else np.broadcast_to(np.asarray(variance_floor, dtype=np.float64), (ubm.n_features,))
        )
        n_floored = int((var < floor).sum())
        if n_floored:
            log.debug("MAP: %d adapted variance(s) floored", n_floored)
        variances = np.maximum(var, floor)
        # components without data keep the UBM's variances exactly (no rounding from the
        # shifted second moments)
        variances = np.where(a > 0, variances, ubm.variances)
    else:
        variances = ubm.variances.copy()
    return weights, means, variances
