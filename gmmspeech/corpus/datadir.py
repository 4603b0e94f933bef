"""Kaldi-style data directories.

A data directory is a folder of plain-text tables, one entry per line, first column an id,
sorted by id (byte order, as ``LC_ALL=C sort``), read with the one table parser
(:func:`gmmspeech.corpus.tables.read_table`):

``wav.scp``
    ``<utt-id> <path>``; the path is the rest of the line and may contain spaces. Relative
    paths are resolved against the ``audio_root`` given to :meth:`DataDir.read` (e.g. the
    corpus root of a corpus that ships its own data dirs), by default against the data
    directory itself. Piped commands are not supported.
``utt2spk``
    ``<utt-id> <spk-id>``; every utterance of ``wav.scp`` exactly once.
``spk2utt``
    ``<spk-id> <utt-id> ...``; the inverse of ``utt2spk`` (written for Kaldi tools, checked
    when present).
``utt2label`` (optional)
    ``<utt-id> <label>``; e.g. a digit, keyword or sound class.
``trials`` (optional)
    ``<model-id> <test-utt-id> [target|nontarget]`` in the grammar of
    :mod:`gmmspeech.corpus.trials`; test ids are utterances of this folder.
``model2utt`` (optional, enrolment sets)
    ``<model-id> <utt-id> ...``; the models to enrol when they are not one per speaker
    (multi-session models, models named differently from speakers, one model per
    utterance). Without it each speaker is a model (:attr:`DataDir.enrolment`).
``utt2fold`` (classification experiments)
    ``<utt-id> <fold>``, a cross-validation fold number.

:meth:`DataDir.read` validates all of it and names ``file:line`` and the fix for every
problem. :func:`read_spk2utt`, :func:`read_utt2label` and :func:`read_kaldi_map` read single
tables (also of folders without ``wav.scp``), :func:`read_utt2fold` and
:func:`read_predictions` the tables a classification experiment writes. Building data
directories from a corpus is :mod:`gmmspeech.corpus.prepare`.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal, NamedTuple, overload

from ..errors import DataError
from ..storage.atomic import atomic_path, remove_file
from .tables import Problems, id_problem, read_table
from .trials import TrialList, read_trials

log = logging.getLogger(__name__)

_MAX_LISTED = 10


class DataDir:
    """A Kaldi-style data directory held in memory.

    Parameters
    ----------
    wav_scp : mapping of str to str
        Utterance id -> audio path (relative paths are resolved against ``root``).
    utt2spk : mapping of str to str, optional
        Utterance id -> speaker id. Defaults to each utterance being its own speaker.
    utt2label : mapping of str to str, optional
        Utterance id -> class label.
    trials : TrialList, optional
        Trials whose test ids are utterances of this directory.
    root : path-like, optional
        Folder relative audio paths are resolved against (the data directory's own folder
        when read from disk; the current folder otherwise).
    model2utt : mapping of str to sequence of str, optional
        Model id -> utterance ids, when the models to enrol are not one per speaker.

    Attributes
    ----------
    wav_scp, utt2spk : dict of str to str
        Sorted by utterance id.
    utt2label : dict of str to str or None
    trials : TrialList or None
    root : Path or None
    model2utt : dict of str to list of str, or None
    """

    def __init__(
        self,
        wav_scp: Mapping[str, str],
        utt2spk: Mapping[str, str] | None = None,
        utt2label: Mapping[str, str] | None = None,
        trials: TrialList | None = None,
        root: str | os.PathLike[str] | None = None,
        model2utt: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.wav_scp: dict[str, str] = {k: str(wav_scp[k]) for k in sorted(wav_scp)}
        spk = utt2spk if utt2spk is not None else {u: u for u in self.wav_scp}
        self.utt2spk: dict[str, str] = {k: str(spk[k]) for k in sorted(spk)}
        self.utt2label: dict[str, str] | None = (
            None if utt2label is None else {k: str(utt2label[k]) for k in sorted(utt2label)}
        )
        self.trials: TrialList | None = trials
        self.root: Path | None = None if root is None else Path(root)
        self.model2utt: dict[str, list[str]] | None = (
            None
            if model2utt is None
            else {k: sorted(str(u) for u in model2utt[k]) for k in sorted(model2utt)}
        )

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.wav_scp)

    def __repr__(self) -> str:
        return (
            f"DataDir({len(self)} utterances, {len(self.spk2utt)} speakers"
            + (f", {len(set(self.utt2label.values()))} labels" if self.utt2label else "")
            + (f", {len(self.trials)} trials" if self.trials is not None else "")
            + (f", {len(self.model2utt)} models" if self.model2utt is not None else "")
            + (f", root={str(self.root)!r}" if self.root is not None else "")
            + ")"
        )

    @property
    def utt_ids(self) -> list[str]:
        """Utterance ids, sorted."""
        return list(self.wav_scp)

    @property
    def spk2utt(self) -> dict[str, list[str]]:
        """Speaker id -> sorted utterance ids (derived from ``utt2spk``)."""
        out: dict[str, list[str]] = {}
        for utt, spk in self.utt2spk.items():
            out.setdefault(spk, []).append(utt)
        return {k: out[k] for k in sorted(out)}

    @property
    def enrolment(self) -> dict[str, list[str]]:
        """Model id -> sorted utterance ids of the models to enrol: ``model2utt`` when the
        directory has one, otherwise one model per speaker (``spk2utt``)."""
        return dict(self.model2utt) if self.model2utt is not None else self.spk2utt

    def audio_path(self, utt_id: str) -> Path:
        """The audio file of an utterance, resolved against :attr:`root`."""
        p = Path(self.wav_scp[utt_id])
        if not p.is_absolute() and self.root is not None:
            p = self.root / p
        return p

    def with_absolute_paths(self) -> DataDir:
        """The same directory with every audio path resolved against :attr:`root` and made
        absolute (to be written elsewhere without losing the audio)."""
        wav = {u: str(self.audio_path(u).resolve()) for u in self.wav_scp}
        return DataDir(wav, self.utt2spk, self.utt2label, self.trials, None, self.model2utt)

    def subset(self, utt_ids: Iterable[str]) -> DataDir:
        """A data directory of some of the utterances (trials whose test id is kept)."""
        keep = set(utt_ids)
        unknown = keep - set(self.wav_scp)
        if unknown:
            raise DataError(f"subset: unknown utterance ids {sorted(unknown)[:5]}")
        trials = None
        if self.trials is not None:
            trials = self.trials.select(
                [i for i, t in enumerate(self.trials.test_ids) if t in keep]
            )
        models = None
        if self.model2utt is not None:
            kept = {m: [u for u in us if u in keep] for m, us in self.model2utt.items()}
            models = {m: us for m, us in kept.items() if us}
        return DataDir(
            {u: self.wav_scp[u] for u in keep},
            {u: self.utt2spk[u] for u in keep},
            None if self.utt2label is None else {u: self.utt2label[u] for u in keep},
            trials,
            self.root,
            models,
        )

    # -------------------------------------------------------------- validation
    def validate(self, check_audio: bool = True, where: str = "data dir") -> None:
        """Check the tables agree with each other (and that the audio exists).

        Raises
        ------
        DataError
            Listing every problem with the id involved and how to fix it.
        """
        problems = Problems(where)
        self._check_ids(problems)
        for utt in self.wav_scp:
            if utt not in self.utt2spk:
                problems.add(f"utterance {utt!r} of wav.scp has no utt2spk entry; add one")
        for utt in self.utt2spk:
            if utt not in self.wav_scp:
                problems.add(f"utterance {utt!r} of utt2spk is not in wav.scp; remove it")
        if self.utt2label is not None:
            for utt in self.wav_scp:
                if utt not in self.utt2label:
                    problems.add(f"utterance {utt!r} of wav.scp has no utt2label entry")
            for utt in self.utt2label:
                if utt not in self.wav_scp:
                    problems.add(f"utterance {utt!r} of utt2label is not in wav.scp")
        if self.trials is not None:
            seen: set[tuple[str, str]] = set()
            for i, (model, test) in enumerate(self.trials.pairs):
                where = self.trials.where(i)
                if test not in self.wav_scp:
                    problems.add(f"{where}: test utterance {test!r} is not in wav.scp")
                if (model, test) in seen:
                    problems.add(f"{where}: duplicate trial {model} {test}")
                seen.add((model, test))
        if self.model2utt is not None:
            for model, utts in self.model2utt.items():
                for utt in utts:
                    if utt not in self.wav_scp:
                        problems.add(f"model {model!r}: utterance {utt!r} is not in wav.scp")
        if check_audio:
            for utt in self.wav_scp:
                p = self.audio_path(utt)
                why = audio_file_problem(p)
                if why:
                    problems.add(f"utterance {utt!r}: audio file {str(p)!r} {why}")
        problems.raise_if_any()

    def _check_ids(self, problems: Problems) -> None:
        """Ids that the tables would not read back: a leading '#' (a comment) or whitespace."""
        kinds: list[tuple[str, Iterable[str]]] = [
            ("utterance", self.wav_scp),
            ("utterance", self.utt2spk),
            ("speaker", set(self.utt2spk.values())),
        ]
        if self.utt2label is not None:
            kinds.append(("label", set(self.utt2label.values())))
        if self.model2utt is not None:
            kinds.append(("model", self.model2utt))
        if self.trials is not None:
            kinds.append(("model", set(self.trials.model_ids)))
        seen: set[tuple[str, str]] = set()
        for kind, ids in kinds:
            for x in ids:
                why = id_problem(x)
                if why and (kind, x) not in seen:
                    seen.add((kind, x))
                    problems.add(f"{kind} id {x!r} {why}")

    # ---------------------------------------------------------------- reading
    @classmethod
    def read(
        cls,
        path: str | os.PathLike[str],
        check_audio: bool = True,
        audio_root: str | os.PathLike[str] | None = None,
    ) -> DataDir:
        """Read and validate a data directory.

        Parameters
        ----------
        path : path-like
            The folder holding ``wav.scp`` and ``utt2spk`` (and optionally ``spk2utt``,
            ``utt2label``, ``trials``).
        check_audio : bool
            Also check that every audio file exists and is a regular file.
        audio_root : path-like, optional
            Folder relative ``wav.scp`` paths are resolved against (default: the data
            directory itself), e.g. the root of a corpus whose data dirs list paths relative
            to it.

        Raises
        ------
        DataError
            Every problem found, as ``file:line: what is wrong; how to fix it``.
        """
        folder = Path(path)
        if not folder.is_dir():
            raise DataError(
                f"{folder}: not a data directory (no such folder); create one with "
                f"`gmmspeech prepare`"
            )
        if not (folder / "wav.scp").is_file():
            raise DataError(f"{folder}: no wav.scp; a data directory needs wav.scp and utt2spk")
        problems = Problems(str(folder))
        wav_line = _read_wav_scp(folder / "wav.scp", problems)
        wav = {utt: target for utt, (_, target) in wav_line.items()}
        utt2spk = _read_utt_table(
            folder / "utt2spk", problems, wav_line, "'<utt-id> <spk-id>'", required=True
        )
        if (folder / "spk2utt").is_file() and utt2spk:
            _check_spk2utt(folder / "spk2utt", problems, utt2spk)
        utt2label = _read_utt_table(folder / "utt2label", problems, wav_line, "'<utt-id> <label>'")
        trials = None
        if (folder / "trials").is_file():
            trials = read_trials(folder / "trials", name="trials", problems=problems)
            for i, test in enumerate(trials.test_ids):
                if test not in wav:
                    problems.add(
                        f"{trials.where(i)}: unknown test utterance {test!r} (not in wav.scp); "
                        f"trials must list utterances of this data directory"
                    )
        model2utt = None
        if (folder / "model2utt").is_file():
            model2utt = _read_model2utt(folder / "model2utt", problems, wav_line)
        problems.raise_if_any()
        root = folder if audio_root is None else Path(audio_root)
        if audio_root is not None and not root.is_dir():
            raise DataError(f"{folder}: audio root {str(root)!r} is not a folder")
        dd = cls(wav, utt2spk, utt2label, trials, root=root, model2utt=model2utt)
        if check_audio:
            relative_to = "the data directory" if audio_root is None else f"{str(root)!r}"
            missing = Problems(str(folder))
            for utt, (lineno, _) in wav_line.items():
                p = dd.audio_path(utt)
                why = audio_file_problem(p)
                if why:
                    missing.add(
                        f"wav.scp:{lineno}: audio file {str(p)!r} of {utt!r} {why}; fix the "
                        f"path (relative paths are relative to {relative_to})"
                    )
            missing.raise_if_any()
        return dd

    # ---------------------------------------------------------------- writing
    def write(self, path: str | os.PathLike[str]) -> None:
        """Write the tables (sorted; each file atomically) into folder ``path``.

        ``spk2utt`` is always written. A stale ``utt2label`` or ``trials`` left in the
        folder by an earlier write is removed when this directory has none.
        """
        self.validate(check_audio=False, where=str(path))
        folder = Path(path)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(f"{folder}: cannot create the folder ({exc.strerror or exc})") from None
        for utt, p in self.wav_scp.items():
            if "\n" in p or "\r" in p:
                raise DataError(f"utterance {utt!r}: its path contains a line break: {p!r}")
        tables: dict[str, list[str]] = {
            "wav.scp": [f"{u} {p}" for u, p in self.wav_scp.items()],
            "utt2spk": [f"{u} {s}" for u, s in self.utt2spk.items()],
            "spk2utt": [f"{s} {' '.join(us)}" for s, us in self.spk2utt.items()],
        }
        if self.utt2label is not None:
            tables["utt2label"] = [f"{u} {lab}" for u, lab in self.utt2label.items()]
        if self.trials is not None:
            tables["trials"] = self.trials.to_lines()
        if self.model2utt is not None:
            models = self.model2utt
            tables["model2utt"] = [f"{m} {' '.join(sorted(models[m]))}" for m in sorted(models)]
        for name in ("utt2label", "trials", "model2utt"):
            stale = folder / name
            if name not in tables and stale.exists():
                log.warning("%s: removing a stale %s (this data directory has none)", folder, name)
                remove_file(stale)
        for name, lines in tables.items():
            try:
                with atomic_path(folder / name) as tmp:
                    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
            except OSError as exc:
                raise DataError(f"{folder / name}: cannot write ({exc.strerror or exc})") from None


def audio_file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be an audio file (None when it is a regular file).

    A directory, FIFO, device or socket gets its own message: reading a FIFO would block
    and reading a device would not end.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "does not exist"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory, not an audio file"
    if stat.S_ISFIFO(mode):
        return "is a FIFO (named pipe), not an audio file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not an audio file"
    if stat.S_ISSOCK(mode):
        return "is a socket, not an audio file"
    return "is not a regular file"


# --------------------------------------------------------------- per-file parsers
def _read_wav_scp(path: Path, problems: Problems) -> dict[str, tuple[int, str]]:
    """``utt -> (line, audio path)`` of a ``wav.scp``."""
    rows = read_table(path, rest_is_one_field=True, strict=True, name="wav.scp", problems=problems)
    out: dict[str, tuple[int, str]] = {}
    for row in rows:
        target = row.fields[0]
        if target.endswith("|"):
            problems.add(
                f"wav.scp:{row.line}: piped commands are not supported ({target!r}); "
                f"convert the audio to files and list their paths"
            )
            continue
        out[row.key] = (row.line, target)
    if not rows and not problems.items:
        problems.add("wav.scp: is empty; list one '<utt-id> <path>' per line")
    return out


def _read_utt_table(
    path: Path,
    problems: Problems,
    wav_line: Mapping[str, tuple[int, str]],
    layout: str,
    *,
    required: bool = False,
) -> dict[str, str] | None:
    """An ``<utt-id> <value>`` table of a data dir, checked against ``wav.scp``.

    None when the file is absent and not ``required``.
    """
    name = path.name
    if not path.is_file():
        if required:
            problems.add(f"{name}: missing; write {layout} per utterance")
            return {}
        return None
    out: dict[str, str] = {}
    for row in read_table(path, strict=True, name=name, problems=problems):
        if row.key not in wav_line:
            problems.add(
                f"{name}:{row.line}: unknown utterance {row.key!r} (not in wav.scp); "
                f"remove the line or add the utterance to wav.scp"
            )
        out[row.key] = row.fields[0]
    for utt, (lineno, _) in wav_line.items():
        if utt not in out:
            fix = (
                f"add '{utt} <spk-id>' to utt2spk"
                if name == "utt2spk"
                else f"label every utterance or delete {name}"
            )
            problems.add(f"wav.scp:{lineno}: utterance {utt!r} has no {name} line; {fix}")
    return out


def _read_model2utt(
    path: Path, problems: Problems, wav_line: Mapping[str, tuple[int, str]]
) -> dict[str, list[str]]:
    """``model -> utts`` of a data dir's ``model2utt``; every utterance must be in wav.scp."""
    out: dict[str, list[str]] = {}
    for row in read_table(path, max_fields=None, strict=True, name="model2utt", problems=problems):
        for utt in row.fields:
            if utt not in wav_line:
                problems.add(
                    f"model2utt:{row.line}: utterance {utt!r} of model {row.key!r} is not in "
                    f"wav.scp; remove it or add the utterance"
                )
        out[row.key] = row.fields
    return out


