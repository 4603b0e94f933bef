"""Exception and warning types raised by gmmspeech.

Every error is a :class:`GmmSpeechError`, itself a :class:`ValueError`, so callers that
already catch ``ValueError`` keep working. Messages say what is wrong, where (file, line,
utterance id or parameter), what was expected, what was got and how to fix it.
"""

from __future__ import annotations


class GmmSpeechError(ValueError):
    """Base class of all gmmspeech errors."""


class ConfigError(GmmSpeechError):
    """A configuration value, key or file is invalid."""


class DataError(GmmSpeechError):
    """Input data (frames, data directories, trial lists) is invalid.

    Examples
    --------
    Every gmmspeech error is a ``ValueError``, so code written for scikit-learn catches it:

    >>> from gmmspeech import DataError, DiagGMM
    >>> try:
    ...     DiagGMM([0.5, 0.6], [0.0, 1.0], [1.0, 1.0])
    ... except ValueError as exc:
    ...     print(type(exc).__name__, "-", str(exc).split(";")[0])
    DataError - weights: must sum to 1 (within 1e-5), got 1.1
    """


class AudioError(DataError):
    """An audio file cannot be read or holds no usable samples."""


class ModelFormatError(GmmSpeechError):
    """A model file is truncated, foreign or of an unsupported format version."""


class ModelMismatchError(GmmSpeechError):
    """A model does not fit the data or the other model it is used with."""


class ConvergenceWarning(UserWarning):
    """Training did not converge, or had to repair degenerate components.

    Examples
    --------
    A warning, not an error: training goes on and returns its model. Silence it, or make it
    an error, with the standard ``warnings`` filters:

    >>> import warnings
    >>> from gmmspeech import ConvergenceWarning
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warnings.warn("stopped at max_iter", ConvergenceWarning)
    >>> [w.category.__name__ for w in caught]
    ['ConvergenceWarning']
    """


#: Longest ``repr`` of a value quoted in an error message.
MAX_REPR = 80


class _Full(Exception):
    """Raised inside :func:`short_repr` once the text is long enough."""


def short_repr(value: object, limit: int = MAX_REPR) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages.

    Containers are written item by item and the walk stops as soon as the text is long
    enough, so a huge or deeply shared value (e.g. from a hostile YAML file) costs no more
    than its first characters.
    """
    parts: list[str] = []
    size = 0

    def put(text: str) -> None:
        nonlocal size
        parts.append(text)
        size += len(text)
        if size > limit:
            raise _Full

    def walk(v: object) -> None:
        if isinstance(v, dict):
            put("{")
            for i, (k, x) in enumerate(v.items()):
                put(", " if i else "")
                walk(k)
                put(": ")
                walk(x)
            put("}")
        elif isinstance(v, (list, tuple)):
            put("[" if isinstance(v, list) else "(")
            for i, x in enumerate(v):
                put(", " if i else "")
                walk(x)
            put("]" if isinstance(v, list) else ",)" if len(v) == 1 else ")")
        else:
            put(repr(v[: limit + 1] if isinstance(v, str) else v))

    try:
        walk(value)
    except _Full:
        return "".join(parts)[: limit - 3] + "..."
    return "".join(parts)


__all__ = [
    "AudioError",
    "ConfigError",
    "ConvergenceWarning",
    "DataError",
    "GmmSpeechError",
    "ModelFormatError",
    "ModelMismatchError",
    "short_repr",
]
