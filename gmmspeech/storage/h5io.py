"""HDF5 conventions shared by every gmmspeech file type.

Every file carries the attributes ``format`` (e.g. ``"gmmspeech.DiagGMM"``),
``format_version`` (an integer), ``gmmspeech_version`` and, where it applies, the JSON of the
configuration that produced it. Files are written through :mod:`gmmspeech.storage.atomic`.
No pickle is used anywhere: structured values are stored as JSON strings.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .._version import __version__
from ..errors import GmmSpeechError, ModelFormatError


def write_header(
    f: h5py.File | h5py.Group, fmt: str, version: int, config: dict[str, Any] | None = None
) -> None:
    """Write the standard attributes on an open file or group."""
    f.attrs["format"] = fmt
    f.attrs["format_version"] = int(version)
    f.attrs["gmmspeech_version"] = __version__
    if config is not None:
        f.attrs["config"] = to_json(config)


def to_json(value: Any) -> str:
    """Serialise a JSON-compatible value deterministically (sorted keys)."""
    return json.dumps(value, sort_keys=True)


def from_json(text: Any, default: Any = None) -> Any:
    """Parse a JSON attribute written by :func:`to_json` (``None`` or missing -> default)."""
    if text is None:
        return default
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return json.loads(str(text))


def open_checked(
    path: str | os.PathLike[str],
    fmt: str,
    max_version: int,
    error: type[GmmSpeechError] = ModelFormatError,
) -> h5py.File:
    """Open a gmmspeech HDF5 file for reading and check its format attributes.

    Parameters
    ----------
    path : path-like
        The file to open.
    fmt : str
        The expected ``format`` attribute.
    max_version : int
        The newest ``format_version`` this code can read.
    error : exception class
        What to raise when the file is missing, not HDF5, truncated, foreign or too new.

    Returns
    -------
    h5py.File
        The open file (read-only); the caller closes it.
    """
    p = Path(path)
    if not p.exists():
        raise error(f"{p}: no such file")
    if p.is_dir():
        raise error(f"{p}: is a folder, expected a {fmt} HDF5 file")
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        size = p.stat().st_size
        raise error(
            f"{p}: not a readable HDF5 file ({size} bytes; truncated or not HDF5: {exc}); "
            f"expected a {fmt} file written by gmmspeech"
        ) from None
    got = f.attrs.get("format")
    if isinstance(got, bytes):
        got = got.decode()
    if got != fmt:
        f.close()
        what = "no 'format' attribute" if got is None else f"format {got!r}"
        raise error(f"{p}: {what}, expected format {fmt!r}; is this a gmmspeech {fmt} file?")
    version = f.attrs.get("format_version")
    try:
        version_int = int(version)
    except (TypeError, ValueError):
        f.close()
        raise error(f"{p}: missing or invalid 'format_version' attribute ({version!r})") from None
    if version_int < 1 or version_int > max_version:
        f.close()
        raise error(
            f"{p}: format_version {version_int} is not supported by this gmmspeech "
            f"({__version__}, reads versions 1..{max_version}); upgrade gmmspeech"
        )
    return f


#: Most elements one dataset of a model or statistics file may declare (8 GiB of float64).
MAX_ELEMENTS = 1 << 30
#: Deflate cannot compress better than about 1032:1; a larger ratio is a forged header.
_MAX_COMPRESSION = 1100


def read_array(
    f: h5py.File | h5py.Group,
    name: str,
    shape: tuple[int | None, ...],
    *,
    where: str | os.PathLike[str],
    kinds: str = "fiu",
    max_elements: int = MAX_ELEMENTS,
    error: type[GmmSpeechError] = ModelFormatError,
    finite: bool = False,
    row_names: Sequence[str] | None = None,
) -> Any:
    """Read dataset ``name`` after checking its shape, dtype and size against the header.

    Everything is checked from the dataset's metadata before any data is read, so a small
    file declaring a huge dataset fails at once instead of allocating what it declares.

    Parameters
    ----------
    f : h5py.File or h5py.Group
    name : str
        The dataset.
    shape : tuple of int or None
        The expected shape; ``None`` entries accept any length (they are still bounded).
    where : path-like
        The file, for messages.
    kinds : str
        Accepted numpy dtype kinds (``"f"`` float, ``"iu"`` integers, ``"O"`` strings).
    max_elements : int
        The largest number of elements accepted.
    error : exception class
    finite : bool
        Refuse NaN or infinite values, naming the first one's row (``row_names[row]``, e.g.
        an utterance id, when given).
    row_names : sequence of str, optional

    Returns
    -------
    ndarray
        The dataset's values (strings as ``bytes`` or ``str`` objects).
    """
    dset = f.get(name)
    if not isinstance(dset, h5py.Dataset):
        raise error(f"{where}: missing dataset {name!r}")
    got = tuple(int(n) for n in dset.shape or ())
    if len(got) != len(shape) or any(
        w is not None and g != w for g, w in zip(got, shape, strict=True)
    ):
        want = "(" + ", ".join("*" if w is None else str(w) for w in shape) + ")"
        raise error(f"{where}: dataset {name!r} has shape {got}, expected {want}")
    kind = h5py.check_string_dtype(dset.dtype) and "O" or dset.dtype.kind
    if kind not in kinds:
        raise error(f"{where}: dataset {name!r} has dtype {dset.dtype}, expected kind {kinds!r}")
    n = 1
    for g in got:
        n *= g
    if n > max_elements:
        raise error(
            f"{where}: dataset {name!r} declares {n} elements (shape {got}), more than the "
            f"{max_elements} accepted; the file is damaged or not a gmmspeech file"
        )
    if n:
        declared = n * dset.dtype.itemsize
        stored = dset.id.get_storage_size()
        compressed = dset.compression is not None or bool(dset._filters)
        limit = stored * _MAX_COMPRESSION if compressed else stored
        if declared > limit:
            raise error(
                f"{where}: dataset {name!r} declares {declared} bytes (shape {got}) but the "
                f"file stores {stored}; the file is truncated, damaged or forged"
            )
    try:
        data = dset[()]
    except (OSError, ValueError) as exc:
        raise error(f"{where}: cannot read dataset {name!r} ({exc})") from None
    if finite and kind == "f":
        bad = ~np.isfinite(data)
        if bad.any():
            row = int(np.argwhere(bad)[0][0]) if data.ndim else 0
            at = f"row {row}" if row_names is None else f"utterance {row_names[row]!r}"
            raise error(
                f"{where}: dataset {name!r}: {int(bad.sum())} value(s) are NaN or infinite "
                f"(the first in {at}); the file is damaged: write it again"
            )
    return data
