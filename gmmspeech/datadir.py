"""Kaldi-style data directories.

A data directory is a folder of plain-text tables, one entry per line, first column an id,
sorted by id (byte order, as ``LC_ALL=C sort``):

``wav.scp``
    ``<utt-id> <path>``; the path is the rest of the line and may contain spaces. Relative
    paths are resolved against the data directory itself. Piped commands are not supported.
``utt2spk``
    ``<utt-id> <spk-id>``; every utterance of ``wav.scp`` exactly once.
``spk2utt``
    ``<spk-id> <utt-id> ...``; the inverse of ``utt2spk`` (written for Kaldi tools, checked
    when present).
``utt2label`` (optional)
    ``<utt-id> <label>``; e.g. a digit, keyword or sound class.
``trials`` (optional)
    ``<model-id> <test-utt-id> target|nontarget``; test ids are utterances of this folder.

:meth:`DataDir.read` validates all of it and names ``file:line`` and the fix for every
problem. :func:`scan_audio` builds a data directory from a folder of audio files whose
paths follow a pattern with named fields; :func:`split_speakers` and :func:`make_trials`
make background / enrolment / test sets and all-pairs trial lists.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .errors import ConfigError, DataError

log = logging.getLogger(__name__)

_MAX_LISTED = 10
TRIAL_KINDS = ("target", "nontarget")


@dataclass(frozen=True)
class Trial:
    """One verification trial: does ``test_id`` belong to ``model_id``?"""

    model_id: str
    test_id: str
    target: bool


class _Problems:
    """Collects validation problems and raises them together."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.items: list[str] = []

    def add(self, msg: str) -> None:
        self.items.append(msg)

    def raise_if_any(self) -> None:
        if not self.items:
            return
        shown = self.items[:_MAX_LISTED]
        more = len(self.items) - len(shown)
        tail = f"\n  ... and {more} more" if more else ""
        raise DataError(
            f"{self.where}: {len(self.items)} problem(s):\n  " + "\n  ".join(shown) + tail
        )


def _read_lines(path: Path) -> list[tuple[int, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc}); save it as UTF-8") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    return [(i, line.rstrip("\r")) for i, line in enumerate(lines, 1)]


