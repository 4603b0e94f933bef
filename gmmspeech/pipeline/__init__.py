"""Experiments from one YAML config, run as resumable stages in one folder.

:mod:`.tables` holds each system's stage table (what every stage hashes, reads and writes),
:mod:`.runner` the records and the skip/resume logic, :mod:`.workspace` and
:mod:`.artefacts` the folder as a stage sees it; the other modules hold the stages.

May import: every lower layer (config, storage, engine, corpus, features, mixture, ivector,
decisions).
"""

from __future__ import annotations

from .common import extraction_summary, headline
from .declarations import Stage
from .runner import STAGES, Experiment, StageOutcome, stage_number, stages_of
from .tables import REGISTRY

__all__ = [
    "REGISTRY",
    "STAGES",
    "Experiment",
    "Stage",
    "StageOutcome",
    "extraction_summary",
    "headline",
    "stage_number",
    "stages_of",
]
