"""The bundled demo: speaker verification on a small LibriSpeech subset shipped as package data.

The audio (84 FLAC files, CC BY 4.0, see ``data/librispeech_demo/ATTRIBUTION.md``) and its
config ``demo.yaml`` live in ``gmmspeech/data/librispeech_demo``; :func:`demo_config` loads
that config with the data root pointing at the installed files, so the demo needs no download
and runs from any directory.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..config.loader import load_config
from ..config.sections import ExperimentConfig
from ..errors import DataError


def demo_data_dir() -> Path:
    """The folder of the bundled demo audio and ``demo.yaml``."""
    folder = Path(__file__).resolve().parent / "data" / "librispeech_demo"
    if not (folder / "demo.yaml").is_file():
        raise DataError(
            f"{folder}: the bundled demo data is missing; reinstall gmmspeech from a full "
            f"source tree (pip install .), which ships it as package data"
        )
    return folder


def demo_config(overrides: Sequence[str] = ()) -> ExperimentConfig:
    """The demo's experiment config, with ``--set`` style overrides applied.

    Parameters
    ----------
    overrides : sequence of str
        E.g. ``["ubm.n_components=16"]`` for a quicker run.
    """
    return load_config(demo_data_dir() / "demo.yaml", overrides)


__all__ = ["demo_config", "demo_data_dir"]
