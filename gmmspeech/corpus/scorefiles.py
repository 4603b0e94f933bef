"""Score files: ``<model> <test> <score>`` lines for the trials of a :class:`TrialList`.

``<model-id> <test-id> <score>`` per line (a finite number; empty and ``#`` lines skipped,
each pair once). :func:`write_scores` writes 9 significant digits, after an optional first
line ``# gmmspeech scores key=value ...`` recording where the scores came from (UBM and models
fingerprints, feature config hash, method; read back by :func:`read_scores_header`);
:func:`align_scores` puts the scores of a file in the order of a trial list and names the
first trial without one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from ..errors import DataError
from ..storage.atomic import atomic_path
from .tables import read_table
from .trials import BLOCK, TrialList

#: Start of the provenance line of a scores file.
SCORES_HEADER = "# gmmspeech scores"


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
        scored twice; a file without scores.
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
    return out


def read_scores_header(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``key=value`` fields of a scores file's ``# gmmspeech scores`` line ({} if none)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        first = f.readline(4096)
    if not first.startswith(SCORES_HEADER):
        return {}
    fields = (w.partition("=") for w in first[len(SCORES_HEADER) :].split())
    return {k: v for k, sep, v in fields if sep}


def align_scores(scores: Mapping[tuple[str, str], float], trials: TrialList) -> np.ndarray:
    """Scores in the order of ``trials``.

    Parameters
    ----------
    scores : mapping of (model_id, test_id) to float
        E.g. from :func:`read_scores`; scores of trials not in ``trials`` are ignored.
    trials : TrialList

    Returns
    -------
    ndarray, shape (len(trials),), float64

    Raises
    ------
    DataError
        Naming ``source:line`` of the first trial that has no score.

    Examples
    --------
    Scores from a file, put in the order of a trial list:

    >>> from gmmspeech import TrialList, align_scores
    >>> scores = {("spk1", "utt1"): 1.5, ("spk2", "utt1"): -0.25}
    >>> align_scores(scores, TrialList(["spk2", "spk1"], ["utt1", "utt1"])).tolist()
    [-0.25, 1.5]
    """
    out = np.empty(len(trials))
    for i, (m, t) in enumerate(trials.pairs):
        try:
            out[i] = scores[(m, t)]
        except KeyError:
            raise DataError(
                f"{trials.where(i)}: trial {m} {t} has no score; score the same trials list"
            ) from None
    return out


__all__ = [
    "SCORES_HEADER",
    "align_scores",
    "read_scores",
    "read_scores_header",
    "write_scores",
    "write_trial_scores",
]
