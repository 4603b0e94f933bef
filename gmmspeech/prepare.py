"""Data preparation: corpus layouts to data directories, splits, trial lists and folds.

Used by ``gmmspeech prepare`` and by the experiment pipeline alike:

- :func:`scan_audio` builds a :class:`~gmmspeech.datadir.DataDir` from a folder of audio
  files whose paths follow a pattern with named fields (:func:`compile_pattern`);
  :func:`select_listed` and :func:`limit_speakers` narrow it down;
- :func:`split_speakers` makes background / enrolment / test sets, :func:`make_trials`
  all-pairs trial lists, and :func:`split_verification` both (with an optional user trial
  list checked by :func:`check_trials`);
- :func:`assign_folds` gives each utterance a cross-validation fold for classification.

The functions log what they drop; they never print.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .datadir import DataDir
from .errors import ConfigError, DataError
from .tables import read_table
from .trials import TrialList

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- layouts
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
        n, eg = len(unmatched), unmatched[0]
        log.info(
            "%s: %d of %d files do not match %r; skipped (e.g. %r)", base, n, n_seen, pattern, eg
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
    log.debug(
        "split: %d background speakers (%d utts), %d target speakers (%d enrol, %d test utts)",
        len(bg_spk),
        len(bg),
        len(targets),
        len(en),
        len(te),
    )
    return bg, en, te


def make_trials(enroll: DataDir, test: DataDir, by: str = "spk") -> TrialList:
    """All (model, test utterance) pairs; a target when the test utterance is the model's.

    Parameters
    ----------
    enroll : DataDir
        Its speakers (``by="spk"``) or labels (``by="label"``) are the models.
    test : DataDir
    by : {"spk", "label"}

    Returns
    -------
    TrialList
        Labelled, sorted by model, then test utterance.
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
    pairs = [(m, u) for m in models for u in test.wav_scp]
    is_target = np.array([test_owner[u] == m for m, u in pairs], dtype=bool)
    return TrialList([m for m, _ in pairs], [u for _, u in pairs], is_target)


