"""Fingerprints of the files a stage reads from outside the experiment folder.

A stage's hash misses audio added to the corpus, a replaced file or an edited trial list;
``prepare``, ``extract`` and ``gather`` also record the size and mtime of what they read
(one ``stat`` per file, as ``make`` trusts) and are redone when one differs.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from ..config.data import SetConfig
from ..corpus.datadir import DataDir
from ..storage.provenance import file_fingerprint
from .artefacts import DATA_DIR
from .fusion_stages import gather_inputs
from .workspace import Workspace


def _digest(lines: Iterable[str]) -> str:
    h = hashlib.sha256()
    n = 0
    for line in lines:
        h.update(line.encode("utf-8", "surrogateescape") + b"\n")
        n += 1
    return f"{n} files, sha256 {h.hexdigest()[:16]}"


def _walk(folder: Path, skip: Path) -> Iterable[str]:
    """``relpath size:mtime_ns`` of every file under ``folder`` (not under ``skip``, the
    experiment folder, whose files change on every run), in sorted order."""
    skip = skip.resolve()
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(n for n in dirnames if (Path(dirpath) / n).resolve() != skip)
        for name in sorted(filenames):
            p = Path(dirpath) / name
            yield f"{p.relative_to(folder)} {file_fingerprint(p)}"


def _under(root: Path, value: str) -> Path:
    p = Path(value)
    return p if p.is_absolute() else root / p


def _set_inputs(key: str, s: SetConfig, root: Path, skip: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    if s.kaldi_dir is not None:
        folder = _under(root, s.kaldi_dir)
        files = sorted(p for p in folder.glob("*") if p.is_file()) if folder.is_dir() else []
        out[f"data.{key}.kaldi_dir"] = _digest(f"{p.name} {file_fingerprint(p)}" for p in files)
    else:
        folder = _under(root, s.path)
        out[f"data.{key} audio"] = _digest(_walk(folder, skip)) if folder.is_dir() else "missing"
    for i, lst in enumerate(s.include):
        out[f"data.{key}.include[{i}]"] = file_fingerprint(_under(root, lst))
    return out


def prepare_inputs(ws: Workspace) -> dict[str, str]:
    """Fingerprints of what the prepare stage reads (see the module docstring)."""
    d = ws.cfg.data
    root = Path(d.root)
    out: dict[str, str] = {}
    for key in ("background", "targets", "dataset"):
        s = getattr(d, key)
        if s is not None:
            out.update(_set_inputs(key, s, root, ws.out))
    for key in ("trials", "enroll_list"):
        value = getattr(d, key)
        if value is not None:
            out[f"data.{key}"] = file_fingerprint(value)
    return out


def extract_inputs(ws: Workspace) -> dict[str, str]:
    """Fingerprints of the audio of the prepared data dirs, one entry per data dir."""
    out: dict[str, str] = {}
    for scp in sorted(ws.out.glob(f"{DATA_DIR.rel(set='*')}/wav.scp")):
        dd = DataDir.read(scp.parent, check_audio=False)
        out[f"{DATA_DIR.rel(set=scp.parent.name)} audio"] = _digest(
            f"{p} {file_fingerprint(p)}" for p in (str(dd.audio_path(u)) for u in dd.utt_ids)
        )
    return out


#: Stage name -> the function fingerprinting its inputs from outside the experiment.
INPUTS: dict[str, Callable[[Workspace], dict[str, str]]] = {
    "prepare": prepare_inputs,
    "extract": extract_inputs,
    "gather": gather_inputs,
}


def changes(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    """What differs between two fingerprint dicts, one phrase per input."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if a is None:
            out.append(f"{key} is new")
        elif b is None:
            out.append(f"{key} is no longer used")
        else:
            out.append(f"{key} changed ({a} -> {b})")
    return out


__all__ = ["INPUTS", "changes", "extract_inputs", "prepare_inputs"]
