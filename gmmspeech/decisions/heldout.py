"""Held-out UBMs, the one home of "score under a model that has not seen these speakers".

The background speakers trained the UBM, and a UBM fits its own speakers: their scores are
compressed, so a cohort drawn from them gives too-low cohort statistics, and calibration
trials built from them a too-steep calibration. So the background speakers are dealt into
:data:`GROUPS` groups, and for each group the UBM is re-estimated without the group's frames
(one E-step under the UBM, one M-step: most of the way to a UBM that never saw them).
:func:`build_heldout_ubms` is the only place that does this; an experiment builds them once
in its ``ubm`` stage and saves them (``ubm/heldout_<g>.h5``, recording the speakers held
out and the UBM they came from); every consumer loads them.

The cohort rule (:func:`heldout_parts`), one for every trial: a trial is normalised with the
cohort speakers of each held-out model that has seen none of the trial's speakers, scored
under that model (with the trial's own speaker left out). Evaluation trials (target
speakers, unseen by all) get every part of the cohort; calibration trials of group ``g``
get the cohort speakers of group ``g``, scored under the model without ``g``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py

from ..errors import DataError, ModelMismatchError
from ..features.store import FeatureStore
from ..mixture.em import accumulate_shard, estimate
from ..mixture.gmm import DiagGMM
from ..mixture.speakermodels import ubm_fingerprint
from .cohort import CohortPart, Scorer

log = logging.getLogger(__name__)

#: Groups of background speakers, each held out from one re-estimated UBM.
GROUPS = 2
#: Speakers a group needs (calibration trials need targets and non-targets in a group).
MIN_GROUP = 2


#: What ``scoring.norm: auto`` chooses when the background set allows it: adaptive S-norm
#: measured best, calibrated, on the speaker recipes (docs/rationale.md, "Score norm").
AUTO_NORM = "as"
#: Background speakers ``auto`` needs for a cohort (fewer: no normalisation). On the Arabic
#: recipe AS-norm with a cohort of 8 speakers was worse than none on EER, minDCF and Cllr,
#: 12 was mixed and all 18 better on every figure (docs/guide/scoring.md).
AUTO_MIN_SPEAKERS = 16


def choose_norm(requested: str, n_speakers: int) -> tuple[str, str]:
    """The normalisation to apply for ``scoring.norm: requested`` with ``n_speakers``
    background speakers, and why (a phrase for the log and ``results.json``).

    Only ``auto`` depends on the data: :data:`AUTO_NORM` with at least
    :data:`AUTO_MIN_SPEAKERS` speakers, else ``none``. A named method is kept as asked.
    """
    if requested != "auto":
        return requested, "as configured"
    if n_speakers >= AUTO_MIN_SPEAKERS:
        return AUTO_NORM, f"auto: {n_speakers} background speakers for the cohort"
    return "none", (
        f"auto: only {n_speakers} background speakers, a cohort needs at least "
        f"{AUTO_MIN_SPEAKERS}; scores are not normalised"
    )


def needs_heldout(norm: str, calibrate: bool, calibration_trials: str) -> bool:
    """Whether an experiment scores anything under held-out models: a cohort
    (``scoring.norm`` other than none) or calibration trials of the background speakers."""
    return norm != "none" or (calibrate and calibration_trials == "background")


def speaker_groups(speakers: Iterable[str], n_groups: int = GROUPS) -> list[list[str]]:
    """``n_groups`` groups of the sorted speakers, dealt in turn (sizes differ by <= 1)."""
    ordered = sorted(speakers)
    return [ordered[g::n_groups] for g in range(n_groups)]


@dataclass(frozen=True)
class HeldoutUBM:
    """A UBM re-estimated without the background speakers ``speakers``.

    Attributes
    ----------
    speakers : tuple of str
        The speakers it has not seen (sorted).
    ubm : DiagGMM
    parent : str
        :func:`gmmspeech.mixture.speakermodels.ubm_fingerprint` of the UBM it came from.
    """

    speakers: tuple[str, ...]
    ubm: DiagGMM
    parent: str

    def has_seen(self, speakers: Iterable[str], background: Iterable[str]) -> bool:
        """Whether any of ``speakers`` trained it: a background speaker not held out."""
        bg, out = set(background), set(self.speakers)
        return any(s in bg and s not in out for s in speakers)


def build_heldout_ubms(
    ubm: DiagGMM,
    store: FeatureStore,
    spk2utt: Mapping[str, Sequence[str]],
    *,
    min_count: float,
    min_weight: float,
    chunk_size: int,
    n_groups: int = GROUPS,
) -> list[HeldoutUBM]:
    """One :class:`HeldoutUBM` per group of :func:`speaker_groups` of ``spk2utt`` (the
    background speakers the UBM was trained on, with their utterances in ``store``).

    Returns an empty list when a group would have fewer than :data:`MIN_GROUP` speakers
    (see :func:`require`).
    """
    groups = speaker_groups(spk2utt, n_groups)
    if min(len(g) for g in groups) < MIN_GROUP:
        log.info("held-out UBMs: %d background speakers are too few", len(spk2utt))
        return []
    parent = ubm_fingerprint(ubm)
    floor = ubm.var_floor if ubm.var_floor is not None else ubm.variances.min(axis=0)
    out = []
    for g, group in enumerate(groups, 1):
        inside = set(group)
        others = [u for spk in sorted(spk2utt) if spk not in inside for u in spk2utt[spk]]
        log.info("held-out UBM %d/%d: without %d speakers", g, len(groups), len(group))
        stats = accumulate_shard(store.select(others), (ubm, chunk_size))
        w, m, v, _ = estimate(
            stats, var_floor=floor, min_count=min_count, min_weight=min_weight, split_epsilon=0.5
        )
        model = DiagGMM(
            w, m, v, var_floor=ubm.var_floor, feature_config=ubm.feature_config, config=ubm.config
        )
        out.append(HeldoutUBM(tuple(group), model, parent))
    return out


def heldout_path(folder: str | os.PathLike[str], g: int) -> Path:
    """Where the ``g``-th (from 1) held-out UBM of an experiment lives."""
    return Path(folder) / f"heldout_{g}.h5"


def save_heldout(h: HeldoutUBM, path: str | os.PathLike[str]) -> None:
    """Write ``h`` (a DiagGMM file with the held-out speakers and the parent fingerprint)."""
    h.ubm.save(
        path,
        extra_attrs={"held_out_speakers": json.dumps(list(h.speakers)), "parent_ubm": h.parent},
    )


def load_heldout(path: str | os.PathLike[str], ubm: DiagGMM) -> HeldoutUBM:
    """Read a held-out UBM written by :func:`save_heldout` and check it came from ``ubm``.

    Raises
    ------
    ModelMismatchError
        It was re-estimated from another UBM.
    ModelFormatError, DataError
        Not a held-out UBM file.
    """
    model = DiagGMM.load(path)
    try:
        with h5py.File(path, "r") as f:
            speakers = json.loads(str(f.attrs["held_out_speakers"]))
            parent = str(f.attrs["parent_ubm"])
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"{path}: not a held-out UBM (no held-out speakers: {exc})") from None
    if not isinstance(speakers, list) or not all(isinstance(s, str) for s in speakers):
        raise DataError(f"{path}: held_out_speakers: expected a list of speaker ids")
    if parent != ubm_fingerprint(ubm):
        raise ModelMismatchError(
            f"{path}: re-estimated from another UBM than the one given (fingerprint "
            f"{parent[:16]}, the UBM's {ubm_fingerprint(ubm)[:16]}); rebuild it with that UBM"
        )
    return HeldoutUBM(tuple(speakers), model, parent)


def require(heldout: Sequence[HeldoutUBM], n_background: int, where: object) -> None:
    """Raise a one-line DataError naming ``where`` when there are no held-out UBMs."""
    if not heldout:
        raise DataError(
            f"{where}: held-out UBMs need at least {GROUPS * MIN_GROUP} background speakers "
            f"with audio ({n_background} here); set scoring.norm: none and "
            f"scoring.calibrate: false"
        )


def cohort_speakers(spk2utt: Mapping[str, Sequence[str]], size: int | None) -> dict[str, list[str]]:
    """The cohort: the first ``size`` (all: None) speakers of ``spk2utt`` in sorted order,
    utterances sorted."""
    return {k: sorted(spk2utt[k]) for k in sorted(spk2utt)[:size]}


def heldout_parts(
    heldout: Sequence[HeldoutUBM],
    cohort: Mapping[str, Sequence[str]],
    background: Iterable[str],
    trial_speakers: Iterable[str],
    scorer: Callable[[int, HeldoutUBM], Scorer],
) -> list[CohortPart]:
    """The cohort rule (module docstring): for each held-out model ``g`` that has seen none of
    ``trial_speakers``, the cohort speakers it has not seen, scored by ``scorer(g, h)``.

    Raises
    ------
    DataError
        No part is left (every held-out model has seen a trial speaker).
    """
    bg, spk = set(background), set(trial_speakers)
    parts = []
    for g, h in enumerate(heldout):
        if h.has_seen(spk, bg):
            continue
        out = set(h.speakers)
        part = {k: list(v) for k, v in cohort.items() if k in out}
        if part:
            parts.append(CohortPart(part, scorer(g, h)))
    if not parts:
        raise DataError(
            "cohort: every held-out UBM has seen a speaker of the trials or holds out no "
            "cohort speaker; use a larger scoring.cohort_size"
        )
    return parts


__all__ = [
    "GROUPS",
    "MIN_GROUP",
    "HeldoutUBM",
    "build_heldout_ubms",
    "cohort_speakers",
    "heldout_parts",
    "heldout_path",
    "load_heldout",
    "needs_heldout",
    "require",
    "save_heldout",
    "speaker_groups",
]
