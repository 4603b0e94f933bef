"""What the training speakers of the i-vector back ends allow, as counts: the one home of
the back end's limits and of the ``auto`` choices of ``backend.scorer`` and ``backend.lda_dim``.

A back end trained on ``S`` speakers with ``N`` vectors of dimension ``R`` (the i-vector
rank) can only be fitted when:

- LDA, WCCN and PLDA have two or more vectors of every speaker, and two or more speakers;
- LDA keeps ``d <= S - 1`` dimensions (the between-speaker scatter has rank ``S - 1``) and
  ``d <= R``;
- the within-speaker scatter that LDA, WCCN, or PLDA without LDA, factor or invert is full
  rank: ``N - S >= R`` (it is a sum of ``N - S`` independent outer products);
- PLDA of dimension ``d`` has more speakers than dimensions, ``S > d`` (the between-speaker
  covariance is estimated from ``S`` centred speaker means).

An experiment fits several back ends: the main one on every background speaker, and with
held-out groups (calibration trials, cohort parts: :mod:`gmmspeech.decisions.heldout`) one
per group on the speakers outside it. :func:`resolve` chooses ``auto`` settings that every
one of them can fit (the calibration back ends then score as the main one does);
:func:`violations` lists what a resolved config cannot fit, each as a one-line message
naming the option, the limit and the fix. The pipeline runs both on the prepared data
before any heavy stage; :class:`~gmmspeech.ivector.backend.Backend` resolves ``auto`` on its
own training vectors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..config.ivector import AUTO, BackendConfig
from ..errors import ConfigError

#: Largest dimension ``backend.lda_dim: auto`` keeps (Kaldi's SRE and VoxCeleb i-vector
#: recipes keep 200 LDA dimensions of their 400 to 600-dimensional i-vectors).
LDA_CAP: int = 200
#: The fewest LDA dimensions ``scorer: auto`` takes PLDA with. On Arabic Speech Commands
#: (9 speakers per calibration back end) PLDA on 8 dimensions gave 17.19 % EER, cosine
#: without LDA 8.38 % in the same setup; recipes in the literature keep 100-200.
PLDA_MIN_AUTO_DIM = 50


@dataclass(frozen=True)
class TrainingSpeakers:
    """The speakers one back end is trained on, as utterance counts.

    Attributes
    ----------
    what : str
        The back end, for messages (e.g. ``"the main back end"``).
    counts : tuple of int
        Utterances (vectors) of each speaker; speakers with none are left out.
    """

    what: str
    counts: tuple[int, ...]

    @classmethod
    def of(cls, what: str, spk2utt: Mapping[str, Sequence[str]]) -> TrainingSpeakers:
        """From speaker -> utterances (sorted speakers; empty speakers dropped)."""
        return cls(what, tuple(len(spk2utt[s]) for s in sorted(spk2utt) if spk2utt[s]))

    @property
    def n_speakers(self) -> int:
        return len(self.counts)

    @property
    def n_vectors(self) -> int:
        return sum(self.counts)

    @property
    def n_single(self) -> int:
        """Speakers with a single utterance."""
        return sum(c == 1 for c in self.counts)

    @property
    def within_rank(self) -> int:
        """Rank bound of the within-speaker scatter, ``N - S``."""
        return self.n_vectors - self.n_speakers

    def describe(self) -> str:
        """``"<what>: S speakers, N utterances"``."""
        return f"{self.what}: {self.n_speakers} speakers, {self.n_vectors} utterances"


@dataclass(frozen=True)
class Choice:
    """A resolved back-end config and why each ``auto`` option took its value.

    Attributes
    ----------
    config : BackendConfig
        No option is ``auto``.
    reasons : dict of str to str
        Option (``"scorer"``, ``"lda_dim"``) -> a sentence saying what ``auto`` chose and why.
    """

    config: BackendConfig
    reasons: dict[str, str]

    def summary(self) -> str:
        """One line for the log: ``backend.lda_dim: auto -> 61 (...); ...``."""
        return "; ".join(f"backend.{k}: auto -> {v}" for k, v in self.reasons.items())


def _fix_lda(limit: int) -> str:
    return f"set backend.lda_dim: auto or <= {limit}" if limit >= 1 else "use fewer dimensions"


def violations(config: BackendConfig, rank: int, sets: Iterable[TrainingSpeakers]) -> list[str]:
    """What the resolved ``config`` on i-vectors of ``rank`` cannot fit, one line each (empty:
    every back end of ``sets`` can be trained).

    Parameters
    ----------
    config : BackendConfig
        Resolved (no ``auto``; see :func:`resolve`).
    rank : int
        The i-vector dimension R (``ivector.rank``).
    sets : iterable of TrainingSpeakers
        The training speakers of each back end.
    """
    if not config.resolved:
        raise ConfigError("backend: resolve 'auto' options before checking them (limits.resolve)")
    sets = list(sets)
    out: list[str] = []
    if not sets:
        return out
    lda, plda = config.lda_dim, config.scorer == "plda"
    if config.needs_speakers:
        option = (
            f"backend.scorer: {config.scorer}"
            if plda
            else f"backend.lda_dim: {lda}"
            if lda is not None
            else "backend.wccn: true"
        )
        fix = (
            "set backend.scorer: auto or cosine, with backend.lda_dim: auto or null and "
            "backend.wccn: false (cosine needs no speaker labels)"
        )
        # the main back end holds every speaker of the others: one message is enough
        for s in sets:
            if s.n_single:
                return [
                    f"{option} needs two or more utterances of every speaker, and "
                    f"{s.n_single} of the {s.n_speakers} speakers of {s.what} have one; {fix}"
                ]
            if s.n_speakers < 2:
                return [
                    f"{option} needs two or more speakers, and {s.what} has {s.n_speakers}; {fix}"
                ]
    if isinstance(lda, int):
        if lda > rank:
            out.append(
                f"backend.lda_dim: {lda} needs at most {rank} (ivector.rank, the dimension "
                f"of the i-vectors); {_fix_lda(rank)}"
            )
        tight = min(sets, key=lambda s: s.n_speakers)
        if lda > tight.n_speakers - 1:
            out.append(
                f"backend.lda_dim: {lda} needs at most {tight.n_speakers - 1} ({tight.what} "
                f"is trained on {tight.n_speakers} speakers, minus 1); "
                f"{_fix_lda(tight.n_speakers - 1)}"
            )
    if config.needs_speakers:
        tight = min(sets, key=lambda s: s.within_rank)
        if tight.within_rank < rank:
            out.append(
                f"ivector.rank: {rank} needs at most {tight.within_rank}: the within-speaker "
                f"scatter of {tight.what} ({tight.n_vectors} utterances of {tight.n_speakers} "
                f"speakers) has rank {tight.within_rank} at most, and LDA, WCCN and PLDA need "
                f"it full; set ivector.rank <= {tight.within_rank} or backend.scorer: cosine "
                f"with backend.lda_dim: null"
            )
    if plda and lda is None:
        tight = min(sets, key=lambda s: s.n_speakers)
        if tight.n_speakers <= rank:
            out.append(
                f"backend.lda_dim: null gives PLDA of {rank} dimensions (ivector.rank), which "
                f"needs more than {rank} speakers, and {tight.what} is trained on "
                f"{tight.n_speakers}; {_fix_lda(min(rank, tight.n_speakers - 1))}"
            )
    return out


def check(config: BackendConfig, rank: int, sets: Iterable[TrainingSpeakers]) -> None:
    """Raise a one-line :class:`ConfigError` with the first of :func:`violations`."""
    found = violations(config, rank, sets)
    if found:
        more = f" (and {len(found) - 1} more problem(s))" if len(found) > 1 else ""
        raise ConfigError(found[0] + more)


def _auto_lda(rank: int, sets: Sequence[TrainingSpeakers]) -> tuple[int | None, str]:
    """The largest LDA dimension every back end of ``sets`` can fit, up to :data:`LDA_CAP`,
    and why (None: not even one, with a single speaker)."""
    tight = min(sets, key=lambda s: s.n_speakers)
    dim = min(LDA_CAP, rank, tight.n_speakers - 1)
    if dim < 1:
        return None, f"null ({tight.what} has {tight.n_speakers} speaker(s): no LDA direction)"
    bounds = [
        f"the cap {LDA_CAP}",
        f"ivector.rank {rank}",
        f"the {tight.n_speakers} speakers of {tight.what} minus 1",
    ]
    return dim, f"{dim} (the smallest of {', '.join(bounds)})"


def resolve(config: BackendConfig, rank: int, sets: Iterable[TrainingSpeakers]) -> Choice:
    """``config`` with its ``auto`` options chosen for the back ends of ``sets``.

    ``scorer: auto`` is PLDA when every back end can fit it with the config's LDA (``auto``
    LDA: as below), else cosine. ``lda_dim: auto`` is, with PLDA, the smallest of
    :data:`LDA_CAP`, ``rank`` and every back end's speakers minus one (one dimension for
    all back ends); with cosine, no LDA (cosine needs no reduced dimension).

    Parameters
    ----------
    config : BackendConfig
    rank : int
        The i-vector dimension (``ivector.rank``).
    sets : iterable of TrainingSpeakers
        The training speakers of each back end (at least one).

    Returns
    -------
    Choice
        The resolved config; an explicit option the data cannot fit is kept as it is, for
        :func:`check` to refuse.

    Examples
    --------
    125 background speakers of 20 utterances, dealt into two held-out groups whose back ends
    are trained on the other 62 and 63 speakers:

    >>> from gmmspeech.config.ivector import BackendConfig
    >>> sets = [TrainingSpeakers("the main back end", (20,) * 125),
    ...         TrainingSpeakers("the back end of held-out group 1", (20,) * 62),
    ...         TrainingSpeakers("the back end of held-out group 2", (20,) * 63)]
    >>> got = resolve(BackendConfig(), 400, sets)
    >>> got.config.scorer, got.config.lda_dim
    ('plda', 61)
    """
    sets = list(sets)
    if not sets:
        raise ConfigError("backend: no training speakers to choose the 'auto' options for")
    reasons: dict[str, str] = {}
    scorer = config.scorer
    if scorer == AUTO:
        lda = _auto_lda(rank, sets)[0] if config.lda_dim == AUTO else config.lda_dim
        trial = dataclasses.replace(config, scorer="plda", lda_dim=lda)
        problems = violations(trial, rank, sets)
        if not problems and isinstance(lda, int) and lda < PLDA_MIN_AUTO_DIM:
            problems = [f"{lda} LDA dimensions, fewer than the {PLDA_MIN_AUTO_DIM} auto needs"]
        scorer = "cosine" if problems else "plda"
        reasons["scorer"] = (
            # the limit without its fix: auto has taken the fix
            f"cosine (PLDA does not fit: {problems[0].split('; ')[0]})"
            if problems
            else "plda (every back end has two or more utterances of each speaker)"
        )
    lda_dim = config.lda_dim
    if lda_dim == AUTO:
        if scorer == "plda":
            lda_dim, reasons["lda_dim"] = _auto_lda(rank, sets)
        else:
            lda_dim, reasons["lda_dim"] = None, "null (cosine scoring needs no LDA)"
    return Choice(dataclasses.replace(config, scorer=scorer, lda_dim=lda_dim), reasons)


__all__ = [
    "LDA_CAP",
    "PLDA_MIN_AUTO_DIM",
    "Choice",
    "TrainingSpeakers",
    "check",
    "resolve",
    "violations",
]
