"""Score files: ``<model> <test> <score>`` lines for the trials of a :class:`TrialList`.

``<model-id> <test-id> <score>`` per line (a finite number; empty and ``#`` lines skipped,
each pair once). :func:`write_scores` writes 9 significant digits, after an optional first
line ``# gmmspeech scores key=value ...`` recording where the scores came from (read back by
:func:`read_scores_header`). :func:`align_scores` joins the scores of a file to a trial list by
trial key (model id, test id), never by line order, and counts the trials without a score.

**The system of a scores file.** The header's :data:`SYSTEM_FIELDS` (the UBM or TV
fingerprint, the feature config hash, the scoring method or back-end scorer, the score
normalisation) name the system that made the scores: the parts that its evaluation scores
and its calibration scores share, whatever models or back end scored each trial list.
``kind`` says whether the lines are a system's scores (``scores``) or calibrated LLRs
(``llr``). A calibration or a fusion records the system of each scores file it was fitted
on (:func:`system_of`), and :func:`check_same_system` refuses scores of another system.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from ..errors import DataError
from ..storage.atomic import atomic_path
from ..storage.provenance import check_recorded, recorded_differences, short_hash
from .tables import read_table
from .trials import BLOCK, TrialList

log = logging.getLogger(__name__)

#: Start of the provenance line of a scores file.
SCORES_HEADER = "# gmmspeech scores"

#: Header fields naming the system that made a scores file (module docstring), in the order
#: they are reported: UBM fingerprint (GMM-UBM), TV fingerprint (i-vectors), feature config
#: hash, scoring method, back-end scorer, score normalisation, and for fused LLRs the
#: fingerprint of the fused systems.
SYSTEM_FIELDS = ("ubm", "tv", "features", "method", "scorer", "norm", "fused")

#: Header field: ``scores`` (a system's scores, normalised or not) or ``llr`` (calibrated).
KIND = "kind"

#: Header field: how many score lines follow (a truncated or cut file is refused).
N_SCORES = "n_scores"


def write_scores(
    path: str | os.PathLike[str],
    model_ids: Sequence[str],
    test_ids: Sequence[str],
    scores: ArrayLike,
    header: Mapping[str, object] | None = None,
) -> None:
    """Write ``<model> <test> <score>`` lines atomically (scores with 9 significant digits).

    ``header`` (values without spaces) becomes the first line ``# gmmspeech scores k=v ...``.
    A NaN or infinite score is refused, naming its trial: no such file is ever written.

    Examples
    --------
    Scores written and read back (the example writes ``scores.txt`` in the current directory):

    >>> from gmmspeech import read_scores, write_scores
    >>> write_scores("scores.txt", ["spk1", "spk2"], ["utt1", "utt1"], [1.5, -0.25])
    >>> read_scores("scores.txt")
    {('spk1', 'utt1'): 1.5, ('spk2', 'utt1'): -0.25}
    """
    if not len(model_ids) == len(test_ids) == np.shape(scores)[0]:
        raise DataError(
            f"write_scores: {len(model_ids)} model ids, {len(test_ids)} test ids and "
            f"{np.shape(scores)[0]} scores; they must be equally many"
        )
    write_trial_scores(path, TrialList(list(model_ids), list(test_ids)), scores, header)


def write_trial_scores(
    path: str | os.PathLike[str],
    trials: TrialList,
    scores: ArrayLike,
    header: Mapping[str, object] | None = None,
) -> None:
    """:func:`write_scores` for a :class:`TrialList`, streamed: no per-trial strings are
    held, so a list of millions of trials is written in constant memory."""
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != (len(trials),):
        raise DataError(
            f"write_scores: {len(trials)} trials and {s.shape[0]} scores; they must be equally many"
        )
    bad = np.flatnonzero(~np.isfinite(s))
    if bad.size:
        i = int(bad[0])
        ((m, t),) = trials.iter_pairs(i, i + 1)
        raise DataError(
            f"{path}: the score of model {m!r} against test utterance {t!r} is {s[i]} "
            f"({bad.size} non-finite score(s)); nothing written: check that model and the "
            f"utterance's features"
        )
    if header:
        header = {**header, N_SCORES: len(trials)}
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        if header:
            f.write(
                SCORES_HEADER
                + "".join(f" {k}={str(v).replace(' ', '_')}" for k, v in header.items())
                + "\n"
            )
        for b0 in range(0, len(trials), BLOCK):
            b1 = min(len(trials), b0 + BLOCK)
            pairs = trials.iter_pairs(b0, b1)
            f.writelines(
                f"{m} {t} {v:.9g}\n" for (m, t), v in zip(pairs, s[b0:b1].tolist(), strict=True)
            )


def read_scores(path: str | os.PathLike[str]) -> dict[tuple[str, str], float]:
    """Read ``<model> <test> <score>`` lines into ``{(model, test): score}`` (file order).

    Raises
    ------
    DataError
        ``file:line`` of a malformed line, a score that is not a finite number, or a trial
        scored twice; a file without scores; fewer or more scores than its header's
        ``n_scores`` (a truncated file).
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such scores file")
    out: dict[tuple[str, str], float] = {}
    for row in read_table(
        p,
        min_fields=2,
        max_fields=2,
        comments=True,
        unique=2,
        what="trial",
        layout="<model> <test> <score>",
    ):
        text = row.fields[1]
        try:
            v = float(text)
        except ValueError:
            raise DataError(f"{p}:{row.line}: score {text!r} is not a number") from None
        if not np.isfinite(v):
            raise DataError(f"{p}:{row.line}: score {text!r} is not finite")
        out[row.key, row.fields[0]] = v
    if not out:
        raise DataError(f"{p}: holds no '<model> <test> <score>' line")
    said = read_scores_header(p).get(N_SCORES)
    if said is not None and said != str(len(out)):
        raise DataError(
            f"{p}: holds {len(out)} scores, but its first line says {N_SCORES}={said}: the "
            f"file was truncated or edited; write it again (or delete its first line to use "
            f"it as it is)"
        )
    return out


