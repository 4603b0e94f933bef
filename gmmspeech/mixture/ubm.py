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
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from numpy.typing import ArrayLike
from tqdm.auto import tqdm

from ..config.loader import did_you_mean
from ..config.sections import UBMConfig, config_hash, to_dict
from ..engine import Engine, LocalEngine, map_reduce
from ..errors import ConfigError, ConvergenceWarning, DataError, ModelFormatError
from ..features.framesource import FrameSource, Moments, as_source, shard_moments
from ..features.store import FeatureStore
from .em import (
    FAR_OUT,
    Chunked,
    accumulate_shard,
    em_step,
    estimate,
    floor_scale,
    robust_variance,
    sample_shard,
    split_components,
    split_order,
    split_plan,
    variance_floor,
)
from .gmm import DiagGMM
from .selection import (
    AUTO_MIN_COMPONENTS,
    MIN_POST,
    N_SELECT,
    SelectionPass,
    accumulate_selected_shard,
    selection_dtype,
    selection_quality,
)
from .stats import SufficientStats

__all__ = [
    "Schedule",
    "accumulate_shard",
    "em_step",
    "estimate",
    "floor_scale",
    "robust_variance",
    "sample_shard",
    "split_components",
    "split_plan",
    "train_ubm",
    "variance_floor",
]

log = logging.getLogger(__name__)

_MIN_FRAMES_PER_COMPONENT = 10
# the robust scale is taken from at most this many frames (every n-th), a bounded sample
_ROBUST_SAMPLE_FRAMES = 100_000
# frames on which a selected run measures the posterior mass its selections kept
_QUALITY_FRAMES = 5_000
_CHECKPOINT_RE = re.compile(r"^ubm_stage(\d{3})_k(\d+)\.h5$")


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


