"""Experiments from one YAML config, run as resumable stages in one folder.

:mod:`.runner` holds the stage table of each task, the records and the skip/resume logic;
:mod:`.verification` and :mod:`.classification` the stages of each task (:mod:`.ivector_stages`
and :mod:`.fusion_stages` those of the i-vector and fusion systems); :mod:`.common` the
stages both share; :mod:`.report` the report and resource measurements.
"""

from __future__ import annotations

from .common import extraction_summary, headline
from .runner import REGISTRY, STAGES, Experiment, Stage, StageOutcome, stage_number, stages_of

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
