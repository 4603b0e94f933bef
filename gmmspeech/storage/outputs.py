"""Which existing files a command may replace, and recognising gmmspeech's own outputs.

* a command never writes over one of its own inputs (same file, through a symlink or a
  hard link included);
* an existing file is replaced only when it is recognisably an earlier output of the same
  kind (an :class:`OutputKind`: the HDF5 ``format`` attribute, the shape of a scores
  file, a JSON key, ...), and only when the user passed ``--overwrite``;
* :func:`remove_outputs` deletes only files of a given kind, never a whole folder.

:func:`check_output` also declares the output to the command's gate
(:mod:`gmmspeech.storage.gate`), which checks every write again when it happens; files are
written through :mod:`gmmspeech.storage.atomic`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import h5py

from .atomic import OVERWRITE_FLAG, OutputRefusedError, remove_file
from .gate import current_gate

log = logging.getLogger(__name__)

#: At most this much of an existing file is read to recognise its kind.
_SNIFF_BYTES = 1 << 16
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------- output kinds
@dataclasses.dataclass(frozen=True)
class OutputKind:
    """A kind of output file and how to recognise an existing one.

    Attributes
    ----------
    name : str
        What the file is, for messages (e.g. ``"scores file"``).
    matches : callable
        ``matches(path) -> bool``: whether the existing ``path`` is a file of this kind.
        Reads a bounded prefix only.
    """

    name: str
    matches: Callable[[Path], bool]


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(_SNIFF_BYTES)
    except OSError:
        return b""


def _hdf5_attrs_match(path: Path, fmt: str, need: str | None = None) -> bool:
    if not path.is_file() or not _head(path).startswith(_HDF5_MAGIC):
        return False
    try:
        with h5py.File(path, "r") as f:
            return f.attrs.get("format") == fmt and (need is None or need in f.attrs)
    except (OSError, ValueError):
        return False


def hdf5_kind(name: str, fmt: str, need_attr: str | None = None) -> OutputKind:
    """Files whose HDF5 ``format`` attribute is ``fmt`` (and that carry ``need_attr``)."""
    return OutputKind(name, lambda p: _hdf5_attrs_match(p, fmt, need_attr))


def _text_lines(path: Path) -> list[str] | None:
    """The complete lines of the file's first bytes, or None when not UTF-8 text."""
    if not path.is_file():
        return None
    head = _head(path)
    if not head or b"\0" in head:
        return None
    if len(head) == _SNIFF_BYTES:
        head = head[: head.rfind(b"\n") + 1]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return [line for line in text.splitlines() if line.strip()]


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _scores_lines(path: Path) -> bool:
    # '#' lines are comments in the scores grammar (gmmspeech.corpus.trials), e.g. the provenance
    # header that `score` writes first
    lines = [line for line in _text_lines(path) or [] if not line.lstrip().startswith("#")]
    return bool(lines) and all(len(f := line.split()) == 3 and _is_float(f[2]) for line in lines)


def _table_lines(path: Path, n_fields: int) -> bool:
    lines = _text_lines(path)
    return bool(lines) and all(len(line.split()) == n_fields for line in lines or [])


def json_kind(name: str, *keys: str) -> OutputKind:
    """JSON objects that hold every key of ``keys``."""

    def matches(path: Path) -> bool:
        if not path.is_file() or path.stat().st_size > 64 * _SNIFF_BYTES:
            return False
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(data, dict) and all(k in data for k in keys)

    return OutputKind(name, matches)


def _is_datadir(path: Path) -> bool:
    sets = ("background", "enroll", "test")
    return path.is_dir() and (
        (path / "wav.scp").is_file() or all((path / s / "wav.scp").is_file() for s in sets)
    )


UBM = hdf5_kind("GMM model (UBM)", "gmmspeech.DiagGMM")
SPEAKER_MODELS = hdf5_kind("speaker models file", "gmmspeech.SpeakerModels")
UBM_CHECKPOINT = hdf5_kind("UBM checkpoint", "gmmspeech.DiagGMM", "checkpoint_key")
SCORES = OutputKind("scores file ('<model> <test> <score>' lines)", _scores_lines)
PREDICTIONS = OutputKind("predictions file ('<utt> <label>' lines)", lambda p: _table_lines(p, 2))
METRICS_JSON = json_kind("evaluate metrics JSON", "raw", "eer_method")
CLASSIFY_JSON = json_kind("classify results JSON", "accuracy", "confusion_matrix")
BENCH_JSON = json_kind("benchmark JSON", "benchmark")
CALIBRATION_JSON = json_kind("calibration JSON", "format", "slope", "offset")
FUSION_JSON = json_kind("fusion JSON", "format", "candidates", "chosen")
PNG = OutputKind("PNG image", lambda p: p.is_file() and _head(p).startswith(_PNG_MAGIC))
FEATURE_STORE = hdf5_kind("feature store", "gmmspeech.FeatureStore")
TV_MODEL = hdf5_kind("total-variability model", "gmmspeech.TotalVariability")
IVECTORS = hdf5_kind("i-vectors file", "gmmspeech.IVectors")
BACKEND = hdf5_kind("i-vector back end", "gmmspeech.Backend")
STAGE_MARKER = json_kind("stage marker", "hash")
TEXT_LOG = OutputKind("log", lambda p: _text_lines(p) is not None)
DATADIR = OutputKind("data dir (wav.scp, utt2spk, ...)", _is_datadir)