def _fingerprint(source: FrameSource, *arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(f"{source.n_frames}:{source.n_features}".encode())
    for arr in arrays:
        h.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Model sizes and EM iterations stage by stage.

    Attributes
    ----------
    sizes : list of int
        Components after each stage's split (:func:`split_plan`); stage 0 is one Gaussian.
    planned : list of int
        EM iterations of each stage: 1 for stage 0, then ``iterations_per_stage`` (its last
        entry repeated). The final stage runs at least its planned iterations, then continues
        until the relative log-likelihood change falls below ``tolerance``, at most
        ``final_max_iterations`` more.
    final_max_iterations : int
    """

    sizes: list[int]
    planned: list[int]
    final_max_iterations: int

    @classmethod
    def from_config(cls, cfg: UBMConfig) -> Schedule:
        """The schedule of ``cfg`` (``n_components``, ``iterations_per_stage``, ...)."""
        sizes = split_plan(int(cfg.n_components))
        per = cfg.iterations_per_stage
        planned = [1] + [per[min(j - 1, len(per) - 1)] for j in range(1, len(sizes))]
        return cls(sizes, planned, int(cfg.final_max_iterations))

    @property
    def final(self) -> int:
        """Index of the final stage."""
        return len(self.sizes) - 1

    def max_iterations(self, start_stage: int = 0) -> int:
        """The most EM iterations a run from ``start_stage`` can take (for progress bars)."""
        extra = self.final_max_iterations if start_stage <= self.final else 0
        return sum(self.planned[start_stage:]) + extra


class _Checkpoints:
    """Models saved after every stage in ``folder``, tagged with the run's ``key`` (a hash of
    the config and the data), so that a run resumes only from its own checkpoints."""

    def __init__(self, folder: str | os.PathLike[str] | None, key: str) -> None:
        self.folder = Path(folder) if folder is not None else None
        self.key = key
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)

    def newest(self) -> tuple[int, DiagGMM] | None:
        """The newest readable checkpoint written for this key, as (stage, model)."""
        if self.folder is None or not self.folder.is_dir():
            return None
        found = []
        for p in self.folder.iterdir():
            m = _CHECKPOINT_RE.match(p.name)
            if m:
                found.append((int(m.group(1)), p))
        for stage, path in sorted(found, reverse=True):
            try:
                gmm = DiagGMM.load(path)
                with h5py.File(path, "r") as f:
                    got = f.attrs.get("checkpoint_key")
            except (ModelFormatError, OSError) as exc:
                log.warning("ignoring unreadable checkpoint %s (%s)", path, exc)
                continue
            if got == self.key:
                return stage, gmm
            log.info("ignoring checkpoint %s: written for other data or config", path)
        return None

    def save(self, stage: int, gmm: DiagGMM) -> None:
        if self.folder is not None:
            gmm.save(
                self.folder / f"ubm_stage{stage:03d}_k{gmm.n_components}.h5",
                extra_attrs={"checkpoint_key": self.key, "stage": stage},
            )


def _use_progress(progress: bool | None) -> bool:
    if progress is not None:
        return bool(progress)
    return sys.stderr.isatty()


@dataclasses.dataclass
class _Trainer:
    """One training run's data, floor and options; runs EM iterations and stages."""

    cfg: UBMConfig
    shards: list[Chunked]
    engine: Engine
    floor: np.ndarray
    feature_config: dict[str, Any] | None
    model_config: dict[str, Any]
    mean: np.ndarray
    var: np.ndarray
    bar: tqdm | None = None
    # Gaussian selection state: each shard's frames' selected components; the components
    # born since the last pass (split off or re-seeded), each mapped to the component whose
    # frames take it as a candidate at the next pass; the re-seeded ones (they moved)
    selections: list[np.ndarray] | None = None
    parent_of: dict[int, int] = dataclasses.field(default_factory=dict)
    moved: list[int] = dataclasses.field(default_factory=list)
    last_selected: DiagGMM | None = None

    def selects(self, k: int) -> bool:
        """Whether EM at K=k runs with Gaussian selection."""
        return (
            self.cfg.selection == "auto"
            and k >= max(AUTO_MIN_COMPONENTS, 2 * N_SELECT)
            and selection_dtype(k) == np.int16
        )

    def follow(self, parent: int, child: int, moved: bool = False) -> None:
        """Note a component born from ``parent``: the frames that selected ``parent`` (or,
        if it was itself born since the last pass, its own parent) take it as a candidate."""
        self.parent_of[child] = self.parent_of.get(parent, parent)
        if moved:
            self.moved.append(child)

    def split(self, gmm: DiagGMM, n_new: int) -> DiagGMM:
        """Split ``gmm`` by ``n_new`` components and note the children for the selections."""
        k = gmm.n_components
        if self.selections is not None:
            for j, src in enumerate(split_order(gmm, n_new)):
                self.follow(int(src), k + j)
        return split_components(gmm, n_new, self.cfg.split_epsilon)

    def children(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The pending births as ``(children (k, m), moved)`` for an ``expand`` pass (-1
        pads), and forget them."""
        by_parent: dict[int, list[int]] = {}
        for child, parent in self.parent_of.items():
            by_parent.setdefault(parent, []).append(child)
        table = np.full((k, max(len(c) for c in by_parent.values())), -1, dtype=np.int64)
        for parent, kids in by_parent.items():
            table[parent, : len(kids)] = kids
        moved = np.array(self.moved, dtype=np.int64)
        self.parent_of, self.moved = {}, []
        return table, moved

    def accumulate(self, gmm: DiagGMM) -> tuple[SufficientStats, str | None]:
        """The E-step over all shards: dense, or with selection (returns the pass's mode)."""
        cfg = self.cfg
        if not self.selects(gmm.n_components):
            self.selections = None
            stats = map_reduce(self.engine, accumulate_shard, self.shards, (gmm, cfg.chunk_size))
            return stats, None
        children = moved = None
        if self.selections is None:
            mode = "dense"
            self.parent_of, self.moved = {}, []
        elif self.parent_of:
            mode = "expand"
            children, moved = self.children(gmm.n_components)
        else:
            mode = "reuse"
        shared = SelectionPass(
            gmm, cfg.chunk_size, mode, N_SELECT, children, moved, min_post=MIN_POST
        )
        old: list[np.ndarray | None] = (
            list(self.selections) if self.selections else [None] * len(self.shards)
        )
        window = 4 * max(1, int(self.engine.parallelism))
        items = list(zip(self.shards, old, strict=True))
        total: SufficientStats | None = None
        new: list[np.ndarray] = []
        for st, sel in self.engine.imap(accumulate_selected_shard, items, shared, window=window):
            total = st if total is None else total + st
            new.append(sel)
        if total is None:
            raise DataError("no frames were accumulated; cannot estimate a model")
        self.selections = new
        self.last_selected = gmm
        return total, mode

    def selection_report(self) -> dict[str, float]:
        """How much dense posterior mass the last pass's selections kept, on up to 5000
        frames of the first shard (one dense pass over them): mean, 1st percentile and the
        fraction of frames whose selection holds their exact top 5."""
        if self.selections is None or self.last_selected is None:
            return {}
        gmm = self.last_selected
        n = min(_QUALITY_FRAMES, self.selections[0].shape[0])
        blocks, got = [], 0
        for block in self.shards[0].chunks(self.cfg.chunk_size):
            # copied: a store hands out every chunk in one reused buffer
            blocks.append(np.array(block[: n - got], dtype=np.float32, copy=True))
            got += blocks[-1].shape[0]
            if got >= n:
                break
        mass, top5 = selection_quality(gmm, np.concatenate(blocks), self.selections[0][:n])
        return {
            "selection_mass_mean": float(mass.mean()),
            "selection_mass_p1": float(np.percentile(mass, 1)),
            "selection_top5": top5,
        }

    def make(
        self, w: np.ndarray, mu: np.ndarray, v: np.ndarray, history: list[dict[str, Any]]
    ) -> DiagGMM:
        return DiagGMM(
            w,
            mu,
            v,
            feature_config=self.feature_config,
            config=self.model_config,
            history=history,
            var_floor=self.floor,
        )

    def start(self, checkpoints: _Checkpoints) -> tuple[int, DiagGMM]:
        """(first stage to run, model entering it): after the newest matching checkpoint,
        or stage 0 with one Gaussian of the data's mean and (floored) variance."""
        resumed = checkpoints.newest()
        if resumed is None:
            var = np.maximum(self.var, self.floor)[None, :]
            return 0, self.make(np.ones(1), self.mean[None, :], var, [])
        stage, m = resumed
        log.info("resuming from checkpoint of stage %d (%d components)", stage, m.n_components)
        return stage + 1, self.make(m.weights, m.means, m.variances, m.history_)

    def iteration(self, gmm: DiagGMM, stage: int, it: int) -> tuple[DiagGMM, float]:
        """One EM iteration over all shards; returns the new model and the mean
        log-likelihood per frame of the data under ``gmm``."""
        cfg = self.cfg
        stats, mode = self.accumulate(gmm)
        ll = stats.log_likelihood / stats.n_frames
        reseeded: list[tuple[int, int]] = []
        w, mu, v, repairs = estimate(
            stats,
            var_floor=self.floor,
            min_count=cfg.min_count,
            min_weight=cfg.min_weight,
            split_epsilon=cfg.split_epsilon,
            reseeded=reseeded,
        )
        if repairs:
            log.info("stage %d iteration %d: re-seeded %d dead component(s)", stage, it, repairs)
        if mode is not None:
            # a re-seeded component sits by the one it was split off, where no frame's
            # selection looks: the frames that selected that one evaluate it next
            for parent, dead in reseeded:
                self.follow(parent, dead, moved=True)
        entry: dict[str, Any] = {
            "stage": stage,
            "n_components": gmm.n_components,
            "iteration": it,
            "log_likelihood": ll,
            "n_repairs": repairs,
        }
        if mode is not None:
            # the log-likelihood is then that of each frame's selected components only
            entry["selection"] = mode
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(K=gmm.n_components, ll=f"{ll:.4f}")
        return self.make(w, mu, v, [*gmm.history_, entry]), ll

    def stage(self, gmm: DiagGMM, stage: int, n_iter: int) -> tuple[DiagGMM, list[float]]:
        """``n_iter`` EM iterations."""
        lls: list[float] = []
        for it in range(n_iter):
            gmm, ll = self.iteration(gmm, stage, it)
            lls.append(ll)
        return gmm, lls

    def final_stage(
        self, gmm: DiagGMM, stage: int, planned: int
    ) -> tuple[DiagGMM, list[float], float | None]:
        """At least ``planned`` iterations, then on until the relative log-likelihood change
        is below ``tolerance``, at most ``final_max_iterations`` more. The third result is the
        last relative change if the cap stopped it before convergence, else None."""
        cfg = self.cfg
        lls: list[float] = []
        change = float("nan")
        for it in range(planned + cfg.final_max_iterations):
            gmm, ll = self.iteration(gmm, stage, it)
            lls.append(ll)
            if len(lls) >= 2:
                change = (lls[-1] - lls[-2]) / max(abs(lls[-1]), 1e-12)
                if it + 1 >= planned and abs(change) < cfg.tolerance:
                    return gmm, lls, None
        return gmm, lls, (change if cfg.final_max_iterations > 0 else None)

    def run(
        self, gmm: DiagGMM, plan: Schedule, start_stage: int, checkpoints: _Checkpoints
    ) -> tuple[DiagGMM, float | None]:
        """Stages ``start_stage`` to the end of ``plan`` from ``gmm``, each ending with a
        checkpoint; returns the model and the final stage's unconverged change (or None)."""
        unconverged: float | None = None
        for stage in range(start_stage, len(plan.sizes)):
            if stage > 0:
                gmm = self.split(gmm, plan.sizes[stage] - gmm.n_components)
            if stage == plan.final:
                gmm, lls, unconverged = self.final_stage(gmm, stage, plan.planned[stage])
            else:
                gmm, lls = self.stage(gmm, stage, plan.planned[stage])
            log.info(
                "stage %d/%d: %d components, %d iterations, log-likelihood/frame %s",
                stage,
                plan.final,
                gmm.n_components,
                len(lls),
                f"{lls[0]:.4f} -> {lls[-1]:.4f}" if lls else "n/a",
            )
            checkpoints.save(stage, gmm)
        quality = self.selection_report()
        if quality and gmm.history_:
            gmm.history_[-1].update(quality)
            log.info(
                "Gaussian selection kept %.4f of the posterior mass per frame (1st percentile "
                "%.4f); the exact top 5 in %.1f %% of the frames",
                quality["selection_mass_mean"],
                quality["selection_mass_p1"],
                100 * quality["selection_top5"],
            )
        return gmm, unconverged


def _prepare(
    X: ArrayLike | FeatureStore | Iterable[ArrayLike | FeatureStore],
    cfg: UBMConfig,
    feature_config: dict[str, Any] | None,
    engine: Engine,
) -> tuple[_Trainer, str]:
    """Check the data, compute its moments and the variance floor (one pass over the data).

    Returns the trainer and the checkpoint key (a hash of the config and the data).
    """
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
    shards = source.shards(cfg.shard_frames)
    moments: Moments = map_reduce(engine, shard_moments, shards, cfg.chunk_size)
    mean, var = moments.mean, moments.var
    if not (var > 0).any():
        raise DataError(
            f"X: all {source.n_frames} frames are identical; a GMM needs some spread in the data"
        )
    stride = max(1, -(-source.n_frames // _ROBUST_SAMPLE_FRAMES))
    parts = [p for p in engine.map(sample_shard, shards, (cfg.chunk_size, stride)) if p.size]
    scale, n_far = floor_scale(var, np.concatenate(parts))
    if n_far:
        warnings.warn(
            f"X: about {n_far * stride} of {source.n_frames} frames lie more than "
            f"{FAR_OUT:g} robust standard deviations from the median (plain variance up to "
            f"{float(np.max(var / np.maximum(scale, 1e-300))):.3g} x the median-based one); "
            f"the variance floor ignores them, but check the features for corrupt frames",
            stacklevel=3,
        )
    floor = variance_floor(scale, cfg.var_floor_ratio)
    cfg_dict = to_dict(cfg)
    key = f"{config_hash(cfg_dict)}-{_fingerprint(source, mean, var, floor)}"
    model_config = {**cfg_dict, "n_frames": source.n_frames}
    trainer = _Trainer(cfg, shards, engine, floor, feature_config, model_config, mean, var)
    return trainer, key


def train_ubm(
    X: ArrayLike | FeatureStore | Iterable[ArrayLike | FeatureStore],
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

    Examples
    --------
    Two groups of frames in the plane, found by splitting one Gaussian:

    >>> from gmmspeech import train_ubm
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(-3, 1, (400, 2)), rng.normal(3, 1, (400, 2))])
    >>> ubm = train_ubm(X, 2, progress=False)
    >>> ubm.n_components, np.sort(ubm.means[:, 0]).round(0).tolist()
    (2, [-3.0, 3.0])
    """
    if random_state is not None:
        options["random_state"] = int(random_state)
    cfg = _resolve_config(config, n_components, options)
    engine = engine if engine is not None else LocalEngine()
    trainer, key = _prepare(X, cfg, feature_config, engine)
    plan = Schedule.from_config(cfg)
    checkpoints = _Checkpoints(checkpoint_dir, key)
    start_stage, gmm = trainer.start(checkpoints)
    total = plan.max_iterations(start_stage)
    show = _use_progress(progress) and total > 0
    with tqdm(total=total, desc="UBM", unit="it", disable=not show) as bar:
        trainer.bar = bar if show else None
        gmm, unconverged = trainer.run(gmm, plan, start_stage, checkpoints)
        # the total is the cap of the final stage; it ends when it converges: end at 100 %
        bar.total = bar.n
        bar.refresh()
    _report(cfg, gmm, unconverged)
    return gmm


def _report(cfg: UBMConfig, gmm: DiagGMM, unconverged: float | None) -> None:
    """Warn when the final stage hit its cap; log the dead-component repairs of the run."""
    if unconverged is not None:
        warnings.warn(
            f"UBM training stopped after final_max_iterations={cfg.final_max_iterations} "
            f"without reaching tolerance={cfg.tolerance} (last relative log-likelihood "
            f"change {unconverged:.2g}); raise final_max_iterations for a fully converged model",
            ConvergenceWarning,
            stacklevel=3,
        )
    repairs = sum(int(h.get("n_repairs", 0)) for h in gmm.history_)
    if repairs:
        log.warning("UBM training re-seeded %d dead component(s) in all", repairs)
