"""Data preparation: speaker splits, enrolment protocols, trial lists and folds.

Used by ``gmmspeech prepare`` and by the experiment pipeline alike (building a data
directory from a folder of audio is :mod:`gmmspeech.corpus.layout`):

- :func:`split_speakers` makes background / enrolment / test sets (a seeded fraction, the
  first N utterances of each speaker, or labels), :func:`make_trials` all-pairs trial lists,
  and :func:`split_verification` both, with an optional user trial list checked by
  :func:`check_trials`;
- protocols as given: :func:`read_enroll_list` reads enrolment lists (utterance ids, or
  ``<model> <utt>`` lines for multi-session models and models named differently from
  speakers), :func:`single_utterance_models` makes one model per enrolment utterance of a
  trial list;
- :func:`limit_speakers` narrows a data directory down;
- :func:`assign_folds` gives each utterance a cross-validation fold for classification.

The functions log what they drop; they never print.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from .datadir import DataDir
from .tables import read_table
from .trials import TrialList

log = logging.getLogger(__name__)


def split_speakers(
    data: DataDir,
    *,
    background: float = 0.3,
    enroll: float = 0.5,
    enroll_labels: Iterable[str] | None = None,
    enroll_per_speaker: int | None = None,
    seed: int = 0,
) -> tuple[DataDir, DataDir, DataDir]:
    """Split into background speakers and enrolment / test utterances of target speakers.

    Parameters
    ----------
    data : DataDir
    background : float or int
        Speakers set aside for UBM training: a fraction in [0, 1) of the speakers with at
        least two utterances, or (>= 1) their number. Speakers with a single utterance cannot
        be enrolled and tested, so they always go to the background.
    enroll : float
        Fraction in (0, 1) of each target speaker's utterances used for enrolment (at least
        one, and at least one left for test). Ignored when ``enroll_labels`` is given.
    enroll_labels : iterable of str, optional
        Enrol on the utterances with these labels (``utt2label``) and test on the rest,
        e.g. some keywords for enrolment and the others for test.
    enroll_per_speaker : int, optional
        Enrol on the first this many utterances of each target speaker in sorted id order
        and test on the rest (a speaker with no more utterances is enrolled on all of them
        and has no test utterance). Ignored when ``enroll_labels`` is given.
    seed : int
        Seed of the speaker and utterance draws.

    Returns
    -------
    background, enroll, test : DataDir
        Background and target speakers are disjoint; enrolment and test share speakers but
        no utterance.
    """
    if background < 0:
        raise ConfigError(f"background: must be >= 0, got {background!r}")
    if not 0 < enroll < 1:
        raise ConfigError(f"enroll: must be in (0, 1), got {enroll!r}")
    if enroll_per_speaker is not None and enroll_per_speaker < 1:
        raise ConfigError(f"enroll_per_speaker: must be >= 1, got {enroll_per_speaker!r}")
    rng = np.random.default_rng(seed)
    spk2utt = data.spk2utt
    single = [s for s, us in spk2utt.items() if len(us) < 2]
    multi = [s for s, us in spk2utt.items() if len(us) >= 2]
    order = [multi[i] for i in rng.permutation(len(multi))]
    n_bg = int(background) if background >= 1 else int(round(background * len(multi)))
    if n_bg >= len(multi):
        raise ConfigError(
            f"background: {background!r} leaves no target speaker ({len(multi)} speakers have "
            f"two or more utterances); use a smaller value"
        )
    bg_spk = set(single) | set(order[:n_bg])
    targets = sorted(order[n_bg:])
    labels = None if enroll_labels is None else set(enroll_labels)
    if labels is not None and data.utt2label is None:
        raise ConfigError("enroll_labels: the data directory has no utt2label")
    label_of = data.utt2label or {}
    enroll_utts: list[str] = []
    test_utts: list[str] = []
    for spk in targets:
        utts = spk2utt[spk]
        if labels is not None:
            e = [u for u in utts if label_of[u] in labels]
            t = [u for u in utts if label_of[u] not in labels]
        elif enroll_per_speaker is not None:
            e, t = utts[:enroll_per_speaker], utts[enroll_per_speaker:]
        else:
            perm = [utts[i] for i in rng.permutation(len(utts))]
            k = min(max(int(round(enroll * len(utts))), 1), len(utts) - 1)
            e, t = perm[:k], perm[k:]
        enroll_utts += e
        test_utts += t
    bg = data.subset(u for u, s in data.utt2spk.items() if s in bg_spk)
    bg.trials = None
    en = data.subset(enroll_utts)
    en.trials = None
    te = data.subset(test_utts)
    te.trials = None
    log.debug(
        "split: %d background speakers (%d utts), %d target speakers (%d enrol, %d test utts)",
        len(bg_spk),
        len(bg),
        len(targets),
        len(en),
        len(te),
    )
    return bg, en, te


def _model_speakers(enroll: DataDir) -> dict[str, str]:
    """The speaker of each enrolled model (a model enrolled on several speakers is an error)."""
    out: dict[str, str] = {}
    for model, utts in enroll.enrolment.items():
        spks = sorted({enroll.utt2spk[u] for u in utts})
        if len(spks) != 1:
            raise DataError(
                f"model {model!r} is enrolled on utterances of {len(spks)} speakers "
                f"({spks[:3]}); all-pairs trials need one speaker per model, so give a "
                f"labelled trial list"
            )
        out[model] = spks[0]
    return out


def make_trials(enroll: DataDir, test: DataDir, by: str = "spk") -> TrialList:
    """All (model, test utterance) pairs; a target when the test utterance is the model's.

    Parameters
    ----------
    enroll : DataDir
        Its models (:attr:`DataDir.enrolment`: ``model2utt``, else one model per speaker)
        with ``by="spk"``, or its labels with ``by="label"``.
    test : DataDir
    by : {"spk", "label"}

    Returns
    -------
    TrialList
        Labelled, sorted by model, then test utterance; a model's own enrolment utterances
        are never its test utterances.
    """
    if by not in ("spk", "label"):
        raise ConfigError(f"by: must be 'spk' or 'label', got {by!r}")
    if by == "spk":
        owner = _model_speakers(enroll)
        test_owner = test.utt2spk
        own = {m: set(us) for m, us in enroll.enrolment.items()}
    else:
        if enroll.utt2label is None or test.utt2label is None:
            which = "enrolment" if enroll.utt2label is None else "test"
            raise DataError(f"make_trials: the {which} data directory has no utt2label")
        owner = {lab: lab for lab in enroll.utt2label.values()}
        test_owner = test.utt2label
        own = {}
    pairs = [(m, u) for m in sorted(owner) for u in test.wav_scp if u not in own.get(m, ())]
    is_target = np.array([test_owner[u] == owner[m] for m, u in pairs], dtype=bool)
    return TrialList([m for m, _ in pairs], [u for _, u in pairs], is_target)


def check_trials(
    trials: TrialList, enroll: DataDir, test: DataDir, *, rule: str = "the split"
) -> TrialList:
    """Check a user's trial list against the enrolment and the test utterances.

    Parameters
    ----------
    trials : TrialList
        Labelled.
    enroll : DataDir
        The enrolment set; its models are :attr:`DataDir.enrolment`.
    test : DataDir
        The utterances a trial may test.
    rule : str
        How the enrolment was chosen, named in messages (e.g. ``"enroll_per_speaker: 10"``).

    Raises
    ------
    DataError
        ``source:line`` of the first trial whose model is not enrolled, whose test utterance
        is in the enrolment set of its own model (or, when the enrolment was drawn per
        speaker, of any speaker), or is not a test utterance; or the list has no labels.
    """
    if trials.is_target is None:
        raise DataError(f"{trials.source}: the trials need target/nontarget labels")
    models = enroll.enrolment
    kind = "speaker" if enroll.model2utt is None else "model"
    enrolled_in: dict[str, str] = {}
    for m, us in models.items():
        for u in us:
            enrolled_in.setdefault(u, m)
    own = {m: set(us) for m, us in models.items()}
    for i, (m, t) in enumerate(trials.pairs):
        where = trials.where(i)
        if m not in models:
            raise DataError(
                f"{where}: model {m!r} is not an enrolled {kind} ({rule}; e.g. "
                f"{sorted(models)[:3]}); fix the trial list or the enrolment"
            )
        if t in own[m] or (kind == "speaker" and t in enrolled_in):
            owner = m if t in own[m] else enrolled_in[t]
            raise DataError(
                f"{where}: utterance {t!r} is in the enrolment set of {kind} {owner!r} "
                f"({rule}), and the trial list uses it as a test utterance; give the "
                f"enrolment as a list (data.enroll_list) or change the enrolment rule"
            )
        if t not in test.wav_scp:
            raise DataError(
                f"{where}: test utterance {t!r} is not an utterance of the targets (e.g. "
                f"{test.utt_ids[:2]}); fix the trial list or data.targets"
            )
    return trials


def check_enroll_labels(labels: Iterable[str], data: DataDir) -> None:
    """Every enrolment label must be a label (``utt2label``) of ``data``."""
    if data.utt2label is None:
        raise ConfigError("enroll_labels: the data has no utt2label (no label field)")
    known = set(data.utt2label.values())
    unknown = sorted(set(labels) - known)
    if unknown:
        raise ConfigError(
            f"enroll_labels: {unknown[:5]} are not labels of this data (labels: "
            f"{sorted(known)[:10]}...)"
        )


def read_enroll_list(path: str | os.PathLike[str], targets: DataDir) -> dict[str, list[str]]:
    """The models of an enrolment list.

    The list is one of (detected from its first line; ``#`` comments allowed):

    - one utterance id per line: each speaker is a model, enrolled on its listed utterances;
    - ``<model-id> <utt-id> [<utt-id> ...]`` lines: a model may span several lines
      (multi-session models) and be named differently from its speaker.

    Returns
    -------
    dict of str to list of str
        Model id -> sorted utterance ids, sorted by model id.

    Raises
    ------
    DataError
        ``file:line`` of an utterance that is not in ``targets``, a repeated utterance of a
        model, or a line of the other format.
    """
    rows = read_table(
        path,
        min_fields=0,
        max_fields=None,
        comments=True,
        unique=0,
        layout="<utt-id> or <model-id> <utt-id> ...",
    )
    if not rows:
        raise DataError(f"{path}: the enrolment list is empty")
    with_model = bool(rows[0].fields)
    out: dict[str, list[str]] = {}
    for row in rows:
        where = f"{path}:{row.line}"
        if bool(row.fields) != with_model:
            first = "'<model-id> <utt-id>'" if with_model else "'<utt-id>'"
            raise DataError(f"{where}: line 1 reads {first}; write every line that way")
        utts = row.fields if with_model else [row.key]
        for u in utts:
            if u not in targets.wav_scp:
                raise DataError(
                    f"{where}: utterance {u!r} is not an utterance of data.targets (e.g. "
                    f"{targets.utt_ids[:2]}); fix the list or data.targets"
                )
            model = row.key if with_model else targets.utt2spk[u]
            if u in out.get(model, []):
                raise DataError(f"{where}: utterance {u!r} is listed twice for model {model!r}")
            out.setdefault(model, []).append(u)
    return {m: sorted(out[m]) for m in sorted(out)}


def single_utterance_models(trials: TrialList) -> dict[str, list[str]]:
    """One model per enrolment utterance of a trial list (model id = utterance id), as in
    VoxCeleb1's ``veri_test2.txt``."""
    return {m: [m] for m in sorted(set(trials.model_ids))}


@dataclass
class VerificationSets:
    """Background, enrolment and test data directories; the test one holds the trials."""

    background: DataDir
    enroll: DataDir
    test: DataDir

    @property
    def trials(self) -> TrialList:
        if self.test.trials is None:
            raise DataError("the test set has no trial list; prepare it with trials")
        return self.test.trials

    def write(self, folder: str | os.PathLike[str]) -> None:
        """Write ``folder/background``, ``folder/enroll`` and ``folder/test``."""
        for name in ("background", "enroll", "test"):
            getattr(self, name).write(Path(folder) / name)

    def counts(self) -> dict[str, int]:
        """Speakers, models, utterances and trials of each set."""
        labels = self.trials.is_target
        n_tar = 0 if labels is None else int(labels.sum())
        return {
            "background_speakers": len(self.background.spk2utt),
            "background_utts": len(self.background),
            "target_speakers": len(self.enroll.spk2utt),
            "models": len(self.enroll.enrolment),
            "enroll_utts": len(self.enroll),
            "test_utts": len(self.test),
            "trials": len(self.trials),
            "target_trials": n_tar,
            "nontarget_trials": len(self.trials) - n_tar,
        }


def _enrol_rule(
    enroll: float, enroll_labels: Sequence[str] | None, enroll_per_speaker: int | None
) -> str:
    if enroll_labels is not None:
        return f"enroll_labels: {list(enroll_labels)}"
    if enroll_per_speaker is not None:
        return f"enroll_per_speaker: first {enroll_per_speaker} in sorted id order"
    return f"enroll_fraction: a seeded draw of {enroll:g} of each speaker's utterances"


def split_verification(
    targets: DataDir,
    *,
    background: DataDir | float = 0.3,
    enroll: float = 0.5,
    enroll_labels: Sequence[str] | None = None,
    enroll_per_speaker: int | None = None,
    enroll_models: Mapping[str, Sequence[str]] | None = None,
    seed: int = 0,
    trials: TrialList | None = None,
    trials_by: str = "spk",
) -> VerificationSets:
    """Background, enrolment and test sets with their trials.

    Parameters
    ----------
    targets : DataDir
        The speakers to enrol and test (and, with a number as ``background``, the source of
        the background speakers too).
    background : DataDir or float
        A separate background data dir (its speakers must not be among the targets; target
        speakers with a single utterance are then left out), or the share of ``targets``'
        speakers set aside, as in :func:`split_speakers`.
    enroll, enroll_labels, enroll_per_speaker, seed
        How each target speaker's utterances are split, as in :func:`split_speakers`; the
        labels are checked with :func:`check_enroll_labels`.
    enroll_models : mapping of str to sequence of str, optional
        Models given as they are (:func:`read_enroll_list`, :func:`single_utterance_models`);
        needs a separate ``background``. The test utterances are then those of the trial
        list, or every target utterance in no enrolment.
    trials : TrialList, optional
        A labelled trial list used as given (checked with :func:`check_trials`) instead of
        all pairs.
    trials_by : {"spk", "label"}
        Models of the all-pairs trials (:func:`make_trials`).

    Raises
    ------
    DataError, ConfigError
        Shared speakers, unknown labels, an empty side, or a bad trial list (naming the
        real cause: e.g. a test utterance that the enrolment rule put in an enrolment set).
    """
    if isinstance(background, DataDir):
        both = sorted(set(background.utt2spk.values()) & set(targets.utt2spk.values()))
        if both:
            raise DataError(
                f"background and targets share {len(both)} speaker(s) (e.g. {both[:3]}); "
                f"background speakers must not be enrolled or tested"
            )
    if enroll_models is not None:
        if not isinstance(background, DataDir):
            raise ConfigError("an enrolment list needs a separate background set")
        return _given_models(targets, background, enroll_models, trials)
    if enroll_labels is not None:
        check_enroll_labels(enroll_labels, targets)
    rest, en, te = split_speakers(
        targets,
        background=0 if isinstance(background, DataDir) else background,
        enroll=enroll,
        enroll_labels=enroll_labels,
        enroll_per_speaker=enroll_per_speaker,
        seed=seed,
    )
    if isinstance(background, DataDir):
        bg = background
        if len(rest):
            log.warning(
                "targets: %d speaker(s) with a single utterance cannot be enrolled and tested; "
                "they are left out",
                len(rest.spk2utt),
            )
    else:
        bg = rest
    if not len(en) or not len(te):
        raise DataError(
            f"the split left {len(en)} enrolment and {len(te)} test utterances; each target "
            f"speaker needs utterances on both sides"
        )
    rule = _enrol_rule(enroll, enroll_labels, enroll_per_speaker)
    te.trials = (
        make_trials(en, te, by=trials_by)
        if trials is None
        else check_trials(trials, en, te, rule=rule)
    )
    sets = VerificationSets(bg, en, te)
    c = sets.counts()
    log.info(
        "split (%s): %d background speakers (%d utts), %d target speakers (%d enrol, %d test "
        "utts), %d trials",
        rule,
        c["background_speakers"],
        c["background_utts"],
        c["target_speakers"],
        c["enroll_utts"],
        c["test_utts"],
        c["trials"],
    )
    return sets


def _given_models(
    targets: DataDir,
    background: DataDir,
    models: Mapping[str, Sequence[str]],
    trials: TrialList | None,
) -> VerificationSets:
    enrolled = {u for us in models.values() for u in us}
    unknown = sorted(enrolled - set(targets.wav_scp))
    if unknown:
        raise DataError(
            f"the enrolment uses {len(unknown)} utterance(s) that are not in data.targets "
            f"(e.g. {unknown[:3]})"
        )
    en = targets.subset(enrolled)
    en.trials = None
    en.model2utt = {m: sorted(models[m]) for m in sorted(models)}
    if trials is None:
        te = targets.subset(u for u in targets.utt_ids if u not in enrolled)
        if not len(te):
            raise DataError("every target utterance is enrolled; none is left to test")
        te.trials = make_trials(en, te)
    else:
        check_trials(trials, en, targets, rule="the enrolment list")
        te = targets.subset(set(trials.test_ids))
        te.trials = trials
    log.info(
        "enrolment as given: %d models on %d utterances; %d test utterances, %d trials",
        len(models),
        len(en),
        len(te),
        len(te.trials),
    )
    return VerificationSets(background, en, te)


# ---------------------------------------------------------------------- selections
def limit_speakers(
    data: DataDir, max_speakers: int | None = None, max_per_speaker: int | None = None
) -> DataDir:
    """The first ``max_speakers`` speakers (sorted ids), each with its first utterances."""
    if max_speakers is None and max_per_speaker is None:
        return data
    spk2utt = data.spk2utt
    spks = sorted(spk2utt)[:max_speakers]
    return data.subset(u for spk in spks for u in spk2utt[spk][:max_per_speaker])


# --------------------------------------------------------------------------- folds
def assign_folds(data: DataDir, n_folds: int, by: str = "rank") -> dict[str, int]:
    """Cross-validation fold of every utterance.

    Parameters
    ----------
    data : DataDir
        With ``utt2label`` for ``by="rank"``.
    n_folds : int
    by : {"rank", "spk"}
        ``rank``: the i-th file of each class (sorted ids) goes to fold ``i % n_folds``.
        ``spk``: the j-th speaker (sorted ids) and all of its files go to fold
        ``j % n_folds``.

    Returns
    -------
    dict of str to int
        Utterance id -> fold in ``[0, n_folds)``, sorted by utterance id.
    """
    out: dict[str, int] = {}
    if by == "rank":
        if data.utt2label is None:
            raise DataError("assign_folds: by='rank' needs utt2label")
        per: dict[str, int] = {}
        for utt in data.utt_ids:
            lab = data.utt2label[utt]
            out[utt] = per.get(lab, 0) % n_folds
            per[lab] = per.get(lab, 0) + 1
    elif by == "spk":
        order = {spk: j % n_folds for j, spk in enumerate(sorted(data.spk2utt))}
        out = {utt: order[data.utt2spk[utt]] for utt in data.utt_ids}
    else:
        raise ConfigError(f"fold_by: must be 'rank' or 'spk', got {by!r}")
    return out


__all__ = [
    "VerificationSets",
    "assign_folds",
    "check_enroll_labels",
    "check_trials",
    "limit_speakers",
    "make_trials",
    "read_enroll_list",
    "single_utterance_models",
    "split_speakers",
    "split_verification",
]
