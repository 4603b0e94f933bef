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
    """Input data (frames, data directories, trial lists) is invalid."""


class AudioError(DataError):
    """An audio file cannot be read or holds no usable samples."""


class ModelFormatError(GmmSpeechError):
    """A model file is truncated, foreign or of an unsupported format version."""


class ModelMismatchError(GmmSpeechError):
    """A model does not fit the data or the other model it is used with."""


class ConvergenceWarning(UserWarning):
    """Training did not converge, or had to repair degenerate components."""


__all__ = [
    "AudioError",
    "ConfigError",
    "ConvergenceWarning",
    "DataError",
    "GmmSpeechError",
    "ModelFormatError",
    "ModelMismatchError",
]
