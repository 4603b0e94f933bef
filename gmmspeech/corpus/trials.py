"""Trial lists: the one trial type and its one text grammar.

A verification trial asks whether test utterance ``test_id`` was spoken by model
``model_id``. :class:`TrialList` holds a list of them from the data preparation to the
metrics; text files are for people and for resuming.

Trials file grammar
-------------------
UTF-8 text, one trial per line, fields separated by whitespace::

    <model-id> <test-id> [<label>]

- ``<label>`` is ``target`` or ``nontarget``, in any case. Aliases: ``tgt``, ``true``,
  ``yes``, ``1`` for target; ``non-target``, ``nontgt``, ``imp``, ``impostor``, ``false``,
  ``no``, ``0`` for non-target.
- Either every trial has a label or none has: an unlabelled list can be scored but not
  evaluated.
- Empty lines, and lines whose first non-blank character is ``#``, are skipped.
- A ``(model-id, test-id)`` pair appears at most once, and a file holds at least one trial.
- :meth:`TrialList.to_lines` writes ``target`` / ``nontarget`` only.

The trials file of a data directory (``DIR/trials``) follows the same grammar; its test ids
must be utterances of that directory. Every error names ``file:line``.

Other trial list formats
------------------------
:func:`read_trials` also reads, with ``format=``, the lists corpora ship in their own form
(:data:`TRIAL_FORMATS`):

``voxceleb``
    VoxCeleb1's ``veri_test.txt`` / ``veri_test2.txt``: ``<1|0> <enrol-path> <test-path>``,
    e.g. ``1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav``; ``1`` is a
    target. Paths become ids with :func:`path_to_utt_id` (extension dropped, ``/`` -> ``-``:
    ``id10270-x6uYqmx31kE-00001``), the ids the pattern ``{spk}/{video}/{utt}.wav`` gives.
    The model of a trial is its enrolment utterance's id (single-utterance enrolment).

Score files (``<model> <test> <score>``) are read and written by :mod:`gmmspeech.corpus.scorefiles`.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from ..config.data import TRIAL_FORMATS
from ..errors import DataError
from ..storage.atomic import atomic_path
from .idcodes import IdCodes, blocks_by_test, encode_ids
from .tables import Problems, iter_table, read_table

_TARGET_WORDS = frozenset({"target", "tgt", "1", "true", "yes"})
_NONTARGET_WORDS = frozenset(
    {"nontarget", "non-target", "nontgt", "imp", "impostor", "0", "false", "no"}
)
_TRIAL_LAYOUT = "<model-id> <test-id> [target|nontarget]"
_VOXCELEB_LAYOUT = "<1|0> <enrol-path> <test-path>"

#: A trial given as a tuple: ``(model_id, test_id)`` or ``(model_id, test_id, label)``,
#: the label a bool or a word of the grammar.
TrialTuple = tuple[str, str] | tuple[str, str, bool | str]


class TrialList:
    """A list of trials ``(model_id, test_id[, is_target])`` with their source lines.

    The ids are held as int32 codes into lists of the distinct ids, so that a list of
    millions of trials costs about 9 bytes a trial (13 with non-consecutive line numbers)
    instead of Python strings; the list-valued attributes are built when asked for.

    Parameters
    ----------
    model_ids, test_ids : sequence of str, length n
    is_target : array-like of bool, shape (n,), optional
        None when the list has no labels.
    lines : sequence of int, optional
        1-based line numbers in ``source`` (default: 1..n, positions for in-memory lists).
    source : str
        File name (or ``"trials"``) used in error messages.

    Examples
    --------
    >>> from gmmspeech import TrialList
    >>> trials = TrialList(["spk1", "spk1", "spk2"], ["utt1", "utt2", "utt1"], [True, False, False])
    >>> len(trials), trials.pairs[1], trials.is_target.tolist()
    (3, ('spk1', 'utt2'), [True, False, False])
    """

    def __init__(
        self,
        model_ids: Sequence[str],
        test_ids: Sequence[str],
        is_target: ArrayLike | None = None,
        lines: Sequence[int] | np.ndarray | None = None,
        source: str = "trials",
    ) -> None:
        model_vocab, model_codes = encode_ids(model_ids)
        test_vocab, test_codes = encode_ids(test_ids)
        self._init(model_vocab, model_codes, test_vocab, test_codes, is_target, lines, source)

    def _init(
        self,
        model_vocab: list[str],
        model_codes: np.ndarray,
        test_vocab: list[str],
        test_codes: np.ndarray,
        is_target: ArrayLike | None,
        lines: Sequence[int] | np.ndarray | None,
        source: str,
    ) -> None:
        self.source = source
        self.model_vocab, self.model_codes = model_vocab, model_codes
        self.test_vocab, self.test_codes = test_vocab, test_codes
        self.is_target = None if is_target is None else np.asarray(is_target, dtype=bool)
        n = model_codes.shape[0]
        self._lines: np.ndarray | None = None
        if lines is not None and len(lines) > 0:
            arr = np.asarray(lines, dtype=np.int32)
            if not _is_one_to_n(arr, n):
                self._lines = arr
        sizes = {test_codes.shape[0], n if self._lines is None else self._lines.shape[0]}
        if self.is_target is not None:
            sizes.add(self.is_target.shape[0])
        if sizes != {n}:
            n_lines = n if self._lines is None else self._lines.shape[0]
            raise DataError(
                f"{self.source}: {n} model ids, {test_codes.shape[0]} test ids, "
                f"{n_lines} line numbers and "
                f"{'no' if self.is_target is None else self.is_target.shape[0]} labels; "
                f"they must be equally many"
            )

    @classmethod
    def from_codes(
        cls,
        model_vocab: list[str],
        model_codes: np.ndarray,
        test_vocab: list[str],
        test_codes: np.ndarray,
        is_target: np.ndarray | None = None,
        lines: np.ndarray | None = None,
        source: str = "trials",
    ) -> TrialList:
        """From distinct ids and int32 codes into them (no per-trial strings)."""
        self = cls.__new__(cls)
        self._init(
            model_vocab,
            np.asarray(model_codes, dtype=np.int32),
            test_vocab,
            np.asarray(test_codes, dtype=np.int32),
            is_target,
            lines,
            source,
        )
        return self

    def __len__(self) -> int:
        return int(self.model_codes.shape[0])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TrialList):
            return NotImplemented
        labels_equal = (self.is_target is None and other.is_target is None) or (
            self.is_target is not None
            and other.is_target is not None
            and np.array_equal(self.is_target, other.is_target)
        )
        return (self.pairs, self.lines, self.source) == (
            other.pairs,
            other.lines,
            other.source,
        ) and labels_equal

    __hash__ = None  # type: ignore[assignment]

    def line(self, i: int) -> int:
        """The source line of trial ``i``."""
        return int(i) + 1 if self._lines is None else int(self._lines[i])

    def where(self, i: int) -> str:
        """``source:line`` of trial ``i``."""
        return f"{self.source}:{self.line(i)}"

    @property
    def model_ids(self) -> list[str]:
        """The model id of every trial, in order."""
        vocab = self.model_vocab
        return [vocab[c] for c in self.model_codes.tolist()]

    @property
    def test_ids(self) -> list[str]:
        """The test id of every trial, in order."""
        vocab = self.test_vocab
        return [vocab[c] for c in self.test_codes.tolist()]

    @property
    def lines(self) -> list[int]:
        """1-based line numbers in ``source``."""
        if self._lines is None:
            return list(range(1, len(self) + 1))
        return [int(x) for x in self._lines.tolist()]

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """``(model_id, test_id)`` of every trial, in order."""
        return list(self.iter_pairs())

    def iter_pairs(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[str, str]]:
        """``(model_id, test_id)`` of trials ``start:stop``, made one at a time."""
        mv, tv = self.model_vocab, self.test_vocab
        stop = len(self) if stop is None else stop
        for b0 in range(start, stop, BLOCK):
            b1 = min(stop, b0 + BLOCK)
            ms, ts = self.model_codes[b0:b1].tolist(), self.test_codes[b0:b1].tolist()
            for m, t in zip(ms, ts, strict=True):
                yield mv[m], tv[t]

    def select(self, index: Sequence[int] | np.ndarray) -> TrialList:
        """The trials at positions ``index`` (their source lines kept)."""
        idx = np.asarray([int(i) for i in index] if not isinstance(index, np.ndarray) else index)
        idx = idx.astype(np.intp, copy=False).reshape(-1)
        lines = np.arange(1, len(self) + 1) if self._lines is None else self._lines
        return TrialList.from_codes(
            self.model_vocab,
            self.model_codes[idx],
            self.test_vocab,
            self.test_codes[idx],
            None if self.is_target is None else self.is_target[idx],
            lines[idx],
            self.source,
        )

    def to_lines(self) -> list[str]:
        """The trials as lines of the grammar (without line ends)."""
        if self.is_target is None:
            return [f"{m} {t}" for m, t in self.iter_pairs()]
        return [
            f"{m} {t} {'target' if y else 'nontarget'}"
            for (m, t), y in zip(self.iter_pairs(), self.is_target.tolist(), strict=True)
        ]

    @classmethod
    def from_tuples(
        cls, trials: TrialList | Iterable[TrialTuple], source: str = "trials"
    ) -> TrialList:
        """From ``(model_id, test_id)`` or ``(model_id, test_id, label)`` tuples.

        A :class:`TrialList` is returned as it is. Labels are bools or words of the grammar.
        """
        if isinstance(trials, TrialList):
            return trials
        models: list[str] = []
        tests: list[str] = []
        labels: list[bool] = []
        for i, t in enumerate(trials):
            if len(t) not in (2, 3):
                raise DataError(
                    f"{source}:{i + 1}: expected (model_id, test_id[, is_target]), got {t!r}"
                )
            models.append(str(t[0]))
            tests.append(str(t[1]))
            if len(t) == 3:
                labels.append(parse_label(t[2], f"{source}:{i + 1}"))
        if len(labels) not in (0, len(models)):
            raise DataError(f"{source}: some trials have a target label and some do not")
        is_target = np.array(labels, dtype=bool) if labels else None
        return cls(models, tests, is_target, source=source)


#: Trials handled per block by the streamed readers and writers (bounded working memory).
BLOCK = 65536


def _is_one_to_n(lines: np.ndarray, n: int) -> bool:
    """``lines == 1..n``, checked in blocks (no list-sized temporaries)."""
    if lines.shape != (n,):
        return False
    for b0 in range(0, n, BLOCK):
        b1 = min(n, b0 + BLOCK)
        if not np.array_equal(lines[b0:b1], np.arange(b0 + 1, b1 + 1)):
            return False
    return True


def parse_label(value: bool | np.bool_ | str, where: str) -> bool:
    """``True`` for a target label, ``False`` for a non-target one (see the grammar)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    key = str(value).strip().lower()
    if key in _TARGET_WORDS:
        return True
    if key in _NONTARGET_WORDS:
        return False
    raise DataError(
        f"{where}: trial label {value!r} is not a label; write target or nontarget "
        f"(also accepted: tgt/imp/1/0/true/false/yes/no)"
    )


