"""Where derived data came from, and the checks that refuse mixing data of different origins.

Every derived file records what produced it: a feature store its feature config, a UBM the
feature config of its training frames, speaker models and statistics the UBM's fingerprint
(:func:`gmmspeech.mixture.speakermodels.ubm_fingerprint`), a scores file both. A consumer compares
what it is given with what the model expects through :func:`check_feature_config` and
refuses a mismatch with a message listing what differs, so that features extracted with
``normalization: none`` are never silently scored against CMVN models.

Input files are fingerprinted by path, size and modification time (:func:`file_fingerprint`):
cheap enough to take for every audio file of a corpus on every run, and any rewrite of a
file changes its mtime.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from ..config.base import config_hash, to_dict
from ..config.sections import FeatureConfig
from ..errors import ConfigError, DataError, ModelMismatchError


def config_differences(
    stored: Mapping[str, Any],
    wanted: Mapping[str, Any],
    names: tuple[str, str] = ("in the store", "requested"),
) -> list[str]:
    """Human-readable differences between two config dicts (``key: a <names[0]> vs b ...``)."""
    out = []
    for key in sorted(set(stored) | set(wanted)):
        a, b = stored.get(key, "<absent>"), wanted.get(key, "<absent>")
        if a != b:
            out.append(f"{key}: {a!r} {names[0]} vs {b!r} {names[1]}")
    return out


def normalized_feature_config(
    cfg: Mapping[str, Any] | FeatureConfig | None,
) -> dict[str, Any] | None:
    """A feature config as a dict with every field (defaults filled in), or None if unknown.

    Filling the defaults makes a config written by an older gmmspeech, which lacks a field
    added since, compare equal to the same config written today.
    """
    if cfg is None:
        return None
    if isinstance(cfg, FeatureConfig):
        return to_dict(cfg)
    raw = dict(cfg)
    if not raw:
        return None
    try:
        return to_dict(FeatureConfig(**raw))
    except (TypeError, ConfigError):
        return raw


def feature_config_of(features: object) -> dict[str, Any] | None:
    """The feature config a collection of frames was extracted with, if it records one.

    A :class:`~gmmspeech.FeatureStore` (or anything with a ``config`` attribute holding a
    :class:`FeatureConfig`) records it; a dict of arrays or a Kaldi archive does not.
    """
    cfg = getattr(features, "config", None)
    if isinstance(cfg, (FeatureConfig, Mapping)):
        return normalized_feature_config(cfg)
    return None


def check_feature_config(
    have: Mapping[str, Any] | FeatureConfig | None,
    want: Mapping[str, Any] | FeatureConfig | None,
    *,
    what: str,
    expected_by: str,
) -> None:
    """Refuse frames extracted with another feature config than a model expects.

    Nothing is checked when either side does not record its config (arrays passed in
    memory, a model file of a foreign tool).

    Parameters
    ----------
    have : dict or FeatureConfig or None
        The config of the frames (or of the model consuming them, e.g. speaker models).
    want : dict or FeatureConfig or None
        The config the consumer expects (e.g. ``ubm.feature_config``).
    what : str
        Names ``have`` in the message, e.g. ``"feats.h5: the features"``.
    expected_by : str
        Names ``want``, e.g. ``"the UBM"``.

    Raises
    ------
    ModelMismatchError
        The configs differ; the message lists every differing key with both values.
    """
    a, b = normalized_feature_config(have), normalized_feature_config(want)
    if a is None or b is None or config_hash(a) == config_hash(b):
        return
    diff = config_differences(a, b, ("here", f"in {expected_by}"))
    raise ModelMismatchError(
        f"{what} were extracted with another feature config than {expected_by} expects ("
        + "; ".join(diff)
        + f"); extract them with {expected_by}'s feature config, or train a UBM on them"
    )


def check_features(features: object, want: Mapping[str, Any] | None, expected_by: str) -> None:
    """:func:`check_feature_config` for a feature collection (a store names its path)."""
    where = getattr(features, "path", None)
    what = f"{where}: the features" if where is not None else "the features"
    check_feature_config(feature_config_of(features), want, what=what, expected_by=expected_by)


#: How a field that one side does not record is shown in messages.
NOT_RECORDED = "<not recorded>"


def recorded_differences(
    stored: Mapping[str, object],
    given: Mapping[str, object],
    fields: Sequence[str],
    optional: Sequence[str] = (),
) -> list[tuple[str, str, str]]:
    """``(field, stored, given)`` for each of ``fields`` whose values differ.

    A field that only one side records differs from it (shown as :data:`NOT_RECORDED`):
    scores of a UBM are not those of a TV model. A field of ``optional`` is compared only
    when both sides record it (one added to the records later).
    """
    out = []
    for k in fields:
        if k not in stored and k not in given:
            continue
        if k in optional and (k not in stored or k not in given):
            continue
        a, b = str(stored.get(k, NOT_RECORDED)), str(given.get(k, NOT_RECORDED))
        if a != b:
            out.append((k, a, b))
    return out


def check_recorded(
    stored: Mapping[str, object],
    given: Mapping[str, object],
    fields: Sequence[str],
    *,
    given_in: str,
    stored_in: str,
    fix: str,
    optional: Sequence[str] = (),
) -> None:
    """Refuse an input whose recorded origin differs from what an artefact was made from.

    Parameters
    ----------
    stored : mapping
        What the artefact recorded of its parent (e.g. a calibration: the system of the
        scores it was fitted on).
    given : mapping
        The same fields as the input given now records them.
    fields : sequence of str
        The fields compared (:func:`recorded_differences`), in the order they are reported.
    given_in, stored_in : str
        Name the input (e.g. its path) and the artefact, in the message.
    fix : str
        What to do, the end of the message.
    optional : sequence of str
        Fields compared only when both sides record them.

    Raises
    ------
    ModelMismatchError
        One line, every differing field listed: ``"<given_in>: does not match what
        <stored_in> records (<field>: <given> here vs <stored> there; ...); <fix>"``.
    """
    diff = recorded_differences(stored, given, fields, optional)
    if diff:
        raise ModelMismatchError(
            f"{given_in}: does not match what {stored_in} records ("
            + "; ".join(f"{k}: {b} here vs {a} there" for k, a, b in diff)
            + f"); {fix}"
        )


def short_hash(fields: Mapping[str, object], keys: Sequence[str]) -> str | None:
    """16 hex digits of SHA-256 over ``key=value;`` of the ``keys`` that ``fields`` holds
    (None when it holds none of them): one short name for a set of recorded fields."""
    present = [k for k in keys if k in fields]
    if not present:
        return None
    text = "".join(f"{k}={fields[k]};" for k in present)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_fingerprint(path: str | os.PathLike[str]) -> str:
    """``"SIZE:MTIME_NS"`` of a file, or ``"missing"``; changes whenever the file is rewritten."""
    try:
        st = os.stat(path)
    except OSError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}"


def file_sha256(path: str | os.PathLike[str], block: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file's bytes, read a block at a time."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


def check_finite_json(data: object, where: str, key: str = "") -> None:
    """Refuse a NaN or infinite number anywhere in a JSON-bound value, naming its key path.

    ``json.dumps`` would write them as the non-JSON tokens ``NaN`` and ``Infinity``.
    """
    if isinstance(data, float) and not math.isfinite(data):
        raise DataError(f"{where}: {key or 'value'} is {data}; nothing written (a bug: report it)")
    if isinstance(data, Mapping):
        for k, v in data.items():
            check_finite_json(v, where, f"{key}.{k}" if key else str(k))
    elif isinstance(data, (list, tuple)):
        for i, v in enumerate(data):
            check_finite_json(v, where, f"{key}[{i}]")