# ------------------------------------------------------------------------ the policy
def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_output(
    path: str | os.PathLike[str] | None,
    kind: OutputKind,
    *,
    inputs: Iterable[str | os.PathLike[str] | None] = (),
    overwrite: bool = False,
) -> None:
    """Refuse to write ``path`` when that would destroy something.

    Call it before the work starts, so that a refusal costs nothing. Within a command's
    gate it also declares ``path`` (and ``inputs``): the gate then lets the command write
    there, and refuses it again if ``path`` turns out to be an input.

    Parameters
    ----------
    path : path-like or None
        The output (None: nothing to check). A folder output (``DATADIR``) may exist empty.
    kind : OutputKind
        What the command writes there.
    inputs : iterable of path-like
        The command's input files and folders (None entries are skipped); ``path`` must be
        none of them, compared as files (symlinks and hard links resolved).
    overwrite : bool
        The user passed ``--overwrite``: an earlier output of the same kind may be replaced.

    Raises
    ------
    OutputRefusedError
        One line naming the path, what it is, and what to do.
    """
    if path is None:
        return
    p = Path(path)
    inputs = list(inputs)
    gate = current_gate()
    if gate is not None:
        gate.add_inputs(inputs)
        gate.declare_output(p)
    if not os.path.lexists(p):
        return
    for inp in inputs:
        if inp is not None and _same_file(p, Path(inp)):
            raise OutputRefusedError(
                f"{p}: this output is also an input of the command ({inp}); write the output "
                f"to another path"
            )
    if p.is_dir() and kind is not DATADIR:
        raise OutputRefusedError(f"{p}: is a folder; give a file path for the {kind.name}")
    if p.is_dir() and not any(p.iterdir()):
        return
    if not kind.matches(p):
        raise OutputRefusedError(
            f"{p}: exists and is not a {kind.name} written by gmmspeech; it will not be "
            f"replaced: choose another output path, or move it away yourself"
        )
    if not overwrite:
        raise OutputRefusedError(
            f"{p}: exists (an earlier {kind.name}); pass {OVERWRITE_FLAG} to replace it"
        )


def declare_output(
    path: str | os.PathLike[str], *, inputs: Iterable[str | os.PathLike[str] | None] = ()
) -> None:
    """Declare ``path`` to the command's gate without judging an existing file: for an
    output that its writer checks itself (a feature store is completed, not replaced).

    Raises
    ------
    OutputRefusedError
        ``path`` is one of ``inputs`` or of the paths the command reads.
    """
    gate = current_gate()
    if gate is not None:
        gate.add_inputs(inputs)
        gate.declare_output(path)


def declare_folder(folder: str | os.PathLike[str]) -> None:
    """Declare ``folder`` to the command's gate: the command writes under it (an experiment
    folder, a checkpoint folder); see :meth:`gmmspeech.storage.gate.OutputGate.declare_folder`."""
    gate = current_gate()
    if gate is not None:
        gate.declare_folder(folder)


def remove_outputs(folder: str | os.PathLike[str], kind: OutputKind, pattern: str = "") -> int:
    """Delete the files of ``kind`` directly in ``folder`` (names matching ``pattern``),
    then the folder itself if that left it empty; anything else stays.

    Returns
    -------
    int
        The number of files removed.
    """
    d = Path(folder)
    if not d.is_dir():
        return 0
    rx = re.compile(pattern)
    removed = 0
    for p in sorted(d.iterdir()):
        if p.is_file() and not p.is_symlink() and rx.search(p.name) and kind.matches(p):
            remove_file(p)
            removed += 1
    left = sum(1 for _ in d.iterdir())
    if left == 0:
        d.rmdir()
    else:
        # other files of this run (a stage's own output beside its former files) or the
        # user's: either way not a matter for the log at INFO
        log.debug("%s: kept (%d other entries)", d, left)
    return removed


__all__ = [
    "BENCH_JSON",
    "CALIBRATION_JSON",
    "CLASSIFY_JSON",
    "DATADIR",
    "FEATURE_STORE",
    "FUSION_JSON",
    "METRICS_JSON",
    "PNG",
    "PREDICTIONS",
    "SCORES",
    "SPEAKER_MODELS",
    "STAGE_MARKER",
    "TEXT_LOG",
    "UBM",
    "UBM_CHECKPOINT",
    "OutputKind",
    "check_output",
    "declare_folder",
    "declare_output",
    "hdf5_kind",
    "json_kind",
    "remove_outputs",
]