def _check_spk2utt(path: Path, problems: Problems, utt2spk: Mapping[str, str]) -> None:
    """A data dir's ``spk2utt`` must be the inverse of its ``utt2spk``."""
    expected: dict[str, set[str]] = {}
    for utt, spk in utt2spk.items():
        expected.setdefault(spk, set()).add(utt)
    seen_spk = set()
    for row in read_table(path, max_fields=None, strict=True, name="spk2utt", problems=problems):
        spk, utts = row.key, row.fields
        seen_spk.add(spk)
        if spk not in expected:
            problems.add(
                f"spk2utt:{row.line}: speaker {spk!r} has no utterance in utt2spk; "
                f"regenerate spk2utt from utt2spk (utils/utt2spk_to_spk2utt.pl)"
            )
        elif set(utts) != expected[spk]:
            diff = sorted(set(utts) ^ expected[spk])[:3]
            problems.add(
                f"spk2utt:{row.line}: speaker {spk!r} disagrees with utt2spk "
                f"(e.g. {diff}); regenerate spk2utt from utt2spk"
            )
    for spk in sorted(set(expected) - seen_spk)[:_MAX_LISTED]:
        problems.add(f"spk2utt: speaker {spk!r} of utt2spk is missing; regenerate it")


# ------------------------------------------------------------- single tables
@overload
def read_kaldi_map(
    path: str | os.PathLike[str], *, multi: Literal[False] = ...
) -> dict[str, str]: ...
@overload
def read_kaldi_map(
    path: str | os.PathLike[str], *, multi: Literal[True]
) -> dict[str, list[str]]: ...
def read_kaldi_map(
    path: str | os.PathLike[str], *, multi: bool = False
) -> dict[str, str] | dict[str, list[str]]:
    """Read a Kaldi-style ``<key> <value>...`` file (``utt2spk``, ``spk2utt``, ``utt2label``).

    ``multi=True`` keeps all values as a list (``spk2utt``); otherwise exactly one value per
    line. Empty lines are skipped and the keys need not be sorted. Errors name ``file:line``.
    """
    rows = read_table(
        path,
        max_fields=None if multi else 1,
        layout="<key> <value> ..." if multi else "<key> <value>",
    )
    if multi:
        return {row.key: row.fields for row in rows}
    return {row.key: row.fields[0] for row in rows}


