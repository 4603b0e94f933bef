"""UBM training: one Gaussian, binary splitting, EM with floors and dead-component repair.

The EM loop is ``accumulate`` (E-step over blocks of frames) -> ``+`` -> :func:`estimate`
(M-step). Training is deterministic: the same data and config give a bit-identical model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .config import UBMConfig, config_hash, to_dict
from .configio import did_you_mean
from .engine import Engine, LocalEngine, map_reduce
from .errors import ConfigError, ConvergenceWarning, DataError, ModelFormatError
from .framesource import FrameSource, Moments, as_source, shard_moments
from .gmm import DiagGMM
from .stats import SufficientStats, accumulate

log = logging.getLogger(__name__)

_MIN_FRAMES_PER_COMPONENT = 10
_CHECKPOINT_RE = re.compile(r"^ubm_stage(\d{3})_k(\d+)\.h5$")


# ---------------------------------------------------------------------------- splitting
def split_plan(n_components: int) -> list[int]:
    """Model sizes stage by stage: 1, 2, 4, ... then ``n_components`` (never rounded).

    >>> split_plan(1000)[-3:]
    [256, 512, 1000]
    """
    sizes = [1]
    while sizes[-1] * 2 <= n_components:
        sizes.append(sizes[-1] * 2)
    if sizes[-1] != n_components:
        sizes.append(n_components)
    return sizes


def _split_one(
    weights: np.ndarray, means: np.ndarray, variances: np.ndarray, src: int, dst: int, eps: float
) -> None:
    """Split component ``src`` into ``src`` and ``dst`` in place (along its widest dimension)."""
    d = int(np.argmax(variances[src]))
    offset = eps * np.sqrt(variances[src, d])
    means[dst] = means[src]
    variances[dst] = variances[src]
    means[src, d] -= offset
    means[dst, d] += offset
    weights[src] *= 0.5
    weights[dst] = weights[src]


def split_components(gmm: DiagGMM, n_new: int, epsilon: float) -> DiagGMM:
    """Grow a model by ``n_new`` components by splitting its heaviest ones.

    Each split component keeps its variances; its mean moves by ``-epsilon * sigma`` and the
    new component's by ``+epsilon * sigma`` along the component's highest-variance
    dimension; both get half of the weight. New components are appended at the end.

    Parameters
    ----------
    gmm : DiagGMM
        Model with K components.
    n_new : int
        How many to add, 1 <= n_new <= K.
    epsilon : float
        Offset in standard deviations.

    Returns
    -------
    DiagGMM with K + n_new components.
    """
    k = gmm.n_components
    if not 1 <= n_new <= k:
        raise DataError(f"n_new: must be between 1 and {k}, got {n_new}")
    order = np.argsort(-gmm.weights, kind="stable")[:n_new]
    w = np.concatenate([gmm.weights, np.zeros(n_new)])
    mu = np.concatenate([gmm.means, np.zeros((n_new, gmm.n_features))])
    var = np.concatenate([gmm.variances, np.ones((n_new, gmm.n_features))])
    for j, src in enumerate(order):
        _split_one(w, mu, var, int(src), k + j, epsilon)
    return DiagGMM(
        w,
        mu,
        var,
        feature_config=gmm.feature_config,
        config=gmm.config,
        history=gmm.history_,
        var_floor=gmm.var_floor,
    )


# ---------------------------------------------------------------------------- M-step
def variance_floor(global_variance: np.ndarray, ratio: float) -> np.ndarray:
    """Per-dimension floor ``ratio * global variance`` (dimensions with no spread get a tiny
    positive floor relative to the others, so variances are never zero).

    Returns
    -------
    ndarray, shape (D,)
    """
    gv = np.asarray(global_variance, dtype=np.float64)
    scale = float(gv.max()) if gv.size and gv.max() > 0 else 1.0
    return np.maximum(ratio * gv, 1e-8 * scale) if ratio > 0 else np.full_like(gv, 1e-8 * scale)


def estimate(
    stats: SufficientStats,
    *,
    var_floor: np.ndarray,
    min_count: float,
    min_weight: float,
    split_epsilon: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """M-step with variance floor and dead-component repair.

    Parameters
    ----------
    stats : SufficientStats
        Statistics of K components over D features.
    var_floor : ndarray, shape (D,)
        Lower bound on every variance.
    min_count, min_weight : float
        A component with ``n_k < min_count`` or ``n_k / N < min_weight`` is dead: instead of
        dividing by (almost) zero it is re-seeded by splitting the heaviest live component.
    split_epsilon : float
        Offset (in standard deviations) of such a re-seeding split.

    Returns
    -------
    weights : ndarray, shape (K,)
    means : ndarray, shape (K, D)
    variances : ndarray, shape (K, D)
    n_repairs : int
        How many dead components were re-seeded.
    """
    n = stats.zeroth
    total = float(n.sum())
    if total <= 0:
        raise DataError("no frames were accumulated; cannot estimate a model")
    dead = (n < min_count) | (n / total < min_weight)
    if dead.all():
        raise DataError(f"every component has fewer than {min_count} frames; use fewer components")
    weights = np.where(dead, 0.0, n / total)
    weights /= weights.sum()
    means = stats.means()
    variances = np.maximum(stats.variances(), var_floor)
    dead_idx = np.flatnonzero(dead)
    for k in dead_idx:
        heaviest = int(np.argmax(weights))
        _split_one(weights, means, variances, heaviest, int(k), split_epsilon)
    return weights, means, variances, int(dead_idx.size)


def accumulate_shard(shard: Any, shared: tuple[DiagGMM, int]) -> SufficientStats:
    """E-step over one shard (anything with ``chunks(chunk_size)``): the engines' map task.

    Parameters
    ----------
    shard : FrameSource-like
        The frames of one task.
    shared : (DiagGMM, int)
        The model and the block size, sent once per iteration to every worker.
    """
    gmm, chunk_size = shared
    total = SufficientStats.zeros(gmm.n_components, gmm.n_features, gmm.center)
    for block in shard.chunks(chunk_size):
        total = total + accumulate(gmm, block, chunk_size=chunk_size)
    return total


def _accumulate_source(
    gmm: DiagGMM, shards: list[Any], chunk_size: int, engine: Engine
) -> SufficientStats:
    stats: SufficientStats = map_reduce(engine, accumulate_shard, shards, (gmm, chunk_size))
    return stats


def em_step(
    gmm: DiagGMM,
    X: Any,
    *,
    config: UBMConfig | None = None,
    var_floor: Any = None,
    chunk_size: int | None = None,
) -> DiagGMM:
    """One EM iteration: accumulate statistics of ``X`` under ``gmm``, then re-estimate.

    Parameters
    ----------
    gmm : DiagGMM
        The current model (K components, D features).
    X : array-like, shape (N, D) or (N,) for D = 1
        Frames.
    config : UBMConfig, optional
        Supplies ``var_floor_ratio``, ``min_count``, ``min_weight``, ``split_epsilon`` and
        ``chunk_size`` (defaults: ``UBMConfig()``).
    var_floor : array-like, shape (D,), optional
        Absolute variance floor. Default: ``gmm.var_floor`` if set, else
        ``config.var_floor_ratio`` times the variance of ``X``.
    chunk_size : int, optional
        Overrides ``config.chunk_size``.

    Returns
    -------
    DiagGMM
        The re-estimated model; its ``history_`` gains one entry whose ``log_likelihood`` is
        the mean per-frame log-likelihood of ``X`` under the input model.
    """
    cfg = config or UBMConfig()
    step = int(chunk_size or cfg.chunk_size)
    stats = accumulate(gmm, X, chunk_size=step)
    if var_floor is not None:
        floor = np.broadcast_to(np.asarray(var_floor, dtype=np.float64), (gmm.n_features,))
    elif gmm.var_floor is not None:
        floor = gmm.var_floor
    else:
        floor = variance_floor(stats.global_variance(), cfg.var_floor_ratio)
    w, mu, var, repairs = estimate(
        stats,
        var_floor=floor,
        min_count=cfg.min_count,
        min_weight=cfg.min_weight,
        split_epsilon=cfg.split_epsilon,
    )
    entry = {
        "stage": -1,
        "n_components": gmm.n_components,
        "iteration": len(gmm.history_),
        "log_likelihood": stats.log_likelihood / max(stats.n_frames, 1),
        "n_repairs": repairs,
    }
    return DiagGMM(
        w,
        mu,
        var,
        feature_config=gmm.feature_config,
        config=gmm.config,
        history=[*gmm.history_, entry],
        var_floor=gmm.var_floor,
    )


# ---------------------------------------------------------------------------- training
def _resolve_config(
    config: UBMConfig | None, n_components: int | None, overrides: dict[str, Any]
) -> UBMConfig:
    cfg = config or UBMConfig()
    names = {f.name for f in dataclasses.fields(UBMConfig)}
    for key in overrides:
        if key not in names:
            hint = did_you_mean(key, names)
            raise ConfigError(f"train_ubm: unknown option {key!r}" + (f"; {hint}" if hint else ""))
    if n_components is not None:
        overrides = {**overrides, "n_components": int(n_components)}
    return dataclasses.replace(cfg, **overrides) if overrides else cfg


def _fingerprint(source: FrameSource, mean: np.ndarray, var: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(f"{source.n_frames}:{source.n_features}".encode())
    h.update(np.ascontiguousarray(mean, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(var, dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


def _load_checkpoint(folder: Path, key: str) -> tuple[int, DiagGMM] | None:
    """Newest valid checkpoint in ``folder`` written for ``key``, as (stage, model)."""
    if not folder.is_dir():
        return None
    found = []
    for p in folder.iterdir():
        m = _CHECKPOINT_RE.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    import h5py

    for stage, path in sorted(found, reverse=True):
        try:
            gmm = DiagGMM.load(path)
            with h5py.File(path, "r") as f:
                got = f.attrs.get("checkpoint_key")
        except (ModelFormatError, OSError) as exc:
            log.warning("ignoring unreadable checkpoint %s (%s)", path, exc)
            continue
        if got == key:
            return stage, gmm
        log.info("ignoring checkpoint %s: written for other data or config", path)
    return None


def _use_progress(progress: bool | None) -> bool:
    if progress is not None:
        return bool(progress)
    return sys.stderr.isatty()


def train_ubm(
    X: Any,
    n_components: int | None = None,
    *,
    config: UBMConfig | None = None,
    random_state: int | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
    feature_config: dict[str, Any] | None = None,
    engine: Engine | None = None,
    **options: Any,
) -> DiagGMM:
    """Train a universal background model by binary splitting and EM.

    Starts from one Gaussian (global mean and variance), splits every component along its
    highest-variance dimension stage by stage (only the heaviest ones in the last stage when
    ``n_components`` is not a power of two), runs ``iterations_per_stage`` EM iterations after
    each split, and at the target size continues until the relative log-likelihood change
    falls below ``tolerance`` (at most ``final_max_iterations`` more).

    Parameters
    ----------
    X : array-like (N, D), iterable of (n_i, D) arrays, or FeatureStore(s)
        Training frames, as one array or one array per utterance; a
        :class:`~gmmspeech.FeatureStore` (or a list of them) is streamed from disk at every
        EM iteration, so memory depends on ``chunk_size`` and K, not on the data size.
    n_components : int, optional
        Target number of components (overrides ``config.n_components``).
    config : UBMConfig, optional
        All training options; keyword ``options`` override single fields, e.g.
        ``train_ubm(X, 64, iterations_per_stage=(2,), tolerance=1e-3)``.
    random_state : int, optional
        Overrides ``config.random_state`` (seed of the ``max_frames`` subset).
    checkpoint_dir : path-like, optional
        Save the model after every stage (atomically) and resume from the newest checkpoint
        that matches the data and config; the resumed run ends with the identical model.
    progress : bool, optional
        Show a tqdm progress bar (default: when stderr is a terminal).
    feature_config : dict, optional
        The feature configuration of ``X``, stored in the model.
    engine : Engine, optional
        Where the E-step runs: :class:`~gmmspeech.LocalEngine` (default, in this process),
        :class:`~gmmspeech.ProcessEngine` or :class:`~gmmspeech.DaskEngine`. Every engine
        gives the same model up to float rounding of the (fixed-order) reduction.

    Returns
    -------
    DiagGMM
        With ``history_`` (log-likelihood per iteration), ``var_floor`` and ``config``.

    Raises
    ------
    DataError
        NaN/inf frames (with the row count), too few frames for ``n_components``, or
        frames that are all identical.
    ConfigError
        Unknown or invalid options.
    """
    if random_state is not None:
        options["random_state"] = int(random_state)
    cfg = _resolve_config(config, n_components, options)
    source = as_source(
        X,
        max_frames=cfg.max_frames,
        random_state=cfg.random_state,
        subsample_every=cfg.subsample_every,
        subsample_fraction=cfg.subsample_fraction,
    )
    if feature_config is None:
        feature_config = getattr(source, "feature_config", None)
    k_target = int(cfg.n_components)
    needed = _MIN_FRAMES_PER_COMPONENT * k_target
    if source.n_frames < needed:
        suggestion = max(1, source.n_frames // _MIN_FRAMES_PER_COMPONENT)
        raise DataError(
            f"X: {source.n_frames} frames are too few for {k_target} components (need at "
            f"least {_MIN_FRAMES_PER_COMPONENT} per component, {needed} in all); use "
            f"n_components <= {suggestion} or more data"
        )
    step = cfg.chunk_size
    engine = engine if engine is not None else LocalEngine()
    shards = source.shards(cfg.shard_frames)
    moments: Moments = map_reduce(engine, shard_moments, shards, step)  # workers read the data
    mean, var = moments.mean, moments.var
    if not (var > 0).any():
        raise DataError(
            f"X: all {source.n_frames} frames are identical; a GMM needs some spread in the data"
        )
    floor = variance_floor(var, cfg.var_floor_ratio)
    cfg_dict = to_dict(cfg)
    key = f"{config_hash(cfg_dict)}-{_fingerprint(source, mean, var)}"
    model_config = {**cfg_dict, "n_frames": source.n_frames}

    def make(w: Any, mu: Any, v: Any, history: list[dict[str, Any]]) -> DiagGMM:
        return DiagGMM(
            w,
            mu,
            v,
            feature_config=feature_config,
            config=model_config,
            history=history,
            var_floor=floor,
        )

    sizes = split_plan(k_target)
    gmm = make([1.0], mean[None, :], np.maximum(var, floor)[None, :], [])
    start_stage = 0
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if ckpt_dir is not None:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        resumed = _load_checkpoint(ckpt_dir, key)
        if resumed is not None:
            stage, loaded = resumed
            gmm = make(loaded.weights, loaded.means, loaded.variances, loaded.history_)
            start_stage = stage + 1
            log.info(
                "resuming from checkpoint of stage %d (%d components)", stage, gmm.n_components
            )

    schedule = cfg.iterations_per_stage
    planned = [1] + [schedule[min(j - 1, len(schedule) - 1)] for j in range(1, len(sizes))]
    total_iters = sum(planned[start_stage:]) + (
        cfg.final_max_iterations if start_stage < len(sizes) else 0
    )
    bar = None
    if _use_progress(progress) and total_iters > 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_iters, desc="UBM", unit="it", leave=True)
    total_repairs = sum(int(h.get("n_repairs", 0)) for h in gmm.history_)
    converged = True
    last_change = float("nan")
    try:
        for stage in range(start_stage, len(sizes)):
            if stage > 0:
                gmm = split_components(gmm, sizes[stage] - gmm.n_components, cfg.split_epsilon)
            final = stage == len(sizes) - 1
            n_iter = planned[stage] + (cfg.final_max_iterations if final else 0)
            lls: list[float] = []
            for it in range(n_iter):
                stats = _accumulate_source(gmm, shards, step, engine)
                ll = stats.log_likelihood / stats.n_frames
                w, mu, v, repairs = estimate(
                    stats,
                    var_floor=floor,
                    min_count=cfg.min_count,
                    min_weight=cfg.min_weight,
                    split_epsilon=cfg.split_epsilon,
                )
                total_repairs += repairs
                if repairs:
                    log.info(
                        "stage %d iteration %d: re-seeded %d dead component(s)", stage, it, repairs
                    )
                entry = {
                    "stage": stage,
                    "n_components": gmm.n_components,
                    "iteration": it,
                    "log_likelihood": ll,
                    "n_repairs": repairs,
                }
                gmm = make(w, mu, v, [*gmm.history_, entry])
                lls.append(ll)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(K=gmm.n_components, ll=f"{ll:.4f}")
                if final and len(lls) >= 2:
                    last_change = (lls[-1] - lls[-2]) / max(abs(lls[-1]), 1e-12)
                    if it + 1 >= planned[stage] and abs(last_change) < cfg.tolerance:
                        break
            else:
                if final and cfg.final_max_iterations > 0:
                    converged = False
            log.info(
                "stage %d/%d: %d components, %d iterations, log-likelihood/frame %s",
                stage,
                len(sizes) - 1,
                gmm.n_components,
                len(lls),
                f"{lls[0]:.4f} -> {lls[-1]:.4f}" if lls else "n/a",
            )
            if ckpt_dir is not None:
                gmm.save(
                    ckpt_dir / f"ubm_stage{stage:03d}_k{gmm.n_components}.h5",
                    extra_attrs={"checkpoint_key": key, "stage": stage},
                )
    finally:
        if bar is not None:
            bar.close()
    if not converged:
        warnings.warn(
            f"UBM training stopped after final_max_iterations={cfg.final_max_iterations} "
            f"without reaching tolerance={cfg.tolerance} (last relative log-likelihood "
            f"change {last_change:.2g}); raise final_max_iterations for a fully converged model",
            ConvergenceWarning,
            stacklevel=2,
        )
    if total_repairs:
        log.warning("UBM training re-seeded %d dead component(s) in all", total_repairs)
    return gmm
