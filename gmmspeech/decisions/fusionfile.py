"""A fitted fusion as a JSON file, and which scores file belongs to which fused system.

The file (format ``gmmspeech.Fusion``) holds every candidate's weights and offset, the kept
one, the guard's figures, and ``inputs``: in the order of the score columns, each system's
name and identity (:func:`gmmspeech.corpus.scorefiles.system_of` of the scores file it was
fitted on, and its fingerprint). ``gmmspeech fuse --save`` and the fusion experiment's
``fusion/fusion.json`` write it; ``gmmspeech fuse --load`` reads it back.

Applying a fusion needs each system's scores in its own column. :func:`match_inputs` finds
them by the systems' fingerprints, never by the order of the files on the command line, and
refuses a file of a system the fusion does not know (the trials are joined by key,
:func:`gmmspeech.corpus.scorefiles.align_scores`). Files that record no system (other
toolkits, fusions written before this was recorded) are matched by position, with a warning.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..corpus.scorefiles import KIND, SYSTEM_FIELDS, system_fingerprint, system_of
from ..errors import DataError, ModelFormatError, ModelMismatchError
from ..storage.atomic import atomic_path
from ..storage.provenance import check_finite_json, check_recorded, short_hash
from .calibration import LinearFusion
from .fusion import FusionChoice

log = logging.getLogger(__name__)

#: The ``format`` of a fusion JSON file.
FUSION_FORMAT = "gmmspeech.Fusion"


def input_record(name: str, header: Mapping[str, str], path: object) -> dict[str, str]:
    """What a fusion records of one system: ``name``, the system fields of its scores file's
    ``header`` and their fingerprint (``system``), and the ``file``."""
    out = {"name": name, **system_of(header)}
    fp = system_fingerprint(header)
    if fp is not None:
        out["system"] = fp
    out["file"] = str(path)
    return out


def fused_header(choice: FusionChoice, label: str | None = None) -> dict[str, str]:
    """The header of LLRs of candidate ``label`` (default: the kept one) of ``choice``:
    ``method=fusion``, ``fused`` (a fingerprint of the fused systems, when they are all
    known), the candidate, ``kind=llr``."""
    head = {"method": "fusion"}
    systems = [r.get("system", "") for r in choice.inputs]
    if systems and all(systems):
        head["fused"] = short_hash({"systems": ",".join(systems)}, ("systems",)) or ""
    return head | {"candidate": label or choice.label, KIND: "llr"}


def _describe(fields: Mapping[str, str]) -> str:
    shown = [f"{k}={fields[k]}" for k in (*SYSTEM_FIELDS, KIND) if k in fields]
    return ", ".join(shown) or "no system recorded"


def match_inputs(
    recorded: Sequence[Mapping[str, str]],
    given: Sequence[tuple[str, Mapping[str, str]]],
    *,
    stored_in: str,
) -> list[int]:
    """For each fused system, in the fusion's column order, the index of its scores file.

    Parameters
    ----------
    recorded : sequence of mapping, length n_systems
        The fusion's ``inputs`` (:func:`input_record`); may be empty (a file of before).
    given : sequence of (path, header)
        The scores files to apply the fusion to, in any order, and their headers.
    stored_in : str
        Names the fusion in messages.

    Returns
    -------
    list of int, length n_systems

    Raises
    ------
    DataError
        Not one file per system.
    ModelMismatchError
        A system without a file of its own among ``given``, or a file of another kind
        (``llr`` given for ``scores``), each naming the file and what differs.
    """
    n = len(recorded) if recorded else len(given)
    names = [r.get("name", f"system{j + 1}") for j, r in enumerate(recorded)]
    if len(given) != n:
        raise DataError(
            f"{stored_in} fuses {n} systems ({', '.join(names)}); {len(given)} scores files "
            f"given: give one scores file of each"
        )
    have = [r.get("system") for r in recorded]
    got = [system_fingerprint(h) for _, h in given]
    if not recorded or not all(have) or not all(got):
        unknown = [p for (p, _), fp in zip(given, got, strict=True) if fp is None]
        if not recorded or not all(have):
            unknown.insert(0, stored_in)
        log.warning(
            "%s record(s) no system: the scores files are taken as the fused systems in the "
            "order given; give files written by gmmspeech to have them matched by system",
            ", ".join(unknown),
        )
        order = list(range(n))
    else:
        order = _by_fingerprint(recorded, given, have, got, stored_in)
    for j, i in enumerate(order if recorded else []):
        path, header = given[i]
        if not (have[j] and got[i]):
            continue  # warned above: nothing to compare
        check_recorded(
            recorded[j],
            header,
            (*SYSTEM_FIELDS, KIND),
            given_in=path,
            stored_in=f"{stored_in} ({names[j]})",
            fix="give the scores of the systems the fusion was fitted on",
            optional=(KIND,),
        )
    return order


def _by_fingerprint(
    recorded: Sequence[Mapping[str, str]],
    given: Sequence[tuple[str, Mapping[str, str]]],
    have: Sequence[str | None],
    got: Sequence[str | None],
    stored_in: str,
) -> list[int]:
    free = list(range(len(given)))
    order = []
    for j, fp in enumerate(have):
        i = next((i for i in free if got[i] == fp), None)
        if i is None:
            others = "; ".join(f"{given[i][0]}: {_describe(given[i][1])}" for i in free)
            raise ModelMismatchError(
                f"{stored_in}: no scores file of its system {recorded[j].get('name')} "
                f"({_describe(recorded[j])}) is given (left: {others}); give the scores of "
                f"the systems the fusion was fitted on"
            )
        free.remove(i)
        order.append(i)
    if len(set(have)) < len(have):
        log.warning(
            "%s: several fused systems record the same system; their scores files are taken "
            "in the order given",
            stored_in,
        )
    return order


# ------------------------------------------------------------------------------ the file
def fusion_dict(choice: FusionChoice) -> dict[str, Any]:
    """The JSON object of a fitted fusion (module docstring)."""
    return {"format": FUSION_FORMAT, "gmmspeech_version": __version__, **choice.info()}


def save_fusion(choice: FusionChoice, path: str | os.PathLike[str]) -> None:
    """Write ``choice`` as JSON (sorted keys), atomically; a NaN is refused, naming its key."""
    data = fusion_dict(choice)
    check_finite_json(data, str(path))
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _numbers(value: object, n: int, where: str) -> list[float]:
    if not isinstance(value, list) or len(value) != n:
        raise ModelFormatError(f"{where}: expected a list of {n} number(s), got {value!r}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ModelFormatError(f"{where}: {v!r} is not a finite number")
        out.append(float(v))
    return out


def _candidate(raw: object, n: int, prior: float, prefix: str) -> LinearFusion:
    """The candidate of ``n`` weights in ``raw`` (keys ``weights``, ``offset``); messages
    name ``<prefix>weights``."""
    if not isinstance(raw, dict):
        raise ModelFormatError(f"{prefix.rstrip('.')}: expected an object with weights and offset")
    fit = LinearFusion(prior)
    fit.weights_ = np.array(_numbers(raw.get("weights"), n, f"{prefix}weights"))
    (fit.offset_,) = _numbers([raw.get("offset")], 1, f"{prefix}offset")
    return fit


def load_fusion(path: str | os.PathLike[str]) -> FusionChoice:
    """Read a fusion written by :func:`save_fusion` (or a fusion experiment).

    Raises
    ------
    ModelFormatError
        Not a fusion file, or one whose systems, candidates, weights or inputs are missing,
        inconsistent or not finite, naming the file and the key.
    """
    p = Path(path)
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelFormatError(f"{p}: not a gmmspeech fusion JSON file ({exc})") from None
    if not isinstance(d, dict) or d.get("format") != FUSION_FORMAT:
        raise ModelFormatError(f"{p}: not a gmmspeech fusion JSON file (format {FUSION_FORMAT})")
    names = d.get("systems")
    if (
        not isinstance(names, list)
        or not names
        or not all(isinstance(x, str) for x in names)
        or len(set(names)) != len(names)
    ):
        raise ModelFormatError(f"{p}: systems: expected a list of distinct names, got {names!r}")
    (prior,) = _numbers([d.get("prior")], 1, f"{p}: prior")
    if not 0.0 < prior < 1.0:
        raise ModelFormatError(f"{p}: prior: must be strictly between 0 and 1, got {prior}")
    label = "+".join(names)
    raw = d.get("candidates")
    if not isinstance(raw, dict) or set(raw) != {*names, label}:
        raise ModelFormatError(
            f"{p}: candidates: expected one per system and {label!r}, got "
            f"{sorted(raw) if isinstance(raw, dict) else raw!r}"
        )
    candidates = {
        k: _candidate(raw[k], len(names) if k == label else 1, prior, f"{p}: candidates.{k}.")
        for k in raw
    }
    chosen = d.get("chosen")
    if chosen not in candidates:
        raise ModelFormatError(f"{p}: chosen: {chosen!r} is not one of the candidates")
    cols = tuple(range(len(names))) if chosen == label else (names.index(chosen),)
    kept = candidates[chosen]
    top = _candidate(d, len(cols), prior, f"{p}: ")
    if top.weights_.tolist() != kept.weights_.tolist() or top.offset_ != kept.offset_:
        raise ModelFormatError(
            f"{p}: weights and offset differ from those of candidates.{chosen}, the kept "
            f"candidate; fit the fusion again"
        )
    inputs = d.get("inputs", [])
    if not isinstance(inputs, list) or (inputs and len(inputs) != len(names)):
        raise ModelFormatError(f"{p}: inputs: expected one object per system, got {inputs!r}")
    if not all(isinstance(r, dict) for r in inputs):
        raise ModelFormatError(f"{p}: inputs: expected one object per system, got {inputs!r}")
    choice = FusionChoice(tuple(names), cols, kept, candidates, None, prior)
    choice.inputs = [{str(k): str(v) for k, v in r.items()} for r in inputs]
    return choice


__all__ = [
    "FUSION_FORMAT",
    "fused_header",
    "fusion_dict",
    "input_record",
    "load_fusion",
    "match_inputs",
    "save_fusion",
]