def read_spk2utt(datadir: str | os.PathLike[str]) -> dict[str, list[str]]:
    """``spk_id -> [utt_id, ...]`` of a Kaldi data dir.

    Read with :meth:`DataDir.read` (validated) when the folder has a ``wav.scp``; otherwise
    (e.g. a features-only folder) from ``spk2utt`` or ``utt2spk``.
    """
    d = Path(datadir)
    if not d.is_dir():
        raise DataError(f"{d}: no such data dir")
    if (d / "wav.scp").is_file():
        return dict(DataDir.read(d, check_audio=False).spk2utt)
    if (d / "spk2utt").is_file():
        return read_kaldi_map(d / "spk2utt", multi=True)
    if not (d / "utt2spk").is_file():
        raise DataError(f"{d}: has neither spk2utt nor utt2spk; it cannot say who spoke what")
    out: dict[str, list[str]] = {}
    for utt, spk in read_kaldi_map(d / "utt2spk").items():
        out.setdefault(spk, []).append(utt)
    return out


def read_enrolment(datadir: str | os.PathLike[str]) -> dict[str, list[str]]:
    """``model_id -> [utt_id, ...]`` of the models to enrol from a data dir: its
    ``model2utt`` when it has one, otherwise one model per speaker (:func:`read_spk2utt`)."""
    d = Path(datadir)
    if (d / "wav.scp").is_file():
        return DataDir.read(d, check_audio=False).enrolment
    if (d / "model2utt").is_file():
        return read_kaldi_map(d / "model2utt", multi=True)
    return read_spk2utt(d)