def _parse_table(
    path: Path,
    problems: _Problems,
    *,
    min_fields: int,
    max_fields: int | None,
    rest_is_one_field: bool = False,
    check_sorted: bool = True,
) -> list[tuple[int, str, list[str]]]:
    """Parse ``id fields...`` lines; report empty, short, duplicate and unsorted lines."""
    rows: list[tuple[int, str, list[str]]] = []
    first_line: dict[str, int] = {}
    prev: str | None = None
    name = path.name
    for lineno, line in _read_lines(path):
        where = f"{name}:{lineno}"
        if not line.strip():
            problems.add(f"{where}: empty line; delete it")
            continue
        if line[0].isspace():
            problems.add(f"{where}: line starts with whitespace; the id must come first")
            continue
        if rest_is_one_field:
            parts = line.split(None, 1)
            fields = [parts[1].strip()] if len(parts) == 2 and parts[1].strip() else []
        else:
            fields = line.split()[1:]
        key = line.split(None, 1)[0]
        if len(fields) < min_fields or (max_fields is not None and len(fields) > max_fields):
            want = (
                f"{min_fields + 1}"
                if max_fields == min_fields
                else f"at least {min_fields + 1}"
                if max_fields is None
                else f"{min_fields + 1} to {max_fields + 1}"
            )
            problems.add(f"{where}: expected {want} fields, got {len(fields) + 1}: {line!r}")
            continue
        if key in first_line:
            problems.add(
                f"{where}: duplicate id {key!r} (first at line {first_line[key]}); "
                f"ids must be unique: remove or rename one"
            )
            continue
        if check_sorted and prev is not None and key < prev:
            problems.add(
                f"{where}: not sorted ({key!r} after {prev!r}); sort the file with "
                f"`LC_ALL=C sort -k1,1 -o {name} {name}`"
            )
        first_line[key] = lineno
        prev = key
        rows.append((lineno, key, fields))
    return rows


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
    trials : sequence of Trial, optional
        Trials whose test ids are utterances of this directory.
    root : path-like, optional
        Folder relative audio paths are resolved against (the data directory's own folder
        when read from disk; the current folder otherwise).

    Attributes
    ----------
    wav_scp, utt2spk : dict of str to str
        Sorted by utterance id.
    utt2label : dict of str to str or None
    trials : list of Trial or None
    root : Path or None
    """

    def __init__(
        self,
        wav_scp: Mapping[str, str],
        utt2spk: Mapping[str, str] | None = None,
        utt2label: Mapping[str, str] | None = None,
        trials: Sequence[Trial] | None = None,
        root: str | os.PathLike[str] | None = None,
    ) -> None:
        self.wav_scp: dict[str, str] = {k: str(wav_scp[k]) for k in sorted(wav_scp)}
        spk = utt2spk if utt2spk is not None else {u: u for u in self.wav_scp}
        self.utt2spk: dict[str, str] = {k: str(spk[k]) for k in sorted(spk)}
        self.utt2label: dict[str, str] | None = (
            None if utt2label is None else {k: str(utt2label[k]) for k in sorted(utt2label)}
        )
        self.trials: list[Trial] | None = None if trials is None else list(trials)
        self.root: Path | None = None if root is None else Path(root)

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.wav_scp)

    def __repr__(self) -> str:
        return (
            f"DataDir({len(self)} utterances, {len(self.spk2utt)} speakers"
            + (f", {len(set(self.utt2label.values()))} labels" if self.utt2label else "")
            + (f", {len(self.trials)} trials" if self.trials is not None else "")
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

    def audio_path(self, utt_id: str) -> Path:
        """The audio file of an utterance, resolved against :attr:`root`."""
        p = Path(self.wav_scp[utt_id])
        if not p.is_absolute() and self.root is not None:
            p = self.root / p
        return p

    def subset(self, utt_ids: Iterable[str]) -> DataDir:
        """A data directory of some of the utterances (trials whose test id is kept)."""
        keep = set(utt_ids)
        unknown = keep - set(self.wav_scp)
        if unknown:
            raise DataError(f"subset: unknown utterance ids {sorted(unknown)[:5]}")
        trials = None
        if self.trials is not None:
            trials = [t for t in self.trials if t.test_id in keep]
        return DataDir(
            {u: self.wav_scp[u] for u in keep},
            {u: self.utt2spk[u] for u in keep},
            None if self.utt2label is None else {u: self.utt2label[u] for u in keep},
            trials,
            self.root,
        )

    # -------------------------------------------------------------- validation
    def validate(self, check_audio: bool = True, where: str = "data dir") -> None:
        """Check the tables agree with each other (and that the audio exists).

        Raises
        ------
        DataError
            Listing every problem with the id involved and how to fix it.
        """
        problems = _Problems(where)
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
            for i, t in enumerate(self.trials, 1):
                if t.test_id not in self.wav_scp:
                    problems.add(f"trial {i}: test utterance {t.test_id!r} is not in wav.scp")
                if (t.model_id, t.test_id) in seen:
                    problems.add(f"trial {i}: duplicate trial {t.model_id} {t.test_id}")
                seen.add((t.model_id, t.test_id))
        if check_audio:
            for utt in self.wav_scp:
                p = self.audio_path(utt)
                if not p.is_file():
                    problems.add(f"utterance {utt!r}: audio file {str(p)!r} does not exist")
        problems.raise_if_any()

    # ---------------------------------------------------------------- reading
    @classmethod
    def read(cls, path: str | os.PathLike[str], check_audio: bool = True) -> DataDir:
        """Read and validate a data directory.

        Parameters
        ----------
        path : path-like
            The folder holding ``wav.scp`` and ``utt2spk`` (and optionally ``spk2utt``,
            ``utt2label``, ``trials``).
        check_audio : bool
            Also check that every audio file exists.

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
        problems = _Problems(str(folder))
        wav_path = folder / "wav.scp"
        if not wav_path.is_file():
            raise DataError(f"{folder}: no wav.scp; a data directory needs wav.scp and utt2spk")
        wav_rows = _parse_table(
            wav_path, problems, min_fields=1, max_fields=1, rest_is_one_field=True
        )
        wav = {}
        wav_line = {}
        for lineno, utt, fields in wav_rows:
            target = fields[0]
            if target.endswith("|"):
                problems.add(
                    f"wav.scp:{lineno}: piped commands are not supported ({target!r}); "
                    f"convert the audio to files and list their paths"
                )
                continue
            wav[utt] = target
            wav_line[utt] = lineno
        if not wav_rows and not problems.items:
            problems.add("wav.scp: is empty; list one '<utt-id> <path>' per line")

        utt2spk: dict[str, str] = {}
        spk_path = folder / "utt2spk"
        if not spk_path.is_file():
            problems.add("utt2spk: missing; write '<utt-id> <spk-id>' per utterance")
        else:
            for lineno, utt, fields in _parse_table(spk_path, problems, min_fields=1, max_fields=1):
                if utt not in wav:
                    problems.add(
                        f"utt2spk:{lineno}: unknown utterance {utt!r} (not in wav.scp); "
                        f"remove the line or add the utterance to wav.scp"
                    )
                utt2spk[utt] = fields[0]
            for utt, lineno in wav_line.items():
                if utt not in utt2spk:
                    problems.add(
                        f"wav.scp:{lineno}: utterance {utt!r} has no utt2spk line; add "
                        f"'{utt} <spk-id>' to utt2spk"
                    )

        s2u_path = folder / "spk2utt"
        if s2u_path.is_file() and utt2spk:
            expected: dict[str, set[str]] = {}
            for utt, spk in utt2spk.items():
                expected.setdefault(spk, set()).add(utt)
            seen_spk = set()
            for lineno, spk, utts in _parse_table(
                s2u_path, problems, min_fields=1, max_fields=None
            ):
                seen_spk.add(spk)
                if spk not in expected:
                    problems.add(
                        f"spk2utt:{lineno}: speaker {spk!r} has no utterance in utt2spk; "
                        f"regenerate spk2utt from utt2spk (utils/utt2spk_to_spk2utt.pl)"
                    )
                elif set(utts) != expected[spk]:
                    diff = sorted(set(utts) ^ expected[spk])[:3]
                    problems.add(
                        f"spk2utt:{lineno}: speaker {spk!r} disagrees with utt2spk "
                        f"(e.g. {diff}); regenerate spk2utt from utt2spk"
                    )
            for spk in sorted(set(expected) - seen_spk)[:_MAX_LISTED]:
                problems.add(f"spk2utt: speaker {spk!r} of utt2spk is missing; regenerate it")

        utt2label: dict[str, str] | None = None
        lab_path = folder / "utt2label"
        if lab_path.is_file():
            utt2label = {}
            for lineno, utt, fields in _parse_table(lab_path, problems, min_fields=1, max_fields=1):
                if utt not in wav:
                    problems.add(
                        f"utt2label:{lineno}: unknown utterance {utt!r} (not in wav.scp); "
                        f"remove the line"
                    )
                utt2label[utt] = fields[0]
            for utt, lineno in wav_line.items():
                if utt not in utt2label:
                    problems.add(
                        f"wav.scp:{lineno}: utterance {utt!r} has no utt2label line; label "
                        f"every utterance or delete utt2label"
                    )

        trials: list[Trial] | None = None
        trials_path = folder / "trials"
        if trials_path.is_file():
            trials = []
            seen_pairs: dict[tuple[str, str], int] = {}
            for lineno, line in _read_lines(trials_path):
                where = f"trials:{lineno}"
                fields = line.split()
                if len(fields) != 3:
                    problems.add(
                        f"{where}: expected '<model-id> <test-utt-id> target|nontarget', "
                        f"got {line!r}"
                    )
                    continue
                model, test, kind = fields
                if kind not in TRIAL_KINDS:
                    problems.add(f"{where}: third field must be target or nontarget, got {kind!r}")
                    continue
                if test not in wav:
                    problems.add(
                        f"{where}: unknown test utterance {test!r} (not in wav.scp); trials "
                        f"must list utterances of this data directory"
                    )
                if (model, test) in seen_pairs:
                    problems.add(
                        f"{where}: duplicate trial {model} {test} (first at line "
                        f"{seen_pairs[model, test]}); remove one"
                    )
                    continue
                seen_pairs[model, test] = lineno
                trials.append(Trial(model, test, kind == "target"))

        problems.raise_if_any()
        dd = cls(wav, utt2spk, utt2label, trials, root=folder)
        if check_audio:
            missing = _Problems(str(folder))
            for utt, lineno in wav_line.items():
                p = dd.audio_path(utt)
                if not p.is_file():
                    missing.add(
                        f"wav.scp:{lineno}: audio file {str(p)!r} of {utt!r} does not exist; "
                        f"fix the path (relative paths are relative to the data directory)"
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
            tables["trials"] = [
                f"{t.model_id} {t.test_id} {'target' if t.target else 'nontarget'}"
                for t in self.trials
            ]
        for name in ("utt2label", "trials"):
            stale = folder / name
            if name not in tables and stale.exists():
                log.warning("%s: removing a stale %s (this data directory has none)", folder, name)
                stale.unlink()
        for name, lines in tables.items():
            try:
                with atomic_path(folder / name) as tmp:
                    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
            except OSError as exc:
                raise DataError(f"{folder / name}: cannot write ({exc.strerror or exc})") from None


# --------------------------------------------------------------------------- building
_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([^{}]+))?\}")