def path_to_utt_id(path: str) -> str:
    """The utterance id of a relative audio path in a ``voxceleb`` trial list: the path
    without its extension, ``/`` replaced by ``-`` (``id10270/x6uYqmx31kE/00001.wav`` ->
    ``id10270-x6uYqmx31kE-00001``)."""
    stem = path.rsplit(".", 1)[0] if "." in path.rsplit("/", 1)[-1] else path
    return stem.strip("/").replace("/", "-")


def _read_voxceleb(p: Path, label: str) -> TrialList:
    rows = read_table(
        p, min_fields=2, max_fields=2, comments=True, unique=0, layout=_VOXCELEB_LAYOUT, name=label
    )
    if not rows:
        raise DataError(f"{label}: no trials (empty file); write '{_VOXCELEB_LAYOUT}' per line")
    models, tests, labels, lines = [], [], [], []
    first: dict[tuple[str, str], int] = {}
    for row in rows:
        where = f"{label}:{row.line}"
        if row.key not in ("0", "1"):
            raise DataError(
                f"{where}: the first field must be 1 (target) or 0 (non-target) in the "
                f"voxceleb format '{_VOXCELEB_LAYOUT}', got {row.key!r}"
            )
        pair = (path_to_utt_id(row.fields[0]), path_to_utt_id(row.fields[1]))
        if pair in first:
            raise DataError(f"{where}: duplicate trial (first at line {first[pair]})")
        first[pair] = row.line
        models.append(pair[0])
        tests.append(pair[1])
        labels.append(row.key == "1")
        lines.append(row.line)
    return TrialList(models, tests, np.array(labels, dtype=bool), lines, label)


