"""An experiment folder's ownership: its manifest, and the user's files it must leave alone.

A folder becomes an experiment when its manifest ``.gmmspeech/manifest.json`` is written;
the files found in it then are listed there as the user's, never replaced nor deleted.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..storage.atomic import OutputRefusedError
from .artefacts import RECORDS
from .report import write_json
from .workspace import MANIFEST, STATE_DIR

MANIFEST_FORMAT = "gmmspeech.Experiment"


def _same(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False


def remove_if_unused(out: Path) -> None:
    """Remove the folder ``out`` (which a run created) when it holds nothing but the
    manifest."""
    files = [p for p in out.rglob("*") if not p.is_dir()]
    if files != [out / MANIFEST]:
        return
    (out / MANIFEST).unlink()
    for d in sorted((p for p in out.rglob("*") if p.is_dir()), reverse=True):
        d.rmdir()
    out.rmdir()


def open_folder(out: Path, where: str, force: bool = False) -> list[str]:
    """Make sure the folder is a gmmspeech experiment; return the files it must not touch.

    A missing or empty folder, or one with stage records, or one holding only the
    experiment's config, becomes an experiment (its manifest is written). A folder
    holding anything else is refused unless ``force``. The files found are listed in the
    manifest as the user's.

    Returns
    -------
    list of str
        The user's files, relative to the folder.

    Raises
    ------
    OutputRefusedError
        The folder is not an experiment and ``force`` is false, or its manifest is not one.
    """
    manifest = out / MANIFEST
    if manifest.is_file():
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None
        if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
            raise OutputRefusedError(
                f"{manifest}: not a gmmspeech experiment manifest; choose another --out"
            )
        return [str(x) for x in data.get("user_files", [])]
    if out.exists() and not out.is_dir():
        raise OutputRefusedError(f"{out}: is a file; --out needs a folder")
    present: list[str] = []
    if out.is_dir() and not (out / RECORDS.template).is_dir():
        # a folder with stage records is an experiment written before manifests
        present = sorted(str(p.relative_to(out)) for p in out.rglob("*") if not p.is_dir())
    config = Path(where)
    others = [rel for rel in present if not _same(out / rel, config)]
    if others and not force:  # the experiment's own config may sit in its folder
        raise OutputRefusedError(
            f"{out}: exists and is not a gmmspeech experiment (no {MANIFEST}); "
            f"choose another --out, or pass --force to use it (its {len(others)} "
            f"file(s) are left alone)"
        )
    (out / STATE_DIR).mkdir(parents=True, exist_ok=True)
    write_json(manifest, {"format": MANIFEST_FORMAT, "version": 1, "user_files": present})
    return present


__all__ = ["MANIFEST_FORMAT", "open_folder", "remove_if_unused"]