def compile_pattern(pattern: str) -> tuple[re.Pattern[str], list[str]]:
    """Turn a layout pattern into a regular expression.

    Parameters
    ----------
    pattern : str
        A path relative to the root with ``/`` separators and named fields, e.g.
        ``{label}/{spk}_NO_{round}.flac``, ``{digit}_{spk}_{idx}.wav`` or
        ``{spk}/{spk}-{chapter}-{utt}.flac``. A field matches one or more characters other
        than ``/`` (as few as possible), or the regular expression given after a colon
        (``{idx:[0-9]+}``); a field used twice must match the same text both times. ``*``
        matches any characters except ``/`` and ``**/`` any number of folders.

    Returns
    -------
    regex : re.Pattern
        Matches whole relative paths.
    fields : list of str
        Field names in order of first appearance.
    """
    if not pattern or pattern.startswith("/"):
        raise ConfigError(f"pattern: must be a relative path pattern, got {pattern!r}")
    out: list[str] = []
    fields: list[str] = []
    pos = 0
    for m in _FIELD.finditer(pattern):
        out.append(_literal(pattern[pos : m.start()]))
        name, rx = m.group(1), m.group(2)
        if name in fields:
            out.append(f"(?P={name})")
        else:
            fields.append(name)
            out.append(f"(?P<{name}>{rx if rx else '[^/]+?'})")
        pos = m.end()
    out.append(_literal(pattern[pos:]))
    if "{" in "".join(_FIELD.sub("", pattern)) or "}" in _FIELD.sub("", pattern):
        raise ConfigError(
            f"pattern: unbalanced braces in {pattern!r}; fields look like {{name}} or "
            f"{{name:regex}}"
        )
    if not fields:
        raise ConfigError(f"pattern: {pattern!r} has no {{field}}; e.g. '{{spk}}/{{utt}}.wav'")
    try:
        regex = re.compile("".join(out))
    except re.error as exc:
        raise ConfigError(
            f"pattern: invalid field regular expression in {pattern!r}: {exc}"
        ) from None
    return regex, fields