def read_trials(
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    problems: Problems | None = None,
    format: str = "kaldi",
) -> TrialList:
    """Read a trials file (see the grammar in the module docstring).

    Parameters
    ----------
    path : path-like
        The file, or a data directory holding a ``trials`` file.
    name : str, optional
        How the file is named in messages and in :attr:`TrialList.source` (default: its
        path).
    problems : Problems, optional
        Collect every problem here instead of raising the first (the returned list then
        holds the well-formed trials only). Used with the ``kaldi`` format.
    format : {"kaldi", "voxceleb"}
        The grammar of the module docstring, or one of the other formats described there.

    Raises
    ------
    DataError
        Naming ``file:line`` of a malformed line, an unknown label, a duplicate trial,
        labelled and unlabelled lines mixed, or a file without trials.
    """
    p = Path(path)
    if p.is_dir() and (p / "trials").is_file():
        p = p / "trials"
    label = str(p) if name is None else name
    if not p.is_file():
        raise DataError(f"{label}: no such trials file")
    if format not in TRIAL_FORMATS:
        raise DataError(f"{label}: unknown trial list format {format!r}; use {TRIAL_FORMATS}")
    if format == "voxceleb":
        return _read_voxceleb(p, label)
    return _read_kaldi(p, label, problems)


def _read_kaldi(p: Path, label: str, problems: Problems | None) -> TrialList:
    """The kaldi grammar, streamed: ids become codes as the lines are read, and duplicates
    are found afterwards on the codes (no per-line Python objects are kept)."""
    models, tests = IdCodes(), IdCodes()
    labels, lines = array("b"), array("i")
    labelled: bool | None = None
    first = 0
    rows = iter_table(
        p,
        min_fields=1,
        max_fields=2,
        comments=True,
        unique=0,
        layout=_TRIAL_LAYOUT,
        name=label,
        problems=problems,
    )
    for row in rows:
        where = f"{label}:{row.line}"
        has_label = len(row.fields) == 2
        if labelled is None:
            labelled, first = has_label, row.line
        elif has_label != labelled:
            msg = (
                f"{where}: {'a' if has_label else 'no'} target/nontarget label, but line "
                f"{first} has {'none' if has_label else 'one'}; label every trial or none"
            )
            if problems is None:
                raise DataError(msg)
            problems.add(msg)
            continue
        if has_label:
            try:
                labels.append(parse_label(row.fields[1], where))
            except DataError as exc:
                if problems is None:
                    raise
                problems.add(str(exc))
                continue
        models.add(row.key)
        tests.add(row.fields[0])
        if lines or row.line != len(models.codes):
            if not lines:  # the first gap: the earlier trials were on lines 1..n
                lines.extend(range(1, len(models.codes)))
            lines.append(row.line)
    if labelled is None and (problems is None or not problems.items):
        msg = f"{label}: no trials (empty file); write '{_TRIAL_LAYOUT}' per line"
        if problems is None:
            raise DataError(msg)
        problems.add(msg)
    trials = TrialList.from_codes(
        models.vocab,
        models.array(),
        tests.vocab,
        tests.array(),
        np.frombuffer(labels, dtype=np.int8).astype(bool) if labelled else None,
        np.frombuffer(lines, dtype=np.int32) if lines else None,
        label,
    )
    return _drop_duplicates(trials, problems)