def read_scores_header(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``key=value`` fields of a scores file's ``# gmmspeech scores`` line ({} if none)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        first = f.readline(4096)
    if not first.startswith(SCORES_HEADER):
        return {}
    fields = (w.partition("=") for w in first[len(SCORES_HEADER) :].split())
    return {k: v for k, sep, v in fields if sep}


def align_scores(
    scores: Mapping[tuple[str, str], float],
    trials: TrialList,
    *,
    source: str | os.PathLike[str] | None = None,
    exact: bool = False,
) -> np.ndarray:
    """Scores in the order of ``trials``, joined by trial key (model id, test id).

    Parameters
    ----------
    scores : mapping of (model_id, test_id) to float
        E.g. from :func:`read_scores`.
    trials : TrialList
    source : path-like, optional
        Where ``scores`` were read from, for messages.
    exact : bool
        Also refuse scores of trials that ``trials`` does not list (by default they are
        ignored: evaluating a subset of the scored trials is a legitimate use).

    Returns
    -------
    ndarray, shape (len(trials),), float64

    Raises
    ------
    DataError
        Naming ``source:line`` of the first trial that has no score and how many have none;
        with ``exact``, how many scores belong to no trial, and one of them.

    Examples
    --------
    Scores from a file, put in the order of a trial list:

    >>> from gmmspeech import TrialList, align_scores
    >>> scores = {("spk1", "utt1"): 1.5, ("spk2", "utt1"): -0.25}
    >>> align_scores(scores, TrialList(["spk2", "spk1"], ["utt1", "utt1"])).tolist()
    [-0.25, 1.5]
    """
    pairs = trials.pairs
    out = np.empty(len(pairs))
    missing: list[int] = []
    for i, key in enumerate(pairs):
        value = scores.get(key)
        if value is None:
            missing.append(i)
        else:
            out[i] = value
    src = f" in {source}" if source is not None else ""
    if missing:
        m, t = pairs[missing[0]]
        raise DataError(
            f"{trials.where(missing[0])}: trial {m} {t} has no score{src} ({len(missing)} of "
            f"{len(trials)} trials have none); score the same trials list"
        )
    listed = set(pairs) if exact else set()
    extra = [k for k in scores if k not in listed] if exact else []
    if extra:
        m, t = extra[0]
        raise DataError(
            f"{source or 'scores'}: {len(extra)} score(s) of trials that {trials.source} "
            f"does not list (e.g. {m} {t}); give the trials list these scores were made for"
        )
    return out


def system_of(header: Mapping[str, str]) -> dict[str, str]:
    """The :data:`SYSTEM_FIELDS` and ``kind`` that a scores file's header records."""
    return {k: str(header[k]) for k in (*SYSTEM_FIELDS, KIND) if k in header}


def system_header(
    *,
    norm: str,
    ubm: str | None = None,
    tv: str | None = None,
    features: str | None = None,
    method: str | None = None,
    scorer: str | None = None,
    **extra: str | None,
) -> dict[str, str]:
    """The header of a system's scores (module docstring): ``kind=scores``, the system fields
    given (UBM and TV fingerprints cut to 16 hex digits) and ``extra`` (e.g. the models'
    SHA-256); a field given as None is unknown and left out."""
    fields = {
        "ubm": ubm and ubm[:16],
        "tv": tv and tv[:16],
        "features": features,
        "method": method,
        "scorer": scorer,
        "norm": norm,
        KIND: "scores",
        **extra,
    }
    return {k: v for k, v in fields.items() if v is not None}


def llr_header(header: Mapping[str, str], **extra: object) -> dict[str, object]:
    """The header of calibrated or fused LLRs made from scores with ``header``: the same
    system, ``kind=llr``, and ``extra``."""
    return {**system_of(header), KIND: "llr", **extra}


def system_fingerprint(header: Mapping[str, str]) -> str | None:
    """16 hex digits naming the system of a header's :data:`SYSTEM_FIELDS` (None: it records
    none of them, e.g. a scores file of another toolkit)."""
    return short_hash(header, SYSTEM_FIELDS)


def check_same_system(
    stored: Mapping[str, str],
    given: Mapping[str, str],
    *,
    given_in: str,
    stored_in: str,
    fix: str,
) -> bool:
    """Refuse scores of another system than an artefact recorded (:func:`system_of`).

    A side that records no system cannot be checked: a scores file of another toolkit, or
    an artefact written before gmmspeech recorded it. That is not refused (such files are
    legitimate input) but warned about, once per call, naming the file.

    Parameters
    ----------
    stored : mapping
        What the artefact recorded of the scores it was made from.
    given : mapping
        The header (or :func:`system_of`) of the scores given now.
    given_in, stored_in, fix : str
        The scores file, the artefact, and the remedy, for the message.

    Returns
    -------
    bool
        True when both sides recorded a system and it was checked.

    Raises
    ------
    ModelMismatchError
        A field recorded on both sides differs; the message lists each with both values.
    """
    if system_fingerprint(stored) is None:
        log.warning(
            "%s records no system of the scores it was made from (written before gmmspeech "
            "recorded it, or made from scores without a '%s' line): %s is not checked "
            "against it",
            stored_in,
            SCORES_HEADER,
            given_in,
        )
        return False
    if system_fingerprint(given) is None:
        log.warning(
            "%s has no '%s' line naming its system: it cannot be checked against %s",
            given_in,
            SCORES_HEADER,
            stored_in,
        )
        return False
    check_recorded(
        stored,
        given,
        (*SYSTEM_FIELDS, KIND),
        given_in=given_in,
        stored_in=stored_in,
        fix=fix,
        optional=(KIND,),  # headers of before kind was recorded
    )
    return True


def system_differences(a: Mapping[str, str], b: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """``(field, a's, b's)`` of the two headers' systems (:func:`check_same_system`'s
    comparison); none when either records no system."""
    if system_fingerprint(a) is None or system_fingerprint(b) is None:
        return []
    return recorded_differences(a, b, (*SYSTEM_FIELDS, KIND), optional=(KIND,))


__all__ = [
    "KIND",
    "N_SCORES",
    "SCORES_HEADER",
    "SYSTEM_FIELDS",
    "align_scores",
    "check_same_system",
    "llr_header",
    "read_scores",
    "read_scores_header",
    "system_differences",
    "system_fingerprint",
    "system_header",
    "system_of",
    "write_scores",
    "write_trial_scores",
]