def _literal(text: str) -> str:
    parts = []
    i = 0
    while i < len(text):
        if text.startswith("**/", i):
            parts.append("(?:[^/]+/)*")
            i += 3
        elif text[i] == "*":
            parts.append("[^/]*")
            i += 1
        else:
            parts.append(re.escape(text[i]))
            i += 1
    return "".join(parts)


def _token(value: str) -> str:
    """A field value usable inside an id or label (whitespace -> '_')."""
    return re.sub(r"\s+", "_", value.strip())


def scan_audio(
    root: str | os.PathLike[str],
    pattern: str,
    *,
    utt_id: str | None = None,
    spk_field: str | None = "spk",
    label_field: str | None = "label",
) -> DataDir:
    """Build a data directory from the audio files under ``root`` whose paths match a pattern.

    Parameters
    ----------
    root : path-like
        Folder to search (recursively).
    pattern : str
        Layout of the paths relative to ``root``; see :func:`compile_pattern`.
    utt_id : str, optional
        Template of utterance ids over the fields, e.g. ``"{spk}-{label}-{round}"``.
        Default: the speaker field, then every other field in pattern order, joined by
        ``-``. Whitespace in values becomes ``_``.
    spk_field : str or None
        Field holding the speaker. If the pattern has no such field, every utterance is its
        own speaker.
    label_field : str or None
        Field holding a class label written to ``utt2label`` (skipped when absent).

    Returns
    -------
    DataDir
        With absolute audio paths.

    Raises
    ------
    DataError
        No file matches, or two files get the same utterance id.
    """
    base = Path(root)
    if not base.is_dir():
        raise DataError(f"{base}: no such folder")
    regex, fields = compile_pattern(pattern)
    spk = spk_field if spk_field in fields else None
    label = label_field if label_field in fields else None
    if utt_id is None:
        order = ([spk] if spk else []) + [f for f in fields if f != spk]
        template = "-".join("{" + f + "}" for f in order)
    else:
        template = utt_id
        used = set(_FIELD_NAMES.findall(template))
        unknown = used - set(fields)
        if unknown:
            raise ConfigError(
                f"utt_id: template {template!r} uses {sorted(unknown)}, which the pattern "
                f"does not define (fields: {fields})"
            )
    wav: dict[str, str] = {}
    utt2spk: dict[str, str] = {}
    utt2label: dict[str, str] = {}
    source: dict[str, str] = {}
    n_seen = 0
    unmatched: list[str] = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames.sort()
        for fname in sorted(filenames):
            full = Path(dirpath) / fname
            rel = full.relative_to(base).as_posix()
            n_seen += 1
            m = regex.fullmatch(rel)
            if m is None:
                unmatched.append(rel)
                continue
            values = {k: _token(v) for k, v in m.groupdict().items()}
            try:
                uid = template.format(**values)
            except (KeyError, IndexError, ValueError) as exc:
                raise ConfigError(f"utt_id: bad template {template!r} ({exc})") from None
            if not uid or any(c.isspace() for c in uid):
                raise DataError(f"{rel}: utterance id {uid!r} is empty or has whitespace")
            if uid in wav:
                raise DataError(
                    f"{base}: files {source[uid]!r} and {rel!r} both get utterance id "
                    f"{uid!r}; use more fields in the id template (--utt-id), e.g. "
                    f"{'-'.join('{' + f + '}' for f in fields)!r}"
                )
            wav[uid] = str(full.resolve())
            source[uid] = rel
            utt2spk[uid] = values[spk] if spk else uid
            if label:
                utt2label[uid] = values[label]
    if not wav:
        example = f", e.g. {unmatched[0]!r}" if unmatched else ""
        raise DataError(
            f"{base}: no file matches the pattern {pattern!r} ({n_seen} files seen{example}); "
            f"the pattern is matched against whole paths relative to {base}"
        )
    if unmatched:
        log.info(
            "%s: %d of %d files do not match %r and were skipped (e.g. %r)",
            base,
            len(unmatched),
            n_seen,
            pattern,
            unmatched[0],
        )
    if spk is None:
        log.info(
            "pattern %r has no {%s} field: each utterance is its own speaker", pattern, spk_field
        )
    return DataDir(wav, utt2spk, utt2label if label else None)


