"""What every bench shares: the ``--seed`` / ``--json`` options and writing the figures."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from ..storage.atomic import atomic_path


def add_output_arguments(p: argparse.ArgumentParser, seed_help: str | None = None) -> None:
    """``--seed`` (default 0) and ``--json PATH`` (where the figures go, if anywhere)."""
    p.add_argument("--seed", type=int, default=0, help=seed_help)
    add_json_argument(p)


def add_json_argument(p: argparse.ArgumentParser) -> None:
    """``--json PATH``: write the figures as JSON (for benches that take no seed)."""
    p.add_argument("--json", default=None, metavar="PATH", help="write the figures as JSON")


def write_figures(path: str | os.PathLike[str] | None, result: dict[str, Any]) -> None:
    """Write ``result`` as indented JSON to ``path`` atomically (nothing when ``path`` is None).

    The file passes the command's output gate like every other output; its ``benchmark``
    key is what lets a later run recognise it as a bench file it may replace.
    """
    if path is None:
        return
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"  figures written to {path}")
