"""Labelled trials from the background speakers, to train the score calibration on.

Each background speaker is split like a target speaker: a model enrolled on its first
``per_model`` utterances (sorted ids) and test utterances from the rest. A speaker with a
single utterance gives a model on the first half of its frames and a test segment of the
second half. Every model is scored against every test utterance or segment of its group:
same-speaker pairs are targets, the others non-targets.

The background speakers trained the UBM, and a UBM fits its own speakers: their LLRs are
compressed (on Arabic Speech Commands the target mean was 0.12 against 1.16 for the
held-out targets), and a calibration fitted on them is far too steep. So the speakers are
split into the groups of :mod:`gmmspeech.decisions.heldout`, and the trials of a group are
scored with the UBM re-estimated without that group, and normalised with the cohort rule
of that module (the cohort speakers of the group, under the same UBM): target speakers,
too, are unseen by the UBM, and so is their cohort.

A MAP model moves each mean by ``n_c / (n_c + r)`` of the way to its data (``n_c`` the
component's frame count, ``r`` the relevance factor), so the scale of the scores grows with
the enrolment speech. A calibration fitted on background models enrolled on much less (or
more) speech than the targets does not transfer: on the LibriSpeech samples (one utterance
per background speaker, so half-utterance models of about 6 s against targets enrolled on a
minute) the background scores are about 4 times narrower than the target ones, and the fitted
calibration is far too steep. Enrolling the background models with a relevance factor scaled
by the frame ratio was tried and is worse: the means of 6 s models are noisy and the
non-target scores shift down. :func:`enrolment_mismatch` detects the case instead.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..corpus.trials import TrialList
from ..engine import Engine
from ..features.store import FeatureStore
from ..mixture.gmm import DiagGMM
from ..mixture.speakermodels import SpeakerModels, enroll
from .scoring import ModelBank, score_matrix

#: A calibration has two parameters: a few hundred target trials fit it well, so the
#: trials are capped to keep this stage small next to scoring on large corpora.
MAX_SPEAKERS = 300
MAX_TESTS_PER_SPEAKER = 10
#: A single-utterance speaker needs this many frames to give two usable halves.
MIN_FRAMES_TO_HALVE = 100

_FIRST, _SECOND = "#enrol-half", "#test-half"


class Segments(Mapping[str, np.ndarray]):
    """Features (n_frames, D) of whole utterances of a store, or of the halves of some.

    Parameters
    ----------
    store : FeatureStore
    halved : set of str
        Utterances that are also available as ``<utt>#enrol-half`` (first half of the
        frames) and ``<utt>#test-half`` (second half).
    """

    def __init__(self, store: FeatureStore, halved: set[str]) -> None:
        self.store = store
        self.halved = halved

    def _source(self, key: str) -> tuple[str, int]:
        for suffix, part in ((_FIRST, 0), (_SECOND, 1)):
            if key.endswith(suffix) and key[: -len(suffix)] in self.halved:
                return key[: -len(suffix)], part
        return key, -1

    def __getitem__(self, key: str) -> np.ndarray:
        utt, part = self._source(key)
        x = np.asarray(self.store[utt])
        if part < 0:
            return x
        mid = x.shape[0] // 2
        return x[:mid] if part == 0 else x[mid:]

    def num_frames(self, key: str) -> int:
        """Frames of ``key`` (a whole utterance or a half) from the store's index."""
        utt, part = self._source(key)
        n = self.store.num_frames(utt)
        return n if part < 0 else (n // 2 if part == 0 else n - n // 2)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        return self._source(key)[0] in self.store

    def __iter__(self) -> Iterator[str]:
        return iter(self.store)

    def __len__(self) -> int:
        return len(self.store)


@dataclass
class BackgroundSplit:
    """Enrolment and test ids of the background speakers.

    Attributes
    ----------
    enroll : dict of str to list of str
        Speaker -> the ids its model is enrolled on.
    test_spk : dict of str to str
        Test id -> its speaker.
    features : Segments
        Features of every id above.
    """

    enroll: dict[str, list[str]]
    test_spk: dict[str, str]
    features: Segments

    def enrol_frames(self) -> list[int]:
        """Enrolment frames of each model."""
        return [sum(self.features.num_frames(u) for u in utts) for utts in self.enroll.values()]


def split_background(
    spk2utt: Mapping[str, Sequence[str]], store: FeatureStore, per_model: int
) -> BackgroundSplit:
    """Split each background speaker into a model and test utterances (module docstring).

    Parameters
    ----------
    spk2utt : mapping of str to sequence of str
        Background speakers and their utterances that have features in ``store``.
    store : FeatureStore
    per_model : int
        Enrolment utterances per model (fewer when a speaker has fewer than
        ``per_model + 1``).
    """
    speakers = sorted(spk2utt)
    if len(speakers) > MAX_SPEAKERS:  # spread over the sorted ids, not the first ones
        speakers = [speakers[i] for i in np.linspace(0, len(speakers) - 1, MAX_SPEAKERS, dtype=int)]
    halved: set[str] = set()
    enrol: dict[str, list[str]] = {}
    test_spk: dict[str, str] = {}
    for spk in speakers:
        utts = sorted(spk2utt[spk])
        if len(utts) == 1:
            if np.asarray(store[utts[0]]).shape[0] < MIN_FRAMES_TO_HALVE:
                continue
            halved.add(utts[0])
            enrol[spk], tests = [utts[0] + _FIRST], [utts[0] + _SECOND]
        else:
            n = min(per_model, len(utts) - 1)
            enrol[spk], rest = utts[:n], utts[n:]
            step = math.ceil(len(rest) / MAX_TESTS_PER_SPEAKER)
            tests = rest[::step]
        for t in tests:
            test_spk[t] = spk
    return BackgroundSplit(enrol, test_spk, Segments(store, halved))


#: Background models enrolled on more than this factor less (or more) speech than the
#: target models give scores on another scale (module docstring).
MAX_ENROL_RATIO = 2.0


def enrolment_mismatch(frames: float, target_frames: float) -> float | None:
    """The ratio ``frames / target_frames`` of the median enrolment frames of the background
    and target models when it is beyond :data:`MAX_ENROL_RATIO` either way, else None.

    Examples
    --------
    >>> enrolment_mismatch(500.0, 3000.0)
    0.16666666666666666
    >>> enrolment_mismatch(2500.0, 3000.0) is None
    True
    """
    if frames <= 0 or target_frames <= 0:
        return None
    ratio = frames / target_frames
    return ratio if max(ratio, 1.0 / ratio) > MAX_ENROL_RATIO else None


def score_background(
    ubm: DiagGMM,
    split: BackgroundSplit,
    *,
    relevance_factor: float,
    adapt: str,
    method: str,
    top_c: int | None,
    engine: Engine | None = None,
    progress: bool = False,
) -> tuple[TrialList, np.ndarray, SpeakerModels]:
    """Enrol the background models and score every (model, test id) pair.

    Returns
    -------
    trials : TrialList
        Labelled (target: same speaker), sorted by model then test id.
    scores : ndarray, shape (n_trials,)
        Raw LLRs.
    models : SpeakerModels
        The background models (for a cohort normalisation of these trials).
    """
    models = enroll(
        ubm, split.features, split.enroll, relevance_factor=relevance_factor, adapt=adapt
    )
    tests = sorted(split.test_spk)
    matrix = score_matrix(
        ubm,
        ModelBank(ubm, models),
        split.features,
        tests,
        method=method,
        top_c=top_c,
        progress=progress,
        engine=engine,
    )
    ids = list(models.ids)
    model_ids = [m for m in ids for _ in tests]
    test_ids = [t for _ in ids for t in tests]
    is_target = np.array([split.test_spk[t] == m for m, t in zip(model_ids, test_ids, strict=True)])
    return TrialList(model_ids, test_ids, is_target), matrix.reshape(-1), models


__all__ = [
    "BackgroundSplit",
    "Segments",
    "enrolment_mismatch",
    "score_background",
    "split_background",
]