def read_utt2label(
    datadir: str | os.PathLike[str], label_file: str = "utt2label"
) -> dict[str, str]:
    """``utt_id -> label`` of a data dir (its ``utt2label``, or another label file)."""
    d = Path(datadir)
    if not d.is_dir():
        raise DataError(f"{d}: no such data dir")
    if label_file == "utt2label" and (d / "wav.scp").is_file():
        dd = DataDir.read(d, check_audio=False)
        if not dd.utt2label:
            raise DataError(f"{d}: has no utt2label; classification needs one label per utterance")
        return dict(dd.utt2label)
    return read_kaldi_map(d / label_file)


def read_utt2fold(path: str | os.PathLike[str]) -> dict[str, int]:
    """``utt_id -> fold`` of a ``utt2fold`` file (``<utt-id> <fold>``, fold an integer >= 0)."""
    out: dict[str, int] = {}
    for row in read_table(path, layout="<utt-id> <fold>"):
        text = row.fields[0]
        if not text.isdigit():
            raise DataError(f"{path}:{row.line}: fold {text!r} is not an integer >= 0")
        out[row.key] = int(text)
    return out


class Prediction(NamedTuple):
    """One line of a predictions file: ``<utt-id> <true-label> <predicted-label> <fold>``."""

    utt_id: str
    label: str
    predicted: str
    fold: int


def read_predictions(path: str | os.PathLike[str]) -> list[Prediction]:
    """The lines of a predictions file, in file order (each utterance once)."""
    out: list[Prediction] = []
    for row in read_table(
        path, min_fields=3, max_fields=3, layout="<utt-id> <label> <predicted> <fold>"
    ):
        label, predicted, fold = row.fields
        if not fold.isdigit():
            raise DataError(f"{path}:{row.line}: fold {fold!r} is not an integer >= 0")
        out.append(Prediction(row.key, label, predicted, int(fold)))
    return out


__all__ = [
    "DataDir",
    "Prediction",
    "audio_file_problem",
    "read_enrolment",
    "read_kaldi_map",
    "read_predictions",
    "read_spk2utt",
    "read_utt2fold",
    "read_utt2label",
]
