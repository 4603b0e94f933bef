"""The on-disk format of a feature store: attributes, datasets, index table.

Layout of a store ``OUT.h5`` (``format_version`` 4):

* root attributes: the standard ones (``format = "gmmspeech.FeatureStore"``,
  ``format_version``, ``gmmspeech_version``, ``config`` = the :class:`FeatureConfig` as
  JSON), plus ``config_hash`` and ``n_features``;
* group ``utts``: one dataset ``(n_frames, n_features)`` float32 per utterance, named by its
  id (percent-encoded where it holds ``%``, ``/`` or a leading ``.``), with no attributes;
* group ``index``: 1-D datasets of one row per utterance, in sorted id order: ``utt_id``
  (UTF-8 strings), ``n_frames`` (int64, after the VAD), ``n_frames_total`` (int64, before
  the VAD), ``duration`` (float64, seconds of audio), ``source`` (the audio path) and
  ``source_fp`` (``"SIZE:MTIME_NS"`` of the audio when it was extracted, see
  :func:`gmmspeech.storage.provenance.file_fingerprint`; a resumed extraction redoes an utterance
  whose audio has changed since).

Per-utterance facts live in the index rather than in attributes of each dataset because an
HDF5 attribute costs as much to write and read as a small dataset: opening a store of 5000
utterances reads 5 datasets instead of 20000 objects.

Version 3 marks the librosa front end (centred STFT frames, librosa's deltas); version 4
adds ``source_fp``. Version 3 stores are read (their fingerprints are unknown: ``""``, and
such utterances are never re-extracted). Stores of versions 1 and 2 hold features of the
earlier front end, which no current config can reproduce; they are refused with a message
saying to re-extract.

Datasets are written and read through h5py's low-level API (``h5d``), which is about twice
as fast per utterance as ``group[name]``; it matters for stores of many short clips.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import h5py
import numpy as np

from ...config.sections import config_hash
from ...errors import ConfigError, DataError, GmmSpeechError
from ...storage.h5io import from_json, open_checked, write_header
from ...storage.provenance import config_differences
from ..spill import SpilledFrames

FORMAT = "gmmspeech.FeatureStore"
FORMAT_VERSION = 4
#: The oldest format version read (the first of the librosa front end).
MIN_FORMAT_VERSION = 3
GROUP = "utts"
INDEX = "index"


class UttInfo(NamedTuple):
    """One row of a store's index."""

    name: str  #: dataset name in the ``utts`` group (the encoded id)
    n_frames: int
    n_frames_total: int
    duration: float
    source: str
    source_fp: str = ""  #: ``"SIZE:MTIME_NS"`` of the audio when extracted; "" if unknown


def encode_id(utt_id: str) -> str:
    """Dataset name of an utterance id (``%``, ``/`` and a leading ``.`` percent-encoded)."""
    name = utt_id.replace("%", "%25").replace("/", "%2F")
    if name.startswith("."):
        name = "%2E" + name[1:]
    return name


def decode_id(name: str) -> str:
    """Inverse of :func:`encode_id`."""
    return urllib.parse.unquote(name)


def small_metadata_cache(f: h5py.File, size: int = 1 << 20) -> h5py.File:
    """Cap HDF5's adaptive metadata cache of ``f`` (default up to 32 MiB per open file).

    Extraction, merging and training touch every utterance's object header once; with the
    default cache the memory of a pass would grow with the number of utterances.
    """
    config = f.id.get_mdc_config()
    config.set_initial_size = True
    config.initial_size = size
    config.min_size = size // 2
    config.max_size = size
    f.id.set_mdc_config(config)
    return f


def open_store_file(
    path: str | os.PathLike[str], error: type[GmmSpeechError] = DataError
) -> h5py.File:
    """Open a store (or part file) for reading: format checked, metadata cache capped.

    Raises ``error`` for a missing, foreign or too new file, and for a store of the earlier
    front end (``format_version`` < 3), naming the fix (re-extract).
    """
    f = open_checked(path, FORMAT, FORMAT_VERSION, error)
    version = int(f.attrs["format_version"])
    if version < MIN_FORMAT_VERSION:
        f.close()
        raise error(
            f"{path}: a feature store of format_version {version}, extracted by the numpy "
            f"front end of gmmspeech < 0.2 (snip-edges frames, regression deltas); this "
            f"gmmspeech computes MFCCs with librosa (format_version {MIN_FORMAT_VERSION}+): "
            f"re-extract it with `gmmspeech extract` into a new file"
        )
    return small_metadata_cache(f)


def check_store_config(path: Path, f: h5py.File, cfg: Mapping[str, Any], what: str) -> None:
    """Fail with a :class:`ConfigError` listing the differences if ``f`` used another config."""
    stored = from_json(f.attrs.get("config"), {})
    if config_hash(stored) != config_hash(dict(cfg)):
        diff = config_differences(stored, cfg)
        raise ConfigError(
            f"{path}: {what} was extracted with a different feature config ("
            + "; ".join(diff)
            + "); write to another output file, or delete it to re-extract everything"
        )


_DCPL: Any = None


def _dataset_create_plist() -> Any:
    """Contiguous layout, no timestamps: the bytes of a store depend on its content only."""
    global _DCPL
    if _DCPL is None:
        plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        plist.set_obj_track_times(False)
        _DCPL = plist
    return _DCPL