def check_trials(trials: TrialList, enroll: DataDir, test: DataDir) -> TrialList:
    """Check a user's trial list against an enrolment / test split.

    Raises
    ------
    DataError
        The list has no labels, or ``source:line`` of a trial whose model is not an enrolled
        speaker or whose test id is not a test utterance.
    """
    if trials.is_target is None:
        raise DataError(f"{trials.source}: the trials need target/nontarget labels")
    models = set(enroll.utt2spk.values())
    for i, (m, t) in enumerate(trials.pairs):
        if m not in models:
            raise DataError(
                f"{trials.where(i)}: model {m!r} is not an enrolled speaker of the targets "
                f"(e.g. {sorted(models)[:3]}); fix the trial list"
            )
        if t not in test.wav_scp:
            raise DataError(
                f"{trials.where(i)}: test utterance {t!r} is not a test utterance of the "
                f"targets (e.g. {test.utt_ids[:2]}); fix the trial list"
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


@dataclass
class VerificationSets:
    """Background, enrolment and test data directories; the test one holds the trials."""

    background: DataDir
    enroll: DataDir
    test: DataDir

    @property
    def trials(self) -> TrialList:
        assert self.test.trials is not None
        return self.test.trials

    def write(self, folder: str | os.PathLike[str]) -> None:
        """Write ``folder/background``, ``folder/enroll`` and ``folder/test``."""
        for name in ("background", "enroll", "test"):
            getattr(self, name).write(Path(folder) / name)

    def counts(self) -> dict[str, int]:
        """Speakers, utterances and trials of each set."""
        labels = self.trials.is_target
        n_tar = 0 if labels is None else int(labels.sum())
        return {
            "background_speakers": len(self.background.spk2utt),
            "background_utts": len(self.background),
            "target_speakers": len(self.enroll.spk2utt),
            "enroll_utts": len(self.enroll),
            "test_utts": len(self.test),
            "trials": len(self.trials),
            "target_trials": n_tar,
            "nontarget_trials": len(self.trials) - n_tar,
        }


def split_verification(
    targets: DataDir,
    *,
    background: DataDir | float = 0.3,
    enroll: float = 0.5,
    enroll_labels: Sequence[str] | None = None,
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
    enroll, enroll_labels, seed
        As in :func:`split_speakers`; the labels are checked with :func:`check_enroll_labels`.
    trials : TrialList, optional
        A labelled trial list to use (checked with :func:`check_trials`) instead of all
        pairs.
    trials_by : {"spk", "label"}
        Models of the all-pairs trials (:func:`make_trials`).

    Raises
    ------
    DataError, ConfigError
        Shared speakers, unknown labels, an empty side, or a bad trial list.
    """
    if isinstance(background, DataDir):
        both = sorted(set(background.utt2spk.values()) & set(targets.utt2spk.values()))
        if both:
            raise DataError(
                f"background and targets share {len(both)} speaker(s) (e.g. {both[:3]}); "
                f"background speakers must not be enrolled or tested"
            )
    if enroll_labels is not None:
        check_enroll_labels(enroll_labels, targets)
    rest, en, te = split_speakers(
        targets,
        background=0 if isinstance(background, DataDir) else background,
        enroll=enroll,
        enroll_labels=enroll_labels,
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
    te.trials = (
        make_trials(en, te, by=trials_by) if trials is None else check_trials(trials, en, te)
    )
    # logged here, with the background actually used (a separate data dir or the share)
    log.info(
        "split: %d background speakers (%d utts), %d target speakers (%d enrol, %d test utts)",
        len(bg.spk2utt),
        len(bg),
        len(en.spk2utt),
        len(en),
        len(te),
    )
    return VerificationSets(bg, en, te)


# ---------------------------------------------------------------------- selections
def read_list(path: Path, where: str) -> set[str]:
    """Paths listed in a text/CSV file: the first column, or the ``file`` column of a CSV."""
    if not path.is_file():
        raise DataError(f"{where}: list file {str(path)!r} does not exist")
    out: set[str] = set()
    if path.suffix.lower() == ".csv":
        reader = csv.reader(path.read_text(encoding="utf-8").splitlines())
        header = next(reader, None)
        col = 0
        if header is not None and "file" in header:
            col = header.index("file")
        elif header is not None and header:
            out.add(header[0].strip())
        for row in reader:
            if row:
                out.add(row[col].strip())
    else:
        out = {row.key for row in read_table(path, min_fields=0, max_fields=None, unique=0)}
    if not out:
        raise DataError(f"{where}: list file {str(path)!r} lists no file")
    return {Path(p).as_posix() for p in out}


def select_listed(
    data: DataDir, root: str | os.PathLike[str], lists: Sequence[str], where: str
) -> DataDir:
    """The utterances whose audio path, relative to ``root``, is in one of the list files.

    Parameters
    ----------
    data : DataDir
        With absolute audio paths (as :func:`scan_audio` writes them).
    root : path-like
        The corpus root; list files and listed paths are relative to it.
    lists : sequence of str
        List files (see :func:`read_list`).
    where : str
        Prefix of error messages (e.g. the config key).
    """
    base = Path(root)
    keep: set[str] = set()
    for item in lists:
        keep |= read_list(base / item, where)
    root_r = base.resolve()
    chosen = []
    for utt in data.utt_ids:
        p = Path(data.wav_scp[utt])
        with contextlib.suppress(ValueError):
            if p.relative_to(root_r).as_posix() in keep:
                chosen.append(utt)
    if not chosen:
        raise DataError(
            f"{where}: none of the {len(data)} files found is listed in {', '.join(lists)} "
            f"(paths are relative to the corpus root)"
        )
    return data.subset(chosen)


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
    "compile_pattern",
    "limit_speakers",
    "make_trials",
    "read_list",
    "scan_audio",
    "select_listed",
    "split_speakers",
    "split_verification",
]