def _drop_duplicates(trials: TrialList, problems: Problems | None) -> TrialList:
    """``trials`` without repeated ``(model, test)`` pairs: the first repeat (in line order)
    raises, or with ``problems`` every repeat is reported and dropped."""
    repeats: list[tuple[int, int]] = []  # (row, row of its first occurrence)
    n_models = max(1, len(trials.model_vocab))
    for rows in blocks_by_test(trials.test_codes, len(trials.test_vocab)):
        key = trials.test_codes[rows].astype(np.int64) * n_models + trials.model_codes[rows]
        order = np.argsort(key, kind="stable")
        k = key[order]
        dup = np.flatnonzero(k[1:] == k[:-1]) + 1
        if dup.size:
            # the first of a run of equal keys is the earliest row (stable sort)
            run_start = np.maximum.accumulate(
                np.where(np.r_[True, k[1:] != k[:-1]], np.arange(k.size), 0)
            )
            for j in dup.tolist():
                repeats.append((int(rows[order[j]]), int(rows[order[run_start[j]]])))
    if not repeats:
        return trials
    repeats.sort()
    for i, i0 in repeats:
        m, t = trials.model_vocab[trials.model_codes[i]], trials.test_vocab[trials.test_codes[i]]
        msg = (
            f"{trials.where(i)}: duplicate trial {m} {t} (first at line {trials.line(i0)}); "
            f"remove or rename one"
        )
        if problems is None:
            raise DataError(msg)
        problems.add(msg)
    keep = np.ones(len(trials), dtype=bool)
    keep[[i for i, _ in repeats]] = False
    return trials.select(np.flatnonzero(keep))


def write_trials(path: str | os.PathLike[str], trials: TrialList) -> None:
    """Write a trials file atomically (``target`` / ``nontarget`` labels when labelled)."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text("".join(line + "\n" for line in trials.to_lines()), encoding="utf-8")


__all__ = [
    "BLOCK",
    "TRIAL_FORMATS",
    "TrialList",
    "parse_label",
    "path_to_utt_id",
    "read_trials",
    "write_trials",
]