_FIELD_NAMES = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)[^{}]*\}")


def split_speakers(
    data: DataDir,
    *,
    background: float = 0.3,
    enroll: float = 0.5,
    enroll_labels: Iterable[str] | None = None,
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
    enroll_utts: list[str] = []
    test_utts: list[str] = []
    for spk in targets:
        utts = spk2utt[spk]
        if labels is not None:
            assert data.utt2label is not None
            e = [u for u in utts if data.utt2label[u] in labels]
            t = [u for u in utts if data.utt2label[u] not in labels]
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
    log.info(
        "split: %d background speakers (%d utts), %d target speakers (%d enrol, %d test utts)",
        len(bg_spk),
        len(bg),
        len(targets),
        len(en),
        len(te),
    )
    return bg, en, te


def make_trials(enroll: DataDir, test: DataDir, by: str = "spk") -> list[Trial]:
    """All (model, test utterance) pairs; a target when the test utterance is the model's.

    Parameters
    ----------
    enroll : DataDir
        Its speakers (``by="spk"``) or labels (``by="label"``) are the models.
    test : DataDir
    by : {"spk", "label"}

    Returns
    -------
    list of Trial
        Sorted by model, then test utterance.
    """
    if by not in ("spk", "label"):
        raise ConfigError(f"by: must be 'spk' or 'label', got {by!r}")

    def owner(d: DataDir, which: str) -> dict[str, str]:
        if by == "spk":
            return d.utt2spk
        if d.utt2label is None:
            raise DataError(f"make_trials: the {which} data directory has no utt2label")
        return d.utt2label

    models = sorted(set(owner(enroll, "enrolment").values()))
    test_owner = owner(test, "test")
    return [Trial(m, u, test_owner[u] == m) for m in models for u in test.wav_scp]


__all__ = ["DataDir", "Trial", "compile_pattern", "make_trials", "scan_audio", "split_speakers"]