def write_frames(group: h5py.Group, name: str, frames: np.ndarray | SpilledFrames) -> None:
    """Create dataset ``name`` in ``group`` holding ``frames`` as float32.

    Spilled frames are copied block by block into the (contiguous) dataset, so they are
    never all in memory; the file's bytes are those of writing the same array at once.
    """
    x = frames if isinstance(frames, SpilledFrames) else np.ascontiguousarray(frames, np.float32)
    space = h5py.h5s.create_simple(x.shape)
    dset = h5py.h5d.create(
        group.id, name.encode(), h5py.h5t.IEEE_F32LE, space, dcpl=_dataset_create_plist()
    )
    try:
        if isinstance(x, SpilledFrames):
            for at, block in x.blocks():
                space.select_hyperslab((at, 0), block.shape)
                dset.write(h5py.h5s.create_simple(block.shape), space, block)
        elif x.size:
            dset.write(h5py.h5s.ALL, h5py.h5s.ALL, x)
    finally:
        dset.close()


def read_frames(group: h5py.Group, name: str, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Dataset ``name`` of ``group`` as a new float32 array.

    ``shape`` (the index's ``n_frames`` and the store's ``n_features``) is compared with the
    dataset's before anything is allocated: a damaged or hand-edited index is refused, not
    read as something else, and a dataset declaring a huge size cannot allocate it.
    """
    dset = h5py.h5d.open(group.id, name.encode())
    try:
        got = tuple(dset.shape)
        if shape is not None and got != tuple(shape):
            raise DataError(
                f"{group.file.filename}: utterance {decode_id(name)!r} holds frames of shape "
                f"{got} but the store's index says {tuple(shape)}; the store is damaged: "
                f"re-extract it"
            )
        if len(got) != 2 or dset.get_type().get_class() != h5py.h5t.FLOAT:
            raise DataError(
                f"{group.file.filename}: utterance {decode_id(name)!r} is not a 2-D float "
                f"dataset (shape {got}); the store is damaged: re-extract it"
            )
        out = np.empty(got, dtype=np.float32)
        if out.size:
            dset.read(h5py.h5s.ALL, h5py.h5s.ALL, out)
    finally:
        dset.close()
    return out


def write_store_header(f: h5py.File, cfg: Mapping[str, Any], n_features: int) -> h5py.Group:
    """The root attributes of a store; returns its new, empty ``utts`` group."""
    write_header(f, FORMAT, FORMAT_VERSION, dict(cfg))
    f.attrs["config_hash"] = config_hash(dict(cfg))
    f.attrs["n_features"] = int(n_features)
    return f.create_group(GROUP, track_order=False)


def write_index(f: h5py.File, rows: Mapping[str, UttInfo]) -> None:
    """Write the ``index`` group of a store from ``utt_id -> UttInfo`` (sorted by id here)."""
    ids = sorted(rows)
    text = h5py.string_dtype("utf-8")
    g = f.create_group(INDEX, track_order=False)
    columns: dict[str, tuple[Any, Any]] = {
        "utt_id": (np.array(ids, dtype=object), text),
        "n_frames": (np.array([rows[u].n_frames for u in ids], dtype=np.int64), np.int64),
        "n_frames_total": (
            np.array([rows[u].n_frames_total for u in ids], dtype=np.int64),
            np.int64,
        ),
        "duration": (np.array([rows[u].duration for u in ids], dtype=np.float64), np.float64),
        "source": (np.array([rows[u].source for u in ids], dtype=object), text),
        "source_fp": (np.array([rows[u].source_fp for u in ids], dtype=object), text),
    }
    for key, (values, dtype) in columns.items():
        g.create_dataset(key, data=values, dtype=dtype, track_times=False)


def read_index(f: h5py.File, where: str | os.PathLike[str]) -> dict[str, UttInfo]:
    """``utt_id -> UttInfo`` of an open store (or part file)."""
    group = f.get(GROUP)
    index = f.get(INDEX)
    if not isinstance(group, h5py.Group) or not isinstance(index, h5py.Group):
        raise DataError(f"{where}: no {GROUP!r} or {INDEX!r} group; not a complete feature store")
    try:
        ids = [str(u) for u in index["utt_id"].asstr()[()]]
        n_frames = index["n_frames"][()]
        n_total = index["n_frames_total"][()]
        duration = index["duration"][()]
        source = index["source"].asstr()[()]
        fps = index["source_fp"].asstr()[()] if "source_fp" in index else [""] * len(ids)
    except (KeyError, OSError, ValueError, TypeError) as exc:
        raise DataError(f"{where}: unreadable {INDEX!r} table ({exc}); re-extract it") from None
    if not len(ids) == len(n_frames) == len(n_total) == len(duration) == len(source) == len(fps):
        raise DataError(f"{where}: the columns of the {INDEX!r} table differ in length")
    if len(ids) != len(group):
        raise DataError(
            f"{where}: the index lists {len(ids)} utterances but {GROUP!r} holds {len(group)}"
        )
    return {
        u: UttInfo(encode_id(u), int(n), int(t), float(d), str(s), str(fp))
        for u, n, t, d, s, fp in zip(ids, n_frames, n_total, duration, source, fps, strict=True)
    }
